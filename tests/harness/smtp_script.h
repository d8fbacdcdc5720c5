/*
 * smtp_script.h - an in-process scripted SMTP server for the faults a
 * real server will not make on request: a thread listens on a free
 * loopback port and plays a script of expected commands and replies,
 * with STARTTLS or implicit TLS (a test CA made at test time with the
 * openssl command), delays, disconnects and bytes injected after 220.
 *
 * A step reads one client line that must start with `expect` (case
 * insensitive; NULL: read nothing, e.g. the greeting), waits delay_ms,
 * sends `reply` verbatim (CRLFs included; NULL: nothing), then applies its
 * flags.  Everything the client sent is kept in a transcript, one line
 * each, message bodies included.  The struct and strings returned are the
 * caller's.
 */
#ifndef MF_TEST_SMTP_SCRIPT_H
#define MF_TEST_SMTP_SCRIPT_H

enum {
	SS_STARTTLS = 1 << 0,  /* after the reply, TLS handshake (server side) */
	SS_BODY = 1 << 1,      /* instead of one line, read a message up to "." */
	SS_CLOSE = 1 << 2,     /* after the reply, close the connection */
	SS_ACCEPT = 1 << 3,    /* before the step, close and accept the next connection */
	SS_PIPELINED = 1 << 4, /* the line must have arrived before our last reply */
	SS_LOCKSTEP = 1 << 5,  /* the line must not have come in the read that
				* brought an earlier line (catches a group sent
				* in one write, not a client racing our reply) */
};

struct ss_step {
	const char *expect;
	const char *reply;
	int flags;
	int delay_ms;
};

struct ss_opts {
	const char *cert_file; /* PEM certificate chain and key, for TLS */
	const char *key_file;
	int implicit_tls;      /* TLS right after accept (port 465 style) */
	const char *listen_ip; /* NULL: 127.0.0.1 */
	int listen_port;       /* 0: a free port (e.g. 25 for an MX of a test zone) */
};

struct smtp_script;

/* Starts listening; steps must stay valid until smtp_script_finish(). */
struct smtp_script *smtp_script_start(const struct ss_step *steps, int nsteps,
				      const struct ss_opts *opts);
int smtp_script_port(const struct smtp_script *s);
/*
 * Waits for the client to go away (at most ~15 s), stops the server and
 * returns the number of steps played; *transcript (if not NULL) gets what
 * the client sent and *err (if not NULL) the first mismatch ("" if none).
 * Frees s.
 */
int smtp_script_finish(struct smtp_script *s, char **transcript, char **err);

/* A test CA in dir (ca.pem) and a server certificate for host signed by
 * it (NAME.pem, NAME.key).  Returns 0 or -1. */
int ss_make_ca(const char *dir);
int ss_make_cert(const char *dir, const char *name, const char *host);

#endif
