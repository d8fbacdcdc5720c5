/*
 * test_sink.c - the latency and fault sink (sink/, "mailferry sink"
 * without --dir): the fault plan's parser directly, then the binary
 * against real clients (swaks, Postfix's smtp-source) and a raw client
 * for the bytes that must be controlled (pipelined groups, thousands of
 * idle sessions).  Suite sink_tls: STARTTLS with swaks, Python's smtplib
 * and ssl (tests/sink/starttls_check.py) and our own relay.  Timings are compared within a run, with generous
 * lower bounds only: a delay can be late on a loaded machine, never early.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "relay/relay.h"
#include "sink/fault.h"
#include "smtp_script.h"
#include "th_smtp.h"
#include "util/buf.h"
#include "util/config.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/xmalloc.h"

/* ---- the fault plan ---- */

Test(sink, fault_spec_parses_and_rolls)
{
	char err[256];
	struct sink_faults *f = NULL;
	cr_assert_eq(sink_faults_parse("rcpt:421:5%,rcpt:450:10%,data:drop:2%,tarpit:30s:1%", &f, err, sizeof(err)), 0,
		     "%s", err);
	struct sink_fault r = sink_faults_roll(f, SINK_STAGE_RCPT, 0.01);
	cr_assert_eq(r.kind, SINK_FAULT_REPLY);
	cr_assert_eq(r.code, 421);
	r = sink_faults_roll(f, SINK_STAGE_RCPT, 0.10);
	cr_assert_eq(r.code, 450);
	cr_assert_eq(sink_faults_roll(f, SINK_STAGE_RCPT, 0.15).kind, SINK_FAULT_NONE);
	cr_assert_eq(sink_faults_roll(f, SINK_STAGE_DATA, 0.019).kind, SINK_FAULT_DROP);
	cr_assert_eq(sink_faults_roll(f, SINK_STAGE_DATA, 0.5).kind, SINK_FAULT_NONE);
	r = sink_faults_roll(f, SINK_STAGE_TARPIT, 0.001);
	cr_assert_eq(r.kind, SINK_FAULT_TARPIT);
	cr_assert_eq(r.delay_ms, 30000);
	cr_assert_eq(sink_faults_roll(f, SINK_STAGE_MAIL, 0.0).kind, SINK_FAULT_NONE);
	sink_faults_free(f);
	cr_assert_eq(sink_faults_parse("connect:421:100", &f, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(sink_faults_roll(f, SINK_STAGE_CONNECT, 0.999).code, 421);
	sink_faults_free(f);
	cr_assert_eq(sink_faults_parse("", &f, err, sizeof(err)), 0);
	cr_assert_eq(sink_faults_roll(f, SINK_STAGE_RCPT, 0.0).kind, SINK_FAULT_NONE);
	sink_faults_free(f);

	static const char *const bad[] = { "rcpt:450", "rcpt:250:5%", "rcpt:45:5%", "helo:450:5%", "rcpt:450:101%",
					   "rcpt:450:-1%", "rcpt:450:5%%", "tarpit:soon:5%", "data:drop:x",
					   "rcpt:450:60%,rcpt:421:50%", "rcpt:450:5%,", "rcpt:450:5:1" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		cr_assert_eq(sink_faults_parse(bad[i], &f, err, sizeof(err)), -1, "%s accepted", bad[i]);
		cr_assert(strstr(err, "bad fault") != NULL, "%s: %s", bad[i], err);
	}
	long ms = 0;
	cr_assert_eq(sink_duration_parse("250ms", &ms), 0);
	cr_assert_eq(ms, 250);
	cr_assert_eq(sink_duration_parse("1.5s", &ms), 0);
	cr_assert_eq(ms, 1500);
	cr_assert_eq(sink_duration_parse("2", &ms), 0);
	cr_assert_eq(ms, 2000);
	cr_assert_eq(sink_duration_parse("1m", &ms), 0);
	cr_assert_eq(ms, 60000);
	cr_assert_eq(sink_duration_parse("fast", &ms), -1);
	cr_assert_eq(sink_duration_parse("5x", &ms), -1);
}

Test(sink, bad_options_exit_2_naming_the_item)
{
	char *out = NULL;
	cr_assert_eq(th_run(&out, "%s sink --listen 127.0.0.1:1 --fault 'rcpt:450:5%%,rcpt:999:5%%'", th_bin()), 2,
		     "%s", out);
	cr_assert(strstr(out, "rcpt:999:5%") != NULL && strstr(out, "rcpt:450:5%\"") == NULL, "%s", out);
	free(out);
	cr_assert_eq(th_run(&out, "%s sink --listen 127.0.0.1:1 --fault 'smtp:drop:5%%'", th_bin()), 2, "%s", out);
	cr_assert(strstr(out, "smtp:drop:5%") != NULL && strstr(out, "stage") != NULL, "%s", out);
	free(out);
	cr_assert_eq(th_run(&out, "%s sink --listen 127.0.0.1:1 --reply-delay soon", th_bin()), 2, "%s", out);
	cr_assert(strstr(out, "--reply-delay") != NULL, "%s", out);
	free(out);
	cr_assert_eq(th_run(&out, "%s sink --listen 127.0.0.1:1 --data-hold 0", th_bin()), 2, "%s", out);
	cr_assert(strstr(out, "--data-hold \"0\"") != NULL, "%s", out);
	free(out);
	/* The capture server (--dir) has none of the loop's options. */
	cr_assert_eq(th_run(&out, "%s sink --listen 127.0.0.1:1 --dir /tmp --reply-delay 1s", th_bin()), 2, "%s", out);
	free(out);
	cr_assert_eq(th_run(&out, "%s sink --help", th_bin()), 0);
	cr_assert(strstr(out, "--reply-delay") && strstr(out, "--fault") && strstr(out, "127.0.0.1:2525"), "%s", out);
	free(out);
}

/* ---- the binary ---- */

struct sink_proc {
	pid_t pid;
	int port, port2;
	char out[256];   /* its stdout: the counters */
};

/* Starts "mailferry sink --listen 127.0.0.1:P[,127.0.0.2:P2] EXTRA..." and waits for it. */
static void sink_start(struct sink_proc *sp, int two, const char *extra)
{
	sp->port = th_free_port();
	sp->port2 = two ? th_free_port() : 0;
	char *tmp = th_tmpdir("sinkout");
	cr_assert_not_null(tmp);
	snprintf(sp->out, sizeof(sp->out), "%s/out", tmp);
	free(tmp);
	char *cmd;
	if (two)
		cmd = xasprintf("exec %s sink --listen 127.0.0.1:%d,127.0.0.2:%d %s >%s", th_bin(), sp->port, sp->port2,
				extra, sp->out);
	else
		cmd = xasprintf("exec %s sink --listen 127.0.0.1:%d %s >%s", th_bin(), sp->port, extra, sp->out);
	sp->pid = fork();
	if (sp->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	free(cmd);
	cr_assert_gt(sp->pid, 0);
	/* Connecting is enough: with a connect fault there is no 220. */
	int fd = -1;
	for (long t0 = th_now_ms(); fd < 0 && th_now_ms() - t0 < 10000; usleep(20000))
		fd = th_smtp_connect(sp->port);
	cr_assert_geq(fd, 0, "the sink did not come up");
	close(fd);
}

/* SIGTERM; returns its stdout (the final counters), caller frees. */
static char *sink_stop(struct sink_proc *sp)
{
	kill(sp->pid, SIGTERM);
	int st = 0;
	cr_assert_eq(waitpid(sp->pid, &st, 0), sp->pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "sink exit status %d", st);
	char *out = NULL;
	cr_assert_eq(th_run(&out, "cat '%s'", sp->out), 0);
	char *dir = xstrndup(sp->out, strlen(sp->out) - strlen("/out"));
	th_rmrf(dir);
	free(dir);
	return out;
}

/* Waits (10 s at most) until the counters the sink prints on SIGUSR1,
 * the last line of its stdout, contain want; returns 1 when they did. */
static int sink_wait_counters(struct sink_proc *sp, const char *want)
{
	for (long t0 = th_now_ms(); th_now_ms() - t0 < 10000; usleep(50 * 1000)) {
		kill(sp->pid, SIGUSR1);
		usleep(50 * 1000);
		char *out = NULL;
		th_run(&out, "tail -n 1 '%s'", sp->out);
		int found = out != NULL && strstr(out, want) != NULL;
		free(out);
		if (found)
			return 1;
	}
	return 0;
}

/* Milliseconds until n replies have arrived. */
static long replies_ms(int fd, int n, long t0)
{
	char *r = th_smtp_replies(fd, n, 30000);
	cr_assert_not_null(r, "%d replies did not come", n);
	free(r);
	return th_now_ms() - t0;
}

static const char *const pipelined[] = { "EHLO t.test\r\n", "MAIL FROM:<a@t.test>\r\n", "RCPT TO:<b@t.test>\r\n",
					 "RSET\r\n",        "NOOP\r\n",                "NOOP\r\n",
					 "NOOP\r\n",        "NOOP\r\n" };
#define NPIPE (int)(sizeof(pipelined) / sizeof(pipelined[0]))

Test(sink, reply_delay_is_per_round_trip)
{
	struct sink_proc sp;
	sink_start(&sp, 0, "--reply-delay 300ms");
	/* One group of 8 pipelined commands, in one write (RFC 2920). */
	int fd = th_smtp_connect(sp.port);
	cr_assert_geq(fd, 0);
	long t0 = th_now_ms();
	long greet = replies_ms(fd, 1, t0);
	char all[512] = "";
	for (int i = 0; i < NPIPE; i++)
		strncat(all, pipelined[i], sizeof(all) - strlen(all) - 1);
	t0 = th_now_ms();
	cr_assert_eq(th_smtp_send(fd, all), 0);
	long group = replies_ms(fd, NPIPE, t0);
	close(fd);
	/* The same 8 commands one round trip each. */
	fd = th_smtp_connect(sp.port);
	cr_assert_geq(fd, 0);
	replies_ms(fd, 1, th_now_ms());
	t0 = th_now_ms();
	for (int i = 0; i < NPIPE; i++) {
		cr_assert_eq(th_smtp_send(fd, pipelined[i]), 0);
		replies_ms(fd, 1, th_now_ms());
	}
	long serial = th_now_ms() - t0;
	close(fd);
	cr_log_info("reply-delay 300ms: greeting %ld ms, 8 pipelined %ld ms, 8 serial %ld ms", greet, group, serial);
	cr_assert_geq(greet, 250, "greeting after %ld ms", greet);
	cr_assert_geq(group, 250, "pipelined group after %ld ms", group);
	cr_assert_geq(serial, NPIPE * 250, "8 round trips in %ld ms", serial);
	cr_assert_lt(group * 3, serial, "the group (%ld ms) should cost one delay, 8 serial commands (%ld ms) eight",
		     group, serial);

	/* swaks: a whole session works under the delay. */
	char *out = NULL;
	cr_assert_eq(th_swaks(&out, sp.port, "--from a@t.test --to b@t.test --pipeline"), 0, "%s", out);
	free(out);
	out = sink_stop(&sp);
	cr_assert(strstr(out, "messages=1 ") != NULL, "%s", out);
	free(out);
}

Test(sink, data_delay_holds_the_end_of_data_reply)
{
	struct sink_proc sp;
	sink_start(&sp, 0, "--data-delay 1500ms");
	int fd = th_smtp_connect(sp.port);
	cr_assert_geq(fd, 0);
	long t0 = th_now_ms();
	cr_assert_eq(th_smtp_send(fd, "EHLO t.test\r\nMAIL FROM:<a@t.test>\r\nRCPT TO:<b@t.test>\r\nDATA\r\n"), 0);
	long cmds = replies_ms(fd, 5, t0);
	t0 = th_now_ms();
	cr_assert_eq(th_smtp_send(fd, "Subject: x\r\nMessage-ID: <dd@t.test>\r\n\r\n..dot\r\n.\r\n"), 0);
	char *r = th_smtp_reply(fd, 30000);
	long eod = th_now_ms() - t0;
	cr_assert_not_null(r);
	cr_assert(strncmp(r, "250 2.0.0", 9) == 0, "%s", r);
	free(r);
	cr_assert_eq(th_smtp_send(fd, "QUIT\r\n"), 0);
	r = th_smtp_reply(fd, 30000);
	cr_assert(r && strncmp(r, "221", 3) == 0, "%s", r ? r : "(none)");
	free(r);
	close(fd);
	cr_log_info("data-delay 1500ms: commands %ld ms, end of data %ld ms", cmds, eod);
	cr_assert_geq(eod, 1400, "end-of-data reply after %ld ms", eod);
	cr_assert_lt(cmds, eod, "commands (%ld ms) are not delayed, the end of data (%ld ms) is", cmds, eod);

	long s0 = th_now_ms();
	char *out = NULL;
	cr_assert_eq(th_swaks(&out, sp.port, "--from a@t.test --to b@t.test"), 0, "%s", out);
	free(out);
	cr_assert_geq(th_now_ms() - s0, 1400);
	out = sink_stop(&sp);
	cr_assert(strstr(out, "messages=2 ") != NULL, "%s", out);
	free(out);
}

/* Sends a message on fd up to its final dot (the reply is not read). */
static void send_to_dot(int fd, const char *id)
{
	free(th_smtp_replies(fd, 1, 10000));
	char *cmd = xasprintf("EHLO t.test\r\nMAIL FROM:<a@t.test>\r\nRCPT TO:<b@t.test>\r\nDATA\r\n");
	cr_assert_eq(th_smtp_send(fd, cmd), 0);
	free(cmd);
	free(th_smtp_replies(fd, 4, 10000));
	cmd = xasprintf("Message-ID: <%s@t.test>\r\n\r\nx\r\n.\r\n", id);
	cr_assert_eq(th_smtp_send(fd, cmd), 0);
	free(cmd);
}

/* --data-hold 3: the end-of-data replies wait until three sessions have
 * been open at once, then all go; later ones are not held. */
Test(sink, data_hold_releases_once_enough_sessions_are_open)
{
	struct sink_proc sp;
	sink_start(&sp, 0, "--data-hold 3");
	cr_assert(sink_wait_counters(&sp, " open=0 "), "the probe's session is still open");
	int a = th_smtp_connect(sp.port);
	cr_assert_geq(a, 0);
	send_to_dot(a, "held-a");
	/* The sink has counted the message (so it read the dot), and with no
	 * data delay its reply would have been written in the same step. */
	cr_assert(sink_wait_counters(&sp, "messages=1 "), "the first message was not counted");
	int b = th_smtp_connect(sp.port);
	cr_assert_geq(b, 0);
	send_to_dot(b, "held-b");
	cr_assert(sink_wait_counters(&sp, "messages=2 "), "the second message was not counted");
	struct pollfd pa = { .fd = a, .events = POLLIN }, pb = { .fd = b, .events = POLLIN };
	cr_assert_eq(poll(&pa, 1, 0), 0, "session a got its end-of-data reply before the hold was reached");
	cr_assert_eq(poll(&pb, 1, 0), 0, "session b got its end-of-data reply before the hold was reached");
	int c = th_smtp_connect(sp.port); /* the third session open at once: the hold is reached */
	cr_assert_geq(c, 0);
	char *r = th_smtp_reply(a, 30000);
	cr_assert(r && strncmp(r, "250 ", 4) == 0, "a: %s", r ? r : "(none)");
	free(r);
	r = th_smtp_reply(b, 30000);
	cr_assert(r && strncmp(r, "250 ", 4) == 0, "b: %s", r ? r : "(none)");
	free(r);
	send_to_dot(c, "after-c");
	r = th_smtp_reply(c, 30000);
	cr_assert(r && strncmp(r, "250 ", 4) == 0, "c: %s", r ? r : "(none)");
	free(r);
	close(a);
	close(b);
	close(c);
	char *out = sink_stop(&sp);
	cr_assert(strstr(out, "messages=3 ") != NULL && strstr(out, "peak=3 ") != NULL, "%s", out);
	free(out);
}

/* txn_peak counts mail transactions at once, not open sessions: two
 * sessions in a transaction together, then one idle session beside a
 * third transaction. */
Test(sink, counts_concurrent_transactions)
{
	struct sink_proc sp;
	sink_start(&sp, 0, "");
	/* The readiness probe's session must be gone, or it counts in peak. */
	cr_assert(sink_wait_counters(&sp, " open=0 "), "the probe's session is still open");
	int a = th_smtp_connect(sp.port), b = th_smtp_connect(sp.port), c = th_smtp_connect(sp.port);
	cr_assert(a >= 0 && b >= 0 && c >= 0);
	int fds[] = { a, b, c };
	for (int i = 0; i < 3; i++) {
		free(th_smtp_replies(fds[i], 1, 10000));
		cr_assert_eq(th_smtp_send(fds[i], "EHLO t.test\r\n"), 0);
		char *r = th_smtp_reply(fds[i], 10000);
		cr_assert_not_null(r);
		free(r);
	}
	/* a and b in a transaction at once; a ends with RSET, b with a message. */
	cr_assert_eq(th_smtp_send(a, "MAIL FROM:<x@t.test>\r\n"), 0);
	free(th_smtp_replies(a, 1, 10000));
	cr_assert_eq(th_smtp_send(b, "MAIL FROM:<x@t.test>\r\nRCPT TO:<y@t.test>\r\nDATA\r\n"), 0);
	free(th_smtp_replies(b, 3, 10000));
	cr_assert_eq(th_smtp_send(a, "RSET\r\n"), 0);
	free(th_smtp_replies(a, 1, 10000));
	cr_assert_eq(th_smtp_send(b, "Subject: t\r\n\r\nx\r\n.\r\n"), 0);
	free(th_smtp_replies(b, 1, 10000));
	/* Now only c: one transaction while a and b sit idle. */
	cr_assert_eq(th_smtp_send(c, "MAIL FROM:<x@t.test>\r\n"), 0);
	free(th_smtp_replies(c, 1, 10000));
	close(c);
	close(a);
	close(b);
	char *out = sink_stop(&sp);
	cr_assert(strstr(out, "peak=3 ") != NULL, "%s", out);
	cr_assert(strstr(out, "txn_peak=2") != NULL, "%s", out);
	cr_assert(strstr(out, "messages=1 ") != NULL, "%s", out);
	free(out);
}

/* Runs swaks against a sink started with fault; returns its output. */
static char *swaks_against(const char *fault, int *rc, char **counters)
{
	struct sink_proc sp;
	char *extra = xasprintf("--fault '%s'", fault);
	sink_start(&sp, 0, extra);
	free(extra);
	char *out = NULL;
	*rc = th_swaks(&out, sp.port, "--from a@t.test --to b@t.test");
	*counters = sink_stop(&sp);
	return out;
}

Test(sink, faults_do_what_they_say)
{
	int rc = 0;
	char *cnt = NULL;
	char *out = swaks_against("rcpt:450:100%", &rc, &cnt);
	cr_assert_neq(rc, 0, "%s", out);
	cr_assert(strstr(out, "<** 450 4.3.0") != NULL, "%s", out);
	cr_assert(strstr(cnt, "messages=0 ") && strstr(cnt, "faults=1 "), "%s", cnt);
	free(out);
	free(cnt);

	out = swaks_against("connect:421:100%", &rc, &cnt);
	cr_assert_neq(rc, 0, "%s", out);
	cr_assert(strstr(out, "<** 421 4.3.2") != NULL, "%s", out);
	free(out);
	free(cnt);

	out = swaks_against("mail:550:100%", &rc, &cnt);
	cr_assert_neq(rc, 0, "%s", out);
	cr_assert(strstr(out, "<** 550 5.3.0") != NULL, "%s", out);
	free(out);
	free(cnt);

	out = swaks_against("data:drop:100%", &rc, &cnt);
	cr_assert_neq(rc, 0, "%s", out);
	cr_assert(strstr(out, "354 ") != NULL && strstr(out, "250 2.0.0") == NULL, "%s", out);
	cr_assert(strstr(cnt, "messages=0 ") && strstr(cnt, "faults=1 "), "%s", cnt);
	free(out);
	free(cnt);

	/* The same with a raw client: closed after the final dot, no reply. */
	struct sink_proc sp;
	sink_start(&sp, 0, "--fault data:drop:100%,rcpt:421:0%");
	int fd = th_smtp_connect(sp.port);
	cr_assert_geq(fd, 0);
	cr_assert_eq(th_smtp_send(fd, "EHLO t.test\r\nMAIL FROM:<a@t.test>\r\nRCPT TO:<b@t.test>\r\nDATA\r\n"), 0);
	char *r = th_smtp_replies(fd, 5, 30000);
	cr_assert(r && strstr(r, "354 "), "%s", r ? r : "(none)");
	free(r);
	cr_assert_eq(th_smtp_send(fd, "Subject: x\r\n\r\nbody\r\n.\r\n"), 0);
	cr_assert_null(th_smtp_reply(fd, 10000), "a reply after data:drop");
	close(fd);
	free(sink_stop(&sp));

	/* rcpt:421 answers and closes (RFC 5321 §3.8). */
	sink_start(&sp, 0, "--fault rcpt:421:100%");
	fd = th_smtp_connect(sp.port);
	cr_assert_geq(fd, 0);
	cr_assert_eq(th_smtp_send(fd, "EHLO t.test\r\nMAIL FROM:<a@t.test>\r\nRCPT TO:<b@t.test>\r\nNOOP\r\n"), 0);
	r = th_smtp_replies(fd, 4, 30000);
	cr_assert(r && strstr(r, "\r\n421 4.3.2"), "%s", r ? r : "(none)");
	cr_assert(strstr(r, "250 2.1.0") != NULL, "%s", r);
	free(r);
	cr_assert(th_smtp_closed(fd, 10000), "still open after 421");
	close(fd);
	free(sink_stop(&sp));

	/* connect:drop closes before any greeting; tarpit slows every reply. */
	sink_start(&sp, 0, "--fault connect:drop:100%");
	fd = th_smtp_connect(sp.port);
	cr_assert_geq(fd, 0);
	cr_assert_null(th_smtp_reply(fd, 10000));
	close(fd);
	free(sink_stop(&sp));
	sink_start(&sp, 0, "--fault tarpit:700ms:100%");
	fd = th_smtp_connect(sp.port);
	cr_assert_geq(fd, 0);
	long t0 = th_now_ms();
	long greet = replies_ms(fd, 1, t0);
	cr_assert_eq(th_smtp_send(fd, "NOOP\r\n"), 0);
	long noop = replies_ms(fd, 1, th_now_ms());
	close(fd);
	cr_assert_geq(greet, 600, "greeting after %ld ms", greet);
	cr_assert_geq(noop, 600, "NOOP after %ld ms", noop);
	char *c = sink_stop(&sp);
	/* Every session was tarpitted, the readiness probe's too. */
	cr_assert(strstr(c, "sessions=2 ") && strstr(c, "faults=2 "), "%s", c);
	free(c);
}

Test(sink, duplicates_counted_by_message_id)
{
	struct sink_proc sp;
	sink_start(&sp, 0, "");
	char *out = NULL;
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(th_swaks(&out, sp.port, "--from a@t.test --to b@t.test --header 'Message-Id: <same-1@t.test>'"),
			     0, "%s", out);
		free(out);
	}
	cr_assert_eq(th_swaks(&out, sp.port, "--from a@t.test --to b@t.test,c@t.test --header 'Message-Id: <other@t.test>'"),
		     0, "%s", out);
	free(out);
	/* smtp-source: 20 messages over 4 sessions, each with its own id. */
	cr_assert_eq(th_run(&out, "smtp-source -s 4 -m 20 -c -f a@t.test -t b@t.test 127.0.0.1:%d", sp.port), 0, "%s",
		     out);
	free(out);
	/* While it runs: SIGUSR1 prints the counters. */
	kill(sp.pid, SIGUSR1);
	usleep(300 * 1000);
	cr_assert_eq(th_run(&out, "cat '%s'", sp.out), 0);
	cr_assert(strstr(out, "messages=23 ") != NULL, "%s", out);
	free(out);
	out = sink_stop(&sp);
	cr_assert(strstr(out, "messages=23 recipients=24 duplicates=1 ") != NULL, "%s", out);
	free(out);

	sink_start(&sp, 0, "--json");
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(th_swaks(&out, sp.port, "--from a@t.test --to b@t.test --header 'Message-Id: <j@t.test>'"), 0,
			     "%s", out);
		free(out);
	}
	out = sink_stop(&sp);
	cr_assert(strstr(out, "\"messages\":3,\"recipients\":3,\"duplicates\":2,") != NULL, "%s", out);
	free(out);
}

Test(sink, listens_on_several_addresses)
{
	struct sink_proc sp;
	sink_start(&sp, 1, "");
	char *out = NULL;
	cr_assert_eq(th_run(&out, "swaks --server 127.0.0.1:%d --timeout 20 --from a@t.test --to b@one.test", sp.port),
		     0, "%s", out);
	free(out);
	cr_assert_eq(th_run(&out, "swaks --server 127.0.0.2:%d --timeout 20 --from a@t.test --to b@two.test", sp.port2),
		     0, "%s", out);
	free(out);
	out = sink_stop(&sp);
	cr_assert(strstr(out, "messages=2 ") != NULL, "%s", out);
	free(out);
}

static long rss_kb(pid_t pid)
{
	char *out = NULL;
	long kb = -1;
	if (th_run(&out, "awk '/^VmRSS:/ {print $2}' /proc/%d/status", (int)pid) == 0)
		kb = strtol(out, NULL, 10);
	free(out);
	return kb;
}

/* The sink's own pid: sh exec'd it, so it is sp.pid. */
#define LOAD_SESSIONS 3000

Test(sink, carries_thousands_of_sessions)
{
	struct rlimit rl;
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	cr_assert_geq((long)rl.rlim_cur, LOAD_SESSIONS + 100L, "open-files limit %ld", (long)rl.rlim_cur);
	struct sink_proc sp;
	sink_start(&sp, 0, "");
	usleep(200 * 1000);
	long rss0 = rss_kb(sp.pid);
	int ep = epoll_create1(0);
	cr_assert_geq(ep, 0);
	int *fds = calloc(LOAD_SESSIONS, sizeof(int));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)sp.port) };
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	for (int i = 0; i < LOAD_SESSIONS; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		cr_assert_geq(fds[i], 0, "socket %d: %s", i, strerror(errno));
		int rc = connect(fds[i], (struct sockaddr *)&a, sizeof(a));
		cr_assert(rc == 0 || errno == EINPROGRESS, "connect %d: %s", i, strerror(errno));
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
		cr_assert_eq(epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev), 0);
	}
	/* Every session must be greeted. */
	int greeted = 0;
	long deadline = th_now_ms() + 60000;
	while (greeted < LOAD_SESSIONS && th_now_ms() < deadline) {
		struct epoll_event evs[256];
		int n = epoll_wait(ep, evs, 256, 1000);
		for (int i = 0; i < n; i++) {
			int fd = fds[evs[i].data.u32];
			char buf[256];
			ssize_t r = read(fd, buf, sizeof(buf));
			cr_assert(r >= 4 && strncmp(buf, "220 ", 4) == 0, "session %u: %zd", evs[i].data.u32, r);
			epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
			greeted++;
		}
	}
	cr_assert_eq(greeted, LOAD_SESSIONS, "%d of %d sessions greeted", greeted, LOAD_SESSIONS);
	long rss1 = rss_kb(sp.pid);
	kill(sp.pid, SIGUSR1);
	usleep(300 * 1000);
	char *out = NULL;
	cr_assert_eq(th_run(&out, "cat '%s'", sp.out), 0);
	cr_assert(strstr(out, "open=3000 ") != NULL, "%s", out);
	free(out);
	cr_log_info("sink: %d idle sessions, RSS %ld kB before, %ld kB with them: %ld bytes per session",
		    LOAD_SESSIONS, rss0, rss1, (rss1 - rss0) * 1024 / LOAD_SESSIONS);
	fprintf(stderr, "sink-load: sessions=%d rss_before_kb=%ld rss_kb=%ld bytes_per_session=%ld\n", LOAD_SESSIONS,
		rss0, rss1, (rss1 - rss0) * 1024 / LOAD_SESSIONS);
	for (int i = 0; i < LOAD_SESSIONS; i++)
		close(fds[i]);
	free(fds);
	close(ep);

	/* And messages through smtp-source, 20 sessions at once. */
	long t0 = th_now_ms();
	cr_assert_eq(th_run(&out, "smtp-source -s 20 -m 2000 -f a@t.test -t b@t.test 127.0.0.1:%d", sp.port), 0, "%s",
		     out);
	free(out);
	long ms = th_now_ms() - t0;
	fprintf(stderr, "sink-load: smtp-source 2000 messages in %ld ms: %ld messages/s\n", ms, ms ? 2000 * 1000 / ms : 0);
	out = sink_stop(&sp);
	cr_assert(strstr(out, "messages=2000 ") != NULL, "%s", out);
	free(out);
}

Test(sink, bounded_lines_dot_unstuffing_and_folded_message_id)
{
	struct sink_proc sp;
	sink_start(&sp, 0, "");
	int fd = th_smtp_connect(sp.port);
	cr_assert_geq(fd, 0);
	char *r = th_smtp_reply(fd, 30000);
	cr_assert(r && strncmp(r, "220 ", 4) == 0, "%s", r ? r : "(none)");
	free(r);
	/* RFC 5321 §4.5.3.1.4: a command line of more than 512 octets. */
	char big[1400];
	memset(big, 'x', sizeof(big));
	memcpy(big, "NOOP ", 5);
	memcpy(big + 600, "\r\n", 3);
	cr_assert_eq(th_smtp_send(fd, big), 0);
	r = th_smtp_reply(fd, 30000);
	cr_assert(r && strncmp(r, "500 5.5.2", 9) == 0, "%s", r ? r : "(none)");
	free(r);
	cr_assert_eq(th_smtp_send(fd, "EHLO t.test\r\nMAIL FROM:<a@t.test>\r\nRCPT TO:<b@t.test>\r\nDATA\r\n"), 0);
	free(th_smtp_replies(fd, 4, 30000));
	/* §4.5.3.1.6: a text line of more than 1000 octets fails the message. */
	memset(big, 'y', sizeof(big));
	memcpy(big + 1200, "\r\n.\r\n", 6);
	cr_assert_eq(th_smtp_send(fd, big), 0);
	r = th_smtp_reply(fd, 30000);
	cr_assert(r && strncmp(r, "500 5.5.2", 9) == 0, "%s", r ? r : "(none)");
	free(r);
	/* §4.5.2: ".." is a dot, not the end; a folded Message-ID counts. */
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(th_smtp_send(fd, "MAIL FROM:<a@t.test>\r\nRCPT TO:<b@t.test>\r\nDATA\r\n"), 0);
		r = th_smtp_replies(fd, 3, 30000);
		cr_assert(r && strstr(r, "354 "), "%s", r ? r : "(none)");
		free(r);
		cr_assert_eq(th_smtp_send(fd, "Message-ID:\r\n <folded@t.test>\r\n\r\n..\r\n.."), 0);
		usleep(50 * 1000);
		cr_assert_eq(th_smtp_send(fd, ".\r\n.\r\n"), 0);
		r = th_smtp_reply(fd, 30000);
		cr_assert(r && strncmp(r, "250 2.0.0", 9) == 0, "%s", r ? r : "(none)");
		free(r);
	}
	cr_assert_eq(th_smtp_send(fd, "QUIT\r\n"), 0);
	free(th_smtp_reply(fd, 30000));
	close(fd);
	char *out = sink_stop(&sp);
	cr_assert(strstr(out, "messages=2 recipients=2 duplicates=1 no_message_id=0 ") != NULL, "%s", out);
	free(out);
}

/* ---- STARTTLS (suite sink_tls) ---- */

struct tls_files {
	char *dir;
	char cert[512], key[512];
};

/* A test CA and a certificate for mx.test signed by it (the harness's). */
static void tls_files_make(struct tls_files *tf)
{
	tf->dir = th_tmpdir("sinktls");
	cr_assert_not_null(tf->dir);
	cr_assert_eq(ss_make_ca(tf->dir), 0);
	cr_assert_eq(ss_make_cert(tf->dir, "mx", "mx.test"), 0);
	snprintf(tf->cert, sizeof(tf->cert), "%s/mx.pem", tf->dir);
	snprintf(tf->key, sizeof(tf->key), "%s/mx.key", tf->dir);
}

static void tls_files_free(struct tls_files *tf)
{
	th_rmrf(tf->dir);
	free(tf->dir);
}

/* Starts a sink offering STARTTLS with tf, plus extra options. */
static void tls_sink_start(struct sink_proc *sp, const struct tls_files *tf, const char *extra)
{
	char *opts = xasprintf("--tls-cert '%s' --tls-key '%s' %s", tf->cert, tf->key, extra);
	sink_start(sp, 0, opts);
	free(opts);
}

/* Runs tests/sink/starttls_check.py PORT ARGS; returns its exit status. */
static int starttls_check(char **out, int port, const char *args)
{
	const char *src = getenv("MAILFERRY_TEST_SRCDIR") ? getenv("MAILFERRY_TEST_SRCDIR") : ".";
	return th_run(out, "/usr/bin/python3 %s/tests/sink/starttls_check.py %d %s", src, port, args);
}

Test(sink_tls, swaks_and_smtplib_send_over_starttls)
{
	struct tls_files tf;
	tls_files_make(&tf);
	struct sink_proc sp;
	tls_sink_start(&sp, &tf, "");
	char *out = NULL;
	cr_assert_eq(th_swaks(&out, sp.port, "--tls --from a@t.test --to b@t.test"), 0, "%s", out);
	cr_assert(strstr(out, "250-STARTTLS") != NULL && strstr(out, "<~  250 2.0.0 Ok: queued") != NULL, "%s", out);
	free(out);
	cr_assert_eq(starttls_check(&out, sp.port, "send"), 0, "%s", out);
	cr_assert(strstr(out, "before=") && strstr(out, "starttls") && strstr(out, "cipher="), "%s", out);
	free(out);
	/* Plaintext stays possible: STARTTLS is offered, not required. */
	cr_assert_eq(th_swaks(&out, sp.port, "--from a@t.test --to b@t.test"), 0, "%s", out);
	free(out);
	out = sink_stop(&sp);
	cr_assert(strstr(out, "messages=3 recipients=4 ") != NULL, "%s", out);
	cr_assert(strstr(out, " tls=2 ") != NULL && strstr(out, "tls_failed=0") != NULL, "%s", out);
	free(out);

	/* A certificate that cannot be read fails at start, naming the file. */
	cr_assert_eq(th_run(&out, "%s sink --listen 127.0.0.1:0 --tls-cert /nonexistent/c.pem --tls-key '%s'",
			    th_bin(), tf.key),
		     1, "%s", out);
	cr_assert(strstr(out, "/nonexistent/c.pem") != NULL, "%s", out);
	free(out);
	cr_assert_eq(th_run(&out, "%s sink --listen 127.0.0.1:0 --tls-cert '%s'", th_bin(), tf.cert), 2, "%s", out);
	free(out);
	tls_files_free(&tf);
}

/* RFC 3207 §4.2: a command pipelined after STARTTLS in the same packet
 * (a man in the middle's injection) is dropped, not obeyed over TLS. */
Test(sink_tls, command_pipelined_after_starttls_is_dropped)
{
	struct tls_files tf;
	tls_files_make(&tf);
	struct sink_proc sp;
	tls_sink_start(&sp, &tf, "");
	char *out = NULL;
	cr_assert_eq(starttls_check(&out, sp.port, "inject"), 0, "%s", out);
	free(out);
	out = sink_stop(&sp);
	cr_assert(strstr(out, "messages=1 ") != NULL && strstr(out, " tls=1 ") != NULL, "%s", out);
	free(out);
	tls_files_free(&tf);
}

Test(sink_tls, faults_and_delays_apply_over_tls)
{
	struct tls_files tf;
	tls_files_make(&tf);
	struct sink_proc sp;
	tls_sink_start(&sp, &tf, "--fault rcpt:450:100%");
	char *out = NULL;
	cr_assert_neq(th_swaks(&out, sp.port, "--tls --from a@t.test --to b@t.test"), 0, "%s", out);
	cr_assert(strstr(out, "TLS started") != NULL && strstr(out, "<~* 450 4.3.0") != NULL, "%s", out);
	free(out);
	out = sink_stop(&sp);
	cr_assert(strstr(out, "messages=0 ") && strstr(out, "faults=1 ") && strstr(out, " tls=1 "), "%s", out);
	free(out);

	tls_sink_start(&sp, &tf, "--reply-delay 300ms");
	cr_assert_eq(starttls_check(&out, sp.port, "delay 250"), 0, "%s", out);
	cr_log_info("reply-delay 300ms over TLS: %s", out);
	free(out);
	free(sink_stop(&sp));
	tls_files_free(&tf);
}

/* One message to example.com over a new session; returns the outcome's
 * tls_resumed (and asserts TLS was used). */
static int relay_once(struct relay *r)
{
	static const char msg[] = "From: a@t.test\r\nTo: x@example.com\r\nSubject: tls\r\n\r\nbody\r\n";
	struct delivery_rcpt rc[1] = { { .id = 1, .addr = "x@example.com" } };
	struct delivery_job job = { .mail_from = "a@t.test", .domain = "example.com", .msg = msg,
				    .len = sizeof(msg) - 1, .log_id = "sinktls", .rcpts = rc, .nrcpts = 1 };
	relay_deliver(r, &job);
	cr_assert_eq(rc[0].out.cls, OUT_2XX, "%d %s", rc[0].out.code, rc[0].out.text);
	cr_assert_neq(rc[0].out.tls_version[0], '\0', "delivered without TLS");
	return rc[0].out.tls_resumed;
}

/* mailferry's relay through the TLS sink: STARTTLS used, and a second
 * session resumes the first one's TLS session (the sink's one server
 * context issued the ticket); both ends count it. */
Test(sink_tls, relay_delivers_over_tls_and_resumes)
{
	log_setup(MF_LOG_WARN, 0);
	struct tls_files tf;
	tls_files_make(&tf);
	struct sink_proc sp;
	tls_sink_start(&sp, &tf, "");
	struct config c = { 0 };
	c.helo_name = xstrdup("client.test");
	c.routes = xasprintf("example.com=127.0.0.1:%d", sp.port);
	c.tls_policy = TLS_POLICY_OPPORTUNISTIC;
	c.tls_verify = 0;
	char err[256];
	struct relay *r = relay_new(&c, err, sizeof(err));
	cr_assert_not_null(r, "relay_new: %s", err);
	relay_set_idle_ms(r, 0); /* every delivery its own session */
	struct metrics *m = metrics_new();
	relay_set_metrics(r, m);
	cr_assert_eq(relay_once(r), 0, "the first session has nothing to resume");
	cr_assert_eq(relay_once(r), 1, "the second session did not resume");
	cr_assert_eq(relay_once(r), 1, "the third session did not resume");
	struct buf b;
	buf_init(&b, 1 << 20);
	metrics_render(m, &b);
	cr_assert(strstr(buf_cstr(&b), "mailferry_smtp_tls_resumed_total 2\n") != NULL, "%s", buf_cstr(&b));
	buf_cleanup(&b);
	relay_free(r);
	metrics_free(m);
	config_cleanup(&c);
	char *out = sink_stop(&sp);
	cr_assert(strstr(out, "messages=3 ") != NULL, "%s", out);
	cr_assert(strstr(out, " tls=3 tls_resumed=2 tls_failed=0") != NULL, "%s", out);
	free(out);
	tls_files_free(&tf);
}
