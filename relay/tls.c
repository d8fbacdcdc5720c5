/*
 * tls.c - OpenSSL sessions for SMTP, client and server (see tls.h).
 *
 * On a non-blocking socket (the relay) SSL_read/SSL_write/SSL_connect are
 * retried after poll() whenever OpenSSL asks to read or write, until the
 * caller's deadline; on a blocking socket with SO_RCVTIMEO/SO_SNDTIMEO (the
 * inbound server) OpenSSL waits in the kernel, and a socket timeout comes
 * back as SSL_ERROR_WANT_READ/WRITE, so the wait goes on in poll() until
 * the deadline (or, reported as a system error with EAGAIN, is
 * IOE_TIMEOUT at once).
 * Hostname checking uses X509_VERIFY_PARAM_set1_host (RFC 6125 rules as
 * OpenSSL implements them); with verify off the handshake always proceeds
 * and the verification result is only reported, which is what
 * opportunistic TLS (RFC 3207 §4.1, RFC 7435) needs.  The server side
 * offers TLS 1.2 or later with its own cipher preference and refuses
 * renegotiation (a client-initiated renegotiation costs the server a
 * handshake per request).
 */
#include "relay/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/xmalloc.h"

struct tls_ctx {
	SSL_CTX *ctx;
};

struct tls_conn {
	SSL *ssl;
	int fd;
	int verified;
};

long tls_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int io_wait(int fd, short events, long deadline, enum io_err *ioerr, char *err, size_t errlen)
{
	for (;;) {
		long left = deadline - tls_now_ms();
		if (left <= 0) {
			*ioerr = IOE_TIMEOUT;
			snprintf(err, errlen, "timed out");
			return -1;
		}
		struct pollfd pfd = { .fd = fd, .events = events };
		int rc = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (rc > 0)
			return 0;
		if (rc < 0 && errno != EINTR) {
			*ioerr = IOE_SYS;
			snprintf(err, errlen, "poll: %s", strerror(errno));
			return -1;
		}
	}
}

/* The first queued OpenSSL error as text (or what). */
static void ssl_err(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256] = "";
	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	snprintf(err, errlen, "%s%s%s", what, *buf ? ": " : "", buf);
	ERR_clear_error();
}

struct tls_ctx *tls_ctx_new(const char *ca_file, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		ssl_err(err, errlen, "SSL_CTX_new");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* tls_ca_file adds to the system's CAs (README), it does not replace
	 * them: a private relay's CA must not make public MX certificates fail. */
	if (ca_file && SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
		ssl_err(err, errlen, "cannot load tls_ca_file");
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		ssl_err(err, errlen, "cannot load system CAs");
		SSL_CTX_free(ctx);
		return NULL;
	}
	ERR_clear_error(); /* a missing default CA file or directory is no error */
	struct tls_ctx *c = xmalloc(sizeof(*c));
	c->ctx = ctx;
	return c;
}

void tls_ctx_free(struct tls_ctx *c)
{
	if (!c)
		return;
	SSL_CTX_free(c->ctx);
	free(c);
}

struct tls_ctx *tls_server_ctx_new(const char *cert_file, const char *key_file, char *err,
				   size_t errlen)
{
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	const char *what = "SSL_CTX_new";
	if (ctx && SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 1 && (what = cert_file) &&
	    SSL_CTX_use_certificate_chain_file(ctx, cert_file) == 1 && (what = key_file) &&
	    SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) == 1 &&
	    SSL_CTX_check_private_key(ctx) == 1) {
		SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
		struct tls_ctx *c = xmalloc(sizeof(*c));
		c->ctx = ctx;
		return c;
	}
	char e[256];
	ERR_error_string_n(ERR_get_error(), e, sizeof(e));
	snprintf(err, errlen, "%s: %s", what, e);
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

/* Waits for what OpenSSL asked for after a failed call with result rc.
 * Returns 0 to retry, or -1 (error set).  errno is the one the call left. */
static int tls_retry(struct tls_conn *t, int rc, long deadline, enum io_err *ioerr, char *err,
		     size_t errlen, const char *what)
{
	int saved = errno;
	int e = SSL_get_error(t->ssl, rc);
	if (e == SSL_ERROR_WANT_READ)
		return io_wait(t->fd, POLLIN, deadline, ioerr, err, errlen);
	if (e == SSL_ERROR_WANT_WRITE)
		return io_wait(t->fd, POLLOUT, deadline, ioerr, err, errlen);
	if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && (saved == EAGAIN || saved == EWOULDBLOCK)) {
		/* A blocking socket's SO_RCVTIMEO/SO_SNDTIMEO ran out and
		 * OpenSSL called it a system error. */
		*ioerr = IOE_TIMEOUT;
		snprintf(err, errlen, "%s: timed out", what);
		return -1;
	}
	if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
		*ioerr = IOE_CLOSED;
		snprintf(err, errlen, "%s: connection closed by peer", what);
		return -1;
	}
	*ioerr = IOE_TLS;
	ssl_err(err, errlen, what);
	return -1;
}

static int is_ip_literal(const char *host)
{
	unsigned char tmp[16];
	return inet_pton(AF_INET, host, tmp) == 1 || inet_pton(AF_INET6, host, tmp) == 1;
}

/* A connection over fd, before its handshake; NULL with err set. */
static struct tls_conn *conn_new(struct tls_ctx *ctx, int fd, enum io_err *ioerr, char *err, size_t errlen)
{
	ERR_clear_error();
	SSL *ssl = SSL_new(ctx->ctx);
	if (!ssl) {
		*ioerr = IOE_TLS;
		ssl_err(err, errlen, "SSL_new");
		return NULL;
	}
	struct tls_conn *t = xcalloc(1, sizeof(*t));
	t->ssl = ssl;
	t->fd = fd;
	if (SSL_set_fd(ssl, fd) != 1) {
		*ioerr = IOE_TLS;
		ssl_err(err, errlen, "SSL_set_fd");
		tls_conn_free(t);
		return NULL;
	}
	return t;
}

struct tls_conn *tls_conn_start(struct tls_ctx *ctx, int fd, const char *host, int verify,
				long deadline, enum io_err *ioerr, char *err, size_t errlen)
{
	struct tls_conn *t = conn_new(ctx, fd, ioerr, err, errlen);
	if (t == NULL)
		return NULL;
	SSL *ssl = t->ssl;
	X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
	X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	int hostok = is_ip_literal(host) ? X509_VERIFY_PARAM_set1_ip_asc(param, host)
					 : X509_VERIFY_PARAM_set1_host(param, host, 0);
	if (!is_ip_literal(host))
		SSL_set_tlsext_host_name(ssl, host);
	SSL_set_verify(ssl, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	if (hostok != 1) {
		*ioerr = IOE_TLS;
		ssl_err(err, errlen, "cannot set the host name to verify");
		tls_conn_free(t);
		return NULL;
	}
	for (;;) {
		int rc = SSL_connect(ssl);
		if (rc == 1)
			break;
		if (tls_retry(t, rc, deadline, ioerr, err, errlen, "TLS handshake") < 0) {
			long vr = SSL_get_verify_result(ssl);
			if (vr != X509_V_OK && *ioerr == IOE_TLS)
				snprintf(err, errlen, "TLS handshake: certificate verification failed: %s",
					 X509_verify_cert_error_string(vr));
			tls_conn_free(t);
			return NULL;
		}
	}
	X509 *peer = SSL_get1_peer_certificate(ssl);
	t->verified = peer != NULL && SSL_get_verify_result(ssl) == X509_V_OK;
	X509_free(peer);
	return t;
}

struct tls_conn *tls_conn_accept(struct tls_ctx *ctx, int fd, long deadline, enum io_err *ioerr,
				 char *err, size_t errlen)
{
	struct tls_conn *t = conn_new(ctx, fd, ioerr, err, errlen);
	if (t == NULL)
		return NULL;
	for (;;) {
		errno = 0;
		int rc = SSL_accept(t->ssl);
		if (rc == 1)
			return t;
		if (tls_retry(t, rc, deadline, ioerr, err, errlen, "TLS handshake") < 0) {
			tls_conn_free(t);
			return NULL;
		}
	}
}

void tls_conn_close(struct tls_conn *t)
{
	if (t)
		SSL_shutdown(t->ssl);
	ERR_clear_error();
}

size_t tls_conn_pending(const struct tls_conn *t)
{
	int n = SSL_pending(t->ssl);
	return n > 0 ? (size_t)n : 0;
}

void tls_conn_free(struct tls_conn *t)
{
	if (!t)
		return;
	SSL_free(t->ssl);
	free(t);
}

ssize_t tls_conn_read(struct tls_conn *t, void *p, size_t n, long deadline, enum io_err *ioerr,
		      char *err, size_t errlen)
{
	ERR_clear_error();
	for (;;) {
		size_t got = 0;
		errno = 0;
		int rc = SSL_read_ex(t->ssl, p, n, &got);
		if (rc == 1)
			return (ssize_t)got;
		if (tls_retry(t, rc, deadline, ioerr, err, errlen, "TLS read") < 0)
			return -1;
	}
}

int tls_conn_write(struct tls_conn *t, const void *p, size_t n, long deadline, enum io_err *ioerr,
		   char *err, size_t errlen)
{
	ERR_clear_error();
	const char *c = p;
	while (n > 0) {
		size_t put = 0;
		errno = 0;
		int rc = SSL_write_ex(t->ssl, c, n, &put);
		if (rc == 1) {
			c += put;
			n -= put;
			continue;
		}
		if (tls_retry(t, rc, deadline, ioerr, err, errlen, "TLS write") < 0)
			return -1;
	}
	return 0;
}

void tls_conn_info(const struct tls_conn *t, char *version, size_t vsz, char *cipher, size_t csz,
		   int *verified)
{
	snprintf(version, vsz, "%s", SSL_get_version(t->ssl));
	snprintf(cipher, csz, "%s", SSL_get_cipher_name(t->ssl));
	*verified = t->verified;
}
