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
#include "bounce/smtp_server.h"

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

#include "bounce/smtp_server_cmd.h"
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
	char tls_version[16];  /* e.g. "TLSv1.3", for env->tls */
	int errors;
	int messages;
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
	struct tls_ctx *tls;  /* STARTTLS offered when not NULL */
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
	buf_printf(&s->out, "250-%s\r\n250-PIPELINING\r\n250-SIZE %zu\r\n250-8BITMIME\r\n%s250 ENHANCEDSTATUSCODES\r\n",
		   s->srv->hostname, s->srv->p.max_message_size, s->srv->tls && !s->tls ? "250-STARTTLS\r\n" : "");
}

static void cmd_mail(struct session *s, const struct smtp_cmd *c)
{
	if (s->state == SS_GREET) {
		sess_reply(s, 503, "5.5.1 Error: send HELO/EHLO first");
	} else if (s->state != SS_READY) {
		sess_reply(s, 503, "5.5.1 Error: nested MAIL command");
	} else if (c->size >= 0 && (unsigned long long)c->size > s->srv->p.max_message_size) {
		/* RFC 1870 §6.2 */
		sess_reply(s, 552, "5.3.4 Message size exceeds fixed maximum message size");
	} else {
		snprintf(s->mail_from, sizeof(s->mail_from), "%s", c->path);
		sess_set_state(s, SS_MAIL);
		sess_reply(s, 250, "2.1.0 Ok");
	}
}

static void cmd_rcpt(struct session *s, const struct smtp_cmd *c)
{
	if (s->state != SS_MAIL && s->state != SS_RCPT) {
		sess_reply(s, 503, "5.5.1 Error: need MAIL command");
		return;
	}
	if (s->nrcpts >= MF_SMTP_SERVER_RCPTS_MAX) {
		/* RFC 5321 §4.5.3.1.10 */
		sess_reply(s, 452, "4.5.3 Error: too many recipients");
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
	if (s->srv->tls == NULL) {
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
	if (s->in_end > s->in_start)
		log_warn("event=smtp_starttls_pipelined session=%s dropped=%zu", s->id, s->in_end - s->in_start);
	s->in_start = s->in_end = 0;
	enum io_err ioerr;
	char err[256];
	/* SO_RCVTIMEO/SO_SNDTIMEO bound each step of the handshake; when one
	 * runs out OpenSSL asks to wait, and the deadline (now) says no. */
	s->tls = tls_conn_accept(s->srv->tls, s->fd, mono_ms(), &ioerr, err, sizeof(err));
	if (s->tls == NULL) {
		log_info("event=smtp_tls_failed session=%s error=\"%s\"", s->id, err);
		return -1;
	}
	char cipher[64];
	int verified;
	tls_conn_info(s->tls, s->tls_version, sizeof(s->tls_version), cipher, sizeof(cipher), &verified);
	log_info("event=smtp_tls session=%s version=%s cipher=%s", s->id, s->tls_version, cipher);
	/* RFC 3207 §4.2: forget everything learnt before the handshake. */
	sess_reset(s);
	s->helo[0] = '\0';
	s->esmtp = 0;
	sess_set_state(s, SS_GREET);
	return 0;
}

/* Handles one command line; returns 1 when the session should end. */
static int sess_command(struct session *s, const char *line, size_t len, enum rd *why)
{
	struct smtp_cmd c;
	enum smtp_cmd_result pr = smtp_cmd_parse(line, len, &c);
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
		cmd_mail(s, &c);
		return 0;
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
		/* EXPN, AUTH, BDAT: not offered. */
		sess_reply(s, 502, "5.5.1 Error: command not implemented");
		return ++s->errors >= MF_SMTP_SERVER_ERRORS_MAX;
	}
}

static void sess_run(struct session *s)
{
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
	sess_run(s);
	sess_reset(s);
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
	if (srv->p.session_timeout_ms <= 0)
		srv->p.session_timeout_ms = MF_SMTP_SERVER_SESSION_TIMEOUT_MS;
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
		 " session_timeout_ms=%d max_size=%zu starttls=%s",
		 srv->listen, srv->port, srv->p.max_sessions, srv->p.max_sessions_per_addr, srv->p.session_timeout_ms,
		 srv->p.max_message_size, srv->tls ? "yes" : "no");
	return srv;
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
	free(srv->listen);
	free(srv->hostname);
	free(srv);
}
