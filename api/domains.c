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
 * and the return path's when bounce_domain is set; domains/records.h).
 * Verification is domains/verify.h's, shared with the daily re-check
 * (queue/domain_check.h); this file turns its outcome into HTTP.  No
 * answer ever holds a private key: they exist in the clear only inside
 * mail/dkim_keys.c and the signers of api/domain_cache.c.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/domain_cache.h"
#include "api/handlers.h"
#include "api/json_in.h"
#include "db/domains.h"
#include "domains/records.h"
#include "domains/verify.h"
#include "util/log.h"

/* Every record the operator publishes for d (docs/domains.md "Records"). */
static json_t *records_json(const struct config *cfg, const struct db_domain *d)
{
	struct domain_records rs;
	domain_records_build(cfg, d, &rs);
	json_t *a = json_array();
	for (int i = 0; i < rs.n; i++) {
		const struct domain_record *r = &rs.r[i];
		json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "type", r->type, "name", r->name, "value", r->value,
				      "purpose", r->purpose);
		if (r->selector) {
			json_object_set_new(o, "selector", json_string(r->selector));
			json_object_set_new(o, "key_state", json_string(r->key_state));
		}
		json_array_append_new(a, o);
	}
	domain_records_cleanup(&rs);
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
	struct domain_new_keys nk;
	char err[512];
	int rc = domain_keys_make(mk, domain, &nk, err, sizeof(err));
	if (rc < 0) {
		log_error("event=domain_keygen_failed domain=%s error=%s", domain, err);
		api_problem(req, 500, "internal", "the domain's keys could not be made");
	} else if ((rc = db_domain_create(req->deps->pool, domain, nk.db, 2, err, sizeof(err))) < 0) {
		db_fail(req, "domain_create", err);
	} else if (rc == 0) {
		api_problem_errors(req, 409, "domain_exists", "this domain is already registered",
				   json_pack("[o]", api_field_error("domain", "exists", "already registered")));
	} else {
		domain_cache_invalidate(req->deps->domains);
		log_info("event=domain_added domain=%s selectors=%s,%s key_id=%lld", domain, nk.selector[0],
			 nk.selector[1], (long long)req->api_key_id);
		char loc[300];
		snprintf(loc, sizeof(loc), "/v1/domains/%s", domain);
		api_location(req, loc);
		answer_domain(req, 201, domain);
	}
	domain_new_keys_cleanup(&nk);
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
	struct domain_new_keys nk;
	int rc = domain_keys_make(mk, domain, &nk, err, sizeof(err));
	if (rc < 0) {
		log_error("event=domain_keygen_failed domain=%s error=%s", domain, err);
		api_problem(req, 500, "internal", "the domain's keys could not be made");
	} else if ((rc = db_domain_rotate(req->deps->pool, domain, nk.db, 2, err, sizeof(err))) < 0) {
		db_fail(req, "domain_rotate", err);
	} else if (rc == 0) {
		api_problem(req, 404, "not_found", "no such domain");
	} else if (rc == 2) {
		api_problem(req, 409, "selector_exists", "the new selectors exist already; rotate again");
	} else {
		domain_cache_invalidate(req->deps->domains);
		log_info("event=domain_rotated domain=%s selectors=%s,%s key_id=%lld", domain, nk.selector[0],
			 nk.selector[1], (long long)req->api_key_id);
		answer_domain(req, 200, domain);
	}
	domain_new_keys_cleanup(&nk);
	return API_DONE;
}

/* Looks every record up now (domains/verify.h) and answers the domain. */
enum api_result api_post_domain_verify(struct api_req *req)
{
	char domain[256], err[512];
	if (param_domain(req, domain, sizeof(domain)) < 0)
		return API_DONE;
	struct domain_verify_params vp = { .cfg = req->deps->cfg, .pool = req->deps->pool, .dns = req->deps->dns };
	struct domain_verdict v;
	switch (domain_verify(&vp, domain, &v, err, sizeof(err))) {
	case DOMAIN_VERIFY_NOT_FOUND:
		api_problem(req, 404, "not_found", "no such domain");
		return API_DONE;
	case DOMAIN_VERIFY_DONE:
		break;
	default: /* the API neither cancels nor keeps on doubt: a database failure */
		db_fail(req, "domain_verify", err);
		return API_DONE;
	}
	domain_cache_invalidate(req->deps->domains);
	log_info("event=domain_verified domain=%s verified=%s keys_promoted=%s key_id=%lld", domain,
		 v.verified ? "yes" : "no", v.promoted ? "yes" : "no", (long long)req->api_key_id);
	answer_domain(req, 200, domain);
	return API_DONE;
}
