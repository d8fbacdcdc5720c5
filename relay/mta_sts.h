/*
 * mta_sts.h - MTA-STS (RFC 8461) for the relay: which policy applies to a
 * recipient domain now.  It looks up "_mta-sts.<domain>" TXT through the
 * relay's resolver (§3.1), fetches https://mta-sts.<domain>/.well-known/
 * mta-sts.txt with libcurl when there is no cached policy under that id
 * (§3.3: certificate verified - against tls_ca_file when set -, redirects
 * refused, 64 KiB and STS_FETCH_TIMEOUT_S at most), parses it
 * (relay/sts_policy.h) and keeps it for its max_age (§5.1).  A domain
 * whose TXT record disappears keeps its cached policy until it expires;
 * a failed fetch falls back to the cached policy, else to none (§5.1).
 *
 * The cache is PostgreSQL's table mta_sts_policies (db/sts_cache.h,
 * set with sts_set_store()), so that a restarted process, or another
 * one, uses a policy fetched once; a small memory front (a mutex around
 * a table) spares the database a query per delivery while the TXT id is
 * the one it holds.  When the id differs, PostgreSQL is asked before the
 * policy is fetched; when PostgreSQL cannot be reached the front stands
 * alone.  A domain with neither TXT record nor row is remembered as such
 * for STS_ABSENT_TTL_S, so that the many domains without a policy cost no
 * query per delivery.  Without a store (tests of the relay alone) the front is the
 * whole cache.  Workers that need one domain's policy while it is being
 * fetched wait for that fetch and use its result: a policy server sees
 * one request per process, not one per worker.  struct sts is
 * thread-safe.
 */
#ifndef MF_RELAY_MTA_STS_H
#define MF_RELAY_MTA_STS_H

#include <stddef.h>

#include "relay/sts_policy.h"

#define STS_FETCH_TIMEOUT_S 10L /* the whole HTTPS fetch (§3.3 leaves it to the sender) */
/* A domain without a TXT record whose row PostgreSQL lacked is not asked
 * about again for this long (most domains have no policy; a row appears
 * only after a fetch, which needs the TXT record); at most this many such
 * domains are remembered. */
#define STS_ABSENT_TTL_S 60L
#define STS_ABSENT_MAX 10000
/* At most this many policies in the memory front; a new one beyond it
 * empties the front, which then refills from PostgreSQL. */
#define STS_FRONT_MAX 10000

struct db_pool;
struct dns_resolver;
struct sts;

/* dns is borrowed and must outlive s; ca_file NULL: the system's CAs. */
struct sts *sts_new(const struct dns_resolver *dns, const char *ca_file);
void sts_free(struct sts *s);
/* Caches policies in PostgreSQL through pool (borrowed, outlives s);
 * call before the first sts_policy_for(). */
void sts_set_store(struct sts *s, struct db_pool *pool);

/*
 * The policy for domain: fills *p and returns its mode (STS_MODE_NONE and
 * p->nmx 0 when the domain has none or it could not be had).  note (may
 * be NULL) says where it came from or why there is none, for logs.
 */
enum sts_mode sts_policy_for(struct sts *s, const char *domain, struct sts_policy *p, char *note,
			     size_t notelen);

#endif
