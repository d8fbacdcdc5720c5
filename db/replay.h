/*
 * replay.h - requeueing failed, bounced or deferred recipients (replay).
 *
 * A replay selects recipients by a filter (status set, message creation
 * window, recipient domain, message tag, or one message id) and puts each
 * back to 'queued' with next_attempt_at = now(): the attempts counter
 * continues, bounce_type/bounce_category and the lease are cleared,
 * first_attempt_at is cleared so max_queue_lifetime counts from the replay,
 * and a 'message.requeued' event records who asked.  Suppressed addresses
 * and messages whose body retention has expired are skipped and counted.
 *
 * Bulk replays run in batches (keyset over recipients.id), one short
 * transaction per batch, so the queue is never locked for long and a
 * replay of 100,000 recipients touches each row once.  Posting the same
 * replay twice is harmless: requeued rows no longer match the status set.
 * Functions return 0 or -1 with err set.
 */
#ifndef MF_DB_REPLAY_H
#define MF_DB_REPLAY_H

#include <stddef.h>

struct db_pool;

/* Status set bits. */
#define DB_REPLAY_FAILED 1u
#define DB_REPLAY_BOUNCED 2u
#define DB_REPLAY_DEFERRED 4u
#define DB_REPLAY_ALL (DB_REPLAY_FAILED | DB_REPLAY_BOUNCED | DB_REPLAY_DEFERRED)

/* All strings borrowed; NULL means "no condition". */
struct db_replay_filter {
	unsigned statuses;          /* DB_REPLAY_* bits, at least one */
	const char *message_id;     /* one message (uuid) */
	const char *created_after;  /* timestamptz text, inclusive */
	const char *created_before; /* timestamptz text, exclusive */
	const char *domain;         /* recipient domain, any case */
	const char *tag;            /* the message has this tag */
};

struct db_replay_result {
	long matched;            /* recipients the filter selected */
	long requeued;           /* put back to queued */
	long skipped_suppressed; /* address on the suppression list */
	long skipped_expired;    /* body already deleted by retention */
	long batches;
	long retries;            /* batches run again after a deadlock */
};

/* One recipient of the dry-run sample; strings valid during the callback. */
struct db_replay_sample {
	const char *message_id, *recipient, *status, *created_at;
};

/*
 * Dry run: counts what a replay would do (requeued stays 0) and calls
 * sample (may be NULL) for up to nsample matching recipients, oldest first.
 */
int db_replay_count(struct db_pool *pool, const struct db_replay_filter *f, int nsample,
		    void (*sample)(const struct db_replay_sample *s, void *arg), void *arg,
		    struct db_replay_result *out, char *err, size_t errlen);

/*
 * Requeues in batches of batch_size (<= 0: MF_REPLAY_BATCH) recipients,
 * one transaction each.  requested_by goes into the event ("cli",
 * "api_key:12").  progress (may be NULL) is called after every batch with
 * the running totals.  On error, batches already committed stay committed
 * (out says how far it got); running the replay again continues.
 */
int db_replay_run(struct db_pool *pool, const struct db_replay_filter *f, const char *requested_by,
		  int batch_size, void (*progress)(const struct db_replay_result *r, void *arg), void *arg,
		  struct db_replay_result *out, char *err, size_t errlen);

/* 1 when the message exists, 0 when not, -1 on error; *api_key_id is its owner (0 none). */
int db_replay_message_owner(struct db_pool *pool, const char *message_id, long long *api_key_id,
			    char *err, size_t errlen);

#endif
