/*
 * sts_cache.h - the MTA-STS policy cache in PostgreSQL (table
 * mta_sts_policies, migration 0027; RFC 8461 §5.1): one row per policy
 * domain, so that every delivery process, and one restarted, uses a
 * policy fetched once until its max_age runs out.  relay/mta_sts.c is
 * the caller and decides when to use, fetch or keep a policy; this file
 * only stores.  Expiry is judged by the database's clock, so processes
 * on several machines agree.
 *
 * Domains are passed in lower case without a final dot.  Rows passed to
 * callbacks are borrowed for the call.  Functions return what they say,
 * -1 with err set on a database failure.
 */
#ifndef MF_DB_STS_CACHE_H
#define MF_DB_STS_CACHE_H

#include <stddef.h>

struct db_pool;

struct db_sts_row {
	const char *policy_id; /* the _mta-sts TXT id it was fetched under (§3.1) */
	const char *mode;      /* "enforce", "testing" or "none" */
	long max_age;          /* seconds (§3.2) */
	const char *mx;        /* the mx patterns, one per line ("" for none) */
	long ttl;              /* read: seconds until it expires (> 0); put: ignored */
};

typedef void (*db_sts_fn)(const struct db_sts_row *row, void *arg);

/* The domain's policy when one is stored and has not expired: 1 (fn
 * called), 0 none. */
int db_sts_get(struct db_pool *pool, const char *domain, db_sts_fn fn, void *arg, char *err, size_t errlen);
/* Stores a policy just fetched, replacing the domain's row: fetched_at
 * now, expires_at now + max_age.  0, or -1. */
int db_sts_put(struct db_pool *pool, const char *domain, const struct db_sts_row *row, char *err, size_t errlen);

#endif
