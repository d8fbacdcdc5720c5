/*
 * smtp_client.h - one outbound SMTP session (RFC 5321) as an explicit
 * state machine: connect, banner, EHLO (HELO fallback), STARTTLS (RFC
 * 3207) or implicit TLS, AUTH PLAIN/LOGIN (RFC 4954), then any number of
 * transactions (MAIL, RCPT per recipient, DATA; RSET between them), QUIT.
 *
 * The client knows nothing of the database or of routing: it is given a
 * host and parameters, then a transaction, and fills one classified
 * struct smtp_outcome per recipient (mail/outcome.h).  It is driven by
 * its caller's thread with blocking calls bounded by the per-state
 * timeouts of RFC 5321 §4.5.3.2 (scaled by smtp_params.timeout_scale)
 * and by an optional overall deadline (smtp_params.deadline_ms).
 *
 * smtp_client_new() copies the parameters' strings; the tls_ctx stays
 * borrowed.  smtp_client_free() closes the connection without QUIT;
 * smtp_client_quit() says goodbye first.
 */
#ifndef MF_RELAY_SMTP_CLIENT_H
#define MF_RELAY_SMTP_CLIENT_H

#include <stddef.h>

#include "mail/outcome.h"

struct tls_ctx;

enum smtp_tls_use {
	SMTP_TLS_NONE,          /* never STARTTLS */
	SMTP_TLS_OPPORTUNISTIC, /* STARTTLS when offered, plaintext otherwise */
	SMTP_TLS_REQUIRED,      /* STARTTLS or fail */
	SMTP_TLS_IMPLICIT,      /* TLS from the first byte (port 465, RFC 8314) */
};

/* EHLO capabilities (RFC 5321 §4.1.1.1 and the extensions' RFCs). */
enum smtp_cap {
	SMTP_CAP_STARTTLS = 1 << 0,            /* RFC 3207 */
	SMTP_CAP_PIPELINING = 1 << 1,          /* RFC 2920 */
	SMTP_CAP_SIZE = 1 << 2,                /* RFC 1870 */
	SMTP_CAP_8BITMIME = 1 << 3,            /* RFC 6152 */
	SMTP_CAP_SMTPUTF8 = 1 << 4,            /* RFC 6531 */
	SMTP_CAP_AUTH_PLAIN = 1 << 5,          /* RFC 4954, RFC 4616 */
	SMTP_CAP_AUTH_LOGIN = 1 << 6,
	SMTP_CAP_ENHANCEDSTATUSCODES = 1 << 7, /* RFC 2034 */
};

struct smtp_params {
	const char *helo_name;
	const char *host;           /* connect to, send as SNI, match the certificate */
	const char *addr;           /* NULL, or the IP address to connect to instead of resolving host */
	int port;
	enum smtp_tls_use tls;
	int tls_verify;             /* REQUIRED/IMPLICIT: refuse an unverified peer */
	struct tls_ctx *tls_ctx;    /* borrowed; NULL only with SMTP_TLS_NONE */
	const char *auth_user;      /* NULL: no AUTH */
	const char *auth_password;
	int auth_plaintext_ok;      /* AUTH allowed without TLS (smarthost_tls = none) */
	double timeout_scale;       /* multiplies every timeout; 0 means 1 */
	long deadline_ms;           /* tls_now_ms() value by which every wait ends; 0: none */
	const char *session_id;     /* for log lines */
};

struct smtp_txn {
	const char *mail_from;      /* "" = null reverse-path */
	const char *msg;            /* the message; line ends are normalised */
	size_t len;
	const char *const *rcpts;
	struct smtp_outcome *outs;  /* n outcomes, filled */
	int n;
};

struct smtp_client;

struct smtp_client *smtp_client_new(const struct smtp_params *p);
void smtp_client_free(struct smtp_client *c);

/*
 * Connects and brings the session to the point where MAIL may be sent.
 * Returns 0, or -1 with *fail filled (scope SESSION) and the connection
 * closed.
 */
int smtp_client_open(struct smtp_client *c, struct smtp_outcome *fail);

enum smtp_send_result {
	SMTP_SEND_DONE,  /* every outcome filled; smtp_client_ready() says if reusable */
	SMTP_SEND_STALE, /* a reused session failed its RSET; nothing filled, reconnect */
};
/* Runs one transaction.  On a session that already carried one, RSET first. */
enum smtp_send_result smtp_client_send(struct smtp_client *c, const struct smtp_txn *t);

/* Sets smtp_params.deadline_ms for what follows (e.g. a reused session's
 * next transaction); 0 removes it. */
void smtp_client_set_deadline(struct smtp_client *c, long deadline_ms);
/* 1 when the session is open and can take another transaction. */
int smtp_client_ready(const struct smtp_client *c);
/* 1 when an idle session still looks usable (the peer has not hung up
 * or said anything unprompted, e.g. a 421 idle timeout). */
int smtp_client_alive(struct smtp_client *c);
/* Sends QUIT (short timeout) and closes. */
void smtp_client_quit(struct smtp_client *c);
/* Sends QUIT and closes without waiting for the reply (RFC 5321 §4.1.1.10
 * asks the client to wait; closing thousands of idle sessions at once,
 * the relay's cache cannot wait a round trip for each). */
void smtp_client_quit_nowait(struct smtp_client *c);
unsigned smtp_client_caps(const struct smtp_client *c);
/* Copies mx and the TLS details into o. */
void smtp_client_describe(const struct smtp_client *c, struct smtp_outcome *o);
/* 1 when the session's TLS handshake resumed a saved session. */
int smtp_client_tls_resumed(const struct smtp_client *c);
/* Transactions run on this session so far. */
int smtp_client_txns(const struct smtp_client *c);
/* The state's name (for tests and logs). */
const char *smtp_client_state_name(const struct smtp_client *c);

#endif
