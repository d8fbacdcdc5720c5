/*
 * relay.h - outbound SMTP: relay_deliver() routes a delivery job
 * (mail/outcome.h) through routes, the smarthost or MX, speaks SMTP and
 * fills one outcome per recipient.  It touches the database only to cache
 * MTA-STS policies (relay_set_pool(), relay/mta_sts.h).  The knobs below
 * are for tests and tuning: call them right after relay_new(), before any
 * relay_deliver().
 */
#ifndef MF_RELAY_RELAY_H
#define MF_RELAY_RELAY_H

#include <stddef.h>

#include "mail/outcome.h"
#include "relay/route.h"

struct config;
struct db_pool;
struct metrics;
struct relay;

/* The relay keeps routing state and an idle-session cache; thread-safe. */
struct relay *relay_new(const struct config *cfg, char *err, size_t errlen);
void relay_free(struct relay *r);
/* Delivers job; every rcpts[i].out is filled on return. */
void relay_deliver(struct relay *r, struct delivery_job *job);

/* Multiplies every SMTP timeout (RFC 5321 §4.5.3.2 values); default 1. */
void relay_set_timeout_scale(struct relay *r, double scale);
/* How long an idle session is kept for reuse; default RELAY_IDLE_MS. */
void relay_set_idle_ms(struct relay *r, long ms);
/* Replaces the MX lookup (tests only, see route.h). */
void relay_set_mx_lookup(struct relay *r, route_mx_fn fn, void *arg);
/* Sends DNS queries to ip:port (see route.h). */
void relay_set_nameserver(struct relay *r, const char *ip, int port);
/* Counts into m (mailferry_smtp_tls_resumed_total); m outlives r. */
void relay_set_metrics(struct relay *r, struct metrics *m);
/* MTA-STS policies are cached in PostgreSQL through pool (borrowed, must
 * outlive r); without it, in this process's memory only. */
void relay_set_pool(struct relay *r, struct db_pool *pool);
/* Idle sessions in the cache now. */
int relay_idle_sessions(struct relay *r);

#define RELAY_IDLE_MS 5000L
/* Idle sessions kept, all destinations: `workers` (one per worker), at
 * least this many. */
#define RELAY_IDLE_MIN 64
#define RELAY_SESSION_TXNS_MAX 100 /* transactions per session before QUIT */

#endif
