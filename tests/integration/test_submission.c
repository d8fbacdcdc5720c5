/*
 * test_submission.c - SMTP submission (issue 19, docs/submission.md) with
 * clients nobody here wrote: swaks (STARTTLS, AUTH PLAIN, an attachment,
 * tags and metadata headers, a repeated Message-ID, a webhook endpoint
 * receiving the delivery events) and Python's smtplib
 * (implicit TLS, AUTH LOGIN, SMTPUTF8) and Postfix relaying through
 * mailferry (relayhost + smtp_sasl_auth_enable, STARTTLS), each message delivered to Postfix's
 * smtp-sink through the delivery role and read back through the API with
 * its source, status and events; then the refusals, each with its code
 * and nothing queued: AUTH without TLS, no AUTH, a wrong key, a revoked
 * key, oversize (SIZE= and real), 8-bit data without BODY=8BITMIME, a bare
 * LF, too many recipients, a line over 998 octets, no From, and the
 * database down (451 4.3.0 at RCPT and at the end of DATA).  The limits
 * of docs/submission.md, each against its own check: a client that talks
 * before the banner, 64 sessions per address, the AUTH backoff after 3
 * failures (per address), 1000 transactions per session, the command
 * deadline; sender_policy (verified, known) on the From: field; and the
 * mailferry_submission_* metrics moving with all of it.
 *
 * Cleanup runs in the .fini hook, so a failed assertion still stops the
 * processes.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api_helpers.h"
#include "harness.h"
#include "smtp_sink.h"
#include "th_smtp.h"
#include "wh_receiver.h"

static struct api_srv g_srv;
static struct th_sink *g_sink;
static char *g_dir;   /* certificate, client scripts */
static int g_port;    /* submission port */
static char *g_cluster; /* a private PostgreSQL (database_down) */
static char *g_pfdir;   /* the Postfix client instance */
static char *g_mkdir;   /* master_key_file (sender_policy) */

static const char *srcdir(void)
{
	const char *s = getenv("MAILFERRY_TEST_SRCDIR");
	return s ? s : ".";
}

static void teardown(void)
{
	if (g_pfdir) {
		th_run(NULL, "%s/tests/integration/postfix_submit.sh stop '%s'", srcdir(), g_pfdir);
		th_rmrf(g_pfdir);
		free(g_pfdir);
		g_pfdir = NULL;
	}
	if (g_srv.p) {
		th_proc_stop(g_srv.p, 10000);
		th_proc_free(g_srv.p);
		g_srv.p = NULL;
	}
	if (g_srv.db && !g_cluster)
		th_db_drop(g_srv.db);
	free(g_srv.db);
	g_srv.db = NULL;
	if (g_cluster) {
		th_cluster_stop(g_cluster);
		th_rmrf(g_cluster);
		free(g_cluster);
		g_cluster = NULL;
	}
	th_sink_stop(g_sink);
	g_sink = NULL;
	if (g_mkdir) {
		th_rmrf(g_mkdir);
		free(g_mkdir);
		g_mkdir = NULL;
	}
	if (g_dir) {
		th_rmrf(g_dir);
		free(g_dir);
		g_dir = NULL;
	}
}

/* A self-signed certificate in g_dir. */
static void make_cert(void)
{
	g_dir = th_tmpdir("submit");
	cr_assert_not_null(g_dir);
	char *out = NULL;
	int rc = th_run(&out, "cd '%s' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
			      "-keyout key.pem -out cert.pem -subj /CN=localhost -days 2", g_dir);
	cr_assert_eq(rc, 0, "%s", out);
	free(out);
}

/* Starts serve with submission on a free port (cert unless plain_only),
 * delivery to an smtp-sink, extra environment entries in extra. */
static void start(int with_sink, int plaintext_auth, const char *const *extra, const char *db)
{
	make_cert();
	static char listen[64], cert[600], key[600], routes[64];
	g_port = th_free_port();
	snprintf(listen, sizeof(listen), "MAILFERRY_SUBMISSION_LISTEN=127.0.0.1:%d", g_port);
	snprintf(cert, sizeof(cert), "MAILFERRY_SUBMISSION_TLS_CERT_FILE=%s/cert.pem", g_dir);
	snprintf(key, sizeof(key), "MAILFERRY_SUBMISSION_TLS_KEY_FILE=%s/key.pem", g_dir);
	const char *env[16];
	int n = 0;
	env[n++] = listen;
	env[n++] = cert;
	env[n++] = key;
	env[n++] = plaintext_auth ? "MAILFERRY_SUBMISSION_ALLOW_PLAINTEXT_AUTH=yes" : "MAILFERRY_LOG_RECIPIENTS=no";
	if (with_sink) {
		g_sink = th_sink_start("");
		cr_assert_not_null(g_sink, "smtp-sink (postfix) is a test dependency");
		snprintf(routes, sizeof(routes), "MAILFERRY_ROUTES=*=127.0.0.1:%d", g_sink->port);
		env[n++] = routes;
		env[n++] = "MAILFERRY_ROLES=api,delivery,webhooks";
	}
	for (int i = 0; extra && extra[i]; i++)
		env[n++] = extra[i];
	env[n] = NULL;
	api_srv_start(&g_srv, db, env);
	/* A connection is enough (with implicit TLS the banner comes after
	 * the handshake). */
	long until = th_now_ms() + 10000;
	int fd;
	while ((fd = th_smtp_connect(g_port)) < 0) {
		cr_assert(th_now_ms() < until, "submission did not listen");
		usleep(20000);
	}
	close(fd);
}

/* The id in "250 2.0.0 Ok: queued as <id>" (the last one in out). */
static char *queued_id(const char *out)
{
	const char *p = NULL, *q = out;
	while ((q = strstr(q, "Ok: queued as ")) != NULL)
		p = q, q++;
	cr_assert_not_null(p, "no 'queued as' in: %s", out);
	p += strlen("Ok: queued as ");
	return strndup(p, strspn(p, "0123456789abcdef-"));
}

/* GET /v1/messages/{id} until its status is want (bounded); the body. */
static json_t *message_wait(const char *id, const char *want)
{
	char path[128], last[64] = "";
	snprintf(path, sizeof(path), "/v1/messages/%s", id);
	long until = th_now_ms() + 30000;
	for (;;) {
		struct th_http r;
		cr_assert_eq(api_call(&g_srv, "GET", path, NULL, NULL, NULL, &r), 0);
		cr_assert_eq(r.status, 200, "%s", r.body);
		json_t *j = t_json(&r);
		th_http_free(&r);
		snprintf(last, sizeof(last), "%s", t_str(j, "status"));
		if (strcmp(last, want) == 0)
			return j;
		json_decref(j);
		cr_assert(th_now_ms() < until, "message %s stayed %s, want %s", id, last, want);
		usleep(50000);
	}
}

static int has_event(const json_t *m, const char *type)
{
	json_t *ev = json_object_get(m, "events");
	size_t i;
	json_t *e;
	json_array_foreach(ev, i, e)
		if (strcmp(json_string_value(json_object_get(e, "type")), type) == 0)
			return 1;
	return 0;
}

/* The sink's message whose text holds needle, or NULL. */
static char *sink_find(const char *needle)
{
	int n = th_sink_count(g_sink);
	for (int i = 0; i < n; i++) {
		char *m = th_sink_message(g_sink, i);
		if (m && strstr(m, needle))
			return m;
		free(m);
	}
	return NULL;
}

/* Stops serve and asserts a clean exit (under ASan: no leak, no error). */
static void stop_clean(void)
{
	int rc = th_proc_stop(g_srv.p, 10000);
	th_proc_free(g_srv.p);
	g_srv.p = NULL;
	cr_assert_eq(rc, 0, "serve did not stop cleanly");
}

static double metric(const char *series);

TestSuite(submission, .fini = teardown);

Test(submission, swaks_starttls_plain_attachment_tags_and_replay)
{
	const char *extra[] = { "MAILFERRY_WEBHOOK_ALLOW_PRIVATE=yes", NULL };
	start(1, 0, extra, NULL);
	/* A webhook endpoint: an SMTP message's events reach it as an API
	 * message's do. */
	struct th_receiver *rx = th_receiver_start("200");
	cr_assert_not_null(rx);
	char admin[160], hook[256];
	cr_assert_eq(api_make_key(g_srv.db, "admin", admin, sizeof(admin)), 0);
	snprintf(hook, sizeof(hook), "{\"url\":\"http://127.0.0.1:%d/hook\",\"events\":[\"message.delivered\"]}",
		 th_receiver_port(rx));
	struct th_http hr;
	cr_assert_eq(api_call(&g_srv, "POST", "/v1/webhooks", admin, NULL, hook, &hr), 0);
	cr_assert_eq(hr.status, 201, "%ld %s", hr.status, hr.body);
	json_t *hj = t_json(&hr);
	th_receiver_set_secrets(rx, t_str(hj, "secret"), NULL);
	json_decref(hj);
	th_http_free(&hr);
	char att[700];
	snprintf(att, sizeof(att), "%s/invoice.pdf", g_dir);
	FILE *f = fopen(att, "w");
	cr_assert_not_null(f);
	fputs("%PDF-1.4 not really a pdf\n", f);
	fclose(f);
	char args[4096], *out = NULL;
	/* b@ is only in the envelope: a Bcc. */
	snprintf(args, sizeof(args),
		 "--tls --auth PLAIN --auth-user 'woo shop' --auth-password '%s' --from orders@shop.test "
		 "--to a@example.test,b@example.test --header 'To: a@example.test' --header 'Subject: Order 42' "
		 "--header 'X-Mailferry-Tag: order' --header 'X-Mailferry-Tag: shop' "
		 "--header 'X-Mailferry-Metadata: order_id=42' --header 'Message-Id: <order-42@shop.test>' "
		 "--attach @%s --body 'Thanks for your order.'",
		 g_srv.key, att);
	int rc = th_swaks(&out, g_port, args);
	cr_assert_eq(rc, 0, "%s", out);
	cr_assert(strstr(out, "=== TLS started") != NULL, "%s", out);
	cr_assert(strstr(out, "250-AUTH PLAIN LOGIN") != NULL, "AUTH offered after STARTTLS: %s", out);
	cr_assert(strstr(out, "235 2.7.0") != NULL, "%s", out);
	char *id = queued_id(out);
	free(out);

	json_t *m = message_wait(id, "delivered");
	cr_assert_str_eq(t_str(m, "source"), "smtp");
	cr_assert_str_eq(t_str(m, "subject"), "Order 42");
	cr_assert_str_eq(t_str(m, "message_id"), "<order-42@shop.test>");
	json_t *tags = json_object_get(m, "tags");
	cr_assert_eq(json_array_size(tags), 2);
	cr_assert_str_eq(json_string_value(json_array_get(tags, 0)), "order");
	cr_assert_str_eq(t_str(json_object_get(m, "metadata"), "order_id"), "42");
	json_t *rc_ = json_object_get(m, "recipients");
	cr_assert_eq(json_array_size(rc_), 2);
	cr_assert(has_event(m, "message.delivered"), "events of an SMTP message as of an API one");
	json_decref(m);
	/* Both recipients' message.delivered, signed, at the endpoint. */
	for (long t0 = th_now_ms(); th_receiver_distinct_ok(rx) < 2 && th_now_ms() - t0 < 20000;)
		usleep(20000);
	cr_assert_eq(th_receiver_distinct_ok(rx), 2, "webhook deliveries: %d", th_receiver_requests(rx));
	cr_assert_eq(th_receiver_bad(rx), 0, "every signature verifies");
	char *wb = th_receiver_last_body(rx);
	cr_assert(wb && strstr(wb, "\"message.delivered\"") && strstr(wb, id), "%s", wb ? wb : "");
	free(wb);
	th_receiver_free(rx);

	/* Delivered to the sink: tags and metadata headers gone, the client's
	 * own Message-ID and MIME kept, a Date added. */
	cr_assert_eq(th_sink_wait(g_sink, 1, 20000), 1, "one transaction for both recipients of one domain");
	char *msg = sink_find("order-42@shop.test");
	cr_assert_not_null(msg);
	cr_assert(strstr(msg, "X-Mailferry-") == NULL, "%s", msg);
	cr_assert(strstr(msg, "invoice.pdf") != NULL, "%s", msg);
	cr_assert(strstr(msg, "multipart/mixed") != NULL, "%s", msg);
	cr_assert(strstr(msg, "\nDate: ") != NULL || strstr(msg, "\nDate:") != NULL, "%s", msg);
	free(msg);

	/* The same Message-ID again with the same key: the first id, nothing queued. */
	rc = th_swaks(&out, g_port, args);
	cr_assert_eq(rc, 0, "%s", out);
	char *again = queued_id(out);
	free(out);
	cr_assert_str_eq(again, id);
	cr_assert_eq(t_count(g_srv.db, "SELECT count(*) FROM messages"), 1);
	free(again);
	free(id);
	stop_clean();
}

Test(submission, smtplib_implicit_tls_login_smtputf8)
{
	const char *extra[] = { "MAILFERRY_SUBMISSION_TLS=tls", NULL };
	start(1, 0, extra, NULL);
	char *out = NULL;
	int rc = th_run(&out, "python3 %s/tests/integration/submission_client.py smtplib 127.0.0.1 %d '%s'", srcdir(),
			g_port, g_srv.key);
	cr_assert_eq(rc, 0, "%s", out);
	char *id = queued_id(out);
	free(out);
	json_t *m = message_wait(id, "delivered");
	cr_assert_str_eq(t_str(m, "source"), "smtp");
	cr_assert(strstr(t_str(m, "subject"), "Bestätigung") != NULL, "%s", t_str(m, "subject"));
	json_decref(m);
	char *msg = sink_find("Bestätigung");
	cr_assert_not_null(msg, "the UTF-8 header arrives as sent");
	cr_assert(strstr(msg, "Message-ID: <") != NULL || strstr(msg, "Message-Id: <") != NULL, "%s", msg);
	free(msg);
	free(id);
	stop_clean();
}

Test(submission, postfix_relays_through_submission)
{
	start(1, 0, NULL, NULL);
	cr_assert_eq(th_run(NULL, "command -v postfix && command -v postmap"), 0,
		     "postfix is a test dependency (deploy/bootstrap.sh)");
	g_pfdir = th_tmpdir("pfsubmit");
	cr_assert_not_null(g_pfdir);
	char *out = NULL;
	int rc = th_run(&out, "%s/tests/integration/postfix_submit.sh start '%s' %d %d '%s'", srcdir(), g_pfdir,
			th_free_port(), g_port, g_srv.key);
	cr_assert_eq(rc, 0, "postfix: %s", out);
	free(out);
	rc = th_run(&out, "%s/tests/integration/postfix_submit.sh send '%s' erp@shop.test user@example.test 'Via Postfix'",
		    srcdir(), g_pfdir);
	cr_assert_eq(rc, 0, "%s", out);
	free(out);
	/* Postfix logs mailferry's 250 with the queue id in it. */
	char *id = NULL;
	long until = th_now_ms() + 30000;
	while (id == NULL) {
		char path[700];
		snprintf(path, sizeof(path), "cat '%s/maillog'", g_pfdir);
		char *log = NULL;
		th_run(&log, "%s", path);
		if (log && strstr(log, "Ok: queued as "))
			id = queued_id(log);
		else
			cr_assert(th_now_ms() < until, "Postfix did not relay through mailferry: %s", log ? log : "");
		free(log);
		if (id == NULL)
			usleep(100000);
	}
	json_t *m = message_wait(id, "delivered");
	cr_assert_str_eq(t_str(m, "source"), "smtp");
	cr_assert_str_eq(t_str(m, "subject"), "Via Postfix");
	json_decref(m);
	char *user = th_sql(g_srv.db, "SELECT request::jsonb->>'user' FROM messages");
	char *req = th_sql(g_srv.db, "SELECT request FROM messages");
	cr_assert(user && strcmp(user, "postfix") == 0, "%s", req);
	free(req);
	free(user);
	free(id);
	stop_clean();
}

/* One SMTP exchange over a plaintext loopback connection; the reply. */
static char *say(int fd, const char *cmd)
{
	if (cmd)
		cr_assert_eq(th_smtp_send(fd, cmd), 0);
	char *r = th_smtp_reply(fd, 20000);
	cr_assert_not_null(r, "no reply to %s", cmd ? cmd : "(connect)");
	return r;
}

static void expect(int fd, const char *cmd, const char *prefix)
{
	char *r = say(fd, cmd);
	cr_assert(strncmp(r, prefix, strlen(prefix)) == 0, "%s -> %s (want %s)", cmd ? cmd : "(connect)", r, prefix);
	free(r);
}

/* "AUTH PLAIN <base64 of \0user\0key>" */
static void auth_plain_cmd(const char *key, char *cmd, size_t n)
{
	char *out = NULL;
	cr_assert_eq(th_run(&out, "printf '\\0shop\\0%s' | base64 -w0", key), 0);
	snprintf(cmd, n, "AUTH PLAIN %.*s\r\n", (int)strcspn(out, "\r\n"), out);
	free(out);
}

static int session(void)
{
	int fd = th_smtp_connect(g_port);
	cr_assert(fd >= 0);
	expect(fd, NULL, "220 ");
	expect(fd, "EHLO client.test\r\n", "250");
	return fd;
}

Test(submission, refusals_with_codes_and_nothing_queued)
{
	const char *extra[] = { "MAILFERRY_MAX_MESSAGE_SIZE=4KiB", NULL };
	start(0, 1, extra, NULL);
	char auth[512];
	auth_plain_cmd(g_srv.key, auth, sizeof(auth));

	int fd = session();
	/* No AUTH: MAIL is refused (RFC 4954 §6). */
	expect(fd, "MAIL FROM:<a@shop.test>\r\n", "530 5.7.0");
	/* A wrong key. */
	char bad[512];
	auth_plain_cmd("mf_aaaaaaaaaaaa_wrongwrongwrong", bad, sizeof(bad));
	expect(fd, bad, "535 5.7.8");
	expect(fd, auth, "235 2.7.0");
	/* SIZE= over the limit (RFC 1870 §6.2). */
	expect(fd, "MAIL FROM:<a@shop.test> SIZE=100000\r\n", "552 5.3.4");
	/* An invalid recipient, then too many. */
	expect(fd, "MAIL FROM:<a@shop.test>\r\n", "250");
	expect(fd, "RCPT TO:<not-an-address@x>\r\n", "501 5.1.3");
	for (int i = 0; i < 50; i++) {
		char rc[128];
		snprintf(rc, sizeof(rc), "RCPT TO:<r%d@example.test>\r\n", i);
		expect(fd, rc, "250");
	}
	expect(fd, "RCPT TO:<r50@example.test>\r\n", "452 4.5.3");
	expect(fd, "RSET\r\n", "250");

	/* Message checks at the end of DATA. */
	struct {
		const char *mail, *data, *want;
	} cases[] = {
		{ "MAIL FROM:<a@shop.test>\r\n", "From: a@shop.test\r\nSubject: x\r\n\r\nbare\nLF\r\n.\r\n", "554 5.6.0" },
		{ "MAIL FROM:<a@shop.test>\r\n", "From: a@shop.test\r\nSubject: caf\xc3\xa9\r\n\r\nx\r\n.\r\n", "554 5.6.1" },
		{ "MAIL FROM:<a@shop.test>\r\n", "Subject: no from\r\n\r\nx\r\n.\r\n", "554 5.6.0" },
		{ "MAIL FROM:<a@shop.test>\r\n", NULL, "554 5.6.0" },  /* a 1200-octet line */
		{ "MAIL FROM:<a@shop.test>\r\n", NULL, "552 5.3.4" },  /* over 4 KiB */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		expect(fd, cases[i].mail, "250");
		expect(fd, "RCPT TO:<b@example.test>\r\n", "250");
		expect(fd, "DATA\r\n", "354");
		char big[8192];
		const char *data = cases[i].data;
		if (data == NULL) {
			size_t n = (size_t)snprintf(big, sizeof(big), "From: a@shop.test\r\n\r\n");
			size_t len = i == 3 ? 1200 : 6000;
			for (size_t k = 0; k < len; k++)
				big[n++] = i == 3 ? 'x' : (k % 70 == 69 ? '\n' : 'y');
			if (i == 4)
				for (size_t k = 22; k < n; k++)
					if (big[k] == '\n')
						big[k - 1] = '\r';
			snprintf(big + n, sizeof(big) - n, "\r\n.\r\n");
			data = big;
		}
		expect(fd, data, cases[i].want);
	}
	/* 8-bit data is fine with BODY=8BITMIME. */
	expect(fd, "MAIL FROM:<a@shop.test> BODY=8BITMIME\r\n", "250");
	expect(fd, "RCPT TO:<b@example.test>\r\n", "250");
	expect(fd, "DATA\r\n", "354");
	expect(fd, "From: a@shop.test\r\nSubject: caf\xc3\xa9\r\n\r\nx\r\n.\r\n", "250 2.0.0 Ok: queued as ");
	expect(fd, "QUIT\r\n", "221");
	close(fd);
	cr_assert_eq(t_count(g_srv.db, "SELECT count(*) FROM messages"), 1, "only the good message is queued");
	cr_assert_eq(metric("mailferry_submission_messages_total{result=\"invalid\"}"), 4);
	cr_assert_eq(metric("mailferry_submission_messages_total{result=\"too_big\"}"), 1);
	cr_assert_eq(metric("mailferry_submission_messages_total{result=\"accepted\"}"), 1);
	cr_assert_eq(metric("mailferry_messages_accepted_total"), 1, "SMTP messages count as accepted too");

	/* A suppressed address is refused at RCPT. */
	free(th_sql(g_srv.db, "INSERT INTO suppressions (email, reason) VALUES ('gone@example.test', 'bounce')"));
	fd = session();
	expect(fd, auth, "235");
	expect(fd, "MAIL FROM:<a@shop.test>\r\n", "250");
	expect(fd, "RCPT TO:<gone@example.test>\r\n", "550 5.7.1");
	expect(fd, "QUIT\r\n", "221");
	close(fd);

	/* A revoked key stops working from the next session on. */
	char *idq = th_sql(g_srv.db, "SELECT max(id) FROM api_keys");
	char *out = NULL;
	cr_assert_eq(th_run(&out, "MAILFERRY_DATABASE_URL='%s' %s keys revoke %s", g_srv.db, th_bin(), idq), 0, "%s", out);
	free(out);
	free(idq);
	fd = session();
	expect(fd, auth, "535 5.7.8");
	close(fd);
	cr_assert_eq(t_count(g_srv.db, "SELECT count(*) FROM messages"), 1);
	stop_clean();
}

Test(submission, auth_needs_tls_and_certificate_reloads_on_sighup)
{
	start(0, 0, NULL, NULL);
	int fd = th_smtp_connect(g_port);
	cr_assert(fd >= 0);
	expect(fd, NULL, "220 ");
	char *ehlo = say(fd, "EHLO client.test\r\n");
	cr_assert(strstr(ehlo, "STARTTLS") != NULL, "%s", ehlo);
	cr_assert(strstr(ehlo, "AUTH") == NULL, "no AUTH before TLS: %s", ehlo);
	cr_assert(strstr(ehlo, "SMTPUTF8") != NULL && strstr(ehlo, "8BITMIME") != NULL &&
		  strstr(ehlo, "ENHANCEDSTATUSCODES") != NULL && strstr(ehlo, "PIPELINING") != NULL, "%s", ehlo);
	free(ehlo);
	char auth[512];
	auth_plain_cmd(g_srv.key, auth, sizeof(auth));
	expect(fd, auth, "538 5.7.11");
	expect(fd, "MAIL FROM:<a@shop.test>\r\n", "530 5.7.0");
	/* Commands pipelined behind STARTTLS: the client is dropped (RFC 3207 §4.2). */
	cr_assert_eq(th_smtp_send(fd, "STARTTLS\r\nMAIL FROM:<evil@x.test>\r\n"), 0);
	char *r = th_smtp_reply(fd, 20000);
	cr_assert(r && strncmp(r, "220", 3) == 0, "%s", r ? r : "(none)");
	free(r);
	cr_assert(th_smtp_closed(fd, 20000), "a client that pipelines after STARTTLS is dropped");
	close(fd);
	cr_assert_eq(t_count(g_srv.db, "SELECT count(*) FROM messages"), 0);

	/* A renewed certificate is taken on SIGHUP, without a restart. */
	char *out = NULL;
	int rc = th_run(&out, "cd '%s' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
			      "-keyout key.pem -out cert.pem -subj /CN=renewed.test -days 2", g_dir);
	cr_assert_eq(rc, 0, "%s", out);
	free(out);
	cr_assert_eq(kill(g_srv.p->pid, SIGHUP), 0);
	long until = th_now_ms() + 20000;
	for (;;) {
		th_run(&out, "openssl s_client -starttls smtp -connect 127.0.0.1:%d </dev/null 2>/dev/null"
			     " | openssl x509 -noout -subject", g_port);
		int renewed = out && strstr(out, "renewed.test") != NULL;
		cr_assert(renewed || th_now_ms() < until, "still the old certificate: %s", out ? out : "");
		free(out);
		if (renewed)
			break;
		usleep(100000);
	}
	stop_clean();
}

Test(submission, database_down_451_and_nothing_half_written)
{
	g_cluster = th_tmpdir("submitdown");
	cr_assert_not_null(g_cluster);
	char *url = th_cluster_start(g_cluster);
	cr_assert_not_null(url);
	char *out = NULL;
	cr_assert_eq(th_run(&out, "MAILFERRY_DATABASE_URL='%s' %s migrate", url, th_bin()), 0, "%s", out);
	free(out);
	start(0, 1, NULL, url);
	free(url);
	char auth[512];
	auth_plain_cmd(g_srv.key, auth, sizeof(auth));
	int fd = session();
	expect(fd, auth, "235");
	expect(fd, "MAIL FROM:<a@shop.test>\r\n", "250");
	expect(fd, "RCPT TO:<b@example.test>\r\n", "250");
	cr_assert_eq(th_cluster_stop(g_cluster), 0);
	/* The commit fails: 451, and the client keeps the message. */
	expect(fd, "DATA\r\n", "354");
	expect(fd, "From: a@shop.test\r\nSubject: x\r\n\r\nx\r\n.\r\n", "451 4.3.0");
	/* The suppression lookup fails: 451 at RCPT. */
	expect(fd, "MAIL FROM:<a@shop.test>\r\n", "250");
	expect(fd, "RCPT TO:<c@example.test>\r\n", "451 4.3.0");
	expect(fd, "QUIT\r\n", "221");
	close(fd);
	char *again = th_cluster_start(g_cluster);
	cr_assert_not_null(again);
	free(again);
	cr_assert_eq(t_count(g_srv.db, "SELECT count(*) FROM messages"), 0, "nothing half-written");
	cr_assert_eq(t_count(g_srv.db, "SELECT count(*) FROM recipients"), 0);
	stop_clean();
}

/* ---- limits, sender_policy and metrics ---- */

/* A connection to 127.0.0.1:port from src (loopback is a /8: 127.0.0.2
 * is another client address); the fd. */
static int connect_from(const char *src, int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(fd >= 0);
	struct sockaddr_in sa = { .sin_family = AF_INET };
	inet_pton(AF_INET, src, &sa.sin_addr);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "bind %s: %s", src, strerror(errno));
	sa.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect from %s: %s", src, strerror(errno));
	return fd;
}

/* The value of one series in /metrics ("name{labels}"), -1 when absent. */
static double metric(const char *series)
{
	char url[160], needle[256];
	snprintf(url, sizeof(url), "%s/metrics", g_srv.base);
	struct th_http r;
	cr_assert_eq(th_http("GET", url, NULL, NULL, &r), 0);
	cr_assert_eq(r.status, 200);
	snprintf(needle, sizeof(needle), "\n%s ", series);
	const char *p = strstr(r.body, needle);
	double v = p ? strtod(p + strlen(needle), NULL) : -1;
	th_http_free(&r);
	return v;
}

/* Waits (bounded) until the series reads want. */
static void metric_wait(const char *series, double want)
{
	long until = th_now_ms() + 20000;
	double v;
	while ((v = metric(series)) != want) {
		cr_assert(th_now_ms() < until, "%s is %g, want %g", series, v, want);
		usleep(20000);
	}
}

Test(submission, limits_early_talker_sessions_per_address_auth_backoff_and_their_metrics)
{
	/* The greet wait makes the early-talker check certain: the client
	 * below talks at once, well within 1 s of connecting. */
	const char *extra[] = { "MAILFERRY_SUBMISSION_GREET_WAIT=1s", NULL };
	start(0, 1, extra, NULL);
	char auth[512], bad[512];
	auth_plain_cmd(g_srv.key, auth, sizeof(auth));
	auth_plain_cmd("mf_aaaaaaaaaaaa_wrongwrongwrong", bad, sizeof(bad));

	/* A client that talks before the banner is dropped (RFC 5321 §4.3.1). */
	int fd = th_smtp_connect(g_port);
	cr_assert(fd >= 0);
	cr_assert_eq(th_smtp_send(fd, "EHLO early.test\r\n"), 0);
	expect(fd, NULL, "554 5.5.0");
	cr_assert(th_smtp_closed(fd, 20000), "an early talker is dropped");
	close(fd);

	/* 64 sessions from one address; the 65th gets 421 4.7.0, another
	 * address still gets in. */
	enum { PER_ADDR = 64 };
	int fds[PER_ADDR];
	for (int i = 0; i < PER_ADDR; i++)
		fds[i] = connect_from("127.0.0.2", g_port);
	for (int i = 0; i < PER_ADDR; i++)
		expect(fds[i], NULL, "220 ");
	int over = connect_from("127.0.0.2", g_port);
	expect(over, NULL, "421 4.7.0");
	cr_assert(th_smtp_closed(over, 20000));
	close(over);
	int other = connect_from("127.0.0.3", g_port);
	expect(other, NULL, "220 ");
	metric_wait("mailferry_submission_sessions_active", PER_ADDR + 1);

	/* Three failed AUTHs in a row from 127.0.0.1: the next AUTH, even
	 * with the right key, gets 421 4.7.0 and the session ends.  Pipelined,
	 * so that the fourth comes within the first backoff (1 s). */
	fd = session();
	char four[2048];
	snprintf(four, sizeof(four), "%s%s%s%s", bad, bad, bad, auth);
	cr_assert_eq(th_smtp_send(fd, four), 0);
	for (int i = 0; i < 3; i++)
		expect(fd, NULL, "535 5.7.8");
	expect(fd, NULL, "421 4.7.0");
	cr_assert(th_smtp_closed(fd, 20000), "the session ends after the 421");
	close(fd);
	/* 127.0.0.3 is not affected. */
	expect(other, "EHLO other.test\r\n", "250");
	expect(other, auth, "235 2.7.0");
	expect(other, "QUIT\r\n", "221");
	close(other);
	for (int i = 0; i < PER_ADDR; i++)
		close(fds[i]);

	metric_wait("mailferry_submission_sessions_active", 0);
	cr_assert_eq(metric("mailferry_submission_connections_refused_total{reason=\"pregreet\"}"), 1);
	cr_assert_eq(metric("mailferry_submission_connections_refused_total{reason=\"max_sessions_per_addr\"}"), 1);
	cr_assert_eq(metric("mailferry_submission_connections_refused_total{reason=\"max_sessions\"}"), 0);
	cr_assert_eq(metric("mailferry_submission_auth_total{result=\"failed\"}"), 3);
	cr_assert_eq(metric("mailferry_submission_auth_total{result=\"throttled\"}"), 1);
	cr_assert_eq(metric("mailferry_submission_auth_total{result=\"ok\"}"), 1);
	/* start()'s probe, the early talker, 64 + 1, the AUTH session. */
	cr_assert_geq(metric("mailferry_submission_sessions_total"), 1 + PER_ADDR + 1 + 1);
	stop_clean();
}

Test(submission, messages_per_session_and_command_deadline)
{
	const char *extra[] = { "MAILFERRY_SUBMISSION_COMMAND_TIMEOUT=2s", NULL };
	start(0, 1, extra, NULL);
	char auth[512];
	auth_plain_cmd(g_srv.key, auth, sizeof(auth));
	int fd = session();
	expect(fd, auth, "235");
	/* 1000 transactions (MAIL commands), pipelined as MAIL/RSET in groups
	 * of 100; the 1001st MAIL gets 421 4.7.0 and the session ends. */
	enum { GROUP = 100, LIMIT = 1000 };
	static const char pair[] = "MAIL FROM:<a@shop.test>\r\nRSET\r\n";
	char group[GROUP * sizeof(pair)];
	size_t n = 0;
	for (int i = 0; i < GROUP; i++)
		n += (size_t)snprintf(group + n, sizeof(group) - n, "%s", pair);
	for (int g = 0; g < LIMIT / GROUP; g++) {
		cr_assert_eq(th_smtp_send(fd, group), 0);
		char *r = th_smtp_replies(fd, 2 * GROUP, 20000);
		cr_assert_not_null(r, "group %d: replies missing", g);
		for (const char *l = r; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l))
			cr_assert(strncmp(l, "250", 3) == 0, "group %d: %.60s", g, l);
		free(r);
	}
	expect(fd, "MAIL FROM:<a@shop.test>\r\n", "421 4.7.0");
	cr_assert(th_smtp_closed(fd, 20000), "the session ends after the 421");
	close(fd);

	/* submission_command_timeout: a client that says nothing gets 421
	 * 4.4.2 and is closed. */
	fd = session();
	expect(fd, NULL, "421 4.4.2");
	cr_assert(th_smtp_closed(fd, 20000));
	close(fd);
	cr_assert_eq(t_count(g_srv.db, "SELECT count(*) FROM messages"), 0);
	stop_clean();
}

/* One transaction whose From: field is from_hdr; the reply to the dot
 * must start with want. */
static void send_from(int fd, const char *mail_from, const char *from_hdr, const char *want)
{
	char cmd[512], data[1024];
	snprintf(cmd, sizeof(cmd), "MAIL FROM:<%s>\r\n", mail_from);
	expect(fd, cmd, "250");
	expect(fd, "RCPT TO:<b@example.test>\r\n", "250");
	expect(fd, "DATA\r\n", "354");
	snprintf(data, sizeof(data), "From: %s\r\nTo: b@example.test\r\nSubject: policy\r\n\r\nx\r\n.\r\n", from_hdr);
	expect(fd, data, want);
}

/* POST /v1/domains with an admin key: 201. */
static void add_domain(const char *admin, const char *domain)
{
	char body[256];
	snprintf(body, sizeof(body), "{\"domain\":\"%s\"}", domain);
	struct th_http r;
	cr_assert_eq(api_call(&g_srv, "POST", "/v1/domains", admin, NULL, body, &r), 0);
	cr_assert_eq(r.status, 201, "%s: %ld %s", domain, r.status, r.body);
	th_http_free(&r);
}

Test(submission, sender_policy_applies_to_the_from_field)
{
	g_mkdir = th_tmpdir("submitmk");
	cr_assert_not_null(g_mkdir);
	char mk[600];
	snprintf(mk, sizeof(mk), "MAILFERRY_MASTER_KEY_FILE=%s/master.key", g_mkdir);
	cr_assert_eq(th_run(NULL, "head -c 32 /dev/urandom > '%s/master.key' && chmod 600 '%s/master.key'", g_mkdir,
			    g_mkdir), 0);
	const char *extra[] = { "MAILFERRY_SENDER_POLICY=verified", mk, NULL };
	start(0, 1, extra, NULL);
	char admin[160], auth[512];
	cr_assert_eq(api_make_key(g_srv.db, "send,read,admin", admin, sizeof(admin)), 0);
	/* shop.test verified (in SQL: verify needs DNS), pending.test pending;
	 * the second POST makes the domain cache load both. */
	add_domain(admin, "shop.test");
	free(th_sql(g_srv.db, "UPDATE domains SET status = 'verified' WHERE domain = 'shop.test'"));
	add_domain(admin, "pending.test");
	auth_plain_cmd(g_srv.key, auth, sizeof(auth));
	int fd = session();
	expect(fd, auth, "235");
	/* The From: field decides, not MAIL FROM; a subdomain is its parent's. */
	send_from(fd, "www-data@host.elsewhere.test", "Shop <orders@shop.test>", "250 2.0.0 Ok: queued as ");
	send_from(fd, "a@shop.test", "news@News.Shop.Test", "250 2.0.0 Ok: queued as ");
	send_from(fd, "a@shop.test", "orders@pending.test", "550 5.7.1 domain_not_verified: pending.test ");
	send_from(fd, "a@shop.test", "x@unknown.test", "550 5.7.1 domain_not_verified: unknown.test ");
	/* Every address of From: counts. */
	send_from(fd, "a@shop.test", "a@shop.test, \"B\" <b@unknown.test>", "550 5.7.1 domain_not_verified");
	expect(fd, "QUIT\r\n", "221");
	close(fd);
	cr_assert_eq(t_count(g_srv.db, "SELECT count(*) FROM messages"), 2, "nothing refused is queued");
	cr_assert_eq(metric("mailferry_submission_messages_total{result=\"accepted\"}"), 2);
	cr_assert_eq(metric("mailferry_submission_messages_total{result=\"sender_policy\"}"), 3);
	stop_clean();

	/* sender_policy = known: registered is enough. */
	char *db = g_srv.db;
	g_srv.db = NULL;
	th_rmrf(g_dir);
	free(g_dir);
	g_dir = NULL;
	const char *known[] = { "MAILFERRY_SENDER_POLICY=known", mk, NULL };
	start(0, 1, known, db);
	free(db);
	auth_plain_cmd(g_srv.key, auth, sizeof(auth));
	fd = session();
	expect(fd, auth, "235");
	send_from(fd, "a@pending.test", "orders@pending.test", "250 2.0.0 Ok: queued as ");
	send_from(fd, "a@shop.test", "x@unknown.test", "550 5.7.1 domain_not_registered: unknown.test ");
	expect(fd, "QUIT\r\n", "221");
	close(fd);
	cr_assert_eq(t_count(g_srv.db, "SELECT count(*) FROM messages"), 3);
	stop_clean();
}
