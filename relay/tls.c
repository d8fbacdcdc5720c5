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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/ssl_err.h"
#include "util/strmap.h"
#include "util/xmalloc.h"

/* One remembered client session: the last one a (host, port, verify)
 * got, DER-encoded, so that every connection decodes its own copy and no
 * SSL_SESSION is shared between threads. */
struct tls_saved {
	struct tls_saved *prev, *next; /* the context's list, oldest first */
	unsigned char *der;
	int len;
	time_t expires;
	char key[];
};

struct tls_ctx {
	SSL_CTX *ctx;
	int client;
	pthread_mutex_t lock;          /* the session cache below */
	struct strmap *saved;          /* key -> struct tls_saved */
	struct tls_saved *oldest, *newest;
	int nsaved;
};

struct tls_conn {
	SSL *ssl;
	struct tls_ctx *ctx;
	int fd;
	int verified;
	char key[];                    /* session cache key (client, TLS_KEY_MAX); "" for none */
};

/* A client connection's session cache key: host (at most 255), port, verify. */
#define TLS_KEY_MAX 300

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

/* ---- the client's session cache (resumption, RFC 8446 §2.2, RFC 5077) - */

/* Under c->lock: unlinks and frees one entry. */
static void saved_drop(struct tls_ctx *c, struct tls_saved *e)
{
	strmap_del(c->saved, e->key);
	if (e->prev)
		e->prev->next = e->next;
	else
		c->oldest = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->newest = e->prev;
	c->nsaved--;
	OPENSSL_cleanse(e->der, (size_t)e->len);
	free(e->der);
	free(e);
}

/* OpenSSL's new-session callback: a client connection got a session (end
 * of a TLS 1.2 handshake, or a TLS 1.3 NewSessionTicket read after it).
 * Keeps it, encoded, as the one for the connection's key. */
static int saved_new_cb(SSL *ssl, SSL_SESSION *sess)
{
	struct tls_conn *t = SSL_get_app_data(ssl);
	if (t == NULL || t->key[0] == '\0' || !SSL_SESSION_is_resumable(sess))
		return 0;
	int len = i2d_SSL_SESSION(sess, NULL);
	if (len <= 0 || len > TLS_SESSION_DER_MAX)
		return 0;
	unsigned char *der = xmalloc((size_t)len), *p = der;
	if (i2d_SSL_SESSION(sess, &p) != len) {
		free(der);
		return 0;
	}
	time_t expires = (time_t)SSL_SESSION_get_time(sess) + (time_t)SSL_SESSION_get_timeout(sess);
	struct tls_ctx *c = t->ctx;
	size_t klen = strlen(t->key);
	struct tls_saved *e = xcalloc(1, sizeof(*e) + klen + 1);
	memcpy(e->key, t->key, klen + 1);
	e->der = der;
	e->len = len;
	e->expires = expires;
	pthread_mutex_lock(&c->lock);
	struct tls_saved *old = strmap_get(c->saved, e->key);
	if (old)
		saved_drop(c, old);
	if (c->nsaved >= TLS_SESSIONS_MAX)
		saved_drop(c, c->oldest);
	strmap_put(c->saved, e->key, e);
	e->prev = c->newest;
	if (c->newest)
		c->newest->next = e;
	else
		c->oldest = e;
	c->newest = e;
	c->nsaved++;
	pthread_mutex_unlock(&c->lock);
	return 0; /* we did not keep sess itself */
}

/* The saved session for key, decoded (the caller frees it), or NULL;
 * an expired one is dropped. */
static SSL_SESSION *saved_get(struct tls_ctx *c, const char *key)
{
	SSL_SESSION *sess = NULL;
	pthread_mutex_lock(&c->lock);
	struct tls_saved *e = strmap_get(c->saved, key);
	if (e && e->expires <= time(NULL)) {
		saved_drop(c, e);
		e = NULL;
	}
	if (e) {
		const unsigned char *p = e->der;
		sess = d2i_SSL_SESSION(NULL, &p, e->len);
	}
	pthread_mutex_unlock(&c->lock);
	return sess;
}

int tls_ctx_sessions(struct tls_ctx *c)
{
	pthread_mutex_lock(&c->lock);
	int n = c->nsaved;
	pthread_mutex_unlock(&c->lock);
	return n;
}

/* A struct tls_ctx around ctx (the session cache set up for a client). */
static struct tls_ctx *ctx_wrap(SSL_CTX *ctx, int client)
{
	struct tls_ctx *c = xcalloc(1, sizeof(*c));
	c->ctx = ctx;
	c->client = client;
	pthread_mutex_init(&c->lock, NULL);
	c->saved = strmap_new();
	if (client) {
		/* OpenSSL's own client cache is never looked up; we keep the
		 * sessions by (host, port, verify) ourselves. */
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(ctx, saved_new_cb);
	}
	return c;
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
	/* A session waiting for a reply keeps no record buffers (about 34 KB
	 * otherwise): a relay holds thousands (docs/benchmarks.md, RSS). */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	return ctx_wrap(ctx, 1);
}

void tls_ctx_free(struct tls_ctx *c)
{
	if (!c)
		return;
	SSL_CTX_free(c->ctx);
	while (c->oldest)
		saved_drop(c, c->oldest);
	strmap_free(c->saved);
	pthread_mutex_destroy(&c->lock);
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
		/* An idle connection keeps no record buffers (about 34 KB
		 * otherwise): the event-loop sink holds thousands. */
		SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
		return ctx_wrap(ctx, 0);
	}
	ssl_err(err, errlen, what);
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

/* A connection over fd, before its handshake, with room for a session
 * key of keycap bytes; NULL with err set. */
static struct tls_conn *conn_new(struct tls_ctx *ctx, int fd, size_t keycap, enum io_err *ioerr, char *err,
				 size_t errlen)
{
	ERR_clear_error();
	SSL *ssl = SSL_new(ctx->ctx);
	if (!ssl) {
		*ioerr = IOE_TLS;
		ssl_err(err, errlen, "SSL_new");
		return NULL;
	}
	struct tls_conn *t = xcalloc(1, sizeof(*t) + keycap);
	t->ssl = ssl;
	t->ctx = ctx;
	t->fd = fd;
	SSL_set_app_data(ssl, t);
	if (SSL_set_fd(ssl, fd) != 1) {
		*ioerr = IOE_TLS;
		ssl_err(err, errlen, "SSL_set_fd");
		tls_conn_free(t);
		return NULL;
	}
	return t;
}

struct tls_conn *tls_conn_start(struct tls_ctx *ctx, int fd, const char *host, int port, int verify,
				long deadline, enum io_err *ioerr, char *err, size_t errlen)
{
	struct tls_conn *t = conn_new(ctx, fd, TLS_KEY_MAX, ioerr, err, errlen);
	if (t == NULL)
		return NULL;
	SSL *ssl = t->ssl;
	/* The last session with this host and port, verified the same way:
	 * resuming skips the certificate check, so a session from an
	 * unverified handshake must not serve a verified one. */
	if (port > 0 && snprintf(t->key, TLS_KEY_MAX, "%s|%d|%d", host, port, verify != 0) < TLS_KEY_MAX) {
		SSL_SESSION *sess = saved_get(ctx, t->key);
		if (sess) {
			SSL_set_session(ssl, sess);
			SSL_SESSION_free(sess);
		}
	} else {
		t->key[0] = '\0';
	}
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
	struct tls_conn *t = conn_new(ctx, fd, 1, ioerr, err, errlen);
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

/* ---- the non-blocking server side (an event loop's) ---- */

struct tls_conn *tls_conn_server_new(struct tls_ctx *ctx, int fd, char *err, size_t errlen)
{
	enum io_err ioerr;
	struct tls_conn *t = conn_new(ctx, fd, 1, &ioerr, err, errlen);
	if (t == NULL)
		return NULL;
	/* The loop's output buffer may grow (and move) between the retries
	 * of one write, and a write may take part of it. */
	SSL_set_mode(t->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_set_accept_state(t->ssl);
	return t;
}

/* What a failed non-blocking call with result rc needs next. */
static enum tls_step step_failed(struct tls_conn *t, int rc, const char *what, char *err, size_t errlen)
{
	int e = SSL_get_error(t->ssl, rc);
	if (e == SSL_ERROR_WANT_READ)
		return TLS_STEP_WANT_READ;
	if (e == SSL_ERROR_WANT_WRITE)
		return TLS_STEP_WANT_WRITE;
	if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
		snprintf(err, errlen, "%s: connection closed by peer", what);
		ERR_clear_error();
		return TLS_STEP_CLOSED;
	}
	ssl_err(err, errlen, what);
	return TLS_STEP_ERROR;
}

enum tls_step tls_conn_handshake_step(struct tls_conn *t, char *err, size_t errlen)
{
	ERR_clear_error();
	int rc = SSL_do_handshake(t->ssl);
	return rc == 1 ? TLS_STEP_DONE : step_failed(t, rc, "TLS handshake", err, errlen);
}

enum tls_step tls_conn_read_step(struct tls_conn *t, void *p, size_t n, size_t *got, char *err, size_t errlen)
{
	ERR_clear_error();
	*got = 0;
	int rc = SSL_read_ex(t->ssl, p, n, got);
	return rc == 1 ? TLS_STEP_DONE : step_failed(t, rc, "TLS read", err, errlen);
}

enum tls_step tls_conn_write_step(struct tls_conn *t, const void *p, size_t n, size_t *put, char *err,
				  size_t errlen)
{
	ERR_clear_error();
	*put = 0;
	int rc = SSL_write_ex(t->ssl, p, n, put);
	return rc == 1 ? TLS_STEP_DONE : step_failed(t, rc, "TLS write", err, errlen);
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

int tls_conn_resumed(const struct tls_conn *t)
{
	return SSL_session_reused(t->ssl) == 1;
}

void tls_conn_info(const struct tls_conn *t, char *version, size_t vsz, char *cipher, size_t csz,
		   int *verified)
{
	snprintf(version, vsz, "%s", SSL_get_version(t->ssl));
	snprintf(cipher, csz, "%s", SSL_get_cipher_name(t->ssl));
	*verified = t->verified;
}
