/*
 * domain_cache.h - the sending domains as the send path sees them: which
 * from domains are registered, their status, and a DKIM signer for each
 * active key, decrypted once (docs/domains.md "Signing").
 *
 * The cache holds an immutable snapshot of db_domain_signing_keys(),
 * reloaded when it is older than DOMAIN_CACHE_TTL seconds or after
 * domain_cache_invalidate() (called by api/domains.c on every change this
 * process makes; another process sees a change within the TTL).  A lookup
 * takes a reference on the snapshot, so a reload never frees signers a
 * request still signs with; domain_match_release() gives it back.
 *
 * The master key (master_key_file) is kept here too: it opens the sealed
 * private keys, and api/domains.c seals new ones with it.  Thread-safe.
 */
#ifndef MF_API_DOMAIN_CACHE_H
#define MF_API_DOMAIN_CACHE_H

#include <stddef.h>

#include "mail/dkim_keys.h"
#include "util/config.h"

#define DOMAIN_CACHE_TTL 10 /* seconds */

struct db_pool;
struct dkim_signer;
struct domain_cache;
struct domain_snapshot;

/* What a lookup found for a from domain. */
struct domain_match {
	struct domain_snapshot *snap;            /* the reference held */
	const char *domain;                      /* the registered domain that matched; NULL: none */
	const char *status;                      /* its status, when matched */
	const struct dkim_signer *signers[2];    /* its active keys (Ed25519 first); NULL when none */
};

/* master_key NULL: no master_key_file (domains cannot be added; none sign). */
struct domain_cache *domain_cache_new(struct db_pool *pool, const unsigned char *master_key);
void domain_cache_free(struct domain_cache *c);
/* The master key, or NULL when none is configured. */
const unsigned char *domain_cache_master_key(const struct domain_cache *c);
void domain_cache_invalidate(struct domain_cache *c);

/* Finds from_domain (lower case) or its closest registered parent.
 * Returns 0 (m->domain NULL when none is registered), or -1 with err set
 * when the domains cannot be loaded and no earlier snapshot exists.
 * Release m with domain_match_release() after a 0. */
int domain_cache_lookup(struct domain_cache *c, const char *from_domain, struct domain_match *m, char *err,
			size_t errlen);
void domain_match_release(struct domain_match *m);

/* What sender_policy says of a from domain (docs/domains.md); the API's
 * send path and, through cli/cmd_serve.c, SMTP submission ask it. */
enum domain_sender {
	DOMAIN_SENDER_OK,             /* m holds the lookup (release it) */
	DOMAIN_SENDER_NOT_REGISTERED, /* known: neither it nor a parent is registered */
	DOMAIN_SENDER_NOT_VERIFIED,   /* verified: the closest registered one is not verified, or none is */
	DOMAIN_SENDER_UNAVAILABLE,    /* the domains cannot be loaded (err set) */
};
/* domain_cache_lookup() and the policy's verdict; only after
 * DOMAIN_SENDER_OK does m hold a reference. */
enum domain_sender domain_cache_sender(struct domain_cache *c, enum sender_policy policy, const char *from_domain,
				       struct domain_match *m, char *err, size_t errlen);

#endif
