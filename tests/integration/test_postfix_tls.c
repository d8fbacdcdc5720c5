/*
 * test_postfix_tls.c - the SMTP client's STARTTLS (RFC 3207), certificate
 * verification and AUTH (RFC 4954) against a real Postfix: each test
 * starts a throwaway instance (tests/integration/postfix_tls.sh: smtpd on
 * a loopback port, a certificate from a test CA made at test time, Cyrus
 * SASL with its own sasldb, AUTH only after STARTTLS) and a real "mailferry
 * serve" with the delivery role, sends through the API and checks both
 * sides: the recipient's status, last_response and tls fields (GET
 * /v1/messages/{id}), and Postfix's maillog (the queue id of the 250 reply,
 * its TLS line, sasl_method, and no MAIL FROM where nothing may be sent).
 *
 * Cleanup (Postfix, serve, database) runs in the .fini hook, so a failed
 * assertion still stops Postfix; tests/run.sh stops any instance left over.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_helpers.h"
#include "harness.h"

#define USER "relay"           /* postfix_tls.sh's SASL account ... */
#define PASSWORD "relay-secret" /* ... its password, and realm: */
#define SASL_USERNAME "relay@test.example"
#define GOOD_SAN "DNS:localhost" /* the name mailferry connects to */
#define WRONG_SAN "DNS:mx.wrong.example"

/* What the .fini hook tears down; each is cleared once torn down. */
static struct api_srv g_srv;
static char *g_pfdir;
static int g_pfport;

static const char *srcdir(void)
{
	const char *s = getenv("MAILFERRY_TEST_SRCDIR");
	return s ? s : ".";
}

static void teardown(void)
{
	if (g_pfdir) {
		th_run(NULL, "%s/tests/integration/postfix_tls.sh stop '%s'", srcdir(), g_pfdir);
		th_rmrf(g_pfdir);
		free(g_pfdir);
		g_pfdir = NULL;
	}
	if (g_srv.p) {
		th_proc_stop(g_srv.p, 10000);
		th_proc_free(g_srv.p);
		g_srv.p = NULL;
	}
	if (g_srv.db) {
		th_db_drop(g_srv.db);
		free(g_srv.db);
		g_srv.db = NULL;
	}
}

/* Starts the Postfix instance: certificate for san, SASL mechanisms mechs. */
static void postfix_start(const char *san, const char *mechs)
{
	cr_assert_eq(th_run(NULL, "command -v postfix && command -v saslpasswd2 && command -v openssl"), 0,
		     "postfix, saslpasswd2 (sasl2-bin) and openssl are test dependencies (deploy/bootstrap.sh)");
	g_pfport = th_free_port();
	g_pfdir = th_tmpdir("pftls");
	cr_assert_not_null(g_pfdir);
	char *o = NULL;
	int rc = th_run(&o, "%s/tests/integration/postfix_tls.sh start '%s' %d '%s' '%s'", srcdir(), g_pfdir, g_pfport,
			san, mechs);
	cr_assert_eq(rc, 0, "postfix: %s", o);
	free(o);
}

/* "MAILFERRY_TLS_CA_FILE=<dir>/<file>" etc., owned by a static buffer per slot. */
static const char *envf(int slot, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *envf(int slot, const char *fmt, ...)
{
	static char bufs[8][512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(bufs[slot], sizeof(bufs[slot]), fmt, ap);
	va_end(ap);
	return bufs[slot];
}

/* serve with delivery on; a retry an hour away, so a deferral stays put.
 * restart 0: a new database and API key; 1: a restart of g_srv's serve
 * with new settings (same database and key: messages belong to their key). */
static void serve_start(int restart, const char *const *extra)
{
	const char *env[16] = { "MAILFERRY_ROLES=api,delivery", "MAILFERRY_RETRY_SCHEDULE=1h" };
	int n = 2;
	for (const char *const *e = extra; e && *e && n < 15; e++)
		env[n++] = *e;
	env[n] = NULL;
	if (!restart) {
		api_srv_start(&g_srv, NULL, env);
		return;
	}
	cr_assert_eq(th_proc_stop(g_srv.p, 10000), 0, "serve did not stop cleanly");
	th_proc_free(g_srv.p);
	g_srv.p = th_serve_start(g_srv.db, env);
	cr_assert_not_null(g_srv.p, "serve did not start");
	snprintf(g_srv.base, sizeof(g_srv.base), "http://127.0.0.1:%d", g_srv.p->port);
}

static void dump_logs(void)
{
	char *o = NULL;
	th_run(&o, "cat '%s/maillog'; grep -E 'smtp|tls|relay' '%s' | tail -40", g_pfdir ? g_pfdir : "/nonexistent",
	       g_srv.p ? g_srv.p->log : "/dev/null");
	cr_log_error("postfix maillog + serve log:\n%s", o ? o : "");
	free(o);
}

/* Polls the recipient's status until it leaves queued/scheduled/sending
 * (at most timeout_ms) and asserts it is want.  The logs are dumped only
 * when it is not: Criterion's exit status counts cr_log_error lines. */
static void expect_final(const char *want, int timeout_ms)
{
	long t0 = th_now_ms();
	char *v = NULL;
	for (;;) {
		free(v);
		v = th_sql(g_srv.db, "SELECT status FROM recipients");
		if ((v && strcmp(v, "queued") != 0 && strcmp(v, "scheduled") != 0 && strcmp(v, "sending") != 0) ||
		    th_now_ms() - t0 > timeout_ms)
			break;
		usleep(100 * 1000);
	}
	if (v == NULL || strcmp(v, want) != 0)
		dump_logs();
	cr_assert_str_eq(v ? v : "NULL", want, "recipient status");
	free(v);
}

/* GET /v1/messages/{id}: the first recipient's object (caller json_decref's root). */
static json_t *get_recipient(const char *id, json_t **root)
{
	struct th_http r;
	char path[256];
	snprintf(path, sizeof(path), "/v1/messages/%s", id);
	cr_assert_eq(api_call(&g_srv, "GET", path, NULL, NULL, NULL, &r), 0);
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	*root = t_json(&r);
	th_http_free(&r);
	json_t *rc = json_array_get(json_object_get(*root, "recipients"), 0);
	cr_assert_not_null(rc);
	return rc;
}

/* Lines of the instance's maillog matching an extended regex. */
static long maillog_count(const char *ere)
{
	char *o = NULL;
	th_run(&o, "grep -cE '%s' '%s/maillog'", ere, g_pfdir);
	long n = o ? strtol(o, NULL, 10) : -1;
	free(o);
	return n;
}

/* Polls the maillog until want lines match (at most timeout_ms): Postfix
 * logs through postlogd, a moment after the SMTP replies mailferry saw.
 * Returns the last count. */
static long maillog_wait(const char *ere, long want, int timeout_ms)
{
	long t0 = th_now_ms(), n;
	while ((n = maillog_count(ere)) != want && th_now_ms() - t0 < timeout_ms)
		usleep(100 * 1000);
	return n;
}

/* Lines of serve's log matching an extended regex. */
static long serve_log_count(const char *ere)
{
	char *o = NULL;
	th_run(&o, "grep -cE '%s' '%s'", ere, g_srv.p->log);
	long n = o ? strtol(o, NULL, 10) : -1;
	free(o);
	return n;
}

/* The first match of a sed -nE script over the maillog (or ""). */
static char *maillog_sed(const char *script)
{
	char *o = NULL;
	th_run(&o, "sed -nE '%s' '%s/maillog' | head -1 | tr -d '\\n'", script, g_pfdir);
	return o ? o : strdup("");
}

/* The Postfix queue id in a 250 reply's text ("2.0.0 Ok: queued as 4Xk...") */
static void queue_id(const char *text, char *qid, size_t n)
{
	const char *p = text ? strstr(text, "queued as ") : NULL;
	cr_assert_not_null(p, "no queue id in %s", text ? text : "NULL");
	p += strlen("queued as ");
	size_t l = strspn(p, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZbcdfghjklmnpqrstvwxyz");
	cr_assert(l > 0 && l < n, "%s", text);
	snprintf(qid, n, "%.*s", (int)l, p);
}

/*
 * Asserts the delivered recipient and Postfix's view of it: the 250 reply's
 * queue id names a message Postfix received from mailferry (sasl_method
 * when given, else no AUTH), with mailferry's Message-ID, and handed on
 * (discard(8) status=sent); TLS version and cipher agree on both sides.
 */
static void expect_delivered(const char *id, const char *rcpt, int verified, const char *sasl_method)
{
	json_t *root, *rc = get_recipient(id, &root);
	cr_expect_str_eq(t_str(rc, "status"), "delivered");
	json_t *lr = json_object_get(rc, "last_response");
	cr_expect_eq(json_integer_value(json_object_get(lr, "code")), 250);
	cr_expect_str_eq(t_str(lr, "mx"), "localhost");
	char qid[32];
	queue_id(t_str(lr, "text"), qid, sizeof(qid));
	json_t *tls = json_object_get(rc, "tls");
	cr_assert(json_is_object(tls), "no tls object: %s", json_dumps(rc, 0));
	cr_expect_eq(json_is_true(json_object_get(tls, "verified")), verified, "tls.verified");
	/* Postfix logs "... TLS connection established from localhost[127.0.0.1]: TLSv1.3 with cipher X (...)". */
	cr_expect_eq(maillog_wait("TLS connection established from localhost", 1, 15000), 1);
	char *version = maillog_sed("s/.*TLS connection established from localhost\\[127\\.0\\.0\\.1\\]: (TLSv[0-9.]+) .*/\\1/p");
	char *cipher = maillog_sed("s/.*TLS connection established from localhost\\[127\\.0\\.0\\.1\\]: .* with cipher ([^ ]+) .*/\\1/p");
	cr_expect(*version != '\0', "postfix logged no TLS connection");
	cr_expect_str_eq(t_str(tls, "version"), version);
	cr_expect_str_eq(t_str(tls, "cipher"), cipher);
	free(version);
	free(cipher);

	char ere[512];
	if (sasl_method)
		snprintf(ere, sizeof(ere), "postfix/smtpd\\[[0-9]+\\]: %s: client=localhost\\[127\\.0\\.0\\.1\\], sasl_method=%s,"
					   " sasl_username=" SASL_USERNAME "$", qid, sasl_method);
	else
		snprintf(ere, sizeof(ere), "postfix/smtpd\\[[0-9]+\\]: %s: client=localhost\\[127\\.0\\.0\\.1\\]$", qid);
	cr_expect_eq(maillog_wait(ere, 1, 15000), 1, "postfix did not receive %s as expected (%s)", qid, ere);
	char *mid = th_sql(g_srv.db, "SELECT message_id_hdr FROM messages");
	cr_assert_not_null(mid);
	snprintf(ere, sizeof(ere), "postfix/cleanup\\[[0-9]+\\]: %s: message-id=<%s>", qid, mid);
	cr_expect_eq(maillog_wait(ere, 1, 15000), 1, "postfix's %s is not mailferry's message %s", qid, mid);
	free(mid);
	snprintf(ere, sizeof(ere), "postfix/qmgr\\[[0-9]+\\]: %s: from=<app@src\\.test>", qid);
	cr_expect_eq(maillog_wait(ere, 1, 15000), 1, "envelope sender");
	/* qmgr and discard(8) run after the 250. */
	snprintf(ere, sizeof(ere), "postfix/discard\\[[0-9]+\\]: %s: to=<%s>, .*status=sent", qid, rcpt);
	cr_expect_eq(maillog_wait(ere, 1, 15000), 1, "postfix did not pass %s on", qid);
	json_decref(root);
}

/* Asserts the recipient is deferred (not bounced) by a session failure
 * before any transaction: Postfix saw no MAIL FROM from mailferry. */
static json_t *expect_deferred_no_mail(const char *id, json_t **root)
{
	json_t *rc = get_recipient(id, root);
	cr_expect_str_eq(t_str(rc, "status"), "deferred", "%s", json_dumps(rc, 0));
	cr_expect_eq(json_integer_value(json_object_get(rc, "attempts")), 1);
	cr_expect(json_is_string(json_object_get(rc, "next_attempt_at")), "a deferred recipient has its next attempt");
	/* smtpd's disconnect line, the session's last, counts commands:
	 * mail=... only when MAIL was sent. */
	cr_expect_eq(maillog_wait("postfix/smtpd\\[[0-9]+\\]: disconnect from localhost", 1, 15000), 1,
		     "one session, ended");
	cr_expect_eq(maillog_count("postfix/smtpd\\[[0-9]+\\]: disconnect from .* mail="), 0, "MAIL FROM reached postfix");
	cr_expect_eq(maillog_count("postfix/smtpd\\[[0-9]+\\]: [0-9A-Za-z]+: client="), 0, "postfix queued a message");
	char *v = th_sql(g_srv.db, "SELECT string_agg(type, ',' ORDER BY id) FROM events");
	cr_expect_str_eq(v, "message.queued,message.deferred");
	free(v);
	return rc;
}

#define SEND_TO(rcpt) \
	"{\"from\":\"App <app@src.test>\",\"to\":\"" rcpt "\",\"subject\":\"Your code\",\"text\":\"123456\"}"

/* (a) A route to Postfix, TLS required and verified against the test CA. */
Test(postfix_tls, starttls_verified_against_test_ca, .fini = teardown)
{
	postfix_start(GOOD_SAN, "PLAIN LOGIN");
	const char *env[] = { envf(0, "MAILFERRY_ROUTES=dest.example=localhost:%d", g_pfport),
			      "MAILFERRY_TLS_POLICY=required", "MAILFERRY_TLS_VERIFY=yes",
			      envf(1, "MAILFERRY_TLS_CA_FILE=%s/ca.crt", g_pfdir), NULL };
	serve_start(0, env);
	char *id = api_send_ok(&g_srv, SEND_TO("someone@dest.example"));
	expect_final("delivered", 30000);
	expect_delivered(id, "someone@dest.example", 1, NULL);
	free(id);
}

/*
 * (b) The certificate names another host: with TLS required and verified,
 * nothing is sent (deferred, a TLS failure naming the verification, no MAIL
 * FROM at Postfix).  The same message retried with opportunistic TLS goes
 * out encrypted, recorded as not verified.
 */
Test(postfix_tls, wrong_name_refused_when_verified, .fini = teardown)
{
	postfix_start(WRONG_SAN, "PLAIN LOGIN");
	const char *env[] = { envf(0, "MAILFERRY_ROUTES=dest.example=localhost:%d", g_pfport),
			      "MAILFERRY_TLS_POLICY=required", "MAILFERRY_TLS_VERIFY=yes",
			      envf(1, "MAILFERRY_TLS_CA_FILE=%s/ca.crt", g_pfdir), NULL };
	serve_start(0, env);
	char *id = api_send_ok(&g_srv, SEND_TO("someone@dest.example"));
	expect_final("deferred", 30000);
	json_t *root, *rc = expect_deferred_no_mail(id, &root);
	json_t *lr = json_object_get(rc, "last_response");
	const char *text = t_str(lr, "text");
	cr_expect(text && strstr(text, "certificate verification failed") && strstr(text, "hostname mismatch"),
		  "last_response: %s", json_dumps(lr, 0));
	cr_expect(!json_is_true(json_object_get(json_object_get(rc, "tls"), "verified")));
	json_decref(root);
	/* A TLS failure of the session (state tls), not a plaintext fallback. */
	cr_expect_eq(serve_log_count("event=smtp_session_failed .* state=tls code=0 "), 1);
	cr_expect_eq(serve_log_count("event=smtp_tls_fallback"), 0);
	/* Postfix saw the handshake fail. */
	cr_expect_gt(maillog_count("postfix/smtpd\\[[0-9]+\\]: SSL_accept error from localhost"), 0);

	/* Opportunistic TLS to the same peer: delivered, encrypted, verified false. */
	const char *env2[] = { envf(0, "MAILFERRY_ROUTES=dest.example=localhost:%d", g_pfport),
			       "MAILFERRY_TLS_POLICY=opportunistic",
			       envf(1, "MAILFERRY_TLS_CA_FILE=%s/ca.crt", g_pfdir), NULL };
	serve_start(1, env2);
	struct th_http r;
	char path[256];
	snprintf(path, sizeof(path), "/v1/messages/%s/retry", id);
	cr_assert_eq(api_call(&g_srv, "POST", path, NULL, NULL, "{}", &r), 0);
	cr_assert_eq(r.status, 202, "%ld %s", r.status, r.body);
	th_http_free(&r);
	expect_final("delivered", 30000);
	expect_delivered(id, "someone@dest.example", 0, NULL);
	free(id);
}

/* The smarthost settings of the AUTH tests, with password pw. */
static void serve_smarthost(const char *pw)
{
	const char *env[] = { envf(0, "MAILFERRY_SMARTHOST=localhost:%d", g_pfport), "MAILFERRY_SMARTHOST_USER=" USER,
			      envf(2, "MAILFERRY_SMARTHOST_PASSWORD=%s", pw), "MAILFERRY_SMARTHOST_TLS=starttls",
			      envf(1, "MAILFERRY_TLS_CA_FILE=%s/ca.crt", g_pfdir), NULL };
	serve_start(0, env);
}

/* (c) AUTH PLAIN to a smarthost that needs it to relay (after STARTTLS). */
Test(postfix_tls, auth_plain_accepted, .fini = teardown)
{
	postfix_start(GOOD_SAN, "PLAIN LOGIN");
	serve_smarthost(PASSWORD);
	char *id = api_send_ok(&g_srv, SEND_TO("someone@far.example"));
	expect_final("delivered", 30000);
	/* Offered both, the client chose PLAIN (one round trip, RFC 4616). */
	expect_delivered(id, "someone@far.example", 1, "PLAIN");
	free(id);
}

/* (d) AUTH LOGIN when the server offers only LOGIN. */
Test(postfix_tls, auth_login_accepted, .fini = teardown)
{
	postfix_start(GOOD_SAN, "LOGIN");
	serve_smarthost(PASSWORD);
	char *id = api_send_ok(&g_srv, SEND_TO("someone@far.example"));
	expect_final("delivered", 30000);
	expect_delivered(id, "someone@far.example", 1, "LOGIN");
	free(id);
}

/*
 * (e) A wrong password: Postfix answers 535 5.7.8 and nothing is sent.
 * The policy (queue/policy.h, relay/smtp_client.c on_auth): rejected
 * credentials are a local failure of our configuration, never a bounce of
 * the recipient, so the recipient is deferred and retried.
 */
Test(postfix_tls, auth_wrong_password_refused_and_deferred, .fini = teardown)
{
	postfix_start(GOOD_SAN, "PLAIN LOGIN");
	serve_smarthost("not-the-password");
	char *id = api_send_ok(&g_srv, SEND_TO("someone@far.example"));
	expect_final("deferred", 30000);
	json_t *root, *rc = expect_deferred_no_mail(id, &root);
	json_t *lr = json_object_get(rc, "last_response");
	cr_expect_eq(json_integer_value(json_object_get(lr, "code")), 535, "%s", json_dumps(lr, 0));
	cr_expect_str_eq(t_str(lr, "enhanced_code"), "5.7.8");
	cr_expect(t_str(lr, "text") && strstr(t_str(lr, "text"), "AUTH failed"), "%s", json_dumps(lr, 0));
	json_t *tls = json_object_get(rc, "tls");
	cr_expect(json_is_true(json_object_get(tls, "verified")), "AUTH went over verified TLS: %s", json_dumps(rc, 0));
	json_decref(root);
	cr_expect_eq(serve_log_count("event=smtp_session_failed .* state=auth code=535 "), 1);
	char *v = th_sql(g_srv.db, "SELECT coalesce(bounce_type, '-') || '|' || (SELECT count(*) FROM suppressions)"
			     " FROM recipients");
	cr_expect_str_eq(v, "-|0", "bounce type / suppressions");
	free(v);
	cr_expect_eq(maillog_count("postfix/smtpd\\[[0-9]+\\]: warning: localhost\\[127\\.0\\.0\\.1\\]: SASL PLAIN"
				   " authentication failed: .*sasl_username=" SASL_USERNAME),
		     1);
	free(id);
}

/*
 * A certificate from a CA nobody trusts is refused (deferred, nothing sent);
 * tls_ca_file is an extra CA bundle (README): the system's trust store
 * still counts.  OpenSSL's system store is SSL_CERT_FILE when set, so on
 * the retry the test CA stands in for the system's CAs, the unrelated CA
 * stays the extra bundle, and the certificate verifies.  (Loading
 * tls_ca_file instead of the system store made the retry a TLS failure.)
 */
Test(postfix_tls, untrusted_ca_refused_and_tls_ca_file_adds_to_system_store, .fini = teardown)
{
	postfix_start(GOOD_SAN, "PLAIN LOGIN");
	const char *env[] = { envf(0, "MAILFERRY_ROUTES=dest.example=localhost:%d", g_pfport),
			      "MAILFERRY_TLS_POLICY=required", "MAILFERRY_TLS_VERIFY=yes",
			      envf(1, "MAILFERRY_TLS_CA_FILE=%s/other-ca.crt", g_pfdir), NULL };
	serve_start(0, env);
	char *id = api_send_ok(&g_srv, SEND_TO("someone@dest.example"));
	expect_final("deferred", 30000);
	json_t *root, *rc = expect_deferred_no_mail(id, &root);
	const char *text = t_str(json_object_get(rc, "last_response"), "text");
	cr_expect(text && strstr(text, "certificate verification failed: unable to get local issuer certificate"),
		  "%s", text ? text : "NULL");
	json_decref(root);
	cr_expect_eq(serve_log_count("event=smtp_session_failed .* state=tls code=0 "), 1);

	const char *env2[] = { env[0], env[1], env[2], env[3], envf(2, "SSL_CERT_FILE=%s/ca.crt", g_pfdir), NULL };
	serve_start(1, env2);
	struct th_http r;
	char path[256];
	snprintf(path, sizeof(path), "/v1/messages/%s/retry", id);
	cr_assert_eq(api_call(&g_srv, "POST", path, NULL, NULL, "{}", &r), 0);
	cr_assert_eq(r.status, 202, "%ld %s", r.status, r.body);
	th_http_free(&r);
	expect_final("delivered", 30000);
	expect_delivered(id, "someone@dest.example", 1, NULL);
	free(id);
}
