/*
 * records.h - what a sending domain publishes and how its keys are made
 * (docs/domains.md "Records", "Adding a domain", "Rotation"); shared by
 * the API (api/domains.c) and the verification (domains/verify.h).
 *
 * domain_records_build() lists every DNS record the operator publishes
 * for a domain as stored (db/domains.h): a DKIM TXT per key not retired,
 * the SPF and DMARC suggestions, and the return path's MX and TXT when
 * bounce_domain is set.  The records own their strings: release them
 * with domain_records_cleanup().
 *
 * domain_keys_make() makes a generation's Ed25519 and RSA-2048 key pairs
 * and seals their private keys; the struct domain_new_keys holds them
 * (and the struct db_new_key views db_domain_create()/db_domain_rotate()
 * take) until domain_new_keys_cleanup().
 */
#ifndef MF_DOMAINS_RECORDS_H
#define MF_DOMAINS_RECORDS_H

#include <stddef.h>

#include "db/domains.h"
#include "util/buf.h"

struct config;

struct domain_record {
	const char *type;    /* "TXT" or "MX" */
	const char *purpose; /* "dkim", "spf", "dmarc" or "return_path" */
	char *name;
	char *value;
	char *selector;      /* dkim: the key's selector, else NULL */
	char *key_state;     /* dkim: pending, active or retiring, else NULL */
};

struct domain_records {
	int n;
	struct domain_record *r;
};

void domain_records_build(const struct config *cfg, const struct db_domain *d, struct domain_records *out);
void domain_records_cleanup(struct domain_records *rs);

/* A generation's two key pairs (Ed25519 first), sealed. */
struct domain_new_keys {
	char selector[2][64];
	struct buf pub[2], sealed_b64[2];
	struct db_new_key db[2]; /* views into the above */
};

/*
 * Makes the Ed25519 and RSA-2048 pair of a generation and seals the
 * private keys for domain under the master key mk.  Selectors are
 * mf<UTC yyyymmdd>-<8 random hex>-e and ...-r: a generation's date for
 * the operator, random so that every rotation has new ones.  0, or -1
 * with err set; nk needs domain_new_keys_cleanup() either way.
 */
int domain_keys_make(const unsigned char *mk, const char *domain, struct domain_new_keys *nk, char *err,
		     size_t errlen);
void domain_new_keys_cleanup(struct domain_new_keys *nk);

#endif
