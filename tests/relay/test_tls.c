/*
 * test_tls.c - relay/tls.c's server side (tls_server_ctx_new,
 * tls_conn_accept, reads and writes on a blocking socket with
 * SO_RCVTIMEO, tls_conn_pending, tls_conn_close) against its client side,
 * over a socketpair.  The inbound SMTP server's STARTTLS sessions are
 * tested in tests/bounce/test_smtp_server.c.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "harness.h"
#include "relay/tls.h"

static char *dir;
static char cert[512], key[512], other_key[512];

/* A throwaway self-signed certificate for mx.test, and a key of another pair. */
static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
	dir = th_tmpdir("tlsunit");
	cr_assert_not_null(dir);
	char *out = NULL;
	int rc = th_run(&out, "cd '%s' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
			      "-keyout key.pem -out cert.pem -subj /CN=mx.test -days 2 && "
			      "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out other.pem",
			dir);
	cr_assert_eq(rc, 0, "%s", out);
	free(out);
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	snprintf(other_key, sizeof(other_key), "%s/other.pem", dir);
}

static void teardown(void)
{
	th_rmrf(dir);
	free(dir);
}

TestSuite(tls, .init = setup, .fini = teardown);

Test(tls, server_ctx_names_what_failed)
{
	char err[512] = "";
	struct tls_ctx *c = tls_server_ctx_new(cert, key, err, sizeof(err));
	cr_assert_not_null(c, "%s", err);
	tls_ctx_free(c);
	cr_assert_null(tls_server_ctx_new("/nonexistent/cert.pem", key, err, sizeof(err)));
	cr_assert(strncmp(err, "/nonexistent/cert.pem: ", 23) == 0, "%s", err);
	cr_assert_null(tls_server_ctx_new(cert, "/nonexistent/key.pem", err, sizeof(err)));
	cr_assert(strncmp(err, "/nonexistent/key.pem: ", 22) == 0, "%s", err);
	/* A key that does not belong to the certificate. */
	cr_assert_null(tls_server_ctx_new(cert, other_key, err, sizeof(err)));
	cr_assert(strstr(err, other_key) != NULL, "%s", err);
	tls_ctx_free(NULL);
}

/* The server's end: a blocking socket with SO_RCVTIMEO, as the inbound
 * SMTP server's sessions have. */
struct server_end {
	struct tls_ctx *ctx;
	int fd;
	int timeout_ms;
	struct tls_conn *t;
	enum io_err ioerr;
	char err[256];
};

static void *accept_main(void *arg)
{
	struct server_end *s = arg;
	struct timeval tv = { .tv_sec = s->timeout_ms / 1000, .tv_usec = (s->timeout_ms % 1000) * 1000 };
	setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(s->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	s->t = tls_conn_accept(s->ctx, s->fd, tls_now_ms() + 10000, &s->ioerr, s->err, sizeof(s->err));
	return NULL;
}

/* Handshakes both ends of a socketpair: *srv blocking (timeout_ms), the
 * client non-blocking as the relay's. */
static struct tls_conn *handshake(struct server_end *srv, struct tls_ctx **cctx, int timeout_ms, int fds[2])
{
	char err[256] = "";
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
	memset(srv, 0, sizeof(*srv));
	srv->ctx = tls_server_ctx_new(cert, key, err, sizeof(err));
	cr_assert_not_null(srv->ctx, "%s", err);
	srv->fd = fds[0];
	srv->timeout_ms = timeout_ms;
	fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK);
	*cctx = tls_ctx_new(NULL, err, sizeof(err));
	cr_assert_not_null(*cctx, "%s", err);
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, accept_main, srv), 0);
	enum io_err ioerr = IOE_NONE;
	struct tls_conn *c = tls_conn_start(*cctx, fds[1], "mx.test", 0, 0, tls_now_ms() + 10000, &ioerr, err, sizeof(err));
	pthread_join(th, NULL);
	cr_assert_not_null(c, "client: %s", err);
	cr_assert_not_null(srv->t, "server: %s", srv->err);
	return c;
}

static void finish(struct server_end *srv, struct tls_ctx *cctx, struct tls_conn *c, int fds[2])
{
	tls_conn_free(c);
	tls_conn_free(srv->t);
	tls_ctx_free(cctx);
	tls_ctx_free(srv->ctx);
	close(fds[0]);
	close(fds[1]);
}

Test(tls, accept_read_write_pending)
{
	struct server_end srv;
	struct tls_ctx *cctx;
	int fds[2];
	struct tls_conn *c = handshake(&srv, &cctx, 5000, fds);
	char v[32], cipher[64];
	int verified = -1;
	tls_conn_info(srv.t, v, sizeof(v), cipher, sizeof(cipher), &verified);
	cr_assert(strncmp(v, "TLSv1.", 6) == 0 && v[6] >= '2', "%s", v);
	cr_assert(cipher[0] != '\0');
	cr_assert_eq(verified, 0, "the server asks for no client certificate");
	enum io_err ioerr;
	char err[256];
	long dl = tls_now_ms() + 5000;
	cr_assert_eq(tls_conn_write(c, "EHLO c.test\r\n", 13, dl, &ioerr, err, sizeof(err)), 0, "%s", err);
	/* A short read leaves the rest of the record inside the connection,
	 * where poll() cannot see it. */
	char buf[64];
	cr_assert_eq(tls_conn_read(srv.t, buf, 4, dl, &ioerr, err, sizeof(err)), 4, "%s", err);
	cr_assert_eq(memcmp(buf, "EHLO", 4), 0);
	cr_assert_eq(tls_conn_pending(srv.t), 9);
	cr_assert_eq(tls_conn_read(srv.t, buf, sizeof(buf), dl, &ioerr, err, sizeof(err)), 9, "%s", err);
	cr_assert_eq(memcmp(buf, " c.test\r\n", 9), 0);
	cr_assert_eq(tls_conn_pending(srv.t), 0);
	cr_assert_eq(tls_conn_write(srv.t, "250 ok\r\n", 8, dl, &ioerr, err, sizeof(err)), 0, "%s", err);
	ssize_t n = tls_conn_read(c, buf, sizeof(buf), dl, &ioerr, err, sizeof(err));
	cr_assert_eq(n, 8, "%s", err);
	cr_assert_eq(memcmp(buf, "250 ok\r\n", 8), 0);
	/* close_notify, then the server's read sees the end. */
	tls_conn_close(c);
	n = tls_conn_read(srv.t, buf, sizeof(buf), dl, &ioerr, err, sizeof(err));
	cr_assert_eq(n, -1);
	cr_assert_eq(ioerr, IOE_CLOSED, "%d %s", ioerr, err);
	finish(&srv, cctx, c, fds);
}

Test(tls, blocking_read_timeout_is_a_timeout)
{
	struct server_end srv;
	struct tls_ctx *cctx;
	int fds[2];
	struct tls_conn *c = handshake(&srv, &cctx, 200, fds);
	enum io_err ioerr = IOE_NONE;
	char err[256] = "", buf[16];
	long t0 = tls_now_ms();
	/* SO_RCVTIMEO (200 ms) ends the blocking read; the wait then goes on
	 * until the deadline, and no further. */
	ssize_t n = tls_conn_read(srv.t, buf, sizeof(buf), t0 + 1000, &ioerr, err, sizeof(err));
	long took = tls_now_ms() - t0;
	cr_assert_eq(n, -1);
	cr_assert_eq(ioerr, IOE_TIMEOUT, "%d %s", ioerr, err);
	cr_assert_geq(took, 1000);
	cr_assert_lt(took, 5000);
	finish(&srv, cctx, c, fds);
}

Test(tls, accept_of_plaintext_fails)
{
	int fds[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
	struct server_end srv = { .fd = fds[0], .timeout_ms = 2000 };
	srv.ctx = tls_server_ctx_new(cert, key, srv.err, sizeof(srv.err));
	cr_assert_not_null(srv.ctx, "%s", srv.err);
	/* A client that answers 220 with more SMTP instead of a ClientHello. */
	const char *junk = "MAIL FROM:<injected@evil.example>\r\n";
	cr_assert_eq(write(fds[1], junk, strlen(junk)), (ssize_t)strlen(junk));
	accept_main(&srv);
	cr_assert_null(srv.t);
	cr_assert_eq(srv.ioerr, IOE_TLS, "%d %s", srv.ioerr, srv.err);
	cr_assert(strncmp(srv.err, "TLS handshake", 13) == 0, "%s", srv.err);
	tls_ctx_free(srv.ctx);
	close(fds[0]);
	close(fds[1]);
}
