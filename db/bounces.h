/*
 * bounces.h - the storage side of bounce processing (bounce/bounces.c
 * decides; this file runs the SQL).
 *
 * A struct db_bounce_tx is one claimed bounces_raw row inside an open
 * transaction on a borrowed connection: db_bounce_claim() opens it (row
 * locked FOR UPDATE SKIP LOCKED, so any number of processes can work the
 * table), the db_bounce_tx_* calls change recipients, events and
 * suppressions in that same transaction, and db_bounce_tx_finish() marks
 * the row processed and commits (or db_bounce_tx_abort() rolls back).  A
 * bounce that must wait for a recipient still 'sending' ends with
 * db_bounce_tx_wait() instead: nothing it did is kept, the row stays
 * unprocessed, and the claim skips it until that recipient has left
 * 'sending' or the wait is over (bounces_raw.wait_rcpt, .wait_until,
 * migration 0021).
 * Every function returns 0 / -1 (err set) unless it says otherwise.
 */
#ifndef MF_DB_BOUNCES_H
#define MF_DB_BOUNCES_H

#include <stddef.h>
#include <stdint.h>

struct db_pool;
struct db_bounce_tx;

/* Stores a raw bounce (source 'api') without NOTIFY; *id gets its row id. */
int db_bounce_insert(struct db_pool *pool, const char *source, const char *mail_from, const char *rcpt_to,
		     const char *raw, size_t len, int64_t *id, char *err, size_t errlen);

/*
 * Claims an unprocessed row that is ready (only_id > 0: that row only) in
 * a new transaction.  A row is ready unless it waits (db_bounce_tx_wait)
 * for a recipient that is still 'sending' and its wait_until is ahead.
 * Returns 1 with *out set, 0 when there is none to claim (processed,
 * waiting, or locked by another processor), -1 on error.
 */
int db_bounce_claim(struct db_pool *pool, int64_t only_id, struct db_bounce_tx **out, char *err,
		    size_t errlen);
int64_t db_bounce_tx_id(const struct db_bounce_tx *tx);
/* 1 when the row has never waited or its wait_until is still ahead, 0 when
 * its wait is over (then it is to be processed whatever it finds). */
int db_bounce_tx_may_wait(const struct db_bounce_tx *tx);
const char *db_bounce_tx_raw(const struct db_bounce_tx *tx, size_t *len);
const char *db_bounce_tx_rcpt_to(const struct db_bounce_tx *tx); /* "" when none */

struct db_bounce_rcpt {
	int64_t id;
	char message_id[40];  /* uuid */
	char email[321];
	char status[16];
};
/* 1 found (row locked), 0 none, -1 error. */
int db_bounce_tx_recipient(struct db_bounce_tx *tx, int64_t recipient_id, struct db_bounce_rcpt *out,
			   char *err, size_t errlen);
/* By the returned message's Message-ID (without <>) and the address. */
int db_bounce_tx_find(struct db_bounce_tx *tx, const char *message_id_hdr, const char *email,
		      struct db_bounce_rcpt *out, char *err, size_t errlen);

struct db_bounce_outcome {
	int code;                 /* SMTP code from the diagnostic, 0 when none */
	const char *enhanced;     /* "5.1.1" or "" */
	const char *text;         /* diagnostic */
	const char *mx;           /* Remote-MTA or "" */
	const char *bounce_type;  /* "permanent"/"transient" or NULL */
	const char *category;
	/* For the event's "dsn" object (data.dsn): */
	const char *action;       /* "failed", "delayed" */
	const char *reporting_mta;
	const char *matched_by;   /* "verp", "message_id" */
	int64_t bounce_id;        /* bounces_raw.id */
};
/*
 * Action: failed.  The recipient becomes bounced (from delivered, deferred,
 * queued, scheduled or sending; its lease is cleared so a late delivery
 * report is dropped - bounce/bounces.c first waits for a 'sending' one,
 * db_bounce_tx_wait, and comes here with it only when the wait is over)
 * with a message.bounced event and the message status refreshed.  Returns 1 changed, 0 when its status does not allow it
 * (already bounced, failed, suppressed, canceled), -1 on error.
 */
int db_bounce_tx_bounce(struct db_bounce_tx *tx, int64_t recipient_id, const struct db_bounce_outcome *o,
			char *err, size_t errlen);
/* Action: delayed.  A message.deferred event only; status unchanged. */
int db_bounce_tx_delayed(struct db_bounce_tx *tx, int64_t recipient_id, const struct db_bounce_outcome *o,
			 char *err, size_t errlen);
/* Adds email (lower-cased) with reason 'bounce'; 1 added, 0 already there. */
int db_bounce_tx_suppress(struct db_bounce_tx *tx, const char *email, const char *message_id,
			  const char *diagnostic, char *err, size_t errlen);
/*
 * The bounce waits for recipient_id, found 'sending': everything done
 * since the claim is rolled back, the row keeps processed_at NULL and
 * records wait_rcpt = recipient_id and, the first time it waits,
 * wait_until = now() + max_wait_secs (a later wait never extends it).
 * Commits and frees tx (also on error).
 */
int db_bounce_tx_wait(struct db_bounce_tx *tx, int64_t recipient_id, long max_wait_secs, char *err,
		      size_t errlen);
/* Marks the row processed with outcome, commits and frees tx. */
int db_bounce_tx_finish(struct db_bounce_tx *tx, const char *outcome, char *err, size_t errlen);
/* Rolls back and frees tx (NULL: no-op). */
void db_bounce_tx_abort(struct db_bounce_tx *tx);

/* Marks row id processed with outcome (outside any claim); 0 or -1. */
int db_bounce_mark(struct db_pool *pool, int64_t id, const char *outcome, char *err, size_t errlen);


#endif
