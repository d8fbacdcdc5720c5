/*
 * The operations console (GET /console/, api/console.c): its headers
 * (strict CSP, nosniff, no-referrer), ETag and If-None-Match -> 304, 404
 * below /console/, console = no; the endpoints it added to the API
 * (/v1/keys/self, /v1/stats/overview, /v1/stats/timeseries); and the
 * console itself in a real headless Chromium (tests/node/console.mjs,
 * puppeteer-core + axe-core) against a real "mailferry serve" that
 * delivers to Postfix's smtp-sink: an accepting one, one that refuses
 * every recipient with a 5.7.1 policy reply (bounced, not suppressed, so
 * replayable), and one whose refusal text carries markup; with a
 * master_key_file for the Domains page and dns_servers where nothing
 * answers, so that its Verify fails fast.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_helpers.h"
#include "delivery_helpers.h"
#include "harness.h"

/* The value of a response header (case-insensitive name), copied into out. */
static const char *header(const struct th_http *r, const char *name, char *out, size_t n)
{
	out[0] = '\0';
	size_t nl = strlen(name);
	for (const char *p = r->headers; p && *p;) {
		const char *e = strchr(p, '\n');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (len > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;
			while (*v == ' ')
				v++;
			size_t vl = len - (size_t)(v - p);
			while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == ' '))
				vl--;
			snprintf(out, n, "%.*s", (int)vl, v);
			return out;
		}
		p = e ? e + 1 : p + len;
	}
	return out;
}

static long get(struct api_srv *s, const char *path, const char *extra, struct th_http *r)
{
	char url[512];
	snprintf(url, sizeof(url), "%s%s", s->base, path);
	const char *h[] = { extra, NULL };
	cr_assert_eq(th_http("GET", url, extra ? h : NULL, NULL, r), 0, "GET %s: %s", path, r->error);
	return r->status;
}

Test(console, served_with_strict_headers_and_etags)
{
	struct api_srv s;
	api_srv_start(&s, NULL, NULL);
	struct th_http r;
	char v[1024], etag[128];

	cr_assert_eq(get(&s, "/console/", NULL, &r), 200, "%s", r.body);
	cr_assert(strstr(r.body, "<script type=\"module\" src=\"app.js\"></script>"), "%s", r.body);
	cr_assert_str_eq(header(&r, "Content-Type", v, sizeof(v)), "text/html; charset=utf-8");
	header(&r, "Content-Security-Policy", v, sizeof(v));
	cr_assert(strncmp(v, "default-src 'self'; ", 20) == 0, "%s", v);
	cr_assert(strstr(v, "frame-ancestors 'none'") && strstr(v, "script-src 'self'") && strstr(v, "style-src 'self'"), "%s", v);
	cr_assert_null(strstr(v, "unsafe"), "%s", v);
	cr_assert_str_eq(header(&r, "X-Content-Type-Options", v, sizeof(v)), "nosniff");
	cr_assert_str_eq(header(&r, "Referrer-Policy", v, sizeof(v)), "no-referrer");
	cr_assert_str_eq(header(&r, "Cache-Control", v, sizeof(v)), "no-cache");
	header(&r, "ETag", etag, sizeof(etag));
	cr_assert(strlen(etag) == 34 && etag[0] == '"', "%s", etag);
	/* No inline script or style anywhere in the page. */
	cr_assert_null(strstr(r.body, "<script>"));
	cr_assert_null(strstr(r.body, "<style"));
	cr_assert_null(strstr(r.body, "style=\""));
	th_http_free(&r);

	/* The same ETag answers 304 with no body; a list with it too; another not. */
	char inm[200];
	snprintf(inm, sizeof(inm), "If-None-Match: %s", etag);
	cr_assert_eq(get(&s, "/console/", inm, &r), 304);
	cr_assert(r.body == NULL || r.body[0] == '\0');
	cr_assert_str_eq(header(&r, "ETag", v, sizeof(v)), etag);
	th_http_free(&r);
	snprintf(inm, sizeof(inm), "If-None-Match: \"other\", W/%s", etag);
	cr_assert_eq(get(&s, "/console/index.html", inm, &r), 304);
	th_http_free(&r);
	cr_assert_eq(get(&s, "/console/", "If-None-Match: \"0123\"", &r), 200);
	th_http_free(&r);

	/* Content types of the other files; the chart library and its licence. */
	cr_assert_eq(get(&s, "/console/app.js", NULL, &r), 200);
	cr_assert_str_eq(header(&r, "Content-Type", v, sizeof(v)), "text/javascript; charset=utf-8");
	cr_assert_null(strstr(r.body, "innerHTML"), "the console must not write HTML");
	th_http_free(&r);
	cr_assert_eq(get(&s, "/console/app.css", NULL, &r), 200);
	cr_assert_str_eq(header(&r, "Content-Type", v, sizeof(v)), "text/css; charset=utf-8");
	th_http_free(&r);
	cr_assert_eq(get(&s, "/console/vendor/uplot/uPlot.iife.min.js", NULL, &r), 200);
	th_http_free(&r);
	cr_assert_eq(get(&s, "/console/vendor/uplot/LICENSE", NULL, &r), 200);
	cr_assert(strstr(r.body, "MIT") || strstr(r.body, "Permission is hereby granted"), "%s", r.body);
	th_http_free(&r);
	cr_assert_eq(get(&s, "/console/favicon.svg", NULL, &r), 200);
	cr_assert_str_eq(header(&r, "Content-Type", v, sizeof(v)), "image/svg+xml");
	th_http_free(&r);

	/* Unknown files are 404 (with the same headers); /console redirects. */
	cr_assert_eq(get(&s, "/console/nope.js", NULL, &r), 404);
	cr_assert_str_eq(header(&r, "X-Content-Type-Options", v, sizeof(v)), "nosniff");
	th_http_free(&r);
	cr_assert_eq(get(&s, "/console/../db/functions.sql", NULL, &r), 404);
	th_http_free(&r);
	cr_assert_eq(get(&s, "/console", NULL, &r), 308);
	cr_assert_str_eq(header(&r, "Location", v, sizeof(v)), "/console/");
	th_http_free(&r);
	api_srv_stop(&s, 1);

	/* console = no: no console. */
	const char *env[] = { "MAILFERRY_CONSOLE=no", NULL };
	api_srv_start(&s, NULL, env);
	cr_assert_eq(get(&s, "/console/", NULL, &r), 404);
	cr_assert(strstr(r.body, "no such endpoint"), "%s", r.body);
	th_http_free(&r);
	api_srv_stop(&s, 1);
}

Test(console, key_self_and_stats)
{
	struct api_srv s;
	api_srv_start(&s, NULL, NULL);
	char read[160], admin[160];
	cr_assert_eq(api_make_key(s.db, "read", read, sizeof(read)), 0);
	cr_assert_eq(api_make_key(s.db, "send,read,admin", admin, sizeof(admin)), 0);
	struct th_http r;

	cr_assert_eq(api_call(&s, "GET", "/v1/keys/self", read, NULL, NULL, &r), 0);
	cr_assert_eq(r.status, 200, "%s", r.body);
	json_t *j = t_json(&r);
	json_t *sc = json_object_get(j, "scopes");
	cr_assert_eq(json_array_size(sc), 1, "%s", r.body);
	cr_assert_str_eq(json_string_value(json_array_get(sc, 0)), "read");
	cr_assert_str_eq(t_str(j, "name"), "t");
	cr_assert(json_is_integer(json_object_get(j, "id")));
	cr_assert_null(strstr(r.body, read + 20), "the secret must not come back");
	json_decref(j);
	th_http_free(&r);
	cr_assert_eq(api_call(&s, "GET", "/v1/keys/self", "", NULL, NULL, &r), 0);
	cr_assert_eq(r.status, 401);
	th_http_free(&r);

	/* Keys over the API: create (secret once), list, revoke; admin only. */
	cr_assert_eq(api_call(&s, "POST", "/v1/keys", read, NULL, "{\"name\":\"x\",\"scopes\":[\"read\"]}", &r), 0);
	cr_assert_eq(r.status, 403, "%s", r.body);
	th_http_free(&r);
	cr_assert_eq(api_call(&s, "POST", "/v1/keys", admin, NULL, "{\"name\":\"x\",\"scopes\":[\"read\",\"root\"]}", &r), 0);
	cr_assert_eq(r.status, 422, "%s", r.body);
	th_http_free(&r);
	cr_assert_eq(api_call(&s, "POST", "/v1/keys", admin, NULL, "{\"name\":\"deploys\",\"scopes\":[\"send\",\"read\"]}", &r), 0);
	cr_assert_eq(r.status, 201, "%s", r.body);
	j = t_json(&r);
	char made[160], path[64];
	snprintf(made, sizeof(made), "%s", t_str(j, "key"));
	long long made_id = (long long)json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	th_http_free(&r);
	cr_assert_eq(api_call(&s, "GET", "/v1/keys/self", made, NULL, NULL, &r), 0);
	cr_assert_eq(r.status, 200, "the new key works: %s", r.body);
	cr_assert(strstr(r.body, "\"deploys\""), "%s", r.body);
	th_http_free(&r);
	cr_assert_eq(api_call(&s, "GET", "/v1/keys", admin, NULL, NULL, &r), 0);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert(strstr(r.body, "\"deploys\"") && strstr(r.body, "\"public_id\""), "%s", r.body);
	cr_assert_null(strstr(r.body, made), "a secret in the key list");
	th_http_free(&r);
	snprintf(path, sizeof(path), "/v1/keys/%lld", made_id);
	cr_assert_eq(api_call(&s, "DELETE", path, admin, NULL, NULL, &r), 0);
	cr_assert_eq(r.status, 204, "%s", r.body);
	th_http_free(&r);
	cr_assert_eq(api_call(&s, "DELETE", path, admin, NULL, NULL, &r), 0);
	cr_assert_eq(r.status, 404, "revoked twice: %s", r.body);
	th_http_free(&r);
	cr_assert_eq(api_call(&s, "GET", "/v1/keys/self", admin, NULL, NULL, &r), 0);
	j = t_json(&r);
	snprintf(path, sizeof(path), "/v1/keys/%lld", (long long)json_integer_value(json_object_get(j, "id")));
	json_decref(j);
	th_http_free(&r);
	cr_assert_eq(api_call(&s, "DELETE", path, admin, NULL, NULL, &r), 0);
	cr_assert_eq(r.status, 422, "a key revoked itself: %s", r.body);
	th_http_free(&r);

	/* A bounced recipient's event shows in the series and the reasons. */
	char *id = api_send_ok(&s, "{\"from\":\"a@shop.example\",\"to\":\"b@example.net\",\"text\":\"x\"}");
	free(q(s.db, "UPDATE recipients SET status = 'bounced', last_code = 550, last_enhanced = '5.7.1',"
		     " last_text = 'policy <b>refusal</b>' WHERE message_id = '%s'", id));
	free(q(s.db, "SELECT mf_record_event(r.id, 'message.bounced') FROM recipients r WHERE message_id = '%s'", id));
	cr_assert_eq(api_call(&s, "GET", "/v1/stats/timeseries?interval=minute", read, NULL, NULL, &r), 0);
	cr_assert_eq(r.status, 200, "%s", r.body);
	j = t_json(&r);
	cr_assert_str_eq(t_str(j, "interval"), "minute");
	json_t *b = json_object_get(j, "buckets");
	cr_assert(json_array_size(b) >= 60 && json_array_size(b) <= 61, "%zu buckets", json_array_size(b));
	long bounced = 0;
	for (size_t i = 0; i < json_array_size(b); i++)
		bounced += (long)json_integer_value(json_object_get(json_array_get(b, i), "bounced"));
	cr_assert_eq(bounced, 1, "%s", r.body);
	json_decref(j);
	th_http_free(&r);
	cr_assert_eq(api_call(&s, "GET", "/v1/stats/timeseries?interval=hour", read, NULL, NULL, &r), 0);
	j = t_json(&r);
	b = json_object_get(j, "buckets");
	cr_assert(json_array_size(b) >= 168 && json_array_size(b) <= 169, "%zu buckets", json_array_size(b));
	json_decref(j);
	th_http_free(&r);
	cr_assert_eq(api_call(&s, "GET", "/v1/stats/timeseries?interval=day", read, NULL, NULL, &r), 0);
	cr_assert_eq(r.status, 422, "%s", r.body);
	th_http_free(&r);
	cr_assert_eq(api_call(&s, "GET", "/v1/stats/timeseries?since=2000-01-01T00:00:00Z", read, NULL, NULL, &r), 0);
	cr_assert_eq(r.status, 422, "%s", r.body);
	th_http_free(&r);

	cr_assert_eq(api_call(&s, "GET", "/v1/stats/overview", read, NULL, NULL, &r), 0);
	cr_assert_eq(r.status, 200, "%s", r.body);
	j = t_json(&r);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "totals"), "bounced")), 1, "%s", r.body);
	json_t *top = json_array_get(json_object_get(j, "top_bounce_reasons"), 0);
	cr_assert_str_eq(t_str(top, "text"), "policy <b>refusal</b>", "%s", r.body);
	cr_assert_eq(json_integer_value(json_object_get(top, "code")), 550);
	cr_assert_null(json_object_get(j, "failing_webhooks"), "webhooks are for admin keys");
	json_decref(j);
	th_http_free(&r);
	cr_assert_eq(api_call(&s, "GET", "/v1/stats/overview", admin, NULL, NULL, &r), 0);
	j = t_json(&r);
	cr_assert(json_is_array(json_object_get(j, "failing_webhooks")), "%s", r.body);
	json_decref(j);
	th_http_free(&r);
	free(id);
	api_srv_stop(&s, 1);
}

/* smtp-sink in the background for the length of the browser test. */
static pid_t sink(int port, const char *args)
{
	char *out = NULL;
	int rc = th_run(&out, "timeout 600 /usr/sbin/smtp-sink %s %s 127.0.0.1:%d 64 >/dev/null 2>&1 & echo $!",
			geteuid() == 0 ? "-u nobody" : "", args, port);
	cr_assert_eq(rc, 0, "%s", out);
	pid_t pid = (pid_t)strtol(out, NULL, 10);
	free(out);
	cr_assert_eq(th_smtp_wait_port(port, 5000), 0, "smtp-sink did not listen on %d", port);
	return pid;
}

#define XSS_SUBJECT "Order <img src=x onerror=window.__xss=1></script><script>window.__xss=2</script>"

Test(console, in_a_real_browser)
{
	const char *src = getenv("MAILFERRY_TEST_SRCDIR") ? getenv("MAILFERRY_TEST_SRCDIR") : ".";
	char check[1024];
	snprintf(check, sizeof(check), "test -x /usr/bin/chromium && test -d '%s/tests/node/node_modules/puppeteer-core'"
		 " && test -d '%s/tests/node/node_modules/axe-core'", src, src);
	cr_assert_eq(th_run(NULL, "%s", check), 0,
		     "the browser test needs chromium and tests/node's puppeteer-core and axe-core: run deploy/bootstrap.sh test");

	int okp = th_free_port(), badp = th_free_port(), xssp = th_free_port();
	pid_t ok = sink(okp, "");
	pid_t bad = sink(badp, "-f RCPT -B '550 5.7.1 Mailbox refused by policy'");
	pid_t xss = sink(xssp, "-f RCPT -B '550 5.7.1 <img src=x onerror=window.__xss=5></script><script>window.__xss=6</script>'");
	char routes[256];
	snprintf(routes, sizeof(routes), "MAILFERRY_ROUTES=ok.test=127.0.0.1:%d,bad.test=127.0.0.1:%d,xss.test=127.0.0.1:%d",
		 okp, badp, xssp);
	/* The Domains page: a master key to add domains with, and dns_servers
	 * a UDP port where nothing listens, so that Verify fails at once (the
	 * port refuses) with a lookup failure per record. */
	char *dir = th_tmpdir("console");
	cr_assert_not_null(dir);
	char mk[600], dns[64];
	snprintf(mk, sizeof(mk), "MAILFERRY_MASTER_KEY_FILE=%s/master.key", dir);
	cr_assert_eq(th_run(NULL, "head -c 32 /dev/urandom > '%s' && chmod 600 '%s'", mk + 26, mk + 26), 0);
	snprintf(dns, sizeof(dns), "MAILFERRY_DNS_SERVERS=127.0.0.1:%d", th_free_port());
	const char *env[] = { routes, "MAILFERRY_ROLES=api,delivery", "MAILFERRY_LOG_LEVEL=info", mk, dns, NULL };
	struct api_srv s;
	api_srv_start(&s, NULL, env);
	char admin[160], read[160];
	cr_assert_eq(api_make_key(s.db, "send,read,admin", admin, sizeof(admin)), 0);
	cr_assert_eq(api_make_key(s.db, "read", read, sizeof(read)), 0);

	char body[1024], *bounced = NULL;
	for (int i = 1; i <= 20; i++) {
		snprintf(body, sizeof(body),
			 "{\"from\":\"Shop <shop@example.com>\",\"to\":\"customer%d@bad.test\",\"subject\":\"Order #%d confirmed\","
			 "\"text\":\"Thanks\",\"tags\":[\"orders\"],\"metadata\":{\"order\":\"%d\"}}", i, 1000 + i, 1000 + i);
		char *id = api_send_ok(&s, body);
		if (i == 1)
			bounced = id;
		else
			free(id);
	}
	free(api_send_ok(&s, "{\"from\":\"shop@example.com\",\"to\":\"ann@ok.test\",\"subject\":\"Welcome aboard\","
			     "\"text\":\"hello\",\"tags\":[\"welcome\"]}"));
	char *xid = api_send_ok(&s, "{\"from\":\"shop@example.com\",\"to\":\"victim@xss.test\",\"subject\":\"" XSS_SUBJECT "\","
				    "\"text\":\"x\",\"tags\":[\"<img src=x onerror=window.__xss=3>\",\"</script>\"],"
				    "\"metadata\":{\"note\":\"<img src=x onerror=window.__xss=4>\"}}");
	long done = wait_count(s.db, 22, 60000,
			       "SELECT count(*) FROM recipients WHERE status IN ('delivered', 'bounced', 'failed')");
	cr_assert_eq(done, 22, "only %ld recipients finished", done);
	cr_assert_eq(ql(s.db, "SELECT count(*) FROM recipients WHERE status = 'bounced' AND domain = 'bad.test'"), 20);
	cr_assert_eq(ql(s.db, "SELECT count(*) FROM recipients WHERE status = 'bounced' AND last_text LIKE '%%<img src=x%%'"), 1);

	char *out = NULL;
	long t0 = th_now_ms();
	int rc = th_run(&out,
			"cd '%s' && BASE='%s' ADMIN_KEY='%s' READ_KEY='%s' BOUNCED_ID='%s' XSS_ID='%s'"
			" SHOTS='%s/build/console-screens' node tests/node/console.mjs",
			src, s.base, admin, read, bounced, xid, src);
	fprintf(stderr, "console.mjs: %ld ms: %s\n", th_now_ms() - t0, out ? out : "");
	cr_assert_eq(rc, 0, "the browser test failed: %s", out ? out : "");
	cr_assert(out && strstr(out, "\"ok\":true"), "%s", out);
	/* The replay really requeued: each bad.test recipient was tried twice. */
	long twice = wait_count(s.db, 1, 30000, "SELECT count(*) FROM recipients WHERE domain = 'bad.test' AND attempts >= 2");
	cr_assert_geq(twice, 1);
	cr_assert_eq(ql(s.db, "SELECT count(*) FROM suppressions"), 0, "a 5.7.1 refusal suppresses nobody");
	/* The domain added through the page was verified (failed) and removed. */
	cr_assert_eq(ql(s.db, "SELECT count(*) FROM domains"), 0, "the domain the console added is still there");
	free(out);
	free(bounced);
	free(xid);
	free(dir);
	api_srv_stop(&s, 1);
	kill(ok, SIGTERM);
	kill(bad, SIGTERM);
	kill(xss, SIGTERM);
}
