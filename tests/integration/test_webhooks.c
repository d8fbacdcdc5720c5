/*
 * Integration tests for webhooks: a real "mailferry serve" (roles api and
 * webhooks), a real PostgreSQL, and the test receiver in
 * tests/harness/wh_receiver.c, which verifies every signature on its own.
 * Events are made directly in SQL with mf_record_event(), the way the
 * send, delivery and bounce code records them.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "util/uuid.h"
#include "util/xmalloc.h"
#include "wh_receiver.h"

struct env {
	char *db;
	struct th_proc *serve;
	char key[160];
	char auth[200];
	char base[64];
};

static const char *const serve_env[] = {
	"MAILFERRY_ROLES=api,webhooks",
	"MAILFERRY_WEBHOOK_ALLOW_PRIVATE=yes",
	"MAILFERRY_WEBHOOK_RETRY_SCHEDULE=1s,1s",
	"MAILFERRY_WEBHOOK_TIMEOUT=2",
	NULL,
};

static void make_key(const char *db, const char *scopes, char *key, size_t keysz)
{
	char *out = NULL;
	cr_assert_eq(th_run(&out, "MAILFERRY_DATABASE_URL='%s' %s keys create --name t --scopes %s --json", db, th_bin(),
			    scopes), 0, "%s", out);
	char *k = strstr(out, "\"key\":\"");
	cr_assert_not_null(k, "%s", out);
	snprintf(key, keysz, "%.*s", (int)strcspn(k + 7, "\""), k + 7);
	free(out);
}

static void env_start(struct env *e, const char *const *extra)
{
	memset(e, 0, sizeof(*e));
	e->db = th_db_create(1);
	cr_assert_not_null(e->db);
	make_key(e->db, "admin", e->key, sizeof(e->key));
	snprintf(e->auth, sizeof(e->auth), "Authorization: Bearer %s", e->key);
	e->serve = th_serve_start(e->db, extra ? extra : serve_env);
	cr_assert_not_null(e->serve);
	snprintf(e->base, sizeof(e->base), "http://127.0.0.1:%d", e->serve->port);
}

static void env_stop(struct env *e)
{
	if (e->serve && e->serve->pid > 0) /* a test may have stopped it already */
		cr_assert_eq(th_proc_stop(e->serve, 8000), 0, "serve did not stop cleanly");
	th_proc_free(e->serve);
	th_db_drop(e->db);
	free(e->db);
}

/* Calls the API; returns the parsed body (NULL when empty) and the status. */
static json_t *api(struct env *e, const char *method, const char *path, const char *body, long *status)
{
	char url[512];
	snprintf(url, sizeof(url), "%s%s", e->base, path);
	const char *hdrs[] = { e->auth, "Content-Type: application/json", NULL };
	struct th_http r;
	cr_assert_eq(th_http(method, url, hdrs, body, &r), 0, "%s %s failed", method, path);
	*status = r.status;
	json_error_t jerr;
	json_t *j = r.body && *r.body ? json_loads(r.body, 0, &jerr) : NULL;
	th_http_free(&r);
	return j;
}

static char *create_webhook_at(struct env *e, const char *host, int port, const char *events_json, char *secret,
			       size_t secretsz)
{
	char body[512];
	snprintf(body, sizeof(body), "{\"url\":\"http://%s:%d/hook\"%s%s}", host, port,
		 events_json ? ",\"events\":" : "", events_json ? events_json : "");
	long st;
	json_t *j = api(e, "POST", "/v1/webhooks", body, &st);
	cr_assert_eq(st, 201, "create: %ld", st);
	snprintf(secret, secretsz, "%s", json_string_value(json_object_get(j, "secret")));
	char *id = xstrdup(json_string_value(json_object_get(j, "id")));
	json_decref(j);
	return id;
}

static char *create_webhook(struct env *e, int port, const char *events_json, char *secret, size_t secretsz)
{
	return create_webhook_at(e, "127.0.0.1", port, events_json, secret, secretsz);
}

/* Records n events (one recipient each, type t) in one SQL statement. */
static void make_events(const char *db, int n, const char *type)
{
	char *sql = xasprintf(
		"WITH m AS (INSERT INTO messages (id, mail_from, from_header, message_id_hdr, size)"
		"  SELECT gen_random_uuid(), 'a@example.org', 'a@example.org', 'x@example.org', 10"
		"  FROM generate_series(1, %d) RETURNING id),"
		" r AS (INSERT INTO recipients (message_id, position, email, domain, kind, status)"
		"  SELECT id, 0, 'rcpt@example.com', 'example.com', 'to', 'delivered' FROM m RETURNING id)"
		" SELECT count(mf_record_event(id, '%s')) FROM r", n, type);
	char *v = th_sql(db, sql);
	free(sql);
	cr_assert(v && strtol(v, NULL, 10) == n, "made %s events", v ? v : "no");
	free(v);
}

static char *sql1(const char *db, const char *fmt, const char *arg)
{
	char *sql = xasprintf(fmt, arg);
	char *v = th_sql(db, sql);
	free(sql);
	cr_assert_not_null(v);
	return v;
}

/* Polls a one-value query until it equals want. */
static int wait_sql(const char *db, const char *sql, const char *want, int timeout_ms)
{
	long start = th_now_ms();
	for (;;) {
		char *v = th_sql(db, sql);
		int ok = v && strcmp(v, want) == 0;
		free(v);
		if (ok)
			return 0;
		if (th_now_ms() - start > timeout_ms)
			return -1;
		usleep(50000);
	}
}

Test(webhooks, endpoints_crud_validation_and_scopes)
{
	struct env e;
	env_start(&e, NULL);
	long st;
	json_t *j;
	j = api(&e, "POST", "/v1/webhooks", "{\"url\":\"ftp://example.com/\"}", &st);
	cr_assert_eq(st, 422);
	cr_assert_str_eq(json_string_value(json_object_get(j, "code")), "validation_failed");
	json_decref(j);
	j = api(&e, "POST", "/v1/webhooks", "{\"url\":\"https://hooks.example.com/x\",\"events\":[\"message.opened\"]}",
		&st);
	cr_assert_eq(st, 422, "unknown event type");
	char *dump = json_dumps(j, 0);
	cr_assert(strstr(dump, "unknown_event_type") != NULL, "%s", dump);
	free(dump);
	json_decref(j);
	j = api(&e, "POST", "/v1/webhooks", "{\"url\":\"https://169.254.169.254/latest\"}", &st);
	cr_assert_eq(st, 422, "metadata address");
	json_decref(j);
	j = api(&e, "POST", "/v1/webhooks", "not json", &st);
	cr_assert_eq(st, 400);
	json_decref(j);

	j = api(&e, "POST", "/v1/webhooks",
		"{\"url\":\"https://hooks.example.com/x\",\"events\":[\"message.delivered\",\"message.bounced\"],"
		"\"description\":\"shop\"}", &st);
	cr_assert_eq(st, 201);
	const char *secret = json_string_value(json_object_get(j, "secret"));
	cr_assert(secret && strncmp(secret, "whsec_", 6) == 0 && strlen(secret) == 50, "%s", secret);
	char *id = xstrdup(json_string_value(json_object_get(j, "id")));
	char *first_secret = xstrdup(secret);
	cr_assert_eq(json_array_size(json_object_get(j, "events")), 2);
	cr_assert(json_is_true(json_object_get(j, "enabled")));
	json_decref(j);

	char path[128];
	snprintf(path, sizeof(path), "/v1/webhooks/%s", id);
	j = api(&e, "GET", path, NULL, &st);
	cr_assert_eq(st, 200);
	cr_assert_null(json_object_get(j, "secret"), "the secret is shown on create only");
	cr_assert_str_eq(json_string_value(json_object_get(j, "description")), "shop");
	json_decref(j);
	j = api(&e, "GET", "/v1/webhooks", NULL, &st);
	cr_assert_eq(st, 200);
	cr_assert_eq(json_array_size(json_object_get(j, "data")), 1);
	dump = json_dumps(j, 0);
	cr_assert(strstr(dump, "whsec_") == NULL, "list must not show secrets");
	free(dump);
	json_decref(j);

	j = api(&e, "PATCH", path, "{\"events\":[\"message.failed\",\"message.failed\"],\"colour\":1}", &st);
	cr_assert_eq(st, 422, "unknown field");
	json_decref(j);
	j = api(&e, "PATCH", path, "{\"events\":[\"message.failed\",\"message.failed\"]}", &st);
	cr_assert_eq(st, 200);
	cr_assert_eq(json_array_size(json_object_get(j, "events")), 1, "each type once");
	json_decref(j);
	j = api(&e, "PATCH", path, "{\"events\":[],\"enabled\":false}", &st);
	cr_assert_eq(st, 200);
	cr_assert_eq(json_array_size(json_object_get(j, "events")), 0);
	cr_assert(json_is_false(json_object_get(j, "enabled")));
	json_decref(j);

	char rot[160];
	snprintf(rot, sizeof(rot), "%s/rotate", path);
	j = api(&e, "POST", rot, NULL, &st);
	cr_assert_eq(st, 200);
	const char *s2 = json_string_value(json_object_get(j, "secret"));
	cr_assert(s2 && strncmp(s2, "whsec_", 6) == 0 && strcmp(s2, first_secret) != 0);
	cr_assert(json_is_string(json_object_get(j, "previous_secret_expires_at")));
	json_decref(j);
	char *keep = sql1(e.db, "SELECT (old_secret = '%s' AND old_secret_expires_at > now() + interval '23 hours')"
				" FROM webhooks", first_secret);
	cr_assert_str_eq(keep, "t", "the old secret keeps signing for 24 h");
	free(keep);

	/* A read key may read the feed but not manage webhooks. */
	char rkey[160], rauth[200], url[256];
	make_key(e.db, "read", rkey, sizeof(rkey));
	snprintf(rauth, sizeof(rauth), "Authorization: Bearer %s", rkey);
	const char *rh[] = { rauth, NULL };
	struct th_http r;
	snprintf(url, sizeof(url), "%s/v1/webhooks", e.base);
	cr_assert_eq(th_http("GET", url, rh, NULL, &r), 0);
	cr_assert_eq(r.status, 403);
	th_http_free(&r);
	snprintf(url, sizeof(url), "%s/v1/events", e.base);
	cr_assert_eq(th_http("GET", url, rh, NULL, &r), 0);
	cr_assert_eq(r.status, 200, "%s", r.body);
	th_http_free(&r);
	cr_assert_eq(th_http("GET", url, NULL, NULL, &r), 0);
	cr_assert_eq(r.status, 401);
	th_http_free(&r);

	j = api(&e, "DELETE", path, NULL, &st);
	cr_assert_eq(st, 204);
	json_decref(j);
	j = api(&e, "GET", path, NULL, &st);
	cr_assert_eq(st, 404);
	json_decref(j);
	free(id);
	free(first_secret);
	env_stop(&e);
}

Test(webhooks, http_needs_allow_private)
{
	struct env e;
	const char *const env_no[] = { "MAILFERRY_ROLES=api", NULL };
	env_start(&e, env_no);
	long st;
	json_t *j = api(&e, "POST", "/v1/webhooks", "{\"url\":\"http://127.0.0.1:9/hook\"}", &st);
	cr_assert_eq(st, 422);
	json_decref(j);
	j = api(&e, "POST", "/v1/webhooks", "{\"url\":\"https://2130706433/hook\"}", &st);
	cr_assert_eq(st, 422, "decimal loopback");
	json_decref(j);
	env_stop(&e);
}

/* The special-purpose ranges that used to pass as public: local-use NAT64
 * (RFC 8215) carrying the metadata address, SIIT (RFC 2765) carrying
 * loopback, and a documentation prefix (RFC 9637). */
Test(webhooks, create_refuses_special_purpose_ranges)
{
	struct env e;
	const char *const env_no[] = { "MAILFERRY_ROLES=api", NULL };
	env_start(&e, env_no);
	const char *urls[] = { "https://[64:ff9b:1::a9fe:a9fe]/", "https://[64:ff9b:1::808:808]/hook",
			       "https://[::ffff:0:7f00:1]/hook", "https://[3fff::1]/hook" };
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		char body[256];
		snprintf(body, sizeof(body), "{\"url\":\"%s\"}", urls[i]);
		long st;
		json_t *j = api(&e, "POST", "/v1/webhooks", body, &st);
		cr_expect_eq(st, 422, "%s was accepted (%ld)", urls[i], st);
		json_decref(j);
	}
	env_stop(&e);
}

Test(webhooks, each_event_exactly_once_with_valid_signatures)
{
	struct th_receiver *rx = th_receiver_start("200");
	cr_assert_not_null(rx);
	struct env e;
	env_start(&e, NULL);
	char secret[80];
	char *id = create_webhook(&e, th_receiver_port(rx), NULL, secret, sizeof(secret));
	th_receiver_set_secrets(rx, secret, NULL);
	/* A second endpoint subscribed to another type gets none of these. */
	struct th_receiver *rx2 = th_receiver_start("200");
	char secret2[80];
	char *id2 = create_webhook(&e, th_receiver_port(rx2), "[\"message.bounced\"]", secret2, sizeof(secret2));
	th_receiver_set_secrets(rx2, secret2, NULL);

	make_events(e.db, 25, "message.delivered");
	cr_assert_geq(th_receiver_wait_ok(rx, 25, 15000), 0, "got %d of 25", th_receiver_distinct_ok(rx));
	/* Each delivery succeeded at its first attempt (succeeded is final: no
	 * more requests for them); that nothing else was sent is checked once
	 * the process has exited, below. */
	cr_assert_eq(wait_sql(e.db, "SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded' AND attempts = 1",
			      "25", 10000), 0);
	cr_assert_eq(th_receiver_requests(rx), 25, "each event once");
	cr_assert_eq(th_receiver_max_per_id(rx), 1);
	cr_assert_eq(th_receiver_bad(rx), 0, "every signature verifies");

	char *h = th_receiver_last_headers(rx);
	cr_assert(strstr(h, "Content-Type: application/json") != NULL, "%s", h);
	cr_assert(strstr(h, "User-Agent: mailferry/") != NULL, "%s", h);
	cr_assert(strstr(h, "webhook-id: evt_") != NULL, "%s", h);
	free(h);
	char *b = th_receiver_last_body(rx);
	json_error_t jerr;
	json_t *ev = json_loads(b, 0, &jerr);
	cr_assert_not_null(ev, "%s", b);
	cr_assert_str_eq(json_string_value(json_object_get(ev, "type")), "message.delivered");
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(ev, "data"), "recipient")), "rcpt@example.com");
	json_decref(ev);
	free(b);

	/* The delivery log, two pages. */
	long st;
	char path[160];
	snprintf(path, sizeof(path), "/v1/webhooks/%s/deliveries?limit=20", id);
	json_t *j = api(&e, "GET", path, NULL, &st);
	cr_assert_eq(st, 200);
	cr_assert_eq(json_array_size(json_object_get(j, "data")), 20);
	cr_assert(json_is_true(json_object_get(j, "has_more")));
	json_t *d0 = json_array_get(json_object_get(j, "data"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(d0, "status")), "succeeded");
	cr_assert_eq(json_integer_value(json_object_get(d0, "attempts")), 1);
	cr_assert_eq(json_integer_value(json_object_get(d0, "last_http_status")), 200);
	snprintf(path, sizeof(path), "/v1/webhooks/%s/deliveries?limit=20&after=%s", id,
		 json_string_value(json_object_get(j, "next_cursor")));
	char did[64];
	snprintf(did, sizeof(did), "%s", json_string_value(json_object_get(d0, "id")));
	char evid[64];
	snprintf(evid, sizeof(evid), "%s", json_string_value(json_object_get(d0, "event_id")));
	json_decref(j);
	j = api(&e, "GET", path, NULL, &st);
	cr_assert_eq(st, 200);
	cr_assert_eq(json_array_size(json_object_get(j, "data")), 5);
	cr_assert(json_is_false(json_object_get(j, "has_more")));
	json_decref(j);

	/* Manual redelivery: the same webhook-id once more. */
	snprintf(path, sizeof(path), "/v1/webhooks/%s/deliveries/%s/retry", id, did);
	j = api(&e, "POST", path, NULL, &st);
	cr_assert_eq(st, 202);
	json_decref(j);
	cr_assert_eq(wait_sql(e.db, "SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded' AND attempts = 2",
			      "1", 10000), 0, "the manual redelivery was not made");
	cr_assert_eq(th_receiver_count_id(rx, evid), 2);
	snprintf(path, sizeof(path), "/v1/webhooks/%s/deliveries/dlv_999999/retry", id);
	j = api(&e, "POST", path, NULL, &st);
	cr_assert_eq(st, 404);
	json_decref(j);

	/* Operators see attempts and the backlog. */
	char murl[128];
	struct th_http m;
	snprintf(murl, sizeof(murl), "%s/metrics", e.base);
	cr_assert_eq(th_http("GET", murl, NULL, NULL, &m), 0);
	cr_assert(strstr(m.body, "mailferry_webhook_attempts_total{outcome=\"succeeded\"}") != NULL, "%s", m.body);
	cr_assert(strstr(m.body, "mailferry_webhook_deliveries{status=\"pending\"}") != NULL, "%s", m.body);
	th_http_free(&m);
	/* Once the process has exited nothing more can arrive: 25 events
	 * once each, one of them redelivered by hand, none to the endpoint
	 * subscribed to another type. */
	cr_assert_eq(th_proc_stop(e.serve, 8000), 0, "serve did not stop cleanly");
	cr_assert_eq(th_receiver_requests(rx), 26);
	cr_assert_eq(th_receiver_max_per_id(rx), 2);
	cr_assert_eq(th_receiver_requests(rx2), 0);
	free(id);
	free(id2);
	env_stop(&e);
	th_receiver_free(rx);
	th_receiver_free(rx2);
}

Test(webhooks, two_failures_then_success_is_three_attempts)
{
	struct th_receiver *rx = th_receiver_start("500,500,200");
	struct env e;
	env_start(&e, NULL);
	char secret[80];
	char *id = create_webhook(&e, th_receiver_port(rx), NULL, secret, sizeof(secret));
	th_receiver_set_secrets(rx, secret, NULL);
	make_events(e.db, 1, "message.deferred");
	cr_assert_geq(th_receiver_wait_ok(rx, 1, 15000), 0);
	cr_assert_eq(wait_sql(e.db, "SELECT status || ' ' || attempts || ' ' || last_http_status FROM webhook_deliveries",
			      "succeeded 3 200", 5000), 0);
	cr_assert_eq(th_receiver_requests(rx), 3);
	cr_assert_eq(th_receiver_max_per_id(rx), 3, "three attempts, one webhook-id");
	cr_assert_eq(th_receiver_bad(rx), 0, "every attempt freshly and validly signed");
	char *fs = th_sql(e.db, "SELECT failing_since IS NULL FROM webhooks");
	cr_assert_str_eq(fs, "t", "a success resets the failure clock");
	free(fs);
	free(id);
	env_stop(&e);
	th_receiver_free(rx);
}

Test(webhooks, retries_end_when_the_schedule_does)
{
	struct th_receiver *rx = th_receiver_start("503");
	struct env e;
	env_start(&e, NULL);
	char secret[80];
	char *id = create_webhook(&e, th_receiver_port(rx), NULL, secret, sizeof(secret));
	th_receiver_set_secrets(rx, secret, NULL);
	make_events(e.db, 1, "message.failed");
	cr_assert_eq(wait_sql(e.db, "SELECT status || ' ' || attempts FROM webhook_deliveries", "failed 3", 15000), 0);
	char *err = th_sql(e.db, "SELECT last_error FROM webhook_deliveries");
	cr_assert(err && strstr(err, "HTTP 503") != NULL, "%s", err);
	free(err);
	char *en = th_sql(e.db, "SELECT enabled FROM webhooks");
	cr_assert_str_eq(en, "t", "not 410, not three days: still enabled");
	free(en);
	free(id);
	env_stop(&e);
	th_receiver_free(rx);
}

/*
 * A receiver that accepts and never answers: the attempt ends after
 * webhook_timeout (1 s) and is recorded as a timeout, not as final; the
 * retry reaches the receiver; once it answers, the delivery succeeds.
 */
Test(webhooks, timeout_is_recorded_and_retried)
{
	struct th_receiver *rx = th_receiver_start("200");
	cr_assert_not_null(rx);
	th_receiver_hold(rx, 1);
	struct env e;
	const char *const env_timeout[] = { "MAILFERRY_ROLES=api,webhooks", "MAILFERRY_WEBHOOK_ALLOW_PRIVATE=yes",
					    "MAILFERRY_WEBHOOK_RETRY_SCHEDULE=1s,1s,1s,1s,1s,1s,1s,1s,1s,1s",
					    "MAILFERRY_WEBHOOK_TIMEOUT=1", NULL };
	env_start(&e, env_timeout);
	char secret[80];
	char *id = create_webhook(&e, th_receiver_port(rx), NULL, secret, sizeof(secret));
	th_receiver_set_secrets(rx, secret, NULL);
	make_events(e.db, 1, "message.delivered");
	cr_assert_eq(wait_sql(e.db, "SELECT attempts >= 1 AND last_error IS NOT NULL FROM webhook_deliveries", "t", 30000),
		     0, "no attempt was recorded");
	char *got = th_sql(e.db, "SELECT status || ' ' || coalesce(last_http_status::text, '-') || ' ' || last_error"
				 " FROM webhook_deliveries");
	cr_assert_not_null(got);
	cr_assert(strncmp(got, "pending - ", 10) == 0 || strncmp(got, "sending - ", 10) == 0,
		  "a timeout must be retried, not final: %s", got);
	cr_assert(strcasestr(got, "timeout") != NULL || strcasestr(got, "timed out") != NULL, "%s", got);
	free(got);
	/* The retry reaches the receiver: a second request waits in the hold. */
	long t0 = th_now_ms();
	while (th_receiver_held(rx) < 2 && th_now_ms() - t0 < 30000)
		usleep(20000);
	cr_assert_geq(th_receiver_held(rx), 2, "no second attempt reached the receiver");
	th_receiver_hold(rx, 0);
	cr_assert_eq(wait_sql(e.db, "SELECT status FROM webhook_deliveries", "succeeded", 30000), 0);
	/* Both held requests finish once released; the one the dispatcher
	 * gave up on may finish after the retry's answer was recorded. */
	t0 = th_now_ms();
	while (th_receiver_requests(rx) < 2 && th_now_ms() - t0 < 10000)
		usleep(20000);
	cr_assert_geq(th_receiver_requests(rx), 2);
	cr_assert_eq(th_receiver_bad(rx), 0);
	/* The dispatcher classified it as a timeout and chose to retry. */
	char *out = NULL;
	cr_assert_eq(th_run(&out, "grep -c 'event=webhook_attempt .* result=timeout .* outcome=pending' '%s'",
			    e.serve->log), 0, "no attempt logged with result=timeout outcome=pending: %s", out);
	free(out);
	free(id);
	env_stop(&e);
	th_receiver_free(rx);
}

Test(webhooks, gone_disables_the_endpoint)
{
	struct th_receiver *rx = th_receiver_start("410");
	struct env e;
	env_start(&e, NULL);
	char secret[80];
	char *id = create_webhook(&e, th_receiver_port(rx), NULL, secret, sizeof(secret));
	th_receiver_set_secrets(rx, secret, NULL);
	make_events(e.db, 1, "message.delivered");
	cr_assert_eq(wait_sql(e.db, "SELECT enabled FROM webhooks", "f", 10000), 0, "410 must disable");
	long st;
	char path[128];
	snprintf(path, sizeof(path), "/v1/webhooks/%s", id);
	json_t *j = api(&e, "GET", path, NULL, &st);
	cr_assert(json_is_false(json_object_get(j, "enabled")));
	cr_assert(strstr(json_string_value(json_object_get(j, "disabled_reason")), "410") != NULL);
	json_decref(j);
	char *ev = th_sql(e.db, "SELECT count(*) FROM events WHERE type = 'webhook.disabled'");
	cr_assert_str_eq(ev, "1");
	free(ev);
	/* Events while disabled are not queued for it (the feed has them):
	 * the fan-out happens in the event's own transaction, so the count is
	 * final at once; that none was sent is checked after the process exits. */
	make_events(e.db, 3, "message.delivered");
	char *q = th_sql(e.db, "SELECT count(*) FROM webhook_deliveries");
	cr_assert_str_eq(q, "1");
	free(q);
	/* Re-enabled, it receives new events again. */
	th_receiver_set_script(rx, "200");
	j = api(&e, "PATCH", path, "{\"enabled\":true}", &st);
	cr_assert_eq(st, 200);
	cr_assert(json_is_null(json_object_get(j, "disabled_reason")));
	json_decref(j);
	make_events(e.db, 2, "message.delivered");
	cr_assert_geq(th_receiver_wait_ok(rx, 2, 10000), 0);
	cr_assert_eq(th_receiver_bad(rx), 0);
	cr_assert_eq(th_proc_stop(e.serve, 8000), 0, "serve did not stop cleanly");
	cr_assert_eq(th_receiver_requests(rx), 3, "the 410, then the two events after re-enabling, nothing else");
	free(id);
	env_stop(&e);
	th_receiver_free(rx);
}

Test(webhooks, rotation_signs_with_both_secrets)
{
	struct th_receiver *rx = th_receiver_start("200");
	struct env e;
	env_start(&e, NULL);
	char secret[80];
	/* A host name: resolved, checked and pinned by the dispatcher. */
	char *id = create_webhook_at(&e, "localhost", th_receiver_port(rx), NULL, secret, sizeof(secret));
	long st;
	char path[128];
	snprintf(path, sizeof(path), "/v1/webhooks/%s/rotate", id);
	json_t *j = api(&e, "POST", path, NULL, &st);
	cr_assert_eq(st, 200);
	char *fresh = xstrdup(json_string_value(json_object_get(j, "secret")));
	json_decref(j);
	/* A receiver that still knows only the old secret keeps verifying. */
	th_receiver_set_secrets(rx, secret, NULL);
	make_events(e.db, 1, "message.delivered");
	cr_assert_geq(th_receiver_wait_ok(rx, 1, 10000), 0);
	cr_assert_eq(th_receiver_bad(rx), 0);
	char *h = th_receiver_last_headers(rx);
	char *sig = strstr(h, "webhook-signature: v1,");
	cr_assert_not_null(sig, "%s", h);
	cr_assert(strstr(sig, " v1,") != NULL && strstr(sig, " v1,") < strchr(sig, '\n'), "two signatures: %s", h);
	free(h);
	/* And one that knows only the new secret verifies too. */
	th_receiver_set_secrets(rx, fresh, NULL);
	make_events(e.db, 1, "message.delivered");
	cr_assert_geq(th_receiver_wait_ok(rx, 2, 10000), 0);
	cr_assert_eq(th_receiver_bad(rx), 0);
	free(fresh);
	free(id);
	env_stop(&e);
	th_receiver_free(rx);
}

Test(webhooks, kill_during_dispatch_loses_nothing)
{
	struct th_receiver *rx = th_receiver_start("200");
	th_receiver_set_delay_ms(rx, 400);
	struct env e;
	env_start(&e, NULL);
	char secret[80];
	char *id = create_webhook(&e, th_receiver_port(rx), NULL, secret, sizeof(secret));
	th_receiver_set_secrets(rx, secret, NULL);
	make_events(e.db, 40, "message.delivered");
	long t0 = th_now_ms();
	while (th_receiver_requests(rx) < 6 && th_now_ms() - t0 < 15000)
		usleep(10000);
	cr_assert_geq(th_receiver_requests(rx), 6);
	/* Mid-dispatch: the receiver stops answering, so the deliveries in
	 * flight stay leased, and the process is killed holding them (without
	 * the hold the kill could land between two batches, with nothing
	 * leased, and test nothing). */
	th_receiver_hold(rx, 1);
	/* A request caught by the hold is a delivery that cannot finish: its
	 * row stays leased through the kill.  (Seeing a 'sending' row was not
	 * enough: the requests answered just before the hold could be recorded
	 * between that look and the kill, before the next batch was leased.) */
	t0 = th_now_ms();
	while (th_receiver_held(rx) < 1 && th_now_ms() - t0 < 10000)
		usleep(5000);
	cr_assert_geq(th_receiver_held(rx), 1, "no request reached the hold");
	cr_assert_eq(wait_sql(e.db, "SELECT count(*) > 0 FROM webhook_deliveries WHERE status = 'sending'", "t", 5000), 0);
	kill(e.serve->pid, SIGKILL);
	waitpid(e.serve->pid, NULL, 0);
	e.serve->pid = 0;
	int got_before = th_receiver_distinct_ok(rx);
	th_receiver_hold(rx, 0);
	cr_assert_lt(got_before, 40, "the kill came too late to test anything");
	char *leased = th_sql(e.db, "SELECT count(*) > 0 FROM webhook_deliveries WHERE status = 'sending'");
	cr_assert_str_eq(leased, "t", "the dead process held leases");
	free(leased);
	th_proc_free(e.serve);
	e.serve = th_serve_start(e.db, serve_env);
	cr_assert_not_null(e.serve);
	/* Leases of the dead process expire after webhook_timeout + 5 s. */
	cr_assert_geq(th_receiver_wait_ok(rx, 40, 40000), 0, "got %d of 40", th_receiver_distinct_ok(rx));
	cr_assert_eq(wait_sql(e.db, "SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'", "40", 10000), 0);
	cr_assert_eq(th_receiver_bad(rx), 0, "duplicates carry the same webhook-id and valid signatures");
	cr_assert_geq(th_receiver_requests(rx), 40);
	free(id);
	env_stop(&e);
	th_receiver_free(rx);
}

Test(webhooks, events_feed_in_commit_order_with_cursor)
{
	struct env e;
	const char *const env_api[] = { "MAILFERRY_ROLES=api", NULL };
	env_start(&e, env_api);
	make_events(e.db, 7, "message.queued");
	long st;
	char path[256];
	char cursor[128] = "";
	int total = 0;
	char seen[7 * 48] = "";
	long t0 = th_now_ms();
	/* Pages of 3 until the 7 are read (the horizon may lag a moment). */
	while (total < 7 && th_now_ms() - t0 < 10000) {
		snprintf(path, sizeof(path), "/v1/events?limit=3%s%s", *cursor ? "&after=" : "", cursor);
		json_t *j = api(&e, "GET", path, NULL, &st);
		cr_assert_eq(st, 200);
		json_t *data = json_object_get(j, "data");
		cr_assert_leq(json_array_size(data), 3);
		for (size_t i = 0; i < json_array_size(data); i++) {
			json_t *ev = json_array_get(data, i);
			const char *eid = json_string_value(json_object_get(ev, "id"));
			cr_assert(eid && strncmp(eid, "evt_", 4) == 0);
			cr_assert_lt(total, 7, "more events than were made");
			size_t len = strlen(seen);
			snprintf(seen + len, sizeof(seen) - len, "%s%s", total ? "," : "", eid);
			cr_assert_str_eq(json_string_value(json_object_get(ev, "type")), "message.queued");
			total++;
		}
		const char *nc = json_string_value(json_object_get(j, "next_cursor"));
		if (nc)
			snprintf(cursor, sizeof(cursor), "%s", nc);
		json_decref(j);
		if (json_array_size(data) == 0)
			usleep(50000);
	}
	cr_assert_eq(total, 7);
	/* Each once, in commit order (one transaction: in id order). */
	char *want = th_sql(e.db, "SELECT string_agg(mf_event_id(public_id), ',' ORDER BY txid, id) FROM events");
	cr_assert_str_eq(seen, want);
	free(want);
	/* Polling with the cursor: nothing new, then exactly the new ones. */
	snprintf(path, sizeof(path), "/v1/events?after=%s", cursor);
	json_t *j = api(&e, "GET", path, NULL, &st);
	cr_assert_eq(json_array_size(json_object_get(j, "data")), 0);
	cr_assert_str_eq(json_string_value(json_object_get(j, "next_cursor")), cursor);
	json_decref(j);
	make_events(e.db, 2, "message.delivered");
	size_t n = 0;
	t0 = th_now_ms();
	while (n < 2 && th_now_ms() - t0 < 10000) {
		j = api(&e, "GET", path, NULL, &st);
		n = json_array_size(json_object_get(j, "data"));
		if (n == 2)
			cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(j, "data"), 0), "type")),
					 "message.delivered");
		json_decref(j);
		if (n < 2)
			usleep(50000);
	}
	cr_assert_eq(n, 2);
	j = api(&e, "GET", "/v1/events?after=bogus!", NULL, &st);
	cr_assert_eq(st, 422);
	json_decref(j);
	j = api(&e, "GET", "/v1/events?limit=0", NULL, &st);
	cr_assert_eq(st, 422);
	json_decref(j);
	env_stop(&e);
}

/* Records n events for recipient rcpt in one transaction of its own;
 * returns that transaction's id. */
static long long event_tx(const char *db, const char *rcpt, int n)
{
	char *sql = xasprintf("SELECT count(mf_record_event(%s, 'message.queued')) || ':' || pg_current_xact_id()"
			      " FROM generate_series(1, %d)", rcpt, n);
	char *v = th_sql(db, sql);
	free(sql);
	cr_assert(v && strchr(v, ':'), "recording events failed");
	cr_assert_eq(strtol(v, NULL, 10), n);
	long long tx = strtoll(strchr(v, ':') + 1, NULL, 10);
	free(v);
	return tx;
}

/* The feed's cursor is the transaction id: paged a few events at a time,
 * it returns every event exactly once and in commit order even where the
 * ids gain a digit (999 -> 1000 sorts the other way round as text).  The
 * cluster is the test's own, so that the ids burnt to reach the boundary
 * are not shared with tests running in parallel. */
Test(webhooks, events_feed_pages_across_a_txid_digit_boundary)
{
	char *dir = th_tmpdir("feedtxid");
	cr_assert_not_null(dir);
	char *db = th_cluster_start(dir);
	cr_assert_not_null(db);
	char *out = NULL;
	cr_assert_eq(th_run(&out, "MAILFERRY_DATABASE_URL='%s' %s migrate", db, th_bin()), 0, "%s", out);
	free(out);
	char key[160], auth[200], base[64];
	make_key(db, "read", key, sizeof(key));
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
	char *rcpt = th_sql(db, "WITH m AS (INSERT INTO messages (id, mail_from, from_header, message_id_hdr, size)"
				" VALUES (gen_random_uuid(), 'a@example.org', 'a@example.org', 'x@example.org', 10)"
				" RETURNING id)"
				" INSERT INTO recipients (message_id, position, email, domain, kind, status)"
				" SELECT id, 0, 'rcpt@example.com', 'example.com', 'to', 'queued' FROM m RETURNING id");
	cr_assert(rcpt && *rcpt);

	/* Two events before the boundary, with fewer digits. */
	long long first = event_tx(db, rcpt, 1);
	event_tx(db, rcpt, 1);
	long long boundary = 1000;
	while (boundary <= first + 20)
		boundary *= 10;
	cr_assert_leq(boundary, 100000, "the cluster is too far along: txid %lld", first);
	/* Burn ids up to just below it, one transaction each (a DO block may
	 * commit between statements). */
	char *sql = xasprintf("DO $$ BEGIN PERFORM set_config('synchronous_commit', 'off', false);"
			      " WHILE txid_current() < %lld LOOP COMMIT; END LOOP; END $$", boundary - 5);
	char *v = th_sql(db, sql);
	cr_assert_not_null(v, "burning transaction ids failed");
	free(v);
	free(sql);
	/* Transactions of 1, 2 or 3 events until two are past the boundary
	 * (something else in the cluster may take an id in between). */
	long long tx = 0;
	for (int i = 0; i < 20 && tx < boundary + 1; i++)
		tx = event_tx(db, rcpt, 1 + i % 3);
	cr_assert_geq(tx, boundary + 1);
	sql = xasprintf("SELECT count(*) FILTER (WHERE txid::text::bigint < %lld) > 2"
			" AND count(*) FILTER (WHERE txid::text::bigint >= %lld) > 2 FROM events", boundary, boundary);
	v = th_sql(db, sql);
	cr_assert(v && strcmp(v, "t") == 0, "the events do not straddle txid %lld", boundary);
	free(v);
	free(sql);
	/* One at a time, each committed before the next began: commit order
	 * is the order of the internal ids. */
	char *want = th_sql(db, "SELECT string_agg(payload->>'id', ',' ORDER BY id) FROM events");
	char *nstr = th_sql(db, "SELECT count(*) FROM events");
	int total = (int)strtol(nstr, NULL, 10);
	free(nstr);

	const char *const env_api[] = { "MAILFERRY_ROLES=api", NULL };
	struct th_proc *serve = th_serve_start(db, env_api);
	cr_assert_not_null(serve);
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", serve->port);
	const char *hdrs[] = { auth, NULL };
	char seen[4096] = "";
	size_t seenlen = 0;
	char cursor[128] = "";
	int got = 0, pages = 0;
	long t0 = th_now_ms();
	while (got < total && th_now_ms() - t0 < 20000) {
		char url[512];
		snprintf(url, sizeof(url), "%s/v1/events?limit=2%s%s", base, *cursor ? "&after=" : "", cursor);
		struct th_http r;
		cr_assert_eq(th_http("GET", url, hdrs, NULL, &r), 0);
		cr_assert_eq(r.status, 200, "%s", r.body);
		json_error_t jerr;
		json_t *j = json_loads(r.body, 0, &jerr);
		th_http_free(&r);
		cr_assert_not_null(j);
		json_t *data = json_object_get(j, "data");
		cr_assert_leq(json_array_size(data), 2);
		for (size_t i = 0; i < json_array_size(data); i++) {
			const char *eid = json_string_value(json_object_get(json_array_get(data, i), "id"));
			cr_assert_not_null(eid);
			cr_assert_lt(got, total, "more events than were made: %s,%s", seen, eid);
			seenlen += (size_t)snprintf(seen + seenlen, sizeof(seen) - seenlen, "%s%s", got ? "," : "", eid);
			cr_assert_lt(seenlen, sizeof(seen));
			got++;
		}
		const char *nc = json_string_value(json_object_get(j, "next_cursor"));
		if (nc)
			snprintf(cursor, sizeof(cursor), "%s", nc);
		if (json_array_size(data) == 0)
			usleep(50000);
		else
			pages++;
		json_decref(j);
	}
	cr_assert_eq(got, total, "the feed returned %d of %d events: %s", got, total, seen);
	cr_assert_str_eq(seen, want, "each once, in commit order");
	cr_assert_geq(pages, total / 2);
	cr_assert_eq(th_proc_stop(serve, 8000), 0);
	th_proc_free(serve);
	free(want);
	free(rcpt);
	th_cluster_stop(dir);
	th_rmrf(dir);
	free(dir);
	free(db);
}

/* Waits for the receiver's first request; returns its webhook-id. */
static char *first_webhook_id(struct th_receiver *rx)
{
	cr_assert_geq(th_receiver_wait_ok(rx, 1, 15000), 0, "no webhook arrived");
	char *h = th_receiver_last_headers(rx);
	char *p = strstr(h, "webhook-id: ");
	cr_assert_not_null(p, "%s", h);
	p += strlen("webhook-id: ");
	char *id = xstrndup(p, strcspn(p, "\r\n"));
	free(h);
	return id;
}

/* One install's first event: a message accepted through the API.  Its id
 * is the webhook-id the receiver sees, the body's id, the feed's id, the
 * message timeline's id, the delivery log's event_id and the id
 * `mailferry status` prints.  Returns it. */
static char *first_event_everywhere(struct env *e, struct th_receiver *rx)
{
	char secret[128];
	char *wh = create_webhook(e, th_receiver_port(rx), NULL, secret, sizeof(secret));
	th_receiver_set_secrets(rx, secret, NULL);
	long st;
	json_t *j = api(e, "POST", "/v1/messages",
			"{\"from\":\"a@example.org\",\"to\":\"r@example.com\",\"subject\":\"S\",\"text\":\"T\"}", &st);
	cr_assert_eq(st, 202);
	char *msg = xstrdup(json_string_value(json_object_get(j, "id")));
	json_decref(j);

	char *id = first_webhook_id(rx);
	cr_assert_eq(th_receiver_bad(rx), 0);
	char *body = th_receiver_last_body(rx);
	json_error_t jerr;
	j = json_loads(body, 0, &jerr);
	cr_assert_not_null(j, "%s", body);
	const char *body_id = json_string_value(json_object_get(j, "id"));
	cr_assert(body_id && strcmp(body_id, id) == 0, "the body's id is the webhook-id %s: %s", id, body);
	cr_assert_str_eq(json_string_value(json_object_get(j, "type")), "message.queued");
	json_decref(j);
	free(body);

	j = api(e, "GET", "/v1/events", NULL, &st);
	long t0 = th_now_ms();
	while (json_array_size(json_object_get(j, "data")) == 0 && th_now_ms() - t0 < 10000) {
		json_decref(j);
		usleep(50000);
		j = api(e, "GET", "/v1/events", NULL, &st);
	}
	cr_assert_eq(json_array_size(json_object_get(j, "data")), 1);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(j, "data"), 0), "id")), id);
	json_decref(j);

	char path[256];
	snprintf(path, sizeof(path), "/v1/messages/%s", msg);
	j = api(e, "GET", path, NULL, &st);
	cr_assert_eq(st, 200);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(j, "events"), 0), "id")), id);
	json_decref(j);

	snprintf(path, sizeof(path), "/v1/webhooks/%s/deliveries", wh);
	j = api(e, "GET", path, NULL, &st);
	cr_assert_eq(st, 200);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(j, "data"), 0), "event_id")),
			 id);
	json_decref(j);

	char *out = NULL;
	cr_assert_eq(th_run(&out, "MAILFERRY_DATABASE_URL='%s' %s status %s --json", e->db, th_bin(), msg), 0, "%s",
		     out);
	/* status --json prints the API's message document: its timeline's
	 * first event is this one. */
	json_t *doc = json_loads(out, 0, NULL);
	cr_assert_not_null(doc, "status --json is not JSON: %s", out);
	json_t *ev0 = json_array_get(json_object_get(doc, "events"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(ev0, "id")), id, "status: %s", out);
	json_decref(doc);
	free(out);
	free(msg);
	free(wh);
	return id;
}

/* Two installs (two databases) each send their first event: the ids
 * differ, so a consumer deduplicating on webhook-id across them (or
 * across a restored backup) drops nothing. */
Test(webhooks, event_ids_are_unique_across_installs)
{
	struct th_receiver *rx_a = th_receiver_start("200");
	struct th_receiver *rx_b = th_receiver_start("200");
	struct env a, b;
	env_start(&a, NULL);
	env_start(&b, NULL);
	char *id_a = first_event_everywhere(&a, rx_a);
	char *id_b = first_event_everywhere(&b, rx_b);
	cr_assert_str_neq(id_a, id_b, "two installs gave their first events the same id");
	/* evt_ and a UUIDv7 (RFC 9562 section 5.7). */
	for (int k = 0; k < 2; k++) {
		const char *id = k ? id_b : id_a;
		cr_assert(strncmp(id, "evt_", 4) == 0 && uuid_valid(id + 4) && id[4 + 14] == '7', "%s", id);
	}
	free(id_a);
	free(id_b);
	env_stop(&a);
	env_stop(&b);
	th_receiver_free(rx_a);
	th_receiver_free(rx_b);
}

/* The guard holds at send time too: an endpoint whose address is internal
 * (here stored directly, as if its DNS had changed after creation) gets
 * nothing while webhook_allow_private = no. */
Test(webhooks, dispatcher_refuses_internal_addresses)
{
	struct th_receiver *rx = th_receiver_start("200");
	struct env e;
	const char *const env_strict[] = { "MAILFERRY_ROLES=api,webhooks", "MAILFERRY_WEBHOOK_RETRY_SCHEDULE=1s,1s",
					   NULL };
	env_start(&e, env_strict);
	char port[16];
	snprintf(port, sizeof(port), "%d", th_receiver_port(rx));
	char *sql = xasprintf("INSERT INTO webhooks (public_id, url, secret) VALUES"
			      " ('wh_a', 'http://127.0.0.1:%s/hook', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'),"
			      " ('wh_b', 'http://2130706433:%s/hook', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'),"
			      " ('wh_c', 'http://[::ffff:127.0.0.1]:%s/hook', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'),"
			      " ('wh_d', 'http://localhost:%s/hook', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')",
			      port, port, port, port);
	free(th_sql(e.db, sql));
	free(sql);
	make_events(e.db, 1, "message.delivered");
	cr_assert_eq(wait_sql(e.db, "SELECT count(*) FROM webhook_deliveries WHERE status = 'failed'"
				    " AND attempts = 3 AND last_error LIKE '%not allowed%'", "4", 15000), 0);
	cr_assert_eq(th_receiver_requests(rx), 0, "nothing reached the loopback receiver");
	env_stop(&e);
	th_receiver_free(rx);
}

/* Redirects are not followed (a 3xx is a failed attempt), and Retry-After
 * postpones the next attempt beyond the 1 s schedule. */
Test(webhooks, no_redirects_and_retry_after)
{
	struct th_receiver *rx = th_receiver_start("302,503,200");
	th_receiver_set_retry_after(rx, 3);
	struct env e;
	env_start(&e, NULL);
	char secret[80];
	char *id = create_webhook(&e, th_receiver_port(rx), NULL, secret, sizeof(secret));
	th_receiver_set_secrets(rx, secret, NULL);
	make_events(e.db, 1, "message.delivered");
	cr_assert_eq(wait_sql(e.db, "SELECT attempts || ' ' || last_http_status FROM webhook_deliveries", "1 302", 5000),
		     0, "the redirect must not be followed within the attempt");
	char *gap = th_sql(e.db, "SELECT extract(epoch FROM next_attempt_at - last_attempt_at) >= 2.9"
				 " FROM webhook_deliveries");
	cr_assert_str_eq(gap, "t", "Retry-After: 3 outweighs the 1 s schedule");
	free(gap);
	cr_assert_geq(th_receiver_wait_ok(rx, 1, 15000), 0);
	cr_assert_eq(wait_sql(e.db, "SELECT status || ' ' || attempts FROM webhook_deliveries", "succeeded 3", 10000), 0);
	cr_assert_eq(th_receiver_requests(rx), 3, "302, 503, 200: no request to the redirect target");
	free(id);
	env_stop(&e);
	th_receiver_free(rx);
}

static char *read_file(const char *path)
{
	char *out = NULL;
	cr_assert_eq(th_run(&out, "cat '%s'", path), 0);
	return out;
}

/* TLS certificates are verified: a self-signed endpoint gets nothing. */
Test(webhooks, tls_is_verified)
{
	char *dir = th_tmpdir("whtls");
	cr_assert_not_null(dir);
	char *out = NULL;
	cr_assert_eq(th_run(&out, "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
				  " -keyout '%s/key.pem' -out '%s/cert.pem' -days 1 -subj /CN=127.0.0.1"
				  " -addext subjectAltName=IP:127.0.0.1", dir, dir), 0, "%s", out);
	free(out);
	char kp[512], cp[512];
	snprintf(kp, sizeof(kp), "%s/key.pem", dir);
	snprintf(cp, sizeof(cp), "%s/cert.pem", dir);
	char *key = read_file(kp), *cert = read_file(cp);
	struct th_receiver *rx = th_receiver_start_tls("200", key, cert);
	cr_assert_not_null(rx);
	struct env e;
	env_start(&e, NULL);
	char body[256];
	snprintf(body, sizeof(body), "{\"url\":\"https://127.0.0.1:%d/hook\"}", th_receiver_port(rx));
	long st;
	json_t *j = api(&e, "POST", "/v1/webhooks", body, &st);
	cr_assert_eq(st, 201);
	json_decref(j);
	make_events(e.db, 1, "message.delivered");
	cr_assert_eq(wait_sql(e.db, "SELECT attempts >= 1 AND last_http_status IS NULL AND"
				    " last_error ILIKE '%peer certificate%'"
				    " FROM webhook_deliveries", "t", 10000), 0);
	cr_assert_eq(th_receiver_requests(rx), 0, "no request over an unverified connection");
	env_stop(&e);
	th_receiver_free(rx);
	free(key);
	free(cert);
	th_rmrf(dir);
	free(dir);
}
