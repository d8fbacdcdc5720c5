/*
 * retention.h - the retention housekeeper: a thread that, every
 * MF_RETENTION_INTERVAL seconds, clears message bodies older than
 * body_retention, deletes events, messages and raw bounces older than
 * event_retention and idempotency keys older than 24 h, in batches of
 * MF_RETENTION_BATCH (db/retention.h).  Safe in several processes at once.
 *
 * retention_start() returns the running housekeeper (cfg, pool and m are
 * borrowed and must outlive it); retention_stop() wakes it, waits for the
 * batch in progress, joins and frees it.  retention_stop(NULL) is a no-op.
 */
#ifndef MF_QUEUE_RETENTION_H
#define MF_QUEUE_RETENTION_H

struct config;
struct db_pool;
struct metrics;
struct retention;

struct retention *retention_start(const struct config *cfg, struct db_pool *pool, struct metrics *m);
void retention_stop(struct retention *r);

#endif
