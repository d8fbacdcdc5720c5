/*
 * Integration tests for the HTTP server's defences against one client
 * taking it over (api/gate.c, api/server.c), against a real
 * "mailferry serve" over real sockets: many trickling connections from
 * one address do not starve another address's POST /v1/messages nor the
 * probes on admin_listen; the per-address limit refuses the next
 * connection; a garbage request line gets 400 and a slow head 408 at
 * once; an over-limit Content-Length gets 413 without a byte of body;
 * libmicrohttpd's own messages come out as JSON log lines.
 *
 * The other client binds 127.0.0.2 (loopback is a /8), so that it is a
 * different address from the 127.0.0.1 the attack comes from.  Every wait
 * is bounded by a receive timeout.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "api_helpers.h"
#include "harness.h"

/* A TCP connection from src (NULL: any) to 127.0.0.1:port; -1 on failure. */
static int conn_from(const char *src, int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct timeval tv = { .tv_sec = 10 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	struct sockaddr_in sa = { .sin_family = AF_INET };
	if (src) {
		inet_pton(AF_INET, src, &sa.sin_addr);
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
			close(fd);
			return -1;
		}
	}
	sa.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int send_all(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
		if (w <= 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads until the peer closes, the buffer is full or the 10 s receive
 * timeout; returns the HTTP status of the answer, or -1. */
static int read_status(int fd, char *buf, size_t bufsz)
{
	size_t len = 0;
	buf[0] = '\0';
	while (len + 1 < bufsz) {
		ssize_t n = recv(fd, buf + len, bufsz - 1 - len, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		char *end = strstr(buf, "\r\n\r\n");
		const char *cl = strstr(buf, "Content-Length: ");
		if (end && cl && len >= (size_t)(end + 4 - buf) + strtoul(cl + 16, NULL, 10))
			break;
	}
	int status;
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
		return -1;
	return status;
}

/* One request on a new connection from src; returns the status or -1. */
static int request_from(const char *src, int port, const char *req, char *buf, size_t bufsz)
{
	int fd = conn_from(src, port);
	if (fd < 0)
		return -1;
	int st = send_all(fd, req, strlen(req)) == 0 ? read_status(fd, buf, bufsz) : -1;
	close(fd);
	return st;
}

static void raise_fd_limit(void)
{
	struct rlimit rl;
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	cr_assert_geq(rl.rlim_max, 5000, "the test needs 5000 file descriptors (hard limit %lu)",
		      (unsigned long)rl.rlim_max);
	rl.rlim_cur = rl.rlim_max;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

static const char send_body[] = "{\"from\":\"a@shop.example\",\"to\":\"b@example.net\",\"subject\":\"S\",\"text\":\"x\"}";

static char *send_request(const struct api_srv *s)
{
	char *req = NULL;
	if (asprintf(&req,
		     "POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
		     "Content-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
		     s->key, strlen(send_body), send_body) < 0)
		return NULL;
	return req;
}

/* The attack: 4,300 sockets from one address, each holding a
 * one-octet head.  Another address still sends and probes. */
Test(http_limits, trickling_clients_cannot_starve_another_address)
{
	raise_fd_limit();
	struct api_srv s;
	api_srv_start(&s, NULL, NULL);
	enum { N = 4300 };
	int *fds = malloc(sizeof(int) * N);
	int opened = 0;
	for (int i = 0; i < N; i++) {
		fds[i] = conn_from(NULL, s.p->port);
		if (fds[i] >= 0) {
			opened++;
			/* Refused ones may already be closed: ignore errors. */
			send(fds[i], "G", 1, MSG_NOSIGNAL);
		}
	}
	cr_assert_gt(opened, 4096, "only %d connections could be made", opened);
	char buf[4096];
	char *req = send_request(&s);
	int st = request_from("127.0.0.2", s.p->port, req, buf, sizeof(buf));
	cr_expect_eq(st, 202, "POST /v1/messages from 127.0.0.2 under attack: %d %s", st, buf);
	st = request_from("127.0.0.2", s.p->port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", buf,
			  sizeof(buf));
	cr_expect_eq(st, 200, "GET /healthz from 127.0.0.2 under attack: %d %s", st, buf);
	free(req);
	for (int i = 0; i < N; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
	api_srv_stop(&s, 1);
}

/* admin_listen answers the probes from the very address that holds every
 * connection it may have on http_listen, and nothing else.  That address is
 * 127.0.0.3: th_serve_start's readiness probe came from 127.0.0.1 and keeps
 * its place there until the server sees it close, which under TSan on a
 * loaded machine can be after the test has taken its 8. */
Test(http_limits, admin_listen_answers_probes_under_attack)
{
	int admin = th_free_port();
	char env_admin[64];
	snprintf(env_admin, sizeof(env_admin), "MAILFERRY_ADMIN_LISTEN=127.0.0.1:%d", admin);
	const char *const env[] = { env_admin, "MAILFERRY_HTTP_CONNECTIONS_PER_ADDRESS=8", NULL };
	struct api_srv s;
	api_srv_start(&s, NULL, env);
	int fds[8];
	for (int i = 0; i < 8; i++) {
		fds[i] = conn_from("127.0.0.3", s.p->port);
		cr_assert_geq(fds[i], 0);
		cr_assert_eq(send_all(fds[i], "G", 1), 0);
	}
	char buf[8192];
	int st = request_from("127.0.0.3", s.p->port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf));
	cr_expect_eq(st, 429, "http_listen is full for 127.0.0.3: %d %s", st, buf);
	const char *probes[] = { "/healthz", "/readyz", "/metrics" };
	for (int i = 0; i < 3; i++) {
		char req[256];
		snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", probes[i]);
		st = request_from("127.0.0.3", admin, req, buf, sizeof(buf));
		cr_expect_eq(st, 200, "admin_listen %s: %d %s", probes[i], st, buf);
	}
	char *req = send_request(&s);
	st = request_from(NULL, admin, req, buf, sizeof(buf));
	cr_expect_eq(st, 404, "the admin listener has no API: %d", st);
	free(req);
	for (int i = 0; i < 8; i++)
		close(fds[i]);
	api_srv_stop(&s, 1);
}

/* The (N+1)th connection from one address gets 429; another address and,
 * once one closes, the same address are served again. */
Test(http_limits, per_address_limit_refuses_the_next_connection)
{
	const char *const env[] = { "MAILFERRY_HTTP_CONNECTIONS_PER_ADDRESS=4", NULL };
	struct api_srv s;
	api_srv_start(&s, NULL, env);
	/* From 127.0.0.3: th_serve_start's readiness probe came from
	 * 127.0.0.1, and its place is given back only when the server has
	 * seen it close, which may come after these connections. */
	int fds[4];
	for (int i = 0; i < 4; i++) {
		fds[i] = conn_from("127.0.0.3", s.p->port);
		cr_assert_geq(fds[i], 0);
	}
	char buf[8192];
	const char *health = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	int st = request_from("127.0.0.3", s.p->port, health, buf, sizeof(buf));
	cr_assert_eq(st, 429, "the fifth connection: %d %s", st, buf);
	cr_assert(strstr(buf, "\"code\":\"rate_limited\"") != NULL, "%s", buf);
	st = request_from("127.0.0.2", s.p->port, health, buf, sizeof(buf));
	cr_assert_eq(st, 200, "another address: %d %s", st, buf);
	/* A finished request gives its place back (once the server has
	 * closed it: bounded retries). */
	cr_assert_eq(send_all(fds[0], health, strlen(health)), 0);
	cr_assert_eq(read_status(fds[0], buf, sizeof(buf)), 200);
	close(fds[0]);
	long t0 = th_now_ms();
	do {
		st = request_from("127.0.0.3", s.p->port, health, buf, sizeof(buf));
		if (st != 200)
			usleep(50 * 1000);
	} while (st != 200 && th_now_ms() - t0 < 5000);
	cr_assert_eq(st, 200, "the place of a closed connection was not given back: %d", st);
	for (int i = 1; i < 4; i++)
		close(fds[i]);
	api_srv_stop(&s, 1);
}

/* Garbage gets 400 at once, whatever it is: no space, a NUL first, TLS
 * spoken to the plain port, a line that never ends. */
Test(http_limits, garbage_request_line_gets_400)
{
	struct api_srv s;
	api_srv_start(&s, NULL, NULL);
	static const struct {
		const char *what;
		const char *bytes;
		size_t len;
	} cases[] = {
		{ "no space", "GARBAGE\r\n\r\n", 11 },
		{ "NUL first", "\0\1\2 x y\r\n\r\n", 11 },
		{ "TLS ClientHello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11 },
		{ "endless method", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 56 },
		{ "bad version", "GET / HTTX/1.1\r\n\r\n", 18 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int fd = conn_from(NULL, s.p->port);
		cr_assert_geq(fd, 0);
		cr_assert_eq(send_all(fd, cases[i].bytes, cases[i].len), 0);
		char buf[4096];
		int st = read_status(fd, buf, sizeof(buf));
		close(fd);
		cr_expect_eq(st, 400, "%s: %d %s", cases[i].what, st, buf);
	}
	api_srv_stop(&s, 1);
}

/* A head still incomplete at http_header_timeout gets 408, however often
 * a byte arrives. */
Test(http_limits, slow_head_gets_408_at_the_deadline)
{
	const char *const env[] = { "MAILFERRY_HTTP_HEADER_TIMEOUT=1s", NULL };
	struct api_srv s;
	api_srv_start(&s, NULL, env);
	int fd = conn_from(NULL, s.p->port);
	cr_assert_geq(fd, 0);
	const char *head = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	int closed = 0;
	for (const char *p = head; *p && !closed; p++) {
		if (send(fd, p, 1, MSG_NOSIGNAL) != 1)
			closed = 1;
		usleep(100 * 1000);
	}
	char buf[4096];
	int st = read_status(fd, buf, sizeof(buf));
	close(fd);
	cr_assert_eq(st, 408, "%d %s", st, buf);
	cr_assert(strstr(buf, "\"code\":\"request_timeout\"") != NULL, "%s", buf);
	api_srv_stop(&s, 1);
}

/* 413 on the declared length alone: no body is sent, none is awaited. */
Test(http_limits, over_limit_content_length_gets_413_without_body)
{
	struct api_srv s;
	api_srv_start(&s, NULL, NULL);
	const char *lengths[] = { "20000000000", "209715200" };
	for (int i = 0; i < 2; i++) {
		char req[512], buf[4096];
		snprintf(req, sizeof(req),
			 "POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
			 "Content-Type: application/json\r\nContent-Length: %s\r\n\r\n",
			 s.key, lengths[i]);
		int st = request_from(NULL, s.p->port, req, buf, sizeof(buf));
		cr_expect_eq(st, 413, "Content-Length %s: %d %s", lengths[i], st, buf);
		cr_expect(strstr(buf, "\"code\":\"payload_too_large\"") != NULL, "%s", buf);
	}
	api_srv_stop(&s, 1);
}

/* libmicrohttpd's own messages are log lines like every other: with
 * log_format = json every line of the log parses as a JSON object. */
Test(http_limits, server_messages_are_json_log_lines)
{
	const char *const env[] = { "MAILFERRY_LOG_FORMAT=json", NULL };
	struct api_srv s;
	api_srv_start(&s, NULL, env);
	/* A request whose body never arrives: "closed ... with incomplete
	 * request" from libmicrohttpd. */
	for (int i = 0; i < 3; i++) {
		int fd = conn_from(NULL, s.p->port);
		cr_assert_geq(fd, 0);
		char req[512];
		snprintf(req, sizeof(req),
			 "POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
			 "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"from\"",
			 s.key);
		cr_assert_eq(send_all(fd, req, strlen(req)), 0);
		usleep(100 * 1000);
		close(fd);
	}
	char *log = NULL;
	long t0 = th_now_ms();
	for (;;) {
		free(log);
		log = NULL;
		th_run(&log, "cat '%s'", s.p->log);
		if ((log && strstr(log, "http_server_message")) || th_now_ms() - t0 > 10000)
			break;
		usleep(100 * 1000);
	}
	cr_assert(log && strstr(log, "http_server_message"), "no server message logged:\n%s", log ? log : "");
	int lines = 0;
	for (char *line = log; *line;) {
		char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) : strlen(line);
		if (nl)
			*nl = '\0';
		if (n > 0) {
			json_error_t jerr;
			json_t *j = json_loadb(line, n, 0, &jerr);
			cr_expect(j != NULL && json_is_object(j), "not a JSON log line: %.*s", (int)n, line);
			if (j && strstr(line, "http_server_message"))
				cr_expect_str_eq(json_string_value(json_object_get(j, "event")), "http_server_message");
			json_decref(j);
			lines++;
		}
		line += n + (nl != NULL);
	}
	cr_assert_gt(lines, 0);
	free(log);
	api_srv_stop(&s, 1);
}
