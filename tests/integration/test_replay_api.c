/*
 * Integration tests for POST /v1/messages/{id}/retry and POST /v1/replays
 * against a running "mailferry serve": scopes, validation, dry runs,
 * idempotency and the requeue events.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "th_assert.h"

/* Creates a key with scopes; writes "Authorization: Bearer ..." into hdr. */
static void make_key(const char *url, const char *scopes, char *hdr, size_t hdrsz)
{
	char *out = NULL;
	cr_assert_eq(th_run(&out, "MAILFERRY_DATABASE_URL='%s' %s keys create --name t --scopes %s --json", url,
			    th_bin(), scopes), 0, "%s", out);
	char key[160] = "";
	char *k = strstr(out, "\"key\":\"");
	cr_assert_not_null(k, "%s", out);
	sscanf(k + 7, "%159[^\"]", key);
	snprintf(hdr, hdrsz, "Authorization: Bearer %s", key);
	free(out);
}

/* n bounced messages of key_id to domain, 1 recipient each. */
static void seed(const char *url, int n, int key_id, const char *domain)
{
	char sql[1536];
	snprintf(sql, sizeof(sql),
		 "WITH m AS (INSERT INTO messages (id, api_key_id, mail_from, from_header, message_id_hdr, size, body, status)"
		 " SELECT gen_random_uuid(), %d, 'a@src.test', 'a@src.test', 'mid' || g, 4, 'body', 'bounced'"
		 " FROM generate_series(1, %d) g RETURNING id)"
		 " INSERT INTO recipients (message_id, position, email, domain, kind, status, attempts, bounce_type)"
		 " SELECT m.id, 1, 'u.' || substr(m.id::text, 1, 8) || '@%s', '%s', 'to', 'bounced', 1, 'permanent' FROM m",
		 key_id, n, domain, domain);
	char *r = th_sql(url, sql);
	cr_assert_not_null(r);
	free(r);
}

Test(replay_api, retry_and_bulk_replay)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	char admin[256], sender[256], other[256];
	make_key(url, "admin", admin, sizeof(admin));   /* id 1 */
	make_key(url, "send", sender, sizeof(sender));  /* id 2 */
	make_key(url, "send", other, sizeof(other));    /* id 3 */
	seed(url, 12, 2, "x.test");
	seed(url, 4, 3, "y.test");
	struct th_proc *p = th_serve_start(url, NULL);
	cr_assert_not_null(p);
	char u[256];
	struct th_http r;
	const char *h_admin[] = { admin, "Content-Type: application/json", NULL };
	const char *h_send[] = { sender, "Content-Type: application/json", NULL };
	const char *h_other[] = { other, NULL };

	/* Bulk replay needs admin. */
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/v1/replays", p->port);
	cr_assert_eq(th_http("POST", u, h_send, "{\"status\":[\"bounced\"]}", &r), 0);
	cr_assert_eq(r.status, 403, "%ld %s", r.status, r.body);
	th_http_free(&r);
	/* Validation: status required, bad values named. */
	cr_assert_eq(th_http("POST", u, h_admin, "{\"recipient_domain\":\"x.test\",\"created_after\":\"yesterday\"}", &r), 0);
	cr_assert_eq(r.status, 422, "%s", r.body);
	cr_assert(strstr(r.body, "\"field\":\"status\"") && strstr(r.body, "\"field\":\"created_after\""), "%s", r.body);
	th_http_free(&r);
	cr_assert_eq(th_http("POST", u, h_admin, "{\"status\":[\"delivered\"]}", &r), 0);
	cr_assert_eq(r.status, 422, "%s", r.body);
	th_http_free(&r);
	cr_assert_eq(th_http("POST", u, h_admin, "not json", &r), 0);
	cr_assert_eq(r.status, 400, "%s", r.body);
	th_http_free(&r);

	/* Dry run: counts and a sample, nothing changes. */
	cr_assert_eq(th_http("POST", u, h_admin,
			     "{\"status\":[\"bounced\",\"failed\"],\"recipient_domain\":\"x.test\",\"dry_run\":true,"
			     "\"created_after\":\"2000-01-01T00:00:00Z\",\"sample\":3}", &r), 0);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert(strstr(r.body, "\"matched\":12") && strstr(r.body, "\"requeued\":0"), "%s", r.body);
	cr_assert(strstr(r.body, "\"sample\":[{"), "%s", r.body);
	cr_assert(strstr(r.body, "@x.test") && !strstr(r.body, "@y.test"), "%s", r.body);
	th_http_free(&r);
	th_sql_eq(url, "SELECT count(*) FROM recipients WHERE status = 'queued'", "0");

	/* The real replay, twice. */
	const char *body = "{\"status\":[\"bounced\"],\"recipient_domain\":\"x.test\"}";
	cr_assert_eq(th_http("POST", u, h_admin, body, &r), 0);
	cr_assert_eq(r.status, 202, "%s", r.body);
	cr_assert(strstr(r.body, "\"matched\":12") && strstr(r.body, "\"requeued\":12"), "%s", r.body);
	th_http_free(&r);
	cr_assert_eq(th_http("POST", u, h_admin, body, &r), 0);
	cr_assert_eq(r.status, 202, "%s", r.body);
	cr_assert(strstr(r.body, "\"matched\":0") && strstr(r.body, "\"requeued\":0"), "%s", r.body);
	th_http_free(&r);
	th_sql_eq(url, "SELECT count(*) FROM recipients WHERE status = 'queued' AND domain = 'x.test'", "12");
	th_sql_eq(url, "SELECT count(*) FROM events WHERE type = 'message.requeued'"
		    " AND payload->'data'->>'requested_by' = 'api_key:1'", "12");

	/* Retry: a send key may retry its own message only. */
	char *mid = th_sql(url, "SELECT message_id FROM recipients WHERE domain = 'y.test' ORDER BY id LIMIT 1");
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/v1/messages/%s/retry", p->port, mid);
	cr_assert_eq(th_http("POST", u, h_send, "", &r), 0);
	cr_assert_eq(r.status, 404, "not its message: %s", r.body);
	th_http_free(&r);
	cr_assert_eq(th_http("POST", u, h_other, "", &r), 0);
	cr_assert_eq(r.status, 202, "%s", r.body);
	cr_assert(strstr(r.body, "\"requeued\":1") && strstr(r.body, mid), "%s", r.body);
	th_http_free(&r);
	cr_assert_eq(th_http("POST", u, h_other, "", &r), 0);
	cr_assert_eq(r.status, 202, "%s", r.body);
	cr_assert(strstr(r.body, "\"requeued\":0"), "second retry is a no-op: %s", r.body);
	th_http_free(&r);
	char q[256];
	snprintf(q, sizeof(q), "SELECT status FROM messages WHERE id = '%s'", mid);
	th_sql_eq(url, q, "queued");
	snprintf(q, sizeof(q), "SELECT payload->'data'->>'requested_by' FROM events WHERE message_id = '%s'", mid);
	th_sql_eq(url, q, "api_key:3");
	free(mid);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/v1/messages/00000000-0000-7000-8000-000000000000/retry", p->port);
	cr_assert_eq(th_http("POST", u, h_admin, "", &r), 0);
	cr_assert_eq(r.status, 404);
	th_http_free(&r);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/v1/messages/not-a-uuid/retry", p->port);
	cr_assert_eq(th_http("POST", u, h_admin, "", &r), 0);
	cr_assert_eq(r.status, 404);
	th_http_free(&r);

	cr_assert_eq(th_proc_stop(p, 10000), 0);
	th_proc_free(p);
	th_db_drop(url);
	free(url);
}
