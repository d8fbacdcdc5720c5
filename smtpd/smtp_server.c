/*
 * smtp_server.c - inbound SMTP server (see smtp_server.h).
 *
 * One accept thread polls the listening socket and a wake-up pipe; each
 * session runs on its own joinable thread and reads with poll() on its
 * socket and the same pipe, so shutdown reaches every idle session at
 * once.  Finished sessions are joined by the accept thread (at least once
 * a second) or by smtp_server_free().
 *
 * Replies are queued and flushed only when the session is about to wait
 * for input, which is what RFC 2920 (PIPELINING) asks of a server: a
 * pipelined group gets its replies in one write, and the 354 to DATA is
 * always flushed before we wait for the message.
 *
 * STARTTLS (RFC 3207) runs the handshake on the session's blocking socket
 * (bounded by SO_RCVTIMEO/SO_SNDTIMEO); afterwards all I/O goes through
 * the session's struct tls_conn (relay/tls.c, which holds every OpenSSL
 * call).  Plaintext pipelined after STARTTLS is discarded, never read as
 * if it came over TLS (the CVE-2011-0411 command injection).
 *
 * The line reader is this file's own, not relay/smtp_io.c's: a session
 * waits on its socket and the shutdown pipe at once, tells an idle
 * timeout from the session deadline and from shutdown (three different
 * 421s), and hands DATA lines longer than its buffer on in pieces, while
 * smtp_io reads whole replies on a non-blocking socket with one deadline.
 */
#include "smtpd/smtp_server.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "smtpd/smtp_auth.h"
#include "smtpd/smtp_server_cmd.h"
#include "relay/tls.h"
#include "util/buf.h"
#include "util/config.h"
#include "util/log.h"
#include "util/xmalloc.h"

enum sess_state { SS_GREET, SS_READY, SS_MAIL, SS_RCPT };
static const char *const sess_state_names[] = { "greet", "ready", "mail", "rcpt" };

/* Why a read returned without a line. */
enum rd { RD_OK = 0, RD_CLOSED = -1, RD_TIMEOUT = -2, RD_SHUTDOWN = -3, RD_DEADLINE = -4 };

struct session {
	struct smtp_server *srv;
	struct session *next;
	pthread_t thread;
	int fd;
	int finished; /* under srv->lock */
	long deadline_ms; /* CLOCK_MONOTONIC: the session ends then */
	char id[32];
	char peer[64];
	char helo[MF_SMTP_LINE_MAX];
	int esmtp;
	struct tls_conn *tls;  /* after STARTTLS, else NULL */
	int loopback;          /* the peer is 127.0.0.0/8 or ::1 */
	int authed;            /* AUTH succeeded (RFC 4954) */
	char auth_user[MF_SMTP_AUTH_USER_MAX];
	int body8;             /* MAIL BODY=8BITMIME */
	int utf8;              /* MAIL SMTPUTF8 */
	void *app;             /* the application's, see smtp_server_envelope.data */
	char tls_version[16];  /* e.g. "TLSv1.3", for env->tls */
	int errors;
	int messages;
	int transactions;      /* MAIL commands accepted (max_messages) */
	enum sess_state state;
	char mail_from[MF_ADDRESS_MAX + 1];
	char *rcpts[MF_SMTP_SERVER_RCPTS_MAX];
	size_t nrcpts;
	char in[MF_SMTP_SERVER_INBUF];
	size_t in_start, in_end;
	struct buf out;
	struct buf data;
};

struct smtp_server {
	struct smtp_server_params p;
	char *listen;
	char *hostname;
	int lfd;
	int port;
	int wake[2];
	pthread_t acceptor;
	struct tls_ctx *tls;  /* STARTTLS offered when not NULL; replaced under lock */
	struct tls_ctx **retired; /* replaced contexts: a handshake may still use one */
	size_t nretired;
	pthread_mutex_t lock;
	struct session *sessions;
	int nsessions;
	unsigned long counter;
	atomic_int stopping; /* set by smtp_server_free, read by the acceptor */
};

void smtp_server_reply_set(struct smtp_server_reply *r, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	r->code = code;
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
}

/* ---- output ---- */

static void sess_reply(struct session *s, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void sess_reply(struct session *s, int code, const char *fmt, ...)
{
	char text[MF_SMTP_SERVER_REPLY_TEXT];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	buf_printf(&s->out, "%03d %s\r\n", code, text);
}

static long mono_ms(void)
{
	return tls_now_ms();
}

static int sess_flush(struct session *s)
{
	size_t off = 0;
	while (off < s->out.len) {
		ssize_t n;
		if (s->tls) {
			/* The socket's SO_SNDTIMEO bounds the write; when it runs
			 * out OpenSSL asks to wait, and the deadline (now) says no. */
			enum io_err ioerr;
			char err[256];
			n = tls_conn_write(s->tls, s->out.data + off, s->out.len - off, mono_ms(), &ioerr, err,
					   sizeof(err)) == 0 ? (ssize_t)(s->out.len - off) : -1;
		} else {
			n = send(s->fd, s->out.data + off, s->out.len - off, MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
		}
		if (n <= 0) {
			buf_reset(&s->out);
			return -1;
		}
		off += (size_t)n;
	}
	buf_reset(&s->out);
	return 0;
}

/* ---- input ---- */

/*
 * One TLS read into the input buffer: bytes read, or a negative enum rd.
 * The socket's SO_RCVTIMEO bounds a record that arrives in pieces (as it
 * did when the session called SSL_read itself); the deadline bounds any
 * wait OpenSSL asks for.
 */
static ssize_t sess_tls_read(struct session *s)
{
	enum io_err ioerr;
	char err[256];
	long now = mono_ms(), left = s->deadline_ms - now;
	long deadline = now + (left < s->srv->p.idle_timeout_ms ? left : s->srv->p.idle_timeout_ms);
	ssize_t n = tls_conn_read(s->tls, s->in + s->in_end, sizeof(s->in) - s->in_end, deadline, &ioerr, err,
				  sizeof(err));
	if (n > 0)
		return n;
	if (ioerr != IOE_TIMEOUT)
		return RD_CLOSED;
	return mono_ms() >= s->deadline_ms ? RD_DEADLINE : RD_TIMEOUT;
}

/* Flushes pending replies, then waits for more input (or shutdown). */
static enum rd sess_fill(struct session *s)
{
	if (sess_flush(s) != 0)
		return RD_CLOSED;
	if (s->in_start > 0) {
		memmove(s->in, s->in + s->in_start, s->in_end - s->in_start);
		s->in_end -= s->in_start;
		s->in_start = 0;
	}
	for (;;) {
		/* Bytes already decrypted inside OpenSSL do not show in poll(). */
		if (!(s->tls && tls_conn_pending(s->tls) > 0)) {
			struct pollfd pfd[2] = { { .fd = s->fd, .events = POLLIN },
						 { .fd = s->srv->wake[0], .events = POLLIN } };
			/* Wait for the next bytes at most the idle timeout, and
			 * never past the session's deadline. */
			long left = s->deadline_ms - mono_ms();
			if (left <= 0)
				return RD_DEADLINE;
			int wait = left < s->srv->p.idle_timeout_ms ? (int)left : s->srv->p.idle_timeout_ms;
			int r = poll(pfd, 2, wait);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return RD_CLOSED;
			if (r == 0)
				return wait < s->srv->p.idle_timeout_ms ? RD_DEADLINE : RD_TIMEOUT;
			if (pfd[1].revents)
				return RD_SHUTDOWN;
		}
		ssize_t n;
		if (s->tls) {
			n = sess_tls_read(s);
			if (n < 0)
				return (enum rd)n;
		} else {
			n = recv(s->fd, s->in + s->in_end, sizeof(s->in) - s->in_end, 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return RD_TIMEOUT;
			if (n <= 0)
				return RD_CLOSED;
		}
		s->in_end += (size_t)n;
		return RD_OK;
	}
}

/*
 * Returns the next line (without its LF, and without the CR of a CRLF;
 * *crlf tells which).  When the buffer fills up without a LF, returns the
 * bytes so far with *partial set.  The line points into the input buffer
 * and is valid until the next read.
 */
static enum rd sess_read_line(struct session *s, const char **line, size_t *len, int *crlf, int *partial)
{
	for (;;) {
		char *b = s->in + s->in_start;
		size_t avail = s->in_end - s->in_start;
		char *lf = memchr(b, '\n', avail);
		if (lf != NULL) {
			size_t n = (size_t)(lf - b);
			*crlf = n > 0 && b[n - 1] == '\r';
			*line = b;
			*len = *crlf ? n - 1 : n;
			*partial = 0;
			s->in_start += n + 1;
			return RD_OK;
		}
		if (avail == sizeof(s->in)) {
			/* Keep a trailing CR so that it can still pair with the LF. */
			size_t n = b[avail - 1] == '\r' ? avail - 1 : avail;
			*line = b;
			*len = n;
			*crlf = 0;
			*partial = 1;
			s->in_start += n;
			return RD_OK;
		}
		enum rd r = sess_fill(s);
		if (r != RD_OK)
			return r;
	}
}

/* ---- transaction ---- */

static void sess_set_state(struct session *s, enum sess_state st)
{
	if (s->state != st)
		log_debug("event=smtp_server_state session=%s from=%s to=%s", s->id, sess_state_names[s->state],
			  sess_state_names[st]);
	s->state = st;
}

static void sess_reset(struct session *s)
{
	for (size_t i = 0; i < s->nrcpts; i++)
		free(s->rcpts[i]);
	s->nrcpts = 0;
	s->mail_from[0] = '\0';
	s->body8 = s->utf8 = 0;
	if (s->state > SS_READY)
		sess_set_state(s, SS_READY);
}

static void sess_envelope(struct session *s, struct smtp_server_envelope *env)
{
	env->session = s->id;
	env->peer = s->peer;
	env->helo = s->helo;
	env->tls = s->tls ? s->tls_version : NULL;
	env->mail_from = s->mail_from;
	env->rcpts = (const char *const *)s->rcpts;
	env->nrcpts = s->nrcpts;
	env->auth_user = s->authed ? s->auth_user : NULL;
	env->body_8bitmime = s->body8;
	env->smtputf8 = s->utf8;
	env->data = &s->app;
}

/* A callback's reply, made safe to send. */
static void sess_send_callback_reply(struct session *s, struct smtp_server_reply *r)
{
	if (r->code < 200 || r->code > 599) {
		smtp_server_reply_set(r, 451, "4.3.0 Internal error");
	}
	for (char *p = r->text; *p; p++)
		if (*p == '\r' || *p == '\n')
			*p = ' ';
	sess_reply(s, r->code, "%s", r->text);
}

static void sess_add_received(struct session *s)
{
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	/* RFC 5321 §4.4: the server inserts a trace line. */
	buf_printf(&s->data, "Received: from %s ([%s])\r\n\tby %s (mailferry) with %s id %s", s->helo, s->peer,
		   s->srv->hostname, s->tls ? "ESMTPS" : (s->esmtp ? "ESMTP" : "SMTP"), s->id);
	if (s->nrcpts == 1)
		buf_printf(&s->data, "\r\n\tfor <%s>", s->rcpts[0]);
	buf_printf(&s->data, "; %s\r\n", date);
}

/*
 * Reads the message after 354 up to the terminating <CRLF>.<CRLF> and
 * undoes dot-stuffing (RFC 5321 §4.5.2).  Only a "." line that ends in
 * CRLF and follows a CRLF ends the data, so bare-LF tricks cannot end a
 * message early (SMTP smuggling).  *too_big is set when the message
 * exceeded max_message_size (its bytes are then read and dropped).
 */
static enum rd sess_read_data(struct session *s, int *too_big)
{
	buf_cleanup(&s->data);
	buf_init(&s->data, s->srv->p.max_message_size + MF_SMTP_SERVER_TRACE_MAX);
	sess_add_received(s);
	size_t limit = s->data.len + s->srv->p.max_message_size;
	int prev_crlf = 1, midline = 0;
	*too_big = 0;
	for (;;) {
		const char *line;
		size_t len;
		int crlf, partial;
		enum rd r = sess_read_line(s, &line, &len, &crlf, &partial);
		if (r != RD_OK)
			return r;
		if (!midline && !partial && crlf && prev_crlf && len == 1 && line[0] == '.')
			return RD_OK;
		if (!midline && len > 0 && line[0] == '.') {
			line++;
			len--;
		}
		size_t eol = partial ? 0 : (crlf ? 2 : 1);
		if (!*too_big && s->data.len + len + eol > limit)
			*too_big = 1;
		if (!*too_big) {
			buf_append(&s->data, line, len);
			buf_append(&s->data, crlf ? "\r\n" : "\n", eol);
		}
		midline = partial;
		if (!partial)
			prev_crlf = crlf;
	}
}

/* ---- commands ---- */

static int sess_has_tls_ctx(struct session *s)
{
	pthread_mutex_lock(&s->srv->lock);
	int has = s->srv->tls != NULL;
	pthread_mutex_unlock(&s->srv->lock);
	return has;
}

/* RFC 4954 §4 leaves it to the server; we offer AUTH inside TLS only,
 * and without it to a loopback client when the application allows. */
static int auth_offered(const struct session *s)
{
	return s->srv->p.on_auth && (s->tls || (s->loopback && s->srv->p.auth_plaintext_loopback));
}

/* The server side of the TLS handshake on the session's socket; 0 or -1. */
static int sess_tls_accept(struct session *s)
{
	enum io_err ioerr;
	char err[256];
	/* The context stays valid while this handshake runs: a reload
	 * retires the old one and frees it only with the server. */
	pthread_mutex_lock(&s->srv->lock);
	struct tls_ctx *ctx = s->srv->tls;
	pthread_mutex_unlock(&s->srv->lock);
	if (ctx == NULL)
		return -1;
	/* SO_RCVTIMEO/SO_SNDTIMEO bound each step of the handshake; when one
	 * runs out OpenSSL asks to wait, and the deadline (now) says no. */
	s->tls = tls_conn_accept(ctx, s->fd, mono_ms(), &ioerr, err, sizeof(err));
	if (s->tls == NULL) {
		log_info("event=smtp_tls_failed session=%s error=\"%s\"", s->id, err);
		return -1;
	}
	char cipher[64];
	int verified;
	tls_conn_info(s->tls, s->tls_version, sizeof(s->tls_version), cipher, sizeof(cipher), &verified);
	log_info("event=smtp_tls session=%s version=%s cipher=%s", s->id, s->tls_version, cipher);
	return 0;
}

static void cmd_helo(struct session *s, const struct smtp_cmd *c)
{
	sess_reset(s);
	snprintf(s->helo, sizeof(s->helo), "%s", c->arg);
	s->esmtp = c->verb == SMTP_VERB_EHLO;
	sess_set_state(s, SS_READY);
	if (!s->esmtp) {
		sess_reply(s, 250, "%s", s->srv->hostname);
		return;
	}
	/* RFC 5321 §4.1.1.1: a multiline reply, one extension per line. */
	buf_printf(&s->out, "250-%s\r\n250-PIPELINING\r\n250-SIZE %zu\r\n250-8BITMIME\r\n%s%s%s250 ENHANCEDSTATUSCODES\r\n",
		   s->srv->hostname, s->srv->p.max_message_size, s->srv->p.smtputf8 ? "250-SMTPUTF8\r\n" : "",
		   sess_has_tls_ctx(s) && !s->tls ? "250-STARTTLS\r\n" : "",
		   auth_offered(s) ? "250-AUTH PLAIN LOGIN\r\n" : "");
}

/* ---- AUTH (RFC 4954) ---- */

/* Reads one SASL response line after a 334; 0, 1 when the client
 * cancelled ("*", §4), -1 when the session must end (*why set), -2 when
 * the line was too long (§4: 500 5.5.6). */
static int auth_read_response(struct session *s, char *out, size_t outsz, enum rd *why)
{
	const char *line;
	size_t len;
	int crlf, partial;
	*why = sess_read_line(s, &line, &len, &crlf, &partial);
	if (*why != RD_OK)
		return -1;
	if (partial || len >= outsz) {
		while (partial && (*why = sess_read_line(s, &line, &len, &crlf, &partial)) == RD_OK)
			;
		return *why == RD_OK ? -2 : -1;
	}
	if (len == 1 && line[0] == '*')
		return 1;
	memcpy(out, line, len);
	out[len] = '\0';
	return 0;
}

/* Returns 1 when the session should end. */
static int cmd_auth(struct session *s, const struct smtp_cmd *c, enum rd *why)
{
	if (s->srv->p.on_auth == NULL) {
		sess_reply(s, 502, "5.5.1 Error: command not implemented");
		return ++s->errors >= MF_SMTP_SERVER_ERRORS_MAX;
	}
	if (s->state == SS_GREET) {
		sess_reply(s, 503, "5.5.1 Error: send EHLO first");
		return 0;
	}
	if (s->authed) {
		sess_reply(s, 503, "5.5.1 Error: already authenticated"); /* RFC 4954 §4 */
		return 0;
	}
	if (s->state != SS_READY) {
		sess_reply(s, 503, "5.5.1 Error: AUTH not permitted during a mail transaction");
		return 0;
	}
	if (!auth_offered(s)) {
		/* RFC 4954 §6: the mechanism needs an encrypted channel. */
		sess_reply(s, 538, "5.7.11 Encryption required for requested authentication mechanism");
		return ++s->errors >= MF_SMTP_SERVER_ERRORS_MAX;
	}
	const char *mech = c->arg, *sp = strchr(c->arg, ' ');
	size_t mlen = sp ? (size_t)(sp - mech) : strlen(mech);
	const char *ir = sp ? sp + 1 : NULL;
	int plain = mlen == 5 && strncasecmp(mech, "PLAIN", 5) == 0;
	int login = mlen == 5 && strncasecmp(mech, "LOGIN", 5) == 0;
	if (!plain && !login) {
		sess_reply(s, 504, "5.5.4 Unrecognized authentication type");
		return ++s->errors >= MF_SMTP_SERVER_ERRORS_MAX;
	}
	char resp[MF_SMTP_LINE_MAX], authzid[MF_SMTP_AUTH_USER_MAX], user[MF_SMTP_AUTH_USER_MAX];
	char pass[MF_SMTP_AUTH_PASS_MAX];
	int bad = 0, r = 0;
	if (plain) {
		if (ir) {
			snprintf(resp, sizeof(resp), "%s", ir);
		} else {
			buf_puts(&s->out, "334 \r\n"); /* RFC 4954 §4: an empty challenge */
			r = auth_read_response(s, resp, sizeof(resp), why);
		}
		if (r == 0)
			bad = smtp_auth_plain_decode(resp, strlen(resp), authzid, sizeof(authzid), user, sizeof(user),
						     pass, sizeof(pass));
	} else {
		if (ir) {
			snprintf(resp, sizeof(resp), "%s", ir);
		} else {
			sess_reply(s, 334, "VXNlcm5hbWU6"); /* "Username:" */
			r = auth_read_response(s, resp, sizeof(resp), why);
		}
		if (r == 0 && (bad = smtp_auth_login_decode(resp, strlen(resp), user, sizeof(user))) == 0) {
			sess_reply(s, 334, "UGFzc3dvcmQ6"); /* "Password:" */
			r = auth_read_response(s, resp, sizeof(resp), why);
			if (r == 0)
				bad = smtp_auth_login_decode(resp, strlen(resp), pass, sizeof(pass));
		}
	}
	explicit_bzero(resp, sizeof(resp));
	if (r == -1)
		return 1;
	if (r == 1) {
		sess_reply(s, 501, "5.0.0 Authentication cancelled");
		return 0;
	}
	if (r == -2) {
		sess_reply(s, 500, "5.5.6 Authentication Exchange line is too long");
		return ++s->errors >= MF_SMTP_SERVER_ERRORS_MAX;
	}
	if (bad) {
		explicit_bzero(pass, sizeof(pass));
		sess_reply(s, 501, "5.5.2 Cannot decode the authentication response");
		return ++s->errors >= MF_SMTP_SERVER_ERRORS_MAX;
	}
	struct smtp_server_reply rep;
	smtp_server_reply_set(&rep, 535, "5.7.8 Authentication credentials invalid");
	struct smtp_server_envelope env;
	sess_envelope(s, &env);
	s->srv->p.on_auth(s->srv->p.arg, &env, user, pass, &rep);
	explicit_bzero(pass, sizeof(pass));
	if (rep.code == 235) {
		s->authed = 1;
		snprintf(s->auth_user, sizeof(s->auth_user), "%s", user);
		log_info("event=smtp_auth session=%s result=ok", s->id);
	} else {
		log_info("event=smtp_auth session=%s result=refused code=%d", s->id, rep.code);
	}
	sess_send_callback_reply(s, &rep);
	return rep.code == 421;
}

/* Returns 1 when the session should end. */
static int cmd_mail(struct session *s, const struct smtp_cmd *c)
{
	if (s->state == SS_GREET) {
		sess_reply(s, 503, "5.5.1 Error: send HELO/EHLO first");
	} else if (s->state != SS_READY) {
		sess_reply(s, 503, "5.5.1 Error: nested MAIL command");
	} else if (s->srv->p.on_auth && !s->authed) {
		/* RFC 4954 §6 */
		sess_reply(s, 530, "5.7.0 Authentication required");
	} else if (s->srv->p.max_messages > 0 && s->transactions >= s->srv->p.max_messages) {
		sess_reply(s, 421, "4.7.0 %s Error: too many messages in one session", s->srv->hostname);
		return 1;
	} else if (c->size >= 0 && (unsigned long long)c->size > s->srv->p.max_message_size) {
		/* RFC 1870 §6.2 */
		sess_reply(s, 552, "5.3.4 Message size exceeds fixed maximum message size");
	} else if (c->path_8bit && !c->smtputf8) {
		/* RFC 6531 §3.7.4.1 */
		sess_reply(s, 553, "5.6.7 Non-ASCII address needs the SMTPUTF8 parameter");
	} else {
		snprintf(s->mail_from, sizeof(s->mail_from), "%s", c->path);
		s->body8 = c->body == SMTP_BODY_8BITMIME;
		s->utf8 = c->smtputf8;
		s->transactions++;
		sess_set_state(s, SS_MAIL);
		sess_reply(s, 250, "2.1.0 Ok");
	}
	return 0;
}

static void cmd_rcpt(struct session *s, const struct smtp_cmd *c)
{
	if (s->state != SS_MAIL && s->state != SS_RCPT) {
		sess_reply(s, 503, "5.5.1 Error: need MAIL command");
		return;
	}
	if (s->nrcpts >= (size_t)s->srv->p.max_rcpts) {
		/* RFC 5321 §4.5.3.1.10 */
		sess_reply(s, 452, "4.5.3 Error: too many recipients");
		return;
	}
	if (c->path_8bit && !s->utf8) {
		/* RFC 6531 §3.7.4.1 */
		sess_reply(s, 553, "5.6.7 Non-ASCII address needs SMTPUTF8 on MAIL");
		return;
	}
	struct smtp_server_reply r;
	smtp_server_reply_set(&r, 250, "2.1.5 Ok");
	if (s->srv->p.on_rcpt) {
		struct smtp_server_envelope env;
		sess_envelope(s, &env);
		s->srv->p.on_rcpt(s->srv->p.arg, &env, c->path, &r);
	}
	if (r.code >= 200 && r.code < 300) {
		s->rcpts[s->nrcpts++] = xstrdup(c->path);
		sess_set_state(s, SS_RCPT);
	} else {
		log_info("event=smtp_rcpt_refused session=%s " LOG_RCPT_FMT " code=%d", s->id,
			 LOG_RCPT(MF_LOG_INFO, c->path),
			 r.code);
	}
	sess_send_callback_reply(s, &r);
}

/* Returns -1 when the connection is gone. */
static int cmd_data(struct session *s, enum rd *why)
{
	if (s->state != SS_RCPT) {
		/* RFC 2920 §3.1: DATA after no accepted recipient gets 503/554. */
		if (s->state == SS_MAIL)
			sess_reply(s, 554, "5.5.1 Error: no valid recipients");
		else
			sess_reply(s, 503, "5.5.1 Error: need RCPT command");
		return 0;
	}
	sess_reply(s, 354, "End data with <CR><LF>.<CR><LF>");
	int too_big = 0;
	*why = sess_read_data(s, &too_big);
	if (*why != RD_OK) {
		sess_reset(s);
		return -1;
	}
	struct smtp_server_reply r;
	if (too_big) {
		smtp_server_reply_set(&r, 552, "5.3.4 Error: message too large (max %zu bytes)", s->srv->p.max_message_size);
		if (s->srv->p.on_too_big) {
			struct smtp_server_envelope env;
			sess_envelope(s, &env);
			s->srv->p.on_too_big(s->srv->p.arg, &env);
		}
	} else {
		smtp_server_reply_set(&r, 250, "2.0.0 Ok: message accepted");
		if (s->srv->p.on_message) {
			struct smtp_server_envelope env;
			sess_envelope(s, &env);
			s->srv->p.on_message(s->srv->p.arg, &env, s->data.data, s->data.len, &r);
		}
	}
	log_info("event=smtp_message session=%s from=%s rcpts=%zu size=%zu code=%d", s->id,
		 s->mail_from[0] ? s->mail_from : "<>", s->nrcpts, s->data.len, r.code);
	s->messages++;
	sess_send_callback_reply(s, &r);
	buf_cleanup(&s->data);
	buf_init(&s->data, 0);
	sess_reset(s);
	return 0;
}

/* RFC 3207: 220, then the handshake; -1 when the session must end. */
static int cmd_starttls(struct session *s)
{
	if (!sess_has_tls_ctx(s)) {
		sess_reply(s, 502, "5.5.1 Error: command not implemented");
		return 0;
	}
	if (s->tls) {
		sess_reply(s, 554, "5.5.1 Error: TLS already active");
		return 0;
	}
	sess_reply(s, 220, "2.0.0 Ready to start TLS");
	if (sess_flush(s) != 0)
		return -1;
	if (s->in_end > s->in_start) {
		log_warn("event=smtp_starttls_pipelined session=%s dropped=%zu", s->id, s->in_end - s->in_start);
		if (s->srv->p.strict_pipelining)
			return -1; /* RFC 3207 §4.2: a client that does this is not to be trusted */
	}
	s->in_start = s->in_end = 0;
	if (sess_tls_accept(s) != 0)
		return -1;
	/* RFC 3207 §4.2: forget everything learnt before the handshake. */
	sess_reset(s);
	s->helo[0] = '\0';
	s->esmtp = 0;
	s->authed = 0;
	s->auth_user[0] = '\0';
	sess_set_state(s, SS_GREET);
	return 0;
}

/* Handles one command line; returns 1 when the session should end. */
static int sess_command(struct session *s, const char *line, size_t len, enum rd *why)
{
	struct smtp_cmd c;
	enum smtp_cmd_result pr = s->srv->p.smtputf8 ? smtp_cmd_parse_utf8(line, len, &c) : smtp_cmd_parse(line, len, &c);
	int is_mail = c.verb == SMTP_VERB_MAIL;
	switch (pr) {
	case SMTP_CMD_OK:
		break;
	case SMTP_CMD_BAD_VERB:
		sess_reply(s, 500, "5.5.2 Error: command not recognized");
		return ++s->errors >= MF_SMTP_SERVER_ERRORS_MAX;
	case SMTP_CMD_BAD_PATH:
		sess_reply(s, 501, is_mail ? "5.1.7 Bad sender address syntax" : "5.1.3 Bad recipient address syntax");
		return ++s->errors >= MF_SMTP_SERVER_ERRORS_MAX;
	case SMTP_CMD_BAD_PARAM:
		sess_reply(s, 555, "5.5.4 Unsupported option");
		return ++s->errors >= MF_SMTP_SERVER_ERRORS_MAX;
	case SMTP_CMD_BAD_SYNTAX:
	default:
		sess_reply(s, 501, "5.5.4 Syntax error in parameters (%s)", smtp_verb_name(c.verb));
		return ++s->errors >= MF_SMTP_SERVER_ERRORS_MAX;
	}
	switch (c.verb) {
	case SMTP_VERB_HELO:
	case SMTP_VERB_EHLO:
		cmd_helo(s, &c);
		return 0;
	case SMTP_VERB_MAIL:
		return cmd_mail(s, &c);
	case SMTP_VERB_AUTH:
		return cmd_auth(s, &c, why);
	case SMTP_VERB_RCPT:
		cmd_rcpt(s, &c);
		return 0;
	case SMTP_VERB_DATA:
		return cmd_data(s, why) != 0;
	case SMTP_VERB_RSET:
		sess_reset(s);
		sess_reply(s, 250, "2.0.0 Ok");
		return 0;
	case SMTP_VERB_NOOP:
		sess_reply(s, 250, "2.0.0 Ok");
		return 0;
	case SMTP_VERB_QUIT:
		sess_reply(s, 221, "2.0.0 Bye");
		return 1;
	case SMTP_VERB_VRFY:
		sess_reply(s, 252, "2.5.2 Cannot VRFY user");
		return 0;
	case SMTP_VERB_HELP:
		sess_reply(s, 214, "2.0.0 See RFC 5321");
		return 0;
	case SMTP_VERB_STARTTLS:
		if (cmd_starttls(s) != 0) {
			*why = RD_CLOSED;
			return 1;
		}
		return 0;
	default:
		/* EXPN, BDAT: not offered. */
		sess_reply(s, 502, "5.5.1 Error: command not implemented");
		return ++s->errors >= MF_SMTP_SERVER_ERRORS_MAX;
	}
}

/* Before the banner: the TLS handshake of implicit TLS, and with
 * strict_pipelining the check that the client has not talked first (a
 * client must wait for the greeting, RFC 5321 §3.1 and §4.3.1; one that
 * does not is a spam engine or an injection attempt).  The check waits
 * up to greet_wait_ms (postscreen's greet wait) for such bytes, or only
 * looks at what has arrived when it is 0; the wait ends early at
 * shutdown.  0, or -1 to close. */
static int sess_greet(struct session *s)
{
	/* With implicit TLS the client speaks first (its ClientHello). */
	if (s->srv->p.strict_pipelining && !s->srv->p.implicit_tls) {
		struct pollfd pfd[2] = { { .fd = s->fd, .events = POLLIN }, { .fd = s->srv->wake[0], .events = POLLIN } };
		int r;
		while ((r = poll(pfd, 2, s->srv->p.greet_wait_ms)) < 0 && errno == EINTR)
			;
		if (r > 0 && (pfd[0].revents & POLLIN)) {
			char b;
			if (recv(s->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 1) {
				log_warn("event=smtp_pregreet session=%s peer=%s", s->id, s->peer);
				sess_reply(s, 554, "5.5.0 %s Error: talked before the greeting", s->srv->hostname);
				sess_flush(s);
				if (s->srv->p.on_refused)
					s->srv->p.on_refused(s->srv->p.arg, "pregreet");
				return -1;
			}
		}
	}
	if (s->srv->p.implicit_tls && sess_tls_accept(s) != 0)
		return -1;
	return 0;
}

static void sess_run(struct session *s)
{
	if (sess_greet(s) != 0) {
		log_info("event=smtp_session_end session=%s reason=greeting messages=0", s->id);
		return;
	}
	sess_reply(s, 220, "%s ESMTP mailferry", s->srv->hostname);
	enum rd why = RD_OK;
	const char *reason = "quit";
	for (;;) {
		const char *line;
		size_t len;
		int crlf, partial;
		why = sess_read_line(s, &line, &len, &crlf, &partial);
		if (why != RD_OK)
			break;
		if (partial || len + 2 > MF_SMTP_LINE_MAX) {
			/* RFC 5321 §4.5.3.1.4/6: drop the rest of the line. */
			while (partial && (why = sess_read_line(s, &line, &len, &crlf, &partial)) == RD_OK)
				;
			if (why != RD_OK)
				break;
			sess_reply(s, 500, "5.5.2 Error: line too long");
			if (++s->errors >= MF_SMTP_SERVER_ERRORS_MAX) {
				reason = "errors";
				break;
			}
			continue;
		}
		if (sess_command(s, line, len, &why)) {
			if (why == RD_OK && s->errors >= MF_SMTP_SERVER_ERRORS_MAX) {
				reason = "errors";
				sess_reply(s, 421, "4.7.0 %s Error: too many errors", s->srv->hostname);
			}
			break;
		}
	}
	if (why == RD_TIMEOUT) {
		reason = "timeout";
		sess_reply(s, 421, "4.4.2 %s Error: timeout exceeded", s->srv->hostname);
	} else if (why == RD_DEADLINE) {
		reason = "deadline";
		sess_reply(s, 421, "4.4.2 %s Error: session time limit exceeded", s->srv->hostname);
	} else if (why == RD_SHUTDOWN) {
		reason = "shutdown";
		sess_reply(s, 421, "4.3.2 %s Service shutting down", s->srv->hostname);
	} else if (why == RD_CLOSED) {
		reason = "disconnect";
	}
	if (why != RD_CLOSED)
		sess_flush(s);
	log_info("event=smtp_session_end session=%s reason=%s messages=%d", s->id, reason, s->messages);
}

static void *session_main(void *arg)
{
	struct session *s = arg;
	struct smtp_server *srv = s->srv;
	log_info("event=smtp_session_start session=%s peer=%s", s->id, s->peer);
	if (srv->p.on_session_start)
		srv->p.on_session_start(srv->p.arg);
	sess_run(s);
	sess_reset(s);
	if (srv->p.on_session_end)
		srv->p.on_session_end(srv->p.arg, s->app);
	s->app = NULL;
	if (s->tls) {
		tls_conn_close(s->tls);
		tls_conn_free(s->tls);
		s->tls = NULL;
	}
	buf_cleanup(&s->out);
	buf_cleanup(&s->data);
	close(s->fd);
	s->fd = -1;
	pthread_mutex_lock(&srv->lock);
	s->finished = 1;
	srv->nsessions--;
	pthread_mutex_unlock(&srv->lock);
	return NULL;
}

/* ---- listener ---- */

/* Joins and frees finished sessions. */
static void reap_sessions(struct smtp_server *srv)
{
	struct session *done = NULL;
	pthread_mutex_lock(&srv->lock);
	for (struct session **pp = &srv->sessions; *pp;) {
		struct session *s = *pp;
		if (s->finished) {
			*pp = s->next;
			s->next = done;
			done = s;
		} else {
			pp = &s->next;
		}
	}
	pthread_mutex_unlock(&srv->lock);
	while (done) {
		struct session *n = done->next;
		pthread_join(done->thread, NULL);
		free(done);
		done = n;
	}
}

/* 421 and close (RFC 5321 §3.8: a server may refuse service with 421).
 * peer is NULL when the total is reached, else the address at its limit. */
static void refuse_busy(struct smtp_server *srv, int fd, const char *peer)
{
	char msg[MF_SMTP_SERVER_REPLY_TEXT + 16];
	int n = peer ? snprintf(msg, sizeof(msg), "421 4.7.0 %s Error: too many connections from %s\r\n",
				srv->hostname, peer)
		     : snprintf(msg, sizeof(msg), "421 4.3.2 %s Error: too many connections, try again later\r\n",
				srv->hostname);
	if (n > 0 && send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_debug("event=smtp_busy_reply_failed error=\"%s\"", strerror(errno));
	close(fd);
	if (peer)
		log_warn("event=smtp_session_refused reason=max_sessions_per_addr peer=%s max=%d", peer,
			 srv->p.max_sessions_per_addr);
	else
		log_warn("event=smtp_session_refused reason=max_sessions max=%d", srv->p.max_sessions);
	if (srv->p.on_refused)
		srv->p.on_refused(srv->p.arg, peer ? "max_sessions_per_addr" : "max_sessions");
}

/* Sessions open from peer; under srv->lock. */
static int sessions_from(struct smtp_server *srv, const char *peer)
{
	int n = 0;
	for (struct session *s = srv->sessions; s; s = s->next)
		if (!s->finished && strcmp(s->peer, peer) == 0)
			n++;
	return n;
}

static void start_session(struct smtp_server *srv, int fd, const char *peer)
{
	struct timeval tv = { .tv_sec = srv->p.idle_timeout_ms / 1000, .tv_usec = (srv->p.idle_timeout_ms % 1000) * 1000 };
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	struct session *s = xcalloc(1, sizeof(*s));
	s->srv = srv;
	s->fd = fd;
	buf_init(&s->out, MF_SMTP_REPLY_MAX);
	buf_init(&s->data, 0);
	snprintf(s->peer, sizeof(s->peer), "%s", peer);
	s->loopback = strncmp(peer, "127.", 4) == 0 || strcmp(peer, "::1") == 0 || strncmp(peer, "::ffff:127.", 11) == 0;
	s->deadline_ms = mono_ms() + srv->p.session_timeout_ms;
	pthread_mutex_lock(&srv->lock);
	snprintf(s->id, sizeof(s->id), "%lx.%lu", (unsigned long)time(NULL), ++srv->counter);
	s->next = srv->sessions;
	srv->sessions = s;
	srv->nsessions++;
	if (pthread_create(&s->thread, NULL, session_main, s) != 0) {
		srv->sessions = s->next;
		srv->nsessions--;
		pthread_mutex_unlock(&srv->lock);
		log_error("event=smtp_session_thread_failed");
		buf_cleanup(&s->out);
		buf_cleanup(&s->data);
		close(fd);
		free(s);
		return;
	}
	pthread_mutex_unlock(&srv->lock);
}

static void *acceptor_main(void *arg)
{
	struct smtp_server *srv = arg;
	while (!srv->stopping) {
		struct pollfd pfd[2] = { { .fd = srv->lfd, .events = POLLIN }, { .fd = srv->wake[0], .events = POLLIN } };
		int r = poll(pfd, 2, 1000);
		reap_sessions(srv);
		if (r < 0 && errno != EINTR) {
			log_error("event=smtp_poll_failed error=\"%s\"", strerror(errno));
			break;
		}
		if (r <= 0 || pfd[1].revents)
			continue;
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(srv->lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		char peer[64];
		if (getnameinfo((struct sockaddr *)&ss, sl, peer, sizeof(peer), NULL, 0, NI_NUMERICHOST) != 0)
			snprintf(peer, sizeof(peer), "unknown");
		pthread_mutex_lock(&srv->lock);
		int busy = srv->nsessions >= srv->p.max_sessions;
		int addr_busy = !busy && sessions_from(srv, peer) >= srv->p.max_sessions_per_addr;
		pthread_mutex_unlock(&srv->lock);
		if (busy || addr_busy)
			refuse_busy(srv, fd, addr_busy ? peer : NULL);
		else
			start_session(srv, fd, peer);
	}
	return NULL;
}

static int listen_on(struct smtp_server *srv, char *err, size_t errlen)
{
	char host[256], portstr[16];
	int port;
	if (config_parse_hostport(srv->listen, host, sizeof(host), &port) != 0) {
		snprintf(err, errlen, "smtp server: bad listen address \"%s\" (want host:port)", srv->listen);
		return -1;
	}
	snprintf(portstr, sizeof(portstr), "%d", port);
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
	struct addrinfo *ai = NULL;
	int gr = getaddrinfo(host, portstr, &hints, &ai);
	if (gr != 0) {
		snprintf(err, errlen, "smtp server: %s: %s", host, gai_strerror(gr));
		return -1;
	}
	int fd = -1, saved = 0;
	for (struct addrinfo *a = ai; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0)
			continue;
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 128) == 0)
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		snprintf(err, errlen, "smtp server: cannot listen on %s: %s", srv->listen, strerror(saved));
		return -1;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char pbuf[16];
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	getnameinfo((struct sockaddr *)&ss, sl, NULL, 0, pbuf, sizeof(pbuf), NI_NUMERICSERV);
	srv->port = (int)strtol(pbuf, NULL, 10);
	srv->lfd = fd;
	return 0;
}

struct smtp_server *smtp_server_new(const struct smtp_server_params *params, char *err, size_t errlen)
{
	if ((params->tls_cert_file == NULL) != (params->tls_key_file == NULL)) {
		snprintf(err, errlen, "smtp server: a TLS certificate needs its key and vice versa");
		return NULL;
	}
	if (params->implicit_tls && params->tls_cert_file == NULL) {
		snprintf(err, errlen, "smtp server: implicit TLS needs a certificate and key");
		return NULL;
	}
	struct tls_ctx *tls = NULL;
	if (params->tls_cert_file) {
		char why[512];
		tls = tls_server_ctx_new(params->tls_cert_file, params->tls_key_file, why, sizeof(why));
		if (tls == NULL) {
			snprintf(err, errlen, "smtp server: TLS: %s", why);
			return NULL;
		}
	}
	struct smtp_server *srv = xcalloc(1, sizeof(*srv));
	srv->p = *params;
	srv->listen = xstrdup(params->listen ? params->listen : "");
	srv->hostname = xstrdup(params->hostname && *params->hostname ? params->hostname : "localhost");
	srv->p.listen = srv->listen;
	srv->p.hostname = srv->hostname;
	srv->p.tls_cert_file = srv->p.tls_key_file = NULL;
	srv->tls = tls;
	if (srv->p.max_sessions <= 0)
		srv->p.max_sessions = MF_SMTP_SERVER_SESSIONS_DEFAULT;
	if (srv->p.idle_timeout_ms <= 0)
		srv->p.idle_timeout_ms = MF_SMTP_SERVER_IDLE_TIMEOUT_MS;
	if (srv->p.max_sessions_per_addr <= 0)
		srv->p.max_sessions_per_addr = MF_SMTP_SERVER_SESSIONS_PER_ADDR;
	if (srv->p.max_rcpts <= 0 || srv->p.max_rcpts > MF_SMTP_SERVER_RCPTS_MAX)
		srv->p.max_rcpts = MF_SMTP_SERVER_RCPTS_MAX;
	if (srv->p.session_timeout_ms <= 0)
		srv->p.session_timeout_ms = MF_SMTP_SERVER_SESSION_TIMEOUT_MS;
	if (srv->p.greet_wait_ms < 0)
		srv->p.greet_wait_ms = 0;
	if (srv->p.max_message_size == 0)
		srv->p.max_message_size = MF_MESSAGE_SIZE_DEFAULT;
	srv->lfd = -1;
	srv->wake[0] = srv->wake[1] = -1;
	pthread_mutex_init(&srv->lock, NULL);
	if (listen_on(srv, err, errlen) != 0 || pipe2(srv->wake, O_CLOEXEC) != 0) {
		if (srv->lfd >= 0)
			snprintf(err, errlen, "smtp server: pipe: %s", strerror(errno));
		smtp_server_free(srv);
		return NULL;
	}
	if (pthread_create(&srv->acceptor, NULL, acceptor_main, srv) != 0) {
		snprintf(err, errlen, "smtp server: cannot start thread");
		close(srv->wake[0]);
		close(srv->wake[1]);
		srv->wake[0] = srv->wake[1] = -1;
		smtp_server_free(srv);
		return NULL;
	}
	log_info("event=smtp_server_listening addr=%s port=%d max_sessions=%d max_sessions_per_addr=%d"
		 " session_timeout_ms=%d max_size=%zu tls=%s auth=%s",
		 srv->listen, srv->port, srv->p.max_sessions, srv->p.max_sessions_per_addr, srv->p.session_timeout_ms,
		 srv->p.max_message_size, srv->tls ? (srv->p.implicit_tls ? "implicit" : "starttls") : "no",
		 srv->p.on_auth ? "yes" : "no");
	return srv;
}

int smtp_server_reload_tls(struct smtp_server *srv, const char *cert_file, const char *key_file, char *err,
			   size_t errlen)
{
	char why[512];
	struct tls_ctx *tls = tls_server_ctx_new(cert_file, key_file, why, sizeof(why));
	if (tls == NULL) {
		snprintf(err, errlen, "smtp server: TLS: %s", why);
		return -1;
	}
	pthread_mutex_lock(&srv->lock);
	if (srv->tls) {
		srv->retired = xrealloc(srv->retired, (srv->nretired + 1) * sizeof(*srv->retired));
		srv->retired[srv->nretired++] = srv->tls;
	}
	srv->tls = tls;
	pthread_mutex_unlock(&srv->lock);
	log_info("event=smtp_server_tls_reloaded port=%d", srv->port);
	return 0;
}

int smtp_server_port(const struct smtp_server *srv)
{
	return srv->port;
}

int smtp_server_sessions(struct smtp_server *srv)
{
	pthread_mutex_lock(&srv->lock);
	int n = srv->nsessions;
	pthread_mutex_unlock(&srv->lock);
	return n;
}

void smtp_server_free(struct smtp_server *srv)
{
	if (srv == NULL)
		return;
	if (srv->wake[1] >= 0) {
		srv->stopping = 1;
		/* The pipe stays readable: every poller sees it. */
		if (write(srv->wake[1], "x", 1) != 1)
			log_error("event=smtp_server_wake_failed error=\"%s\"", strerror(errno));
		pthread_join(srv->acceptor, NULL);
		pthread_mutex_lock(&srv->lock);
		struct session *list = srv->sessions;
		srv->sessions = NULL;
		pthread_mutex_unlock(&srv->lock);
		while (list) {
			struct session *n = list->next;
			pthread_join(list->thread, NULL);
			free(list);
			list = n;
		}
		log_info("event=smtp_server_stopped port=%d", srv->port);
	}
	if (srv->lfd >= 0)
		close(srv->lfd);
	if (srv->wake[0] >= 0)
		close(srv->wake[0]);
	if (srv->wake[1] >= 0)
		close(srv->wake[1]);
	pthread_mutex_destroy(&srv->lock);
	tls_ctx_free(srv->tls);
	for (size_t i = 0; i < srv->nretired; i++)
		tls_ctx_free(srv->retired[i]);
	free(srv->retired);
	free(srv->listen);
	free(srv->hostname);
	free(srv);
}
