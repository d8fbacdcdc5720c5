/*
 * smtp_server.h - a reusable inbound SMTP server (RFC 5321 server side),
 * used by the bounce listener, "mailferry sink --dir" and the submission
 * listener (submit/).
 *
 * smtp_server_new() binds params->listen ("host:port"; port 0 picks a free
 * one) and starts an accept thread; each connection gets its own thread,
 * up to max_sessions in all and max_sessions_per_addr per client address
 * (beyond either a client gets 421 and is closed).  A session ends with
 * 421 4.4.2 after idle_timeout_ms without a command, and after
 * session_timeout_ms in all, however busy it is.
 * Offered: EHLO/HELO, PIPELINING (RFC 2920), SIZE (RFC 1870), 8BITMIME
 * (RFC 6152), ENHANCEDSTATUSCODES (RFC 2034), MAIL/RCPT/DATA/RSET/NOOP/
 * QUIT, VRFY (252), and STARTTLS (RFC 3207) when a certificate and key
 * are given, or TLS from the first byte with implicit_tls (RFC 8314 §3.3).
 * On request: SMTPUTF8 (RFC 6531) and AUTH PLAIN LOGIN (RFC 4954, decided
 * by on_auth; offered only inside TLS, or to a loopback client when
 * auth_plaintext_loopback is set; elsewhere AUTH gets 538 5.7.11).  Not
 * offered: CHUNKING.  With TLS the process must ignore SIGPIPE (serve and
 * sink do).  strict_pipelining drops a client that talks before the
 * banner (554 5.5.0; within greet_wait_ms of connecting, or already when
 * the session starts) or pipelines commands behind STARTTLS (RFC 3207
 * §4.2); without it such bytes are discarded.  max_messages counts MAIL
 * commands accepted, as Exim's smtp_accept_max_per_connection does, so
 * a MAIL/RSET loop reaches it as well as real messages.
 *
 * The application decides through two callbacks, which run on the session
 * thread and may block (e.g. on the database): the reply is sent only after
 * they return, so a message can be stored durably before its 250.  Both
 * get *reply preset to a 250 and may overwrite it; a reply code outside
 * 200..599 is turned into 451 4.3.0.  All pointers passed to callbacks are
 * borrowed for the duration of the call.
 *
 * smtp_server_free() stops accepting, tells idle sessions 421 4.3.2,
 * waits for sessions inside a callback to finish, and joins every thread.
 */
#ifndef MF_SMTPD_SMTP_SERVER_H
#define MF_SMTPD_SMTP_SERVER_H

#include <stddef.h>

#include "util/limits.h"

struct smtp_server;

struct smtp_server_reply {
	int code;                              /* e.g. 250, 451, 550 */
	char text[MF_SMTP_SERVER_REPLY_TEXT];  /* "2.1.5 Ok": enhanced code first, no CRLF */
};

/* What the session knows when a callback runs. */
struct smtp_server_envelope {
	const char *session;     /* session id, for logs */
	const char *peer;        /* client address */
	const char *helo;        /* EHLO/HELO argument */
	const char *tls;         /* e.g. "TLSv1.3", or NULL without STARTTLS */
	const char *mail_from;   /* "" for the null sender <> */
	const char *const *rcpts;
	size_t nrcpts;           /* accepted so far (on_rcpt) or in all (on_message) */
	const char *auth_user;   /* the AUTH user name, NULL before a successful AUTH */
	int body_8bitmime;       /* MAIL said BODY=8BITMIME (RFC 6152) */
	int smtputf8;            /* MAIL said SMTPUTF8 (RFC 6531) */
	void **data;             /* the application's per-session pointer (on_auth may set it) */
};

struct smtp_server_params {
	const char *listen;        /* "host:port" */
	const char *hostname;      /* in the banner, EHLO reply and Received: */
	size_t max_message_size;   /* SIZE n; DATA beyond it gets 552 5.3.4 */
	int max_sessions;          /* concurrent sessions; <= 0: MF_SMTP_SERVER_SESSIONS_DEFAULT */
	int idle_timeout_ms;       /* per command / data read; <= 0: MF_SMTP_SERVER_IDLE_TIMEOUT_MS */
	int max_sessions_per_addr; /* per client address; <= 0: MF_SMTP_SERVER_SESSIONS_PER_ADDR */
	int session_timeout_ms;    /* whole session; <= 0: MF_SMTP_SERVER_SESSION_TIMEOUT_MS */
	const char *tls_cert_file; /* PEM certificate chain; with tls_key_file enables STARTTLS */
	const char *tls_key_file;  /* PEM private key */
	int implicit_tls;          /* TLS before the banner (port 465, RFC 8314 §3.3); needs the cert */
	int smtputf8;              /* offer SMTPUTF8 (RFC 6531) */
	int max_rcpts;             /* per message; <= 0: MF_SMTP_SERVER_RCPTS_MAX */
	int max_messages;          /* MAIL commands accepted per session, then 421 4.7.0 at MAIL; <= 0: no limit */
	int strict_pipelining;     /* drop clients that talk before the banner or after STARTTLS */
	int greet_wait_ms;         /* with strict_pipelining: listen this long before the banner; 0: look once */
	int auth_plaintext_loopback; /* offer AUTH without TLS to loopback clients */
	void *arg;                 /* passed to the callbacks */
	/* AUTH (RFC 4954): offered when set, and then MAIL needs it (530
	 * 5.7.0).  user and pass are the decoded SASL values (authzid is
	 * ignored); *reply is preset to 535 5.7.8; a 235 authenticates the
	 * session, a 421 ends it.  Never log pass. */
	void (*on_auth)(void *arg, const struct smtp_server_envelope *env, const char *user, const char *pass,
			struct smtp_server_reply *reply);
	/* Called once when a session starts (before the banner), and once
	 * when it ends with its *env->data (may be NULL). */
	void (*on_session_start)(void *arg);
	void (*on_session_end)(void *arg, void *data);
	/* A connection refused before its session: reason "max_sessions",
	 * "max_sessions_per_addr" or "pregreet" (the last after
	 * on_session_start).  May be NULL. */
	void (*on_refused)(void *arg, const char *reason);
	/* Accept (2xx) or refuse (4xx/5xx) one recipient.  NULL: accept all. */
	void (*on_rcpt)(void *arg, const struct smtp_server_envelope *env, const char *rcpt,
			struct smtp_server_reply *reply);
	/* A complete message (dot-unstuffed, with our Received: line first). */
	void (*on_message)(void *arg, const struct smtp_server_envelope *env, const char *data, size_t len,
			   struct smtp_server_reply *reply);
	/* A message over max_message_size, answered 552 5.3.4 without
	 * on_message.  May be NULL. */
	void (*on_too_big)(void *arg, const struct smtp_server_envelope *env);
};

/* Returns the running server, or NULL with err set (bad address, bind,
 * unreadable certificate or key). */
struct smtp_server *smtp_server_new(const struct smtp_server_params *params, char *err, size_t errlen);
/* The TCP port actually bound. */
int smtp_server_port(const struct smtp_server *srv);
/* Loads a new certificate and key for sessions that start TLS from now
 * on (SIGHUP); 0, or -1 with err set and the old pair kept. */
int smtp_server_reload_tls(struct smtp_server *srv, const char *cert_file, const char *key_file, char *err,
			   size_t errlen);
/* Sessions currently open. */
int smtp_server_sessions(struct smtp_server *srv);
void smtp_server_free(struct smtp_server *srv);

/* Sets a reply: code and printf-style text. */
void smtp_server_reply_set(struct smtp_server_reply *r, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
