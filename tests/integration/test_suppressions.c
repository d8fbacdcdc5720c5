/*
 * Integration tests for the suppression list and bounce submission
 * against a running "mailferry serve": the HTTP endpoints (scopes,
 * validation, cursor paging, events), the CLI, and POST /v1/bounces
 * matching a real VERP address and suppressing the recipient.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "db/settings.h"
#include "harness.h"
#include "mail/verp.h"

struct srv {
	char *url;
	struct th_proc *p;
	char admin[128], send[128], read[128];
};

static void make_key(struct srv *s, const char *scopes, char *out)
{
	char *o = NULL;
	cr_assert_eq(th_run(&o, "MAILFERRY_DATABASE_URL='%s' %s keys create --name t --scopes %s --json", s->url, th_bin(),
			    scopes), 0, "%s", o);
	char *k = strstr(o, "\"key\":\"");
	cr_assert_not_null(k, "%s", o);
	sscanf(k + 7, "%127[^\"]", out);
	free(o);
}

static void srv_start(struct srv *s)
{
	s->url = th_db_create(1);
	cr_assert_not_null(s->url);
	make_key(s, "admin", s->admin);
	make_key(s, "send", s->send);
	make_key(s, "read", s->read);
	const char *env[] = { "MAILFERRY_BOUNCE_DOMAIN=bounces.shop.example", "MAILFERRY_ROLES=api,bounces", NULL };
	s->p = th_serve_start(s->url, env);
	cr_assert_not_null(s->p);
}

static void srv_stop(struct srv *s)
{
	cr_expect_eq(th_proc_stop(s->p, 5000), 0);
	th_proc_free(s->p);
	th_db_drop(s->url);
	free(s->url);
}

static long req(struct srv *s, const char *key, const char *method, const char *path, const char *ctype,
		const char *body, struct th_http *r)
{
	char u[512], auth[200], ct[128];
	snprintf(u, sizeof(u), "http://127.0.0.1:%d%s", s->p->port, path);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
	snprintf(ct, sizeof(ct), "Content-Type: %s", ctype ? ctype : "application/json");
	const char *h[] = { auth, ct, NULL };
	cr_assert_eq(th_http(method, u, h, body, r), 0, "%s %s", method, path);
	return r->status;
}

static void expect_sql(struct srv *s, const char *want, const char *sql)
{
	char *v = th_sql(s->url, sql);
	cr_assert_not_null(v, "%s", sql);
	cr_expect_str_eq(v, want, "%s: got [%s]", sql, v);
	free(v);
}

Test(suppressions_api, add_validate_and_scopes)
{
	struct srv s;
	srv_start(&s);
	struct th_http r;
	cr_expect_eq(req(&s, s.send, "POST", "/v1/suppressions", NULL, "{\"email\":\"Alice@Example.COM\"}", &r), 201, "%s", r.body);
	cr_expect(strstr(r.body, "\"email\":\"alice@example.com\"") && strstr(r.body, "\"reason\":\"manual\""), "%s", r.body);
	cr_expect(strstr(r.headers, "Location: /v1/suppressions/alice@example.com") != NULL, "%s", r.headers);
	th_http_free(&r);
	/* Idempotent: the existing entry, 200. */
	cr_expect_eq(req(&s, s.send, "POST", "/v1/suppressions", NULL, "{\"email\":\"alice@example.com\",\"reason\":\"complaint\"}", &r), 200);
	cr_expect(strstr(r.body, "\"reason\":\"manual\"") != NULL, "%s", r.body);
	th_http_free(&r);
	cr_expect_eq(req(&s, s.admin, "POST", "/v1/suppressions", NULL, "{\"email\":\"bob@example.com\",\"reason\":\"unsubscribe\"}", &r), 201);
	th_http_free(&r);
	cr_expect_eq(req(&s, s.admin, "POST", "/v1/suppressions", NULL, "{\"email\":\"carol@example.com\"}", &r), 201);
	th_http_free(&r);

	/* Validation. */
	cr_expect_eq(req(&s, s.send, "POST", "/v1/suppressions", NULL, "{\"email\":\"not an address\"}", &r), 422);
	cr_expect(strstr(r.body, "\"field\":\"email\"") != NULL, "%s", r.body);
	th_http_free(&r);
	cr_expect_eq(req(&s, s.send, "POST", "/v1/suppressions", NULL, "{\"email\":\"x@y.example\",\"reason\":\"whim\"}", &r), 422);
	th_http_free(&r);
	cr_expect_eq(req(&s, s.send, "POST", "/v1/suppressions", NULL, "[1]", &r), 400);
	th_http_free(&r);
	/* Scopes: read cannot add, send cannot remove. */
	cr_expect_eq(req(&s, s.read, "POST", "/v1/suppressions", NULL, "{\"email\":\"d@example.com\"}", &r), 403);
	th_http_free(&r);
	cr_expect_eq(req(&s, s.send, "DELETE", "/v1/suppressions/alice@example.com", NULL, NULL, &r), 403);
	th_http_free(&r);

	srv_stop(&s);
}

Test(suppressions_api, get_page_and_remove)
{
	struct srv s;
	srv_start(&s);
	struct th_http r;
	static const char *const adds[] = { "{\"email\":\"Alice@Example.COM\"}",
					    "{\"email\":\"bob@example.com\",\"reason\":\"unsubscribe\"}",
					    "{\"email\":\"carol@example.com\"}" };
	for (size_t i = 0; i < 3; i++) {
		cr_expect_eq(req(&s, s.admin, "POST", "/v1/suppressions", NULL, adds[i], &r), 201, "%s", r.body);
		th_http_free(&r);
	}
	cr_expect_eq(req(&s, s.read, "GET", "/v1/suppressions/ALICE@example.com", NULL, NULL, &r), 200);
	cr_expect(strstr(r.body, "\"email\":\"alice@example.com\"") != NULL, "%s", r.body);
	th_http_free(&r);

	/* Paging: 3 entries, 2 per page, each exactly once. */
	cr_expect_eq(req(&s, s.read, "GET", "/v1/suppressions?limit=2", NULL, NULL, &r), 200);
	cr_expect(strstr(r.body, "alice@") && strstr(r.body, "bob@") && !strstr(r.body, "carol@"), "%s", r.body);
	cr_expect(strstr(r.body, "\"has_more\":true") && strstr(r.body, "\"next_cursor\":\"bob@example.com\""), "%s", r.body);
	th_http_free(&r);
	cr_expect_eq(req(&s, s.read, "GET", "/v1/suppressions?limit=2&after=bob@example.com", NULL, NULL, &r), 200);
	cr_expect(strstr(r.body, "carol@") && !strstr(r.body, "bob@"), "%s", r.body);
	cr_expect(strstr(r.body, "\"has_more\":false") && strstr(r.body, "\"next_cursor\":null"), "%s", r.body);
	th_http_free(&r);
	cr_expect_eq(req(&s, s.read, "GET", "/v1/suppressions?reason=unsubscribe", NULL, NULL, &r), 200);
	cr_expect(strstr(r.body, "bob@") && !strstr(r.body, "alice@"), "%s", r.body);
	th_http_free(&r);
	cr_expect_eq(req(&s, s.read, "GET", "/v1/suppressions?limit=0", NULL, NULL, &r), 422);
	th_http_free(&r);

	cr_expect_eq(req(&s, s.admin, "DELETE", "/v1/suppressions/Alice@example.com", NULL, NULL, &r), 204);
	th_http_free(&r);
	cr_expect_eq(req(&s, s.admin, "DELETE", "/v1/suppressions/alice@example.com", NULL, NULL, &r), 404);
	th_http_free(&r);
	cr_expect_eq(req(&s, s.read, "GET", "/v1/suppressions/alice@example.com", NULL, NULL, &r), 404);
	cr_expect(strstr(r.body, "\"code\":\"not_found\"") != NULL);
	th_http_free(&r);
	expect_sql(&s, "1|true|alice@example.com|api",
		   "SELECT count(*) || '|' || bool_and(message_id IS NULL AND recipient_id IS NULL) || '|' ||"
		   " min(payload->'data'->>'email') || '|' || min(payload->'data'->>'source')"
		   " FROM events WHERE type = 'suppression.removed'");
	expect_sql(&s, "3", "SELECT count(*) FROM events WHERE type = 'suppression.created'");
	srv_stop(&s);
}

Test(suppressions_cli, add_list_remove)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	char *o = NULL;
	cr_expect_eq(th_run(&o, "%s suppressions --help", th_bin()), 0);
	cr_expect(strstr(o, "usage: mailferry suppressions") != NULL, "%s", o);
	free(o);
	cr_expect_eq(th_run(&o, "MAILFERRY_DATABASE_URL='%s' %s suppressions add Dave@Example.net --reason unsubscribe", url, th_bin()), 0, "%s", o);
	free(o);
	cr_expect_eq(th_run(&o, "MAILFERRY_DATABASE_URL='%s' %s suppressions add erin@example.net", url, th_bin()), 0, "%s", o);
	free(o);
	cr_expect_eq(th_run(&o, "MAILFERRY_DATABASE_URL='%s' %s suppressions list", url, th_bin()), 0, "%s", o);
	cr_expect(strstr(o, "dave@example.net") && strstr(o, "unsubscribe") && strstr(o, "erin@example.net"), "%s", o);
	free(o);
	cr_expect_eq(th_run(&o, "MAILFERRY_DATABASE_URL='%s' %s suppressions list --reason manual --json", url, th_bin()), 0, "%s", o);
	cr_expect(strstr(o, "{\"email\":\"erin@example.net\",\"reason\":\"manual\"") && !strstr(o, "dave@"), "%s", o);
	free(o);
	cr_expect_eq(th_run(&o, "MAILFERRY_DATABASE_URL='%s' %s suppressions remove DAVE@example.net", url, th_bin()), 0, "%s", o);
	free(o);
	cr_expect_eq(th_run(&o, "MAILFERRY_DATABASE_URL='%s' %s suppressions remove dave@example.net", url, th_bin()), 1, "%s", o);
	cr_expect(strstr(o, "not on the list") != NULL, "%s", o);
	free(o);
	cr_expect_eq(th_run(&o, "MAILFERRY_DATABASE_URL='%s' %s suppressions add 'not an address'", url, th_bin()), 2, "%s", o);
	free(o);
	cr_expect_eq(th_run(&o, "MAILFERRY_DATABASE_URL='%s' %s suppressions add x@y.example --reason whim", url, th_bin()), 2, "%s", o);
	free(o);
	cr_expect_eq(th_run(&o, "%s suppressions frob", th_bin()), 2);
	free(o);
	char *v = th_sql(url, "SELECT string_agg(type || ':' || (payload->'data'->>'source'), ',' ORDER BY id) FROM events");
	cr_expect_str_eq(v, "suppression.created:cli,suppression.created:cli,suppression.removed:cli");
	free(v);
	v = th_sql(url, "SELECT string_agg(email, ',') FROM suppressions");
	cr_expect_str_eq(v, "erin@example.net");
	free(v);
	th_db_drop(url);
	free(url);
}

static char *load_corpus(const char *name, const char *verp)
{
	const char *src = getenv("MAILFERRY_TEST_SRCDIR");
	char *o = NULL;
	cr_assert_eq(th_run(&o, "sed 's/bounce+aebagbafaydqqcikbmgq2a3hc4@bounces.shop.example/%s/g' '%s/tests/data/dsn/%s'", verp,
			    src ? src : ".", name), 0);
	return o;
}

Test(bounces_api, post_bounce_matches_and_suppresses)
{
	struct srv s;
	srv_start(&s);
	free(th_sql(s.url, "INSERT INTO messages (id, mail_from, from_header, message_id_hdr, size, status)"
			   " VALUES ('0193f7a2-6c1e-7d40-9a1b-2c3d4e5f6a05', 'orders@shop.example', 'orders@shop.example',"
			   " '0193f7a2-6c1e-7d40-9a1b-2c3d4e5f6a05@shop.example', 10, 'delivered')"));
	char *rid = th_sql(s.url, "INSERT INTO recipients (message_id, position, email, domain, kind, status)"
				  " VALUES ('0193f7a2-6c1e-7d40-9a1b-2c3d4e5f6a05', 0, 'jane.doe@gmail.com', 'gmail.com', 'to',"
				  " 'delivered') RETURNING id");
	cr_assert_not_null(rid);
	struct db_pool *pool = db_pool_new(s.url, 1);
	unsigned char key[VERP_KEY_LEN];
	char err[256], addr[128];
	cr_assert_eq(db_settings_secret(pool, DB_SETTING_VERP_KEY, key, sizeof(key), err, sizeof(err)), 0, "%s", err);
	db_pool_free(pool);
	cr_assert_eq(verp_encode(key, strtoll(rid, NULL, 10), "bounces.shop.example", addr, sizeof(addr)), 0);
	free(rid);

	struct th_http r;
	char *raw = load_corpus("gmail.eml", addr);
	cr_expect_eq(req(&s, s.send, "POST", "/v1/bounces", "application/json", raw, &r), 415);
	th_http_free(&r);
	cr_expect_eq(req(&s, s.read, "POST", "/v1/bounces", "message/rfc822", raw, &r), 403);
	th_http_free(&r);
	cr_expect_eq(req(&s, s.send, "POST", "/v1/bounces", "message/rfc822", raw, &r), 202, "%s", r.body);
	cr_expect(strstr(r.body, "\"outcome\":\"bounced\"") && strstr(r.body, "\"kind\":\"rfc3464\"") &&
		  strstr(r.body, "\"matched_by\":\"verp\"") && strstr(r.body, "\"category\":\"bad_mailbox\"") &&
		  strstr(r.body, "\"suppressed\":true") &&
		  strstr(r.body, "\"message_id\":\"0193f7a2-6c1e-7d40-9a1b-2c3d4e5f6a05\""), "%s", r.body);
	th_http_free(&r);
	free(raw);
	expect_sql(&s, "bounced", "SELECT status FROM recipients");
	expect_sql(&s, "api|bounced", "SELECT source || '|' || outcome FROM bounces_raw");
	cr_expect_eq(req(&s, s.read, "GET", "/v1/suppressions/jane.doe@gmail.com", NULL, NULL, &r), 200);
	cr_expect(strstr(r.body, "\"reason\":\"bounce\"") && strstr(r.body, "0193f7a2-6c1e-7d40-9a1b-2c3d4e5f6a05"), "%s", r.body);
	th_http_free(&r);

	/* An out-of-office is stored but changes nothing. */
	raw = load_corpus("out_of_office.eml", addr);
	cr_expect_eq(req(&s, s.send, "POST", "/v1/bounces", "message/rfc822", raw, &r), 202);
	cr_expect(strstr(r.body, "\"outcome\":\"not_bounce\"") && strstr(r.body, "\"recipients\":[]"), "%s", r.body);
	th_http_free(&r);
	free(raw);
	cr_expect_eq(req(&s, s.send, "POST", "/v1/bounces", "message/rfc822", "", &r), 422);
	th_http_free(&r);
	expect_sql(&s, "1", "SELECT count(*) FROM events WHERE type = 'message.bounced'");
	srv_stop(&s);
}
