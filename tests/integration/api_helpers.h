/*
 * api_helpers.h - small helpers shared by the API integration tests
 * (tests/integration/test_api_*.c): a migrated database with an API key
 * and a running "mailferry serve", authenticated requests, JSON bodies.
 * Header-only (static inline) so that each test file stays independent.
 */
#ifndef MF_TEST_API_HELPERS_H
#define MF_TEST_API_HELPERS_H

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

struct api_srv {
	char *db;
	struct th_proc *p;
	char base[64];
	char key[160];   /* send,read */
};

/* Creates a key with the given scopes; 0 or -1. */
static inline int api_make_key(const char *db, const char *scopes, char *key, size_t n)
{
	char *out = NULL;
	int rc = th_run(&out, "MAILFERRY_DATABASE_URL='%s' %s keys create --name t --scopes %s --json", db, th_bin(),
			scopes);
	const char *k = out ? strstr(out, "\"key\":\"") : NULL;
	if (rc != 0 || k == NULL) {
		fprintf(stderr, "keys create failed: %s\n", out ? out : "");
		free(out);
		return -1;
	}
	k += 7;
	size_t l = strcspn(k, "\"");
	snprintf(key, n, "%.*s", (int)l, k);
	free(out);
	return 0;
}

/* A fresh database (db NULL) or the given one, a send,read key, a server. */
static inline void api_srv_start(struct api_srv *s, const char *db, const char *const *env)
{
	memset(s, 0, sizeof(*s));
	s->db = db ? strdup(db) : th_db_create(1);
	cr_assert_not_null(s->db);
	cr_assert_eq(api_make_key(s->db, "send,read", s->key, sizeof(s->key)), 0);
	s->p = th_serve_start(s->db, env);
	cr_assert_not_null(s->p, "serve did not start");
	snprintf(s->base, sizeof(s->base), "http://127.0.0.1:%d", s->p->port);
}

static inline void api_srv_stop(struct api_srv *s, int drop)
{
	if (s->p)
		cr_assert_eq(th_proc_stop(s->p, 10000), 0, "serve did not stop cleanly");
	th_proc_free(s->p);
	if (drop)
		th_db_drop(s->db);
	free(s->db);
	memset(s, 0, sizeof(*s));
}

/* An authenticated request with key (NULL: s->key; "" none); JSON body. */
static inline int api_call(struct api_srv *s, const char *method, const char *path, const char *key,
			   const char *idem, const char *body, struct th_http *out)
{
	char url[1024], auth[256], ik[400];
	const char *h[5];
	int n = 0;
	snprintf(url, sizeof(url), "%s%s", s->base, path);
	if (key == NULL)
		key = s->key;
	if (*key) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
		h[n++] = auth;
	}
	if (body)
		h[n++] = "Content-Type: application/json";
	if (idem) {
		snprintf(ik, sizeof(ik), "Idempotency-Key: %s", idem);
		h[n++] = ik;
	}
	h[n] = NULL;
	return th_http(method, url, h, body, out);
}

/* Parses a response body as JSON (asserts it is JSON). */
static inline json_t *t_json(const struct th_http *r)
{
	json_error_t e;
	json_t *j = json_loads(r->body ? r->body : "", 0, &e);
	cr_assert_not_null(j, "response is not JSON (%s): %s", e.text, r->body);
	return j;
}

static inline const char *t_str(const json_t *j, const char *key)
{
	return json_string_value(json_object_get(j, key));
}

/* SQL count as a number. */
static inline long t_count(const char *db, const char *sql)
{
	char *v = th_sql(db, sql);
	cr_assert_not_null(v, "%s", sql);
	long n = strtol(v, NULL, 10);
	free(v);
	return n;
}

/* POSTs a send request and returns its id (asserts 202). */
static inline char *api_send_ok(struct api_srv *s, const char *body)
{
	struct th_http r;
	cr_assert_eq(api_call(s, "POST", "/v1/messages", NULL, NULL, body, &r), 0, "POST /v1/messages: %s", r.error);
	cr_assert_eq(r.status, 202, "%ld %s", r.status, r.body);
	json_t *j = t_json(&r);
	char *id = strdup(t_str(j, "id"));
	json_decref(j);
	th_http_free(&r);
	return id;
}

#endif
