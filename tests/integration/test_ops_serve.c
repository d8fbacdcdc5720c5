/*
 * Integration tests for the operational side of "mailferry serve":
 * /metrics checked by Prometheus' own promtool and by a strict text-format
 * parser here (counters must match what the test did, gauges what the
 * database holds), SIGHUP reload of the log settings, SIGTERM draining.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "harness.h"

/*
 * A strict parser for the Prometheus text format 0.0.4: every line is
 * "# HELP name text", "# TYPE name counter|gauge|histogram|summary|untyped"
 * or  name[{label="value",...}] value ; names and label names are valid
 * identifiers, label values are escaped, TYPE comes before the family's
 * samples and only once, no series appears twice.  Returns the number of
 * samples, or -1 with the offending line in why.
 */
struct prom_sample {
	char series[512]; /* name{labels} exactly as written */
	double value;
};

static int prom_name(const char **p, int colon_ok)
{
	const char *s = *p;
	if (!(isalpha((unsigned char)*s) || *s == '_' || (colon_ok && *s == ':')))
		return -1;
	while (isalnum((unsigned char)*s) || *s == '_' || (colon_ok && *s == ':'))
		s++;
	*p = s;
	return 0;
}

static int prom_parse(const char *text, struct prom_sample *out, int max, char *why, size_t whylen)
{
	char typed[128][128];
	int ntyped = 0, n = 0;
	const char *line = text;
	while (*line) {
		const char *eol = strchr(line, '\n');
		if (eol == NULL) {
			snprintf(why, whylen, "last line without newline");
			return -1;
		}
		char l[1024];
		snprintf(l, sizeof(l), "%.*s", (int)(eol - line), line);
		line = eol + 1;
		const char *p = l;
		if (strncmp(p, "# TYPE ", 7) == 0 || strncmp(p, "# HELP ", 7) == 0) {
			int is_type = p[2] == 'T';
			p += 7;
			const char *ns = p;
			if (prom_name(&p, 1) < 0 || *p != ' ')
				goto bad;
			if (is_type) {
				const char *t = p + 1;
				if (strcmp(t, "counter") && strcmp(t, "gauge") && strcmp(t, "histogram") &&
				    strcmp(t, "summary") && strcmp(t, "untyped"))
					goto bad;
				for (int i = 0; i < ntyped; i++)
					if (strncmp(typed[i], ns, (size_t)(p - ns)) == 0 && typed[i][p - ns] == '\0')
						goto bad; /* TYPE twice */
				if (ntyped < 128)
					snprintf(typed[ntyped++], sizeof(typed[0]), "%.*s", (int)(p - ns), ns);
			}
			continue;
		}
		if (*p == '#')
			continue;
		const char *ns = p;
		if (prom_name(&p, 1) < 0)
			goto bad;
		size_t nlen = (size_t)(p - ns);
		if (*p == '{') {
			p++;
			while (*p != '}') {
				if (prom_name(&p, 0) < 0 || *p++ != '=' || *p++ != '"')
					goto bad;
				while (*p && *p != '"') {
					if (*p == '\\') {
						p++;
						if (*p != '\\' && *p != '"' && *p != 'n')
							goto bad;
					}
					p++;
				}
				if (*p++ != '"')
					goto bad;
				if (*p == ',')
					p++;
				else if (*p != '}')
					goto bad;
			}
			p++;
		}
		size_t slen = (size_t)(p - ns);
		if (*p++ != ' ')
			goto bad;
		char *end;
		double v = strtod(p, &end);
		if (end == p || (*end && *end != ' '))
			goto bad;
		/* The family (name without _bucket/_sum/_count) must be typed. */
		int found = 0;
		for (int i = 0; i < ntyped && !found; i++) {
			size_t tl = strlen(typed[i]);
			found = strncmp(ns, typed[i], tl) == 0 &&
				(tl == nlen || (nlen > tl && (strncmp(ns + tl, "_bucket", nlen - tl) == 0 ||
							      strncmp(ns + tl, "_sum", nlen - tl) == 0 ||
							      strncmp(ns + tl, "_count", nlen - tl) == 0)));
		}
		if (!found)
			goto bad;
		if (n == max) {
			snprintf(why, whylen, "too many samples");
			return -1;
		}
		snprintf(out[n].series, sizeof(out[n].series), "%.*s", (int)slen, ns);
		for (int i = 0; i < n; i++)
			if (strcmp(out[i].series, out[n].series) == 0)
				goto bad; /* duplicate series */
		out[n++].value = v;
		continue;
bad:
		snprintf(why, whylen, "bad line: %s", l);
		return -1;
	}
	return n;
}

static double prom_get(const struct prom_sample *s, int n, const char *series)
{
	for (int i = 0; i < n; i++)
		if (strcmp(s[i].series, series) == 0)
			return s[i].value;
	return -1;
}

static char *metrics_text(int port)
{
	char u[128];
	struct th_http r;
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/metrics", port);
	cr_assert_eq(th_http("GET", u, NULL, NULL, &r), 0);
	cr_assert_eq(r.status, 200);
	cr_assert(strstr(r.headers, "text/plain; version=0.0.4"), "%s", r.headers);
	char *body = r.body;
	r.body = NULL;
	th_http_free(&r);
	return body;
}

Test(ops_serve, metrics_parse_and_match)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	char *x = th_sql(url,
		"WITH m AS (INSERT INTO messages (id, mail_from, from_header, message_id_hdr, size, body)"
		" VALUES (gen_random_uuid(), 'a@b.test', 'a@b.test', 'm', 1, 'b') RETURNING id)"
		" INSERT INTO recipients (message_id, position, email, domain, kind, status, next_attempt_at)"
		" SELECT m.id, g, 'u' || g || '@x.test', 'x.test', 'to',"
		" CASE WHEN g <= 7 THEN 'queued' WHEN g <= 10 THEN 'deferred' WHEN g <= 12 THEN 'sending' ELSE 'delivered' END,"
		" CASE WHEN g = 1 THEN now() - interval '1 hour' WHEN g <= 7 THEN now() ELSE now() + interval '1 hour' END"
		" FROM m, generate_series(1, 20) g");
	cr_assert_not_null(x);
	free(x);
	/* Only the API role: no worker may claim the seeded rows under us. */
	const char *env[] = { "MAILFERRY_ROLES=api", NULL };
	struct th_proc *p = th_serve_start(url, env);
	cr_assert_not_null(p);
	char u[128], why[1200];
	static struct prom_sample s[2048];
	/* Baseline: the harness already polled /healthz while waiting. */
	char *text = metrics_text(p->port);
	int n = prom_parse(text, s, 2048, why, sizeof(why));
	cr_assert_gt(n, 0, "%s", why);
	double health0 = prom_get(s, n, "mailferry_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"}");
	cr_assert_geq(health0, 1);
	free(text);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/healthz", p->port);
	const int N = 9;
	for (int i = 0; i < N; i++) {
		struct th_http r;
		cr_assert_eq(th_http("GET", u, NULL, NULL, &r), 0);
		cr_assert_eq(r.status, 200);
		th_http_free(&r);
	}
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/v1/replays", p->port);
	for (int i = 0; i < 2; i++) {
		struct th_http r;
		cr_assert_eq(th_http("POST", u, NULL, "{}", &r), 0);
		cr_assert_eq(r.status, 401);
		th_http_free(&r);
	}
	text = metrics_text(p->port);

	/* Prometheus' own linter (deploy/bootstrap.sh test installs prometheus). */
	cr_assert_eq(th_run(NULL, "command -v promtool"), 0, "promtool missing: deploy/bootstrap.sh test installs prometheus");
	{
		char *dir = th_tmpdir("prom");
		char path[512];
		snprintf(path, sizeof(path), "%s/metrics.txt", dir);
		FILE *f = fopen(path, "w");
		cr_assert_not_null(f);
		fputs(text, f);
		fclose(f);
		char *out = NULL;
		int rc = th_run(&out, "promtool check metrics < %s", path);
		cr_assert_eq(rc, 0, "promtool: %s\n%s", out, text);
		free(out);
		th_rmrf(dir);
		free(dir);
	}

	n = prom_parse(text, s, 2048, why, sizeof(why));
	cr_assert_gt(n, 0, "%s", why);
	cr_assert_eq(prom_get(s, n, "mailferry_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"}"),
		     health0 + N, "%s", text);
	cr_assert_eq(prom_get(s, n, "mailferry_http_requests_total{method=\"GET\",route=\"/metrics\",status=\"200\"}"), 1,
		     "the baseline scrape: %s", text);
	cr_assert_eq(prom_get(s, n, "mailferry_http_requests_total{method=\"POST\",route=\"/v1/replays\",status=\"401\"}"),
		     2, "%s", text);
	cr_assert_eq(prom_get(s, n, "mailferry_http_request_duration_seconds_count{route=\"/healthz\"}"), health0 + N,
		     "%s", text);
	cr_assert_eq(prom_get(s, n, "mailferry_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"+Inf\"}"),
		     health0 + N);
	cr_assert_eq(prom_get(s, n, "mailferry_queue_recipients{status=\"queued\"}"), 7, "%s", text);
	cr_assert_eq(prom_get(s, n, "mailferry_queue_recipients{status=\"deferred\"}"), 3, "%s", text);
	cr_assert_eq(prom_get(s, n, "mailferry_queue_recipients{status=\"sending\"}"), 2, "%s", text);
	cr_assert_eq(prom_get(s, n, "mailferry_queue_recipients{status=\"scheduled\"}"), 0, "%s", text);
	double oldest = prom_get(s, n, "mailferry_queue_oldest_due_seconds");
	cr_assert(oldest >= 3590 && oldest < 4000, "oldest due %f", oldest);
	cr_assert_eq(prom_get(s, n, "mailferry_database_up"), 1);
	cr_assert_geq(prom_get(s, n, "mailferry_db_pool_connections{state=\"open\"}"), 1);
	cr_assert_eq(prom_get(s, n, "mailferry_db_pool_connections{state=\"max\"}"), 16);
	cr_assert(strstr(text, "mailferry_build_info{version=\""), "%s", text);
	free(text);

	/* The next scrape counts the first one. */
	text = metrics_text(p->port);
	n = prom_parse(text, s, 2048, why, sizeof(why));
	cr_assert_gt(n, 0, "%s", why);
	cr_assert_eq(prom_get(s, n, "mailferry_http_requests_total{method=\"GET\",route=\"/metrics\",status=\"200\"}"), 2,
		     "%s", text);
	free(text);

	/* The parser is strict: it refuses what Prometheus refuses. */
	cr_assert_eq(prom_parse("# TYPE a counter\na{x=\"1\"} 1\na{x=\"1\"} 2\n", s, 10, why, sizeof(why)), -1);
	cr_assert_eq(prom_parse("b 1\n", s, 10, why, sizeof(why)), -1);
	cr_assert_eq(prom_parse("# TYPE c gauge\nc{x=1} 1\n", s, 10, why, sizeof(why)), -1);
	cr_assert_eq(prom_parse("# TYPE d gauge\nd one\n", s, 10, why, sizeof(why)), -1);

	cr_assert_eq(th_proc_stop(p, 10000), 0);
	th_proc_free(p);
	th_db_drop(url);
	free(url);
}

/* Starts "mailferry serve --config path" with stderr into log. */
static pid_t serve_with_config(const char *path, const char *log)
{
	pid_t pid = fork();
	if (pid == 0) {
		FILE *f = freopen(log, "w", stderr);
		(void)f;
		unsetenv("MAILFERRY_LOG_LEVEL");
		unsetenv("MAILFERRY_LOG_FORMAT");
		execl(th_bin(), "mailferry", "serve", "--config", path, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static void write_config(const char *path, const char *url, int port, const char *extra)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f, "database_url = %s\nhttp_listen = 127.0.0.1:%d\nroles = api\n%s", url, port, extra);
	fclose(f);
}

/* Waits up to ms for needle in the file; 1 found. */
static int log_has(const char *log, const char *needle, int ms)
{
	for (long t0 = th_now_ms(); th_now_ms() - t0 < ms; usleep(50 * 1000)) {
		char *out = NULL;
		th_run(&out, "cat '%s'", log);
		int found = out && strstr(out, needle) != NULL;
		free(out);
		if (found)
			return 1;
	}
	return 0;
}

Test(ops_serve, sighup_reloads_logging_and_sigterm_drains)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	char *dir = th_tmpdir("hup");
	char conf[512], log[512], u[128];
	snprintf(conf, sizeof(conf), "%s/mailferry.conf", dir);
	snprintf(log, sizeof(log), "%s/serve.log", dir);
	int port = th_free_port();
	write_config(conf, url, port, "log_level = info\nlog_format = text\nshutdown_grace = 5s\n");
	pid_t pid = serve_with_config(conf, log);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/readyz", port);
	cr_assert_geq(th_http_wait_status(u, 200, 15000), 0);
	cr_assert(log_has(log, "event=started", 30000));

	/* A valid change: the next lines come out as JSON. */
	write_config(conf, url, port, "log_level = debug\nlog_format = json\nshutdown_grace = 5s\n");
	kill(pid, SIGHUP);
	cr_assert(log_has(log, "\"event\":\"reloaded\",\"log_level\":\"debug\",\"log_format\":\"json\"", 30000),
		  "no JSON reload line");
	/* A broken file: logged, the old settings stay, the process serves on. */
	write_config(conf, url, port, "log_level = loud\n");
	kill(pid, SIGHUP);
	cr_assert(log_has(log, "\"event\":\"reload_failed\"", 30000));
	cr_assert_geq(th_http_wait_status(u, 200, 10000), 0);

	/* SIGTERM: exits 0 within the grace period (past it, its own
	 * watchdog logs shutdown_grace_exceeded and exits 1).  The wait is
	 * bounded so that a hang fails. */
	kill(pid, SIGTERM);
	int status = 0;
	pid_t got = 0;
	for (long t0 = th_now_ms(); got == 0 && th_now_ms() - t0 < 30000;) {
		got = waitpid(pid, &status, WNOHANG);
		if (got == 0)
			usleep(20000);
	}
	if (got == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	cr_assert_eq(got, pid, "serve did not exit within 30 s of SIGTERM");
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
	cr_assert(!log_has(log, "shutdown_grace_exceeded", 1), "the watchdog ended it");
	cr_assert(log_has(log, "\"event\":\"stopping\",\"signal\":\"SIGTERM\",\"grace\":5", 100));
	cr_assert(log_has(log, "\"event\":\"stopped\"", 100));
	th_rmrf(dir);
	free(dir);
	th_db_drop(url);
	free(url);
}

Test(ops_serve, worker_role_serves_only_health_and_metrics)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	const char *env[] = { "MAILFERRY_ROLES=delivery", NULL };
	struct th_proc *p = th_serve_start(url, env);
	cr_assert_not_null(p);
	char u[128];
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/readyz", p->port);
	cr_assert_geq(th_http_wait_status(u, 200, 10000), 0, "a worker must be probeable");
	char *text = metrics_text(p->port);
	cr_assert(strstr(text, "mailferry_queue_recipients{status=\"queued\"} 0"), "%s", text);
	free(text);
	struct th_http r;
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/v1/replays", p->port);
	cr_assert_eq(th_http("POST", u, NULL, "{}", &r), 0);
	cr_assert_eq(r.status, 404, "no API on a worker: %ld", r.status);
	th_http_free(&r);
	cr_assert_eq(th_proc_stop(p, 10000), 0);
	th_proc_free(p);
	th_db_drop(url);
	free(url);
}

/* "mailferry send" through the real API, then "status" and "list" read it
 * back, and /metrics counts exactly the accepted messages and recipients. */
Test(ops_serve, send_status_and_accepted_counters)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	char *out = NULL;
	cr_assert_eq(th_run(&out, "MAILFERRY_DATABASE_URL='%s' %s keys create --name s --scopes send --json", url,
			    th_bin()), 0, "%s", out);
	char key[160] = "";
	char *k = strstr(out, "\"key\":\"");
	cr_assert_not_null(k, "%s", out);
	sscanf(k + 7, "%159[^\"]", key);
	free(out);
	const char *env[] = { "MAILFERRY_ROLES=api", NULL };
	struct th_proc *p = th_serve_start(url, env);
	cr_assert_not_null(p);
	char *dir = th_tmpdir("send");
	cr_assert_eq(th_run(&out, "printf 'a,b\\n1,2\\n' > %s/report.csv", dir), 0);
	free(out);
	char ids[3][64];
	for (int i = 0; i < 3; i++) {
		int rc = th_run(&out, "MAILFERRY_API_KEY=%s %s send --api http://127.0.0.1:%d --from 'Shop <shop@src.test>'"
				      " --to a%d@x.test %s --subject 'Report %d' --text 'Hello' --html '<p>Hello</p>'"
				      " --attach %s/report.csv --tag reports",
				key, th_bin(), p->port, i, i == 2 ? "--cc b@y.test" : "", i, dir);
		cr_assert_eq(rc, 0, "%s", out);
		cr_assert(sscanf(out, "queued %63s", ids[i]) == 1, "%s", out);
		free(out);
	}
	cr_assert_eq(th_run(&out, "MAILFERRY_DATABASE_URL='%s' %s status %s", url, th_bin(), ids[2]), 0, "%s", out);
	cr_assert(strstr(out, "subject:  Report 2") && strstr(out, "a2@x.test") && strstr(out, "b@y.test") &&
		  strstr(out, "message.queued") && strstr(out, "tags:     reports"), "%s", out);
	free(out);
	cr_assert_eq(th_run(&out, "MAILFERRY_DATABASE_URL='%s' %s list --recipient B@Y.TEST --json", url, th_bin()), 0);
	cr_assert(strstr(out, ids[2]) && !strstr(out, ids[0]), "%s", out);
	free(out);
	/* A refused request: exit 1 with the API's code. */
	cr_assert_eq(th_run(&out, "%s send --api http://127.0.0.1:%d --key %s --from nobody --to a@x.test --subject s"
				  " --text t", th_bin(), p->port, key), 1, "%s", out);
	cr_assert(strstr(out, "HTTP 422"), "%s", out);
	free(out);

	char *text = metrics_text(p->port);
	static struct prom_sample s[2048];
	char why[1200];
	int n = prom_parse(text, s, 2048, why, sizeof(why));
	cr_assert_gt(n, 0, "%s", why);
	cr_assert_eq(prom_get(s, n, "mailferry_messages_accepted_total"), 3, "%s", text);
	cr_assert_eq(prom_get(s, n, "mailferry_recipients_accepted_total"), 4, "%s", text);
	cr_assert_eq(prom_get(s, n, "mailferry_http_requests_total{method=\"POST\",route=\"/v1/messages\",status=\"202\"}"), 3);
	cr_assert_eq(prom_get(s, n, "mailferry_queue_recipients{status=\"queued\"}"), 4, "%s", text);
	free(text);
	cr_assert_eq(th_proc_stop(p, 10000), 0);
	th_proc_free(p);
	th_rmrf(dir);
	free(dir);
	th_db_drop(url);
	free(url);
}
