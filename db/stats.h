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
#include <time.h>

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

/*
 * The console's aggregates (GET /v1/stats/overview and /timeseries), all read from events (BRIN
 * index on created_at) and webhooks, never a scan of delivered history.
 * Each calls fn once per row with the row's text values (NULL for SQL
 * NULL), borrowed for the call; 0 or -1 with err set.
 */
typedef void db_stats_row_fn(const char *const *cols, int ncols, void *arg);

/* Outcome counts per bucket: unit "minute" or "hour", buckets from
 * date_trunc(unit, since) to now, zero-filled.  Columns: bucket start
 * (RFC 3339, UTC), delivered, deferred, bounced, failed. */
int db_stats_timeseries(struct db_pool *pool, const char *unit, time_t since, db_stats_row_fn *fn, void *arg,
			char *err, size_t errlen);

enum db_stats_top {
	DB_TOP_TOTALS,            /* one row: delivered, deferred, bounced, failed */
	DB_TOP_DEFERRAL_REASONS,  /* code, enhanced_code, text, count */
	DB_TOP_BOUNCE_REASONS,    /* code, enhanced_code, text, count */
	DB_TOP_DEFERRED_DOMAINS,  /* domain, count */
	DB_TOP_FAILING_WEBHOOKS,  /* id, url, enabled, failing_since, disabled_reason, pending */
};
/* The rows of kind over the events of the last `hours` (not for webhooks,
 * which are failing now), at most limit of them, largest first. */
int db_stats_top(struct db_pool *pool, enum db_stats_top kind, int hours, int limit, db_stats_row_fn *fn,
		 void *arg, char *err, size_t errlen);

#endif
