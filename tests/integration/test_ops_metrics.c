/*
 * What a scrape and an outage show an operator, against a real "mailferry
 * serve": the labelled counters that docs/operations.md's alerts use are
 * exported at 0 right after start (checked by promtool too), and every 503
 * "unavailable" carries Retry-After while PostgreSQL is down.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_helpers.h"
#include "harness.h"

Test(ops_metrics, labelled_counters_exported_at_zero_from_start)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	const char *env[] = { "MAILFERRY_ROLES=api", NULL };
	struct th_proc *p = th_serve_start(url, env);
	cr_assert_not_null(p);
	char u[128];
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/metrics", p->port);
	struct th_http r;
	cr_assert_eq(th_http("GET", u, NULL, NULL, &r), 0);
	cr_assert_eq(r.status, 200);
	static const char *need[] = {
		/* The alerts of docs/operations.md "Alerts worth setting". */
		"\nmailferry_retention_rows_total{kind=\"bodies\"} 0\n",
		"\nmailferry_delivery_outcomes_total{status=\"bounced\",destination=\"other\"} 0\n",
		"\nmailferry_delivery_outcomes_total{status=\"delivered\",destination=\"google\"} 0\n",
		"\nmailferry_smtp_sessions_total{tls=\"none\",verified=\"no\"} 0\n",
		"\nmailferry_http_requests_total{method=\"POST\",route=\"/v1/messages\",status=\"503\"} 0\n",
		/* And the other counters with fixed label sets. */
		"\nmailferry_retention_rows_total{kind=\"idempotency_keys\"} 0\n",
		"\nmailferry_bounces_total{type=\"permanent\",category=\"bad_mailbox\",source=\"dsn\"} 0\n",
		"\nmailferry_webhook_attempts_total{outcome=\"failed\"} 0\n",
		"\nmailferry_replay_requeued_total{via=\"api\"} 0\n",
		"\nmailferry_bounce_listener_messages_total{result=\"stored\"} 0\n",
		"\nmailferry_queue_claimed_total 0\n",
		"\nmailferry_messages_accepted_total 0\n",
	};
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		cr_assert(strstr(r.body, need[i]), "missing %s in:\n%s", need[i] + 1, r.body);
	/* Prometheus' own checker accepts the exposition. */
	char *dir = th_tmpdir("metrics");
	char path[512];
	snprintf(path, sizeof(path), "%s/metrics.txt", dir);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(r.body, f);
	fclose(f);
	char *out = NULL;
	cr_assert_eq(access("/usr/bin/promtool", X_OK), 0, "promtool missing: deploy/bootstrap.sh test installs prometheus");
	cr_assert_eq(th_run(&out, "/usr/bin/promtool check metrics < %s", path), 0, "promtool: %s", out);
	free(out);
	th_http_free(&r);
	th_rmrf(dir);
	free(dir);
	cr_assert_eq(th_proc_stop(p, 10000), 0);
	th_proc_free(p);
	th_db_drop(url);
	free(url);
}

/* Asserts a 503 unavailable with a Retry-After header. */
static void expect_unavailable(struct api_srv *s, const char *method, const char *path, const char *key,
			       const char *body)
{
	struct th_http r;
	cr_assert_eq(api_call(s, method, path, key, NULL, body, &r), 0);
	cr_assert_eq(r.status, 503, "%s %s: %ld %s", method, path, r.status, r.body);
	cr_assert(strstr(r.body, "\"code\":\"unavailable\""), "%s %s: %s", method, path, r.body);
	cr_assert(strcasestr(r.headers, "\nRetry-After: "), "%s %s: no Retry-After in\n%s", method, path, r.headers);
	th_http_free(&r);
}

Test(ops_metrics, every_503_unavailable_carries_retry_after)
{
	char *dir = th_tmpdir("retryafter");
	char *url = th_cluster_start(dir);
	cr_assert_not_null(url);
	char *out = NULL;
	cr_assert_eq(th_run(&out, "MAILFERRY_DATABASE_URL='%s' %s migrate", url, th_bin()), 0, "%s", out);
	free(out);
	struct api_srv s;
	api_srv_start(&s, url, NULL);
	char admin[160];
	cr_assert_eq(api_make_key(url, "send,read,admin", admin, sizeof(admin)), 0);
	char *id = api_send_ok(&s, "{\"from\":\"a@shop.example\",\"to\":\"b@example.net\",\"text\":\"x\"}");
	cr_assert_eq(th_cluster_stop(dir), 0);

	char path[128];
	snprintf(path, sizeof(path), "/v1/messages/%s", id);
	/* The readiness probe, the key check (the admin key was never looked
	 * up, so it is not cached) and, while the send key is still cached,
	 * the handlers' own database errors. */
	expect_unavailable(&s, "GET", "/readyz", "", NULL);
	expect_unavailable(&s, "GET", "/v1/webhooks", admin, NULL);
	for (int i = 0; i < 3; i++) {
		expect_unavailable(&s, "GET", path, NULL, NULL);
		expect_unavailable(&s, "GET", "/v1/messages", NULL, NULL);
		expect_unavailable(&s, "POST", "/v1/messages", NULL,
				   "{\"from\":\"a@shop.example\",\"to\":\"b@example.net\",\"text\":\"x\"}");
		expect_unavailable(&s, "GET", "/v1/suppressions", NULL, NULL);
		expect_unavailable(&s, "GET", "/v1/webhooks", admin, NULL);
		expect_unavailable(&s, "POST", "/v1/replays", admin, "{\"status\":[\"bounced\"]}");
	}
	free(id);
	char *again = th_cluster_start(dir);
	free(again);
	api_srv_stop(&s, 0);
	th_cluster_stop(dir);
	th_rmrf(dir);
	free(dir);
	free(url);
}
