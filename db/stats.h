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

#endif
