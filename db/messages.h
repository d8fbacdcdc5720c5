/*
 * messages.h - storing accepted messages and reading them back.
 *
 * Writes go through the group committer (db/committer.c): a struct
 * db_write is one unit that commits or fails as a whole - one message for
 * POST /v1/messages, all the valid items for POST /v1/messages/batch.  The
 * committer runs many units in one transaction and reports each unit's own
 * result; db_group_send() and db_group_finish() are the SQL it runs for a
 * group of units.
 *
 * JSON returned by these functions (the API's representation of a message,
 * defined once in SQL by migration 0002) is text owned by the caller.
 */
#ifndef MF_DB_MESSAGES_H
#define MF_DB_MESSAGES_H

#include <stddef.h>
#include <stdint.h>

#include "util/uuid.h"

struct db_pool;

struct db_rcpt_row {
	const char *email;   /* addr-spec, borrowed */
	const char *domain;  /* lower case, borrowed */
	const char *kind;    /* "to", "cc" or "bcc" */
};

/* One message to store.  Everything borrowed except result_json. */
struct db_msg_row {
	char id[UUID_STR_LEN];
	const char *mail_from;       /* envelope sender addr-spec */
	const char *from_header;     /* as given, "Name <a@b>" */
	const char *subject;
	const char *message_id_hdr;  /* without <> */
	const char *const *tags;
	int ntags;
	const char *metadata_json;   /* a JSON object */
	const char *request_json;    /* the request without attachment bytes */
	const char *send_at;         /* RFC 3339, or NULL for now */
	const char *body;            /* the composed message */
	size_t body_len;
	struct db_rcpt_row *rcpts;
	int nrcpts;
	char *result_json;           /* set on success: the 202 body (caller frees) */
};

enum db_write_status {
	DB_WRITE_OK,            /* committed; msgs[i].result_json set */
	DB_WRITE_REPLAY,        /* idempotent replay: replay_status, replay_body */
	DB_WRITE_IDEM_CONFLICT, /* same key, different request */
	DB_WRITE_IDEM_IN_FLIGHT,/* same key still being processed */
	DB_WRITE_IDEM_GONE,     /* same key and request, but its message is no longer kept */
	DB_WRITE_UNAVAILABLE,   /* the database could not be reached; nothing written */
	DB_WRITE_FAILED,        /* the database refused this unit; nothing written (err) */
};

#define DB_IDEM_HASH_LEN 32

struct db_write {
	int64_t api_key_id;
	const char *idem_key;                      /* NULL: no Idempotency-Key */
	unsigned char idem_hash[DB_IDEM_HASH_LEN]; /* SHA-256 of the request body */
	struct db_msg_row *msgs;
	int nmsgs;
	/* Results, set before done() is called. */
	enum db_write_status status;
	int replay_status;
	char *replay_body;                         /* owned by the caller after done() */
	char err[256];
	/* Called once, from the committer thread, when the unit is decided. */
	void (*done)(struct db_write *w);
	void *arg;
	struct db_write *next;                     /* the committer's queue link */
};

/*
 * Writes a group of units in one transaction on conn (a PGconn *, void *
 * here so that callers need not see libpq), pipelined: db_group_send()
 * sends the group (the connection enters libpq pipeline mode and stays in
 * it) and returns at once; db_group_finish() reads its results - groups
 * finish in the order they were sent - and returns 0 when committed, each
 * unit's status set (a unit whose Idempotency-Key was used before is not
 * written: its status says replay, conflict or in flight); -1 with err
 * when the database refused the group (rolled back; the connection still
 * good); -2 when the connection was lost or is in an unknown state (the
 * outcome unknown).  db_group_send() returns NULL when the group could not
 * be sent whole (drop the connection).  Free each group with
 * db_group_free().
 */
struct db_group;
struct db_group *db_group_send(void *conn, struct db_write **w, int n, char *err, size_t errlen);
int db_group_finish(struct db_group *g, char *err, size_t errlen);
void db_group_free(struct db_group *g);

/* Prepares the group's statements on a new connection; 0 or -1. */
int db_messages_prepare(void *conn, char *err, size_t errlen);

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

#endif
