/*
 * gauges.c - the metrics collector that reads queue depth, the oldest due
 * recipient and the database pool at every /metrics scrape (see gauges.h).
 *
 * Queue gauges come from the database, so every process reports the same
 * values: aggregate them with max(), not sum(), across processes.  Pool
 * gauges are per process.  Per-destination gauges (label domain) are
 * those of the destinations active in the last DEST_ACTIVE_SECS
 * (queue/destination.h), also from the database; once a domain is no
 * longer active its series are gone, so the label set stays bounded.
 */
#include "queue/gauges.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/db.h"
#include "db/queue.h"
#include "db/stats.h"
#include "queue/destination.h"
#include "util/config.h"
#include "util/limits.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/metrics_names.h"
#include "util/xmalloc.h"

struct gauges_ctx {
	struct db_pool *pool;
	int pool_max;
	int dest;                     /* per-destination gauges on */
	struct db_claim_opts opts;
	char *rates;
};

#define MF_NAME_(name, help) name
#define MF_NAME(m) MF_NAME_(m)

static void dest_gauge(const struct db_destination_stat *d, void *arg)
{
	struct metrics *m = arg;
	if (strpbrk(d->domain, "\"\\\n") != NULL)
		return;  /* not a label value without escaping; domains never have these */
	char labels[MF_DOMAIN_MAX + 16];
	snprintf(labels, sizeof(labels), "domain=\"%s\"", d->domain);
	metrics_gauge_set(m, MF_M_DEST_SESSIONS, labels, (double)d->sessions);
	metrics_gauge_set(m, MF_M_DEST_LIMIT, labels, d->limit);
	metrics_gauge_set(m, MF_M_DEST_PAUSED, labels, d->paused);
	metrics_gauge_set(m, MF_M_DEST_BACKOFF, labels, (double)d->backoff_secs);
}

static void collect_destinations(struct metrics *m, struct gauges_ctx *g)
{
	metrics_gauge_clear(m, MF_NAME(MF_M_DEST_SESSIONS));
	metrics_gauge_clear(m, MF_NAME(MF_M_DEST_LIMIT));
	metrics_gauge_clear(m, MF_NAME(MF_M_DEST_PAUSED));
	metrics_gauge_clear(m, MF_NAME(MF_M_DEST_BACKOFF));
	char err[256];
	if (db_destination_stats(g->pool, &g->opts, DEST_ACTIVE_SECS, dest_gauge, m, err, sizeof(err)) < 0)
		log_warn_limited("event=metrics_destination_stats_failed error=\"%s\"", err);
}

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
	if (g->dest)
		collect_destinations(m, g);
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

void queue_gauges_destinations(struct gauges_ctx *g, const struct config *cfg)
{
	struct dest_params p;
	dest_params_init(&p, cfg->destination_concurrency);
	free(g->rates);
	g->rates = dest_rates_json(cfg->destination_rate);
	g->opts.verp = cfg->bounce_domain != NULL && *cfg->bounce_domain;
	g->opts.initial = p.initial;
	g->opts.max = p.max;
	g->opts.rates_json = g->rates ? g->rates : "{}";
	g->dest = 1;
}

void queue_gauges_free(struct gauges_ctx *g)
{
	if (g == NULL)
		return;
	free(g->rates);
	free(g);
}
