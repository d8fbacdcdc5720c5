/*
 * msgread.h - reading stored messages back (the write path is
 * db/accept.h).
 *
 * For the API (GET /v1/messages/{id}, GET /v1/messages, and cancel, which
 * answers with the message as GET shows it): the message as JSON text
 * owned by the caller, built by the SQL function mf_api_message
 * (db/functions.sql).  For the operator CLI ("mailferry status" and
 * "mailferry list"): rows handed to callbacks, their strings borrowed for
 * the duration of the call, timestamps RFC 3339 UTC text, absent values ""
 * (never NULL).  Functions return 0 or -1 with err set, except where a
 * comment says 1 found, 0 not found, -1 error.
 */
#ifndef MF_DB_MSGREAD_H
#define MF_DB_MSGREAD_H

#include <stddef.h>

#include "util/uuid.h"

struct db_pool;

/* 1 with *json (GET /v1/messages/{id}), 0 when there is no such message, -1 on error. */
int db_message_get(struct db_pool *pool, const char *id, char **json, char *err, size_t errlen);

struct db_list_query {
	const char *status;          /* each NULL when not filtered */
	const char *recipient;
	const char *tag;
	const char *created_after;   /* RFC 3339 */
	const char *created_before;
	const char *before_id;       /* keyset cursor: ids older than this */
	int limit;
};
/* The page as a JSON array in *json; *has_more and last_id (UUID_STR_LEN)
 * for the next cursor.  0 or -1. */
int db_message_list(struct db_pool *pool, const struct db_list_query *q, char **json, int *has_more,
		    char *last_id, char *err, size_t errlen);

/* Cancels the recipients not yet sent/terminal (with message.canceled
 * events); 1 with *json (the message as GET shows it), 0 no such message, -1 error. */
int db_message_cancel(struct db_pool *pool, const char *id, char **json, char *err, size_t errlen);

/* The CLI's rows. */
struct db_view_msg {
	const char *id, *created_at, *status, *from, *subject, *tags, *first_rcpt;
	const char *tags_json; /* the tags as a JSON array */
	int nrcpt;
	long size;
	int body_kept;
};

struct db_view_rcpt {
	const char *email, *kind, *status, *next_attempt_at, *last_code, *last_enhanced, *last_text, *last_mx,
		*tls_version, *bounce_type, *bounce_category, *updated_at;
	int attempts;
};

struct db_view_event {
	const char *id, *type, *created_at, *recipient, *detail;
};

struct db_message_view_cb {
	void (*message)(const struct db_view_msg *m, void *arg);
	void (*recipient)(const struct db_view_rcpt *r, void *arg);
	void (*event)(const struct db_view_event *e, void *arg);
	void *arg;
};

/* The CLI's view: the message, then its recipients in order, then its
 * events oldest first; 1 found, 0 not found, -1 error. */
int db_message_view(struct db_pool *pool, const char *message_id, const struct db_message_view_cb *cb, char *err,
		   size_t errlen);

/* All strings borrowed; NULL: no condition. */
struct db_message_view_filter {
	const char *status;    /* message status */
	const char *since;     /* created_at >= (timestamptz text) */
	const char *recipient; /* has this recipient (any case) */
	int limit;
};
/* Newest first. */
int db_message_view_list(struct db_pool *pool, const struct db_message_view_filter *f,
		    void (*fn)(const struct db_view_msg *m, void *arg), void *arg, char *err, size_t errlen);

#endif
