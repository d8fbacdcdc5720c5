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
#include <pthread.h>
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

/* One record's lookup, filled by lookup_record() on a thread of its own. */
struct record_check {
	const struct dns_resolver *dns;
	const struct domain_record *r;
	enum dns_status st;
	int matches;
	int nseen;
	struct buf seen; /* JSON array members: what was found */
};

/* Looks c->r up and fills the rest of c (a pthread start routine: the
 * lookups of one domain run at once, so a verify takes one lookup's time,
 * at most the resolver's timeout, not the sum of them). */
static void *lookup_record(void *arg)
{
	struct record_check *c = arg;
	const struct domain_record *r = c->r;
	char err[256] = "";
	if (strcmp(r->type, "MX") == 0) {
		struct dns_mx_result mx;
		c->st = dns_lookup_mx(c->dns, r->name, &mx, err, sizeof(err));
		for (int i = 0; c->st == DNS_OK && !mx.implicit && i < mx.n; i++, c->nseen++) {
			char one[DNS_NAME_MAX + 16];
			snprintf(one, sizeof(one), "%d %s.", mx.mx[i].pref, mx.mx[i].host);
			buf_puts(&c->seen, c->nseen ? "," : "");
			json_str(&c->seen, one);
			c->matches |= same_mx(&mx.mx[i], r->value);
		}
		if (c->st == DNS_OK && mx.implicit)
			c->st = DNS_NODATA;
	} else {
		struct dns_txt_result *txt = xmalloc(sizeof(*txt));
		c->st = dns_lookup_txt(c->dns, r->name, txt, err, sizeof(err));
		for (int i = 0; c->st == DNS_OK && i < txt->n; i++, c->nseen++) {
			buf_puts(&c->seen, c->nseen ? "," : "");
			json_str(&c->seen, txt->rec[i]);
			c->matches |= same_txt(txt->rec[i], r->value);
		}
		free(txt);
	}
	return NULL;
}

/* Runs the n lookups at once (one thread each; inline when a thread
 * cannot be had) and waits for all of them. */
static void lookup_all(struct record_check *c, int n)
{
	pthread_t *t = xcalloc((size_t)(n ? n : 1), sizeof(*t));
	char *started = xcalloc((size_t)(n ? n : 1), 1);
	for (int i = 0; i < n; i++)
		started[i] = pthread_create(&t[i], NULL, lookup_record, &c[i]) == 0;
	for (int i = 0; i < n; i++) {
		if (started[i])
			pthread_join(t[i], NULL);
		else
			lookup_record(&c[i]);
	}
	free(started);
	free(t);
}

/* Appends c's check to the array in b. */
static void append_check(struct buf *b, const struct record_check *c)
{
	const struct domain_record *r = c->r;
	buf_puts(b, b->len > 1 ? ",{\"type\":" : "{\"type\":");
	json_str(b, r->type);
	buf_puts(b, ",\"name\":");
	json_str(b, r->name);
	buf_puts(b, ",\"value\":");
	json_str(b, r->value);
	buf_puts(b, ",\"purpose\":");
	json_str(b, r->purpose);
	buf_printf(b, ",\"found\":%s,\"matches\":%s,\"seen\":[%s]", c->st == DNS_OK && c->nseen > 0 ? "true" : "false",
		   c->matches ? "true" : "false", buf_cstr(&c->seen));
	if (c->st != DNS_OK)
		buf_printf(b, ",\"lookup\":\"%s\"", dns_status_name(c->st));
	buf_putc(b, '}');
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
	struct buf checks;
	buf_init(&checks, CHECKS_JSON_MAX);
	buf_putc(&checks, '[');
	int ok = 1, pending_ok = 1, pending = 0, doubt = 0;
	struct buf promote; /* the pending keys' selectors, comma-separated */
	buf_init(&promote, 1024);
	enum domain_verify_status vs = DOMAIN_VERIFY_DONE;
	struct record_check *rc_all = xcalloc((size_t)(c.rs.n ? c.rs.n : 1), sizeof(*rc_all));
	for (int i = 0; i < c.rs.n; i++) {
		rc_all[i].dns = p->dns;
		rc_all[i].r = &c.rs.r[i];
		buf_init(&rc_all[i].seen, CHECKS_JSON_MAX);
	}
	if (p->cancelled && p->cancelled(p->cancel_arg))
		vs = DOMAIN_VERIFY_CANCELLED;
	else
		lookup_all(rc_all, c.rs.n);
	if (vs == DOMAIN_VERIFY_DONE && p->cancelled && p->cancelled(p->cancel_arg))
		vs = DOMAIN_VERIFY_CANCELLED;
	for (int i = 0; vs == DOMAIN_VERIFY_DONE && i < c.rs.n; i++) {
		const struct domain_record *r = &c.rs.r[i];
		append_check(&checks, &rc_all[i]);
		int m = rc_all[i].matches;
		enum dns_status st = rc_all[i].st;
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
	for (int i = 0; i < c.rs.n; i++)
		buf_cleanup(&rc_all[i].seen);
	free(rc_all);
	buf_putc(&checks, ']');
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
