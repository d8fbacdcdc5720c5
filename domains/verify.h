/*
 * verify.h - a sending domain's verification (docs/domains.md
 * "Verification"), shared by POST /v1/domains/{domain}/verify
 * (api/domains.c) and the daily re-check (queue/domain_check.h).
 *
 * domain_verify() looks every record of domain_records_build() up
 * through the resolver, all at once (a thread per record: a verify takes
 * the time of its slowest lookup, at most the resolver's timeout, 5 s, not
 * their sum), and stores the result with
 * db_domain_checked(): the per-record checks (found, matches, seen, and
 * lookup when the lookup failed) and the verdict.  The domain is verified
 * when the DKIM records of its active keys and the return path's records
 * match; a rotation's pending keys take over when theirs match too (those
 * looked up: a rotation meanwhile promotes nothing).  SPF
 * and DMARC are checked and reported but decide nothing: they are
 * suggestions the operator may have merged with records of their own.
 *
 * keep_on_doubt (the re-check): when the lookup of a deciding record
 * failed without an answer (servfail, timeout), nothing is stored and
 * the status stays: a resolver outage is not a record that disappeared.
 * The API's verify stores what it saw whatever it was.
 */
#ifndef MF_DOMAINS_VERIFY_H
#define MF_DOMAINS_VERIFY_H

#include <stddef.h>

struct config;
struct db_pool;
struct dns_resolver;

/* Days the keys a verified rotation replaced stay published (docs/domains.md). */
#define DOMAIN_RETIRE_GRACE_DAYS 7

struct domain_verify_params {
	const struct config *cfg;      /* helo_name, bounce_domain: the records */
	struct db_pool *pool;
	const struct dns_resolver *dns;
	int keep_on_doubt;
	/* Asked before and after the lookups (may be NULL): nonzero stops
	 * the check, storing nothing. */
	int (*cancelled)(void *arg);
	void *cancel_arg;
};

enum domain_verify_status {
	DOMAIN_VERIFY_DONE,         /* looked up and stored: see the verdict */
	DOMAIN_VERIFY_NOT_FOUND,    /* no such domain registered */
	DOMAIN_VERIFY_INCONCLUSIVE, /* keep_on_doubt and a deciding lookup failed: nothing stored */
	DOMAIN_VERIFY_CANCELLED,    /* cancelled() said so: nothing stored */
	DOMAIN_VERIFY_DB_ERROR,     /* the database failed: err */
};

struct domain_verdict {
	int verified;      /* the new status is verified (else failed) */
	int changed;       /* the status changed (an event was written) */
	int promoted;      /* a rotation's pending keys became active */
	char first_bad[300]; /* the first deciding record that did not match, "" when none */
};

/* domain is registered form (lower case, no final dot). */
enum domain_verify_status domain_verify(const struct domain_verify_params *p, const char *domain,
					struct domain_verdict *out, char *err, size_t errlen);

#endif
