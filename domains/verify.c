/*
 * verify.c - a sending domain's verification (see verify.h).
 *
 * The checks are stored as a JSON array (domains.checks, and the data of
 * the domain.* events), written here with util/json_escape.h: one object
 * per record, {"type","name","value","purpose","found","matches","seen"
 * [,"lookup"]}.
 */
#include "domains/verify.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "db/domains.h"
#include "dns/dns.h"
#include "domains/records.h"
#include "util/buf.h"
#include "util/json_escape.h"
#include "util/xmalloc.h"

/* The checks of one domain: every record's lookup, at most this large. */
#define CHECKS_JSON_MAX (1024 * 1024)

/* s without white space and a final ';', for comparing TXT values that
 * differ only in spacing (RFC 6376 §3.2: tag lists allow FWS). */
static void squeeze(const char *s, char *out, size_t outsz)
{
	size_t o = 0;
	for (; *s && o + 1 < outsz; s++)
		if (!isspace((unsigned char)*s))
			out[o++] = *s;
	while (o > 0 && out[o - 1] == ';')
		o--;
	out[o] = '\0';
}

static int same_txt(const char *a, const char *b)
{
	static _Thread_local char x[DNS_TXT_LEN_MAX + 1], y[DNS_TXT_LEN_MAX + 1];
	squeeze(a, x, sizeof(x));
	squeeze(b, y, sizeof(y));
	return strcmp(x, y) == 0;
}

/* "10 host." and "10 host" name the same MX. */
static int same_mx(const struct dns_mx *mx, const char *want)
{
	char host[DNS_NAME_MAX + 2];
	int pref = -1;
	if (sscanf(want, "%d %256s", &pref, host) != 2)
		return 0;
	size_t n = strlen(host);
	if (n > 0 && host[n - 1] == '.')
		host[n - 1] = '\0';
	return strcasecmp(mx->host, host) == 0;
}

/* A JSON string; bytes that are not UTF-8 (a TXT record may hold any)
 * become U+FFFD, which jsonb accepts. */
static void json_str(struct buf *b, const char *s)
{
	json_escape(b, s, strlen(s), JSON_ESC_UTF8);
}

/* Looks one record up and appends its check to b; returns matches, with
 * *st the lookup's outcome. */
static int check_record(const struct dns_resolver *dns, const struct domain_record *r, struct dns_txt_result *txt,
			struct buf *b, enum dns_status *st)
{
	struct buf seen;
	buf_init(&seen, CHECKS_JSON_MAX);
	char err[256] = "";
	int matches = 0, nseen = 0;
	if (strcmp(r->type, "MX") == 0) {
		struct dns_mx_result mx;
		*st = dns_lookup_mx(dns, r->name, &mx, err, sizeof(err));
		for (int i = 0; *st == DNS_OK && !mx.implicit && i < mx.n; i++, nseen++) {
			char one[DNS_NAME_MAX + 16];
			snprintf(one, sizeof(one), "%d %s.", mx.mx[i].pref, mx.mx[i].host);
			buf_puts(&seen, nseen ? "," : "");
			json_str(&seen, one);
			matches |= same_mx(&mx.mx[i], r->value);
		}
		if (*st == DNS_OK && mx.implicit)
			*st = DNS_NODATA;
	} else {
		*st = dns_lookup_txt(dns, r->name, txt, err, sizeof(err));
		for (int i = 0; *st == DNS_OK && i < txt->n; i++, nseen++) {
			buf_puts(&seen, nseen ? "," : "");
			json_str(&seen, txt->rec[i]);
			matches |= same_txt(txt->rec[i], r->value);
		}
	}
	buf_puts(b, b->len > 1 ? ",{\"type\":" : "{\"type\":");
	json_str(b, r->type);
	buf_puts(b, ",\"name\":");
	json_str(b, r->name);
	buf_puts(b, ",\"value\":");
	json_str(b, r->value);
	buf_puts(b, ",\"purpose\":");
	json_str(b, r->purpose);
	buf_printf(b, ",\"found\":%s,\"matches\":%s,\"seen\":[%s]", *st == DNS_OK && nseen > 0 ? "true" : "false",
		   matches ? "true" : "false", buf_cstr(&seen));
	if (*st != DNS_OK)
		buf_printf(b, ",\"lookup\":\"%s\"", dns_status_name(*st));
	buf_putc(b, '}');
	buf_cleanup(&seen);
	return matches;
}

struct records_ctx {
	const struct config *cfg;
	struct domain_records rs;
};

/* db_domain_fn: the domain's records, copied out of the borrowed row. */
static void copy_records(const struct db_domain *d, void *arg)
{
	struct records_ctx *c = arg;
	domain_records_build(c->cfg, d, &c->rs);
}

enum domain_verify_status domain_verify(const struct domain_verify_params *p, const char *domain,
					struct domain_verdict *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	struct records_ctx c = { p->cfg, { 0, NULL } };
	int rc = db_domain_get(p->pool, domain, copy_records, &c, err, errlen);
	if (rc <= 0)
		return rc < 0 ? DOMAIN_VERIFY_DB_ERROR : DOMAIN_VERIFY_NOT_FOUND;
	struct dns_txt_result *txt = xmalloc(sizeof(*txt));
	struct buf checks;
	buf_init(&checks, CHECKS_JSON_MAX);
	buf_putc(&checks, '[');
	int ok = 1, pending_ok = 1, pending = 0, doubt = 0;
	struct buf promote; /* the pending keys' selectors, comma-separated */
	buf_init(&promote, 1024);
	enum domain_verify_status vs = DOMAIN_VERIFY_DONE;
	for (int i = 0; i < c.rs.n; i++) {
		const struct domain_record *r = &c.rs.r[i];
		if (p->cancelled && p->cancelled(p->cancel_arg)) {
			vs = DOMAIN_VERIFY_CANCELLED;
			break;
		}
		enum dns_status st;
		int m = check_record(p->dns, r, txt, &checks, &st);
		int is_dkim = strcmp(r->purpose, "dkim") == 0;
		if (is_dkim && r->key_state && strcmp(r->key_state, "pending") == 0) {
			pending = 1;
			pending_ok &= m;
			buf_printf(&promote, "%s%s", promote.len ? "," : "", r->selector);
		} else if (is_dkim || strcmp(r->purpose, "return_path") == 0) {
			ok &= m;
			doubt |= st == DNS_SERVFAIL || st == DNS_TIMEOUT;
			if (!m && !*out->first_bad)
				snprintf(out->first_bad, sizeof(out->first_bad), "%s %s", r->type, r->name);
		}
	}
	buf_putc(&checks, ']');
	free(txt);
	domain_records_cleanup(&c.rs);
	if (vs == DOMAIN_VERIFY_DONE && p->keep_on_doubt && doubt)
		vs = DOMAIN_VERIFY_INCONCLUSIVE;
	if (vs == DOMAIN_VERIFY_DONE) {
		out->verified = ok;
		rc = db_domain_checked(p->pool, domain, ok, buf_cstr(&checks),
				       ok && pending && pending_ok ? buf_cstr(&promote) : NULL, DOMAIN_RETIRE_GRACE_DAYS,
				       &out->promoted, err, errlen);
		if (rc < 0)
			vs = DOMAIN_VERIFY_DB_ERROR;
		out->changed = rc == 1;
	}
	buf_cleanup(&checks);
	buf_cleanup(&promote);
	return vs;
}
