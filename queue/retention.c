/*
 * retention.c - the retention housekeeper thread (see retention.h).
 *
 * A round walks the kinds in order (bodies first: they are the personal
 * data that matters most), each until a batch comes back short.  The stop
 * flag is checked between batches, so shutdown waits for one short
 * transaction at most.
 */
#include "queue/retention.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "db/retention.h"
#include "util/config.h"
#include "util/limits.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/metrics_names.h"
#include "util/xmalloc.h"

struct retention {
	const struct config *cfg;
	struct db_pool *pool;
	struct metrics *metrics;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int stop;
};

static int stopping(struct retention *r)
{
	pthread_mutex_lock(&r->mu);
	int s = r->stop;
	pthread_mutex_unlock(&r->mu);
	return s;
}

/* Runs one kind until done; returns rows touched or -1. */
static long run_kind(struct retention *r, enum db_retention_kind kind, long age)
{
	char err[512];
	long total = 0;
	while (!stopping(r)) {
		int n = db_retention_batch(r->pool, kind, age, MF_RETENTION_BATCH, err, sizeof(err));
		if (n < 0) {
			log_warn_limited("event=retention_failed kind=%s error=\"%s\"", db_retention_name(kind), err);
			return -1;
		}
		total += n;
		if (n < MF_RETENTION_BATCH)
			break;
	}
	if (total > 0) {
		char labels[64];
		snprintf(labels, sizeof(labels), "kind=\"%s\"", db_retention_name(kind));
		if (r->metrics)
			metrics_counter_add(r->metrics, MF_M_RETENTION, labels, (double)total);
		log_info("event=retention kind=%s rows=%ld", db_retention_name(kind), total);
	}
	return total;
}

static void round_once(struct retention *r)
{
	const long ages[DB_RET_KINDS] = {
		[DB_RET_BODIES] = r->cfg->body_retention,
		[DB_RET_EVENTS] = r->cfg->event_retention,
		[DB_RET_MESSAGES] = r->cfg->event_retention,
		[DB_RET_BOUNCES] = r->cfg->event_retention,
		[DB_RET_IDEMPOTENCY] = MF_IDEMPOTENCY_TTL,
		[DB_RET_DESTINATIONS] = MF_DESTINATION_IDLE,
		[DB_RET_STS] = 0, /* as soon as they expire */
	};
	for (int k = 0; k < DB_RET_KINDS && !stopping(r); k++)
		if (run_kind(r, (enum db_retention_kind)k, ages[k]) < 0)
			return; /* the database is away: try again next round */
}

static void *retention_main(void *arg)
{
	struct retention *r = arg;
	log_info("event=retention_started body_retention=%ld event_retention=%ld interval=%d", r->cfg->body_retention,
		 r->cfg->event_retention, MF_RETENTION_INTERVAL);
	for (;;) {
		round_once(r);
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += MF_RETENTION_INTERVAL;
		pthread_mutex_lock(&r->mu);
		while (!r->stop && pthread_cond_timedwait(&r->cond, &r->mu, &until) != ETIMEDOUT)
			;
		int s = r->stop;
		pthread_mutex_unlock(&r->mu);
		if (s)
			return NULL;
	}
}

struct retention *retention_start(const struct config *cfg, struct db_pool *pool, struct metrics *m)
{
	struct retention *r = xcalloc(1, sizeof(*r));
	r->cfg = cfg;
	r->pool = pool;
	r->metrics = m;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cond, NULL);
	if (pthread_create(&r->thread, NULL, retention_main, r) != 0) {
		log_error("event=retention_thread_failed");
		pthread_mutex_destroy(&r->mu);
		pthread_cond_destroy(&r->cond);
		free(r);
		return NULL;
	}
	return r;
}

void retention_stop(struct retention *r)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->mu);
	r->stop = 1;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thread, NULL);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cond);
	free(r);
}
