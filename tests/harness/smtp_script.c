/*
 * smtp_script.c - the scripted SMTP server (see smtp_script.h).  One
 * thread, blocking sockets with receive timeouts so that a test whose
 * client stops talking cannot hang the suite.
 */
#include "smtp_script.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "util/buf.h"
#include "util/xmalloc.h"

struct conn {
	int fd;
	SSL *ssl;
	char in[1 << 16];
	size_t len;
};

struct smtp_script {
	pthread_t th;
	int lfd;
	int port;
	const struct ss_step *steps;
	int n;
	struct ss_opts opts;
	SSL_CTX *ctx;
	struct buf transcript;
	char err[512];
	int done;
};

static void fail(struct smtp_script *s, const char *fmt, const char *a, int b)
{
	if (s->err[0] == '\0')
		snprintf(s->err, sizeof(s->err), fmt, a, b);
}

static int conn_accept(struct smtp_script *s, struct conn *c)
{
	struct pollfd p = { .fd = s->lfd, .events = POLLIN };
	if (poll(&p, 1, 15000) <= 0)
		return -1;
	c->fd = accept(s->lfd, NULL, NULL);
	if (c->fd < 0)
		return -1;
	struct timeval tv = { .tv_sec = 10 };
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	c->ssl = NULL;
	c->len = 0;
	return 0;
}

static void conn_close(struct conn *c)
{
	if (c->ssl) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static int conn_tls(struct smtp_script *s, struct conn *c)
{
	c->ssl = SSL_new(s->ctx);
	SSL_set_fd(c->ssl, c->fd);
	if (SSL_accept(c->ssl) != 1) {
		ERR_clear_error();
		return -1;
	}
	return 0;
}

static ssize_t conn_read(struct conn *c, void *p, size_t n)
{
	if (c->ssl) {
		size_t got = 0;
		return SSL_read_ex(c->ssl, p, n, &got) == 1 ? (ssize_t)got : -1;
	}
	return recv(c->fd, p, n, 0);
}

static void conn_write(struct conn *c, const char *p)
{
	size_t n = strlen(p), put = 0;
	if (c->ssl)
		SSL_write_ex(c->ssl, p, n, &put);
	else if (send(c->fd, p, n, MSG_NOSIGNAL) < 0)
		return;
}

/* One line (with its CRLF) into out; *buffered says whether it was
 * already received before this call.  Returns 0, or -1 on EOF/timeout. */
static int read_line(struct conn *c, char *out, size_t outsz, int *buffered)
{
	*buffered = 1;
	for (;;) {
		char *nl = memchr(c->in, '\n', c->len);
		if (nl) {
			size_t n = (size_t)(nl - c->in) + 1;
			snprintf(out, outsz, "%.*s", (int)n, c->in);
			memmove(c->in, c->in + n, c->len - n);
			c->len -= n;
			return 0;
		}
		*buffered = 0;
		if (c->len == sizeof(c->in))
			return -1;
		ssize_t r = conn_read(c, c->in + c->len, sizeof(c->in) - c->len);
		if (r <= 0)
			return -1;
		c->len += (size_t)r;
	}
}

static void *script_thread(void *arg)
{
	struct smtp_script *s = arg;
	struct conn c = { .fd = -1 };
	char line[4096];
	int buffered;
	if (conn_accept(s, &c) < 0) {
		fail(s, "no connection%s", "", 0);
		return NULL;
	}
	if (s->opts.implicit_tls && conn_tls(s, &c) < 0) {
		fail(s, "implicit TLS handshake failed%s", "", 0);
		conn_close(&c);
		return NULL;
	}
	for (int i = 0; i < s->n; i++) {
		const struct ss_step *st = &s->steps[i];
		if (st->flags & SS_ACCEPT) {
			conn_close(&c);
			if (conn_accept(s, &c) < 0 || (s->opts.implicit_tls && conn_tls(s, &c) < 0)) {
				fail(s, "no new connection for step %s%d", "", i);
				break;
			}
		}
		if (st->flags & SS_BODY) {
			int ok = 0;
			while (read_line(&c, line, sizeof(line), &buffered) == 0) {
				buf_puts(&s->transcript, line);
				if (strcmp(line, ".\r\n") == 0) {
					ok = 1;
					break;
				}
			}
			if (!ok) {
				fail(s, "client went away in the message body (step %s%d)", "", i);
				break;
			}
		} else if (st->expect) {
			if (read_line(&c, line, sizeof(line), &buffered) < 0) {
				fail(s, "client went away before \"%s\" (step %d)", st->expect, i);
				break;
			}
			buf_puts(&s->transcript, line);
			if (strncasecmp(line, st->expect, strlen(st->expect)) != 0) {
				fail(s, "expected \"%s\" at step %d", st->expect, i);
				break;
			}
			if ((st->flags & SS_PIPELINED) && !buffered) {
				fail(s, "\"%s\" was not pipelined (step %d)", st->expect, i);
				break;
			}
			if ((st->flags & SS_LOCKSTEP) && buffered) {
				fail(s, "\"%s\" came before the previous reply (step %d)", st->expect, i);
				break;
			}
		}
		if (st->delay_ms > 0) {
			struct timespec ts = { st->delay_ms / 1000, (st->delay_ms % 1000) * 1000000L };
			nanosleep(&ts, NULL);
		}
		if (st->reply)
			conn_write(&c, st->reply);
		if (st->flags & SS_STARTTLS) {
			if (c.len > 0)
				fail(s, "client pipelined across STARTTLS (step %s%d)", "", i);
			if (conn_tls(s, &c) < 0) {
				fail(s, "STARTTLS handshake failed at step %s%d", "", i);
				break;
			}
		}
		if (st->flags & SS_CLOSE)
			conn_close(&c);
		s->done = i + 1;
	}
	/* Keep what the client says until it hangs up. */
	while (c.fd >= 0 && read_line(&c, line, sizeof(line), &buffered) == 0)
		buf_puts(&s->transcript, line);
	conn_close(&c);
	return NULL;
}

struct smtp_script *smtp_script_start(const struct ss_step *steps, int nsteps,
				      const struct ss_opts *opts)
{
	signal(SIGPIPE, SIG_IGN);
	struct smtp_script *s = xcalloc(1, sizeof(*s));
	s->steps = steps;
	s->n = nsteps;
	if (opts)
		s->opts = *opts;
	buf_init(&s->transcript, 1 << 24);
	if (s->opts.cert_file) {
		s->ctx = SSL_CTX_new(TLS_server_method());
		if (SSL_CTX_use_certificate_chain_file(s->ctx, s->opts.cert_file) != 1 ||
		    SSL_CTX_use_PrivateKey_file(s->ctx, s->opts.key_file, SSL_FILETYPE_PEM) != 1) {
			SSL_CTX_free(s->ctx);
			buf_cleanup(&s->transcript);
			free(s);
			return NULL;
		}
	}
	s->lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				   .sin_port = htons((uint16_t)s->opts.listen_port) };
	if (s->opts.listen_ip)
		inet_pton(AF_INET, th_ip(s->opts.listen_ip), &sin.sin_addr);
	int one = 1;
	setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	socklen_t sl = sizeof(sin);
	if (bind(s->lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(s->lfd, 16) < 0 ||
	    getsockname(s->lfd, (struct sockaddr *)&sin, &sl) < 0) {
		close(s->lfd);
		SSL_CTX_free(s->ctx);
		buf_cleanup(&s->transcript);
		free(s);
		return NULL;
	}
	s->port = ntohs(sin.sin_port);
	pthread_create(&s->th, NULL, script_thread, s);
	return s;
}

int smtp_script_port(const struct smtp_script *s)
{
	return s->port;
}

int smtp_script_finish(struct smtp_script *s, char **transcript, char **err)
{
	pthread_join(s->th, NULL);
	close(s->lfd);
	int done = s->done;
	if (transcript)
		*transcript = xstrdup(buf_cstr(&s->transcript));
	if (err)
		*err = xstrdup(s->err);
	buf_cleanup(&s->transcript);
	SSL_CTX_free(s->ctx);
	free(s);
	return done;
}

int ss_make_ca(const char *dir)
{
	return th_run(NULL,
		      "cd '%s' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		      "-keyout ca.key -out ca.pem -days 2 -subj /CN=mailferry-test-ca 2>/dev/null",
		      dir) == 0 ? 0 : -1;
}

int ss_make_cert(const char *dir, const char *name, const char *host)
{
	return th_run(NULL,
		      "cd '%s' && printf 'subjectAltName=DNS:%s\\n' > %s.ext && "
		      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout %s.key "
		      "-out %s.csr -subj /CN=%s 2>/dev/null && "
		      "openssl x509 -req -in %s.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
		      "-out %s.pem -days 2 -extfile %s.ext 2>/dev/null",
		      dir, host, name, name, name, host, name, name, name) == 0 ? 0 : -1;
}
