/*
 * Integration tests for the bounce listener ("bounces" role of mailferry
 * serve) with swaks and smtp-source as real clients and a real
 * PostgreSQL: stored before 250 with a NOTIFY, never an open relay,
 * size-limited, 451 when the database is down.  And "mailferry sink".
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <dirent.h>

#include "db/db.h"
#include "harness.h"
#include "bounce/bounce_listener.h"
#include "th_smtp.h"
#include "util/xmalloc.h"

#define BOUNCE_DOMAIN "bounces.example.test"

struct listener {
	char *url;
	struct th_proc *serve;
	int port;
};

static void listener_start_env(struct listener *l, const char *max_size, const char *extra1, const char *extra2);

static void listener_start(struct listener *l, const char *max_size)
{
	listener_start_env(l, max_size, NULL, NULL);
}

static void listener_start_env(struct listener *l, const char *max_size, const char *extra1, const char *extra2)
{
	l->url = th_db_create(1);
	cr_assert_not_null(l->url);
	l->port = th_free_port();
	char listen[64], size[64];
	snprintf(listen, sizeof(listen), "MAILFERRY_BOUNCE_LISTEN=127.0.0.1:%d", l->port);
	snprintf(size, sizeof(size), "MAILFERRY_MAX_MESSAGE_SIZE=%s", max_size);
	const char *env[] = { listen, "MAILFERRY_BOUNCE_DOMAIN=" BOUNCE_DOMAIN, size, "MAILFERRY_ROLES=api,bounces",
			      "MAILFERRY_HELO_NAME=mx.mailferry.test", extra1, extra2, NULL };
	l->serve = th_serve_start(l->url, env);
	cr_assert_not_null(l->serve);
	cr_assert_eq(th_smtp_wait_port(l->port, 10000), 0, "bounce listener did not come up");
}

static void listener_stop(struct listener *l)
{
	cr_assert_eq(th_proc_stop(l->serve, 10000), 0, "serve did not stop cleanly");
	th_proc_free(l->serve);
	th_db_drop(l->url);
	free(l->url);
}

static char *count_rows(const char *url)
{
	return th_sql(url, "SELECT count(*) FROM bounces_raw");
}

/* A connection to 127.0.0.1:port from src (loopback is a /8, so
 * 127.0.0.2 is another client address); -1 on failure. */
static int smtp_connect_from(const char *src, int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET };
	inet_pton(AF_INET, src, &sa.sin_addr);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	sa.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* 64 idle sessions from one address used to take every session the
 * listener has: now that address gets 421 4.7.0 beyond its share, and
 * another address still gets its 220. */
Test(bounce_listener, one_address_cannot_take_every_session)
{
	struct listener l;
	listener_start(&l, "10MiB");
	enum { N = 70 };
	int fds[N], greeted = 0, refused = 0;
	for (int i = 0; i < N; i++) {
		fds[i] = smtp_connect_from("127.0.0.1", l.port);
		cr_assert_geq(fds[i], 0);
		char *r = th_smtp_reply(fds[i], 5000);
		cr_assert_not_null(r, "no banner or refusal for connection %d", i);
		if (strncmp(r, "220 ", 4) == 0)
			greeted++;
		else if (strncmp(r, "421 4.7.0", 9) == 0)
			refused++;
		free(r);
	}
	cr_expect_lt(greeted, 64, "one address holds %d sessions", greeted);
	cr_expect_eq(greeted + refused, N, "greeted %d, refused %d", greeted, refused);
	int other = smtp_connect_from("127.0.0.2", l.port);
	cr_assert_geq(other, 0);
	char *r = th_smtp_reply(other, 5000);
	cr_assert(r && strncmp(r, "220 ", 4) == 0, "127.0.0.2 got %s", r ? r : "(nothing)");
	free(r);
	close(other);
	for (int i = 0; i < N; i++)
		close(fds[i]);
	listener_stop(&l);
}

Test(bounce_listener, stores_bounce_with_notify_and_refuses_relay)
{
	struct listener l;
	listener_start(&l, "10MiB");

	PGconn *lc = PQconnectdb(l.url);
	cr_assert_eq(PQstatus(lc), CONNECTION_OK);
	PQclear(PQexec(lc, "LISTEN mailferry_bounces"));

	char *out = NULL;
	int rc = th_swaks(&out, l.port,
			  "--from '<>' --to 'bounce+abcdef@BOUNCES.Example.TEST' --header 'Subject: Undelivered Mail' "
			  "--body 'This is the mail system. marker-7731'");
	cr_assert_eq(rc, 0, "%s", out);
	cr_assert(strstr(out, "<-  220 mx.mailferry.test") != NULL, "%s", out);
	cr_assert(strstr(out, "<-  250 2.0.0 Ok: stored as bounce") != NULL, "%s", out);
	free(out);

	char *row = th_sql(l.url, "SELECT source || '|' || coalesce(mail_from, 'NULL') || '|' || rcpt_to || '|' ||"
				  " (position('marker-7731' in convert_from(raw, 'UTF8')) > 0)"
				  " FROM bounces_raw");
	/* The bounce processor (bounces role) may already have handled it; the raw row stays. */
	cr_assert_str_eq(row, "smtp||bounce+abcdef@BOUNCES.Example.TEST|true");
	free(row);

	/* The processor's wake-up arrived, naming the row. */
	PGnotify *n = NULL;
	long t0 = th_now_ms();
	while (n == NULL && th_now_ms() - t0 < 30000) {
		struct pollfd p = { .fd = PQsocket(lc), .events = POLLIN };
		poll(&p, 1, 100);
		PQconsumeInput(lc);
		n = PQnotifies(lc);
	}
	cr_assert_not_null(n, "no NOTIFY mailferry_bounces");
	cr_assert_str_eq(n->relname, "mailferry_bounces");
	char *id = th_sql(l.url, "SELECT id FROM bounces_raw");
	cr_assert_str_eq(n->extra, id);
	free(id);
	PQfreemem(n);
	PQfinish(lc);

	/* Never an open relay: other domains, subdomains, look-alikes. */
	const char *foreign[] = { "victim@example.com", "bounce+x@sub." BOUNCE_DOMAIN,
				  "bounce+x@" BOUNCE_DOMAIN ".evil.example", "postmaster" };
	for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++) {
		char args[256];
		snprintf(args, sizeof(args), "--from spammer@evil.example --to '%s'", foreign[i]);
		rc = th_swaks(&out, l.port, args);
		cr_assert_neq(rc, 0, "%s", out);
		cr_assert(strstr(out, "<** 550 5.7.1") != NULL && strstr(out, "Relay access denied"), "%s: %s",
			  foreign[i], out);
		free(out);
	}
	/* A mixed envelope delivers only to the bounce domain. */
	rc = th_swaks(&out, l.port, "--from '<>' --to 'victim@example.com,bounce+mixed@" BOUNCE_DOMAIN "'");
	cr_assert(strstr(out, "<** 550 5.7.1") != NULL, "%s", out);
	free(out);
	char *c = th_sql(l.url, "SELECT count(*) || ':' || count(*) FILTER (WHERE rcpt_to LIKE 'bounce+%') FROM bounces_raw");
	cr_assert_str_eq(c, "2:2");
	free(c);

	/* Many bounces over parallel sessions (Postfix's smtp-source). */
	rc = th_run(&out, "/usr/sbin/smtp-source -s 3 -m 9 -f mailer-daemon@mx.example -t bounce+load@" BOUNCE_DOMAIN
			  " 127.0.0.1:%d", l.port);
	cr_assert_eq(rc, 0, "%s", out);
	free(out);
	c = count_rows(l.url);
	cr_assert_str_eq(c, "11");
	free(c);
	listener_stop(&l);
}

Test(bounce_listener, oversize_refused_nothing_stored)
{
	struct listener l;
	listener_start(&l, "4096");
	char *dir = th_tmpdir("bouncebig");
	cr_assert_not_null(dir);
	cr_assert_eq(th_run(NULL, "for i in $(seq 1 200); do echo 'Diagnostic-Code: smtp; 550 5.1.1 user unknown here'; done > '%s/body'", dir), 0);
	char *out = NULL, args[512];
	snprintf(args, sizeof(args), "--from '<>' --to bounce+big@" BOUNCE_DOMAIN " --body '%s/body'", dir);
	int rc = th_swaks(&out, l.port, args);
	cr_assert_neq(rc, 0, "%s", out);
	cr_assert(strstr(out, "<-  250-SIZE 4096") != NULL, "%s", out);
	cr_assert(strstr(out, "<** 552 5.3.4") != NULL, "%s", out);
	free(out);
	char *c = count_rows(l.url);
	cr_assert_str_eq(c, "0");
	free(c);
	/* A small one still goes through after that. */
	rc = th_swaks(&out, l.port, "--from '<>' --to bounce+small@" BOUNCE_DOMAIN);
	cr_assert_eq(rc, 0, "%s", out);
	free(out);
	c = count_rows(l.url);
	cr_assert_str_eq(c, "1");
	free(c);
	/* One stored message in the metrics; the 552 is not counted as stored. */
	char murl[128];
	snprintf(murl, sizeof(murl), "http://127.0.0.1:%d/metrics", l.serve->port);
	struct th_http r;
	cr_assert_eq(th_http("GET", murl, NULL, NULL, &r), 0);
	cr_assert(strstr(r.body, "mailferry_bounce_listener_messages_total{result=\"stored\"} 1") != NULL, "%s", r.body);
	th_http_free(&r);
	th_rmrf(dir);
	free(dir);
	listener_stop(&l);
}

Test(bounce_listener, database_down_gives_451_then_recovers)
{
	char *dir = th_tmpdir("bouncepg");
	cr_assert_not_null(dir);
	char *url = th_cluster_start(dir);
	cr_assert_not_null(url);
	char *out = NULL;
	cr_assert_eq(th_run(&out, "MAILFERRY_DATABASE_URL='%s' %s migrate", url, th_bin()), 0, "%s", out);
	free(out);
	struct db_pool *pool = db_pool_new(url, 2);
	struct bounce_listener_params p = {
		.listen = "127.0.0.1:0",
		.domain = BOUNCE_DOMAIN,
		.hostname = "mx.test",
		.max_message_size = 1 << 20,
		.pool = pool,
	};
	char err[256];
	struct bounce_listener *bl = bounce_listener_new(&p, err, sizeof(err));
	cr_assert_not_null(bl, "%s", err);
	int port = bounce_listener_port(bl);
	int rc = th_swaks(&out, port, "--from '<>' --to bounce+one@" BOUNCE_DOMAIN);
	cr_assert_eq(rc, 0, "%s", out);
	free(out);

	/* Database down: 451 4.3.0, so the sending MTA keeps it and retries. */
	cr_assert_eq(th_cluster_stop(dir), 0);
	rc = th_swaks(&out, port, "--from '<>' --to bounce+two@" BOUNCE_DOMAIN);
	cr_assert_neq(rc, 0);
	cr_assert(strstr(out, "<** 451 4.3.0") != NULL, "%s", out);
	free(out);

	char *again = th_cluster_start(dir);
	cr_assert_not_null(again);
	free(again);
	rc = th_swaks(&out, port, "--from '<>' --to bounce+two@" BOUNCE_DOMAIN);
	cr_assert_eq(rc, 0, "the retry must succeed once the database is back: %s", out);
	free(out);
	char *rows = th_sql(url, "SELECT string_agg(rcpt_to, ',' ORDER BY id) FROM bounces_raw");
	cr_assert_str_eq(rows, "bounce+one@" BOUNCE_DOMAIN ",bounce+two@" BOUNCE_DOMAIN);
	free(rows);
	bounce_listener_free(bl);
	db_pool_free(pool);
	th_cluster_stop(dir);
	th_rmrf(dir);
	free(dir);
	free(url);
}

Test(bounce_listener, starttls_from_config)
{
	char *dir = th_tmpdir("bouncetls");
	cr_assert_not_null(dir);
	char *out = NULL;
	int rc = th_run(&out, "cd '%s' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
			      "-keyout key.pem -out cert.pem -subj /CN=mx.mailferry.test -days 2", dir);
	cr_assert_eq(rc, 0, "%s", out);
	free(out);
	char cert[512], key[512];
	snprintf(cert, sizeof(cert), "MAILFERRY_BOUNCE_TLS_CERT=%s/cert.pem", dir);
	snprintf(key, sizeof(key), "MAILFERRY_BOUNCE_TLS_KEY=%s/key.pem", dir);
	struct listener l;
	listener_start_env(&l, "10MiB", cert, key);
	rc = th_swaks(&out, l.port, "--tls --from '<>' --to bounce+tls@" BOUNCE_DOMAIN);
	cr_assert_eq(rc, 0, "%s", out);
	cr_assert(strstr(out, "=== TLS started") != NULL, "%s", out);
	free(out);
	char *c = th_sql(l.url, "SELECT count(*) FROM bounces_raw WHERE position('with ESMTPS' in convert_from(raw, 'UTF8')) > 0");
	cr_assert_str_eq(c, "1");
	free(c);
	listener_stop(&l);
	th_rmrf(dir);
	free(dir);
}

Test(bounce_listener, tls_keys_go_together)
{
	char *out = NULL;
	int rc = th_run(&out, "MAILFERRY_BOUNCE_TLS_CERT=/x.pem %s config check", th_bin());
	cr_assert_eq(rc, 2, "%s", out);
	cr_assert(strstr(out, "bounce_tls_cert and bounce_tls_key") != NULL, "%s", out);
	free(out);
}

Test(bounce_listener, domain_match)
{
	cr_assert(bounce_listener_domain_matches("a@b.example", "B.Example"));
	cr_assert(!bounce_listener_domain_matches("a@b.example", "example"));
	cr_assert(!bounce_listener_domain_matches("a@xb.example", "b.example"));
	cr_assert(!bounce_listener_domain_matches("b.example", "b.example"));
	cr_assert(!bounce_listener_domain_matches("@b.example", "b.example"));
	cr_assert(!bounce_listener_domain_matches("a@b.example", ""));
}

/* ---- mailferry sink ---- */

static pid_t sink_start(const char *dir, int port, const char *log)
{
	pid_t pid = fork();
	if (pid == 0) {
		char listen[64];
		snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
		/* Dies with the test process, even when an assertion fails. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		FILE *f = freopen(log, "w", stderr);
		(void)f;
		execl(th_bin(), "mailferry", "sink", "--listen", listen, "--dir", dir, (char *)NULL);
		_exit(127);
	}
	return pid;
}

Test(sink, captures_swaks_message_into_dir)
{
	char *out = NULL;
	cr_assert_eq(th_run(&out, "%s sink --help", th_bin()), 0);
	cr_assert(strstr(out, "usage: mailferry sink --listen HOST:PORT --dir DIR") != NULL, "%s", out);
	free(out);
	/* Without --dir the sink only counts (sink/sink.h); a --dir that is not a
	 * directory is still a usage error. */
	cr_assert_eq(th_run(&out, "%s sink --listen 127.0.0.1:1 --dir /nonexistent-sink-dir", th_bin()), 2, "%s", out);
	free(out);

	char *dir = th_tmpdir("sink");
	cr_assert_not_null(dir);
	char *log = xasprintf("%s.log", dir);
	int port = th_free_port();
	pid_t pid = sink_start(dir, port, log);
	cr_assert_gt(pid, 0);
	cr_assert_eq(th_smtp_wait_port(port, 10000), 0, "sink did not come up");
	int rc = th_swaks(&out, port, "--from app@example.org --to 'x@example.com,y@example.net' "
				      "--header 'Subject: sink test' --body 'captured body 4242'");
	cr_assert_eq(rc, 0, "%s", out);
	free(out);

	DIR *d = opendir(dir);
	cr_assert_not_null(d);
	struct dirent *e;
	char *name = NULL;
	int n = 0;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		n++;
		free(name);
		name = xstrdup(e->d_name);
	}
	closedir(d);
	cr_assert_eq(n, 1, "want one file in %s", dir);
	cr_assert(strstr(name, ".eml") != NULL, "%s", name);
	char *content = NULL;
	cr_assert_eq(th_run(&content, "cat '%s/%s'", dir, name), 0);
	static const char head[] = "X-Mailferry-Envelope-From: <app@example.org>\r\n"
				   "X-Mailferry-Envelope-To: <x@example.com>\r\n"
				   "X-Mailferry-Envelope-To: <y@example.net>\r\n"
				   "Received: from test.local ([127.0.0.1])\r\n";
	cr_assert(strncmp(content, head, strlen(head)) == 0, "%s", content);
	cr_assert(strstr(content, "Subject: sink test") && strstr(content, "captured body 4242"), "%s", content);
	free(content);
	free(name);

	kill(pid, SIGTERM);
	int st = 0;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "sink exit status %d", st);
	unlink(log);
	free(log);
	th_rmrf(dir);
	free(dir);
}
