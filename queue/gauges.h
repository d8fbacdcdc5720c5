/*
 * gauges.h - registers the collector behind mailferry's queue and pool
 * gauges (names in util/metrics_names.h).
 *
 * queue_gauges_register() sets the build/start gauges and adds a collector
 * that queries the database at every render.  The returned context is
 * owned by the caller; free it with queue_gauges_free() after the metrics
 * registry is no longer rendered.  pool and m are borrowed.
 */
#ifndef MF_QUEUE_GAUGES_H
#define MF_QUEUE_GAUGES_H

struct config;
struct db_pool;
struct metrics;
struct gauges_ctx;

struct gauges_ctx *queue_gauges_register(struct metrics *m, struct db_pool *pool, int pool_max,
					 const char *version);
/* Adds the per-destination gauges (mailferry_destination_*), computed as
 * the claim does with cfg's destination_concurrency, destination_rate and
 * VERP (bounce_domain); cfg is read now, not kept. */
void queue_gauges_destinations(struct gauges_ctx *g, const struct config *cfg);
void queue_gauges_free(struct gauges_ctx *g);

#endif
