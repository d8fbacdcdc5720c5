/*
 * gauges.c - the metrics collector that reads queue depth, the oldest due
 * recipient and the database pool at every /metrics scrape (see gauges.h).
 *
 * Queue gauges come from the database, so every process reports the same
 * values: aggregate them with max(), not sum(), across processes.  Pool
 * gauges are per process.
 */
#include "queue/gauges.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "db/db.h"
#include "db/stats.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/metrics_names.h"
#include "util/xmalloc.h"

struct gauges_ctx {
	struct db_pool *pool;
	int pool_max;
};

static void collect(struct metrics *m, void *arg)
{
	struct gauges_ctx *g = arg;
	struct db_queue_stats s;
	char err[256];
	int open = 0, busy = 0;
	db_pool_stats(g->pool, &open, &busy);
	metrics_gauge_set(m, MF_M_DB_POOL, "state=\"open\"", open);
	metrics_gauge_set(m, MF_M_DB_POOL, "state=\"busy\"", busy);
	metrics_gauge_set(m, MF_M_DB_POOL, "state=\"max\"", g->pool_max);
	if (db_queue_stats(g->pool, &s, err, sizeof(err)) < 0) {
		log_warn_limited("event=metrics_queue_stats_failed error=\"%s\"", err);
		metrics_gauge_set(m, MF_M_DB_UP, NULL, 0);
		return;
	}
	metrics_gauge_set(m, MF_M_DB_UP, NULL, 1);
	metrics_gauge_set(m, MF_M_QUEUE_DEPTH, "status=\"queued\"", (double)s.queued);
	metrics_gauge_set(m, MF_M_QUEUE_DEPTH, "status=\"scheduled\"", (double)s.scheduled);
	metrics_gauge_set(m, MF_M_QUEUE_DEPTH, "status=\"deferred\"", (double)s.deferred);
	metrics_gauge_set(m, MF_M_QUEUE_DEPTH, "status=\"sending\"", (double)s.sending);
	metrics_gauge_set(m, MF_M_QUEUE_OLDEST, NULL, s.oldest_due_seconds);
}

struct gauges_ctx *queue_gauges_register(struct metrics *m, struct db_pool *pool, int pool_max,
					 const char *version)
{
	struct gauges_ctx *g = xcalloc(1, sizeof(*g));
	g->pool = pool;
	g->pool_max = pool_max;
	char labels[128];
	snprintf(labels, sizeof(labels), "version=\"%s\"", version);
	metrics_gauge_set(m, MF_M_BUILD, labels, 1);
	metrics_gauge_set(m, MF_M_START, NULL, (double)time(NULL));
	metrics_add_collector(m, collect, g);
	return g;
}

void queue_gauges_free(struct gauges_ctx *g)
{
	free(g);
}
