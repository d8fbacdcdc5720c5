/*
 * relay_deliver() against the in-process scripted SMTP server
 * (tests/harness/smtp_script.h), for what smtp-sink cannot do: STARTTLS
 * with a test CA (verified, wrong host name, required vs opportunistic),
 * bytes injected after STARTTLS's 220, AUTH PLAIN/LOGIN, implicit TLS,
 * a 451 greeting then the next MX, per-state timeouts, session reuse with
 * RSET, pipelined RCPT replies, DATA at the end of the pipelined group
 * (and a 354 after every recipient was refused), SIZE and 8BITMIME.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "relay/relay.h"
#include "relay/relay.h"
#include "smtp_script.h"
#include "util/config.h"
#include "util/log.h"
#include "util/xmalloc.h"

#define GREET { NULL, "220 mx.test ESMTP\r\n", 0, 0 }
#define EHLO_TLS "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"
#define EHLO_PLAIN "250-mx.test\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"
#define EHLO_PIPE "250-mx.test\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n"
#define STEP_DATA { "DATA", "354 go ahead\r\n", 0, 0 }, { NULL, "250 2.0.0 queued as X\r\n", SS_BODY, 0 }
/* RFC 2920 §3.1: with PIPELINING, DATA ends the MAIL/RCPT group. */
#define STEP_DATA_PIPE                                                   \
	{ "DATA", "354 go ahead\r\n", SS_PIPELINED, 0 },                \
	{ NULL, "250 2.0.0 queued as X\r\n", SS_BODY, 0 }
#define STEP_QUIT { "QUIT", "221 2.0.0 bye\r\n", SS_CLOSE, 0 }
#define NSTEPS(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char MSG[] = "From: a@sender.test\r\nTo: r0@example.com\r\nSubject: t\r\n\r\nhello\r\n";

static char *tmpdir;

/* A test CA plus certificates for localhost ("good") and a wrong name. */
static void make_certs(void)
{
	tmpdir = th_tmpdir("tls");
	cr_assert_not_null(tmpdir);
	cr_assert_eq(ss_make_ca(tmpdir), 0);
	cr_assert_eq(ss_make_cert(tmpdir, "good", "localhost"), 0);
	cr_assert_eq(ss_make_cert(tmpdir, "wrong", "wrong.example"), 0);
}

static struct ss_opts tls_opts(const char *name)
{
	static char cert[512], key[512];
	snprintf(cert, sizeof(cert), "%s/%s.pem", tmpdir, name);
	snprintf(key, sizeof(key), "%s/%s.key", tmpdir, name);
	return (struct ss_opts){ .cert_file = cert, .key_file = key };
}

static struct config *cfg_new(void)
{
	struct config *c = xcalloc(1, sizeof(*c));
	c->helo_name = xstrdup("client.test");
	c->tls_policy = TLS_POLICY_OPPORTUNISTIC;
	c->tls_verify = 1;
	c->smarthost_tls = TLS_MODE_STARTTLS;
	if (tmpdir)
		c->tls_ca_file = xasprintf("%s/ca.pem", tmpdir);
	return c;
}

static struct config *cfg_route(int port)
{
	struct config *c = cfg_new();
	c->routes = xasprintf("example.com=localhost:%d", port);
	return c;
}

static struct config *cfg_smarthost(int port, enum tls_mode mode, const char *user)
{
	struct config *c = cfg_new();
	c->smarthost = xasprintf("localhost:%d", port);
	c->smarthost_tls = mode;
	if (user) {
		c->smarthost_user = xstrdup(user);
		c->smarthost_password = xstrdup("secret");
	}
	return c;
}

struct job {
	struct delivery_job j;
	struct delivery_rcpt r[4];
	char addr[4][64];
};

static void job_init(struct job *jb, int n, const char *msg)
{
	memset(jb, 0, sizeof(*jb));
	for (int i = 0; i < n; i++) {
		snprintf(jb->addr[i], sizeof(jb->addr[i]), "r%d@example.com", i);
		jb->r[i].addr = jb->addr[i];
	}
	jb->j.mail_from = "bounce@sender.test";
	jb->j.domain = "example.com";
	jb->j.msg = msg ? msg : MSG;
	jb->j.len = strlen(jb->j.msg);
	jb->j.log_id = "script";
	jb->j.rcpts = jb->r;
	jb->j.nrcpts = n;
}

/* Delivers one job of n recipients with config c (freed), scale 0.05. */
static void deliver(struct config *c, struct job *jb, int n, const char *msg)
{
	char err[256] = "";
	log_setup(MF_LOG_WARN, 0);
	struct relay *r = relay_new(c, err, sizeof(err));
	cr_assert_not_null(r, "%s", err);
	relay_set_timeout_scale(r, 0.05);
	job_init(jb, n, msg);
	relay_deliver(r, &jb->j);
	relay_free(r);
	config_cleanup(c);
	free(c);
}

static char *finish(struct smtp_script *s, int want_steps)
{
	char *tr = NULL, *err = NULL;
	int done = smtp_script_finish(s, &tr, &err);
	cr_assert_eq(done, want_steps, "script stopped at step %d: %s\n%s", done, err, tr);
	free(err);
	return tr;
}

/* A relay for config c (the caller frees both), timeouts scaled by 0.05. */
static struct relay *relay_scaled(struct config *c)
{
	char err[256] = "";
	log_setup(MF_LOG_WARN, 0);
	struct relay *r = relay_new(c, err, sizeof(err));
	cr_assert_not_null(r, "%s", err);
	relay_set_timeout_scale(r, 0.05);
	return r;
}

static int count_of(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

static void cleanup(void)
{
	if (tmpdir) {
		th_rmrf(tmpdir);
		free(tmpdir);
		tmpdir = NULL;
	}
}

TestSuite(relay_script, .fini = cleanup);

Test(relay_script, starttls_verified_when_required)
{
	make_certs();
	struct ss_step steps[] = {
		GREET,
		{ "EHLO client.test", EHLO_TLS, 0, 0 },
		{ "STARTTLS", "220 2.0.0 ready\r\n", SS_STARTTLS, 0 },
		{ "EHLO client.test", EHLO_PIPE, 0, 0 }, /* RFC 3207 §4.2: EHLO again */
		{ "MAIL FROM:<bounce@sender.test>", "250 2.1.0 ok\r\n", 0, 0 },
		{ "RCPT TO:<r0@example.com>", "250 2.1.5 ok\r\n", SS_PIPELINED, 0 },
		STEP_DATA,
		STEP_QUIT,
	};
	struct ss_opts o = tls_opts("good");
	struct smtp_script *s = smtp_script_start(steps, NSTEPS(steps), &o);
	cr_assert_not_null(s);
	struct config *c = cfg_route(smtp_script_port(s));
	c->tls_policy = TLS_POLICY_REQUIRED;
	struct job jb;
	deliver(c, &jb, 1, NULL);
	const struct smtp_outcome *out = &jb.r[0].out;
	cr_assert_eq(out->cls, OUT_2XX, "%d %s", out->code, out->text);
	cr_assert_str_eq(out->enhanced, "2.0.0");
	cr_assert_str_eq(out->mx, "localhost");
	cr_assert(strncmp(out->tls_version, "TLSv1.", 6) == 0, "%s", out->tls_version);
	cr_assert(out->tls_cipher[0] != '\0');
	cr_assert_eq(out->tls_verified, 1);
	char *tr = finish(s, NSTEPS(steps));
	cr_assert(strstr(tr, "\r\nhello\r\n.\r\n") != NULL, "%s", tr);
	free(tr);
}

Test(relay_script, starttls_wrong_host_fails_when_required)
{
	make_certs();
	struct ss_step steps[] = {
		GREET,
		{ "EHLO", EHLO_TLS, 0, 0 },
		{ "STARTTLS", "220 2.0.0 ready\r\n", SS_STARTTLS, 0 },
	};
	struct ss_opts o = tls_opts("wrong");
	struct smtp_script *s = smtp_script_start(steps, NSTEPS(steps), &o);
	struct config *c = cfg_route(smtp_script_port(s));
	c->tls_policy = TLS_POLICY_REQUIRED;
	struct job jb;
	deliver(c, &jb, 1, NULL);
	const struct smtp_outcome *out = &jb.r[0].out;
	cr_assert_eq(out->scope, SCOPE_SESSION);
	cr_assert_eq(out->cls, OUT_LOCAL);
	cr_assert_eq(out->kind, KIND_TLS, "kind %d: %s", out->kind, out->text);
	cr_assert(strstr(out->text, "verif") != NULL, "%s", out->text);
	free(finish(s, 2)); /* the handshake itself must fail */
}

Test(relay_script, starttls_wrong_host_delivers_unverified_when_opportunistic)
{
	make_certs();
	struct ss_step steps[] = {
		GREET,
		{ "EHLO", EHLO_TLS, 0, 0 },
		{ "STARTTLS", "220 2.0.0 ready\r\n", SS_STARTTLS, 0 },
		{ "EHLO", EHLO_PLAIN, 0, 0 },
		{ "MAIL FROM:", "250 ok\r\n", 0, 0 },
		{ "RCPT TO:", "250 ok\r\n", 0, 0 },
		STEP_DATA,
		STEP_QUIT,
	};
	struct ss_opts o = tls_opts("wrong");
	struct smtp_script *s = smtp_script_start(steps, NSTEPS(steps), &o);
	struct config *c = cfg_route(smtp_script_port(s));
	struct job jb;
	deliver(c, &jb, 1, NULL);
	const struct smtp_outcome *out = &jb.r[0].out;
	cr_assert_eq(out->cls, OUT_2XX, "%s", out->text);
	cr_assert(out->tls_version[0] != '\0');
	cr_assert_eq(out->tls_verified, 0);
	free(finish(s, NSTEPS(steps)));
}

Test(relay_script, tls_required_but_not_offered)
{
	struct ss_step steps[] = {
		GREET,
		{ "EHLO", EHLO_PLAIN, 0, 0 },
	};
	struct smtp_script *s = smtp_script_start(steps, NSTEPS(steps), NULL);
	struct config *c = cfg_route(smtp_script_port(s));
	c->tls_policy = TLS_POLICY_REQUIRED;
	struct job jb;
	deliver(c, &jb, 1, NULL);
	cr_assert_eq(jb.r[0].out.scope, SCOPE_SESSION);
	cr_assert_eq(jb.r[0].out.kind, KIND_TLS);
	cr_assert(strstr(jb.r[0].out.text, "STARTTLS") != NULL, "%s", jb.r[0].out.text);
	char *tr = finish(s, NSTEPS(steps));
	cr_assert(strstr(tr, "MAIL") == NULL, "no mail in plaintext: %s", tr);
	free(tr);
}

Test(relay_script, bytes_after_starttls_220_are_refused)
{
	make_certs();
	struct ss_step steps[] = {
		GREET,
		{ "EHLO", EHLO_TLS, 0, 0 },
		/* An attacker's injected reply rides behind the 220 (RFC 3207 §6). */
		{ "STARTTLS", "220 2.0.0 ready\r\n250 injected\r\n", 0, 0 },
	};
	struct smtp_script *s = smtp_script_start(steps, NSTEPS(steps), NULL);
	struct config *c = cfg_route(smtp_script_port(s));
	struct job jb;
	deliver(c, &jb, 1, NULL);
	cr_assert_eq(jb.r[0].out.scope, SCOPE_SESSION);
	cr_assert_eq(jb.r[0].out.kind, KIND_PROTOCOL, "%s", jb.r[0].out.text);
	cr_assert(strstr(jb.r[0].out.text, "after 220") != NULL, "%s", jb.r[0].out.text);
	free(finish(s, NSTEPS(steps)));
}

Test(relay_script, auth_plain_over_starttls_to_smarthost)
{
	make_certs();
	struct ss_step steps[] = {
		GREET,
		{ "EHLO", EHLO_TLS, 0, 0 },
		{ "STARTTLS", "220 2.0.0 ready\r\n", SS_STARTTLS, 0 },
		{ "EHLO", "250-mx.test\r\n250-AUTH LOGIN PLAIN\r\n250 8BITMIME\r\n", 0, 0 },
		/* base64("\0user\0secret") */
		{ "AUTH PLAIN AHVzZXIAc2VjcmV0\r\n", "235 2.7.0 ok\r\n", 0, 0 },
		{ "MAIL FROM:", "250 ok\r\n", 0, 0 },
		{ "RCPT TO:", "250 ok\r\n", 0, 0 },
		STEP_DATA,
		STEP_QUIT,
	};
	struct ss_opts o = tls_opts("good");
	struct smtp_script *s = smtp_script_start(steps, NSTEPS(steps), &o);
	struct config *c = cfg_smarthost(smtp_script_port(s), TLS_MODE_STARTTLS, "user");
	c->routes = xstrdup("other.example=localhost:1"); /* not this domain */
	struct job jb;
	deliver(c, &jb, 1, NULL);
	cr_assert_eq(jb.r[0].out.cls, OUT_2XX, "%s", jb.r[0].out.text);
	cr_assert_eq(jb.r[0].out.tls_verified, 1);
	free(finish(s, NSTEPS(steps)));
}

Test(relay_script, auth_login_in_plaintext_only_when_smarthost_tls_none)
{
	struct ss_step steps[] = {
		GREET,
		{ "EHLO", "250-mx.test\r\n250-STARTTLS\r\n250 AUTH LOGIN\r\n", 0, 0 },
		{ "AUTH LOGIN\r\n", "334 VXNlcm5hbWU6\r\n", 0, 0 },
		{ "dXNlcg==\r\n", "334 UGFzc3dvcmQ6\r\n", 0, 0 },
		{ "c2VjcmV0\r\n", "235 2.7.0 ok\r\n", 0, 0 },
		{ "MAIL FROM:", "250 ok\r\n", 0, 0 },
		{ "RCPT TO:", "250 ok\r\n", 0, 0 },
		STEP_DATA,
		STEP_QUIT,
	};
	struct smtp_script *s = smtp_script_start(steps, NSTEPS(steps), NULL);
	struct config *c = cfg_smarthost(smtp_script_port(s), TLS_MODE_NONE, "user");
	struct job jb;
	deliver(c, &jb, 1, NULL);
	cr_assert_eq(jb.r[0].out.cls, OUT_2XX, "%s", jb.r[0].out.text);
	cr_assert_str_eq(jb.r[0].out.tls_version, "");
	free(finish(s, NSTEPS(steps)));
}

Test(relay_script, no_credentials_without_tls)
{
	struct ss_step steps[] = {
		GREET,
		{ "EHLO", "250-mx.test\r\n250 AUTH PLAIN LOGIN\r\n", 0, 0 },
	};
	struct smtp_script *s = smtp_script_start(steps, NSTEPS(steps), NULL);
	struct config *c = cfg_smarthost(smtp_script_port(s), TLS_MODE_STARTTLS, "user");
	struct job jb;
	deliver(c, &jb, 1, NULL);
	cr_assert_eq(jb.r[0].out.scope, SCOPE_SESSION);
	cr_assert_eq(jb.r[0].out.kind, KIND_TLS, "%s", jb.r[0].out.text);
	char *tr = finish(s, NSTEPS(steps));
	cr_assert(strstr(tr, "AUTH") == NULL, "credentials sent in plaintext: %s", tr);
	free(tr);
}

Test(relay_script, auth_rejected_is_local_session_failure)
{
	struct ss_step steps[] = {
		GREET,
		{ "EHLO", "250-mx.test\r\n250 AUTH PLAIN\r\n", 0, 0 },
		{ "AUTH PLAIN", "535 5.7.8 bad credentials\r\n", 0, 0 },
	};
	struct smtp_script *s = smtp_script_start(steps, NSTEPS(steps), NULL);
	struct config *c = cfg_smarthost(smtp_script_port(s), TLS_MODE_NONE, "user");
	struct job jb;
	deliver(c, &jb, 1, NULL);
	const struct smtp_outcome *o = &jb.r[0].out;
	cr_assert_eq(o->scope, SCOPE_SESSION);
	cr_assert_eq(o->cls, OUT_LOCAL, "credentials are our problem, never a bounce");
	cr_assert_eq(o->code, 535);
	cr_assert_str_eq(o->enhanced, "5.7.8");
	free(finish(s, NSTEPS(steps)));
}

Test(relay_script, implicit_tls_smarthost)
{
	make_certs();
	struct ss_step steps[] = {
		GREET,
		{ "EHLO", EHLO_PLAIN, 0, 0 },
		{ "MAIL FROM:", "250 ok\r\n", 0, 0 },
		{ "RCPT TO:", "250 ok\r\n", 0, 0 },
		STEP_DATA,
		STEP_QUIT,
	};
	struct ss_opts o = tls_opts("good");
	o.implicit_tls = 1;
	struct smtp_script *s = smtp_script_start(steps, NSTEPS(steps), &o);
	struct config *c = cfg_smarthost(smtp_script_port(s), TLS_MODE_IMPLICIT, NULL);
	struct job jb;
	deliver(c, &jb, 1, NULL);
	cr_assert_eq(jb.r[0].out.cls, OUT_2XX, "%s", jb.r[0].out.text);
	cr_assert_eq(jb.r[0].out.tls_verified, 1);
	free(finish(s, NSTEPS(steps)));
}

/* The MX lookup for the next-MX tests: two hosts on loopback ports. */
static int mx_ports[2];
static int two_mx(void *arg, const char *domain, struct route_hop *hops, int max,
		  struct smtp_outcome *fail)
{
	(void)arg, (void)domain, (void)fail;
	cr_assert_geq(max, 2);
	for (int i = 0; i < 2; i++) {
		snprintf(hops[i].host, sizeof(hops[i].host), "127.0.0.1");
		hops[i].addr[0] = '\0';
		hops[i].port = mx_ports[i];
		hops[i].pref = 10 * (i + 1);
	}
	return 2;
}

static void deliver_mx(struct job *jb)
{
	struct config *c = cfg_new();
	c->tls_policy = TLS_POLICY_NONE;
	char err[256];
	log_setup(MF_LOG_WARN, 0);
	struct relay *r = relay_new(c, err, sizeof(err));
	cr_assert_not_null(r, "%s", err);
	relay_set_timeout_scale(r, 0.05);
	relay_set_mx_lookup(r, two_mx, NULL);
	job_init(jb, 1, NULL);
	relay_deliver(r, &jb->j);
	relay_free(r);
	config_cleanup(c);
	free(c);
}

Test(relay_script, greeting_451_then_next_mx)
{
	struct ss_step busy[] = { { NULL, "451 4.3.2 try later\r\n", 0, 0 } };
	struct ss_step good[] = {
		GREET,
		{ "EHLO", EHLO_PLAIN, 0, 0 },
		{ "MAIL FROM:", "250 ok\r\n", 0, 0 },
		{ "RCPT TO:", "250 ok\r\n", 0, 0 },
		STEP_DATA,
		STEP_QUIT,
	};
	struct smtp_script *a = smtp_script_start(busy, 1, NULL);
	struct smtp_script *b = smtp_script_start(good, NSTEPS(good), NULL);
	mx_ports[0] = smtp_script_port(a);
	mx_ports[1] = smtp_script_port(b);
	struct job jb;
	deliver_mx(&jb);
	cr_assert_eq(jb.r[0].out.cls, OUT_2XX, "%s", jb.r[0].out.text);
	char *tr = finish(a, 1);
	cr_assert(strstr(tr, "EHLO") == NULL, "%s", tr);
	free(tr);
	free(finish(b, NSTEPS(good)));
}

Test(relay_script, all_mx_busy_reports_the_last_greeting)
{
	struct ss_step busy[] = { { NULL, "451 4.3.2 try later\r\n", 0, 0 } };
	struct ss_step busy2[] = { { NULL, "554 5.3.2 no service\r\n", 0, 0 } };
	struct smtp_script *a = smtp_script_start(busy, 1, NULL);
	struct smtp_script *b = smtp_script_start(busy2, 1, NULL);
	mx_ports[0] = smtp_script_port(a);
	mx_ports[1] = smtp_script_port(b);
	struct job jb;
	deliver_mx(&jb);
	cr_assert_eq(jb.r[0].out.scope, SCOPE_SESSION);
	cr_assert_eq(jb.r[0].out.cls, OUT_5XX);
	cr_assert_eq(jb.r[0].out.code, 554);
	free(finish(a, 1));
	free(finish(b, 1));
}

Test(relay_script, slow_mail_reply_times_out_in_mail_state)
{
	struct ss_step steps[] = {
		GREET,
		{ "EHLO", EHLO_PLAIN, 0, 0 },
		{ "MAIL FROM:", "250 ok\r\n", 0, 3000 },
	};
	struct smtp_script *s = smtp_script_start(steps, NSTEPS(steps), NULL);
	struct config *c = cfg_route(smtp_script_port(s));
	char err[256];
	log_setup(MF_LOG_WARN, 0);
	struct relay *r = relay_new(c, err, sizeof(err));
	relay_set_timeout_scale(r, 0.004); /* MAIL: 300 s -> 1.2 s */
	struct job jb;
	job_init(&jb, 1, NULL);
	relay_deliver(r, &jb.j);
	relay_free(r);
	config_cleanup(c);
	free(c);
	cr_assert_eq(jb.r[0].out.scope, SCOPE_SESSION);
	cr_assert_eq(jb.r[0].out.kind, KIND_TIMEOUT, "%s", jb.r[0].out.text);
	cr_assert(strstr(jb.r[0].out.text, "mail") != NULL, "%s", jb.r[0].out.text);
	free(finish(s, NSTEPS(steps)));
}

Test(relay_script, two_messages_one_connection_with_rset)
{
	struct ss_step steps[] = {
		GREET,
		{ "EHLO", EHLO_PLAIN, 0, 0 },
		{ "MAIL FROM:<bounce@sender.test> SIZE=", "250 ok\r\n", 0, 0 },
		{ "RCPT TO:<r0@example.com>", "250 ok\r\n", 0, 0 },
		STEP_DATA,
		{ "RSET", "250 2.0.0 ok\r\n", 0, 0 },
		{ "MAIL FROM:", "250 ok\r\n", 0, 0 },
		{ "RCPT TO:<r0@example.com>", "250 ok\r\n", 0, 0 },
		STEP_DATA,
		STEP_QUIT,
	};
	struct smtp_script *s = smtp_script_start(steps, NSTEPS(steps), NULL);
	struct config *c = cfg_route(smtp_script_port(s));
	char err[256];
	log_setup(MF_LOG_WARN, 0);
	struct relay *r = relay_new(c, err, sizeof(err));
	relay_set_timeout_scale(r, 0.05);
	for (int k = 0; k < 2; k++) {
		struct job jb;
		job_init(&jb, 1, NULL);
		relay_deliver(r, &jb.j);
		cr_assert_eq(jb.r[0].out.cls, OUT_2XX, "message %d: %s", k, jb.r[0].out.text);
	}
	relay_free(r);
	config_cleanup(c);
	free(c);
	free(finish(s, NSTEPS(steps)));
}

Test(relay_script, idle_session_expires)
{
	struct ss_step steps[] = {
		GREET,
		{ "EHLO", EHLO_PLAIN, 0, 0 },
		{ "MAIL FROM:", "250 ok\r\n", 0, 0 },
		{ "RCPT TO:", "250 ok\r\n", 0, 0 },
		STEP_DATA,
		STEP_QUIT,
		{ NULL, "220 second\r\n", SS_ACCEPT, 0 },
		{ "EHLO", EHLO_PLAIN, 0, 0 },
		{ "MAIL FROM:", "250 ok\r\n", 0, 0 },
		{ "RCPT TO:", "250 ok\r\n", 0, 0 },
		STEP_DATA,
		STEP_QUIT,
	};
	struct smtp_script *s = smtp_script_start(steps, NSTEPS(steps), NULL);
	struct config *c = cfg_route(smtp_script_port(s));
	char err[256];
	log_setup(MF_LOG_WARN, 0);
	struct relay *r = relay_new(c, err, sizeof(err));
	relay_set_timeout_scale(r, 0.05);
	relay_set_idle_ms(r, 100);
	for (int k = 0; k < 2; k++) {
		struct job jb;
		job_init(&jb, 1, NULL);
		relay_deliver(r, &jb.j);
		cr_assert_eq(jb.r[0].out.cls, OUT_2XX, "message %d: %s", k, jb.r[0].out.text);
		struct timespec ts = { 0, 300 * 1000000L };
		nanosleep(&ts, NULL);
	}
	relay_free(r);
	config_cleanup(c);
	free(c);
	char *tr = finish(s, NSTEPS(steps));
	cr_assert(strstr(tr, "RSET") == NULL, "expired session must not be reused: %s", tr);
	free(tr);
}

Test(relay_script, pipelined_rcpt_replies_per_recipient)
{
	struct ss_step steps[] = {
		GREET,
		{ "EHLO", EHLO_PIPE, 0, 0 },
		{ "MAIL FROM:", "250 2.1.0 ok\r\n", 0, 0 },
		{ "RCPT TO:<r0@example.com>", "250 2.1.5 ok\r\n", SS_PIPELINED, 0 },
		{ "RCPT TO:<r1@example.com>", "550 5.1.1 no such user\r\n", SS_PIPELINED, 0 },
		{ "RCPT TO:<r2@example.com>", "452 4.2.2 mailbox full\r\n", SS_PIPELINED, 0 },
		STEP_DATA_PIPE,
		STEP_QUIT,
	};
	struct smtp_script *s = smtp_script_start(steps, NSTEPS(steps), NULL);
	struct config *c = cfg_route(smtp_script_port(s));
	struct job jb;
	deliver(c, &jb, 3, NULL);
	cr_assert_eq(jb.r[0].out.cls, OUT_2XX, "%s", jb.r[0].out.text);
	cr_assert_eq(jb.r[0].out.code, 250);
	cr_assert_eq(jb.r[1].out.scope, SCOPE_RECIPIENT);
	cr_assert_eq(jb.r[1].out.cls, OUT_5XX);
	cr_assert_str_eq(jb.r[1].out.enhanced, "5.1.1");
	cr_assert_str_eq(jb.r[1].out.text, "no such user");
	cr_assert_eq(jb.r[2].out.scope, SCOPE_RECIPIENT);
	cr_assert_eq(jb.r[2].out.cls, OUT_4XX);
	cr_assert_str_eq(jb.r[2].out.enhanced, "4.2.2");
	char *tr = finish(s, NSTEPS(steps));
	cr_assert_eq(count_of(tr, "\r\nhello\r\n.\r\n"), 1, "body sent once: %s", tr);
	free(tr);
}

Test(relay_script, pipelined_mail_rejected_is_message_scope)
{
	struct ss_step steps[] = {
		GREET,
		{ "EHLO", EHLO_PIPE, 0, 0 },
		{ "MAIL FROM:", "553 5.7.1 sender rejected\r\n", 0, 0 },
		{ "RCPT TO:", "503 5.5.1 need MAIL\r\n", SS_PIPELINED, 0 },
		{ "RCPT TO:", "503 5.5.1 need MAIL\r\n", SS_PIPELINED, 0 },
		{ "DATA", "503 5.5.1 need MAIL\r\n", SS_PIPELINED, 0 },
		{ "RSET", "250 ok\r\n", SS_LOCKSTEP, 0 },
		STEP_QUIT,
	};
	struct smtp_script *s = smtp_script_start(steps, NSTEPS(steps), NULL);
	struct config *c = cfg_route(smtp_script_port(s));
	struct job jb;
	deliver(c, &jb, 2, NULL);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(jb.r[i].out.scope, SCOPE_MESSAGE);
		cr_assert_eq(jb.r[i].out.code, 553);
		cr_assert_str_eq(jb.r[i].out.enhanced, "5.7.1");
	}
	char *tr = finish(s, NSTEPS(steps));
	cr_assert(strstr(tr, "DATA\r\nRSET\r\nQUIT\r\n") != NULL, "no body: %s", tr);
	free(tr);
}

Test(relay_script, size_limit_fails_before_mail)
{
	struct ss_step steps[] = {
		GREET,
		{ "EHLO", "250-mx.test\r\n250 SIZE 20\r\n", 0, 0 },
		STEP_QUIT,
	};
	struct smtp_script *s = smtp_script_start(steps, NSTEPS(steps), NULL);
	struct config *c = cfg_route(smtp_script_port(s));
	struct job jb;
	deliver(c, &jb, 1, NULL);
	cr_assert_eq(jb.r[0].out.scope, SCOPE_MESSAGE);
	cr_assert_eq(jb.r[0].out.cls, OUT_LOCAL);
	cr_assert_eq(jb.r[0].out.permanent, 1);
	cr_assert_str_eq(jb.r[0].out.enhanced, "5.3.4");
	free(finish(s, NSTEPS(steps)));
}

Test(relay_script, eight_bit_message_says_body_8bitmime)
{
	struct ss_step steps[] = {
		GREET,
		{ "EHLO", EHLO_PLAIN, 0, 0 },
		{ "MAIL FROM:<bounce@sender.test> SIZE=", "250 ok\r\n", 0, 0 },
		{ "RCPT TO:", "250 ok\r\n", 0, 0 },
		STEP_DATA,
		STEP_QUIT,
	};
	struct smtp_script *s = smtp_script_start(steps, NSTEPS(steps), NULL);
	struct config *c = cfg_route(smtp_script_port(s));
	struct job jb;
	static const char msg8[] = "Subject: caf\xc3\xa9\r\n\r\nna\xc3\xafve\r\n";
	deliver(c, &jb, 1, msg8);
	cr_assert_eq(jb.r[0].out.cls, OUT_2XX, "%s", jb.r[0].out.text);
	char *tr = finish(s, NSTEPS(steps));
	char want[128];
	snprintf(want, sizeof(want), "SIZE=%zu BODY=8BITMIME\r\n", strlen(msg8));
	cr_assert(strstr(tr, want) != NULL, "%s", tr);
	free(tr);
}

Test(relay_script, idle_session_closed_by_server_is_replaced)
{
	struct ss_step steps[] = {
		GREET,
		{ "EHLO", EHLO_PLAIN, 0, 0 },
		{ "MAIL FROM:", "250 ok\r\n", 0, 0 },
		{ "RCPT TO:", "250 ok\r\n", 0, 0 },
		STEP_DATA,
		/* RFC 5321 §4.5.3.2.7-style idle timeout: 421, then hang up. */
		{ NULL, "421 4.4.2 idle too long\r\n", SS_CLOSE, 0 },
		{ NULL, "220 again\r\n", SS_ACCEPT, 0 },
		{ "EHLO", EHLO_PLAIN, 0, 0 },
		{ "MAIL FROM:", "250 ok\r\n", 0, 0 },
		{ "RCPT TO:", "250 ok\r\n", 0, 0 },
		STEP_DATA,
		STEP_QUIT,
	};
	struct smtp_script *s = smtp_script_start(steps, NSTEPS(steps), NULL);
	struct config *c = cfg_route(smtp_script_port(s));
	char err[256];
	log_setup(MF_LOG_WARN, 0);
	struct relay *r = relay_new(c, err, sizeof(err));
	relay_set_timeout_scale(r, 0.05);
	for (int k = 0; k < 2; k++) {
		struct job jb;
		job_init(&jb, 1, NULL);
		relay_deliver(r, &jb.j);
		cr_assert_eq(jb.r[0].out.cls, OUT_2XX, "message %d: %s", k, jb.r[0].out.text);
		struct timespec ts = { 0, 200 * 1000000L };
		nanosleep(&ts, NULL);
	}
	relay_free(r);
	config_cleanup(c);
	free(c);
	char *tr = finish(s, NSTEPS(steps));
	cr_assert(strstr(tr, "RSET") == NULL, "%s", tr);
	free(tr);
}

Test(relay_script, opportunistic_tls_failure_falls_back_to_plaintext)
{
	struct ss_step steps[] = {
		GREET,
		{ "EHLO", EHLO_TLS, 0, 0 },
		/* Says yes to STARTTLS, then hangs up instead of a handshake. */
		{ "STARTTLS", "220 2.0.0 ready\r\n", SS_CLOSE, 0 },
		{ NULL, "220 again\r\n", SS_ACCEPT, 0 },
		{ "EHLO", EHLO_TLS, 0, 0 },
		{ "MAIL FROM:", "250 ok\r\n", 0, 0 },
		{ "RCPT TO:", "250 ok\r\n", SS_PIPELINED, 0 },
		STEP_DATA,
		STEP_QUIT,
	};
	struct smtp_script *s = smtp_script_start(steps, NSTEPS(steps), NULL);
	struct config *c = cfg_route(smtp_script_port(s));
	struct job jb;
	deliver(c, &jb, 1, NULL);
	cr_assert_eq(jb.r[0].out.cls, OUT_2XX, "%s", jb.r[0].out.text);
	cr_assert_str_eq(jb.r[0].out.tls_version, "");
	free(finish(s, NSTEPS(steps)));
}

Test(relay_script, reuse_pipelines_rset_with_the_envelope)
{
	struct ss_step steps[] = {
		GREET,
		{ "EHLO", EHLO_PIPE, 0, 0 },
		{ "MAIL FROM:", "250 ok\r\n", 0, 0 },
		{ "RCPT TO:<r0@example.com>", "250 ok\r\n", SS_PIPELINED, 0 },
		STEP_DATA_PIPE,
		{ "RSET", "250 2.0.0 ok\r\n", 0, 0 },
		{ "MAIL FROM:", "250 ok\r\n", SS_PIPELINED, 0 },
		{ "RCPT TO:<r0@example.com>", "250 ok\r\n", SS_PIPELINED, 0 },
		{ "RCPT TO:<r1@example.com>", "550 5.1.1 unknown\r\n", SS_PIPELINED, 0 },
		STEP_DATA_PIPE,
		STEP_QUIT,
	};
	struct smtp_script *s = smtp_script_start(steps, NSTEPS(steps), NULL);
	struct config *c = cfg_route(smtp_script_port(s));
	char err[256];
	log_setup(MF_LOG_WARN, 0);
	struct relay *r = relay_new(c, err, sizeof(err));
	relay_set_timeout_scale(r, 0.05);
	struct job jb;
	job_init(&jb, 1, NULL);
	relay_deliver(r, &jb.j);
	cr_assert_eq(jb.r[0].out.cls, OUT_2XX, "%s", jb.r[0].out.text);
	job_init(&jb, 2, NULL);
	relay_deliver(r, &jb.j);
	cr_assert_eq(jb.r[0].out.cls, OUT_2XX, "%s", jb.r[0].out.text);
	cr_assert_eq(jb.r[1].out.cls, OUT_5XX, "%s", jb.r[1].out.text);
	cr_assert_eq(jb.r[1].out.scope, SCOPE_RECIPIENT);
	relay_free(r);
	config_cleanup(c);
	free(c);
	free(finish(s, NSTEPS(steps)));
}

Test(relay_script, data_ends_the_pipelined_group)
{
	struct ss_step steps[] = {
		GREET,
		{ "EHLO", EHLO_PIPE, 0, 0 },
		{ "MAIL FROM:<bounce@sender.test>\r\n", "250 2.1.0 ok\r\n", 0, 0 },
		{ "RCPT TO:<r0@example.com>", "250 2.1.5 ok\r\n", SS_PIPELINED, 0 },
		{ "RCPT TO:<r1@example.com>", "250 2.1.5 ok\r\n", SS_PIPELINED, 0 },
		STEP_DATA_PIPE,
		STEP_QUIT,
	};
	struct smtp_script *s = smtp_script_start(steps, NSTEPS(steps), NULL);
	struct config *c = cfg_route(smtp_script_port(s));
	struct job jb;
	deliver(c, &jb, 2, NULL);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(jb.r[i].out.cls, OUT_2XX, "%d: %s", i, jb.r[i].out.text);
		cr_assert_str_eq(jb.r[i].out.text, "queued as X");
	}
	char *tr = finish(s, NSTEPS(steps));
	cr_assert(strstr(tr, "RCPT TO:<r1@example.com>\r\nDATA\r\nFrom: a@sender.test\r\n") != NULL,
		  "%s", tr);
	cr_assert_eq(count_of(tr, "\r\nhello\r\n.\r\n"), 1, "%s", tr);
	free(tr);
}

Test(relay_script, without_pipelining_data_waits_for_the_rcpt_replies)
{
	struct ss_step steps[] = {
		GREET,
		{ "EHLO", EHLO_PLAIN, 0, 0 },
		{ "MAIL FROM:", "250 2.1.0 ok\r\n", SS_LOCKSTEP, 0 },
		{ "RCPT TO:<r0@example.com>", "250 2.1.5 ok\r\n", SS_LOCKSTEP, 0 },
		{ "RCPT TO:<r1@example.com>", "550 5.1.1 unknown\r\n", SS_LOCKSTEP, 0 },
		{ "DATA", "354 go ahead\r\n", SS_LOCKSTEP, 0 },
		{ NULL, "250 2.0.0 queued as X\r\n", SS_BODY, 0 },
		STEP_QUIT,
	};
	struct smtp_script *s = smtp_script_start(steps, NSTEPS(steps), NULL);
	struct config *c = cfg_route(smtp_script_port(s));
	struct job jb;
	deliver(c, &jb, 2, NULL);
	cr_assert_eq(jb.r[0].out.cls, OUT_2XX, "%s", jb.r[0].out.text);
	cr_assert_eq(jb.r[1].out.scope, SCOPE_RECIPIENT);
	cr_assert_eq(jb.r[1].out.code, 550);
	free(finish(s, NSTEPS(steps)));
}

Test(relay_script, all_rcpts_refused_then_554_to_data_keeps_the_session)
{
	struct ss_step steps[] = {
		GREET,
		{ "EHLO", EHLO_PIPE, 0, 0 },
		{ "MAIL FROM:", "250 2.1.0 ok\r\n", 0, 0 },
		{ "RCPT TO:<r0@example.com>", "550 5.1.1 unknown\r\n", SS_PIPELINED, 0 },
		{ "RCPT TO:<r1@example.com>", "451 4.3.0 try later\r\n", SS_PIPELINED, 0 },
		{ "DATA", "554 5.5.1 Error: no valid recipients\r\n", SS_PIPELINED, 0 },
		{ "RSET", "250 2.0.0 ok\r\n", SS_LOCKSTEP, 0 },
		/* The next message on the same connection. */
		{ "RSET", "250 2.0.0 ok\r\n", 0, 0 },
		{ "MAIL FROM:", "250 2.1.0 ok\r\n", SS_PIPELINED, 0 },
		{ "RCPT TO:<r0@example.com>", "250 2.1.5 ok\r\n", SS_PIPELINED, 0 },
		STEP_DATA_PIPE,
		STEP_QUIT,
	};
	struct smtp_script *s = smtp_script_start(steps, NSTEPS(steps), NULL);
	struct config *c = cfg_route(smtp_script_port(s));
	struct relay *r = relay_scaled(c);
	struct job jb;
	job_init(&jb, 2, NULL);
	relay_deliver(r, &jb.j);
	cr_assert_eq(jb.r[0].out.scope, SCOPE_RECIPIENT, "%s", jb.r[0].out.text);
	cr_assert_eq(jb.r[0].out.cls, OUT_5XX);
	cr_assert_eq(jb.r[0].out.code, 550);
	cr_assert_str_eq(jb.r[0].out.enhanced, "5.1.1");
	cr_assert_eq(jb.r[1].out.scope, SCOPE_RECIPIENT, "%s", jb.r[1].out.text);
	cr_assert_eq(jb.r[1].out.cls, OUT_4XX);
	cr_assert_eq(jb.r[1].out.code, 451);
	job_init(&jb, 1, NULL);
	relay_deliver(r, &jb.j);
	cr_assert_eq(jb.r[0].out.cls, OUT_2XX, "%s", jb.r[0].out.text);
	relay_free(r);
	config_cleanup(c);
	free(c);
	char *tr = finish(s, NSTEPS(steps));
	cr_assert(strstr(tr, "DATA\r\nRSET\r\nRSET\r\n") != NULL, "no body, one connection: %s", tr);
	cr_assert_eq(count_of(tr, "\r\nhello\r\n.\r\n"), 1, "%s", tr);
	free(tr);
}

Test(relay_script, all_rcpts_refused_then_354_gets_the_dot_alone)
{
	struct ss_step steps[] = {
		GREET,
		{ "EHLO", EHLO_PIPE, 0, 0 },
		{ "MAIL FROM:", "250 2.1.0 ok\r\n", 0, 0 },
		{ "RCPT TO:<r0@example.com>", "550 5.1.1 unknown\r\n", SS_PIPELINED, 0 },
		{ "RCPT TO:<r1@example.com>", "550 5.1.1 unknown\r\n", SS_PIPELINED, 0 },
		/* A server that answers a pipelined DATA with 354 regardless. */
		{ "DATA", "354 go ahead\r\n", SS_PIPELINED, 0 },
		{ NULL, "250 2.0.0 empty message taken\r\n", SS_BODY, 0 },
		{ "RSET", "250 2.0.0 ok\r\n", SS_LOCKSTEP, 0 },
		{ "RSET", "250 2.0.0 ok\r\n", 0, 0 },
		{ "MAIL FROM:", "250 2.1.0 ok\r\n", SS_PIPELINED, 0 },
		{ "RCPT TO:<r0@example.com>", "250 2.1.5 ok\r\n", SS_PIPELINED, 0 },
		STEP_DATA_PIPE,
		STEP_QUIT,
	};
	struct smtp_script *s = smtp_script_start(steps, NSTEPS(steps), NULL);
	struct config *c = cfg_route(smtp_script_port(s));
	struct relay *r = relay_scaled(c);
	struct job jb;
	job_init(&jb, 2, NULL);
	relay_deliver(r, &jb.j);
	for (int i = 0; i < 2; i++) {
		/* The reply to the lone "." is no one's outcome. */
		cr_assert_eq(jb.r[i].out.scope, SCOPE_RECIPIENT, "%d: %s", i, jb.r[i].out.text);
		cr_assert_eq(jb.r[i].out.cls, OUT_5XX);
		cr_assert_eq(jb.r[i].out.code, 550);
	}
	job_init(&jb, 1, NULL);
	relay_deliver(r, &jb.j);
	cr_assert_eq(jb.r[0].out.cls, OUT_2XX, "the session stays usable: %s", jb.r[0].out.text);
	relay_free(r);
	config_cleanup(c);
	free(c);
	char *tr = finish(s, NSTEPS(steps));
	/* RFC 2920 §3.1: the end-of-data indicator alone, no message content. */
	static const char first[] = "EHLO client.test\r\nMAIL FROM:<bounce@sender.test>\r\n"
				    "RCPT TO:<r0@example.com>\r\nRCPT TO:<r1@example.com>\r\n"
				    "DATA\r\n.\r\nRSET\r\n";
	cr_assert(strncmp(tr, first, strlen(first)) == 0, "%s", tr);
	cr_assert_eq(count_of(tr, "Subject: t\r\n"), 1, "only the second message's body: %s", tr);
	cr_assert_eq(count_of(tr, "\r\nhello\r\n.\r\n"), 1, "%s", tr);
	free(tr);
}

Test(relay_script, all_rcpts_refused_then_354_and_a_bad_reply_to_the_dot)
{
	struct ss_step steps[] = {
		GREET,
		{ "EHLO", EHLO_PIPE, 0, 0 },
		{ "MAIL FROM:", "250 2.1.0 ok\r\n", 0, 0 },
		{ "RCPT TO:<r0@example.com>", "550 5.1.1 unknown\r\n", SS_PIPELINED, 0 },
		{ "DATA", "354 go ahead\r\n", SS_PIPELINED, 0 },
		{ NULL, "354 go ahead again\r\n", SS_BODY, 0 },
	};
	struct smtp_script *s = smtp_script_start(steps, NSTEPS(steps), NULL);
	struct config *c = cfg_route(smtp_script_port(s));
	struct job jb;
	deliver(c, &jb, 1, NULL);
	/* The session is dropped, but the recipient keeps its own refusal. */
	cr_assert_eq(jb.r[0].out.scope, SCOPE_RECIPIENT, "%s", jb.r[0].out.text);
	cr_assert_eq(jb.r[0].out.code, 550);
	char *tr = finish(s, NSTEPS(steps));
	cr_assert(strstr(tr, "DATA\r\n.\r\n") != NULL, "%s", tr);
	cr_assert(strstr(tr, "hello") == NULL, "%s", tr);
	cr_assert(strstr(tr, "RSET") == NULL && strstr(tr, "QUIT") == NULL, "%s", tr);
	free(tr);
}

Test(relay_script, smtputf8_address_needs_the_extension)
{
	struct ss_step without[] = {
		GREET,
		{ "EHLO", EHLO_PLAIN, 0, 0 },
		STEP_QUIT,
	};
	struct smtp_script *s = smtp_script_start(without, NSTEPS(without), NULL);
	struct config *c = cfg_route(smtp_script_port(s));
	char err[256];
	log_setup(MF_LOG_WARN, 0);
	struct relay *r = relay_new(c, err, sizeof(err));
	relay_set_timeout_scale(r, 0.05);
	struct job jb;
	job_init(&jb, 1, NULL);
	snprintf(jb.addr[0], sizeof(jb.addr[0]), "j\xc3\xb6rg@example.com");
	relay_deliver(r, &jb.j);
	cr_assert_eq(jb.r[0].out.scope, SCOPE_MESSAGE);
	cr_assert_eq(jb.r[0].out.permanent, 1);
	cr_assert_str_eq(jb.r[0].out.enhanced, "5.6.7");
	relay_free(r);
	free(finish(s, NSTEPS(without)));

	struct ss_step with[] = {
		GREET,
		{ "EHLO", "250-mx.test\r\n250 SMTPUTF8\r\n", 0, 0 },
		{ "MAIL FROM:<bounce@sender.test> SMTPUTF8\r\n", "250 ok\r\n", 0, 0 },
		{ "RCPT TO:<j\xc3\xb6rg@example.com>", "250 ok\r\n", 0, 0 },
		STEP_DATA,
		STEP_QUIT,
	};
	s = smtp_script_start(with, NSTEPS(with), NULL);
	free(c->routes);
	c->routes = xasprintf("example.com=localhost:%d", smtp_script_port(s));
	r = relay_new(c, err, sizeof(err));
	relay_set_timeout_scale(r, 0.05);
	job_init(&jb, 1, NULL);
	snprintf(jb.addr[0], sizeof(jb.addr[0]), "j\xc3\xb6rg@example.com");
	relay_deliver(r, &jb.j);
	cr_assert_eq(jb.r[0].out.cls, OUT_2XX, "%s", jb.r[0].out.text);
	relay_free(r);
	config_cleanup(c);
	free(c);
	free(finish(s, NSTEPS(with)));
}

Test(relay_script, relay_new_reports_bad_settings)
{
	struct config *c = cfg_new();
	c->tls_ca_file = xstrdup("/nonexistent/ca.pem");
	char err[256] = "";
	cr_assert_null(relay_new(c, err, sizeof(err)));
	cr_assert(strstr(err, "tls_ca_file") != NULL, "%s", err);
	free(c->tls_ca_file);
	c->tls_ca_file = NULL;
	c->routes = xstrdup("example.com");
	cr_assert_null(relay_new(c, err, sizeof(err)));
	cr_assert(strstr(err, "example.com") != NULL, "%s", err);
	config_cleanup(c);
	free(c);
}
