/*
 * test_delivery_destinations.c - per-destination control end to end
 * (issue 17 point 3, queue/destination.h) through real "mailferry serve"
 * processes and "mailferry sink" destinations (one sink per destination,
 * so that its counters are the destination's):
 *  - a destination that answers 421 to half of its MAIL commands (which
 *    closes the session, RFC 5321 §3.8) backs off (its
 *    window falls, it pauses, its recipients are deferred with the reply
 *    or not claimed at all), while another destination is delivered in
 *    full and never paused;
 *  - two delivery processes on one database together never run more than
 *    destination_concurrency transactions to one destination (the sink's
 *    txn_peak);
 *  - destination_rate spaces the claims of a domain by its rate.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api_helpers.h"
#include "delivery_helpers.h"
#include "harness.h"
#include "th_smtp.h"
#include "util/xmalloc.h"

struct msink {
	pid_t pid;
	int port;
	char out[256];   /* its stdout: the counters at exit */
};

/* Starts "mailferry sink --listen 127.0.0.1:PORT ARGS" and waits for it. */
static void msink_start(struct msink *m, const char *args)
{
	m->port = th_free_port();
	char *tmp = th_tmpdir("dsink");
	cr_assert_not_null(tmp);
	snprintf(m->out, sizeof(m->out), "%s/out", tmp);
	free(tmp);
	char *cmd = xasprintf("exec %s sink --listen 127.0.0.1:%d %s >%s", th_bin(), m->port, args, m->out);
	m->pid = fork();
	if (m->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	free(cmd);
	cr_assert_gt(m->pid, 0);
	/* Connecting is enough: a connect fault may answer 421. */
	int fd = -1;
	for (long t0 = th_now_ms(); fd < 0 && th_now_ms() - t0 < 10000; usleep(20000))
		fd = th_smtp_connect(m->port);
	cr_assert_geq(fd, 0, "the sink did not come up");
	close(fd);
}

/* Stops it; returns the value of counter name ("txn_peak") at exit. */
static long msink_stop(struct msink *m, const char *name)
{
	kill(m->pid, SIGTERM);
	int st = 0;
	cr_assert_eq(waitpid(m->pid, &st, 0), m->pid);
	char *out = NULL;
	cr_assert_eq(th_run(&out, "cat '%s'", m->out), 0);
	char key[64];
	snprintf(key, sizeof(key), "%s=", name);
	const char *v = strstr(out, key);
	cr_assert_not_null(v, "no %s in %s", name, out);
	long n = strtol(v + strlen(key), NULL, 10);
	free(out);
	return n;
}

/* The serve process's /metrics, caller frees. */
static char *metrics(const struct th_proc *p)
{
	char u[128];
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/metrics", p->port);
	struct th_http r;
	cr_assert_eq(th_http("GET", u, NULL, NULL, &r), 0);
	cr_assert_eq(r.status, 200);
	char *b = r.body;
	r.body = NULL;
	th_http_free(&r);
	return b;
}

/* The value of one series in a /metrics body, or -1 when absent. */
static double metric(const char *body, const char *series)
{
	char key[256];
	snprintf(key, sizeof(key), "\n%s ", series);
	const char *v = strstr(body, key);
	return v ? strtod(v + strlen(key), NULL) : -1;
}

/* What a stalled test needs to show: sessions and their waits, the
 * recipients by state, the destinations, a log's tail.  Fails the test. */
static void stalled(const char *url, const char *log, const char *what)
{
	char *act = q(url, "SELECT coalesce(string_agg(coalesce(state, '-') || ' ' || coalesce(wait_event_type, '-') || ':'"
			   " || coalesce(wait_event, '-') || ' ' || left(regexp_replace(query, '\\s+', ' ', 'g'), 90), E'\\n'),"
			   " '-') FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()");
	char *d = q(url, "SELECT coalesce(string_agg(domain || ' ' || lim || ' ' || backoff_secs || ' '"
			 " || coalesce(paused_until::text, '-') || ' ' || coalesce(tokens::text, '-'), '; '), '-')"
			 " FROM destinations");
	char *rs = q(url, "SELECT coalesce(string_agg(domain || ' ' || status || ' ' || attempts || ' ' || count, '; '), '-')"
			  " FROM (SELECT domain, status, attempts, count(*) FROM recipients GROUP BY 1, 2, 3) x");
	char *tail = NULL;
	th_run(&tail, "grep -v -e queue_woken -e smtp_state '%s' | tail -n 25", log);
	cr_assert_fail("%s\nsessions:\n%s\ndestinations: %s\nrecipients: %s\nlog:\n%s", what, act, d, rs, tail);
}

/* A number from one SQL value. */
static double qd(const char *url, const char *sql)
{
	char *v = q(url, "%s", sql);
	double d = strtod(v, NULL);
	free(v);
	return d;
}

Test(delivery, throttled_destination_backs_off_others_do_not)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	struct msink slow, fast;
	msink_start(&slow, "--fault mail:421:50%");
	msink_start(&fast, "");
	char routes[160], key[160];
	snprintf(routes, sizeof(routes), "MAILFERRY_ROUTES=slow.test=127.0.0.1:%d,fast.test=127.0.0.1:%d", slow.port,
		 fast.port);
	cr_assert_eq(api_make_key(url, "read", key, sizeof(key)), 0);
	const char *env[] = { routes, "MAILFERRY_ROLES=api,delivery", "MAILFERRY_WORKERS=8", NULL };
	struct th_proc *p = th_serve_start(url, env);
	cr_assert_not_null(p);
	for (int i = 0; i < 30; i++) {
		insert_messages(url, 1, "x@slow.test");
		insert_messages(url, 1, "y@fast.test");
	}
	/* The other destination: every message delivered, never paused. */
	long fast_done = wait_count(url, 30, 60000,
				    "SELECT count(*) FROM recipients WHERE domain = 'fast.test' AND status = 'delivered'");
	if (fast_done != 30)
		stalled(url, p->log, "fast.test not all delivered");
	/* The throttled one: paused with its window cut below the initial 5. */
	char last[128] = "";
	if (th_sql_wait(url, "SELECT count(*) FROM destinations WHERE domain = 'slow.test'"
			     " AND paused_until > now() AND lim < 5 AND backoff_secs >= 30 AND last_code = 421",
			"1", 30000, last, sizeof(last)) != 0) {
		char *d = q(url, "SELECT coalesce(string_agg(domain || ' ' || lim || ' ' || backoff_secs || ' '"
				 " || coalesce(paused_until::text, '-') || ' ' || coalesce(last_code::text, '-'), '; '), '-')"
				 " FROM destinations");
		char *rs = q(url, "SELECT string_agg(status || ' ' || attempts || ' ' || coalesce(last_code::text, '-')"
				  " || ' ' || count, '; ') FROM (SELECT status, attempts, last_code, count(*) FROM recipients"
				  " WHERE domain = 'slow.test' GROUP BY 1, 2, 3) x");
		char *log = NULL;
		th_run(&log, "grep -v queue_woken '%s' | tail -n 30", p->log);
		cr_assert_fail("slow.test not paused with a cut window: %s\ndestinations: %s\nrecipients: %s\n%s", last, d,
			       rs, log);
	}
	cr_assert_eq(ql(url, "SELECT count(*) FROM destinations WHERE domain = 'fast.test'"
			     " AND (paused_until > now() OR lim < 5)"), 0, "fast.test was slowed down");
	/* Its throttled recipients are deferred with the reply recorded... */
	long deferred = ql(url, "SELECT count(*) FROM recipients WHERE domain = 'slow.test' AND status = 'deferred'"
				" AND last_code = 421");
	cr_assert_geq(deferred, 1);
	/* ... and the destination backs off, not each recipient: most of its
	 * mail was never tried while it is paused. */
	long untried = ql(url, "SELECT count(*) FROM recipients WHERE domain = 'slow.test' AND status = 'queued'"
			       " AND attempts = 0");
	cr_assert_geq(untried, 10, "only %ld slow.test recipients left untried", untried);
	/* The API shows the 421. */
	char *id = q(url, "SELECT message_id::text FROM recipients WHERE domain = 'slow.test' AND last_code = 421"
			  " LIMIT 1");
	char u[256], auth[200];
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/v1/messages/%s", p->port, id);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
	const char *hdr[] = { auth, NULL };
	struct th_http r;
	cr_assert_eq(th_http("GET", u, hdr, NULL, &r), 0);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert(strstr(r.body, "\"code\": 421") != NULL || strstr(r.body, "\"code\":421") != NULL, "%s", r.body);
	th_http_free(&r);
	free(id);
	/* /metrics: paused, window and backoff of each domain. */
	char *m = metrics(p);
	cr_assert_eq(metric(m, "mailferry_destination_paused{domain=\"slow.test\"}"), 1, "%s", m);
	double lim = metric(m, "mailferry_destination_limit{domain=\"slow.test\"}");
	cr_assert(lim >= 1 && lim < 5, "slow.test limit %g", lim);
	cr_assert_geq(metric(m, "mailferry_destination_backoff_seconds{domain=\"slow.test\"}"), 30);
	cr_assert_eq(metric(m, "mailferry_destination_paused{domain=\"fast.test\"}"), 0, "%s", m);
	cr_assert_geq(metric(m, "mailferry_destination_limit{domain=\"fast.test\"}"), 5, "%s", m);
	free(m);
	cr_assert_eq(th_proc_stop(p, 10000), 0);
	th_proc_free(p);
	msink_stop(&slow, "faults");
	cr_assert_eq(msink_stop(&fast, "messages"), 30);
	th_db_drop(url);
	free(url);
}

/* Two processes on one database: the claim's window is shared through the
 * database, so the sink never sees more than destination_concurrency
 * transactions at once.  Process a has one worker (it holds at most two
 * jobs, one running, one waiting), so b always gets part of the window
 * and both deliver; b has more workers than the window.  Without the
 * shared window, b alone would run destination_concurrency (3) beside a's
 * one: 4. */
Test(delivery, two_processes_share_destination_concurrency)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	struct msink sk;
	msink_start(&sk, "--reply-delay 150ms");
	char routes[128];
	snprintf(routes, sizeof(routes), "MAILFERRY_ROUTES=*=127.0.0.1:%d", sk.port);
	const char *env_a[] = { routes, "MAILFERRY_ROLES=delivery", "MAILFERRY_WORKERS=1",
				"MAILFERRY_DESTINATION_CONCURRENCY=3", NULL };
	const char *env_b[] = { routes, "MAILFERRY_ROLES=delivery", "MAILFERRY_WORKERS=6",
				"MAILFERRY_DESTINATION_CONCURRENCY=3", NULL };
	/* a (one worker: at most 2 of the 3 jobs claimed, one in flight)
	 * starts first, so both take part whoever wins the races for room
	 * later: a has claimed before b starts, and a never fills the window,
	 * so b (6 workers: alone it would hold 6 transactions) always finds
	 * room.  The window holds only if it is counted across processes. */
	struct th_proc *a = th_serve_start(url, env_a);
	cr_assert_not_null(a);
	enum { N = 36 };
	insert_messages(url, N, "c@conc.test");
	char last[64];
	cr_assert_eq(th_sql_wait(url, "SELECT (count(*) > 0)::text FROM recipients WHERE status <> 'queued'", "true",
				 60000, last, sizeof(last)), 0, "process a never claimed");
	struct th_proc *b = th_serve_start(url, env_b);
	cr_assert_not_null(b);
	long done = wait_count(url, N, 120000, "SELECT count(*) FROM recipients WHERE status = 'delivered'");
	if (done != N) {
		char *tail = NULL;
		th_run(&tail, "grep -v -e queue_woken -e smtp_state '%s' | tail -n 25", b->log);
		cr_log_error("process b:\n%s", tail);
		free(tail);
		stalled(url, a->log, "not all delivered (log: process a)");
	}
	cr_assert_eq(th_proc_stop(a, 10000), 0);
	cr_assert_eq(th_proc_stop(b, 10000), 0);
	char *ca = NULL, *cb = NULL;
	th_run(&ca, "grep -c 'event=queue_claimed' '%s'", a->log);
	th_run(&cb, "grep -c 'event=queue_claimed' '%s'", b->log);
	long na = strtol(ca, NULL, 10), nb = strtol(cb, NULL, 10);
	cr_log_info("claims with rows: process a %ld, process b %ld", na, nb);
	free(ca);
	free(cb);
	cr_assert(na >= 1 && nb >= 1, "both processes deliver: claims a %ld, b %ld", na, nb);
	th_proc_free(a);
	th_proc_free(b);
	long peak = msink_stop(&sk, "txn_peak");
	cr_log_info("destination_concurrency 3, two processes (1 and 6 workers): txn_peak %ld", peak);
	cr_assert_leq(peak, 3, "%ld transactions at once to one destination (destination_concurrency 3)", peak);
	cr_assert_geq(peak, 2, "the window was never used: %ld", peak);
	th_db_drop(url);
	free(url);
}

/* destination_rate = rate.test=30/min: a bucket of one job and one more
 * every 2 s, so the claims of rate.test (first_attempt_at, the claim's
 * time, on the database's clock) are at least 2 s apart; another domain
 * is not limited. */
Test(delivery, destination_rate_spaces_claims)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	struct msink sk;
	msink_start(&sk, "");
	char routes[128];
	snprintf(routes, sizeof(routes), "MAILFERRY_ROUTES=*=127.0.0.1:%d", sk.port);
	const char *env[] = { routes, "MAILFERRY_ROLES=delivery", "MAILFERRY_DESTINATION_RATE=rate.test=30/min,*=0",
			      NULL };
	struct th_proc *p = th_serve_start(url, env);
	cr_assert_not_null(p);
	insert_messages(url, 4, "r@rate.test");
	insert_messages(url, 4, "f@free.test");
	long done = wait_count(url, 8, 60000, "SELECT count(*) FROM recipients WHERE status = 'delivered'");
	if (done != 8) {
		char *d = q(url, "SELECT coalesce(string_agg(domain || ' ' || lim || ' ' || coalesce(tokens::text, '-') || ' '"
				 " || coalesce(tokens_at::text, '-'), '; '), '-') FROM destinations");
		char *rs = q(url, "SELECT string_agg(domain || ' ' || status || ' ' || attempts || ' ' || count, '; ')"
				  " FROM (SELECT domain, status, attempts, count(*) FROM recipients GROUP BY 1, 2, 3) x");
		char *log = NULL;
		th_run(&log, "grep -v queue_woken '%s' | grep -v smtp_state | tail -n 30", p->log);
		cr_assert_fail("delivered %ld of 8\ndestinations: %s\nrecipients: %s\n%s", done, d, rs, log);
	}
	/* The smallest gap between consecutive claims of rate.test. */
	double gap = qd(url, "SELECT min(d) FROM (SELECT extract(epoch FROM first_attempt_at"
			     " - lag(first_attempt_at) OVER (ORDER BY first_attempt_at)) AS d"
			     " FROM recipients WHERE domain = 'rate.test') x");
	cr_log_info("rate.test=30/min: smallest gap between claims %.3f s", gap);
	cr_assert_geq(gap, 1.95, "claims of rate.test %.3f s apart (30/min: 2 s)", gap);
	/* The window of the 4 deliveries: at most 1 + 30/min x its length. */
	double span = qd(url, "SELECT extract(epoch FROM max(first_attempt_at) - min(first_attempt_at))"
			      " FROM recipients WHERE domain = 'rate.test'");
	cr_assert_geq(span, 3 * 1.95, "4 claims in %.3f s", span);
	/* The events agree: 4 deliveries of rate.test recorded. */
	cr_assert_eq(ql(url, "SELECT count(*) FROM events e JOIN recipients r ON r.id = e.recipient_id"
			     " WHERE r.domain = 'rate.test' AND e.type = 'message.delivered'"), 4);
	cr_assert_eq(th_proc_stop(p, 10000), 0);
	th_proc_free(p);
	msink_stop(&sk, "messages");
	th_db_drop(url);
	free(url);
}
