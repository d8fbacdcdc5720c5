/*
 * webhook_dispatch.h - the webhook dispatcher (the "webhooks" role) and its
 * retry policy.
 *
 * webhook_dispatcher_new() starts a listener thread (LISTEN
 * mailferry_webhooks) and MF_WEBHOOK_SENDERS sender threads.  Each sender
 * claims one due delivery at a time with a lease (db_webhook_claim: SKIP
 * LOCKED, so any number of processes can dispatch), signs and POSTs it
 * (hooks/webhook_http.h), and records the outcome under its lease.  A
 * process that dies leaves leases that expire; the deliveries are then sent
 * again with the same webhook-id (at-least-once).  webhook_dispatcher_free()
 * stops the threads, giving back the leases of requests it interrupts.
 *
 * The policy: 2xx succeeds; 410 fails the delivery and disables the
 * endpoint; anything else (or no answer) is retried after the next delay of
 * webhook_retry_schedule, +-10 % jitter, or later when Retry-After asks for
 * it; when the schedule is exhausted the delivery fails.
 */
#ifndef MF_WEBHOOK_DISPATCH_H
#define MF_WEBHOOK_DISPATCH_H

#include <stddef.h>

struct config;
struct db_pool;
struct metrics;
struct schedule;
struct webhook_http_result;

struct webhook_decision {
	const char *status; /* "succeeded", "pending" or "failed" */
	double delay;       /* seconds until the next attempt when pending */
	int gone;           /* 410: disable the endpoint */
};

/*
 * The delay before attempt number failures+1, after `failures` failed
 * attempts (1-based): schedule[failures-1] scaled by (1 + 0.1 * jitter),
 * jitter in [-1, 1]; at least retry_after (capped at
 * MF_WEBHOOK_RETRY_AFTER_MAX) when retry_after >= 0.  -1 when the schedule
 * is exhausted.
 */
double webhook_retry_delay(const struct schedule *s, int failures, long retry_after, double jitter);
/* Decides the outcome of an attempt; attempts_before counts earlier ones. */
void webhook_decide(const struct schedule *s, int attempts_before, const struct webhook_http_result *r,
		    double jitter, struct webhook_decision *d);

struct webhook_dispatcher;

struct webhook_dispatcher *webhook_dispatcher_new(const struct config *cfg, struct db_pool *pool,
						  struct metrics *metrics);
void webhook_dispatcher_free(struct webhook_dispatcher *d);

#endif
