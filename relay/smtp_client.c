/*
 * smtp_client.c - the SMTP client state machine (see smtp_client.h).
 *
 * Every state has a row in one table: its name, its timeout (RFC 5321
 * §4.5.3.2), a send function that writes the state's command, and an
 * on_reply function that judges the reply and picks the next state.
 * smtp_set_state() is the only way to change state, and logs the change.
 * smtp_run() drives the table until the session reaches the state the
 * caller wants, or fails.
 *
 * With PIPELINING (RFC 2920 §3.1) a transaction's commands go out as one
 * group - RSET on a reused session, MAIL, every RCPT, DATA last - and the
 * states then read their replies in that order; the body waits for 354.
 * Without it, each command waits for the reply to the one before.
 *
 * Failures are classified where they happen: session failures go into
 * c->fail (the caller applies them to every recipient still open), reply
 * rejections of MAIL/DATA to every recipient of the transaction (message
 * scope), RCPT replies to their own recipient (recipient scope).
 */
#include "relay/smtp_client.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay/smtp_data.h"
#include "relay/smtp_io.h"
#include "relay/smtp_reply.h"
#include "relay/tls.h"
#include "util/base64.h"
#include "util/limits.h"
#include "util/log.h"
#include "util/xmalloc.h"

enum smtp_state {
	SMTP_CONNECT,
	SMTP_TLS,        /* TLS handshake: implicit, or after STARTTLS's 220 */
	SMTP_BANNER,
	SMTP_EHLO,
	SMTP_HELO,
	SMTP_STARTTLS,
	SMTP_AUTH,       /* AUTH PLAIN with initial response, or AUTH LOGIN */
	SMTP_AUTH_USER,  /* AUTH LOGIN: the user name */
	SMTP_AUTH_PASS,  /* AUTH LOGIN: the password */
	SMTP_READY,
	SMTP_RSET,
	SMTP_MAIL,
	SMTP_RCPT,
	SMTP_DATA,
	SMTP_BODY,
	SMTP_EMPTY_BODY, /* a 354 though no recipient was accepted: "." alone */
	SMTP_QUIT,
	SMTP_CLOSED,
	SMTP_FAILED,
	SMTP_NSTATES
};

/* Per-transaction recipient progress. */
enum rcpt_progress { RP_OPEN, RP_ACCEPTED, RP_DONE };

struct smtp_client {
	struct smtp_params p;    /* strings owned */
	char sid[64];
	enum smtp_state state;
	struct smtp_io *io;
	struct smtp_reply reply;
	unsigned caps;
	long size_max;           /* SIZE parameter, 0 = none announced */
	int tls_active;
	char tls_version[16];    /* kept after the connection closes */
	char tls_cipher[64];
	int tls_verified;
	int tls_resumed;         /* the handshake resumed a saved session */
	char addr[64];           /* peer address */
	struct smtp_outcome fail;/* session failure detail */
	int txns;
	int used;                /* a transaction ran: RSET before the next */
	/* The transaction in progress. */
	const struct smtp_txn *t;
	enum rcpt_progress *rp;
	int rcpt_idx;            /* next RCPT reply to read */
	int rcpt_sent;           /* RCPT commands written */
	int accepted;
	int mail_failed;
	int reuse_rset;          /* the RSET opens a transaction on a reused session */
	int mail_sent;           /* MAIL (and RCPTs) already written */
	int data_sent;           /* DATA went out at the end of the pipelined group */
	int stale;
};

static int send_connect(struct smtp_client *c);
static int send_tls(struct smtp_client *c);
static int send_ehlo(struct smtp_client *c);
static int send_helo(struct smtp_client *c);
static int send_starttls(struct smtp_client *c);
static int send_auth(struct smtp_client *c);
static int send_auth_user(struct smtp_client *c);
static int send_auth_pass(struct smtp_client *c);
static int send_rset(struct smtp_client *c);
static int send_mail(struct smtp_client *c);
static int send_rcpt(struct smtp_client *c);
static int send_data(struct smtp_client *c);
static int send_body(struct smtp_client *c);
static int send_empty_body(struct smtp_client *c);
static int send_quit(struct smtp_client *c);
static void on_banner(struct smtp_client *c);
static void on_ehlo(struct smtp_client *c);
static void on_helo(struct smtp_client *c);
static void on_starttls(struct smtp_client *c);
static void on_auth(struct smtp_client *c);
static void on_rset(struct smtp_client *c);
static void on_mail(struct smtp_client *c);
static void on_rcpt(struct smtp_client *c);
static void on_data(struct smtp_client *c);
static void on_body(struct smtp_client *c);
static void on_empty_body(struct smtp_client *c);
static void on_quit(struct smtp_client *c);
static const char *envelope_refusal(const struct smtp_client *c, const char **enhanced, char *text,
				    size_t textsz);
static int envelope(struct smtp_client *c, struct buf *b);

/* RFC 5321 §4.5.3.2 gives the minimum timeouts: initial 220 5 min, MAIL
 * 5 min, RCPT 5 min, DATA initiation 2 min, data block 3 min (per write
 * here), DATA termination 10 min.  The others follow Postfix's defaults. */
static const struct state_def {
	const char *name;
	long timeout_ms;
	int (*send)(struct smtp_client *c);
	void (*on_reply)(struct smtp_client *c);
} states[SMTP_NSTATES] = {
	[SMTP_CONNECT] = { "connect", 30000, send_connect, NULL },
	[SMTP_TLS] = { "tls", 300000, send_tls, NULL },
	[SMTP_BANNER] = { "banner", 300000, NULL, on_banner },
	[SMTP_EHLO] = { "ehlo", 300000, send_ehlo, on_ehlo },
	[SMTP_HELO] = { "helo", 300000, send_helo, on_helo },
	[SMTP_STARTTLS] = { "starttls", 300000, send_starttls, on_starttls },
	[SMTP_AUTH] = { "auth", 300000, send_auth, on_auth },
	[SMTP_AUTH_USER] = { "auth_user", 300000, send_auth_user, on_auth },
	[SMTP_AUTH_PASS] = { "auth_pass", 300000, send_auth_pass, on_auth },
	[SMTP_READY] = { "ready", 0, NULL, NULL },
	[SMTP_RSET] = { "rset", 300000, send_rset, on_rset },
	[SMTP_MAIL] = { "mail", 300000, send_mail, on_mail },
	[SMTP_RCPT] = { "rcpt", 300000, send_rcpt, on_rcpt },
	[SMTP_DATA] = { "data", 120000, send_data, on_data },
	[SMTP_BODY] = { "body", 600000, send_body, on_body },
	[SMTP_EMPTY_BODY] = { "empty_body", 600000, send_empty_body, on_empty_body },
	[SMTP_QUIT] = { "quit", 300000, send_quit, on_quit },
	[SMTP_CLOSED] = { "closed", 0, NULL, NULL },
	[SMTP_FAILED] = { "failed", 0, NULL, NULL },
};
/* Data blocks: each write of the body must progress within this. */
#define SMTP_DATA_BLOCK_MS 180000L
/* QUIT is a courtesy: never wait long for its reply. */
#define SMTP_QUIT_MAX_MS 5000L

static long timeout_of(const struct smtp_client *c, long ms)
{
	double scale = c->p.timeout_scale > 0 ? c->p.timeout_scale : 1.0;
	long v = (long)((double)ms * scale);
	return v < 1 ? 1 : v;
}

/* Now + ms, but never past the session's overall deadline: the per-state
 * timeouts of RFC 5321 add up to more than 30 minutes, and the queue's
 * delivery_timeout bounds the whole delivery. */
static long capped(const struct smtp_client *c, long ms)
{
	long d = tls_now_ms() + ms;
	return c->p.deadline_ms > 0 && c->p.deadline_ms < d ? c->p.deadline_ms : d;
}

static long deadline_of(const struct smtp_client *c, enum smtp_state s)
{
	return capped(c, timeout_of(c, states[s].timeout_ms));
}

/* 1 when the overall deadline (not a state's timeout) has passed. */
static int past_deadline(const struct smtp_client *c)
{
	return c->p.deadline_ms > 0 && tls_now_ms() >= c->p.deadline_ms;
}

/* The only way to change state; logs the transition by name. */
static void smtp_set_state(struct smtp_client *c, enum smtp_state next)
{
	if (c->state == next)
		return;
	log_debug("event=smtp_state session=%s host=%s from=%s to=%s", c->sid, c->p.host,
		  states[c->state].name, states[next].name);
	c->state = next;
}

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

struct smtp_client *smtp_client_new(const struct smtp_params *p)
{
	struct smtp_client *c = xcalloc(1, sizeof(*c));
	c->p = *p;
	c->p.helo_name = xstrdup(p->helo_name ? p->helo_name : "localhost");
	c->p.host = xstrdup(p->host);
	c->p.addr = dup_or_null(p->addr);
	c->p.auth_user = dup_or_null(p->auth_user);
	c->p.auth_password = dup_or_null(p->auth_password);
	c->p.session_id = NULL;
	snprintf(c->sid, sizeof(c->sid), "%s", p->session_id ? p->session_id : "-");
	c->state = SMTP_CONNECT;
	smtp_reply_init(&c->reply);
	return c;
}

void smtp_client_free(struct smtp_client *c)
{
	if (!c)
		return;
	smtp_io_free(c->io);
	smtp_reply_cleanup(&c->reply);
	free((char *)c->p.helo_name);
	free((char *)c->p.host);
	free((char *)c->p.addr);
	free((char *)c->p.auth_user);
	if (c->p.auth_password) {
		/* Do not leave the secret in freed memory. */
		volatile char *v = (volatile char *)c->p.auth_password;
		while (*v)
			*v++ = 0;
		free((char *)c->p.auth_password);
	}
	free(c->rp);
	free(c);
}

/* ---- failures ---------------------------------------------------------- */

static void outcome_clear(struct smtp_outcome *o)
{
	memset(o, 0, sizeof(*o));
}

/* Records a session failure and closes the connection. */
static void smtp_fail(struct smtp_client *c, enum outcome_class cls, enum outcome_kind kind,
		      int code, const char *enhanced, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
static void smtp_fail(struct smtp_client *c, enum outcome_class cls, enum outcome_kind kind,
		      int code, const char *enhanced, const char *fmt, ...)
{
	struct smtp_outcome *o = &c->fail;
	outcome_clear(o);
	o->scope = SCOPE_SESSION;
	o->cls = cls;
	o->kind = kind;
	o->code = code;
	snprintf(o->enhanced, sizeof(o->enhanced), "%s", enhanced ? enhanced : "");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(o->text, sizeof(o->text), fmt, ap);
	va_end(ap);
	smtp_client_describe(c, o);
	log_info("event=smtp_session_failed session=%s host=%s state=%s code=%d text=%s", c->sid,
		 c->p.host, states[c->state].name, code, o->text);
	smtp_io_free(c->io);
	c->io = NULL;
	smtp_set_state(c, SMTP_FAILED);
}

static enum outcome_kind io_kind(enum io_err e)
{
	switch (e) {
	case IOE_TIMEOUT: return KIND_TIMEOUT;
	case IOE_TLS: return KIND_TLS;
	case IOE_DNS: return KIND_DNS;
	case IOE_PROTOCOL: return KIND_PROTOCOL;
	default: return KIND_CONNECT;
	}
}

static void smtp_fail_io(struct smtp_client *c, enum io_err e, const char *what, const char *err)
{
	smtp_fail(c, OUT_LOCAL, io_kind(e), 0, NULL, "%s %s: %s", what, states[c->state].name, err);
}

/* A session failure caused by a reply (e.g. 421, or a refused EHLO). */
static void smtp_fail_reply(struct smtp_client *c, enum outcome_kind kind)
{
	char text[512];
	smtp_reply_text(&c->reply, text, sizeof(text));
	smtp_fail(c, c->reply.code >= 500 ? OUT_5XX : OUT_4XX, kind, c->reply.code,
		  c->reply.enhanced, "%s", text);
}

/* An outcome from the current reply. */
static void outcome_from_reply(struct smtp_client *c, struct smtp_outcome *o,
			       enum outcome_scope scope)
{
	outcome_clear(o);
	o->scope = scope;
	int k = c->reply.code / 100;
	o->cls = k == 2 ? OUT_2XX : k == 4 ? OUT_4XX : k == 5 ? OUT_5XX : OUT_LOCAL;
	o->kind = k == 2 ? KIND_NONE : KIND_RESPONSE;
	o->code = c->reply.code;
	snprintf(o->enhanced, sizeof(o->enhanced), "%s", c->reply.enhanced);
	smtp_reply_text(&c->reply, o->text, sizeof(o->text));
	smtp_client_describe(c, o);
}

/* ---- writing ----------------------------------------------------------- */

static int smtp_write(struct smtp_client *c, const char *p, size_t n)
{
	enum io_err e = IOE_NONE;
	char err[256];
	if (smtp_io_write(c->io, p, n, deadline_of(c, c->state), &e, err, sizeof(err)) < 0) {
		smtp_fail_io(c, e, "write during", err);
		return -1;
	}
	return 0;
}

/* Writes one command line (CRLF added).  Refuses CR/LF inside, which could
 * smuggle commands (RFC 5321 §2.3.8). */
static int send_cmd(struct smtp_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int send_cmd(struct smtp_client *c, const char *fmt, ...)
{
	char line[MF_SMTP_LINE_MAX + 1];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 2 || strpbrk(line, "\r\n")) {
		smtp_fail(c, OUT_LOCAL, KIND_INTERNAL, 0, NULL, "command too long or has a line break");
		return -1;
	}
	memcpy(line + n, "\r\n", 3);
	return smtp_write(c, line, (size_t)n + 2);
}

/* ---- the driver -------------------------------------------------------- */

/* Runs the state table until the state is stop (or a terminal state). */
static void smtp_run(struct smtp_client *c, enum smtp_state stop)
{
	while (c->state != stop && c->state != SMTP_FAILED && c->state != SMTP_CLOSED) {
		enum smtp_state s = c->state;
		const struct state_def *d = &states[s];
		if (d->send && d->send(c) < 0)
			return;
		if (!d->on_reply)
			continue; /* the send function chose the next state */
		if (c->state != s)
			continue;
		enum io_err e = IOE_NONE;
		char err[256];
		if (smtp_io_read_reply(c->io, &c->reply, deadline_of(c, s), &e, err, sizeof(err)) < 0) {
			if (s == SMTP_QUIT) { /* no reply to QUIT is no failure */
				on_quit(c);
				return;
			}
			smtp_fail_io(c, e, e == IOE_TIMEOUT ? past_deadline(c) ? "delivery_timeout reached waiting for reply in"
										: "timeout waiting for reply in"
							    : "reading reply in",
				     err);
			return;
		}
		/* RFC 5321 §3.8: 421 means the server is closing the session. */
		if (c->reply.code == 421 && s != SMTP_QUIT) {
			smtp_fail_reply(c, KIND_RESPONSE);
			return;
		}
		d->on_reply(c);
	}
}

/* ---- connection, greeting, EHLO --------------------------------------- */

static int send_connect(struct smtp_client *c)
{
	enum io_err e = IOE_NONE;
	char err[512];
	if (smtp_io_connect(c->p.addr ? c->p.addr : c->p.host, c->p.port, deadline_of(c, SMTP_CONNECT), &c->io, c->addr,
			    sizeof(c->addr), &e, err, sizeof(err)) < 0) {
		smtp_fail(c, OUT_LOCAL, e == IOE_DNS ? KIND_DNS : e == IOE_TIMEOUT ? KIND_TIMEOUT : KIND_CONNECT,
			  0, NULL, "connect to %s%s%s", c->p.addr ? c->p.host : "", c->p.addr ? " at " : "", err);
		return -1;
	}
	log_debug("event=smtp_connected session=%s host=%s addr=%s port=%d", c->sid, c->p.host,
		  c->addr, c->p.port);
	smtp_set_state(c, c->p.tls == SMTP_TLS_IMPLICIT ? SMTP_TLS : SMTP_BANNER);
	return 0;
}

static int verify_wanted(const struct smtp_client *c)
{
	return c->p.tls_verify && (c->p.tls == SMTP_TLS_REQUIRED || c->p.tls == SMTP_TLS_IMPLICIT);
}

static int send_tls(struct smtp_client *c)
{
	enum io_err e = IOE_NONE;
	char err[512];
	if (!c->p.tls_ctx) {
		smtp_fail(c, OUT_LOCAL, KIND_INTERNAL, 0, NULL, "TLS wanted but no TLS context");
		return -1;
	}
	if (smtp_io_starttls(c->io, c->p.tls_ctx, c->p.host, c->p.port, verify_wanted(c),
			     deadline_of(c, SMTP_TLS), &e, err, sizeof(err)) < 0) {
		smtp_fail(c, OUT_LOCAL, e == IOE_TIMEOUT ? KIND_TIMEOUT : KIND_TLS, 0, NULL, "%s", err);
		return -1;
	}
	c->tls_active = 1;
	smtp_io_tls_info(c->io, c->tls_version, sizeof(c->tls_version), c->tls_cipher,
			 sizeof(c->tls_cipher), &c->tls_verified);
	c->tls_resumed = smtp_io_tls_resumed(c->io);
	log_debug("event=smtp_tls session=%s host=%s version=%s cipher=%s verified=%d resumed=%d", c->sid,
		  c->p.host, c->tls_version, c->tls_cipher, c->tls_verified, c->tls_resumed);
	/* Implicit TLS: the greeting comes now.  STARTTLS: RFC 3207 §4.2, the
	 * client forgets what it knew and says EHLO again. */
	smtp_set_state(c, c->p.tls == SMTP_TLS_IMPLICIT ? SMTP_BANNER : SMTP_EHLO);
	return 0;
}

static void on_banner(struct smtp_client *c)
{
	/* RFC 5321 §4.3.2: 220 is the greeting, 554 (or anything else) a refusal. */
	if (c->reply.code != 220) {
		smtp_fail_reply(c, KIND_RESPONSE);
		return;
	}
	smtp_set_state(c, SMTP_EHLO);
}

static int send_ehlo(struct smtp_client *c)
{
	c->caps = 0;
	c->size_max = 0;
	return send_cmd(c, "EHLO %s", c->p.helo_name);
}

static int send_helo(struct smtp_client *c)
{
	return send_cmd(c, "HELO %s", c->p.helo_name);
}

/* Case-insensitive "word" match at the start of s, followed by end/space/'='. */
static int keyword(const char *s, size_t n, const char *word)
{
	size_t w = strlen(word);
	return n >= w && strncasecmp(s, word, w) == 0 && (n == w || s[w] == ' ' || s[w] == '=');
}

/* RFC 5321 §4.1.1.1: the lines after the first are "keyword [params]". */
static void parse_caps(struct smtp_client *c)
{
	const char *p = c->reply.lines.data ? c->reply.lines.data : "";
	const char *nl = strchr(p, '\n');
	p = nl ? nl + 1 : p + strlen(p);
	while (*p) {
		nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		if (keyword(p, n, "STARTTLS"))
			c->caps |= SMTP_CAP_STARTTLS;
		else if (keyword(p, n, "PIPELINING"))
			c->caps |= SMTP_CAP_PIPELINING;
		else if (keyword(p, n, "8BITMIME"))
			c->caps |= SMTP_CAP_8BITMIME;
		else if (keyword(p, n, "SMTPUTF8"))
			c->caps |= SMTP_CAP_SMTPUTF8;
		else if (keyword(p, n, "ENHANCEDSTATUSCODES"))
			c->caps |= SMTP_CAP_ENHANCEDSTATUSCODES;
		else if (keyword(p, n, "SIZE")) {
			c->caps |= SMTP_CAP_SIZE;
			if (n > 5)
				c->size_max = strtol(p + 5, NULL, 10); /* RFC 1870 §4: 0 = no limit */
		} else if (keyword(p, n, "AUTH")) {
			/* "AUTH PLAIN LOGIN CRAM-MD5" (old servers: "AUTH=PLAIN LOGIN") */
			for (size_t i = 4; i < n;) {
				while (i < n && (p[i] == ' ' || p[i] == '='))
					i++;
				size_t j = i;
				while (j < n && p[j] != ' ')
					j++;
				if (j - i == 5 && strncasecmp(p + i, "PLAIN", 5) == 0)
					c->caps |= SMTP_CAP_AUTH_PLAIN;
				if (j - i == 5 && strncasecmp(p + i, "LOGIN", 5) == 0)
					c->caps |= SMTP_CAP_AUTH_LOGIN;
				i = j;
			}
		}
		p = nl ? nl + 1 : p + n;
	}
}

/* After EHLO/HELO: STARTTLS, AUTH, or ready. */
static void after_greeting(struct smtp_client *c)
{
	if (!c->tls_active && c->p.tls != SMTP_TLS_NONE && c->p.tls != SMTP_TLS_IMPLICIT) {
		if (c->caps & SMTP_CAP_STARTTLS) {
			smtp_set_state(c, SMTP_STARTTLS);
			return;
		}
		if (c->p.tls == SMTP_TLS_REQUIRED) {
			smtp_fail(c, OUT_LOCAL, KIND_TLS, 0, NULL,
				  "TLS is required but the server does not offer STARTTLS");
			return;
		}
	}
	if (c->p.auth_user) {
		if (!c->tls_active && !c->p.auth_plaintext_ok) {
			smtp_fail(c, OUT_LOCAL, KIND_TLS, 0, NULL,
				  "refusing to send AUTH credentials without TLS");
			return;
		}
		if (!(c->caps & (SMTP_CAP_AUTH_PLAIN | SMTP_CAP_AUTH_LOGIN))) {
			smtp_fail(c, OUT_LOCAL, KIND_PROTOCOL, 0, NULL,
				  "server offers neither AUTH PLAIN nor AUTH LOGIN");
			return;
		}
		smtp_set_state(c, SMTP_AUTH);
		return;
	}
	smtp_set_state(c, SMTP_READY);
}

static void on_ehlo(struct smtp_client *c)
{
	if (c->reply.code == 250) {
		parse_caps(c);
		after_greeting(c);
		return;
	}
	/* RFC 5321 §4.1.4: a server that does not know EHLO answers 5xx; HELO then. */
	if (c->reply.code >= 500 && !c->tls_active) {
		smtp_set_state(c, SMTP_HELO);
		return;
	}
	smtp_fail_reply(c, KIND_RESPONSE);
}

static void on_helo(struct smtp_client *c)
{
	if (c->reply.code != 250) {
		smtp_fail_reply(c, KIND_RESPONSE);
		return;
	}
	c->caps = 0;
	after_greeting(c);
}

/* ---- STARTTLS (RFC 3207) ----------------------------------------------- */

static int send_starttls(struct smtp_client *c)
{
	return send_cmd(c, "STARTTLS");
}

static void on_starttls(struct smtp_client *c)
{
	if (c->reply.code != 220) {
		if (c->p.tls == SMTP_TLS_REQUIRED) {
			smtp_fail_reply(c, KIND_TLS);
			return;
		}
		/* Opportunistic: carry on in plaintext, as if it were not offered. */
		c->caps &= ~(unsigned)SMTP_CAP_STARTTLS;
		c->tls_active = 0;
		c->p.tls = SMTP_TLS_NONE;
		after_greeting(c);
		return;
	}
	/* Anything the server sent after its 220 would be injected into the
	 * TLS session's plaintext (CVE-2011-0411 class); refuse it. */
	if (smtp_io_pending(c->io) > 0) {
		smtp_fail(c, OUT_LOCAL, KIND_PROTOCOL, 0, NULL,
			  "server sent %zu bytes after 220 to STARTTLS (possible injection)",
			  smtp_io_pending(c->io));
		return;
	}
	smtp_set_state(c, SMTP_TLS);
}

/* ---- AUTH (RFC 4954; PLAIN RFC 4616; LOGIN draft-murchison-sasl-login) - */

static int send_auth(struct smtp_client *c)
{
	if (c->caps & SMTP_CAP_AUTH_PLAIN) {
		/* authzid NUL authcid NUL passwd */
		unsigned char raw[600];
		size_t ul = strlen(c->p.auth_user), pl = strlen(c->p.auth_password);
		if (ul + pl + 2 > sizeof(raw)) {
			smtp_fail(c, OUT_LOCAL, KIND_INTERNAL, 0, NULL, "AUTH credentials too long");
			return -1;
		}
		raw[0] = 0;
		memcpy(raw + 1, c->p.auth_user, ul);
		raw[1 + ul] = 0;
		memcpy(raw + 2 + ul, c->p.auth_password, pl);
		char b64[820];
		base64_encode(raw, ul + pl + 2, b64, sizeof(b64), 0);
		memset(raw, 0, sizeof(raw));
		int rc = send_cmd(c, "AUTH PLAIN %s", b64);
		memset(b64, 0, sizeof(b64));
		return rc;
	}
	return send_cmd(c, "AUTH LOGIN");
}

static int send_secret_line(struct smtp_client *c, const char *s)
{
	char b64[820];
	size_t n = strlen(s);
	if (n > 600) {
		smtp_fail(c, OUT_LOCAL, KIND_INTERNAL, 0, NULL, "AUTH credentials too long");
		return -1;
	}
	base64_encode(s, n, b64, sizeof(b64), 0);
	int rc = send_cmd(c, "%s", b64);
	memset(b64, 0, sizeof(b64));
	return rc;
}

static int send_auth_user(struct smtp_client *c)
{
	return send_secret_line(c, c->p.auth_user);
}

static int send_auth_pass(struct smtp_client *c)
{
	return send_secret_line(c, c->p.auth_password);
}

static void on_auth(struct smtp_client *c)
{
	if (c->reply.code == 235) {
		smtp_set_state(c, SMTP_READY);
		return;
	}
	if (c->reply.code == 334 && c->state == SMTP_AUTH && !(c->caps & SMTP_CAP_AUTH_PLAIN)) {
		smtp_set_state(c, SMTP_AUTH_USER);
		return;
	}
	if (c->reply.code == 334 && c->state == SMTP_AUTH_USER) {
		smtp_set_state(c, SMTP_AUTH_PASS);
		return;
	}
	/* Rejected credentials are our configuration's problem, not the
	 * recipients': report a local failure (retried), with the reply. */
	char text[400];
	smtp_reply_text(&c->reply, text, sizeof(text));
	smtp_fail(c, OUT_LOCAL, KIND_PROTOCOL, c->reply.code, c->reply.enhanced,
		  "AUTH failed: %d %s", c->reply.code, text);
}

/* ---- the transaction --------------------------------------------------- */

/* Writes the envelope (MAIL FROM, and with PIPELINING the RCPTs and
 * DATA) as one group, after "RSET" when rset; mail_sent records that it
 * went out.  This is the only place a pipelined group is written. */
static int send_envelope(struct smtp_client *c, int rset)
{
	struct buf b;
	buf_init(&b, (size_t)(c->t->n + 2 + (rset != 0)) * (MF_SMTP_LINE_MAX + 2));
	int rc = rset ? buf_puts(&b, "RSET\r\n") : 0;
	if (rc == 0)
		rc = envelope(c, &b);
	if (rc == 0)
		rc = smtp_write(c, b.data, b.len);
	buf_cleanup(&b);
	c->mail_sent = rc == 0;
	return rc;
}

static int send_rset(struct smtp_client *c)
{
	const char *enhanced;
	char text[160];
	if (!c->reuse_rset || !(c->caps & SMTP_CAP_PIPELINING) ||
	    envelope_refusal(c, &enhanced, text, sizeof(text)))
		return send_cmd(c, "RSET");
	/* RFC 2920 §3.1: RSET may start the group; the envelope follows it
	 * without waiting, which saves a round trip per reused message. */
	return send_envelope(c, 1);
}

static void on_rset(struct smtp_client *c)
{
	if (c->reply.code / 100 == 2) {
		smtp_set_state(c, c->reuse_rset ? SMTP_MAIL : SMTP_READY);
		c->reuse_rset = 0;
		return;
	}
	if (c->reuse_rset)
		c->stale = 1;
	smtp_fail_reply(c, KIND_RESPONSE);
}

static int has_non_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s & 0x80)
			return 1;
	return 0;
}

/* Sets every recipient not yet finished to o (message scope failures). */
static void fail_open_rcpts(struct smtp_client *c, const struct smtp_outcome *o)
{
	for (int i = 0; i < c->t->n; i++)
		if (c->rp[i] != RP_DONE) {
			c->t->outs[i] = *o;
			c->rp[i] = RP_DONE;
		}
}

/* A message-scope local failure before anything is sent (size, UTF-8). */
static void fail_message_local(struct smtp_client *c, const char *enhanced, const char *text)
{
	struct smtp_outcome o;
	outcome_clear(&o);
	o.scope = SCOPE_MESSAGE;
	o.cls = OUT_LOCAL;
	o.kind = KIND_PROTOCOL;
	o.permanent = 1;
	snprintf(o.enhanced, sizeof(o.enhanced), "%s", enhanced);
	snprintf(o.text, sizeof(o.text), "%s", text);
	smtp_client_describe(c, &o);
	fail_open_rcpts(c, &o);
}

/* The reason this transaction cannot be sent to this server, or NULL;
 * *enhanced gets the RFC 3463 code. */
static const char *envelope_refusal(const struct smtp_client *c, const char **enhanced, char *text,
				    size_t textsz)
{
	const struct smtp_txn *t = c->t;
	int utf8 = has_non_ascii(t->mail_from);
	for (int i = 0; i < t->n; i++)
		utf8 |= has_non_ascii(t->rcpts[i]);
	/* RFC 1870 §6.1: do not send a message larger than the announced SIZE. */
	if ((c->caps & SMTP_CAP_SIZE) && c->size_max > 0 && (long)t->len > c->size_max) {
		snprintf(text, textsz, "message size %zu exceeds the server's limit %ld", t->len,
			 c->size_max);
		*enhanced = "5.3.4";
		return text;
	}
	/* RFC 6531 §3.4: non-ASCII addresses need SMTPUTF8 end to end. */
	if (utf8 && !(c->caps & SMTP_CAP_SMTPUTF8)) {
		snprintf(text, textsz, "non-ASCII address but the server does not offer SMTPUTF8");
		*enhanced = "5.6.7";
		return text;
	}
	return NULL;
}

/* Appends MAIL (and, when pipelining, every RCPT and then DATA) to b.
 * RFC 2920 §3.1: MAIL, RCPT and DATA may go in one group, DATA last; the
 * body waits for DATA's 354, and the replies are read in order (one state
 * per reply), so that no body follows a refused envelope.  Returns 0, or
 * -1 when a line is too long or an address holds a line break. */
static int envelope(struct smtp_client *c, struct buf *b)
{
	const struct smtp_txn *t = c->t;
	int utf8 = has_non_ascii(t->mail_from);
	for (int i = 0; i < t->n; i++)
		utf8 |= has_non_ascii(t->rcpts[i]);
	char params[128] = "";
	size_t pl = 0;
	if (c->caps & SMTP_CAP_SIZE)
		pl += (size_t)snprintf(params + pl, sizeof(params) - pl, " SIZE=%zu", t->len);
	if ((c->caps & SMTP_CAP_8BITMIME) && smtp_data_is_8bit(t->msg, t->len))
		pl += (size_t)snprintf(params + pl, sizeof(params) - pl, " BODY=8BITMIME");
	if (utf8)
		snprintf(params + pl, sizeof(params) - pl, " SMTPUTF8");
	size_t from = b->len;
	int bad = buf_printf(b, "MAIL FROM:<%s>%s\r\n", t->mail_from, params) < 0;
	if (c->caps & SMTP_CAP_PIPELINING) {
		for (int i = 0; i < t->n; i++)
			bad |= buf_printf(b, "RCPT TO:<%s>\r\n", t->rcpts[i]) < 0;
		bad |= buf_puts(b, "DATA\r\n") < 0;
	}
	bad |= strlen(buf_cstr(b)) != b->len;
	for (size_t i = from, start = from; i < b->len && !bad; i++)
		if (b->data[i] == '\n') {
			bad = i - start + 1 > MF_SMTP_LINE_MAX || i == 0 || b->data[i - 1] != '\r';
			start = i + 1;
		} else if (b->data[i] == '\r' && (i + 1 >= b->len || b->data[i + 1] != '\n')) {
			bad = 1;
		}
	if (bad) {
		smtp_fail(c, OUT_LOCAL, KIND_INTERNAL, 0, NULL,
			  "envelope address too long or has a line break");
		return -1;
	}
	if (c->caps & SMTP_CAP_PIPELINING) {
		c->rcpt_sent = t->n;
		c->data_sent = 1;
	}
	return 0;
}

static int send_mail(struct smtp_client *c)
{
	if (c->mail_sent) /* went out with the RSET */
		return 0;
	const char *enhanced = NULL;
	char text[160];
	if (envelope_refusal(c, &enhanced, text, sizeof(text))) {
		fail_message_local(c, enhanced, text);
		smtp_set_state(c, SMTP_READY);
		return 0;
	}
	return send_envelope(c, 0);
}

static void on_mail(struct smtp_client *c)
{
	if (c->reply.code / 100 != 2) {
		struct smtp_outcome o;
		outcome_from_reply(c, &o, SCOPE_MESSAGE);
		fail_open_rcpts(c, &o);
		c->mail_failed = 1;
	}
	if (c->rcpt_sent > 0) /* pipelined: the RCPT replies are on their way */
		smtp_set_state(c, SMTP_RCPT);
	else
		smtp_set_state(c, c->mail_failed ? SMTP_RSET : SMTP_RCPT);
}

static int send_rcpt(struct smtp_client *c)
{
	if (c->rcpt_sent > c->rcpt_idx)
		return 0; /* already sent in the pipelined group */
	c->rcpt_sent++;
	return send_cmd(c, "RCPT TO:<%s>", c->t->rcpts[c->rcpt_idx]);
}

static void on_rcpt(struct smtp_client *c)
{
	int i = c->rcpt_idx++;
	if (!c->mail_failed) {
		outcome_from_reply(c, &c->t->outs[i], SCOPE_RECIPIENT);
		if (c->reply.code / 100 == 2) {
			c->rp[i] = RP_ACCEPTED;
			c->accepted++;
		} else {
			c->rp[i] = RP_DONE;
		}
	}
	if (c->rcpt_idx < c->t->n) {
		/* smtp_set_state to the same state is a no-op: loop for the next one. */
		return;
	}
	/* A pipelined DATA's reply is on its way whatever the envelope's fate. */
	if (c->data_sent)
		smtp_set_state(c, SMTP_DATA);
	else
		smtp_set_state(c, c->mail_failed || c->accepted == 0 ? SMTP_RSET : SMTP_DATA);
}

static int send_data(struct smtp_client *c)
{
	if (c->data_sent) /* ended the pipelined group */
		return 0;
	return send_cmd(c, "DATA");
}

static void on_data(struct smtp_client *c)
{
	if (c->reply.code == 354) {
		/* RFC 2920 §3.1: a server may say 354 to a pipelined DATA although
		 * MAIL or every RCPT was refused; the client then ends the empty
		 * message with "." alone and sends no content. */
		smtp_set_state(c, c->mail_failed || c->accepted == 0 ? SMTP_EMPTY_BODY : SMTP_BODY);
		return;
	}
	struct smtp_outcome o;
	outcome_from_reply(c, &o, SCOPE_MESSAGE);
	if (o.cls == OUT_2XX) { /* 2xx to DATA is a protocol error */
		o.cls = OUT_LOCAL;
		o.kind = KIND_PROTOCOL;
	}
	fail_open_rcpts(c, &o);
	smtp_set_state(c, SMTP_RSET);
}

/* Streams the dot-stuffed message in blocks (RFC 5321 §4.5.2). */
static int send_body(struct smtp_client *c)
{
	enum { BLOCK = 65536 };
	struct smtp_dotstuff ds;
	struct buf out;
	smtp_dotstuff_init(&ds);
	buf_init(&out, 3 * BLOCK + 16);
	int rc = 0;
	for (size_t off = 0; off < c->t->len && rc == 0; off += BLOCK) {
		size_t n = c->t->len - off < BLOCK ? c->t->len - off : BLOCK;
		buf_reset(&out);
		smtp_dotstuff_feed(&ds, c->t->msg + off, n, &out);
		enum io_err e = IOE_NONE;
		char err[256];
		if (smtp_io_write(c->io, out.data, out.len,
				  capped(c, timeout_of(c, SMTP_DATA_BLOCK_MS)), &e, err,
				  sizeof(err)) < 0) {
			smtp_fail_io(c, e, "writing message in", err);
			rc = -1;
		}
	}
	if (rc == 0) {
		buf_reset(&out);
		smtp_dotstuff_end(&ds, &out);
		rc = smtp_write(c, out.data, out.len);
	}
	buf_cleanup(&out);
	return rc;
}

static void on_body(struct smtp_client *c)
{
	struct smtp_outcome o;
	outcome_from_reply(c, &o, SCOPE_MESSAGE);
	fail_open_rcpts(c, &o);
	c->txns++;
	smtp_set_state(c, c->reply.code / 100 == 2 ? SMTP_READY : SMTP_RSET);
}

/* The end-of-data indicator alone: the message is empty (RFC 5321 §4.1.1.4). */
static int send_empty_body(struct smtp_client *c)
{
	return smtp_write(c, ".\r\n", 3);
}

/* Every recipient already has its outcome (the refusals of MAIL or RCPT);
 * the reply only says whether the session is still sane.  Then RSET, as
 * after any failed envelope. */
static void on_empty_body(struct smtp_client *c)
{
	log_info("event=smtp_empty_body session=%s host=%s code=%d enhanced=%s", c->sid, c->p.host,
		 c->reply.code, c->reply.enhanced);
	int k = c->reply.code / 100;
	if (k != 2 && k != 4 && k != 5) {
		smtp_fail_reply(c, KIND_PROTOCOL);
		return;
	}
	smtp_set_state(c, SMTP_RSET);
}

/* ---- QUIT -------------------------------------------------------------- */

static int send_quit(struct smtp_client *c)
{
	return send_cmd(c, "QUIT");
}

static void on_quit(struct smtp_client *c)
{
	smtp_io_free(c->io);
	c->io = NULL;
	smtp_set_state(c, SMTP_CLOSED);
}

/* ---- public ------------------------------------------------------------ */

int smtp_client_open(struct smtp_client *c, struct smtp_outcome *fail)
{
	smtp_run(c, SMTP_READY);
	if (c->state == SMTP_READY)
		return 0;
	*fail = c->fail;
	return -1;
}

enum smtp_send_result smtp_client_send(struct smtp_client *c, const struct smtp_txn *t)
{
	free(c->rp);
	c->rp = xcalloc((size_t)(t->n > 0 ? t->n : 1), sizeof(*c->rp));
	c->t = t;
	c->rcpt_idx = c->rcpt_sent = c->accepted = c->mail_failed = c->mail_sent = c->data_sent = 0;
	c->stale = 0;
	for (int i = 0; i < t->n; i++)
		outcome_clear(&t->outs[i]);
	if (t->n <= 0) {
		c->t = NULL;
		return SMTP_SEND_DONE; /* nothing to send */
	}
	if (c->state != SMTP_READY) {
		smtp_fail(c, OUT_LOCAL, KIND_INTERNAL, 0, NULL, "session not ready");
	} else if (c->used) {
		c->reuse_rset = 1;
		smtp_set_state(c, SMTP_RSET);
	} else {
		smtp_set_state(c, SMTP_MAIL);
	}
	c->used = 1;
	smtp_run(c, SMTP_READY);
	if (c->stale) {
		c->t = NULL;
		return SMTP_SEND_STALE;
	}
	if (c->state != SMTP_READY)
		fail_open_rcpts(c, &c->fail);
	for (int i = 0; i < t->n; i++)
		smtp_client_describe(c, &t->outs[i]);
	c->t = NULL;
	return SMTP_SEND_DONE;
}

void smtp_client_set_deadline(struct smtp_client *c, long deadline_ms)
{
	c->p.deadline_ms = deadline_ms;
}

int smtp_client_ready(const struct smtp_client *c)
{
	return c->state == SMTP_READY;
}

int smtp_client_alive(struct smtp_client *c)
{
	return c->state == SMTP_READY && c->io && !smtp_io_idle_broken(c->io);
}

void smtp_client_quit(struct smtp_client *c)
{
	if (c->state == SMTP_READY) {
		double keep = c->p.timeout_scale;
		/* Cap QUIT's wait whatever the scale. */
		double base = c->p.timeout_scale > 0 ? c->p.timeout_scale : 1.0;
		if ((double)states[SMTP_QUIT].timeout_ms * base > SMTP_QUIT_MAX_MS)
			c->p.timeout_scale = (double)SMTP_QUIT_MAX_MS / (double)states[SMTP_QUIT].timeout_ms;
		smtp_set_state(c, SMTP_QUIT);
		smtp_run(c, SMTP_CLOSED);
		c->p.timeout_scale = keep;
	}
	smtp_io_free(c->io);
	c->io = NULL;
	if (c->state != SMTP_FAILED)
		smtp_set_state(c, SMTP_CLOSED);
}

void smtp_client_quit_nowait(struct smtp_client *c)
{
	if (c->state == SMTP_READY && c->io) {
		smtp_set_state(c, SMTP_QUIT);
		send_quit(c); /* a failed write closes and marks it failed */
	}
	smtp_io_free(c->io);
	c->io = NULL;
	if (c->state != SMTP_FAILED)
		smtp_set_state(c, SMTP_CLOSED);
}

unsigned smtp_client_caps(const struct smtp_client *c)
{
	return c->caps;
}

void smtp_client_describe(const struct smtp_client *c, struct smtp_outcome *o)
{
	snprintf(o->mx, sizeof(o->mx), "%s", c->p.host);
	snprintf(o->tls_version, sizeof(o->tls_version), "%s", c->tls_active ? c->tls_version : "");
	snprintf(o->tls_cipher, sizeof(o->tls_cipher), "%s", c->tls_active ? c->tls_cipher : "");
	o->tls_verified = c->tls_active ? c->tls_verified : 0;
	o->tls_resumed = c->tls_active ? c->tls_resumed : 0;
}

int smtp_client_tls_resumed(const struct smtp_client *c)
{
	return c->tls_active && c->tls_resumed;
}

int smtp_client_txns(const struct smtp_client *c)
{
	return c->txns;
}

const char *smtp_client_state_name(const struct smtp_client *c)
{
	return states[c->state].name;
}
