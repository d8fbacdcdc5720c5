/*
 * tls.h - the client side of TLS for SMTP (RFC 3207 STARTTLS and implicit
 * TLS on port 465), the only relay file that includes OpenSSL.
 *
 * A struct tls_ctx holds the trust store (system CAs plus tls_ca_file) and
 * is shared by every session of a relay (thread-safe after creation).  A
 * struct tls_conn wraps one non-blocking socket; every call takes an
 * absolute deadline (CLOCK_MONOTONIC milliseconds, see smtp_io.h) and
 * returns -1 with *ioerr set (IOE_TIMEOUT, IOE_CLOSED, IOE_TLS, IOE_SYS)
 * and err filled on failure.  tls_conn_free() does not close the socket.
 */
#ifndef MF_RELAY_TLS_H
#define MF_RELAY_TLS_H

#include <stddef.h>
#include <sys/types.h>

enum io_err { IOE_NONE, IOE_TIMEOUT, IOE_CLOSED, IOE_SYS, IOE_TLS, IOE_DNS, IOE_PROTOCOL };

struct tls_ctx;
struct tls_conn;

/* The system's default trust store, plus ca_file's CAs unless NULL. */
struct tls_ctx *tls_ctx_new(const char *ca_file, char *err, size_t errlen);
void tls_ctx_free(struct tls_ctx *c);

/*
 * Handshakes on fd.  host is sent as SNI (unless an IP literal) and is the
 * name the certificate must match.  verify != 0: a certificate that does
 * not verify (chain or name) fails the handshake; verify == 0: the result
 * is only recorded (tls_conn_info's verified).
 */
struct tls_conn *tls_conn_start(struct tls_ctx *ctx, int fd, const char *host, int verify,
				long deadline, enum io_err *ioerr, char *err, size_t errlen);
void tls_conn_free(struct tls_conn *t);
/* Returns bytes read (> 0) or -1. */
ssize_t tls_conn_read(struct tls_conn *t, void *p, size_t n, long deadline, enum io_err *ioerr,
		      char *err, size_t errlen);
/* Writes all n bytes; returns 0 or -1. */
int tls_conn_write(struct tls_conn *t, const void *p, size_t n, long deadline, enum io_err *ioerr,
		   char *err, size_t errlen);
/* Protocol version ("TLSv1.3"), cipher name, and whether chain and name verified. */
void tls_conn_info(const struct tls_conn *t, char *version, size_t vsz, char *cipher, size_t csz,
		   int *verified);

/* Milliseconds on the monotonic clock. */
long tls_now_ms(void);
/* Waits until fd is readable (events POLLIN) or writable (POLLOUT) or the
 * deadline passes; returns 0, or -1 with *ioerr set. */
int io_wait(int fd, short events, long deadline, enum io_err *ioerr, char *err, size_t errlen);

#endif
