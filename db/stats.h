/*
 * stats.h - cheap aggregates over the queue for metrics and alerts.
 *
 * Counts only claimable and in-flight recipients: the query reads the
 * partial indexes (recipients_due_idx, recipients_lease_idx), never the
 * delivered history.
 */
#ifndef MF_DB_STATS_H
#define MF_DB_STATS_H

#include <stddef.h>

struct db_pool;

struct db_queue_stats {
	long queued, scheduled, deferred, sending;
	double oldest_due_seconds; /* 0 when nothing is due */
};

/* 0 or -1 with err set. */
int db_queue_stats(struct db_pool *pool, struct db_queue_stats *out, char *err, size_t errlen);

/* One destination's state for metrics (mf_destination_room). */
struct db_destination_stat {
	const char *domain;       /* borrowed for the callback */
	long sessions;            /* jobs in flight, all processes */
	int limit;                /* the window now */
	int paused;
	long backoff_secs;
};
struct db_claim_opts;
/* Calls fn for every destination with jobs in flight, paused, or whose
 * row changed in the last active_secs (at most DB_DEST_STATS_MAX, busiest
 * first).  0 or -1 with err set. */
int db_destination_stats(struct db_pool *pool, const struct db_claim_opts *o, long active_secs,
			 void (*fn)(const struct db_destination_stat *d, void *arg), void *arg, char *err,
			 size_t errlen);
#define DB_DEST_STATS_MAX 500     /* label values of the per-destination gauges */

#endif
