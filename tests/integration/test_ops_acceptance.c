/*
 * Acceptance tests of issue 7 against real SMTP peers (Postfix's
 * smtp-sink, mailferry's own capture sink) and a real "mailferry serve"
 * with the delivery role:
 *  - 200 messages bounce on a 5xx route; the operator fixes the route;
 *    "mailferry replay --status bounced --domain x.test --dry-run" reports
 *    200; the real replay delivers all 200; the events show the requeue.
 *  - SIGTERM during 1,000 in-flight deliveries to a slow server exits 0
 *    within the grace period; a restart delivers the rest, none lost.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "harness.h"
#include "th_assert.h"

/* Polls sql until it returns want; the ms waited or -1. */
static int sql_wait(const char *url, const char *sql, const char *want, int timeout_ms)
{
	long t0 = th_now_ms();
	for (;;) {
		char *got = th_sql(url, sql);
		int ok = got && strcmp(got, want) == 0;
		free(got);
		if (ok)
			return (int)(th_now_ms() - t0);
		if (th_now_ms() - t0 > timeout_ms)
			return -1;
		usleep(100 * 1000);
	}
}

/* "status:count,..." of all recipients, for failure messages (caller frees). */
static char *status_counts(const char *url)
{
	char *s = th_sql(url, "SELECT coalesce(string_agg(status || ':' || n || ' ' || coalesce(t, ''), ', '), 'none') FROM"
			      " (SELECT status, count(*) n, max(last_code || ' ' || last_text) t FROM recipients GROUP BY 1) x");
	return s ? s : strdup("?");
}

static int port_open(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

/* Starts argv (stdout/stderr to log) and waits for port to accept. */
static pid_t spawn_server(char *const argv[], const char *log, int port)
{
	pid_t pid = fork();
	if (pid == 0) {
		FILE *f = freopen(log, "w", stderr);
		f = freopen(log, "a", stdout);
		(void)f;
		execv(argv[0], argv);
		_exit(127);
	}
	for (int i = 0; i < 600 && !port_open(port); i++) /* 30 s at most */
		usleep(50 * 1000);
	cr_assert(port_open(port), "%s did not listen on %d", argv[0], port);
	return pid;
}

static void stop_server(pid_t pid)
{
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

/* n queued messages, one recipient each at domain, Message-ID <tag-g@src.test>. */
static void seed(const char *url, int n, const char *domain, const char *tag)
{
	char sql[2048];
	snprintf(sql, sizeof(sql),
		 "WITH m AS (INSERT INTO messages (id, mail_from, from_header, subject, message_id_hdr, size, body)"
		 " SELECT gen_random_uuid(), 'sender@src.test', 'sender@src.test', 'Test ' || g, '%s-' || g || '@src.test',"
		 " 200, convert_to('From: sender@src.test' || E'\\r\\n' || 'To: u' || g || '@%s' || E'\\r\\n' ||"
		 " 'Subject: Test ' || g || E'\\r\\n' || 'Message-ID: <%s-' || g || '@src.test>' || E'\\r\\n' ||"
		 " 'Date: Sun, 29 Nov 2026 03:00:00 +0000' || E'\\r\\n' || 'MIME-Version: 1.0' || E'\\r\\n' ||"
		 " E'\\r\\n' || 'hello ' || g || E'\\r\\n', 'UTF8')"
		 " FROM generate_series(1, %d) g RETURNING id, message_id_hdr)"
		 " INSERT INTO recipients (message_id, position, email, domain, kind, status)"
		 " SELECT id, 1, 'u' || split_part(split_part(message_id_hdr, '@', 1), '-', 2) || '@%s', '%s', 'to', 'queued' FROM m",
		 tag, domain, tag, n, domain, domain);
	char *r = th_sql(url, sql);
	cr_assert_not_null(r);
	free(r);
}

/* Counts files in dir whose names end with suffix. */
static int count_files(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *e;
	while (d && (e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name), sl = strlen(suffix);
		if (e->d_name[0] != '.' && l >= sl && strcmp(e->d_name + l - sl, suffix) == 0)
			n++;
	}
	if (d)
		closedir(d);
	return n;
}

Test(ops_acceptance, bounced_on_5xx_route_fixed_and_replayed)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	char *dir = th_tmpdir("accept");
	char cap[512], log1[512], log2[512], listen[64], routes[128], bad[64];
	snprintf(cap, sizeof(cap), "%s/captured", dir);
	mkdir(cap, 0755);
	snprintf(log1, sizeof(log1), "%s/reject-sink.log", dir);
	snprintf(log2, sizeof(log2), "%s/sink.log", dir);

	/* A destination that refuses every recipient: 550 5.7.1 (policy, so no
	 * suppression, RFC 3463 §3.8). */
	int p_bad = th_free_port(), p_good = th_free_port();
	snprintf(bad, sizeof(bad), "127.0.0.1:%d", p_bad);
	char *rej[] = { "/usr/sbin/smtp-sink", "-u", "nobody", "-f", "RCPT", "-B", "550 5.7.1 Rejected by policy", bad, "128", NULL };
	pid_t reject = spawn_server(rej, log1, p_bad);
	snprintf(routes, sizeof(routes), "MAILFERRY_ROUTES=x.test=127.0.0.1:%d", p_bad);
	const char *env1[] = { routes, "MAILFERRY_ROLES=api,delivery", "MAILFERRY_TLS_POLICY=none", "MAILFERRY_WORKERS=16", NULL };
	struct th_proc *p = th_serve_start(url, env1);
	cr_assert_not_null(p);
	seed(url, 200, "x.test", "acc");
	int waited = sql_wait(url, "SELECT count(*) FROM recipients WHERE status = 'bounced'", "200", 60000);
	char *st = status_counts(url);
	cr_assert_geq(waited, 0, "200 recipients did not bounce on the 5xx route: %s", st);
	free(st);
	th_sql_eq(url, "SELECT count(*) FROM recipients WHERE last_code = 550 AND last_enhanced = '5.7.1'", "200");
	th_sql_eq(url, "SELECT count(*) FROM suppressions", "0");
	cr_assert_eq(th_proc_stop(p, 15000), 0);
	th_proc_free(p);
	stop_server(reject);

	/* The operator fixes the route: now to a sink that accepts. */
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", p_good);
	char *good[] = { (char *)th_bin(), "sink", "--listen", listen, "--dir", cap, NULL };
	pid_t sink = spawn_server(good, log2, p_good);
	snprintf(routes, sizeof(routes), "MAILFERRY_ROUTES=x.test=127.0.0.1:%d", p_good);
	const char *env2[] = { routes, "MAILFERRY_ROLES=api,delivery", "MAILFERRY_TLS_POLICY=none", "MAILFERRY_WORKERS=16", NULL };
	p = th_serve_start(url, env2);
	cr_assert_not_null(p);

	char *out = NULL;
	cr_assert_eq(th_run(&out, "MAILFERRY_DATABASE_URL='%s' %s replay --status bounced --domain x.test --dry-run",
			    url, th_bin()), 0, "%s", out);
	cr_assert(strstr(out, "matched:            200"), "%s", out);
	free(out);
	th_sql_eq(url, "SELECT count(*) FROM recipients WHERE status = 'bounced'", "200");
	cr_assert_eq(th_run(&out, "MAILFERRY_DATABASE_URL='%s' %s replay --status bounced --domain x.test --json", url,
			    th_bin()), 0, "%s", out);
	cr_assert(strstr(out, "\"requeued\":200"), "%s", out);
	free(out);
	waited = sql_wait(url, "SELECT count(*) FROM recipients WHERE status = 'delivered'", "200", 60000);
	cr_assert_geq(waited, 0, "the replay did not deliver all 200");
	for (int i = 0; i < 300 && count_files(cap, ".eml") < 200; i++) /* 30 s at most */
		usleep(100 * 1000);
	cr_assert_eq(count_files(cap, ".eml"), 200);
	/* Every recipient: bounced, then requeued by the cli, then delivered. */
	th_sql_eq(url, "SELECT count(*) FROM recipients r WHERE"
		    " (SELECT min(id) FROM events WHERE recipient_id = r.id AND type = 'message.bounced') <"
		    " (SELECT min(id) FROM events WHERE recipient_id = r.id AND type = 'message.requeued'"
		    "   AND payload->'data'->>'requested_by' = 'cli') AND"
		    " (SELECT min(id) FROM events WHERE recipient_id = r.id AND type = 'message.requeued') <"
		    " (SELECT max(id) FROM events WHERE recipient_id = r.id AND type = 'message.delivered')", "200");
	th_sql_eq(url, "SELECT count(*) FROM recipients WHERE attempts >= 2", "200");
	/* A second replay finds nothing. */
	cr_assert_eq(th_run(&out, "MAILFERRY_DATABASE_URL='%s' %s replay --status bounced --domain x.test --json", url,
			    th_bin()), 0, "%s", out);
	cr_assert(strstr(out, "\"matched\":0"), "%s", out);
	free(out);

	cr_assert_eq(th_proc_stop(p, 15000), 0);
	th_proc_free(p);
	stop_server(sink);
	th_rmrf(dir);
	free(dir);
	th_db_drop(url);
	free(url);
}

Test(ops_acceptance, sigterm_during_1000_deliveries_loses_none)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	char *dir = th_tmpdir("term");
	char dump[512], cap[512], log1[512], log2[512], slow[64], listen[64], routes[128];
	snprintf(dump, sizeof(dump), "%s/slow", dir);
	snprintf(cap, sizeof(cap), "%s/captured", dir);
	mkdir(dump, 0755);
	mkdir(cap, 0755);
	snprintf(log1, sizeof(log1), "%s/slow-sink.log", dir);
	snprintf(log2, sizeof(log2), "%s/sink.log", dir);

	/* A slow server: 2 s before answering DATA, so deliveries are in flight. */
	int p_slow = th_free_port(), p_fast = th_free_port();
	snprintf(slow, sizeof(slow), "127.0.0.1:%d", p_slow);
	char dumpt[600];
	snprintf(dumpt, sizeof(dumpt), "%s/%%H%%M%%S.", dump);
	chmod(dump, 0777); /* smtp-sink writes as nobody */
	char *sargv[] = { "/usr/sbin/smtp-sink", "-u", "nobody", "-w", "2", "-d", dumpt, slow, "256", NULL };
	pid_t slow_pid = spawn_server(sargv, log1, p_slow);
	snprintf(routes, sizeof(routes), "MAILFERRY_ROUTES=x.test=127.0.0.1:%d", p_slow);
	/* One destination: its window starts at 5 and doubles per round of
	 * 2-s deliveries up to 100 (queue/destination.h). */
	const char *env1[] = { routes, "MAILFERRY_ROLES=api,delivery", "MAILFERRY_TLS_POLICY=none", "MAILFERRY_WORKERS=100",
			       "MAILFERRY_DESTINATION_CONCURRENCY=100", "MAILFERRY_SHUTDOWN_GRACE=6s", NULL };
	struct th_proc *p = th_serve_start(url, env1);
	cr_assert_not_null(p);
	seed(url, 1000, "x.test", "term");
	/* Wait until deliveries are in flight, then stop. */
	int waited = sql_wait(url, "SELECT (count(*) >= 50)::text FROM recipients WHERE status = 'sending'", "true",
			      30000);
	char *st = status_counts(url);
	cr_assert_geq(waited, 0, "deliveries never went in flight: %s", st);
	free(st);
	/* Within shutdown_grace the process exits 0; past it, its watchdog
	 * logs shutdown_grace_exceeded and exits 1.  (60 s bound the wait for
	 * a process that hangs.) */
	int rc = th_proc_stop(p, 60000);
	int exceeded = th_run(NULL, "grep -q shutdown_grace_exceeded '%s'", p->log) == 0;
	th_proc_free(p);
	cr_assert_eq(rc, 0, "serve exited %d", rc);
	cr_assert(!exceeded, "the shutdown watchdog fired: shutdown_grace was exceeded");
	stop_server(slow_pid);
	/* Nothing is lost: each recipient is delivered or back in the queue. */
	th_sql_eq(url, "SELECT count(*) FROM recipients WHERE status IN ('delivered', 'queued', 'deferred', 'sending')",
	       "1000");
	char *before = th_sql(url, "SELECT count(*) FROM recipients WHERE status = 'delivered'");
	cr_log_info("delivered before the restart: %s", before);
	free(before);

	/* Restart against a fast sink: the rest is delivered. */
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", p_fast);
	char *fargv[] = { (char *)th_bin(), "sink", "--listen", listen, "--dir", cap, NULL };
	pid_t fast = spawn_server(fargv, log2, p_fast);
	snprintf(routes, sizeof(routes), "MAILFERRY_ROUTES=x.test=127.0.0.1:%d", p_fast);
	const char *env2[] = { routes, "MAILFERRY_ROLES=api,delivery", "MAILFERRY_TLS_POLICY=none", "MAILFERRY_WORKERS=32",
			       "MAILFERRY_LEASE_TIME=5s", NULL };
	p = th_serve_start(url, env2);
	cr_assert_not_null(p);
	waited = sql_wait(url, "SELECT count(*) FROM recipients WHERE status = 'delivered'", "1000", 90000);
	cr_assert_geq(waited, 0, "not all 1000 delivered after the restart");
	cr_assert_eq(th_proc_stop(p, 15000), 0);
	th_proc_free(p);
	stop_server(fast);
	/* Every Message-ID reached a server (at least once: SMTP is at-least-once). */
	char *out = NULL;
	cr_assert_eq(th_run(&out, "cat %s/* %s/*.eml 2>/dev/null | grep -o '^Message-ID: <term-[0-9]*@' | sort -u | wc -l",
			    dump, cap), 0);
	cr_assert_eq(strtol(out, NULL, 10), 1000, "distinct Message-IDs received: %s", out);
	free(out);
	th_rmrf(dir);
	free(dir);
	th_db_drop(url);
	free(url);
}
