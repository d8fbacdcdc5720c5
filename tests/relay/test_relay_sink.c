/*
 * Integration tests of relay_deliver() against Postfix's smtp-sink, a real
 * SMTP server: delivery, soft and hard rejections at each stage,
 * disconnects, 421, connection refused, HELO fallback, session reuse and
 * concurrent callers.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "relay/relay.h"
#include "relay/relay.h"
#include "smtp_sink.h"
#include "util/config.h"
#include "util/log.h"
#include "util/xmalloc.h"

static const char MSG[] =
	"From: a@sender.test\r\nTo: b@example.com\r\nSubject: hi\r\n\r\n"
	"line one\r\n.starts with a dot\r\n..two dots\r\nlast\r\n";

static struct config *cfg_to(int port)
{
	struct config *c = xcalloc(1, sizeof(*c));
	c->helo_name = xstrdup("client.test");
	c->routes = xasprintf("example.com=127.0.0.1:%d", port);
	c->tls_policy = TLS_POLICY_OPPORTUNISTIC;
	c->tls_verify = 1;
	c->smarthost_tls = TLS_MODE_STARTTLS;
	return c;
}

static void cfg_free(struct config *c)
{
	config_cleanup(c);
	free(c);
}

/* A job for n recipients r0@example.com ... */
struct job {
	struct delivery_job j;
	struct delivery_rcpt r[8];
	char addr[8][64];
};

static void job_init(struct job *jb, int n)
{
	memset(jb, 0, sizeof(*jb));
	for (int i = 0; i < n; i++) {
		snprintf(jb->addr[i], sizeof(jb->addr[i]), "r%d@example.com", i);
		jb->r[i].id = i + 1;
		jb->r[i].addr = jb->addr[i];
	}
	jb->j.mail_from = "bounce@sender.test";
	jb->j.domain = "example.com";
	jb->j.msg = MSG;
	jb->j.len = sizeof(MSG) - 1;
	jb->j.log_id = "test";
	jb->j.rcpts = jb->r;
	jb->j.nrcpts = n;
}

static struct relay *relay_for(struct config *c)
{
	char err[256] = "";
	struct relay *r = relay_new(c, err, sizeof(err));
	cr_assert_not_null(r, "relay_new: %s", err);
	relay_set_timeout_scale(r, 0.05); /* 5 min -> 15 s: failures stay quick */
	log_setup(MF_LOG_WARN, 0);
	return r;
}

Test(relay_sink, delivers_two_recipients_in_one_transaction)
{
	struct th_sink *s = th_sink_start("");
	cr_assert_not_null(s);
	struct config *c = cfg_to(s->port);
	struct relay *r = relay_for(c);
	struct job jb;
	job_init(&jb, 2);
	relay_deliver(r, &jb.j);
	for (int i = 0; i < 2; i++) {
		const struct smtp_outcome *o = &jb.r[i].out;
		cr_assert_eq(o->cls, OUT_2XX, "rcpt %d: %d %s", i, o->code, o->text);
		cr_assert_eq(o->code, 250);
		cr_assert_str_eq(o->mx, "127.0.0.1");
		cr_assert_str_eq(o->tls_version, "");
	}
	cr_assert_eq(th_sink_wait(s, 1, 2000), 1, "one transaction, one message file");
	char *m = th_sink_message(s, 0);
	cr_assert_not_null(m);
	cr_assert(strstr(m, "X-Mail-Args: <bounce@sender.test>\n") != NULL, "%s", m);
	cr_assert(strstr(m, "X-Rcpt-Args: <r0@example.com>\n") != NULL, "%s", m);
	cr_assert(strstr(m, "X-Rcpt-Args: <r1@example.com>\n") != NULL, "%s", m);
	cr_assert(strstr(m, "X-Helo-Args: client.test") != NULL, "%s", m);
	/* The dot-stuffing was undone by the server: the body arrives intact. */
	cr_assert(strstr(m, "\nSubject: hi\n\nline one\n.starts with a dot\n..two dots\nlast\n") != NULL, "%s", m);
	free(m);
	relay_free(r);
	cfg_free(c);
	th_sink_stop(s);
}

/* Runs one delivery of n recipients against smtp-sink started with opts. */
static struct th_sink *deliver_with(const char *opts, struct job *jb, int n)
{
	struct th_sink *s = th_sink_start(opts);
	cr_assert_not_null(s);
	struct config *c = cfg_to(s->port);
	struct relay *r = relay_for(c);
	job_init(jb, n);
	relay_deliver(r, &jb->j);
	relay_free(r);
	cfg_free(c);
	return s;
}

Test(relay_sink, rcpt_soft_reject_is_recipient_4xx)
{
	struct job jb;
	struct th_sink *s = deliver_with("-r RCPT", &jb, 2);
	for (int i = 0; i < 2; i++) {
		const struct smtp_outcome *o = &jb.r[i].out;
		cr_assert_eq(o->scope, SCOPE_RECIPIENT);
		cr_assert_eq(o->cls, OUT_4XX);
		cr_assert_eq(o->kind, KIND_RESPONSE);
		cr_assert_eq(o->code, 450);
		cr_assert_str_eq(o->enhanced, "4.3.0");
		cr_assert_str_eq(o->text, "Error: command failed");
	}
	cr_assert_eq(th_sink_count(s), 0, "no DATA without an accepted recipient");
	th_sink_stop(s);
}

Test(relay_sink, rcpt_hard_reject_is_recipient_5xx)
{
	struct job jb;
	struct th_sink *s = deliver_with("-f RCPT", &jb, 3);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(jb.r[i].out.scope, SCOPE_RECIPIENT);
		cr_assert_eq(jb.r[i].out.cls, OUT_5XX);
		cr_assert_eq(jb.r[i].out.code, 500);
		cr_assert_str_eq(jb.r[i].out.enhanced, "5.3.0");
	}
	th_sink_stop(s);
}

Test(relay_sink, mail_from_reject_is_message_scope)
{
	struct job jb;
	struct th_sink *s = deliver_with("-f MAIL", &jb, 2);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(jb.r[i].out.scope, SCOPE_MESSAGE);
		cr_assert_eq(jb.r[i].out.cls, OUT_5XX);
		cr_assert_eq(jb.r[i].out.code, 500);
	}
	th_sink_stop(s);
}

Test(relay_sink, end_of_data_soft_reject_is_message_scope)
{
	struct job jb;
	struct th_sink *s = deliver_with("-r .", &jb, 2);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(jb.r[i].out.scope, SCOPE_MESSAGE);
		cr_assert_eq(jb.r[i].out.cls, OUT_4XX, "%d %s", jb.r[i].out.code, jb.r[i].out.text);
		cr_assert_eq(jb.r[i].out.code, 450);
	}
	th_sink_stop(s);
}

Test(relay_sink, data_hard_reject_is_message_scope)
{
	struct job jb;
	struct th_sink *s = deliver_with("-f DATA", &jb, 1);
	cr_assert_eq(jb.r[0].out.scope, SCOPE_MESSAGE);
	cr_assert_eq(jb.r[0].out.cls, OUT_5XX);
	th_sink_stop(s);
}

Test(relay_sink, disconnect_after_rcpt_is_session_failure)
{
	struct job jb;
	struct th_sink *s = deliver_with("-q RCPT", &jb, 2);
	for (int i = 0; i < 2; i++) {
		const struct smtp_outcome *o = &jb.r[i].out;
		cr_assert_eq(o->scope, SCOPE_SESSION);
		cr_assert_eq(o->cls, OUT_LOCAL);
		cr_assert_eq(o->kind, KIND_CONNECT, "kind %d: %s", o->kind, o->text);
		cr_assert(strstr(o->text, "closed") != NULL, "%s", o->text);
		cr_assert_str_eq(o->mx, "127.0.0.1");
	}
	th_sink_stop(s);
}

Test(relay_sink, disconnect_during_data_is_session_failure)
{
	struct job jb;
	struct th_sink *s = deliver_with("-q .", &jb, 1);
	cr_assert_eq(jb.r[0].out.scope, SCOPE_SESSION);
	cr_assert_eq(jb.r[0].out.cls, OUT_LOCAL);
	th_sink_stop(s);
}

Test(relay_sink, reply_421_is_session_4xx)
{
	struct job jb;
	struct th_sink *s = deliver_with("-Q MAIL", &jb, 2);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(jb.r[i].out.scope, SCOPE_SESSION);
		cr_assert_eq(jb.r[i].out.cls, OUT_4XX);
		cr_assert_eq(jb.r[i].out.code, 421);
	}
	th_sink_stop(s);
}

Test(relay_sink, helo_fallback_without_esmtp)
{
	struct job jb;
	struct th_sink *s = deliver_with("-e", &jb, 1);
	cr_assert_eq(jb.r[0].out.cls, OUT_2XX, "%d %s", jb.r[0].out.code, jb.r[0].out.text);
	cr_assert_eq(th_sink_wait(s, 1, 2000), 1);
	char *m = th_sink_message(s, 0);
	cr_assert(strstr(m, "X-Client-Proto: SMTP\n") != NULL, "%s", m);
	free(m);
	th_sink_stop(s);
}

Test(relay_sink, connection_refused_is_session_connect_failure)
{
	struct config *c = cfg_to(th_free_port());
	struct relay *r = relay_for(c);
	struct job jb;
	job_init(&jb, 2);
	relay_deliver(r, &jb.j);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(jb.r[i].out.scope, SCOPE_SESSION);
		cr_assert_eq(jb.r[i].out.cls, OUT_LOCAL);
		cr_assert_eq(jb.r[i].out.kind, KIND_CONNECT);
		cr_assert_eq(jb.r[i].out.permanent, 0);
		cr_assert(strstr(jb.r[i].out.text, "refused") != NULL, "%s", jb.r[i].out.text);
	}
	relay_free(r);
	cfg_free(c);
}

Test(relay_sink, reuses_idle_session_for_next_message)
{
	/* -n 1: smtp-sink exits after one session ends, so the second and third
	 * deliveries can only succeed on the first connection. */
	struct th_sink *s = th_sink_start("-n 1");
	cr_assert_not_null(s);
	struct config *c = cfg_to(s->port);
	struct relay *r = relay_for(c);
	for (int k = 0; k < 3; k++) {
		struct job jb;
		job_init(&jb, 1);
		relay_deliver(r, &jb.j);
		cr_assert_eq(jb.r[0].out.cls, OUT_2XX, "message %d: %s", k, jb.r[0].out.text);
		cr_assert_eq(relay_idle_sessions(r), 1);
	}
	cr_assert_eq(th_sink_wait(s, 3, 2000), 3);
	relay_free(r);
	cfg_free(c);
	th_sink_stop(s);
}

struct worker_arg {
	struct relay *r;
	int ok;
};

static void *worker(void *p)
{
	struct worker_arg *a = p;
	for (int k = 0; k < 5; k++) {
		struct job jb;
		job_init(&jb, 2);
		relay_deliver(a->r, &jb.j);
		a->ok += jb.r[0].out.cls == OUT_2XX && jb.r[1].out.cls == OUT_2XX;
	}
	return NULL;
}

Test(relay_sink, concurrent_callers_share_the_cache)
{
	struct th_sink *s = th_sink_start("");
	cr_assert_not_null(s);
	struct config *c = cfg_to(s->port);
	struct relay *r = relay_for(c);
	pthread_t th[6];
	struct worker_arg args[6];
	for (int i = 0; i < 6; i++) {
		args[i] = (struct worker_arg){ r, 0 };
		pthread_create(&th[i], NULL, worker, &args[i]);
	}
	int ok = 0;
	for (int i = 0; i < 6; i++) {
		pthread_join(th[i], NULL);
		ok += args[i].ok;
	}
	cr_assert_eq(ok, 30);
	cr_assert_eq(th_sink_wait(s, 30, 3000), 30);
	cr_assert_leq(relay_idle_sessions(r), 6);
	relay_free(r);
	cfg_free(c);
	th_sink_stop(s);
}
