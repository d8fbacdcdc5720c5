/*
 * domain_check.h - the daily re-check of sending domains (docs/domains.md
 * "Re-check"): a thread of serve's delivery role that, every
 * min(domain_recheck_interval, MF_DOMAIN_RECHECK_POLL) seconds,
 *  - retires the keys in state retiring whose retire_after has passed
 *    (db_domain_keys_retire), and
 *  - re-verifies, one at a time, each verified domain whose checked_at is
 *    older than domain_recheck_interval (domains/verify.h, the rules of
 *    POST /v1/domains/{domain}/verify): a record gone or changed makes the
 *    domain failed with the event domain.verification_failed; records
 *    still matching advance checked_at.  A lookup that got no answer
 *    (servfail, timeout) stores nothing: the domain stays verified until
 *    its next period.
 * A domain is claimed before it is looked up (db_domain_claim_recheck:
 * its checked_at set in the claim), so two processes on one database
 * do not check it twice in one period.  The signing cache of each API
 * process (api/domain_cache.h) sees a new status within its TTL.
 *
 * domain_check_start() returns the running thread (cfg and pool are
 * borrowed and must outlive it), or NULL with err set when the resolver
 * cannot be made or the thread cannot start; domain_check_stop() wakes
 * it, waits for the lookup in progress (the check stops between
 * lookups), joins and frees it.  domain_check_stop(NULL) is a no-op.
 */
#ifndef MF_QUEUE_DOMAIN_CHECK_H
#define MF_QUEUE_DOMAIN_CHECK_H

#include <stddef.h>

struct config;
struct db_pool;
struct domain_check;

struct domain_check *domain_check_start(const struct config *cfg, struct db_pool *pool, char *err, size_t errlen);
void domain_check_stop(struct domain_check *dc);

#endif
