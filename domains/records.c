/*
 * records.c - a sending domain's DNS records and key generations (see
 * records.h).
 */
#include "domains/records.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mail/dkim_keys.h"
#include "util/base64.h"
#include "util/config.h"
#include "util/rand.h"
#include "util/xmalloc.h"

static void add(struct domain_records *rs, const char *type, const char *purpose, char *name, char *value)
{
	rs->r[rs->n++] = (struct domain_record){ .type = type, .purpose = purpose, .name = name, .value = value };
}

void domain_records_build(const struct config *cfg, const struct db_domain *d, struct domain_records *out)
{
	out->n = 0;
	out->r = xcalloc((size_t)d->nkeys + 4, sizeof(*out->r));
	for (int i = 0; i < d->nkeys; i++) {
		const struct db_domain_key *k = &d->keys[i];
		/* RFC 6376 §3.6.1; k=ed25519 RFC 8463 §4. */
		add(out, "TXT", "dkim", xasprintf("%s._domainkey.%s", k->selector, d->domain),
		    xasprintf("v=DKIM1; k=%s; p=%s", k->algorithm, k->public_key));
		out->r[out->n - 1].selector = xstrdup(k->selector);
		out->r[out->n - 1].key_state = xstrdup(k->state);
	}
	/* SPF (RFC 7208) for the domain, which is the envelope sender when no
	 * bounce_domain is set: the relay's host may send for it. */
	add(out, "TXT", "spf", xstrdup(d->domain), xasprintf("v=spf1 a:%s ~all", cfg->helo_name));
	/* DMARC (RFC 7489 §6.3): monitoring only; the rua address is a
	 * placeholder the operator replaces with a mailbox that takes reports. */
	add(out, "TXT", "dmarc", xasprintf("_dmarc.%s", d->domain),
	    xasprintf("v=DMARC1; p=none; rua=mailto:dmarc-reports@%s", d->domain));
	if (cfg->bounce_domain && *cfg->bounce_domain) {
		/* The VERP return path bounce+TOKEN@bounce_domain: its MX brings
		 * DSNs to the bounce listener, its SPF lets this host use it as
		 * MAIL FROM (RFC 7208 §2.4).  SPF aligns with the From domain
		 * (RFC 7489 §3.1.2, relaxed) when bounce_domain is under it. */
		add(out, "MX", "return_path", xstrdup(cfg->bounce_domain), xasprintf("10 %s.", cfg->helo_name));
		add(out, "TXT", "return_path", xstrdup(cfg->bounce_domain),
		    xasprintf("v=spf1 a:%s ~all", cfg->helo_name));
	}
}

void domain_records_cleanup(struct domain_records *rs)
{
	for (int i = 0; i < rs->n; i++) {
		free(rs->r[i].name);
		free(rs->r[i].value);
		free(rs->r[i].selector);
		free(rs->r[i].key_state);
	}
	free(rs->r);
	rs->r = NULL;
	rs->n = 0;
}

int domain_keys_make(const unsigned char *mk, const char *domain, struct domain_new_keys *nk, char *err,
		     size_t errlen)
{
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d", &tm);
	unsigned char rnd[4];
	rand_id_bytes(rnd, sizeof(rnd));
	static const enum dkim_key_alg algs[2] = { DKIM_KEY_ED25519, DKIM_KEY_RSA };
	for (int i = 0; i < 2; i++) {
		snprintf(nk->selector[i], sizeof(nk->selector[i]), "mf%s-%02x%02x%02x%02x-%c", stamp, rnd[0], rnd[1],
			 rnd[2], rnd[3], i == 0 ? 'e' : 'r');
		buf_init(&nk->pub[i], 4096);
		buf_init(&nk->sealed_b64[i], 8192);
	}
	int rc = 0;
	for (int i = 0; i < 2 && rc == 0; i++) {
		struct buf der, sealed;
		buf_init(&der, 4096);
		buf_init(&sealed, 4096);
		char aad[512];
		snprintf(aad, sizeof(aad), "%s/%s", domain, nk->selector[i]);
		rc = dkim_key_generate(algs[i], &der, &nk->pub[i], err, errlen);
		rc = rc || dkim_key_seal(mk, aad, der.data, der.len, &sealed, err, errlen);
		if (rc == 0 && base64_encode_buf(&nk->sealed_b64[i], sealed.data, sealed.len, 0)) {
			snprintf(err, errlen, "sealed key too large");
			rc = -1;
		}
		memset(der.data, 0, der.len);
		buf_cleanup(&der);
		buf_cleanup(&sealed);
		nk->db[i] = (struct db_new_key){ nk->selector[i], dkim_key_alg_name(algs[i]), buf_cstr(&nk->pub[i]),
						 buf_cstr(&nk->sealed_b64[i]) };
	}
	return rc;
}

void domain_new_keys_cleanup(struct domain_new_keys *nk)
{
	for (int i = 0; i < 2; i++) {
		buf_cleanup(&nk->pub[i]);
		buf_cleanup(&nk->sealed_b64[i]);
	}
}
