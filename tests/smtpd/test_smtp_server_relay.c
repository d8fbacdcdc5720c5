/*
 * Our SMTP client (relay_deliver) against our SMTP server (smtp_server):
 * the two halves must agree on pipelining, dot-stuffing, SIZE and
 * STARTTLS, since "make run" delivers into "mailferry sink".
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "relay/relay.h"
#include "relay/relay.h"
#include "smtpd/smtp_server.h"
#include "util/config.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/xmalloc.h"

static const char MSG[] = "From: a@sender.test\r\nTo: b@example.com\r\nSubject: loop\r\n\r\n"
			  "line one\r\n.starts with a dot\r\n..two dots\r\n.\r\nlast\r\n";

struct got {
	pthread_mutex_t lock;
	int n;
	char *data;
	char *from;
	size_t nrcpts;
	char tls[32];
};

static void on_message(void *arg, const struct smtp_server_envelope *env, const char *data, size_t len,
		       struct smtp_server_reply *reply)
{
	struct got *g = arg;
	(void)reply;
	pthread_mutex_lock(&g->lock);
	if (g->n++ == 0) {
		g->data = xstrndup(data, len);
		g->from = xstrdup(env->mail_from);
		g->nrcpts = env->nrcpts;
		snprintf(g->tls, sizeof(g->tls), "%s", env->tls ? env->tls : "");
	}
	pthread_mutex_unlock(&g->lock);
}

static void loop(int with_tls)
{
	signal(SIGPIPE, SIG_IGN);
	log_setup(MF_LOG_WARN, 0);
	char *dir = th_tmpdir("srvrelay");
	cr_assert_not_null(dir);
	char cert[512] = "", key[512] = "";
	if (with_tls) {
		char *out = NULL;
		int rc = th_run(&out, "cd '%s' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
				      "-nodes -keyout key.pem -out cert.pem -subj /CN=mx.test -days 2", dir);
		cr_assert_eq(rc, 0, "%s", out);
		free(out);
		snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
		snprintf(key, sizeof(key), "%s/key.pem", dir);
	}
	struct got g = { 0 };
	pthread_mutex_init(&g.lock, NULL);
	struct smtp_server_params p = {
		.listen = "127.0.0.1:0",
		.hostname = "mx.test",
		.max_message_size = 1 << 20,
		.tls_cert_file = with_tls ? cert : NULL,
		.tls_key_file = with_tls ? key : NULL,
		.arg = &g,
		.on_message = on_message,
	};
	char err[256];
	struct smtp_server *srv = smtp_server_new(&p, err, sizeof(err));
	cr_assert_not_null(srv, "%s", err);

	struct config c = { 0 };
	c.helo_name = xstrdup("client.test");
	c.routes = xasprintf("example.com=127.0.0.1:%d", smtp_server_port(srv));
	c.tls_policy = TLS_POLICY_OPPORTUNISTIC;
	c.tls_verify = 0;
	c.smarthost_tls = TLS_MODE_STARTTLS;
	struct relay *r = relay_new(&c, err, sizeof(err));
	cr_assert_not_null(r, "relay_new: %s", err);

	struct delivery_rcpt rc[2] = { { .id = 1, .addr = "x@example.com" }, { .id = 2, .addr = "y@example.com" } };
	struct delivery_job job = { .mail_from = "bounce+tok@bounces.test", .domain = "example.com", .msg = MSG,
				    .len = sizeof(MSG) - 1, .log_id = "loop", .rcpts = rc, .nrcpts = 2 };
	relay_deliver(r, &job);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(rc[i].out.cls, OUT_2XX, "rcpt %d: %d %s", i, rc[i].out.code, rc[i].out.text);
		cr_assert_eq(rc[i].out.code, 250);
		if (with_tls)
			cr_assert_neq(rc[i].out.tls_version[0], '\0', "STARTTLS was offered but not used");
		else
			cr_assert_str_eq(rc[i].out.tls_version, "");
	}
	relay_free(r);
	smtp_server_free(srv);

	cr_assert_eq(g.n, 1);
	cr_assert_str_eq(g.from, "bounce+tok@bounces.test");
	cr_assert_eq(g.nrcpts, 2);
	cr_assert_eq(g.tls[0] != '\0', with_tls);
	/* Whatever the client stuffed, the server unstuffed: the body is intact. */
	const char *body = strstr(g.data, "\r\n\r\nline one");
	cr_assert_not_null(body, "%s", g.data);
	cr_assert_str_eq(body, "\r\n\r\nline one\r\n.starts with a dot\r\n..two dots\r\n.\r\nlast\r\n");
	free(g.data);
	free(g.from);
	pthread_mutex_destroy(&g.lock);
	config_cleanup(&c);
	th_rmrf(dir);
	free(dir);
}

Test(smtp_server_relay, our_client_delivers_plain)
{
	loop(0);
}

Test(smtp_server_relay, our_client_delivers_over_starttls)
{
	loop(1);
}

/* Distinct sessions seen by the server (by its session id). */
struct sessions_seen {
	pthread_mutex_t lock;
	int messages, n;
	char ids[256][64];
};

static void on_message_session(void *arg, const struct smtp_server_envelope *env, const char *data, size_t len,
			       struct smtp_server_reply *reply)
{
	struct sessions_seen *g = arg;
	(void)data, (void)len, (void)reply;
	pthread_mutex_lock(&g->lock);
	g->messages++;
	int found = 0;
	for (int i = 0; i < g->n && !found; i++)
		found = strcmp(g->ids[i], env->session) == 0;
	if (!found && g->n < 256)
		snprintf(g->ids[g->n++], sizeof(g->ids[0]), "%s", env->session);
	pthread_mutex_unlock(&g->lock);
}

/* The idle-session cache scales with workers: 100 destinations (hosts
 * 127.0.0.1 .. 127.0.0.100, one server on all of them) keep 100 idle
 * sessions - beyond the 64 the cache held in all before - and a second
 * message to each destination goes over its first session. */
Test(smtp_server_relay, idle_cache_keeps_a_session_per_destination)
{
	enum { D = 100 };
	signal(SIGPIPE, SIG_IGN);
	log_setup(MF_LOG_WARN, 0);
	struct sessions_seen g = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct smtp_server_params p = {
		.listen = "0.0.0.0:0", .hostname = "mx.test", .max_message_size = 1 << 20,
		.max_sessions = 4 * D, .max_sessions_per_addr = 4 * D, .arg = &g,
		.on_message = on_message_session,
	};
	char err[256];
	struct smtp_server *srv = smtp_server_new(&p, err, sizeof(err));
	cr_assert_not_null(srv, "%s", err);
	struct config c = { 0 };
	c.helo_name = xstrdup("client.test");
	c.workers = 2 * D;
	c.tls_policy = TLS_POLICY_NONE;
	char *routes = xstrdup("");
	for (int i = 1; i <= D; i++) {
		char *next = xasprintf("%s%sd%d.test=127.0.0.%d:%d", routes, i > 1 ? "," : "", i, i, smtp_server_port(srv));
		free(routes);
		routes = next;
	}
	c.routes = routes;
	struct relay *r = relay_new(&c, err, sizeof(err));
	cr_assert_not_null(r, "relay_new: %s", err);
	relay_set_idle_ms(r, 60000);
	for (int round = 0; round < 2; round++)
		for (int i = 1; i <= D; i++) {
			char domain[32], addr[64];
			snprintf(domain, sizeof(domain), "d%d.test", i);
			snprintf(addr, sizeof(addr), "x@%s", domain);
			struct delivery_rcpt rc[1] = { { .id = 1, .addr = addr } };
			struct delivery_job job = { .mail_from = "a@sender.test", .domain = domain, .msg = MSG,
						    .len = sizeof(MSG) - 1, .log_id = "cache", .rcpts = rc, .nrcpts = 1 };
			relay_deliver(r, &job);
			cr_assert_eq(rc[0].out.cls, OUT_2XX, "%s: %d %s", domain, rc[0].out.code, rc[0].out.text);
		}
	cr_assert_eq(relay_idle_sessions(r), D);
	pthread_mutex_lock(&g.lock);
	cr_assert_eq(g.messages, 2 * D);
	cr_assert_eq(g.n, D, "%d sessions for %d messages to %d destinations", g.n, 2 * D, D);
	pthread_mutex_unlock(&g.lock);
	relay_free(r);
	smtp_server_free(srv);
	config_cleanup(&c);
}

/* One message to domain over a new session; returns its outcome's
 * tls_resumed (and asserts it went over TLS). */
static int deliver_tls(struct relay *r, const char *domain)
{
	char addr[64];
	snprintf(addr, sizeof(addr), "x@%s", domain);
	struct delivery_rcpt rc[1] = { { .id = 1, .addr = addr } };
	struct delivery_job job = { .mail_from = "a@sender.test", .domain = domain, .msg = MSG,
				    .len = sizeof(MSG) - 1, .log_id = "resume", .rcpts = rc, .nrcpts = 1 };
	relay_deliver(r, &job);
	cr_assert_eq(rc[0].out.cls, OUT_2XX, "%s: %d %s", domain, rc[0].out.code, rc[0].out.text);
	cr_assert_neq(rc[0].out.tls_version[0], '\0', "%s: no TLS", domain);
	return rc[0].out.tls_resumed;
}

/* TLS session resumption against our own STARTTLS server (OpenSSL's
 * server defaults: TLS 1.3 tickets): the second session to the same
 * host and port resumes the first one's session, a session to another
 * host name (localhost, the same server) does not until it has one of
 * its own; the counter counts the resumed handshakes. */
Test(smtp_server_relay, tls_session_resumed_with_the_same_host_only)
{
	signal(SIGPIPE, SIG_IGN);
	log_setup(MF_LOG_WARN, 0);
	char *dir = th_tmpdir("resume");
	cr_assert_not_null(dir);
	char *out = NULL;
	int rc = th_run(&out, "cd '%s' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
			      "-nodes -keyout key.pem -out cert.pem -subj /CN=mx.test -days 2", dir);
	cr_assert_eq(rc, 0, "%s", out);
	free(out);
	char cert[512], key[512];
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	struct smtp_server_params p = { .listen = "127.0.0.1:0", .hostname = "mx.test", .max_message_size = 1 << 20,
					.tls_cert_file = cert, .tls_key_file = key };
	char err[256];
	struct smtp_server *srv = smtp_server_new(&p, err, sizeof(err));
	cr_assert_not_null(srv, "%s", err);
	struct config c = { 0 };
	c.helo_name = xstrdup("client.test");
	c.routes = xasprintf("example.com=127.0.0.1:%d,other.test=localhost:%d", smtp_server_port(srv),
			     smtp_server_port(srv));
	c.tls_policy = TLS_POLICY_OPPORTUNISTIC;
	c.tls_verify = 0;
	struct relay *r = relay_new(&c, err, sizeof(err));
	cr_assert_not_null(r, "relay_new: %s", err);
	relay_set_idle_ms(r, 0); /* no SMTP session reuse: every delivery connects */
	struct metrics *m = metrics_new();
	relay_set_metrics(r, m);
	cr_assert_eq(deliver_tls(r, "example.com"), 0, "the first session has nothing to resume");
	cr_assert_eq(deliver_tls(r, "example.com"), 1, "the second session to 127.0.0.1 was not resumed");
	cr_assert_eq(deliver_tls(r, "example.com"), 1);
	cr_assert_eq(deliver_tls(r, "other.test"), 0, "a session to another host must not be resumed");
	cr_assert_eq(deliver_tls(r, "other.test"), 1, "localhost's own session was not resumed");
	struct buf b;
	buf_init(&b, 1 << 20);
	metrics_render(m, &b);
	cr_assert(strstr(buf_cstr(&b), "mailferry_smtp_tls_resumed_total 3\n") != NULL, "%s", buf_cstr(&b));
	buf_cleanup(&b);
	relay_free(r);
	metrics_free(m);
	smtp_server_free(srv);
	config_cleanup(&c);
	th_rmrf(dir);
	free(dir);
}
