/*
 * webhooks.h - storage of webhook endpoints, the delivery outbox and the
 * event pull feed.
 *
 * Fan-out happens in the database (a trigger on events, migration 0005,
 * running mf_webhook_fanout of db/functions.sql), so nothing here inserts
 * deliveries.  Rows handed to callbacks hold borrowed
 * strings valid during the call only.  Functions return -1 with err set on
 * a database error; "1 found / 0 not found" where they say so.
 */
#ifndef MF_DB_WEBHOOKS_H
#define MF_DB_WEBHOOKS_H

#include <stddef.h>
#include <stdint.h>

struct db_pool;

/* One endpoint as the API shows it (no secret). */
struct db_webhook_row {
	const char *public_id, *url, *events_csv, *description, *created_at, *updated_at;
	const char *disabled_reason;     /* NULL when none */
	const char *rotation_expires_at; /* NULL when no old secret signs */
	int enabled;
};
typedef void (*db_webhook_fn)(const struct db_webhook_row *row, void *arg);

int db_webhook_insert(struct db_pool *pool, const char *public_id, const char *url, const char *events_csv,
		      const char *description, int enabled, const char *secret, db_webhook_fn fn, void *arg,
		      char *err, size_t errlen);
/* 1 found (fn called), 0 none. */
int db_webhook_get(struct db_pool *pool, const char *public_id, db_webhook_fn fn, void *arg, char *err,
		   size_t errlen);
/* Calls fn for each endpoint, oldest first. */
int db_webhook_list(struct db_pool *pool, db_webhook_fn fn, void *arg, char *err, size_t errlen);

/* NULL members are left unchanged; enabled: -1 unchanged, 0/1. */
struct db_webhook_patch {
	const char *url, *events_csv, *description;
	int enabled;
};
/* 1 updated (fn called with the new row), 0 none.  Enabling clears the
 * disabled reason and the failure clock. */
int db_webhook_update(struct db_pool *pool, const char *public_id, const struct db_webhook_patch *p,
		      db_webhook_fn fn, void *arg, char *err, size_t errlen);
/* 1 deleted (with its deliveries), 0 none. */
int db_webhook_delete(struct db_pool *pool, const char *public_id, char *err, size_t errlen);
/* Installs new_secret; the current one keeps signing for keep_secs.
 * 1 rotated (fn called), 0 none. */
int db_webhook_rotate(struct db_pool *pool, const char *public_id, const char *new_secret, long keep_secs,
		      db_webhook_fn fn, void *arg, char *err, size_t errlen);

/* One delivery in the log. */
struct db_delivery_row {
	int64_t id;
	const char *event_id, *event_type, *status, *created_at, *updated_at;
	int attempts;
	int last_http_status;       /* 0 when none */
	const char *last_error;     /* NULL when none */
	const char *next_attempt_at; /* NULL unless pending */
	const char *last_attempt_at; /* NULL before the first attempt */
};
/*
 * The endpoint's deliveries, newest first, with id < before (0: from the
 * newest), at most limit.  Returns the number of rows, or -1.
 */
int db_webhook_deliveries(struct db_pool *pool, const char *public_id, int64_t before, int limit,
			  void (*fn)(const struct db_delivery_row *row, void *arg), void *arg, char *err,
			  size_t errlen);
/* Makes a delivery due now (unless it is being sent) and wakes the
 * dispatchers.  1 done, 0 no such delivery for this endpoint. */
int db_webhook_delivery_retry(struct db_pool *pool, const char *public_id, int64_t delivery_id, char *err,
			      size_t errlen);

/*
 * The pull feed: events with (txid, id) > (after_txid, after_id) whose
 * transaction is older than every transaction still running, in (txid, id)
 * order.  A later commit can never sort before an event already returned,
 * so a consumer that resumes from the last (txid, id) misses nothing.
 * after_txid is the decimal xid8 ("0" from the start).  Returns the number
 * of rows or -1.
 */
struct db_event_row {
	const char *txid;
	int64_t id;
	const char *payload; /* JSON text */
};
int db_events_feed(struct db_pool *pool, const char *after_txid, int64_t after_id, int limit,
		   void (*fn)(const struct db_event_row *row, void *arg), void *arg, char *err, size_t errlen);

/* --- the dispatcher's side ------------------------------------------------ */

/* A claimed delivery; strings owned, release with db_webhook_job_cleanup(). */
struct db_webhook_job {
	int64_t delivery_id;
	int64_t webhook_id;
	int attempts;       /* attempts made before this one */
	char *url;
	char *secret;
	char *old_secret;   /* NULL unless a rotation is in its grace period */
	char *msg_id;       /* the event's public id, the webhook-id */
	char *body;         /* the event payload as sent */
	size_t bodylen;
};
void db_webhook_job_cleanup(struct db_webhook_job *j);

/*
 * Returns expired leases to 'pending', then claims up to max due deliveries
 * of enabled endpoints (FOR UPDATE SKIP LOCKED), skipping any whose
 * recipient has an earlier delivery to the same endpoint still pending or
 * being sent.  Leases them to owner for lease_secs.  Returns the number
 * claimed (jobs[0..n-1] filled) or -1.
 */
int db_webhook_claim(struct db_pool *pool, const char *owner, long lease_secs, int max, struct db_webhook_job *jobs,
		     char *err, size_t errlen);
/*
 * Records one attempt (mf_webhook_finish, db/functions.sql): status is
 * "succeeded", "pending" (retry after delay_secs) or "failed"; gone
 * disables the endpoint (HTTP 410); an endpoint failing for
 * disable_after_secs is disabled.  1 recorded, 0 the lease was lost.
 */
int db_webhook_finish(struct db_pool *pool, int64_t delivery_id, const char *owner, const char *status,
		      int http_status, const char *error, double delay_secs, int gone, double disable_after_secs,
		      char *err, size_t errlen);
/* Gives a lease back without counting an attempt (shutdown). */
int db_webhook_release(struct db_pool *pool, int64_t delivery_id, const char *owner, char *err, size_t errlen);

/* Deliveries waiting and in flight, for metrics. */
int db_webhook_backlog(struct db_pool *pool, long *pending, long *sending, char *err, size_t errlen);


#endif
