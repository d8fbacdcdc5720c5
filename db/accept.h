/*
 * accept.h - storing accepted messages (the write path of POST
 * /v1/messages and POST /v1/messages/batch).
 *
 * Writes go through the group committer (db/committer.c): a struct
 * db_write is one unit that commits or fails as a whole - one message for
 * POST /v1/messages, all the valid items for POST /v1/messages/batch.  The
 * committer runs many units in one transaction and reports each unit's own
 * result; db_group_send() and db_group_finish() are the SQL it runs for a
 * group of units.
 *
 * The result is data, not an answer: each stored message's struct
 * db_accepted (created_at and the statuses at accept), and for an
 * Idempotency-Key replay the original message's.  api/accepted.c renders
 * the 202 bodies from them; the HTTP status of each enum db_write_status
 * is chosen in api/messages.c.  Reading messages back is db/msgread.h.
 */
#ifndef MF_DB_ACCEPT_H
#define MF_DB_ACCEPT_H

#include <stddef.h>
#include <stdint.h>

#include "util/uuid.h"

struct db_pool;

struct db_rcpt_row {
	const char *email;   /* addr-spec, borrowed */
	const char *domain;  /* lower case, borrowed */
	const char *kind;    /* "to", "cc" or "bcc" */
};

/* Timestamp text as the database gives it (mf_ts(): RFC 3339 UTC). */
#define DB_TS_LEN 40

/*
 * What an accepted message's 202 body is made of, besides the id and
 * recipients its request already has.  Statuses are owned (free with
 * db_accepted_cleanup); NULL means "queued" - the common case, which the
 * database does not even send back (see db/accept.c).
 */
struct db_accepted {
	char created_at[DB_TS_LEN];
	char *status;   /* the message's */
	char **rstatus; /* [nrcpts] the recipients', by position; NULL when all are queued */
};

/* Frees a's statuses (nrcpts of rstatus) and clears it; a may be all zero. */
void db_accepted_cleanup(struct db_accepted *a, int nrcpts);

/* One message to store.  Everything borrowed except accepted. */
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
	const char *source;          /* "api" (NULL means it too) or "smtp" */
	const char *body;            /* the composed message */
	size_t body_len;
	struct db_rcpt_row *rcpts;
	int nrcpts;
	struct db_accepted accepted; /* set on success (db_accepted_cleanup) */
};

enum db_write_status {
	DB_WRITE_OK,            /* committed; msgs[i].accepted set */
	DB_WRITE_REPLAY,        /* idempotent replay: replay_id and replay, or replay_stored */
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
	/* DB_WRITE_REPLAY: the original message (its recipients are this
	 * unit's msgs[0].rcpts: same request) and what it was at accept; or,
	 * for a key written by an older mailferry, the answer stored with
	 * it (replay_stored, text, NULL otherwise).  Owned by the unit: free
	 * with db_write_cleanup(). */
	char replay_id[UUID_STR_LEN];
	struct db_accepted replay;
	char *replay_stored;
	char err[256];
	/* Called once, from the committer thread, when the unit is decided. */
	void (*done)(struct db_write *w);
	void *arg;
	struct db_write *next;                     /* the committer's queue link */
};

/* Frees what w's results own (each message's accepted, the replay), not w. */
void db_write_cleanup(struct db_write *w);

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

#endif
