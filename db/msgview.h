/*
 * msgview.h - read-only views of messages for the operator CLI
 * ("mailferry status" and "mailferry list").
 *
 * Rows are handed to callbacks; their strings are borrowed for the
 * duration of the call.  Timestamps are RFC 3339 UTC text, absent values
 * are "" (never NULL).  Functions return 0 or -1 with err set, except
 * db_msgview_get (1 found, 0 not found, -1 error).
 */
#ifndef MF_DB_MSGVIEW_H
#define MF_DB_MSGVIEW_H

#include <stddef.h>

struct db_pool;

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

struct db_msgview_cb {
	void (*message)(const struct db_view_msg *m, void *arg);
	void (*recipient)(const struct db_view_rcpt *r, void *arg);
	void (*event)(const struct db_view_event *e, void *arg);
	void *arg;
};

/* The message, then its recipients in order, then its events oldest first. */
int db_msgview_get(struct db_pool *pool, const char *message_id, const struct db_msgview_cb *cb, char *err,
		   size_t errlen);

/* All strings borrowed; NULL: no condition. */
struct db_msgview_filter {
	const char *status;    /* message status */
	const char *since;     /* created_at >= (timestamptz text) */
	const char *recipient; /* has this recipient (any case) */
	int limit;
};
/* Newest first. */
int db_msgview_list(struct db_pool *pool, const struct db_msgview_filter *f,
		    void (*fn)(const struct db_view_msg *m, void *arg), void *arg, char *err, size_t errlen);

#endif
