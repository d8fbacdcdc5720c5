/*
 * test_delivery.c - end to end through "mailferry serve" (delivery role):
 * queued recipients (inserted with SQL, as the API commits them) leave as
 * SMTP deliveries to real peers: Postfix's smtp-sink (accepting, and
 * rejecting RCPT with 550 5.1.1), and an in-process scripted server that
 * answers 451 twice.  Also: kill -9 with 1,000 messages in flight, restart,
 * nothing lost; and a graceful stop gives unstarted work back.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db/db.h"
#include "db/settings.h"
#include "api_helpers.h"
#include "delivery_helpers.h"
#include "harness.h"
#include "mail/verp.h"
#include "smtpd/smtp_server.h"
#include "th_smtp.h"
#include "util/xmalloc.h"

/* Lines of a log file that contain s. */
static int log_count(const char *log, const char *s)
{
	FILE *f = fopen(log, "r");
	if (f == NULL)
		return 0;
	char line[4096];
	int n = 0;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, s) != NULL;
	fclose(f);
	return n;
}

/* Waits until the log has at least n lines containing s; 0 or -1. */
static int wait_log(const char *log, const char *s, int n, int timeout_ms)
{
	long end = th_now_ms() + timeout_ms;
	while (log_count(log, s) < n) {
		if (th_now_ms() > end)
			return -1;
		usleep(20000);
	}
	return 0;
}

/* A sink on a free port, and the MAILFERRY_ROUTES=... entry that sends
 * all mail to it (written to routes). */
static pid_t sink_routed(const char *args, char *routes, size_t n)
{
	int port = th_free_port();
	pid_t pid = sink_start(port, args);
	snprintf(routes, n, "MAILFERRY_ROUTES=*=127.0.0.1:%d", port);
	return pid;
}

static void sink_stop(pid_t pid)
{
	/* pid is timeout(1), which passes SIGTERM on to smtp-sink; a child of
	 * the shell th_run started, so not ours to reap. */
	kill(pid, SIGTERM);
}

/* Reads every file of dir and counts messages by their X-Seq header. */
static int count_dump(const char *dir, int *seen, int max, int *files, const char *must_contain)
{
	DIR *d = opendir(dir);
	cr_assert_not_null(d, "%s", dir);
	struct dirent *e;
	int dups = 0;
	*files = 0;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char *path = xasprintf("%s/%s", dir, e->d_name);
		FILE *f = fopen(path, "rb");
		free(path);
		if (f == NULL)
			continue;
		char buf[16384];
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		(*files)++;
		if (must_contain)
			cr_assert(strstr(buf, must_contain) != NULL, "dump lacks %s:\n%s", must_contain, buf);
		char *s = strstr(buf, "X-Seq: ");
		cr_assert_not_null(s, "%s", buf);
		int k = (int)strtol(s + 7, NULL, 10);
		cr_assert(k >= 1 && k <= max);
		if (seen[k]++)
			dups++;
	}
	closedir(d);
	return dups;
}

Test(delivery, three_recipients_two_delivered_one_bounced)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	char *dir = th_tmpdir("sink");
	chmod(dir, 0777);
	int okp = th_free_port(), badp = th_free_port();
	char args[512];
	snprintf(args, sizeof(args), "-d '%s/%%H%%M%%S.'", dir);
	pid_t ok = sink_start(okp, args);
	pid_t bad = sink_start(badp, "-f RCPT -B '550 5.1.1 Error: user unknown'");
	char routes[128];
	snprintf(routes, sizeof(routes), "MAILFERRY_ROUTES=ok.test=127.0.0.1:%d,bad.test=127.0.0.1:%d", okp, badp);
	const char *env[] = { routes, "MAILFERRY_ROLES=api,delivery", NULL };
	struct th_proc *p = th_serve_start(url, env);
	cr_assert_not_null(p);

	insert_messages(url, 1, "a@ok.test,b@ok.test,c@bad.test");
	long done = wait_count(url, 3, 15000,
		"SELECT count(*) FROM recipients WHERE status IN ('delivered', 'bounced', 'failed')");
	cr_assert_eq(done, 3, "not all recipients finished: %ld", done);

	char *v = q(url, "SELECT string_agg(email || ' ' || status || ' ' || last_code || ' ' || coalesce(last_enhanced, '-')"
			 " || ' ' || coalesce(bounce_type, '-') || ' ' || coalesce(bounce_category, '-') || ' ' || attempts,"
			 " ',' ORDER BY position) FROM recipients");
	cr_assert_str_eq(v, "a@ok.test delivered 250 2.0.0 - - 1,b@ok.test delivered 250 2.0.0 - - 1,"
			    "c@bad.test bounced 550 5.1.1 permanent bad_mailbox 1");
	free(v);
	v = q(url, "SELECT string_agg(e.type || ' ' || r.email, ',' ORDER BY r.position) FROM events e"
		   " JOIN recipients r ON r.id = e.recipient_id");
	cr_assert_str_eq(v, "message.delivered a@ok.test,message.delivered b@ok.test,message.bounced c@bad.test");
	free(v);
	v = q(url, "SELECT payload->'data'->'smtp'->>'code' || ' ' || (payload->'data'->'smtp'->>'enhanced_code')"
		   " || ' ' || (payload->'data'->'bounce'->>'type') FROM events WHERE type = 'message.bounced'");
	cr_assert_str_eq(v, "550 5.1.1 permanent");
	free(v);
	v = q(url, "SELECT status FROM messages");
	cr_assert_str_eq(v, "partial");
	free(v);
	cr_assert_eq(ql(url, "SELECT count(*) FROM recipients WHERE last_mx LIKE '127.0.0.1%%'"), 3);

	/* /metrics counts what happened: outcomes by destination class, one
	 * session per destination with its TLS use and latency, the bounce
	 * by category. */
	char murl[128];
	snprintf(murl, sizeof(murl), "http://127.0.0.1:%d/metrics", p->port);
	struct th_http mr;
	cr_assert_eq(th_http("GET", murl, NULL, NULL, &mr), 0);
	cr_assert(strstr(mr.body, "mailferry_delivery_outcomes_total{status=\"delivered\",destination=\"other\"} 2\n"),
		  "%s", mr.body);
	cr_assert(strstr(mr.body, "mailferry_delivery_outcomes_total{status=\"bounced\",destination=\"other\"} 1\n"));
	cr_assert(strstr(mr.body, "mailferry_bounces_total{type=\"permanent\",category=\"bad_mailbox\",source=\"smtp\"} 1\n"));
	cr_assert(strstr(mr.body, "mailferry_smtp_sessions_total{tls=\"none\",verified=\"no\"} 2\n"), "%s", mr.body);
	cr_assert(strstr(mr.body, "mailferry_smtp_session_duration_seconds_count{destination=\"other\"} 2\n"));
	th_http_free(&mr);

	/* Both accepted recipients in one transaction, the message intact. */
	int seen[4] = { 0 }, files = 0;
	long t0 = th_now_ms();
	while (th_now_ms() - t0 < 30000) {
		DIR *d = opendir(dir);
		int n = 0;
		for (struct dirent *e; d && (e = readdir(d)) != NULL;)
			n += e->d_name[0] != '.';
		if (d)
			closedir(d);
		if (n >= 1)
			break;
		usleep(50000);
	}
	/* smtp-sink's dump has LF line ends; the exact bytes on the wire are
	 * checked in deferred_twice_then_delivered. */
	cr_assert_eq(count_dump(dir, seen, 1, &files,
				"X-Rcpt-Args: <a@ok.test>\nX-Rcpt-Args: <b@ok.test>\n"), 0);
	cr_assert_eq(count_dump(dir, seen, 1, &files,
				"From: App <app@sender.test>\nTo: someone@ok.test\nSubject: hello 1\n"
				"Message-ID: <1@sender.test>\nX-Seq: 1\n\nLine one of message 1\n"
				".leading dot stays\nend\n"), 1);
	cr_assert_eq(files, 1);

	cr_assert_eq(th_proc_stop(p, 10000), 0);
	th_proc_free(p);
	sink_stop(ok);
	sink_stop(bad);
	th_rmrf(dir);
	free(dir);
	th_db_drop(url);
	free(url);
}

/* A scripted server: 451 to the first two DATA, then 250. */
struct flaky {
	pthread_mutex_t lock;
	int datas;
	char last[4096];
};

static void flaky_message(void *arg, const struct smtp_server_envelope *env, const char *data, size_t len,
			  struct smtp_server_reply *reply)
{
	(void)env;
	struct flaky *f = arg;
	pthread_mutex_lock(&f->lock);
	int n = ++f->datas;
	snprintf(f->last, sizeof(f->last), "%.*s", (int)len, data);
	pthread_mutex_unlock(&f->lock);
	if (n <= 2)
		smtp_server_reply_set(reply, 451, "4.3.0 try again later (%d)", n);
	else
		smtp_server_reply_set(reply, 250, "2.0.0 Ok: queued");
}

Test(delivery, deferred_twice_then_delivered)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	struct flaky f = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct smtp_server_params sp = { .listen = "127.0.0.1:0", .hostname = "flaky.test",
					 .max_message_size = 1 << 20, .arg = &f, .on_message = flaky_message };
	char err[256];
	struct smtp_server *srv = smtp_server_new(&sp, err, sizeof(err));
	cr_assert_not_null(srv, "%s", err);
	char routes[128];
	snprintf(routes, sizeof(routes), "MAILFERRY_ROUTES=*=127.0.0.1:%d", smtp_server_port(srv));
	const char *env[] = { routes, "MAILFERRY_ROLES=api,delivery", "MAILFERRY_RETRY_SCHEDULE=1s", NULL };
	struct th_proc *p = th_serve_start(url, env);
	cr_assert_not_null(p);

	insert_messages(url, 1, "x@flaky.test");
	long done = wait_count(url, 1, 15000, "SELECT count(*) FROM recipients WHERE status = 'delivered'");
	cr_assert_eq(done, 1);
	char *v = q(url, "SELECT string_agg(type || ':' || (payload->'data'->>'attempt') || ':'"
			 " || coalesce(payload->'data'->'smtp'->>'code', '-'), ',' ORDER BY id) FROM events");
	cr_assert_str_eq(v, "message.deferred:1:451,message.deferred:2:451,message.delivered:3:250");
	free(v);
	v = q(url, "SELECT attempts || ' ' || last_code || ' ' || (bounce_type IS NULL) FROM recipients");
	cr_assert_str_eq(v, "3 250 true");
	free(v);
	pthread_mutex_lock(&f.lock);
	cr_assert_eq(f.datas, 3);
	/* The stored message arrives byte for byte (after the server's own
	 * Received: line), dot-stuffing undone. */
	const char *want = "From: App <app@sender.test>\r\nTo: someone@ok.test\r\nSubject: hello 1\r\n"
			   "Message-ID: <1@sender.test>\r\nX-Seq: 1\r\n\r\nLine one of message 1\r\n"
			   ".leading dot stays\r\nend\r\n";
	char *at = strstr(f.last, "From: App");
	cr_assert_not_null(at, "%s", f.last);
	cr_assert_str_eq(at, want);
	pthread_mutex_unlock(&f.lock);
	cr_assert_eq(th_proc_stop(p, 10000), 0);
	th_proc_free(p);
	smtp_server_free(srv);
	th_db_drop(url);
	free(url);
}

Test(delivery, kill9_with_1000_in_flight_loses_nothing)
{
	enum { N = 1000 };
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	char *dir = th_tmpdir("killsink");
	chmod(dir, 0777);
	char args[512];
	snprintf(args, sizeof(args), "-d '%s/%%H%%M%%S.'", dir);
	char routes[128];
	pid_t sink = sink_routed(args, routes, sizeof(routes));
	const char *env[] = { routes, "MAILFERRY_ROLES=api,delivery", "MAILFERRY_LEASE_TIME=2s",
			      "MAILFERRY_RETRY_SCHEDULE=1s", "MAILFERRY_LOG_LEVEL=warn", NULL };
	/* The first process delivers with two workers, so that a fast machine
	 * does not send all N between two polls; once 100 are delivered the
	 * sink is stopped (SIGSTOP), which freezes the sessions in flight
	 * where they are, and the process is killed with them open. */
	const char *env_first[] = { routes, "MAILFERRY_ROLES=api,delivery", "MAILFERRY_LEASE_TIME=2s",
				    "MAILFERRY_RETRY_SCHEDULE=1s", "MAILFERRY_LOG_LEVEL=warn",
				    "MAILFERRY_WORKERS=2", NULL };
	insert_messages(url, N, "k@kill.test");
	struct th_proc *p = th_serve_start(url, env_first);
	cr_assert_not_null(p);
	long d = wait_count(url, 100, 15000, "SELECT count(*) FROM recipients WHERE status = 'delivered'");
	cr_assert_geq(d, 100);
	char *sig = NULL;
	cr_assert_eq(th_run(&sig, "pkill -STOP -P %d -x smtp-sink", (int)sink), 0, "%s", sig);
	free(sig);
	kill(p->pid, SIGKILL);
	int st;
	waitpid(p->pid, &st, 0);
	p->pid = 0;
	th_proc_free(p);
	long at_kill = ql(url, "SELECT count(*) FROM recipients WHERE status = 'delivered'");
	long leased = ql(url, "SELECT count(*) FROM recipients WHERE status = 'sending'");
	cr_assert_lt(at_kill, N, "everything was delivered before the kill; nothing tested");
	cr_assert_eq(th_run(&sig, "pkill -CONT -P %d -x smtp-sink", (int)sink), 0, "%s", sig);
	free(sig);

	p = th_serve_start(url, env);
	cr_assert_not_null(p);
	long done = wait_count(url, N, 20000, "SELECT count(*) FROM recipients WHERE status = 'delivered'");
	cr_assert_eq(done, N, "delivered %ld of %d", done, N);
	cr_assert_eq(th_proc_stop(p, 10000), 0);
	th_proc_free(p);
	cr_assert_eq(ql(url, "SELECT count(*) FROM messages WHERE status = 'delivered'"), N);

	int *seen = xcalloc(N + 1, sizeof(int)), files = 0;
	/* smtp-sink writes the dump after its 250: give it a moment. */
	long t0 = th_now_ms();
	int dups = 0;
	do {
		memset(seen, 0, (N + 1) * sizeof(int));
		dups = count_dump(dir, seen, N, &files, NULL);
		if (files - dups >= N)
			break;
		usleep(100000);
	} while (th_now_ms() - t0 < 30000);
	int missing = 0;
	for (int k = 1; k <= N; k++)
		missing += seen[k] == 0;
	fprintf(stderr, "kill9: delivered_at_kill=%ld leased_at_kill=%ld sink_files=%d duplicates=%d missing=%d\n",
		at_kill, leased, files, dups, missing);
	cr_assert_eq(missing, 0, "%d messages never reached the sink", missing);
	/* At-least-once: only messages in flight at the kill may repeat. */
	cr_assert_leq(dups, leased, "duplicates %d > rows leased at the kill %ld", dups, leased);
	free(seen);
	sink_stop(sink);
	th_rmrf(dir);
	free(dir);
	th_db_drop(url);
	free(url);
}

Test(delivery, graceful_stop_releases_unstarted_work)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	/* A slow sink: each DATA waits 1 s, so most work is still queued. */
	char routes[128];
	pid_t sink = sink_routed("-w 1", routes, sizeof(routes));
	const char *env[] = { routes, "MAILFERRY_ROLES=api,delivery", "MAILFERRY_WORKERS=2",
			      "MAILFERRY_SHUTDOWN_GRACE=8s", NULL };
	insert_messages(url, 20, "s@slow.test");
	struct th_proc *p = th_serve_start(url, env);
	cr_assert_not_null(p);
	cr_assert_geq(wait_count(url, 1, 10000, "SELECT count(*) FROM recipients WHERE status = 'sending'"), 1);
	cr_assert_eq(th_proc_stop(p, 10000), 0, "stop within shutdown_grace");
	th_proc_free(p);
	/* Nothing left leased; what was not attempted is queued again with
	 * its attempt not counted. */
	cr_assert_eq(ql(url, "SELECT count(*) FROM recipients WHERE status = 'sending' OR lease_owner IS NOT NULL"), 0);
	long queued = ql(url, "SELECT count(*) FROM recipients WHERE status = 'queued' AND attempts = 0");
	long delivered = ql(url, "SELECT count(*) FROM recipients WHERE status = 'delivered' AND attempts = 1");
	cr_assert_eq(queued + delivered, 20, "queued %ld delivered %ld", queued, delivered);
	cr_assert_gt(queued, 0);
	sink_stop(sink);
	th_db_drop(url);
	free(url);
}

/* Records each transaction's envelope. */
struct envelopes {
	pthread_mutex_t lock;
	int n;
	char from[8][MF_ADDRESS_MAX + 1];
	char rcpt[8][MF_ADDRESS_MAX + 1];
	int nrcpts[8];
};

static void record_envelope(void *arg, const struct smtp_server_envelope *env, const char *data, size_t len,
			    struct smtp_server_reply *reply)
{
	(void)data;
	(void)len;
	(void)reply;
	struct envelopes *e = arg;
	pthread_mutex_lock(&e->lock);
	if (e->n < 8) {
		snprintf(e->from[e->n], sizeof(e->from[0]), "%s", env->mail_from);
		snprintf(e->rcpt[e->n], sizeof(e->rcpt[0]), "%s", env->nrcpts ? env->rcpts[0] : "");
		e->nrcpts[e->n] = (int)env->nrcpts;
	}
	e->n++;
	pthread_mutex_unlock(&e->lock);
}

Test(delivery, verp_return_path_per_recipient)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	struct envelopes e = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct smtp_server_params sp = { .listen = "127.0.0.1:0", .hostname = "verp.test",
					 .max_message_size = 1 << 20, .arg = &e, .on_message = record_envelope };
	char err[256];
	struct smtp_server *srv = smtp_server_new(&sp, err, sizeof(err));
	cr_assert_not_null(srv, "%s", err);
	char routes[128];
	snprintf(routes, sizeof(routes), "MAILFERRY_ROUTES=*=127.0.0.1:%d", smtp_server_port(srv));
	const char *env[] = { routes, "MAILFERRY_ROLES=api,delivery", "MAILFERRY_BOUNCE_DOMAIN=bounces.test", NULL };
	struct th_proc *p = th_serve_start(url, env);
	cr_assert_not_null(p);
	insert_messages(url, 1, "one@v.test,two@v.test");
	cr_assert_eq(wait_count(url, 2, 15000, "SELECT count(*) FROM recipients WHERE status = 'delivered'"), 2);
	cr_assert_eq(th_proc_stop(p, 10000), 0);
	th_proc_free(p);

	struct db_pool *pool = db_pool_new(url, 1);
	unsigned char key[VERP_KEY_LEN];
	cr_assert_eq(db_settings_secret(pool, DB_SETTING_VERP_KEY, key, sizeof(key), err, sizeof(err)), 0, "%s", err);
	db_pool_free(pool);
	pthread_mutex_lock(&e.lock);
	cr_assert_eq(e.n, 2, "one transaction per recipient with VERP");
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(e.nrcpts[i], 1);
		cr_assert(strncmp(e.from[i], "bounce+", 7) == 0, "%s", e.from[i]);
		int64_t id = 0;
		cr_assert_eq(verp_decode(key, e.from[i], "bounces.test", &id), 0, "%s", e.from[i]);
		char sql[128];
		snprintf(sql, sizeof(sql), "SELECT email FROM recipients WHERE id = %lld", (long long)id);
		char *email = th_sql(url, sql);
		cr_assert_str_eq(email, e.rcpt[i], "VERP id %lld names %s, sent to %s", (long long)id, email, e.rcpt[i]);
		free(email);
	}
	cr_assert_str_neq(e.from[0], e.from[1]);
	pthread_mutex_unlock(&e.lock);
	smtp_server_free(srv);
	th_db_drop(url);
	free(url);
}

Test(delivery, new_mail_is_picked_up_on_notify)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	char routes[128];
	pid_t sink = sink_routed("", routes, sizeof(routes));
	const char *env[] = { routes, "MAILFERRY_ROLES=api,delivery", NULL };
	struct th_proc *p = th_serve_start(url, env);
	cr_assert_not_null(p);
	/* The scheduler sleeps up to QUEUE_IDLE_WAIT_MS (2 s) without a
	 * NOTIFY; mail inserted while it sleeps must wake it (it logs each
	 * wake-up by NOTIFY), not wait for the timer.  Mail inserted without
	 * a NOTIFY (mailferry.defer_notify, as the committer does before its
	 * own NOTIFY) leaves on the timer and logs no such wake-up. */
	cr_assert_eq(wait_log(p->log, "event=queue_started", 1, 15000), 0, "the scheduler did not start");
	insert_messages_silently(url, "s@notify.test");
	cr_assert_eq(wait_count(url, 1, 15000, "SELECT count(*) FROM recipients WHERE status = 'delivered'"), 1);
	cr_assert_eq(log_count(p->log, "event=queue_woken reason=notify"), 0, "a wake-up without a NOTIFY");
	for (int i = 0; i < 5; i++)
		insert_messages(url, 1, "n@notify.test");
	cr_assert_eq(wait_count(url, 6, 15000, "SELECT count(*) FROM recipients WHERE status = 'delivered'"), 6);
	cr_assert_geq(log_count(p->log, "event=queue_woken reason=notify"), 1, "the scheduler is not woken by NOTIFY");
	cr_assert_eq(th_proc_stop(p, 10000), 0);
	th_proc_free(p);
	sink_stop(sink);
	th_db_drop(url);
	free(url);
}

/* An API-only process and a delivery-only process: the committer's NOTIFY,
 * sent after its COMMIT (db/accept.c), wakes the other
 * process's scheduler, so mail posted while it sleeps leaves at once. */
Test(delivery, api_commit_wakes_another_process)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	char routes[128];
	pid_t sink = sink_routed("", routes, sizeof(routes));
	const char *env_api[] = { "MAILFERRY_ROLES=api", NULL };
	const char *env_del[] = { routes, "MAILFERRY_ROLES=delivery", NULL };
	char key[160], auth[200], api[128];
	cr_assert_eq(api_make_key(url, "send", key, sizeof(key)), 0);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
	struct th_proc *pa = th_serve_start(url, env_api);
	struct th_proc *pd = th_serve_start(url, env_del);
	cr_assert(pa && pd);
	snprintf(api, sizeof(api), "http://127.0.0.1:%d/v1/messages", pa->port);
	const char *hdr[] = { auth, "Content-Type: application/json", NULL };
	cr_assert_eq(wait_log(pd->log, "event=queue_started", 1, 15000), 0, "the scheduler did not start");
	for (int i = 0; i < 5; i++) {
		struct th_http r;
		cr_assert_eq(th_http("POST", api, hdr, "{\"from\":\"a@shop.example\",\"to\":\"w@wake.test\",\"text\":\"x\"}",
				     &r), 0);
		cr_assert_eq(r.status, 202, "%ld %s", r.status, r.body);
		th_http_free(&r);
	}
	cr_assert_eq(wait_count(url, 5, 15000, "SELECT count(*) FROM recipients WHERE status = 'delivered'"), 5);
	/* Only the API process inserts (its committer NOTIFYs after COMMIT). */
	cr_assert_geq(log_count(pd->log, "event=queue_woken reason=notify"), 1,
		      "the delivery process is not woken by the API's commit");
	cr_assert_eq(th_proc_stop(pa, 10000), 0);
	cr_assert_eq(th_proc_stop(pd, 10000), 0);
	th_proc_free(pa);
	th_proc_free(pd);
	sink_stop(sink);
	th_db_drop(url);
	free(url);
}

Test(delivery, api_post_three_recipients_end_to_end)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	char *dir = th_tmpdir("apisink");
	chmod(dir, 0777);
	int okp = th_free_port(), badp = th_free_port();
	char args[512];
	snprintf(args, sizeof(args), "-d '%s/%%H%%M%%S.'", dir);
	pid_t ok = sink_start(okp, args);
	pid_t bad = sink_start(badp, "-f RCPT -B '550 5.1.1 Error: user unknown'");
	char routes[128];
	snprintf(routes, sizeof(routes), "MAILFERRY_ROUTES=ok.test=127.0.0.1:%d,bad.test=127.0.0.1:%d", okp, badp);
	const char *env[] = { routes, "MAILFERRY_ROLES=api,delivery", NULL };
	char key[160], auth[200];
	cr_assert_eq(api_make_key(url, "send,read", key, sizeof(key)), 0);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
	struct th_proc *p = th_serve_start(url, env);
	cr_assert_not_null(p);
	char api[128];
	snprintf(api, sizeof(api), "http://127.0.0.1:%d/v1/messages", p->port);
	const char *hdr[] = { auth, "Content-Type: application/json", NULL };
	struct th_http r;
	cr_assert_eq(th_http("POST", api, hdr,
			     "{\"from\":\"App <app@sender.test>\",\"to\":[\"a@ok.test\",\"b@ok.test\"],"
			     "\"cc\":\"c@bad.test\",\"subject\":\"e2e over the API\","
			     "\"text\":\"Hello from the end-to-end test.\"}", &r), 0);
	cr_assert_eq(r.status, 202, "%ld %s", r.status, r.body);
	th_http_free(&r);

	cr_assert_eq(wait_count(url, 3, 15000,
				"SELECT count(*) FROM recipients WHERE status IN ('delivered', 'bounced', 'failed')"), 3);
	char *v = q(url, "SELECT string_agg(email || ' ' || status || ' ' || last_code || ' ' || coalesce(last_enhanced, '-')"
			 " || ' ' || coalesce(bounce_category, '-'), ',' ORDER BY position) FROM recipients");
	cr_assert_str_eq(v, "a@ok.test delivered 250 2.0.0 -,b@ok.test delivered 250 2.0.0 -,"
			    "c@bad.test bounced 550 5.1.1 bad_mailbox");
	free(v);
	/* The 5.1.1 to RCPT also suppressed the address (INTERFACE.md "Bounces"). */
	v = q(url, "SELECT string_agg(type, ',' ORDER BY type) FROM events WHERE type <> 'message.queued'");
	cr_assert_str_eq(v, "message.bounced,message.delivered,message.delivered,suppression.created");
	free(v);
	v = q(url, "SELECT status FROM messages");
	cr_assert_str_eq(v, "partial");
	free(v);
	/* The stored, composed message is what reached the sink. */
	long t0 = th_now_ms();
	int files = 0;
	char *dump = NULL;
	while (th_now_ms() - t0 < 30000 && files == 0) {
		free(dump);
		dump = NULL;
		th_run(&dump, "cat '%s'/* 2>/dev/null", dir);
		files = dump && strstr(dump, "X-Rcpt-Args") != NULL;
		if (!files)
			usleep(50000);
	}
	cr_assert(files, "nothing reached the sink");
	cr_assert(strstr(dump, "X-Rcpt-Args: <a@ok.test>\nX-Rcpt-Args: <b@ok.test>\n") != NULL, "%s", dump);
	cr_assert(strstr(dump, "Subject: e2e over the API") != NULL, "%s", dump);
	cr_assert(strstr(dump, "Hello from the end-to-end test.") != NULL, "%s", dump);
	cr_assert(strstr(dump, "c@bad.test") != NULL, "Cc header present: %s", dump);
	free(dump);
	cr_assert_eq(th_proc_stop(p, 10000), 0);
	th_proc_free(p);
	sink_stop(ok);
	sink_stop(bad);
	th_rmrf(dir);
	free(dir);
	th_db_drop(url);
	free(url);
}

Test(delivery, deferred_until_max_queue_lifetime_then_failed)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	char routes[128];
	pid_t sink = sink_routed("-r RCPT", routes, sizeof(routes));  /* 450 4.3.0 to every RCPT */
	const char *env[] = { routes, "MAILFERRY_ROLES=api,delivery", "MAILFERRY_RETRY_SCHEDULE=1s",
			      "MAILFERRY_MAX_QUEUE_LIFETIME=2s", NULL };
	struct th_proc *p = th_serve_start(url, env);
	cr_assert_not_null(p);
	insert_messages(url, 1, "t@temp.test");
	cr_assert_eq(wait_count(url, 1, 15000, "SELECT count(*) FROM recipients WHERE status = 'failed'"), 1);
	char *v = q(url, "SELECT last_code || ' ' || last_enhanced || ' ' || bounce_type || ' ' || (attempts >= 3)"
			 " FROM recipients");
	cr_assert_str_eq(v, "450 4.3.0 transient true");
	free(v);
	cr_assert_geq(ql(url, "SELECT count(*) FROM events WHERE type = 'message.deferred'"), 2);
	cr_assert_eq(ql(url, "SELECT count(*) FROM events WHERE type = 'message.failed'"), 1);
	v = q(url, "SELECT status FROM messages");
	cr_assert_str_eq(v, "failed");
	free(v);
	cr_assert_eq(th_proc_stop(p, 10000), 0);
	th_proc_free(p);
	sink_stop(sink);
	th_db_drop(url);
	free(url);
}

Test(delivery, message_without_body_fails)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	insert_messages(url, 1, "gone@x.test");
	free(q(url, "UPDATE messages SET body = NULL"));
	const char *env[] = { "MAILFERRY_ROUTES=*=127.0.0.1:9", "MAILFERRY_ROLES=api,delivery", NULL };
	struct th_proc *p = th_serve_start(url, env);
	cr_assert_not_null(p);
	cr_assert_eq(wait_count(url, 1, 30000, "SELECT count(*) FROM recipients WHERE status = 'failed'"), 1);
	char *v = q(url, "SELECT bounce_type || ' ' || (last_text LIKE '%%no longer stored%%') FROM recipients");
	cr_assert_str_eq(v, "permanent true");
	free(v);
	cr_assert_eq(th_proc_stop(p, 10000), 0);
	th_proc_free(p);
	th_db_drop(url);
	free(url);
}
