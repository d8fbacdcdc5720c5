/*
 * fuzz_smtp_client.c - libFuzzer harness for the SMTP client state machine
 * (relay/smtp_client.c over relay/smtp_io.c): the input is the server's
 * side of one session, played by a thread over a loopback TCP connection.
 *
 * Input: one flags byte, then reply chunks separated by NUL bytes.  Chunk
 * 0 (the banner) is written at once; chunk k once the client has sent k
 * lines, or when it has been silent for SILENCE_MS (so a chunk holding
 * part of a reply, or one that the client will only ask for after more
 * pipelined replies, still moves the session on).  After the last chunk
 * the server half-closes and reads until the client hangs up.  Flags:
 * bit 0 AUTH (plaintext allowed), bit 1 a second transaction on the same
 * session (RSET first), bit 2 the null reverse-path, bit 3 ask
 * smtp_client_alive() before the second transaction.
 *
 * No TLS: the client never tries STARTTLS (SMTP_TLS_NONE).  The RFC 5321
 * timeouts are scaled down to a few hundred milliseconds and the whole
 * session has a 3 s deadline, so no input can hang a run.  Every outcome
 * must be classified within its enums, with a code that fits its class.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relay/smtp_client.h"
#include "relay/tls.h"
#include "util/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SILENCE_MS 5
#define SERVER_MAX_MS 4000
#define INPUT_MAX 65536

static int listen_fd = -1;
static int listen_port;

struct script {
	const uint8_t *data;
	size_t size;
};

static long now_ms(void)
{
	return tls_now_ms();
}

static int send_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Writes the next chunk (up to the next NUL) from *off; returns -1 when
 * the client has gone. */
static int send_chunk(int fd, const struct script *s, size_t *off)
{
	const uint8_t *start = s->data + *off;
	const uint8_t *nul = memchr(start, 0, s->size - *off);
	size_t n = nul ? (size_t)(nul - start) : s->size - *off;
	*off += n + (nul ? 1 : 0);
	if (!nul)
		*off = s->size + 1; /* the last chunk */
	return n ? send_all(fd, start, n) : 0;
}

/* The server: one connection, replies released as described above. */
static void *server_main(void *arg)
{
	const struct script *s = arg;
	struct pollfd lp = { .fd = listen_fd, .events = POLLIN };
	if (poll(&lp, 1, SERVER_MAX_MS) <= 0)
		return NULL;
	int fd = accept(listen_fd, NULL, NULL);
	if (fd < 0)
		return NULL;
	long end = now_ms() + SERVER_MAX_MS;
	size_t off = 0, lines = 0, sent = 0;
	int open = 1;
	if (send_chunk(fd, s, &off) < 0)
		goto out;
	for (;;) {
		long left = end - now_ms();
		if (left <= 0)
			break;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, open ? SILENCE_MS : (int)left);
		if (r < 0)
			break;
		if (r > 0) {
			char buf[4096];
			ssize_t n = recv(fd, buf, sizeof(buf), 0);
			if (n <= 0)
				break;
			for (ssize_t i = 0; i < n; i++)
				lines += buf[i] == '\n';
		}
		if (!open)
			continue;
		/* Chunk k answers the client's k-th line; silence releases one. */
		while (off <= s->size && (sent < lines || r == 0)) {
			if (send_chunk(fd, s, &off) < 0)
				goto out;
			sent++;
			r = 1;
		}
		if (off > s->size) {
			shutdown(fd, SHUT_WR);
			open = 0;
		}
	}
out:
	close(fd);
	return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_IGN);
	log_setup((enum mf_log_level)(MF_LOG_ERROR + 1), 0); /* silent */
	listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sin);
	if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    listen(listen_fd, 8) != 0 || getsockname(listen_fd, (struct sockaddr *)&sin, &sl) != 0)
		abort();
	listen_port = ntohs(sin.sin_port);
	return 0;
}

/* Says which outcome broke an invariant, then aborts. */
static void broken(const struct smtp_outcome *o, const char *why)
{
	fprintf(stderr, "outcome %s: scope=%d cls=%d kind=%d code=%d enhanced=%.16s text=%.512s\n", why,
		(int)o->scope, (int)o->cls, (int)o->kind, o->code, o->enhanced, o->text);
	abort();
}

static void check_outcome(const struct smtp_outcome *o)
{
	if (memchr(o->text, 0, sizeof(o->text)) == NULL || memchr(o->enhanced, 0, sizeof(o->enhanced)) == NULL)
		abort();
	if ((unsigned)o->scope > SCOPE_RECIPIENT || (unsigned)o->cls > OUT_LOCAL ||
	    (unsigned)o->kind > KIND_INTERNAL)
		broken(o, "out of its enums");
	if (o->code != 0 && (o->code < 200 || o->code > 599))
		broken(o, "code out of range");
	/* A reply the state did not expect (a 354 to EHLO, a 250 to DATA's
	 * end that came too early) fails the session as transient: OUT_4XX
	 * with that reply's code (smtp_fail_reply()). */
	if ((o->cls == OUT_2XX && o->code / 100 != 2) || (o->cls == OUT_4XX && o->code / 100 > 4) ||
	    (o->cls == OUT_4XX && o->code == 0) || (o->cls == OUT_5XX && o->code / 100 != 5))
		broken(o, "class does not match the code");
}

static void transaction(struct smtp_client *c, unsigned flags)
{
	static const char msg[] = "From: a@example.com\r\nSubject: hi\r\n\r\nhello\r\n.dot\r\n";
	const char *rcpts[] = { "one@example.org", "two@example.org" };
	struct smtp_outcome outs[2];
	memset(outs, 0, sizeof(outs));
	struct smtp_txn t = { .mail_from = flags & 4 ? "" : "bounce+x@example.com", .msg = msg,
			      .len = sizeof(msg) - 1, .rcpts = rcpts, .outs = outs, .n = 2 };
	if (smtp_client_send(c, &t) == SMTP_SEND_DONE)
		for (int i = 0; i < 2; i++)
			check_outcome(&outs[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > INPUT_MAX)
		return 0;
	unsigned flags = data[0];
	struct script s = { data + 1, size - 1 };
	pthread_t th;
	if (pthread_create(&th, NULL, server_main, &s) != 0)
		abort();
	struct smtp_params p = {
		.helo_name = "relay.example.com",
		.host = "127.0.0.1",
		.port = listen_port,
		.tls = SMTP_TLS_NONE,
		.auth_user = flags & 1 ? "user" : NULL,
		.auth_password = flags & 1 ? "secret" : NULL,
		.auth_plaintext_ok = 1,
		.timeout_scale = 1.0 / 1500, /* 5 min -> 200 ms */
		.deadline_ms = tls_now_ms() + 3000,
		.session_id = "fuzz",
	};
	struct smtp_client *c = smtp_client_new(&p);
	struct smtp_outcome fail;
	memset(&fail, 0, sizeof(fail));
	if (smtp_client_open(c, &fail) == 0) {
		transaction(c, flags);
		if (smtp_client_ready(c) && (flags & 2) && (!(flags & 8) || smtp_client_alive(c)))
			transaction(c, flags);
		if (smtp_client_ready(c))
			smtp_client_quit(c);
	} else {
		check_outcome(&fail);
	}
	smtp_client_free(c);
	pthread_join(th, NULL);
	return 0;
}
