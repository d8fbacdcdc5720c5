/*
 * Integration tests for what "mailferry serve" writes to stderr with
 * log_format = json: every line one JSON object (unique keys, numbers as
 * numbers) even when a libpq error full of quotes is logged; delivery lines
 * keep recipients to their domain unless log_recipients = yes; a database
 * outage gives rate-limited warnings and one db_recovered line.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_helpers.h"
#include "harness.h"
#include "smtp_sink.h"

static char *read_file(const char *path)
{
	char *out = NULL;
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f, "%s", path);
	size_t cap = 0, len = 0;
	char tmp[4096];
	size_t n;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0) {
		if (len + n + 1 > cap) {
			cap = (len + n + 1) * 2;
			out = realloc(out, cap);
			cr_assert_not_null(out);
		}
		memcpy(out + len, tmp, n);
		len += n;
	}
	fclose(f);
	if (out == NULL)
		out = calloc(1, 1);
	out[len] = '\0';
	return out;
}

/*
 * Parses every line of the log as one JSON object with unique keys (fails
 * the test otherwise) and returns them as an array.
 */
static json_t *log_lines(const char *path)
{
	char *text = read_file(path);
	json_t *all = json_array();
	char *save = NULL;
	for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		json_error_t e;
		json_t *j = json_loads(l, JSON_REJECT_DUPLICATES, &e);
		cr_assert_not_null(j, "log line is not one JSON object (%s): %s", e.text, l);
		cr_assert(json_is_object(j), "%s", l);
		json_array_append_new(all, j);
	}
	free(text);
	return all;
}

/* The first line whose "event" is ev, or NULL. */
static json_t *find_event(json_t *lines, const char *ev, size_t *count)
{
	json_t *first = NULL, *j;
	size_t i;
	if (count)
		*count = 0;
	json_array_foreach(lines, i, j) {
		const char *e = json_string_value(json_object_get(j, "event"));
		if (e && strcmp(e, ev) == 0) {
			if (first == NULL)
				first = j;
			if (count)
				(*count)++;
		}
	}
	return first;
}

/* Polls path until it contains needle or timeout_ms passes. */
static int wait_log(const char *path, const char *needle, int timeout_ms)
{
	long t0 = th_now_ms();
	for (;;) {
		char *t = read_file(path);
		int found = strstr(t, needle) != NULL;
		free(t);
		if (found)
			return 0;
		if (th_now_ms() - t0 > timeout_ms)
			return -1;
		usleep(50 * 1000);
	}
}

Test(logs, json_lines_stay_objects_with_quotes_in_libpq_errors)
{
	/* A role name with a quote: libpq's error quotes it again,
	 * FATAL:  role "we"ird" does not exist. */
	const char *pg = getenv("MAILFERRY_TEST_PG_URL");
	cr_assert_not_null(pg);
	const char *at = strstr(pg, "postgres@");
	cr_assert_not_null(at);
	char url[1024];
	snprintf(url, sizeof(url), "%.*swe%%22ird@%s", (int)(at - pg), pg, at + strlen("postgres@"));
	const char *env[] = { "MAILFERRY_LOG_FORMAT=json", "MAILFERRY_LOG_LEVEL=info", NULL };
	struct th_proc *p = th_serve_start(url, env);
	cr_assert_not_null(p);
	/* A request authenticates against the database: another libpq error. */
	char u[128];
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/v1/messages", p->port);
	const char *h[] = { "Authorization: Bearer mf_aaaaaaaaaaaa_secret", NULL };
	struct th_http r;
	cr_assert_eq(th_http("GET", u, h, NULL, &r), 0);
	th_http_free(&r);
	cr_assert_eq(th_proc_stop(p, 10000), 0);

	json_t *lines = log_lines(p->log);
	cr_assert_gt(json_array_size(lines), 3);
	json_t *j = find_event(lines, "database_unavailable", NULL);
	cr_assert_not_null(j, "no database_unavailable line");
	const char *err = json_string_value(json_object_get(j, "error"));
	cr_assert_not_null(err);
	cr_assert(strstr(err, "role \"we\"ird\" does not exist"), "error cut short: %s", err);
	cr_assert_str_eq(json_string_value(json_object_get(j, "note")),
			 "starting anyway; /readyz answers 503 until it is back");
	cr_assert_str_eq(json_string_value(json_object_get(j, "level")), "warn");
	j = find_event(lines, "auth_unavailable", NULL);
	cr_assert_not_null(j, "no auth_unavailable line");
	cr_assert(strstr(json_string_value(json_object_get(j, "error")), "\"we\"ird\""));
	/* Numbers are numbers. */
	j = find_event(lines, "api_listening", NULL);
	cr_assert_not_null(j);
	cr_assert(json_is_integer(json_object_get(j, "port")), "port is not a number");
	cr_assert_eq(json_integer_value(json_object_get(j, "port")), p->port);
	cr_assert(json_is_integer(json_object_get(j, "threads")));
	j = find_event(lines, "starting", NULL);
	cr_assert(json_is_integer(json_object_get(j, "schema")));
	cr_assert(json_is_string(json_object_get(j, "version")));
	json_decref(lines);
	th_proc_free(p);
}

#define BODY "{\"from\":\"app@sender.test\",\"to\":[\"alice.private@ok.test\"],\"subject\":\"s\",\"text\":\"x\"}"

/* Sends one message through smtp-sink; returns the parsed serve log. */
static json_t *deliver_one(const char *log_recipients)
{
	struct th_sink *sink = th_sink_start(NULL);
	cr_assert_not_null(sink, "smtp-sink did not start");
	char routes[128], lr[64];
	snprintf(routes, sizeof(routes), "MAILFERRY_ROUTES=*=127.0.0.1:%d", sink->port);
	snprintf(lr, sizeof(lr), "MAILFERRY_LOG_RECIPIENTS=%s", log_recipients);
	const char *env[] = { routes, lr, "MAILFERRY_ROLES=api,delivery", "MAILFERRY_TLS_POLICY=none",
			      "MAILFERRY_LOG_FORMAT=json", "MAILFERRY_LOG_LEVEL=info", NULL };
	struct api_srv s;
	api_srv_start(&s, NULL, env);
	free(api_send_ok(&s, BODY));
	cr_assert_eq(th_sink_wait(sink, 1, 15000), 1, "the message did not arrive");
	cr_assert_eq(wait_log(s.p->log, "smtp_outcome", 15000), 0, "no smtp_outcome line");
	char *log = strdup(s.p->log);
	api_srv_stop(&s, 1);
	th_sink_stop(sink);
	json_t *lines = log_lines(log);
	free(log);
	return lines;
}

Test(logs, delivery_logs_the_recipient_domain_only)
{
	json_t *lines = deliver_one("no");
	json_t *j = find_event(lines, "smtp_outcome", NULL);
	cr_assert_not_null(j);
	cr_assert_str_eq(json_string_value(json_object_get(j, "rcpt_domain")), "ok.test");
	cr_assert_null(json_object_get(j, "rcpt"));
	cr_assert_eq(json_integer_value(json_object_get(j, "code")), 250);
	char *all = json_dumps(lines, 0);
	cr_assert_null(strstr(all, "alice.private"), "a full address was logged at info: %s", all);
	free(all);
	json_decref(lines);
}

Test(logs, log_recipients_yes_logs_full_addresses)
{
	json_t *lines = deliver_one("yes");
	json_t *j = find_event(lines, "smtp_outcome", NULL);
	cr_assert_not_null(j);
	cr_assert_str_eq(json_string_value(json_object_get(j, "rcpt")), "alice.private@ok.test");
	cr_assert_str_eq(json_string_value(json_object_get(j, "rcpt_domain")), "ok.test");
	json_decref(lines);
}

Test(logs, database_outage_warnings_limited_and_recovery_logged)
{
	char *dir = th_tmpdir("logoutage");
	cr_assert_not_null(dir);
	char *url = th_cluster_start(dir);
	cr_assert_not_null(url);
	char *out = NULL;
	cr_assert_eq(th_run(&out, "MAILFERRY_DATABASE_URL='%s' %s migrate", url, th_bin()), 0, "%s", out);
	free(out);
	const char *env[] = { "MAILFERRY_LOG_FORMAT=json", "MAILFERRY_LOG_LEVEL=info",
			      "MAILFERRY_ROLES=api,delivery,webhooks,bounces", NULL };
	struct api_srv s;
	api_srv_start(&s, url, env);
	char ready[128];
	snprintf(ready, sizeof(ready), "%s/readyz", s.base);
	cr_assert_geq(th_http_wait_status(ready, 200, 10000), 0);

	cr_assert_eq(th_cluster_stop(dir), 0);
	cr_assert_geq(th_http_wait_status(ready, 503, 10000), 0, "readyz did not turn 503");
	/* Every request fails its authentication against the database. */
	enum { N = 30 };
	long t0 = th_now_ms();
	for (int i = 0; i < N; i++) {
		struct th_http r;
		cr_assert_eq(api_call(&s, "GET", "/v1/messages", NULL, NULL, NULL, &r), 0);
		cr_assert_eq(r.status, 503, "%ld %s", r.status, r.body);
		th_http_free(&r);
	}
	long spent = th_now_ms() - t0;

	char *again = th_cluster_start(dir);
	cr_assert_not_null(again);
	free(again);
	cr_assert_geq(th_http_wait_status(ready, 200, 15000), 0, "readyz did not come back");
	cr_assert_eq(wait_log(s.p->log, "\"db_recovered\"", 15000), 0, "no db_recovered line");
	char *log = strdup(s.p->log);
	api_srv_stop(&s, 0);

	json_t *lines = log_lines(log);
	size_t n;
	json_t *j = find_event(lines, "auth_unavailable", &n);
	cr_assert_not_null(j);
	/* One line per 10 s window at most: N requests gave far fewer lines. */
	cr_assert_geq(n, 1);
	cr_assert_leq((long)n, spent / 10000 + 1, "%zu auth_unavailable lines for %d failures in %ld ms", n, N, spent);
	j = find_event(lines, "db_recovered", &n);
	cr_assert_eq(n, 1, "%zu db_recovered lines", n);
	cr_assert(json_is_integer(json_object_get(j, "outage_ms")));
	cr_assert_gt(json_integer_value(json_object_get(j, "outage_ms")), 0);
	json_decref(lines);
	free(log);
	th_cluster_stop(dir);
	th_rmrf(dir);
	free(dir);
	free(url);
}
