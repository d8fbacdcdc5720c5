/*
 * th_smtp.c - raw SMTP client and swaks wrapper for tests (see th_smtp.h).
 */
#include "th_smtp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "util/buf.h"
#include "util/xmalloc.h"

int th_smtp_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int th_smtp_wait_port(int port, int timeout_ms)
{
	long start = th_now_ms();
	do {
		int fd = th_smtp_connect(port);
		if (fd >= 0) {
			char *banner = th_smtp_reply(fd, 2000);
			th_smtp_send(fd, "QUIT\r\n");
			free(th_smtp_reply(fd, 2000));
			close(fd);
			int ok = banner && strncmp(banner, "220", 3) == 0;
			free(banner);
			if (ok)
				return 0;
		}
		usleep(20000);
	} while (th_now_ms() - start < timeout_ms);
	return -1;
}

int th_smtp_send(int fd, const char *s)
{
	size_t n = strlen(s), off = 0;
	while (off < n) {
		ssize_t w = send(fd, s + off, n - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		off += (size_t)w;
	}
	return 0;
}

/* Reads one byte; 1, 0 on EOF, -1 on timeout/error. */
static int read_byte(int fd, char *c, long deadline)
{
	for (;;) {
		long left = deadline - th_now_ms();
		if (left <= 0)
			return -1;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		ssize_t n = recv(fd, c, 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == ECONNRESET)
			return 0;
		return n == 1 ? 1 : (n == 0 ? 0 : -1);
	}
}

char *th_smtp_reply(int fd, int timeout_ms)
{
	long deadline = th_now_ms() + timeout_ms;
	struct buf b;
	buf_init(&b, 1 << 20);
	size_t line_start = 0;
	for (;;) {
		char c;
		if (read_byte(fd, &c, deadline) != 1) {
			buf_cleanup(&b);
			return NULL;
		}
		buf_putc(&b, c);
		if (c == '\n') {
			/* "ddd " ends the reply, "ddd-" continues it. */
			if (b.len - line_start >= 4 && b.data[line_start + 3] == ' ')
				return buf_steal(&b, NULL);
			line_start = b.len;
		}
	}
}

char *th_smtp_replies(int fd, int n, int timeout_ms)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	for (int i = 0; i < n; i++) {
		char *r = th_smtp_reply(fd, timeout_ms);
		if (r == NULL) {
			buf_cleanup(&b);
			return NULL;
		}
		buf_puts(&b, r);
		free(r);
	}
	return buf_steal(&b, NULL);
}

int th_smtp_closed(int fd, int timeout_ms)
{
	long deadline = th_now_ms() + timeout_ms;
	char c;
	int r;
	while ((r = read_byte(fd, &c, deadline)) == 1)
		;
	return r == 0;
}

int th_swaks(char **out, int port, const char *args)
{
	return th_run(out, "swaks --server 127.0.0.1:%d --timeout 20 --helo test.local %s", port, args);
}
