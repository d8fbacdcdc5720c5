/*
 * test_delivery_promises.c - delivery promises end to end through
 * "mailferry serve" (delivery role) and real SMTP peers:
 *  - a 550 5.1.1 answered to RCPT bounces the recipient and suppresses the
 *    address (the next send to it is suppressed at accept), a 550 5.7.1
 *    policy rejection does not (Postfix's smtp-sink);
 *  - a session that outlasts lease_time (smtp-sink answering slowly) is
 *    not handed to a second worker: each recipient is delivered once and
 *    recorded delivered with one attempt;
 *  - destination_concurrency caps the transactions in flight to one
 *    domain (an in-process SMTP server counting them).
 * Every wait is bounded.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api_helpers.h"
#include "delivery_helpers.h"
#include "harness.h"
#include "smtpd/smtp_server.h"
#include "th_smtp.h"
#include "util/xmalloc.h"

static int count_files(const char *dir)
{
	DIR *d = opendir(dir);
	int n = 0;
	for (struct dirent *e; d && (e = readdir(d)) != NULL;)
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

/* INTERFACE.md "Bounces": a permanent failure of the recipient's mailbox
 * suppresses the address, a policy rejection does not - for a synchronous
 * RCPT rejection as for a DSN. */
Test(delivery, rcpt_550_bad_mailbox_suppresses_address)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	int badp = th_free_port(), polp = th_free_port();
	pid_t bad = sink_start(badp, "-f RCPT -B '550 5.1.1 <gone@bad.test>: Recipient address rejected: User unknown'");
	pid_t pol = sink_start(polp, "-f RCPT -B '550 5.7.1 Message rejected by policy'");
	char routes[160];
	snprintf(routes, sizeof(routes), "MAILFERRY_ROUTES=bad.test=127.0.0.1:%d,pol.test=127.0.0.1:%d", badp, polp);
	const char *env[] = { routes, "MAILFERRY_ROLES=api,delivery", NULL };
	char key[160], auth[200];
	cr_assert_eq(api_make_key(url, "send,read", key, sizeof(key)), 0);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
	struct th_proc *p = th_serve_start(url, env);
	cr_assert_not_null(p);

	insert_messages(url, 1, "Gone@bad.test,blocked@pol.test");
	cr_assert_eq(wait_count(url, 2, 15000, "SELECT count(*) FROM recipients WHERE status = 'bounced'"), 2);
	char *v = q(url, "SELECT string_agg(email || ' ' || last_enhanced || ' ' || bounce_category, ','"
			 " ORDER BY position) FROM recipients");
	cr_assert_str_eq(v, "Gone@bad.test 5.1.1 bad_mailbox,blocked@pol.test 5.7.1 policy");
	free(v);
	/* The address only, lower case, reason bounce, with the message and
	 * the server's words, and its suppression.created event. */
	v = q(url, "SELECT string_agg(s.email || ' ' || s.reason || ' ' || (s.message_id = m.id) || ' '"
		   " || (s.diagnostic LIKE '%%User unknown%%'), ',') FROM suppressions s, messages m");
	cr_assert_str_eq(v, "gone@bad.test bounce true true");
	free(v);
	v = q(url, "SELECT string_agg(payload->'data'->>'email', ',') FROM events WHERE type = 'suppression.created'");
	cr_assert_str_eq(v, "gone@bad.test");
	free(v);

	/* The next send to it is suppressed at accept, the other one queued. */
	char api[128];
	snprintf(api, sizeof(api), "http://127.0.0.1:%d/v1/messages", p->port);
	const char *hdr[] = { auth, "Content-Type: application/json", NULL };
	struct th_http r;
	cr_assert_eq(th_http("POST", api, hdr,
			     "{\"from\":\"app@sender.test\",\"to\":[\"gone@bad.test\",\"blocked@pol.test\"],"
			     "\"subject\":\"again\",\"text\":\"x\"}", &r), 0);
	cr_assert_eq(r.status, 202, "%ld %s", r.status, r.body);
	cr_assert(strstr(r.body, "{\"email\":\"gone@bad.test\",\"kind\":\"to\",\"status\":\"suppressed\"}") != NULL,
		  "%s", r.body);
	cr_assert(strstr(r.body, "{\"email\":\"blocked@pol.test\",\"kind\":\"to\",\"status\":\"queued\"}") != NULL,
		  "%s", r.body);
	th_http_free(&r);
	cr_assert_eq(th_proc_stop(p, 10000), 0);
	th_proc_free(p);
	kill(bad, SIGTERM);
	kill(pol, SIGTERM);
	th_db_drop(url);
	free(url);
}

/* The reproduction, scaled down: a server slower than lease_time
 * per session (DATA and the end of data each answered after 3 s,
 * lease_time 3s).  Not "-W rcpt:3": smtp-sink then answers the DATA
 * pipelined behind RCPT before RCPT itself ("503 need RCPT"), against
 * RFC 2920 §3.1's in-order replies.
 * Without the lease heartbeat the reaper handed every recipient to
 * another worker again and again, each 250 dropped: never 'delivered'. */
Test(delivery, session_longer_than_lease_delivered_once)
{
	enum { N = 3 };
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	char *dir = th_tmpdir("slowsink");
	chmod(dir, 0777);
	int port = th_free_port();
	char args[512], routes[128];
	snprintf(args, sizeof(args), "-w 3 -W .:3 -d '%s/%%H%%M%%S.'", dir);
	pid_t sink = sink_start(port, args);
	snprintf(routes, sizeof(routes), "MAILFERRY_ROUTES=*=127.0.0.1:%d", port);
	const char *env[] = { routes, "MAILFERRY_ROLES=api,delivery", "MAILFERRY_LEASE_TIME=3s",
			      "MAILFERRY_RETRY_SCHEDULE=1s", NULL };
	struct th_proc *p = th_serve_start(url, env);
	cr_assert_not_null(p);
	insert_messages(url, N, "slow@slow.test");
	long done = wait_count(url, N, 45000, "SELECT count(*) FROM recipients WHERE status = 'delivered'");
	cr_assert_eq(done, N, "delivered %ld of %d", done, N);
	cr_assert_eq(th_proc_stop(p, 10000), 0);
	/* Stopped: no session of ours is left, so every dump is in. */
	long t0 = th_now_ms();
	while (count_files(dir) < N && th_now_ms() - t0 < 5000)
		usleep(50000);
	cr_assert_eq(count_files(dir), N, "each recipient delivered exactly once");
	cr_assert_eq(ql(url, "SELECT count(*) FROM recipients WHERE attempts = 1"), N);
	cr_assert_eq(ql(url, "SELECT count(*) FROM events WHERE type = 'message.delivered'"), N);
	cr_assert_eq(ql(url, "SELECT count(*) FROM events WHERE type = 'message.deferred'"), 0);
	char *log = NULL;
	th_run(&log, "grep -c 'event=queue_lease_lost\\|event=leases_reaped' '%s'", p->log);
	cr_assert(log && strtol(log, NULL, 10) == 0, "leases lost or reaped: %s", log ? log : "");
	free(log);
	th_proc_free(p);
	kill(sink, SIGTERM);
	th_rmrf(dir);
	free(dir);
	th_db_drop(url);
	free(url);
}

/* Counts the transactions in their DATA phase at once, per domain. */
struct conc {
	pthread_mutex_t lock;
	int active, peak, messages;
};

static void conc_message(void *arg, const struct smtp_server_envelope *env, const char *data, size_t len,
			 struct smtp_server_reply *reply)
{
	(void)env;
	(void)data;
	(void)len;
	(void)reply;
	struct conc *c = arg;
	pthread_mutex_lock(&c->lock);
	if (++c->active > c->peak)
		c->peak = c->active;
	pthread_mutex_unlock(&c->lock);
	/* Hold the end-of-data reply so that jobs overlap if they may. */
	usleep(300000);
	pthread_mutex_lock(&c->lock);
	c->active--;
	c->messages++;
	pthread_mutex_unlock(&c->lock);
}

/* destination_concurrency = 2 with 8 workers and 12 messages to one
 * domain: the server sees exactly 2 transactions at once at the peak -
 * never more (the cap), and more than 1 (deliveries do run in parallel). */
Test(delivery, destination_concurrency_caps_parallel_transactions)
{
	enum { N = 12 };
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	struct conc c = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct smtp_server_params sp = { .listen = "127.0.0.1:0", .hostname = "conc.test",
					 .max_message_size = 1 << 20, .arg = &c, .on_message = conc_message };
	char err[256];
	struct smtp_server *srv = smtp_server_new(&sp, err, sizeof(err));
	cr_assert_not_null(srv, "%s", err);
	char routes[128];
	snprintf(routes, sizeof(routes), "MAILFERRY_ROUTES=*=127.0.0.1:%d", smtp_server_port(srv));
	const char *env[] = { routes, "MAILFERRY_ROLES=api,delivery", "MAILFERRY_WORKERS=8",
			      "MAILFERRY_DESTINATION_CONCURRENCY=2", NULL };
	insert_messages(url, N, "c@conc.test");
	struct th_proc *p = th_serve_start(url, env);
	cr_assert_not_null(p);
	long done = wait_count(url, N, 30000, "SELECT count(*) FROM recipients WHERE status = 'delivered'");
	cr_assert_eq(done, N, "delivered %ld of %d", done, N);
	cr_assert_eq(th_proc_stop(p, 10000), 0);
	th_proc_free(p);
	smtp_server_free(srv);
	pthread_mutex_lock(&c.lock);
	cr_assert_eq(c.messages, N);
	cr_assert_eq(c.peak, 2, "peak of transactions in flight to conc.test: %d (cap 2)", c.peak);
	pthread_mutex_unlock(&c.lock);
	th_db_drop(url);
	free(url);
}

/* delivery_timeout bounds the whole delivery: a server that sits on its
 * replies to the pipelined envelope (DATA answered after 100 s, legal for
 * 2 minutes by RFC 5321 §4.5.3.2; smtp-sink holds the group's replies
 * with it) holds the worker only that long, and the recipient is deferred
 * with the reason. */
Test(delivery, delivery_timeout_bounds_a_slow_session)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	int port = th_free_port();
	pid_t sink = sink_start(port, "-W data:100");
	char routes[128];
	snprintf(routes, sizeof(routes), "MAILFERRY_ROUTES=*=127.0.0.1:%d", port);
	const char *env[] = { routes, "MAILFERRY_ROLES=api,delivery", "MAILFERRY_DELIVERY_TIMEOUT=1s",
			      "MAILFERRY_RETRY_SCHEDULE=1h", NULL };
	struct th_proc *p = th_serve_start(url, env);
	cr_assert_not_null(p);
	insert_messages(url, 1, "tar@pit.test");
	if (wait_count(url, 1, 60000, "SELECT count(*) FROM recipients WHERE status = 'deferred'") != 1) {
		char *log = NULL, *st = q(url, "SELECT status || ' ' || attempts || ' ' || coalesce(last_text, '-')"
					      " FROM recipients");
		th_run(&log, "tail -n 40 '%s'", p->log);
		cr_assert_fail("not deferred within 60 s (recipient: %s); serve log:\n%s", st, log);
	}
	char *v = q(url, "SELECT attempts || ' ' || (next_attempt_at > now() + interval '30 min') || ' ' || last_text"
			 " FROM recipients");
	cr_assert(strncmp(v, "1 true delivery_timeout reached waiting for reply in ", 53) == 0, "%s", v);
	free(v);
	cr_assert_eq(th_proc_stop(p, 10000), 0);
	th_proc_free(p);
	kill(sink, SIGTERM);
	th_db_drop(url);
	free(url);
}
