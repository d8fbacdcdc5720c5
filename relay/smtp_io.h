/*
 * smtp_io.h - one SMTP connection's bytes: connect (every address of a
 * host, with a deadline), buffered reading of whole replies, writing, and
 * the switch to TLS.  It knows replies but not the protocol's states.
 *
 * Deadlines are absolute CLOCK_MONOTONIC milliseconds (tls_now_ms()).
 * Functions return 0 or -1; on -1, *ioerr (see tls.h) tells the class of
 * failure and err the detail.  smtp_io_free() closes the socket.
 */
#ifndef MF_RELAY_SMTP_IO_H
#define MF_RELAY_SMTP_IO_H

#include <stddef.h>

#include "relay/smtp_reply.h"
#include "relay/tls.h"

struct smtp_io;

/* Connects to host:port, trying each address in turn.  On success
 * *out is set and addr gets the peer's numeric address. */
int smtp_io_connect(const char *host, int port, long deadline, struct smtp_io **out, char *addr,
		    size_t addrsz, enum io_err *ioerr, char *err, size_t errlen);
void smtp_io_free(struct smtp_io *io);
/* Reads one complete reply into r. */
int smtp_io_read_reply(struct smtp_io *io, struct smtp_reply *r, long deadline,
		       enum io_err *ioerr, char *err, size_t errlen);
int smtp_io_write(struct smtp_io *io, const void *p, size_t n, long deadline, enum io_err *ioerr,
		  char *err, size_t errlen);
/* Bytes received but not yet consumed as a reply. */
size_t smtp_io_pending(const struct smtp_io *io);
/* Starts TLS on the connection (see tls_conn_start: port > 0 resumes the
 * last session with host:port when there is one). */
int smtp_io_starttls(struct smtp_io *io, struct tls_ctx *ctx, const char *host, int port, int verify,
		     long deadline, enum io_err *ioerr, char *err, size_t errlen);
/* 1 when the TLS handshake resumed a saved session. */
int smtp_io_tls_resumed(const struct smtp_io *io);
/* 1 when the connection is encrypted; then fills the details. */
int smtp_io_tls_info(const struct smtp_io *io, char *version, size_t vsz, char *cipher,
		     size_t csz, int *verified);
/* 1 when the peer has closed or sent something unexpected while idle. */
int smtp_io_idle_broken(struct smtp_io *io);

#endif
