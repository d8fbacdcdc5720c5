/*
 * ratelimit.c - at most one event per interval (see ratelimit.h).
 */
#include "util/ratelimit.h"

#include <time.h>

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	/* +1 keeps 0 free to mean "never", even right after boot. */
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L + 1;
}

long ratelimit_pass(struct ratelimit *r)
{
	long now = now_ms(), out = -1;
	pthread_mutex_lock(&r->lock);
	if (r->last_ms == 0 || now - r->last_ms >= r->interval_ms) {
		out = r->dropped;
		r->dropped = 0;
		r->last_ms = now;
	} else {
		r->dropped++;
	}
	pthread_mutex_unlock(&r->lock);
	return out;
}
