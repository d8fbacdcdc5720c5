/*
 * smtp_io.c - sockets, buffered reply reading and TLS for one SMTP
 * connection (see smtp_io.h).  The socket is non-blocking and every wait
 * goes through poll() with the caller's deadline.
 */
#include "relay/smtp_io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/limits.h"
#include "util/xmalloc.h"

struct smtp_io {
	int fd;
	struct tls_conn *tls;
	struct buf in;  /* received, not yet parsed */
};

/* One non-blocking connect attempt to ai; returns the fd or -1. */
static int connect_one(const struct addrinfo *ai, long deadline, enum io_err *ioerr, char *err,
		       size_t errlen)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			ai->ai_protocol);
	if (fd < 0) {
		*ioerr = IOE_SYS;
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS) {
		*ioerr = IOE_SYS;
		snprintf(err, errlen, "connect: %s", strerror(errno));
		close(fd);
		return -1;
	}
	if (io_wait(fd, POLLOUT, deadline, ioerr, err, errlen) < 0) {
		snprintf(err, errlen, "connect: timed out");
		close(fd);
		return -1;
	}
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
	if (soerr != 0) {
		*ioerr = IOE_SYS;
		snprintf(err, errlen, "connect: %s", strerror(soerr));
		close(fd);
		return -1;
	}
	return fd;
}

int smtp_io_connect(const char *host, int port, long deadline, struct smtp_io **out, char *addr,
		    size_t addrsz, enum io_err *ioerr, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	char portstr[16];
	snprintf(portstr, sizeof(portstr), "%d", port);
	int rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc != 0) {
		*ioerr = IOE_DNS;
		snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
		return -1;
	}
	int fd = -1;
	char why[256] = "no address";
	for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
		char num[INET6_ADDRSTRLEN] = "?";
		getnameinfo(ai->ai_addr, ai->ai_addrlen, num, sizeof(num), NULL, 0, NI_NUMERICHOST);
		fd = connect_one(ai, deadline, ioerr, why, sizeof(why));
		snprintf(addr, addrsz, "%s", num);
		if (fd < 0 && *ioerr == IOE_TIMEOUT)
			break;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(err, errlen, "%s[%s]:%d: %s", host, addr, port, why);
		return -1;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct smtp_io *io = xcalloc(1, sizeof(*io));
	io->fd = fd;
	/* Room for a whole reply plus a read's worth of what follows it. */
	buf_init(&io->in, MF_SMTP_REPLY_MAX + MF_SMTP_IO_READ);
	*out = io;
	return 0;
}

void smtp_io_free(struct smtp_io *io)
{
	if (!io)
		return;
	tls_conn_free(io->tls);
	close(io->fd);
	buf_cleanup(&io->in);
	free(io);
}

/* Reads what is available (waiting until the deadline) into io->in. */
static int fill(struct smtp_io *io, long deadline, enum io_err *ioerr, char *err, size_t errlen)
{
	char tmp[MF_SMTP_IO_READ];
	ssize_t n;
	if (io->tls) {
		n = tls_conn_read(io->tls, tmp, sizeof(tmp), deadline, ioerr, err, errlen);
		if (n < 0)
			return -1;
	} else {
		for (;;) {
			n = read(io->fd, tmp, sizeof(tmp));
			if (n > 0)
				break;
			if (n == 0) {
				*ioerr = IOE_CLOSED;
				snprintf(err, errlen, "connection closed by peer");
				return -1;
			}
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				*ioerr = IOE_SYS;
				snprintf(err, errlen, "read: %s", strerror(errno));
				return -1;
			}
			if (io_wait(io->fd, POLLIN, deadline, ioerr, err, errlen) < 0)
				return -1;
		}
	}
	if (buf_append(&io->in, tmp, (size_t)n) < 0) {
		*ioerr = IOE_PROTOCOL;
		snprintf(err, errlen, "reply longer than %d octets", MF_SMTP_REPLY_MAX);
		return -1;
	}
	return 0;
}

int smtp_io_read_reply(struct smtp_io *io, struct smtp_reply *r, long deadline,
		       enum io_err *ioerr, char *err, size_t errlen)
{
	for (;;) {
		size_t used = 0;
		enum smtp_parse p = smtp_reply_parse(r, io->in.data ? io->in.data : "", io->in.len,
						     &used, err, errlen);
		if (p == SMTP_PARSE_DONE) {
			buf_consume(&io->in, used);
			return 0;
		}
		if (p == SMTP_PARSE_ERROR) {
			*ioerr = IOE_PROTOCOL;
			return -1;
		}
		if (fill(io, deadline, ioerr, err, errlen) < 0)
			return -1;
	}
}

int smtp_io_write(struct smtp_io *io, const void *p, size_t n, long deadline, enum io_err *ioerr,
		  char *err, size_t errlen)
{
	if (io->tls)
		return tls_conn_write(io->tls, p, n, deadline, ioerr, err, errlen);
	const char *c = p;
	while (n > 0) {
		ssize_t w = send(io->fd, c, n, MSG_NOSIGNAL);
		if (w > 0) {
			c += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (io_wait(io->fd, POLLOUT, deadline, ioerr, err, errlen) < 0)
				return -1;
			continue;
		}
		*ioerr = (w < 0 && (errno == EPIPE || errno == ECONNRESET)) ? IOE_CLOSED : IOE_SYS;
		snprintf(err, errlen, "write: %s", w < 0 ? strerror(errno) : "nothing written");
		return -1;
	}
	return 0;
}

size_t smtp_io_pending(const struct smtp_io *io)
{
	return io->in.len;
}

int smtp_io_starttls(struct smtp_io *io, struct tls_ctx *ctx, const char *host, int port, int verify,
		     long deadline, enum io_err *ioerr, char *err, size_t errlen)
{
	io->tls = tls_conn_start(ctx, io->fd, host, port, verify, deadline, ioerr, err, errlen);
	return io->tls ? 0 : -1;
}

int smtp_io_tls_resumed(const struct smtp_io *io)
{
	return io->tls ? tls_conn_resumed(io->tls) : 0;
}

int smtp_io_tls_info(const struct smtp_io *io, char *version, size_t vsz, char *cipher,
		     size_t csz, int *verified)
{
	if (!io->tls)
		return 0;
	tls_conn_info(io->tls, version, vsz, cipher, csz, verified);
	return 1;
}

int smtp_io_idle_broken(struct smtp_io *io)
{
	if (io->in.len > 0)
		return 1;
	struct pollfd pfd = { .fd = io->fd, .events = POLLIN };
	/* An idle SMTP server says nothing; readable means EOF, a 421 or junk. */
	return poll(&pfd, 1, 0) != 0;
}
