/*
 * ratelimit.h - let an event through at most once per interval.
 *
 * A struct ratelimit is usually a static at the call site it limits
 * (RATELIMIT_INIT); ratelimit_pass() is thread-safe.  It returns -1 when
 * the event falls inside the interval of the last one let through (it is
 * counted), else the number counted since then (0 or more), which restarts
 * the count and the interval.  Intervals are on the monotonic clock.
 */
#ifndef MF_RATELIMIT_H
#define MF_RATELIMIT_H

#include <pthread.h>

struct ratelimit {
	pthread_mutex_t lock;
	long interval_ms;
	long last_ms; /* when the last event was let through; 0: never */
	long dropped;
};

#define RATELIMIT_INIT(ms) { PTHREAD_MUTEX_INITIALIZER, (ms), 0, 0 }

long ratelimit_pass(struct ratelimit *r);

#endif
