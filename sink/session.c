/*
 * session.c - one SMTP session of the sink (RFC 5321 server side), as a
 * state table like relay/smtp_client.c: per state a name, the longest
 * line it takes, and the handler of one line.
 *
 *   greeting  the 220 (or a connect fault) waits for its delay; lines
 *             that arrive are taken as commands (answered after it)
 *   command   one command line at a time, pipelined groups allowed
 *   data      message lines until ".", dot-unstuffed (§4.5.2), scanned
 *             for the Message-ID header, counted, not stored
 *   starttls  the 220 to STARTTLS waits for its delay and goes out;
 *             whatever the client sent after STARTTLS until then, in
 *             the same packet or not, is dropped (RFC 3207 §4.2: a
 *             command injected before the handshake must not be obeyed
 *             after it); bytes after the 220 are the handshake's, and
 *             plaintext there fails it
 *   handshake the TLS handshake, one non-blocking step per readiness of
 *             the socket; when done, the session starts again at
 *             "command" with nothing known (§4.2: EHLO again)
 *   closing   the last replies go out, then the connection closes
 *
 * Replies are appended to the session's output; after each read they
 * leave at once, or when the timer fires (the reply delay, the data
 * delay after a final dot, plus the session's tarpit), so a pipelined
 * group costs one delay.  While idle a session holds no buffer: the
 * unfinished line and the output are allocated only while they exist.
 * Handlers return 0, or -1 when the connection must close at once.
 *
 * After the handshake every read and write goes through OpenSSL
 * (sock_read, sock_write).  A TLS read may need the socket writable and a
 * write may need it readable (SINK_F_TLS_WANTS_OUT / _IN: the loop's
 * interest follows them, reactor.c); and records OpenSSL has already
 * decrypted do not make the socket readable, so a read goes on until
 * OpenSSL holds nothing (epoll is level-triggered: what stays in the
 * kernel wakes the loop again).  An idle TLS session holds no record
 * buffers (SSL_MODE_RELEASE_BUFFERS, relay/tls.c).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "smtpd/smtp_server_cmd.h"
#include "sink/internal.h"
#include "util/limits.h"
#include "util/xmalloc.h"

typedef int (*sink_line_fn)(struct sink *sk, struct sink_session *s, const char *line, size_t len);

static int on_command(struct sink *sk, struct sink_session *s, const char *line, size_t len);
static int on_data_line(struct sink *sk, struct sink_session *s, const char *line, size_t len);

static const struct {
	const char *name;
	size_t line_max;      /* with CRLF */
	sink_line_fn on_line; /* NULL: input is ignored */
} sink_states[] = {
	[SINK_S_GREETING] = { "greeting", SINK_CMD_LINE_MAX, on_command },
	[SINK_S_COMMAND] = { "command", SINK_CMD_LINE_MAX, on_command },
	[SINK_S_DATA] = { "data", SINK_TEXT_LINE_MAX, on_data_line },
	[SINK_S_STARTTLS] = { "starttls", 0, NULL },
	[SINK_S_HANDSHAKE] = { "handshake", 0, NULL },
	[SINK_S_CLOSING] = { "closing", 0, NULL },
};

/* The only way to change state.  Unlike relay/smtp_client.c it does not
 * log: at tens of thousands of sessions the log would be the bench's limit. */
static void set_state(struct sink_session *s, enum sink_sstate st)
{
	s->state = st;
}

static void reply(struct sink_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends one reply line (CRLF added) to the output. */
static void reply(struct sink_session *s, const char *fmt, ...)
{
	char line[MF_SMTP_SERVER_REPLY_TEXT + 16];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 3)
		n = (int)sizeof(line) - 3;
	line[n++] = '\r';
	line[n++] = '\n';
	if (s->out_len + (unsigned)n > s->out_cap) {
		unsigned cap = s->out_cap ? s->out_cap : 256;
		while (cap < s->out_len + (unsigned)n)
			cap *= 2;
		s->out = xrealloc(s->out, cap);
		s->out_cap = cap;
	}
	memcpy(s->out + s->out_len, line, (size_t)n);
	s->out_len += (unsigned)n;
}

/* A fault's reply: 421 closes the session (§3.8), others keep it. */
static void fault_reply(struct sink *sk, struct sink_session *s, int code)
{
	sk->count.faults++;
	if (code == 421) {
		reply(s, "421 4.3.2 %s Service not available, closing transmission channel (injected fault)",
		      sk->p.hostname);
		set_state(s, SINK_S_CLOSING);
		return;
	}
	reply(s, "%d %d.3.0 Injected fault (mailferry sink)", code, code / 100);
}

/* Rolls the stage's faults: 1 when a fault answered (or -1: drop), 0 otherwise. */
static int fault(struct sink *sk, struct sink_session *s, enum sink_stage stage)
{
	if (!sink_faults_has(sk->p.faults, stage))
		return 0;
	struct sink_fault f = sink_faults_roll(sk->p.faults, stage, sink_random(sk));
	if (f.kind == SINK_FAULT_DROP) {
		sk->count.faults++;
		return -1;
	}
	if (f.kind != SINK_FAULT_REPLY)
		return 0;
	fault_reply(sk, s, f.code);
	return 1;
}

static void reset_transaction(struct sink *sk, struct sink_session *s)
{
	if (s->flags & SINK_F_MAIL)
		sink_count_txn_end(&sk->count);
	s->flags &= ~(unsigned)(SINK_F_MAIL | SINK_F_HEADERS | SINK_F_MSGID_NEXT | SINK_F_TOO_LONG | SINK_F_TOO_BIG);
	s->nrcpts = 0;
	s->data_bytes = 0;
	s->msgid = 0;
}

static int cmd_helo(struct sink *sk, struct sink_session *s, const struct smtp_cmd *c)
{
	int f = fault(sk, s, SINK_STAGE_EHLO);
	if (f != 0)
		return f < 0 ? -1 : 0;
	reset_transaction(sk, s);
	s->flags |= SINK_F_HELO;
	if (c->verb == SMTP_VERB_HELO) {
		reply(s, "250 %s", sk->p.hostname);
		return 0;
	}
	/* RFC 5321 §4.1.1.1; the extensions: RFC 2920, 1870, 6152, 3207, 2034. */
	reply(s, "250-%s Hello %.200s", sk->p.hostname, c->arg);
	reply(s, "250-PIPELINING");
	if (sk->tls != NULL && s->tls == NULL)
		reply(s, "250-STARTTLS");
	reply(s, "250-SIZE %zu", sk->p.max_message_size);
	reply(s, "250-8BITMIME");
	reply(s, "250 ENHANCEDSTATUSCODES");
	return 0;
}

static int cmd_mail(struct sink *sk, struct sink_session *s, const struct smtp_cmd *c)
{
	if (!(s->flags & SINK_F_HELO))
		return reply(s, "503 5.5.1 Send EHLO or HELO first"), 0;
	if (s->flags & SINK_F_MAIL)
		return reply(s, "503 5.5.1 Nested MAIL command"), 0;
	int f = fault(sk, s, SINK_STAGE_MAIL);
	if (f != 0)
		return f < 0 ? -1 : 0;
	if (c->size >= 0 && (unsigned long long)c->size > sk->p.max_message_size)
		return reply(s, "552 5.3.4 Message size exceeds fixed maximum message size"), 0;
	s->flags |= SINK_F_MAIL;
	sink_count_txn_begin(&sk->count);
	reply(s, "250 2.1.0 Ok");
	return 0;
}

static int cmd_rcpt(struct sink *sk, struct sink_session *s)
{
	if (!(s->flags & SINK_F_MAIL))
		return reply(s, "503 5.5.1 Need MAIL command"), 0;
	/* §4.5.3.1.8: 100 recipients must be taken; no more are. */
	if (s->nrcpts >= MF_SMTP_SERVER_RCPTS_MAX)
		return reply(s, "452 4.5.3 Too many recipients"), 0;
	int f = fault(sk, s, SINK_STAGE_RCPT);
	if (f != 0)
		return f < 0 ? -1 : 0;
	s->nrcpts++;
	reply(s, "250 2.1.5 Ok");
	return 0;
}

static int cmd_data(struct sink_session *s)
{
	if (!(s->flags & SINK_F_MAIL))
		return reply(s, "503 5.5.1 Need MAIL command"), 0;
	if (s->nrcpts == 0)
		return reply(s, "554 5.5.1 No valid recipients"), 0;
	s->flags |= SINK_F_HEADERS;
	s->data_bytes = 0;
	s->msgid = 0;
	set_state(s, SINK_S_DATA);
	reply(s, "354 End data with <CR><LF>.<CR><LF>");
	return 0;
}

/* RFC 3207 §4: the 220 now, the handshake once it has gone out (flush). */
static int cmd_starttls(struct sink *sk, struct sink_session *s)
{
	if (sk->tls == NULL)
		return reply(s, "502 5.5.1 Command not implemented"), 0;
	if (s->tls != NULL)
		return reply(s, "554 5.5.1 TLS already active"), 0;
	reply(s, "220 2.0.0 Ready to start TLS");
	set_state(s, SINK_S_STARTTLS);
	return 0;
}

static int on_command(struct sink *sk, struct sink_session *s, const char *line, size_t len)
{
	struct smtp_cmd c;
	switch (smtp_cmd_parse(line, len, &c)) {
	case SMTP_CMD_OK:
		break;
	case SMTP_CMD_BAD_VERB:
		return reply(s, "500 5.5.2 Syntax error, command unrecognized"), 0;
	case SMTP_CMD_BAD_SYNTAX:
		return reply(s, "501 5.5.4 Syntax error in parameters or arguments"), 0;
	case SMTP_CMD_BAD_PATH:
		return reply(s, "501 %s Bad address syntax", c.verb == SMTP_VERB_MAIL ? "5.1.7" : "5.1.3"), 0;
	case SMTP_CMD_BAD_PARAM:
		return reply(s, "555 5.5.4 Unsupported parameter"), 0;
	}
	switch (c.verb) {
	case SMTP_VERB_HELO:
	case SMTP_VERB_EHLO:
		return cmd_helo(sk, s, &c);
	case SMTP_VERB_MAIL:
		return cmd_mail(sk, s, &c);
	case SMTP_VERB_RCPT:
		return cmd_rcpt(sk, s);
	case SMTP_VERB_DATA:
		return cmd_data(s);
	case SMTP_VERB_RSET:
		reset_transaction(sk, s);
		return reply(s, "250 2.0.0 Ok"), 0;
	case SMTP_VERB_NOOP:
		return reply(s, "250 2.0.0 Ok"), 0;
	case SMTP_VERB_QUIT:
		reply(s, "221 2.0.0 Bye");
		set_state(s, SINK_S_CLOSING);
		return 0;
	case SMTP_VERB_VRFY:
		return reply(s, "252 2.5.0 Cannot VRFY user"), 0;
	case SMTP_VERB_STARTTLS:
		return cmd_starttls(sk, s);
	default:
		return reply(s, "502 5.5.1 Command not implemented"), 0;
	}
}

/* The reply to the final dot. */
static int end_of_data(struct sink *sk, struct sink_session *s)
{
	set_state(s, SINK_S_COMMAND);
	s->flags |= SINK_F_EOD;
	int f = fault(sk, s, SINK_STAGE_DATA);
	if (f != 0) {
		reset_transaction(sk, s);
		return f < 0 ? -1 : 0;
	}
	if (s->flags & SINK_F_TOO_BIG)
		reply(s, "552 5.3.4 Message size exceeds fixed maximum message size");
	else if (s->flags & SINK_F_TOO_LONG)
		reply(s, "500 5.5.2 Line too long (RFC 5321 4.5.3.1.6: 1000 octets)");
	else {
		sink_count_message(&sk->count, s->msgid, s->nrcpts, s->data_bytes);
		s->nmsg++;
		reply(s, "250 2.0.0 Ok: queued as %llx.%u", s->id, s->nmsg);
	}
	reset_transaction(sk, s);
	return 0;
}

static int is_wsp(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Hashes the Message-ID value v[0..n-1] without surrounding white space. */
static void take_msgid(struct sink_session *s, const char *v, size_t n)
{
	while (n > 0 && is_wsp(*v))
		v++, n--;
	while (n > 0 && is_wsp(v[n - 1]))
		n--;
	if (n == 0) {
		s->flags |= SINK_F_MSGID_NEXT;
		return;
	}
	s->flags &= ~(unsigned)SINK_F_MSGID_NEXT;
	s->msgid = sink_count_hash(v, n);
}

/* One header line: the first Message-ID (RFC 5322 §3.6.4) is kept. */
static void header_line(struct sink_session *s, const char *line, size_t len)
{
	static const char name[] = "Message-ID:";
	if (len == 0) {
		s->flags &= ~(unsigned)(SINK_F_HEADERS | SINK_F_MSGID_NEXT);
		return;
	}
	if (is_wsp(line[0])) {
		if (s->flags & SINK_F_MSGID_NEXT)
			take_msgid(s, line, len);
		return;
	}
	s->flags &= ~(unsigned)SINK_F_MSGID_NEXT;
	if (s->msgid == 0 && len >= sizeof(name) - 1 && strncasecmp(line, name, sizeof(name) - 1) == 0)
		take_msgid(s, line + sizeof(name) - 1, len - (sizeof(name) - 1));
}

static int on_data_line(struct sink *sk, struct sink_session *s, const char *line, size_t len)
{
	if (len == 1 && line[0] == '.')
		return end_of_data(sk, s);
	/* §4.5.2: a leading dot was doubled by the client. */
	if (len > 0 && line[0] == '.')
		line++, len--;
	s->data_bytes += len + 2;
	if (s->data_bytes > sk->p.max_message_size)
		s->flags |= SINK_F_TOO_BIG;
	if (s->flags & SINK_F_HEADERS)
		header_line(s, line, len);
	return 0;
}

/* A line longer than the state allows (its end was found or is to come). */
static void too_long(struct sink_session *s)
{
	if (s->state == SINK_S_DATA)
		s->flags |= SINK_F_TOO_LONG;
	else
		reply(s, "500 5.5.2 Line too long (RFC 5321 4.5.3.1.4: 512 octets)");
}

/* Splits buf into lines and feeds them to the state's handler; keeps an
 * unfinished line in s->partial.  0 or -1 (close now). */
static int feed(struct sink *sk, struct sink_session *s, const char *buf, size_t len)
{
	const char *p = buf, *end = buf + len;
	while (p < end && sink_states[s->state].on_line != NULL) {
		size_t max = sink_states[s->state].line_max;
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		if (lf == NULL) {
			if (s->flags & SINK_F_SKIP)
				return 0;
			if ((size_t)(end - p) >= max) {
				s->flags |= SINK_F_SKIP;
				too_long(s);
				return 0;
			}
			s->partial = xmalloc((size_t)(end - p));
			s->partial_len = (unsigned)(end - p);
			memcpy(s->partial, p, s->partial_len);
			return 0;
		}
		size_t n = (size_t)(lf - p);
		const char *line = p;
		p = lf + 1;
		if (s->flags & SINK_F_SKIP) {
			s->flags &= ~(unsigned)SINK_F_SKIP;
			continue;
		}
		if (n + 1 > max) {
			too_long(s);
			continue;
		}
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (sink_states[s->state].on_line(sk, s, line, n) != 0)
			return -1;
	}
	return 0;
}

/* Reads into p, over TLS once it is on: bytes read, 0 when nothing can be
 * read now (the flags say what the socket must become), -1 at the end of
 * the connection or on failure.  Over TLS it reads record after record
 * until n is full or OpenSSL needs the socket. */
static ssize_t sock_read(struct sink *sk, struct sink_session *s, char *p, size_t n)
{
	if (s->tls == NULL) {
		ssize_t r;
		do
			r = read(s->fd, p, n);
		while (r < 0 && errno == EINTR);
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		return r <= 0 ? -1 : r;
	}
	size_t have = 0;
	while (have < n) {
		char err[256];
		size_t got = 0;
		switch (tls_conn_read_step(s->tls, p + have, n - have, &got, err, sizeof(err))) {
		case TLS_STEP_DONE:
			have += got;
			continue;
		case TLS_STEP_WANT_READ:
			return (ssize_t)have;
		case TLS_STEP_WANT_WRITE:
			s->flags |= SINK_F_TLS_WANTS_OUT;
			return (ssize_t)have;
		case TLS_STEP_CLOSED:
			return have > 0 ? (ssize_t)have : -1;
		case TLS_STEP_ERROR:
			sk->count.tls_failed++;
			return -1;
		}
	}
	return (ssize_t)have;
}

/* Writes from p, over TLS once it is on: bytes written, 0 when the socket
 * must become ready first (the flags say for what), -1 on failure. */
static ssize_t sock_write(struct sink *sk, struct sink_session *s, const char *p, size_t n)
{
	if (s->tls == NULL) {
		ssize_t w;
		do
			w = write(s->fd, p, n);
		while (w < 0 && errno == EINTR);
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			s->flags |= SINK_F_WANT_OUT;
			return 0;
		}
		return w <= 0 ? -1 : w;
	}
	char err[256];
	size_t put = 0;
	switch (tls_conn_write_step(s->tls, p, n, &put, err, sizeof(err))) {
	case TLS_STEP_DONE:
		return (ssize_t)put;
	case TLS_STEP_WANT_WRITE:
		s->flags |= SINK_F_WANT_OUT;
		return 0;
	case TLS_STEP_WANT_READ:
		s->flags |= SINK_F_TLS_WANTS_IN;
		return 0;
	case TLS_STEP_ERROR:
		sk->count.tls_failed++;
		return -1;
	case TLS_STEP_CLOSED:
		break;
	}
	return -1;
}

/* Sets the timer: the replies' due time when some wait, else the idle deadline. */
static void arm(struct sink *sk, struct sink_session *s)
{
	s->at_ms = s->due_ms ? s->due_ms : s->idle_ms;
	sink_timer_set(sk, s);
}

/* One step of the handshake, when the socket is ready for it. */
static int handshake(struct sink *sk, struct sink_session *s)
{
	char err[256];
	s->flags &= ~(unsigned)SINK_F_TLS_WANTS_OUT;
	s->idle_ms = sk->now_ms + sk->p.idle_timeout_ms;
	switch (tls_conn_handshake_step(s->tls, err, sizeof(err))) {
	case TLS_STEP_DONE:
		sk->count.tls++;
		if (tls_conn_resumed(s->tls))
			sk->count.tls_resumed++;
		/* RFC 3207 §4.2: nothing from before the handshake holds;
		 * the client says EHLO again. */
		reset_transaction(sk, s);
		s->flags &= ~(unsigned)(SINK_F_HELO | SINK_F_SKIP);
		set_state(s, SINK_S_COMMAND);
		break;
	case TLS_STEP_WANT_READ:
		break;
	case TLS_STEP_WANT_WRITE:
		s->flags |= SINK_F_TLS_WANTS_OUT;
		break;
	case TLS_STEP_CLOSED:
	case TLS_STEP_ERROR:
		sk->count.tls_failed++;
		return -1;
	}
	arm(sk, s);
	return sink_session_events(sk, s);
}

/* The 220 to STARTTLS is out: the handshake begins.  What the client sent
 * after STARTTLS was dropped in the starttls state. */
static int start_tls(struct sink *sk, struct sink_session *s)
{
	char err[256];
	s->tls = tls_conn_server_new(sk->tls, s->fd, err, sizeof(err));
	if (s->tls == NULL) {
		sk->count.tls_failed++;
		return -1;
	}
	set_state(s, SINK_S_HANDSHAKE);
	return handshake(sk, s);
}

/* Writes what it can of the output; 0 or -1 (write error, or closing done). */
static int flush(struct sink *sk, struct sink_session *s)
{
	while (s->out_off < s->out_len) {
		ssize_t w = sock_write(sk, s, s->out + s->out_off, s->out_len - s->out_off);
		if (w < 0)
			return -1;
		if (w == 0)
			return sink_session_events(sk, s);
		s->out_off += (unsigned)w;
	}
	free(s->out);
	s->out = NULL;
	s->out_off = s->out_len = s->out_cap = 0;
	s->flags &= ~(unsigned)SINK_F_WANT_OUT;
	if (s->state == SINK_S_CLOSING)
		return -1;
	if (s->state == SINK_S_GREETING)
		set_state(s, SINK_S_COMMAND);
	if (s->state == SINK_S_STARTTLS)
		return start_tls(sk, s);
	return sink_session_events(sk, s);
}

/* After a read (or the accept): sends the replies now or schedules them. */
static int answer(struct sink *sk, struct sink_session *s)
{
	int ret = 0;
	if (s->out_len > s->out_off && s->due_ms == 0 && !(s->flags & SINK_F_WANT_OUT)) {
		long delay = (s->flags & SINK_F_EOD) && sk->p.data_delay_ms > 0 ? sk->p.data_delay_ms
										  : sk->p.reply_delay_ms;
		delay += s->tarpit_ms;
		if ((s->flags & SINK_F_EOD) && sk->p.data_hold > 0 && !sk->hold_released)
			s->due_ms = SINK_HELD_MS;
		else if (delay > 0)
			s->due_ms = sk->now_ms + delay;
		else
			ret = flush(sk, s);
	} else if (s->state == SINK_S_CLOSING && s->out_len == s->out_off) {
		ret = -1;
	}
	s->flags &= ~(unsigned)SINK_F_EOD;
	if (ret == 0) {
		ret = sink_session_events(sk, s);
		arm(sk, s);
	}
	return ret;
}

int sink_session_open(struct sink *sk, int fd, struct sink_session **out)
{
	struct sink_session *s = xcalloc(1, sizeof(*s));
	s->kind = SINK_EV_SESSION;
	s->fd = fd;
	s->heap_idx = SIZE_MAX;
	s->id = ++sk->next_id;
	s->idle_ms = sk->now_ms + sk->p.idle_timeout_ms;
	set_state(s, SINK_S_GREETING);
	*out = s;
	if (sink_faults_has(sk->p.faults, SINK_STAGE_TARPIT)) {
		struct sink_fault f = sink_faults_roll(sk->p.faults, SINK_STAGE_TARPIT, sink_random(sk));
		if (f.kind == SINK_FAULT_TARPIT) {
			s->tarpit_ms = f.delay_ms;
			sk->count.faults++;
		}
	}
	int f = fault(sk, s, SINK_STAGE_CONNECT);
	if (f < 0)
		return -1;
	if (f == 0)
		reply(s, "220 %s ESMTP mailferry sink", sk->p.hostname);
	else
		set_state(s, SINK_S_CLOSING);  /* a refused greeting ends the session (§3.1) */
	return answer(sk, s);
}

/* One read and its lines: 1 when something was read, 0 when nothing
 * could be, -1 when the session must close. */
static int read_once(struct sink *sk, struct sink_session *s)
{
	char *buf = sk->rbuf;
	size_t have = 0;
	if (s->partial != NULL) {
		memcpy(buf, s->partial, s->partial_len);
		have = s->partial_len;
		free(s->partial);
		s->partial = NULL;
		s->partial_len = 0;
	}
	ssize_t r = sock_read(sk, s, buf + have, SINK_READ_CHUNK);
	if (r == 0 && have > 0) {
		s->partial = xmalloc(have);
		memcpy(s->partial, buf, have);
		s->partial_len = (unsigned)have;
	}
	if (r <= 0)
		return (int)r;
	s->idle_ms = sk->now_ms + sk->p.idle_timeout_ms;
	return feed(sk, s, buf, have + (size_t)r) != 0 ? -1 : 1;
}

int sink_session_readable(struct sink *sk, struct sink_session *s)
{
	if (s->state == SINK_S_HANDSHAKE)
		return handshake(sk, s);
	if (s->flags & SINK_F_TLS_WANTS_IN) {
		/* A TLS write waited for this. */
		s->flags &= ~(unsigned)SINK_F_TLS_WANTS_IN;
		if (s->due_ms == 0 && flush(sk, s) != 0)
			return -1;
	}
	s->flags &= ~(unsigned)SINK_F_TLS_WANTS_OUT;
	int r;
	/* Records OpenSSL decrypted beyond one buffer do not wake the loop. */
	while ((r = read_once(sk, s)) > 0 && s->tls != NULL && tls_conn_pending(s->tls) > 0)
		;
	if (r < 0)
		return -1;
	return answer(sk, s);
}

int sink_session_writable(struct sink *sk, struct sink_session *s)
{
	if (s->state == SINK_S_HANDSHAKE)
		return handshake(sk, s);
	if (s->flags & SINK_F_TLS_WANTS_OUT) {
		/* A TLS read waited for this. */
		if (sink_session_readable(sk, s) != 0)
			return -1;
	}
	s->flags &= ~(unsigned)SINK_F_WANT_OUT;
	if (s->due_ms != 0)
		return sink_session_events(sk, s);
	return flush(sk, s);
}

int sink_session_timer(struct sink *sk, struct sink_session *s)
{
	if (s->due_ms != 0 && s->due_ms <= sk->now_ms) {
		s->due_ms = 0;
		int rc = flush(sk, s);
		if (rc == 0)
			arm(sk, s);
		return rc;
	}
	if (s->due_ms == 0 && s->idle_ms <= sk->now_ms) {
		/* §4.5.3.2.7: the client was silent too long.  A handshake
		 * that stalls has no channel to say so on. */
		if (s->state == SINK_S_CLOSING || s->state == SINK_S_HANDSHAKE)
			return -1;
		reply(s, "421 4.4.2 %s Timeout, closing transmission channel", sk->p.hostname);
		set_state(s, SINK_S_CLOSING);
		/* A client that does not read gets a little longer, then is closed. */
		s->idle_ms = sk->now_ms + SINK_CLOSE_GRACE_MS;
		arm(sk, s);
		return flush(sk, s);
	}
	arm(sk, s);
	return 0;
}

void sink_session_close(struct sink *sk, struct sink_session *s)
{
	reset_transaction(sk, s);
	sink_timer_del(sk, s);
	if (s->tls != NULL) {
		/* close_notify, if the socket takes it now (RFC 8446 §6.1). */
		if (s->state != SINK_S_HANDSHAKE)
			tls_conn_close(s->tls);
		tls_conn_free(s->tls);
	}
	close(s->fd);
	free(s->partial);
	free(s->out);
	free(s);
	sk->count.open--;
}
