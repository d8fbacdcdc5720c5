/*
 * Tests for smtpd/smtp_server.c (an in-process server) with real clients:
 * swaks and Postfix's smtp-source, plus a raw socket client where the test
 * must control the bytes (pipelining in one write, long lines, idle and
 * surplus sessions, shutdown).  And the command parser on its own.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "smtpd/smtp_server.h"
#include "smtpd/smtp_server_cmd.h"
#include "th_smtp.h"
#include "util/xmalloc.h"

#define REC_MAX 64

/* What the callbacks saw. */
struct rec {
	pthread_mutex_t lock;
	int n;
	char *from[REC_MAX];
	char *rcpt0[REC_MAX];
	size_t nrcpts[REC_MAX];
	char *data[REC_MAX];
	int msg_code;       /* reply on_message gives (250 if 0) */
	int msg_delay_ms;
};

static struct rec rec;
static struct smtp_server *srv;

static void on_rcpt(void *arg, const struct smtp_server_envelope *env, const char *rcpt,
		    struct smtp_server_reply *reply)
{
	(void)arg;
	(void)env;
	if (strncmp(rcpt, "deny@", 5) == 0)
		smtp_server_reply_set(reply, 550, "5.1.1 <%s>: no such user", rcpt);
}

static void on_message(void *arg, const struct smtp_server_envelope *env, const char *data, size_t len,
		       struct smtp_server_reply *reply)
{
	struct rec *r = arg;
	if (r->msg_delay_ms)
		usleep((useconds_t)r->msg_delay_ms * 1000);
	pthread_mutex_lock(&r->lock);
	if (r->msg_code && r->msg_code != 250) {
		smtp_server_reply_set(reply, r->msg_code, "4.3.0 try later");
	} else if (r->n < REC_MAX) {
		r->from[r->n] = xstrdup(env->mail_from);
		r->rcpt0[r->n] = xstrdup(env->rcpts[0]);
		r->nrcpts[r->n] = env->nrcpts;
		r->data[r->n] = xstrndup(data, len);
		r->n++;
	}
	pthread_mutex_unlock(&r->lock);
}

static int rec_count(void)
{
	pthread_mutex_lock(&rec.lock);
	int n = rec.n;
	pthread_mutex_unlock(&rec.lock);
	return n;
}

static void start(size_t max_size, int max_sessions, int idle_ms)
{
	memset(&rec, 0, sizeof(rec));
	pthread_mutex_init(&rec.lock, NULL);
	struct smtp_server_params p = {
		.listen = "127.0.0.1:0",
		.hostname = "mx.test",
		.max_message_size = max_size,
		.max_sessions = max_sessions,
		.idle_timeout_ms = idle_ms,
		.arg = &rec,
		.on_rcpt = on_rcpt,
		.on_message = on_message,
	};
	char err[256];
	srv = smtp_server_new(&p, err, sizeof(err));
	cr_assert_not_null(srv, "%s", err);
	cr_assert_gt(smtp_server_port(srv), 0);
}

static void stop(void)
{
	smtp_server_free(srv);
	srv = NULL;
	for (int i = 0; i < rec.n; i++) {
		free(rec.from[i]);
		free(rec.rcpt0[i]);
		free(rec.data[i]);
	}
	pthread_mutex_destroy(&rec.lock);
}

/* Connects and reads the banner. */
static int session(void)
{
	int fd = th_smtp_connect(smtp_server_port(srv));
	cr_assert_geq(fd, 0);
	char *b = th_smtp_reply(fd, 5000);
	cr_assert_not_null(b);
	cr_assert(strncmp(b, "220 mx.test", 11) == 0, "%s", b);
	free(b);
	return fd;
}

/* Sends a command and asserts the reply starts with want. */
static void expect(int fd, const char *cmd, const char *want)
{
	if (cmd)
		cr_assert_eq(th_smtp_send(fd, cmd), 0);
	char *r = th_smtp_reply(fd, 5000);
	cr_assert_not_null(r, "no reply to %s", cmd ? cmd : "(nothing)");
	cr_assert(strncmp(r, want, strlen(want)) == 0, "%s -> %s (want %s)", cmd ? cmd : "", r, want);
	free(r);
}

Test(smtp_server, swaks_delivers_message)
{
	start(1 << 20, 4, 10000);
	char *out = NULL;
	int rc = th_swaks(&out, smtp_server_port(srv),
			  "--from alice@example.org --to bob@example.net --header 'Subject: hi' --body 'line one\n.leading dot\nend'");
	cr_assert_eq(rc, 0, "%s", out);
	cr_assert(strstr(out, "<-  250-PIPELINING") && strstr(out, "<-  250-SIZE 1048576") &&
		  strstr(out, "<-  250-8BITMIME") && strstr(out, "<-  250 ENHANCEDSTATUSCODES"), "%s", out);
	free(out);
	cr_assert_eq(rec_count(), 1);
	cr_assert_str_eq(rec.from[0], "alice@example.org");
	cr_assert_str_eq(rec.rcpt0[0], "bob@example.net");
	/* Our trace line comes first (RFC 5321 §4.4), the dot is unstuffed. */
	cr_assert(strncmp(rec.data[0], "Received: from test.local ([127.0.0.1])", 39) == 0, "%s", rec.data[0]);
	cr_assert(strstr(rec.data[0], "for <bob@example.net>") != NULL, "%s", rec.data[0]);
	cr_assert(strstr(rec.data[0], "\r\n.leading dot\r\n") != NULL, "%s", rec.data[0]);
	cr_assert(strstr(rec.data[0], "Subject: hi\r\n") != NULL);
	cr_assert(strstr(rec.data[0], "\r\n.\r\n") == NULL, "terminator must not be in the data");
	stop();
}

Test(smtp_server, null_sender_accepted)
{
	start(1 << 20, 4, 10000);
	char *out = NULL;
	int rc = th_swaks(&out, smtp_server_port(srv), "--from '<>' --to bob@example.net");
	cr_assert_eq(rc, 0, "%s", out);
	cr_assert(strstr(out, "MAIL FROM:<>") != NULL, "%s", out);
	free(out);
	cr_assert_eq(rec_count(), 1);
	cr_assert_str_eq(rec.from[0], "");
	stop();
}

Test(smtp_server, rcpt_callback_decides)
{
	start(1 << 20, 4, 10000);
	char *out = NULL;
	int rc = th_swaks(&out, smtp_server_port(srv), "--from a@b.example --to deny@example.net");
	cr_assert_neq(rc, 0);
	cr_assert(strstr(out, "<** 550 5.1.1 <deny@example.net>: no such user") != NULL, "%s", out);
	free(out);
	cr_assert_eq(rec_count(), 0);
	/* One refused, one accepted: the message goes to the accepted one only. */
	int fd = session();
	expect(fd, "EHLO c.test\r\n", "250-mx.test");
	expect(fd, "MAIL FROM:<a@b.example>\r\n", "250 2.1.0");
	expect(fd, "RCPT TO:<deny@example.net>\r\n", "550 5.1.1");
	expect(fd, "DATA\r\n", "554 5.5.1");
	expect(fd, "RCPT TO:<ok@example.net>\r\n", "250 2.1.5");
	expect(fd, "DATA\r\n", "354");
	expect(fd, "Subject: x\r\n\r\nbody\r\n.\r\n", "250 2.0.0");
	expect(fd, "QUIT\r\n", "221");
	close(fd);
	cr_assert_eq(rec_count(), 1);
	cr_assert_eq(rec.nrcpts[0], 1);
	cr_assert_str_eq(rec.rcpt0[0], "ok@example.net");
	stop();
}

Test(smtp_server, oversize_message_552_and_session_continues)
{
	start(4096, 4, 10000);
	char *dir = th_tmpdir("smtpbig");
	cr_assert_not_null(dir);
	cr_assert_eq(th_run(NULL, "for i in $(seq 1 200); do echo 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'; done > '%s/body'", dir), 0);
	char *out = NULL, args[512];
	snprintf(args, sizeof(args), "--from a@b.example --to c@d.example --body '%s/body'", dir);
	int rc = th_swaks(&out, smtp_server_port(srv), args);
	cr_assert_neq(rc, 0);
	cr_assert(strstr(out, "<** 552 5.3.4") != NULL, "%s", out);
	free(out);
	cr_assert_eq(rec_count(), 0);
	/* The session is still usable after a 552. */
	int fd = session();
	expect(fd, "EHLO c.test\r\n", "250-mx.test");
	expect(fd, "MAIL FROM:<a@b.example>\r\n", "250");
	expect(fd, "RCPT TO:<c@d.example>\r\n", "250");
	expect(fd, "DATA\r\n", "354");
	char big[6000];
	memset(big, 'y', sizeof(big));
	memcpy(big + sizeof(big) - 8, "\r\n.\r\n", 6);
	expect(fd, big, "552 5.3.4");
	expect(fd, "NOOP\r\n", "250");
	expect(fd, "MAIL FROM:<a@b.example>\r\n", "250");
	expect(fd, "RCPT TO:<c@d.example>\r\n", "250");
	expect(fd, "DATA\r\n", "354");
	expect(fd, "small\r\n.\r\n", "250");
	close(fd);
	cr_assert_eq(rec_count(), 1);
	th_rmrf(dir);
	free(dir);
	stop();
}

Test(smtp_server, size_parameter_checked)
{
	start(4096, 4, 10000);
	int fd = session();
	cr_assert_eq(th_smtp_send(fd, "EHLO c.test\r\n"), 0);
	char *r = th_smtp_reply(fd, 5000);
	cr_assert(r && strstr(r, "250-SIZE 4096\r\n"), "%s", r);
	free(r);
	/* RFC 1870 §6.2 */
	expect(fd, "MAIL FROM:<> SIZE=4097\r\n", "552 5.3.4");
	expect(fd, "MAIL FROM:<> SIZE=100 BODY=8BITMIME\r\n", "250 2.1.0");
	expect(fd, "RSET\r\n", "250");
	expect(fd, "MAIL FROM:<a@b.example> FROB=1\r\n", "555 5.5.4");
	expect(fd, "MAIL FROM:<a@b.example> SIZE=abc\r\n", "555 5.5.4");
	expect(fd, "QUIT\r\n", "221");
	close(fd);
	stop();
}

Test(smtp_server, pipelined_commands_in_one_write)
{
	start(1 << 20, 4, 10000);
	int fd = session();
	cr_assert_eq(th_smtp_send(fd, "EHLO c.test\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n"
				      "RCPT TO:<deny@d.example>\r\nRCPT TO:<e@d.example>\r\nDATA\r\n"), 0);
	char *r = th_smtp_replies(fd, 6, 5000);
	cr_assert_not_null(r);
	const char *want[] = { "250-mx.test", "250 2.1.0", "250 2.1.5", "550 5.1.1", "250 2.1.5", "354 " };
	const char *p = r;
	for (size_t i = 0; i < 6; i++) {
		p = strstr(p, want[i]);
		cr_assert_not_null(p, "missing %s in %s", want[i], r);
	}
	free(r);
	/* Message, terminator and QUIT in one write too. */
	cr_assert_eq(th_smtp_send(fd, "Subject: p\r\n\r\n..two dots\r\n.\r\nQUIT\r\n"), 0);
	r = th_smtp_replies(fd, 2, 5000);
	cr_assert(r && strncmp(r, "250 ", 4) == 0 && strstr(r, "221 "), "%s", r);
	free(r);
	cr_assert(th_smtp_closed(fd, 5000));
	close(fd);
	cr_assert_eq(rec_count(), 1);
	cr_assert_eq(rec.nrcpts[0], 2);
	cr_assert(strstr(rec.data[0], "\r\n.two dots\r\n") != NULL, "%s", rec.data[0]);
	stop();
}

Test(smtp_server, swaks_pipeline_and_smtp_source)
{
	start(1 << 20, 8, 10000);
	char *out = NULL;
	int rc = th_swaks(&out, smtp_server_port(srv), "--pipeline --from a@b.example --to c@d.example");
	cr_assert_eq(rc, 0, "%s", out);
	free(out);
	cr_assert_eq(rec_count(), 1);
	/* Postfix's smtp-source: 4 parallel sessions, 20 messages. */
	rc = th_run(&out, "/usr/sbin/smtp-source -s 4 -m 20 -l 2000 -f src@b.example -t dst@d.example 127.0.0.1:%d",
		    smtp_server_port(srv));
	cr_assert_eq(rc, 0, "%s", out);
	free(out);
	cr_assert_eq(rec_count(), 21);
	cr_assert_str_eq(rec.from[20], "src@b.example");
	stop();
}

Test(smtp_server, max_sessions_refused_with_421)
{
	start(1 << 20, 2, 10000);
	int a = session(), b = session();
	int c = th_smtp_connect(smtp_server_port(srv));
	cr_assert_geq(c, 0);
	char *r = th_smtp_reply(c, 5000);
	cr_assert(r && strncmp(r, "421 4.3.2", 9) == 0, "%s", r);
	free(r);
	cr_assert(th_smtp_closed(c, 5000));
	close(c);
	cr_assert_eq(smtp_server_sessions(srv), 2);
	expect(a, "QUIT\r\n", "221");
	close(a);
	/* Once a slot is free, new sessions are served again. */
	long t0 = th_now_ms();
	while (smtp_server_sessions(srv) > 1 && th_now_ms() - t0 < 30000)
		usleep(10000);
	int d = session();
	expect(d, "NOOP\r\n", "250");
	close(b);
	close(d);
	stop();
}

Test(smtp_server, idle_timeout_421)
{
	start(1 << 20, 4, 300);
	int fd = session();
	expect(fd, "EHLO c.test\r\n", "250-");
	/* No command: the server says 421 4.4.2 and closes. */
	expect(fd, NULL, "421 4.4.2");
	cr_assert(th_smtp_closed(fd, 5000));
	close(fd);
	/* Also in the middle of DATA. */
	fd = session();
	expect(fd, "EHLO c.test\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n", "250-");
	expect(fd, NULL, "250");
	expect(fd, NULL, "250");
	expect(fd, NULL, "354");
	cr_assert_eq(th_smtp_send(fd, "partial line without end"), 0);
	expect(fd, NULL, "421 4.4.2");
	close(fd);
	cr_assert_eq(rec_count(), 0);
	stop();
}

/* A client that is never idle still meets the session deadline: a
 * command every 100 ms, far inside the idle timeout, ends in 421 4.4.2
 * once session_timeout_ms has passed. */
Test(smtp_server, session_deadline_421_however_busy)
{
	memset(&rec, 0, sizeof(rec));
	pthread_mutex_init(&rec.lock, NULL);
	struct smtp_server_params p = {
		.listen = "127.0.0.1:0",
		.hostname = "mx.test",
		.idle_timeout_ms = 10000,
		.session_timeout_ms = 1000,
		.arg = &rec,
	};
	char err[256];
	srv = smtp_server_new(&p, err, sizeof(err));
	cr_assert_not_null(srv, "%s", err);
	int fd = session();
	int ended = 0;
	for (int i = 0; i < 100 && !ended; i++) {
		if (th_smtp_send(fd, "NOOP\r\n") != 0)
			break;
		char *r = th_smtp_reply(fd, 5000);
		cr_assert_not_null(r, "no reply to NOOP %d", i);
		if (strncmp(r, "421 4.4.2", 9) == 0) {
			cr_assert(strstr(r, "session time limit") != NULL, "%s", r);
			ended = 1;
		} else {
			cr_assert(strncmp(r, "250", 3) == 0, "%s", r);
		}
		free(r);
		usleep(100 * 1000);
	}
	cr_assert(ended, "the session outlived its deadline (100 commands, 10 s)");
	cr_assert(th_smtp_closed(fd, 5000));
	close(fd);
	stop();
}

/* The per-address cap: the third session from 127.0.0.1 gets 421 4.7.0. */
Test(smtp_server, per_address_limit_421)
{
	memset(&rec, 0, sizeof(rec));
	pthread_mutex_init(&rec.lock, NULL);
	struct smtp_server_params p = {
		.listen = "127.0.0.1:0",
		.hostname = "mx.test",
		.max_sessions = 10,
		.max_sessions_per_addr = 2,
		.arg = &rec,
	};
	char err[256];
	srv = smtp_server_new(&p, err, sizeof(err));
	cr_assert_not_null(srv, "%s", err);
	int a = session(), b = session();
	int c = th_smtp_connect(smtp_server_port(srv));
	cr_assert_geq(c, 0);
	char *r = th_smtp_reply(c, 5000);
	cr_assert(r && strncmp(r, "421 4.7.0", 9) == 0, "%s", r ? r : "(nothing)");
	cr_assert(strstr(r, "too many connections from 127.0.0.1") != NULL, "%s", r);
	free(r);
	close(c);
	close(a);
	close(b);
	stop();
}

Test(smtp_server, long_line_and_sequence_errors)
{
	start(1 << 20, 4, 10000);
	int fd = session();
	char line[2100];
	memset(line, 'A', sizeof(line));
	memcpy(line + sizeof(line) - 3, "\r\n", 3);
	expect(fd, line, "500 5.5.2");
	char huge[40000];
	memset(huge, 'B', sizeof(huge));
	memcpy(huge + sizeof(huge) - 3, "\r\n", 3);
	expect(fd, huge, "500 5.5.2");
	expect(fd, "MAIL FROM:<a@b.example>\r\n", "503 5.5.1");
	expect(fd, "HELO c.test\r\n", "250 mx.test");
	expect(fd, "RCPT TO:<c@d.example>\r\n", "503 5.5.1");
	expect(fd, "DATA\r\n", "503 5.5.1");
	expect(fd, "MAIL FROM:<a@b.example>\r\n", "250");
	expect(fd, "MAIL FROM:<a@b.example>\r\n", "503 5.5.1");
	expect(fd, "RCPT TO:c@d.example\r\n", "501 5.1.3");
	expect(fd, "FROB\r\n", "500 5.5.2");
	expect(fd, "STARTTLS\r\n", "502 5.5.1");
	expect(fd, "VRFY x\r\n", "252");
	expect(fd, "noop\r\n", "250");
	expect(fd, "QUIT\r\n", "221");
	close(fd);
	stop();
}

Test(smtp_server, bare_lf_dot_does_not_end_data)
{
	start(1 << 20, 4, 10000);
	int fd = session();
	expect(fd, "EHLO c.test\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n", "250-");
	expect(fd, NULL, "250");
	expect(fd, NULL, "250");
	expect(fd, NULL, "354");
	/* "\n.\r\n" is not <CRLF>.<CRLF>: the smuggled MAIL stays data. */
	expect(fd, "one\n.\r\nMAIL FROM:<evil@x.example>\r\nlast\r\n.\r\n", "250 2.0.0");
	expect(fd, "QUIT\r\n", "221");
	close(fd);
	cr_assert_eq(rec_count(), 1);
	cr_assert(strstr(rec.data[0], "MAIL FROM:<evil@x.example>") != NULL, "%s", rec.data[0]);
	cr_assert(strstr(rec.data[0], "last\r\n") != NULL);
	stop();
}

Test(smtp_server, reply_waits_for_callback)
{
	start(1 << 20, 4, 10000);
	rec.msg_delay_ms = 200;
	rec.msg_code = 451;
	int fd = session();
	expect(fd, "EHLO c.test\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n", "250-");
	expect(fd, NULL, "250");
	expect(fd, NULL, "250");
	expect(fd, NULL, "354");
	long t0 = th_now_ms();
	expect(fd, "x\r\n.\r\n", "451 4.3.0");
	cr_assert_geq(th_now_ms() - t0, 190, "the reply came before the callback returned");
	close(fd);
	cr_assert_eq(rec_count(), 0);
	stop();
}

Test(smtp_server, shutdown_says_421_to_idle_sessions)
{
	start(1 << 20, 4, 60000);
	int fd = session();
	expect(fd, "EHLO c.test\r\n", "250-");
	/* The shutdown reply, not the idle timeout's (60 s, which also bounds
	 * this wait). */
	smtp_server_free(srv);
	srv = NULL;
	expect(fd, NULL, "421 4.3.2");
	cr_assert(th_smtp_closed(fd, 5000));
	close(fd);
	pthread_mutex_destroy(&rec.lock);
}

Test(smtp_server, bad_listen_address)
{
	struct smtp_server_params p = { .listen = "nonsense", .hostname = "x" };
	char err[256] = "";
	cr_assert_null(smtp_server_new(&p, err, sizeof(err)));
	cr_assert(strstr(err, "nonsense") != NULL, "%s", err);
}

/* ---- the command parser ---- */

Test(smtp_server_cmd, mail_and_rcpt)
{
	struct smtp_cmd c;
	const char *l = "MAIL FROM:<alice@example.org> SIZE=1234 BODY=8BITMIME";
	cr_assert_eq(smtp_cmd_parse(l, strlen(l), &c), SMTP_CMD_OK);
	cr_assert_eq(c.verb, SMTP_VERB_MAIL);
	cr_assert_str_eq(c.path, "alice@example.org");
	cr_assert_eq(c.size, 1234);
	cr_assert_eq(c.body, SMTP_BODY_8BITMIME);
	l = "mail from: <>";
	cr_assert_eq(smtp_cmd_parse(l, strlen(l), &c), SMTP_CMD_OK);
	cr_assert_str_eq(c.path, "");
	cr_assert_eq(c.size, -1);
	l = "RCPT TO:<@relay.example:bob@example.net>";
	cr_assert_eq(smtp_cmd_parse(l, strlen(l), &c), SMTP_CMD_OK);
	cr_assert_str_eq(c.path, "bob@example.net");
	l = "RCPT TO:<\"odd > name\"@example.net>";
	cr_assert_eq(smtp_cmd_parse(l, strlen(l), &c), SMTP_CMD_OK);
	cr_assert_str_eq(c.path, "\"odd > name\"@example.net");
	l = "RCPT TO:<Postmaster>";
	cr_assert_eq(smtp_cmd_parse(l, strlen(l), &c), SMTP_CMD_OK);
	l = "EHLO [127.0.0.1]";
	cr_assert_eq(smtp_cmd_parse(l, strlen(l), &c), SMTP_CMD_OK);
	cr_assert_str_eq(c.arg, "[127.0.0.1]");
}

Test(smtp_server_cmd, rejects)
{
	static const struct {
		const char *line;
		enum smtp_cmd_result want;
	} cases[] = {
		{ "RCPT TO:<>", SMTP_CMD_BAD_PATH },
		{ "MAIL FROM:alice@example.org", SMTP_CMD_BAD_PATH },
		{ "MAIL FROM:<alice@example.org", SMTP_CMD_BAD_PATH },
		{ "MAIL FROM:<al ice@example.org>", SMTP_CMD_BAD_PATH },
		{ "MAIL FROM:<al\xc3\xa9@example.org>", SMTP_CMD_BAD_PATH },
		{ "MAIL FROM:<alice>", SMTP_CMD_BAD_PATH },
		/* Found by the fuzzer: an escaped 8-bit octet in a quoted local part. */
		{ "RCPT TO:<\"a\\\xd6" "b\"@example.net>", SMTP_CMD_BAD_PATH },
		{ "RCPT TO:<\"a\\\x01" "b\"@example.net>", SMTP_CMD_BAD_SYNTAX },
		{ "RCPT TO:<x@>", SMTP_CMD_BAD_PATH },
		{ "RCPT TO:<a@b> NOTIFY=NEVER", SMTP_CMD_BAD_PARAM },
		{ "MAIL FROM:<a@b> SIZE=", SMTP_CMD_BAD_PARAM },
		{ "MAIL FROM:<a@b> BODY=BINARYMIME", SMTP_CMD_BAD_PARAM },
		{ "MAIL TO:<a@b>", SMTP_CMD_BAD_SYNTAX },
		{ "EHLO", SMTP_CMD_BAD_SYNTAX },
		{ "HELO a b", SMTP_CMD_BAD_SYNTAX },
		{ "DATA now", SMTP_CMD_BAD_SYNTAX },
		{ "XYZZY", SMTP_CMD_BAD_VERB },
		{ "", SMTP_CMD_BAD_VERB },
	};
	struct smtp_cmd c;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		cr_assert_eq(smtp_cmd_parse(cases[i].line, strlen(cases[i].line), &c), cases[i].want, "%s",
			     cases[i].line);
	/* Local part over 64 octets (RFC 5321 §4.5.3.1.1). */
	char l[200];
	snprintf(l, sizeof(l), "RCPT TO:<%065d@example.net>", 0);
	cr_assert_eq(smtp_cmd_parse(l, strlen(l), &c), SMTP_CMD_BAD_PATH);
	snprintf(l, sizeof(l), "RCPT TO:<%064d@example.net>", 0);
	cr_assert_eq(smtp_cmd_parse(l, strlen(l), &c), SMTP_CMD_OK);
}

/* RFC 6531: with SMTPUTF8 offered, UTF-8 in paths and the MAIL parameter. */
Test(smtp_server_cmd, smtputf8)
{
	struct smtp_cmd c;
	const char *l = "MAIL FROM:<j\xc3\xb6rg@example.org> SMTPUTF8 BODY=8BITMIME";
	cr_assert_eq(smtp_cmd_parse_utf8(l, strlen(l), &c), SMTP_CMD_OK);
	cr_assert_eq(c.smtputf8, 1);
	cr_assert_eq(c.path_8bit, 1);
	cr_assert_eq(c.body, SMTP_BODY_8BITMIME);
	cr_assert_eq(smtp_cmd_parse(l, strlen(l), &c), SMTP_CMD_BAD_PATH, "not without SMTPUTF8 offered");
	l = "MAIL FROM:<a@example.org> SMTPUTF8";
	cr_assert_eq(smtp_cmd_parse(l, strlen(l), &c), SMTP_CMD_BAD_PARAM);
	cr_assert_eq(smtp_cmd_parse_utf8(l, strlen(l), &c), SMTP_CMD_OK);
	cr_assert_eq(c.path_8bit, 0);
	l = "RCPT TO:<\"a\\\xd6" "b\"@example.net>";
	cr_assert_eq(smtp_cmd_parse_utf8(l, strlen(l), &c), SMTP_CMD_BAD_PATH, "quoted-pair stays ASCII");
	l = "RCPT TO:<a\x7f@example.net>";
	cr_assert_eq(smtp_cmd_parse_utf8(l, strlen(l), &c), SMTP_CMD_BAD_PATH);
}

/* ---- STARTTLS (RFC 3207) ---- */

#include <openssl/ssl.h>
#include <signal.h>

static char *tls_dir;

/* A throwaway self-signed certificate for mx.test. */
static void make_cert(void)
{
	tls_dir = th_tmpdir("smtptls");
	cr_assert_not_null(tls_dir);
	char *out = NULL;
	int rc = th_run(&out, "cd '%s' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
			      "-keyout key.pem -out cert.pem -subj /CN=mx.test -days 2", tls_dir);
	cr_assert_eq(rc, 0, "%s", out);
	free(out);
}

static void start_tls(void)
{
	signal(SIGPIPE, SIG_IGN);
	make_cert();
	memset(&rec, 0, sizeof(rec));
	pthread_mutex_init(&rec.lock, NULL);
	char cert[512], key[512];
	snprintf(cert, sizeof(cert), "%s/cert.pem", tls_dir);
	snprintf(key, sizeof(key), "%s/key.pem", tls_dir);
	struct smtp_server_params p = {
		.listen = "127.0.0.1:0",
		.hostname = "mx.test",
		.max_message_size = 1 << 20,
		.idle_timeout_ms = 10000,
		.tls_cert_file = cert,
		.tls_key_file = key,
		.arg = &rec,
		.on_rcpt = on_rcpt,
		.on_message = on_message,
	};
	char err[256];
	srv = smtp_server_new(&p, err, sizeof(err));
	cr_assert_not_null(srv, "%s", err);
}

static void stop_tls(void)
{
	stop();
	th_rmrf(tls_dir);
	free(tls_dir);
}

Test(smtp_server_tls, swaks_starttls_delivers)
{
	start_tls();
	char *out = NULL;
	int rc = th_swaks(&out, smtp_server_port(srv), "--tls --from a@b.example --to c@d.example");
	cr_assert_eq(rc, 0, "%s", out);
	cr_assert(strstr(out, "<-  250-STARTTLS") != NULL, "%s", out);
	cr_assert(strstr(out, "<-  220 2.0.0 Ready to start TLS") != NULL, "%s", out);
	cr_assert(strstr(out, "=== TLS started") != NULL, "%s", out);
	/* After the handshake EHLO no longer offers STARTTLS. */
	const char *after = strstr(out, "=== TLS started");
	cr_assert(strstr(after, "250-STARTTLS") == NULL, "%s", out);
	free(out);
	cr_assert_eq(rec_count(), 1);
	cr_assert(strstr(rec.data[0], "with ESMTPS id") != NULL, "%s", rec.data[0]);
	stop_tls();
}

/* Reads one reply over TLS (a reply fits in one record here). */
static char *tls_reply(SSL *ssl)
{
	static char buf[4096];
	size_t n = 0;
	while (n < sizeof(buf) - 1) {
		int r = SSL_read(ssl, buf + n, (int)(sizeof(buf) - 1 - n));
		if (r <= 0)
			return NULL;
		n += (size_t)r;
		buf[n] = '\0';
		char *last = n >= 2 && buf[n - 2] == '\r' && buf[n - 1] == '\n' ? buf + n - 2 : NULL;
		if (last) {
			char *ls = last;
			while (ls > buf && ls[-1] != '\n')
				ls--;
			if (last - ls >= 4 && ls[3] == ' ')
				return buf;
		}
	}
	return NULL;
}

Test(smtp_server_tls, plaintext_pipelined_after_starttls_is_dropped)
{
	start_tls();
	int fd = session();
	expect(fd, "EHLO c.test\r\n", "250-mx.test");
	/* The injected MAIL must not be executed inside the TLS session. */
	expect(fd, "STARTTLS\r\nMAIL FROM:<injected@evil.example>\r\n", "220 2.0.0");
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	cr_assert_eq(SSL_connect(ssl), 1, "TLS handshake failed");
	const char *cmd = "EHLO c.test\r\n";
	cr_assert_gt(SSL_write(ssl, cmd, (int)strlen(cmd)), 0);
	char *r = tls_reply(ssl);
	cr_assert(r && strncmp(r, "250-mx.test", 11) == 0 && !strstr(r, "STARTTLS"), "%s", r ? r : "(none)");
	cmd = "MAIL FROM:<a@b.example>\r\n";
	cr_assert_gt(SSL_write(ssl, cmd, (int)strlen(cmd)), 0);
	r = tls_reply(ssl);
	cr_assert(r && strncmp(r, "250 2.1.0", 9) == 0, "a nested-MAIL error means the injection ran: %s", r ? r : "");
	cmd = "STARTTLS\r\n";
	cr_assert_gt(SSL_write(ssl, cmd, (int)strlen(cmd)), 0);
	r = tls_reply(ssl);
	cr_assert(r && strncmp(r, "554 5.5.1", 9) == 0, "%s", r ? r : "");
	cmd = "QUIT\r\n";
	cr_assert_gt(SSL_write(ssl, cmd, (int)strlen(cmd)), 0);
	r = tls_reply(ssl);
	cr_assert(r && strncmp(r, "221", 3) == 0, "%s", r ? r : "");
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	stop_tls();
}

Test(smtp_server_tls, bad_certificate_is_an_error)
{
	struct smtp_server_params p = { .listen = "127.0.0.1:0", .hostname = "x",
					.tls_cert_file = "/nonexistent/cert.pem", .tls_key_file = "/nonexistent/key.pem" };
	char err[256] = "";
	cr_assert_null(smtp_server_new(&p, err, sizeof(err)));
	cr_assert(strstr(err, "/nonexistent/cert.pem") != NULL, "%s", err);
	p.tls_key_file = NULL;
	cr_assert_null(smtp_server_new(&p, err, sizeof(err)));
	cr_assert(strstr(err, "key") != NULL, "%s", err);
}
