/*
 * domains.c - the sending domain endpoints (handlers.h; docs/domains.md):
 *
 *   POST   /v1/domains {"domain"}             (admin) 201, keys generated
 *   GET    /v1/domains                        (admin) 200 {"data":[...]}
 *   GET    /v1/domains/{domain}               (admin) 200
 *   DELETE /v1/domains/{domain}               (admin) 204
 *   POST   /v1/domains/{domain}/rotate        (admin) 200, new keys pending
 *   POST   /v1/domains/{domain}/verify        (admin) 200, records looked up
 *
 * A domain is answered as {"domain","status","created_at","verified_at",
 * "records":[{"type","name","value","purpose"}],"keys":[...]}: records are
 * every DNS record to publish (DKIM TXT per key not retired, SPF, DMARC,
 * and the return path's when bounce_domain is set).  No answer ever holds
 * a private key: they exist in the clear only inside mail/dkim_keys.c and
 * the signers of api/domain_cache.c.
 */
#include <ctype.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "api/domain_cache.h"
#include "api/handlers.h"
#include "api/json_in.h"
#include "db/domains.h"
#include "dns/dns.h"
#include "mail/dkim_keys.h"
#include "util/base64.h"
#include "util/config.h"
#include "util/limits.h"
#include "util/log.h"
#include "util/rand.h"
#include "util/xmalloc.h"

/* A DKIM TXT value for a key (RFC 6376 §3.6.1; k=ed25519 RFC 8463 §4). */
static char *dkim_txt(const struct db_domain_key *k)
{
	return xasprintf("v=DKIM1; k=%s; p=%s", k->algorithm, k->public_key);
}

static json_t *record(const char *type, const char *name, const char *value, const char *purpose)
{
	return json_pack("{s:s, s:s, s:s, s:s}", "type", type, "name", name, "value", value, "purpose", purpose);
}

/* Every record the operator publishes for d (docs/domains.md "Records"). */
static json_t *records_json(const struct config *cfg, const struct db_domain *d)
{
	json_t *a = json_array();
	for (int i = 0; i < d->nkeys; i++) {
		const struct db_domain_key *k = &d->keys[i];
		char *name = xasprintf("%s._domainkey.%s", k->selector, d->domain);
		char *value = dkim_txt(k);
		json_t *r = record("TXT", name, value, "dkim");
		json_object_set_new(r, "selector", json_string(k->selector));
		json_object_set_new(r, "key_state", json_string(k->state));
		json_array_append_new(a, r);
		free(name);
		free(value);
	}
	/* SPF (RFC 7208) for the domain, which is the envelope sender when no
	 * bounce_domain is set: the relay's host may send for it. */
	char *spf = xasprintf("v=spf1 a:%s ~all", cfg->helo_name);
	json_array_append_new(a, record("TXT", d->domain, spf, "spf"));
	/* DMARC (RFC 7489 §6.3): monitoring only; the rua address is a
	 * placeholder the operator replaces with a mailbox that takes reports. */
	char *dn = xasprintf("_dmarc.%s", d->domain);
	char *dv = xasprintf("v=DMARC1; p=none; rua=mailto:dmarc-reports@%s", d->domain);
	json_array_append_new(a, record("TXT", dn, dv, "dmarc"));
	free(dn);
	free(dv);
	if (cfg->bounce_domain && *cfg->bounce_domain) {
		/* The VERP return path bounce+TOKEN@bounce_domain: its MX brings
		 * DSNs to the bounce listener, its SPF lets this host use it as
		 * MAIL FROM (RFC 7208 §2.4).  SPF aligns with the From domain
		 * (RFC 7489 §3.1.2, relaxed) when bounce_domain is under it. */
		char *mx = xasprintf("10 %s.", cfg->helo_name);
		json_array_append_new(a, record("MX", cfg->bounce_domain, mx, "return_path"));
		json_array_append_new(a, record("TXT", cfg->bounce_domain, spf, "return_path"));
		free(mx);
	}
	free(spf);
	return a;
}

static json_t *domain_json(const struct config *cfg, const struct db_domain *d)
{
	json_t *keys = json_array();
	for (int i = 0; i < d->nkeys; i++) {
		const struct db_domain_key *k = &d->keys[i];
		json_array_append_new(keys, json_pack("{s:s, s:s, s:s, s:s, s:s?}", "selector", k->selector,
						      "algorithm", k->algorithm, "state", k->state, "created_at",
						      k->created_at, "retire_after", *k->retire_after ? k->retire_after : NULL));
	}
	json_t *checks = NULL;
	if (*d->checks) {
		json_error_t je;
		checks = json_loads(d->checks, 0, &je);
	}
	return json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:o, s:o, s:o}", "domain", d->domain, "status", d->status,
			 "created_at", d->created_at, "verified_at", *d->verified_at ? d->verified_at : NULL,
			 "checked_at", *d->checked_at ? d->checked_at : NULL, "records", records_json(cfg, d), "keys",
			 keys, "checks", checks ? checks : json_null());
}

struct collect {
	const struct config *cfg;
	json_t *out; /* an array (list) or the one object (get) */
};

static void collect_list(const struct db_domain *d, void *arg)
{
	struct collect *c = arg;
	json_array_append_new(c->out, domain_json(c->cfg, d));
}

static void collect_one(const struct db_domain *d, void *arg)
{
	struct collect *c = arg;
	json_decref(c->out);
	c->out = domain_json(c->cfg, d);
}

static void db_fail(struct api_req *req, const char *op, const char *err)
{
	log_error_limited("event=db_error op=%s error=%s", op, err);
	api_problem(req, 503, "unavailable", "the database is not available");
}

/*
 * A domain name we register (RFC 1035 §2.3.1, RFC 5890 A-labels): two or
 * more labels of letters, digits and hyphens, 1-63 octets each, not
 * starting or ending with a hyphen, at most 253 octets; one final dot is
 * dropped and letters are lowered into out.  0, or -1 with why set.
 */
static int domain_normalize(const char *in, char *out, size_t outsz, const char **why)
{
	size_t n = strlen(in);
	if (n > 0 && in[n - 1] == '.')
		n--;
	if (n == 0 || n > 253 || n >= outsz) {
		*why = "must be a domain name of 1 to 253 characters";
		return -1;
	}
	int labels = 0;
	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		char ch = i < n ? in[i] : '.';
		if (ch == '.') {
			size_t len = i - start;
			if (len == 0 || len > 63) {
				*why = "each label of the domain must have 1 to 63 characters";
				return -1;
			}
			if (in[start] == '-' || in[i - 1] == '-') {
				*why = "a label of the domain may not start or end with a hyphen";
				return -1;
			}
			labels++;
			start = i + 1;
		} else if (!isalnum((unsigned char)ch) && ch != '-') {
			*why = "a domain name holds only letters, digits, hyphens and dots (IDNs as A-labels, xn--)";
			return -1;
		}
		if (i < n)
			out[i] = (char)tolower((unsigned char)ch);
	}
	out[n] = '\0';
	if (labels < 2) {
		*why = "must be a fully qualified domain name, e.g. shop.example.com";
		return -1;
	}
	return 0;
}

/* One key pair of a new generation: its selector and sealed key. */
struct new_key {
	char selector[64];
	struct buf pub, sealed_b64;
};

/*
 * Makes the Ed25519 and RSA-2048 pair of a generation and seals the
 * private keys for domain.  Selectors are mf<UTC yyyymmdd>-<8 random hex>-e
 * and ...-r: a generation's date for the operator, random so that every
 * rotation has new ones (a repeat is refused by the unique constraint).
 * 0, or -1 with err set.
 */
static int make_keys(const unsigned char *mk, const char *domain, struct new_key nk[2], struct db_new_key dk[2],
		     char *err, size_t errlen)
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
		snprintf(nk[i].selector, sizeof(nk[i].selector), "mf%s-%02x%02x%02x%02x-%c", stamp, rnd[0], rnd[1],
			 rnd[2], rnd[3], i == 0 ? 'e' : 'r');
		buf_init(&nk[i].pub, 4096);
		buf_init(&nk[i].sealed_b64, 8192);
	}
	int rc = 0;
	for (int i = 0; i < 2 && rc == 0; i++) {
		struct buf der, sealed;
		buf_init(&der, 4096);
		buf_init(&sealed, 4096);
		char aad[512];
		snprintf(aad, sizeof(aad), "%s/%s", domain, nk[i].selector);
		rc = dkim_key_generate(algs[i], &der, &nk[i].pub, err, errlen);
		rc = rc || dkim_key_seal(mk, aad, der.data, der.len, &sealed, err, errlen);
		if (rc == 0 && base64_encode_buf(&nk[i].sealed_b64, sealed.data, sealed.len, 0)) {
			snprintf(err, errlen, "sealed key too large");
			rc = -1;
		}
		memset(der.data, 0, der.len);
		buf_cleanup(&der);
		buf_cleanup(&sealed);
		dk[i] = (struct db_new_key){ nk[i].selector, dkim_key_alg_name(algs[i]), buf_cstr(&nk[i].pub),
					      buf_cstr(&nk[i].sealed_b64) };
	}
	return rc;
}

static void new_keys_cleanup(struct new_key nk[2])
{
	for (int i = 0; i < 2; i++) {
		buf_cleanup(&nk[i].pub);
		buf_cleanup(&nk[i].sealed_b64);
	}
}

/* Answers 503 master_key_missing when no master_key_file is configured. */
static const unsigned char *need_master_key(struct api_req *req)
{
	const unsigned char *mk = domain_cache_master_key(req->deps->domains);
	if (mk == NULL)
		api_problem(req, 503, "master_key_missing",
			    "sending domains need master_key_file (32 random bytes that encrypt their DKIM keys); "
			    "set it and restart");
	return mk;
}

/* Answers the domain as stored now, with status. */
static void answer_domain(struct api_req *req, int status, const char *domain)
{
	struct collect c = { req->deps->cfg, NULL };
	char err[512];
	int rc = db_domain_get(req->deps->pool, domain, collect_one, &c, err, sizeof(err));
	if (rc < 0)
		db_fail(req, "domain_get", err);
	else if (rc == 0)
		api_problem(req, 404, "not_found", "no such domain");
	else
		api_json(req, status, c.out), c.out = NULL;
	json_decref(c.out);
}

enum api_result api_post_domains(struct api_req *req)
{
	json_t *body = json_in_body_object(req);
	if (body == NULL)
		return API_DONE;
	json_t *errors = json_array();
	char domain[256] = "";
	const char *key, *why = NULL;
	int have = 0;
	json_t *v;
	json_object_foreach(body, key, v) {
		if (strcmp(key, "domain") != 0) {
			json_array_append_new(errors, api_field_error(key, "unknown_field", "unknown field"));
			continue;
		}
		have = 1;
		if (!json_is_string(v))
			json_array_append_new(errors, api_field_error("domain", "invalid", "must be a string"));
		else if (domain_normalize(json_string_value(v), domain, sizeof(domain), &why) < 0)
			json_array_append_new(errors, api_field_error("domain", "invalid", why));
	}
	json_decref(body);
	if (!have && json_array_size(errors) == 0)
		json_array_append_new(errors, api_field_error("domain", "required", "domain is required"));
	if (json_array_size(errors) > 0) {
		api_problem_errors(req, 422, "validation_failed", "the domain is not valid", errors);
		return API_DONE;
	}
	json_decref(errors);
	const unsigned char *mk = need_master_key(req);
	if (mk == NULL)
		return API_DONE;
	struct new_key nk[2];
	struct db_new_key dk[2];
	char err[512];
	int rc = make_keys(mk, domain, nk, dk, err, sizeof(err));
	if (rc < 0) {
		log_error("event=domain_keygen_failed domain=%s error=%s", domain, err);
		api_problem(req, 500, "internal", "the domain's keys could not be made");
	} else if ((rc = db_domain_create(req->deps->pool, domain, dk, 2, err, sizeof(err))) < 0) {
		db_fail(req, "domain_create", err);
	} else if (rc == 0) {
		api_problem_errors(req, 409, "domain_exists", "this domain is already registered",
				   json_pack("[o]", api_field_error("domain", "exists", "already registered")));
	} else {
		domain_cache_invalidate(req->deps->domains);
		log_info("event=domain_added domain=%s selectors=%s,%s key_id=%lld", domain, nk[0].selector,
			 nk[1].selector, (long long)req->api_key_id);
		char loc[300];
		snprintf(loc, sizeof(loc), "/v1/domains/%s", domain);
		api_location(req, loc);
		answer_domain(req, 201, domain);
	}
	new_keys_cleanup(nk);
	return API_DONE;
}

enum api_result api_get_domains(struct api_req *req)
{
	struct collect c = { req->deps->cfg, json_array() };
	char err[512];
	if (db_domain_list(req->deps->pool, collect_list, &c, err, sizeof(err)) < 0) {
		json_decref(c.out);
		db_fail(req, "domain_list", err);
		return API_DONE;
	}
	api_json(req, 200, json_pack("{s:o}", "data", c.out));
	return API_DONE;
}

/* The {domain} parameter, normalised; answers 404 when it cannot name one. */
static int param_domain(struct api_req *req, char *out, size_t outsz)
{
	const char *why;
	if (domain_normalize(req->params[0], out, outsz, &why) < 0) {
		api_problem(req, 404, "not_found", "no such domain");
		return -1;
	}
	return 0;
}

enum api_result api_get_domain(struct api_req *req)
{
	char domain[256];
	if (param_domain(req, domain, sizeof(domain)) == 0)
		answer_domain(req, 200, domain);
	return API_DONE;
}

enum api_result api_delete_domain(struct api_req *req)
{
	char domain[256], err[512];
	if (param_domain(req, domain, sizeof(domain)) < 0)
		return API_DONE;
	int rc = db_domain_delete(req->deps->pool, domain, err, sizeof(err));
	if (rc < 0) {
		db_fail(req, "domain_delete", err);
	} else if (rc == 0) {
		api_problem(req, 404, "not_found", "no such domain");
	} else {
		domain_cache_invalidate(req->deps->domains);
		log_info("event=domain_removed domain=%s key_id=%lld", domain, (long long)req->api_key_id);
		api_text(req, 204, NULL, "");
	}
	return API_DONE;
}

enum api_result api_post_domain_rotate(struct api_req *req)
{
	char domain[256], err[512];
	if (param_domain(req, domain, sizeof(domain)) < 0)
		return API_DONE;
	const unsigned char *mk = need_master_key(req);
	if (mk == NULL)
		return API_DONE;
	struct new_key nk[2];
	struct db_new_key dk[2];
	int rc = make_keys(mk, domain, nk, dk, err, sizeof(err));
	if (rc < 0) {
		log_error("event=domain_keygen_failed domain=%s error=%s", domain, err);
		api_problem(req, 500, "internal", "the domain's keys could not be made");
	} else if ((rc = db_domain_rotate(req->deps->pool, domain, dk, 2, err, sizeof(err))) < 0) {
		db_fail(req, "domain_rotate", err);
	} else if (rc == 0) {
		api_problem(req, 404, "not_found", "no such domain");
	} else if (rc == 2) {
		api_problem(req, 409, "selector_exists", "the new selectors exist already; rotate again");
	} else {
		domain_cache_invalidate(req->deps->domains);
		log_info("event=domain_rotated domain=%s selectors=%s,%s key_id=%lld", domain, nk[0].selector,
			 nk[1].selector, (long long)req->api_key_id);
		answer_domain(req, 200, domain);
	}
	new_keys_cleanup(nk);
	return API_DONE;
}

/* ---- verification ---------------------------------------------------- */

/* Days the keys a verified rotation replaced stay published (docs/domains.md). */
#define DOMAIN_RETIRE_GRACE_DAYS 7

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

/* Looks one record up; adds found, matches, seen (and the lookup's
 * status when it failed) to r.  Returns matches. */
static int check_record(const struct dns_resolver *dns, json_t *r, struct dns_txt_result *txt)
{
	const char *type = json_string_value(json_object_get(r, "type"));
	const char *name = json_string_value(json_object_get(r, "name"));
	const char *want = json_string_value(json_object_get(r, "value"));
	json_t *seen = json_array();
	char err[256] = "";
	int matches = 0;
	enum dns_status st;
	if (strcmp(type, "MX") == 0) {
		struct dns_mx_result mx;
		st = dns_lookup_mx(dns, name, &mx, err, sizeof(err));
		for (int i = 0; st == DNS_OK && !mx.implicit && i < mx.n; i++) {
			json_array_append_new(seen, json_sprintf("%d %s.", mx.mx[i].pref, mx.mx[i].host));
			matches |= same_mx(&mx.mx[i], want);
		}
		if (st == DNS_OK && mx.implicit)
			st = DNS_NODATA;
	} else {
		st = dns_lookup_txt(dns, name, txt, err, sizeof(err));
		for (int i = 0; st == DNS_OK && i < txt->n; i++) {
			json_array_append_new(seen, json_string(txt->rec[i]));
			matches |= same_txt(txt->rec[i], want);
		}
	}
	json_object_set_new(r, "found", json_boolean(st == DNS_OK && json_array_size(seen) > 0));
	json_object_set_new(r, "matches", json_boolean(matches));
	json_object_set_new(r, "seen", seen);
	if (st != DNS_OK)
		json_object_set_new(r, "lookup", json_string(dns_status_name(st)));
	return matches;
}

/*
 * Looks every record of the domain up (docs/domains.md "Verification"):
 * the domain is verified when the DKIM records of its active keys and the
 * return path's records match; a rotation's pending keys take over when
 * theirs match too.  SPF and DMARC are checked and reported but decide
 * nothing: they are suggestions the operator may have merged with others.
 */
enum api_result api_post_domain_verify(struct api_req *req)
{
	char domain[256], err[512];
	if (param_domain(req, domain, sizeof(domain)) < 0)
		return API_DONE;
	struct collect c = { req->deps->cfg, NULL };
	int rc = db_domain_get(req->deps->pool, domain, collect_one, &c, err, sizeof(err));
	if (rc <= 0) {
		if (rc < 0)
			db_fail(req, "domain_get", err);
		else
			api_problem(req, 404, "not_found", "no such domain");
		json_decref(c.out);
		return API_DONE;
	}
	struct dns_txt_result *txt = xmalloc(sizeof(*txt));
	json_t *checks = json_array();
	int ok = 1, pending_ok = 1, pending = 0;
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(c.out, "records"), i, r) {
		json_t *chk = json_pack("{s:O, s:O, s:O, s:O}", "type", json_object_get(r, "type"), "name",
					json_object_get(r, "name"), "value", json_object_get(r, "value"), "purpose",
					json_object_get(r, "purpose"));
		int m = check_record(req->deps->dns, chk, txt);
		const char *purpose = json_string_value(json_object_get(r, "purpose"));
		const char *state = json_string_value(json_object_get(r, "key_state"));
		if (strcmp(purpose, "dkim") == 0 && state && strcmp(state, "pending") == 0) {
			pending = 1;
			pending_ok &= m;
		} else if (strcmp(purpose, "dkim") == 0 || strcmp(purpose, "return_path") == 0) {
			ok &= m;
		}
		json_array_append_new(checks, chk);
	}
	free(txt);
	json_decref(c.out);
	char *cj = json_dumps(checks, JSON_COMPACT);
	json_decref(checks);
	int promote = ok && pending && pending_ok;
	rc = db_domain_checked(req->deps->pool, domain, ok, cj, promote, DOMAIN_RETIRE_GRACE_DAYS, err, sizeof(err));
	free(cj);
	if (rc < 0) {
		db_fail(req, "domain_checked", err);
		return API_DONE;
	}
	domain_cache_invalidate(req->deps->domains);
	log_info("event=domain_verified domain=%s verified=%s keys_promoted=%s key_id=%lld", domain, ok ? "yes" : "no",
		 promote ? "yes" : "no", (long long)req->api_key_id);
	answer_domain(req, 200, domain);
	return API_DONE;
}
