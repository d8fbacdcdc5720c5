/*
 * queue.h - the delivery queue's storage (DESIGN.md "The claim, the lease,
 * the outcome").  SQL lives here; queue/ decides what to claim and when.
 *
 * A struct db_session is one dedicated connection (the scheduler's, the
 * recorder's, the housekeeper's) that reconnects by itself, can LISTEN and
 * can stand for a delivery process's liveness (db_session_register).  Claims hand rows
 * to the caller under a lease: status 'sending', lease_owner, and
 * lease_expires_at.  Outcomes are written only for rows whose lease the
 * writer still holds, so a late writer after a reclaim changes nothing.
 * Functions return 0 (or a count) on success and -1 with err set.
 */
#ifndef MF_DB_QUEUE_H
#define MF_DB_QUEUE_H

#include <stddef.h>
#include <stdint.h>

struct db_pool;
struct db_session;

struct db_session *db_session_new(const char *conninfo);
void db_session_free(struct db_session *s);
/* LISTENs on channel now and again after every reconnect. */
int db_session_listen(struct db_session *s, const char *channel, char *err, size_t errlen);
/*
 * Registers this session as the live connection of the lease owner prefix
 * owner ("host:pid:random", whose claims are "owner:<sequence>"), now and
 * again after every reconnect: the connection takes a session-level
 * advisory lock on a fresh random key and writes (owner, key) into
 * queue_owners.  While the connection lives the lock is held, and no
 * reaper takes owner's leases before they expire (db_queue_reap).
 */
int db_session_register(struct db_session *s, const char *owner, char *err, size_t errlen);
/* Deletes the registration and releases the lock (a graceful stop, after
 * every lease of the owner was recorded or given back). */
int db_session_unregister(struct db_session *s, char *err, size_t errlen);
/*
 * Waits up to timeout_ms for a NOTIFY on the listened channel or for
 * wake_fd (-1: none) to become readable.  Returns 1 on a notification,
 * 2 when wake_fd is readable (the caller drains it), 0 on timeout, -1 when
 * the connection failed (it is re-made on the next call).
 */
int db_session_wait(struct db_session *s, int wake_fd, long timeout_ms);

/* One claimed recipient with its message, borrowed for the callback. */
struct db_claim_row {
	int64_t id;
	const char *message_id;   /* uuid text */
	const char *email;
	const char *domain;
	int attempts;             /* including the one being started */
	long age_secs;            /* since the first attempt */
	const char *mail_from;
	/* The composed message.  Rows come grouped by message then domain;
	 * only the first row of each message carries the body (the others
	 * have body NULL and has_body as the first one). */
	const char *body;
	size_t body_len;
	int has_body;             /* 0: the body is gone (retention) */
};

/*
 * Per-destination control of a claim (queue/destination.h; the SQL is
 * mf_queue_claim in db/functions.sql): every destination (recipient
 * domain) gets at most its room - its window from the destinations table
 * (initial without a row, at most max) minus its jobs in flight in every
 * process, none while paused, at most the tokens of its rate - in jobs.
 */
struct db_claim_opts {
	int verp;                 /* each recipient is its own job */
	int initial;              /* the window of a domain without a row */
	int max;                  /* destination_concurrency; <= 0: no destination control */
	const char *rates_json;   /* {"gmail.com": 600, "*": 0}, jobs per minute; NULL: none */
};

/*
 * Claims up to limit due recipients (queued, scheduled or deferred with
 * next_attempt_at <= now()) with FOR UPDATE SKIP LOCKED on the partial
 * index, within each destination's room (opts; NULL: no destination
 * control): status 'sending', lease_owner = owner, lease_expires_at =
 * now() + lease_secs, attempts + 1, first_attempt_at set once.  Calls fn
 * for each row.  Returns the number of rows claimed, or -1.
 */
int db_queue_claim(struct db_session *s, const char *owner, long lease_secs, int limit,
		   const struct db_claim_opts *opts, void (*fn)(const struct db_claim_row *row, void *arg),
		   void *arg, char *err, size_t errlen);
/* Milliseconds until the earliest claimable row is due (0 if one is due
 * now); -1 when nothing is waiting.  With opts, due rows of a destination
 * without room count from when it has room again, or DB_QUEUE_POLL_MS
 * when only a finishing job (perhaps another process's) will give it.
 * Returns 0 or -1 (error). */
int db_queue_next_due(struct db_session *s, const struct db_claim_opts *opts, long *ms, char *err,
		      size_t errlen);
#define DB_QUEUE_POLL_MS 500

/* One outcome to record; strings borrowed, NULL/"" stored as NULL. */
struct db_outcome {
	int64_t id;
	const char *lease_owner;  /* the owner given to db_queue_claim */
	const char *status;       /* delivered, deferred, bounced, failed */
	long delay_ms;            /* deferred: next_attempt_at = now() + delay */
	int code;                 /* 0: none */
	const char *enhanced, *text, *mx;
	const char *tls_version, *tls_cipher;
	int tls_verified;         /* -1: no TLS */
	const char *mta_sts, *mta_sts_failure; /* RFC 8461 mode applied, testing-mode failure */
	const char *bounce_type, *bounce_category;
	int suppress;             /* bounced: add the address to the suppression list */
	/* Destination feedback (queue/destination.h): one outcome per job
	 * carries its job's signal, the others 0. */
	const char *domain;       /* NULL: no feedback */
	int feedback;             /* 1 the job went well, -1 it was throttled, 0 none */
};

/*
 * The destination feedback of one recorder batch for one domain, handed
 * to the session's feedback function inside the recording transaction with
 * the domain's row locked: in: ok/throttled job counts, the row's state
 * (known 0: no row yet); out: the new state, and pause_secs > 0 to pause
 * the domain from now.
 */
struct db_dest_feedback {
	const char *domain;
	int ok, throttled;
	int last_code;            /* of a throttled job, 0 when none */
	int known;
	double limit;
	double ssthresh;          /* 0: none yet */
	long backoff_secs;
	int paused;
	long pause_secs;
};
typedef void (*db_dest_feedback_fn)(struct db_dest_feedback *f, void *arg);
/* Sets the function db_queue_record() applies to each batch's destination
 * feedback (NULL: the destinations table is left alone). */
void db_session_set_feedback(struct db_session *s, db_dest_feedback_fn fn, void *arg);

/*
 * Writes the outcomes in one transaction: recipient status, last_*, tls_*,
 * bounce_*, an event 'message.<status>' per row (mf_record_event), the
 * suppression of the address for bounces marked suppress (reason 'bounce',
 * with its suppression.created event, as the DSN path writes it) and the
 * message status summary (mf_refresh_message_status).  Rows whose lease
 * is no longer owner's are left alone, except that a 'delivered' outcome
 * is written over any status that is not final (the server accepted the
 * mail; the lease may have been reaped or reclaimed meanwhile).  *applied
 * counts the rows written.  Outcomes carrying destination feedback update
 * the destinations table in the same transaction, through the session's
 * feedback function (db_session_set_feedback), whether or not their lease
 * held: the session took place either way.
 */
int db_queue_record(struct db_session *s, const struct db_outcome *o, int n, int *applied,
		    char *err, size_t errlen);

/*
 * The lease reaper: returns up to limit 'sending' rows to 'deferred', due
 * now, whose lease expired or whose owner is gone: registered in
 * queue_owners, its advisory lock held by no session, and its registration
 * not refreshed for owner_grace_secs.  It also deletes the registrations
 * of gone owners that hold no lease any more.  When s is registered, its
 * own registration is refreshed first (the heartbeat that the grace
 * measures).  Owners are not judged (expiry only) during owner_grace_secs
 * after s reconnected (or connected after a failed attempt), which lets
 * the other processes register again after a database restart.  The
 * attempt counts (it was made).
 * Returns the number of rows reaped, or -1.
 */
int db_queue_reap(struct db_session *s, long owner_grace_secs, int limit, char *err, size_t errlen);
/*
 * The lease heartbeat: extends to now() + lease_secs the lease of every
 * 'sending' row whose lease owner is one of this process's claims
 * ("owner_prefix:<sequence>", see db_queue_claim).  A row reaped or
 * reclaimed meanwhile no longer matches.  Returns the number of rows
 * renewed, or -1.
 */
int db_queue_renew(struct db_pool *pool, const char *owner_prefix, long lease_secs, char *err,
		   size_t errlen);
/*
 * Gives back claimed rows that were never attempted (shutdown): queued
 * again (or deferred if they had been attempted before), attempts - 1,
 * due now; only rows still leased to their owner.  Returns the count or -1.
 */
int db_queue_release(struct db_pool *pool, const int64_t *ids, const char *const *owners, int n,
		     char *err, size_t errlen);

#endif
