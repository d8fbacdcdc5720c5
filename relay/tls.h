/*
 * tls.h - TLS for SMTP, both sides: the relay's client sessions (RFC 3207
 * STARTTLS and implicit TLS on port 465) and the inbound SMTP server's
 * STARTTLS (smtpd/smtp_server.c), blocking, and the event-loop sink's
 * (sink/session.c), non-blocking.  tls.c is the only file of relay/ and
 * bounce/ that includes OpenSSL.
 *
 * A struct tls_ctx holds either the client's trust store (system CAs plus
 * tls_ca_file; tls_ctx_new) or the server's certificate chain and key
 * (tls_server_ctx_new), and is shared by every session (thread-safe after
 * creation).  A struct tls_conn wraps one socket, started as a client
 * (tls_conn_start) or a server (tls_conn_accept); every call takes an
 * absolute deadline (CLOCK_MONOTONIC milliseconds, see smtp_io.h) and
 * returns -1 with *ioerr set (IOE_TIMEOUT, IOE_CLOSED, IOE_TLS, IOE_SYS)
 * and err filled on failure.  The socket may be non-blocking (the relay:
 * waits go through poll() until the deadline) or blocking with
 * SO_RCVTIMEO/SO_SNDTIMEO (the server: OpenSSL waits in the kernel, and
 * when the socket times out, in poll() until the deadline).
 * tls_conn_free() does not close the socket.
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
/* A server context: TLS 1.2 or later, the PEM certificate chain in
 * cert_file and the PEM private key in key_file (which must match), no
 * renegotiation, the server's cipher preference.  NULL with err set
 * ("<file or step>: <OpenSSL error>") on failure. */
struct tls_ctx *tls_server_ctx_new(const char *cert_file, const char *key_file, char *err,
				   size_t errlen);
void tls_ctx_free(struct tls_ctx *c);

/*
 * Handshakes on fd.  host is sent as SNI (unless an IP literal) and is the
 * name the certificate must match.  verify != 0: a certificate that does
 * not verify (chain or name) fails the handshake; verify == 0: the result
 * is only recorded (tls_conn_info's verified).
 * port > 0 enables resumption: the client context keeps the last session
 * (host, port, verify) got, up to TLS_SESSIONS_MAX of them, until their
 * lifetime ends, and offers it on the next connection there
 * (tls_conn_resumed says whether the server took it).  port 0: none.
 */
struct tls_conn *tls_conn_start(struct tls_ctx *ctx, int fd, const char *host, int port, int verify,
				long deadline, enum io_err *ioerr, char *err, size_t errlen);
/* 1 when the handshake resumed a saved session (no certificate sent). */
int tls_conn_resumed(const struct tls_conn *t);
/* Client sessions saved for resumption now (for tests). */
int tls_ctx_sessions(struct tls_ctx *c);

/* Saved client sessions, all hosts: one per MX host and port, so this is
 * far above the MX hosts a relay talks to in a session lifetime. */
#define TLS_SESSIONS_MAX 10000
/* A saved session's DER encoding (a ticket of a few hundred bytes and
 * the peer's certificate) above this is not kept. */
#define TLS_SESSION_DER_MAX 16384
/* The server's handshake on fd (ctx from tls_server_ctx_new), after its
 * 220 to STARTTLS. */
struct tls_conn *tls_conn_accept(struct tls_ctx *ctx, int fd, long deadline, enum io_err *ioerr,
				 char *err, size_t errlen);
/*
 * The server side for an event loop (sink/session.c): no call waits.
 * tls_conn_server_new() wraps a non-blocking fd after the 220 to STARTTLS
 * (partial writes allowed, the buffer may move between retries; the
 * context's SSL_MODE_RELEASE_BUFFERS frees the record buffers of an idle
 * connection).  Each step returns TLS_STEP_DONE (for read and write with
 * *got / *put > 0 bytes), or what the socket must become before the same
 * call is tried again: TLS_STEP_WANT_READ (readable) or
 * TLS_STEP_WANT_WRITE (writable; a read may need it too, and a write a
 * read), or TLS_STEP_CLOSED (the peer's close_notify or EOF) or
 * TLS_STEP_ERROR, with err set.  Data already decrypted does not make the
 * socket readable: read until tls_conn_pending() is 0.
 */
enum tls_step { TLS_STEP_DONE, TLS_STEP_WANT_READ, TLS_STEP_WANT_WRITE, TLS_STEP_CLOSED, TLS_STEP_ERROR };
struct tls_conn *tls_conn_server_new(struct tls_ctx *ctx, int fd, char *err, size_t errlen);
enum tls_step tls_conn_handshake_step(struct tls_conn *t, char *err, size_t errlen);
enum tls_step tls_conn_read_step(struct tls_conn *t, void *p, size_t n, size_t *got, char *err, size_t errlen);
enum tls_step tls_conn_write_step(struct tls_conn *t, const void *p, size_t n, size_t *put, char *err,
				  size_t errlen);

/* Sends close_notify (RFC 8446 §6.1) without waiting for the peer's. */
void tls_conn_close(struct tls_conn *t);
void tls_conn_free(struct tls_conn *t);
/* Bytes already decrypted inside the connection: they do not make the
 * socket readable, so a caller polling the socket must read them first. */
size_t tls_conn_pending(const struct tls_conn *t);
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
