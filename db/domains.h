/*
 * domains.h - sending domains and their DKIM keys (tables domains and
 * domain_keys, migration 0024; docs/domains.md).
 *
 * Domain names are stored in lower case without a final dot; callers
 * pass them so (api/domains.c checks and lowers them).  Private keys
 * arrive and leave here sealed (mail/dkim_keys.h), as base64 text: db/
 * never sees a key in the clear.  Rows passed to callbacks are borrowed
 * for the call.  Functions return what they say, -1 with err set on a
 * database failure.
 */
#ifndef MF_DB_DOMAINS_H
#define MF_DB_DOMAINS_H

#include <stddef.h>

struct db_pool;

/* A key to store: the sealed private key as base64. */
struct db_new_key {
	const char *selector;
	const char *algorithm;   /* "ed25519" or "rsa" */
	const char *public_key;  /* the DKIM p= value */
	const char *sealed_b64;
};

struct db_domain_key {
	const char *selector;
	const char *algorithm;
	const char *public_key;
	const char *state;        /* pending, active, retiring (retired keys are not listed) */
	const char *created_at;   /* RFC 3339 UTC */
	const char *retire_after; /* "" when none */
};

struct db_domain {
	const char *domain;
	const char *status;       /* pending, verified, failed */
	const char *created_at;
	const char *verified_at;  /* "" when never */
	const char *checked_at;   /* "" when never */
	const char *checks;       /* the last check's JSON array, "" when none */
	int nkeys;
	const struct db_domain_key *keys; /* oldest first */
};

typedef void (*db_domain_fn)(const struct db_domain *d, void *arg);

/* Registers domain with its first keys, which sign at once (state
 * active).  1 created, 0 already registered (nothing changed). */
int db_domain_create(struct db_pool *pool, const char *domain, const struct db_new_key *keys, int nkeys,
		     char *err, size_t errlen);
/* 1 found (fn called), 0 not registered. */
int db_domain_get(struct db_pool *pool, const char *domain, db_domain_fn fn, void *arg, char *err, size_t errlen);
/* Calls fn for every domain in name order; the number of domains. */
int db_domain_list(struct db_pool *pool, db_domain_fn fn, void *arg, char *err, size_t errlen);
/* 1 removed (with its keys), 0 not registered. */
int db_domain_delete(struct db_pool *pool, const char *domain, char *err, size_t errlen);
/* Adds a rotation's keys (state pending: published, not yet signing); a
 * previous rotation's keys still pending are retired.  1 done, 0 not
 * registered, 2 a selector already exists (nothing changed). */
int db_domain_rotate(struct db_pool *pool, const char *domain, const struct db_new_key *keys, int nkeys,
		     char *err, size_t errlen);

/*
 * Stores a verification's results (checks: a JSON array) and its verdict
 * in one transaction: verified makes the domain verified (verified_at set
 * the first time), else failed.  promote (with verified; NULL or "" for
 * none): the selectors, comma-separated, of the pending keys that were
 * found published; they become active and the active ones retiring for
 * grace_days, unless the pending keys are no longer exactly those (a
 * rotation while the records were looked up): then nothing is promoted.  Retiring
 * keys past retire_after become retired.  An event domain.verified is
 * written when the domain becomes verified, domain.verification_failed
 * when it becomes failed.  1 when the status changed, 0 when not, -1;
 * *promoted (may be NULL) says whether keys were promoted.
 */
int db_domain_checked(struct db_pool *pool, const char *domain, int verified, const char *checks,
		      const char *promote, int grace_days, int *promoted, char *err, size_t errlen);

/*
 * The re-check's claim (queue/domain_check.h): up to limit verified
 * domains whose checked_at is older than interval_secs (or unset), their
 * checked_at set to now in the same statement, so that another process
 * polling meanwhile does not take them in this period (rows another
 * claim holds are skipped, FOR UPDATE SKIP LOCKED).  fn gets each name.
 * The number claimed, or -1.
 */
int db_domain_claim_recheck(struct db_pool *pool, long interval_secs, int limit, void (*fn)(const char *domain, void *arg),
			    void *arg, char *err, size_t errlen);

/* Keys in state retiring whose retire_after has passed become retired,
 * in every domain; fn (may be NULL) gets each domain and selector.  The
 * number retired, or -1. */
int db_domain_keys_retire(struct db_pool *pool, void (*fn)(const char *domain, const char *selector, void *arg),
			  void *arg, char *err, size_t errlen);

/* What the signing cache loads (api/domain_cache.h): every domain with
 * its status, and each of its active keys (sealed, base64); a domain
 * without active keys comes once with selector NULL. */
typedef void (*db_signing_fn)(const char *domain, const char *status, const char *selector,
			      const char *algorithm, const char *sealed_b64, void *arg);
int db_domain_signing_keys(struct db_pool *pool, db_signing_fn fn, void *arg, char *err, size_t errlen);

#endif
