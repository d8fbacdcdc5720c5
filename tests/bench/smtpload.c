/*
 * smtpload.c - a small SMTP load generator for the submission bench
 * (tests/bench/submission.sh), in the manner of Postfix's smtp-source but
 * able to AUTH, which smtp-source cannot: one thread, epoll over
 * CONCURRENCY non-blocking sessions, so that it steals little CPU from the
 * server on a 2-core machine.
 *
 *   smtpload HOST:PORT CONCURRENCY MESSAGES SIZE [--auth USER:PASS] [--per-session N]
 *
 * A session reads the greeting, sends EHLO, AUTH PLAIN once if --auth is
 * given (RFC 4616: base64 of "\0user\0pass"), then per message MAIL FROM,
 * RCPT TO, DATA, a message of about SIZE octets and the dot.  No
 * pipelining: each command waits for its reply, as smtp-source's do.
 * Each message has From, To, Subject, Date and a Message-ID unique to this
 * run and message (mailferry answers a Message-ID it has seen from the same
 * API key with the first message's id and queues nothing).  A session
 * carries N messages (--per-session, default 100: mailferry ends a session
 * after 1000, MF_SUBMIT_MESSAGES_PER_SESSION), then QUITs, and a new one
 * opens while messages remain.
 *
 * A 250 to the dot counts as accepted; any other reply to a message's
 * MAIL, RCPT, DATA or dot makes the message an error (the first one is
 * printed on stderr) and the session goes on after RSET.  A failed
 * connect, greeting, EHLO or AUTH, a 421, a dropped connection or 60 s
 * without a reply ends the run (exit 2).  Prints one line:
 *   messages=N ok=N errors=N seconds=S msgs_per_sec=R smtpload_cpu_s=C message_octets=M
 * (msgs_per_sec counts accepted messages, from the first connect to the
 * last QUIT; M is the size of the first message as sent, before the dot),
 * and exits 1 if any message was not accepted.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_OCTETS 1000 /* RFC 5321 §4.5.3.1.6: a text line, CRLF included */
#define REPLY_BUF 4096
#define STALL_MS 60000

enum state { S_CONNECT, S_BANNER, S_EHLO, S_AUTH, S_MAIL, S_RCPT, S_DATA, S_DOT, S_RSET, S_QUIT };
static const char *const state_names[] = { "connect", "banner", "ehlo", "auth", "mail",
					   "rcpt",    "data",   "dot",  "rset", "quit" };

struct session {
	int fd;
	int id;
	enum state state;
	int in_session; /* messages begun in this session */
	long msg;       /* the message in hand */
	int want_out;   /* EPOLLOUT armed: output is pending */
	char in[REPLY_BUF];
	size_t inlen;
	char first[LINE_MAX_OCTETS]; /* the first line of the reply being read */
	int have_first;
	char *out; /* pending output, outoff..outlen */
	size_t outcap, outlen, outoff;
};

static struct {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	int epfd;
	long total, next, ok, errors;
	int per_session, live;
	size_t size;
	char *auth_line; /* "AUTH PLAIN ...\r\n", or NULL */
	char *body;      /* the body lines, the same in every message */
	size_t body_len;
	size_t msg_octets; /* the first message's size, for the report */
	char date[64];
	char run[64]; /* makes Message-IDs unique across runs */
	char first_error[LINE_MAX_OCTETS + 64];
} g;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("smtpload: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n);
	if (!p)
		die("out of memory");
	return p;
}

static long parse_long(const char *s, const char *what, long min)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min)
		die("%s: want a number >= %ld, got \"%s\"", what, min, s);
	return v;
}

/* Base64 (RFC 4648 §4) of n octets into a new NUL-terminated string. */
static char *base64(const unsigned char *p, size_t n)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = xmalloc((n + 2) / 3 * 4 + 1), *o = out;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
		*o++ = tab[v >> 18 & 63];
		*o++ = tab[v >> 12 & 63];
		*o++ = i + 1 < n ? tab[v >> 6 & 63] : '=';
		*o++ = i + 2 < n ? tab[v & 63] : '=';
	}
	*o = 0;
	return out;
}

/* "AUTH PLAIN <base64(\0user\0pass)>\r\n" from "user:pass" (RFC 4954 §4 initial response). */
static char *auth_plain_line(const char *userpass)
{
	const char *colon = strchr(userpass, ':');
	if (!colon)
		die("--auth: want USER:PASS");
	size_t ulen = (size_t)(colon - userpass), plen = strlen(colon + 1), n = ulen + plen + 2;
	unsigned char *raw = xmalloc(n);
	raw[0] = 0;
	memcpy(raw + 1, userpass, ulen);
	raw[1 + ulen] = 0;
	memcpy(raw + 2 + ulen, colon + 1, plen);
	char *b64 = base64(raw, n);
	size_t len = strlen(b64) + 16;
	char *line = xmalloc(len);
	int w = snprintf(line, len, "AUTH PLAIN %s\r\n", b64);
	if (w < 0 || (size_t)w >= len)
		die("AUTH line truncated");
	free(raw);
	free(b64);
	return line;
}

/* The body: 76-character lines of letters (never a leading dot) making the
 * whole message, with its ~260 octets of headers, about SIZE octets. */
static void build_body(size_t size)
{
	size_t want = size > 320 ? size - 260 : 70, lines = (want + 77) / 78;
	g.body_len = lines * 78;
	g.body = xmalloc(g.body_len + 1);
	for (size_t l = 0; l < lines; l++) {
		char *p = g.body + l * 78;
		for (int i = 0; i < 76; i++)
			p[i] = (char)('a' + (l * 7 + (size_t)i) % 26);
		p[76] = '\r';
		p[77] = '\n';
	}
	g.body[g.body_len] = 0;
}

static void ep_ctl(struct session *s, int op, unsigned events)
{
	struct epoll_event ev = { .events = events, .data.ptr = s };
	if (epoll_ctl(g.epfd, op, s->fd, &ev) < 0)
		die("epoll_ctl: %s", strerror(errno));
}

/* Writes what is pending; arms EPOLLOUT while the socket is full. */
static void sess_flush(struct session *s)
{
	while (s->outoff < s->outlen) {
		ssize_t n = write(s->fd, s->out + s->outoff, s->outlen - s->outoff);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (!s->want_out)
				ep_ctl(s, EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT);
			s->want_out = 1;
			return;
		}
		if (n < 0)
			die("session %d: write in state %s: %s", s->id, state_names[s->state], strerror(errno));
		s->outoff += (size_t)n;
	}
	if (s->want_out)
		ep_ctl(s, EPOLL_CTL_MOD, EPOLLIN);
	s->want_out = 0;
}

/* The only way to change a session's state: queue the command, then wait for its reply. */
static void sess_send(struct session *s, enum state next, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void sess_send(struct session *s, enum state next, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int w = vsnprintf(s->out, s->outcap, fmt, ap);
	va_end(ap);
	if (w < 0 || (size_t)w >= s->outcap)
		die("session %d: command truncated", s->id);
	s->outlen = (size_t)w;
	s->outoff = 0;
	s->state = next;
	sess_flush(s);
}

static void sess_send_message(struct session *s)
{
	int w = snprintf(s->out, s->outcap,
			 "From: Bench <bench@example.com>\r\n"
			 "To: <rcpt@example.net>\r\n"
			 "Subject: smtpload message %ld\r\n"
			 "Date: %s\r\n"
			 "Message-ID: <%s.%ld@smtpload.example.com>\r\n"
			 "MIME-Version: 1.0\r\n"
			 "Content-Type: text/plain; charset=us-ascii\r\n"
			 "\r\n",
			 s->msg, g.date, g.run, s->msg);
	if (w < 0 || (size_t)w + g.body_len + 4 > s->outcap)
		die("session %d: message truncated", s->id);
	memcpy(s->out + w, g.body, g.body_len);
	memcpy(s->out + (size_t)w + g.body_len, ".\r\n", 3);
	s->outlen = (size_t)w + g.body_len + 3;
	if (!g.msg_octets)
		g.msg_octets = s->outlen - 3;
	s->outoff = 0;
	s->state = S_DOT;
	sess_flush(s);
}

static void sess_connect(struct session *s)
{
	s->fd = socket(g.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		die("socket: %s", strerror(errno));
	int one = 1;
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(s->fd, (struct sockaddr *)&g.addr, g.addrlen) < 0 && errno != EINPROGRESS)
		die("session %d: connect: %s", s->id, strerror(errno));
	s->state = S_CONNECT;
	s->in_session = 0;
	s->inlen = 0;
	s->have_first = 0;
	s->outlen = s->outoff = 0;
	s->want_out = 1;
	ep_ctl(s, EPOLL_CTL_ADD, EPOLLOUT);
}

/* The next message in this session, or QUIT when the run or the session is done. */
static void sess_next(struct session *s)
{
	if (g.next >= g.total || s->in_session >= g.per_session) {
		sess_send(s, S_QUIT, "QUIT\r\n");
		return;
	}
	s->msg = g.next++;
	s->in_session++;
	sess_send(s, S_MAIL, "MAIL FROM:<bench@example.com>\r\n");
}

static void msg_failed(struct session *s)
{
	if (!g.errors)
		snprintf(g.first_error, sizeof(g.first_error), "message %ld, after %s: %s", s->msg,
			 state_names[s->state], s->first);
	g.errors++;
}

/* Judges the complete reply CODE to the command of the session's state.
 * Returns 1 when the session was closed (the rest of its input is void). */
static int sess_on_reply(struct session *s, int code)
{
	if (code == 421)
		die("session %d: 421 in state %s: %s", s->id, state_names[s->state], s->first);
	switch (s->state) {
	case S_BANNER:
		if (code != 220)
			die("session %d: greeting: %s", s->id, s->first);
		sess_send(s, S_EHLO, "EHLO smtpload.example.com\r\n");
		break;
	case S_EHLO:
		if (code != 250)
			die("session %d: EHLO: %s", s->id, s->first);
		if (g.auth_line)
			sess_send(s, S_AUTH, "%s", g.auth_line);
		else
			sess_next(s);
		break;
	case S_AUTH:
		if (code != 235)
			die("session %d: AUTH: %s", s->id, s->first);
		sess_next(s);
		break;
	case S_MAIL:
	case S_RCPT:
	case S_DATA: {
		static const int want[] = { [S_MAIL] = 250, [S_RCPT] = 250, [S_DATA] = 354 };
		if (code != want[s->state] && !(s->state == S_RCPT && code == 251)) {
			msg_failed(s);
			sess_send(s, S_RSET, "RSET\r\n");
		} else if (s->state == S_MAIL) {
			sess_send(s, S_RCPT, "RCPT TO:<rcpt@example.net>\r\n");
		} else if (s->state == S_RCPT) {
			sess_send(s, S_DATA, "DATA\r\n");
		} else {
			sess_send_message(s);
		}
		break;
	}
	case S_DOT:
		if (code == 250)
			g.ok++;
		else
			msg_failed(s);
		sess_next(s);
		break;
	case S_RSET:
		if (code != 250)
			die("session %d: RSET: %s", s->id, s->first);
		sess_next(s);
		break;
	case S_QUIT:
		close(s->fd); /* also takes it out of the epoll set */
		s->fd = -1;
		if (g.next < g.total)
			sess_connect(s);
		else
			g.live--;
		return 1;
	case S_CONNECT:
		die("session %d: a reply before the connection was up", s->id);
	}
	return 0;
}

/* Reads what arrived and judges every complete reply (RFC 5321 §4.2.1:
 * "ddd-" continues a multiline reply, "ddd " or "ddd" ends it). */
static void sess_on_readable(struct session *s)
{
	ssize_t n = read(s->fd, s->in + s->inlen, sizeof(s->in) - s->inlen);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0)
		die("session %d: connection %s in state %s", s->id, n ? strerror(errno) : "closed",
		    state_names[s->state]);
	s->inlen += (size_t)n;
	char *p = s->in, *end = s->in + s->inlen, *nl;
	while ((nl = memchr(p, '\n', (size_t)(end - p)))) {
		size_t len = (size_t)(nl - p);
		if (len && p[len - 1] == '\r')
			len--;
		if (len < 3 || p[0] < '2' || p[0] > '5')
			die("session %d: not a reply in state %s: %.*s", s->id, state_names[s->state], (int)len, p);
		if (!s->have_first) {
			size_t c = len < sizeof(s->first) - 1 ? len : sizeof(s->first) - 1;
			memcpy(s->first, p, c);
			s->first[c] = 0;
			s->have_first = 1;
		}
		int last = len == 3 || p[3] != '-';
		int code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
		p = nl + 1;
		if (last) {
			s->have_first = 0;
			if (sess_on_reply(s, code))
				return;
		}
	}
	s->inlen = (size_t)(end - p);
	if (s->inlen == sizeof(s->in))
		die("session %d: reply line over %zu octets", s->id, sizeof(s->in));
	memmove(s->in, p, s->inlen);
}

static void sess_on_writable(struct session *s)
{
	if (s->state != S_CONNECT) {
		sess_flush(s);
		return;
	}
	int err = 0;
	socklen_t len = sizeof(err);
	getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
	if (err)
		die("session %d: connect: %s", s->id, strerror(err));
	s->state = S_BANNER;
	s->want_out = 0;
	ep_ctl(s, EPOLL_CTL_MOD, EPOLLIN);
}

static void resolve(const char *hostport)
{
	const char *colon = strrchr(hostport, ':');
	if (!colon)
		die("want HOST:PORT, got \"%s\"", hostport);
	char host[256];
	size_t hlen = (size_t)(colon - hostport);
	if (hlen >= sizeof(host))
		die("host name too long");
	memcpy(host, hostport, hlen);
	host[hlen] = 0;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	int rc = getaddrinfo(host, colon + 1, &hints, &ai);
	if (rc)
		die("%s: %s", hostport, gai_strerror(rc));
	memcpy(&g.addr, ai->ai_addr, ai->ai_addrlen);
	g.addrlen = ai->ai_addrlen;
	freeaddrinfo(ai);
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: smtpload HOST:PORT CONCURRENCY MESSAGES SIZE [--auth USER:PASS] [--per-session N]\n");
		return 2;
	}
	resolve(argv[1]);
	int conc = (int)parse_long(argv[2], "CONCURRENCY", 1);
	g.total = parse_long(argv[3], "MESSAGES", 1);
	g.size = (size_t)parse_long(argv[4], "SIZE", 1);
	g.per_session = 100;
	for (int i = 5; i < argc; i++) {
		if (!strcmp(argv[i], "--auth") && i + 1 < argc)
			g.auth_line = auth_plain_line(argv[++i]);
		else if (!strcmp(argv[i], "--per-session") && i + 1 < argc)
			g.per_session = (int)parse_long(argv[++i], "--per-session", 1);
		else
			die("unknown argument \"%s\"", argv[i]);
	}
	if (conc > g.total)
		conc = (int)g.total;
	build_body(g.size);
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(g.date, sizeof(g.date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	snprintf(g.run, sizeof(g.run), "%ld.%ld", (long)t, (long)getpid());

	g.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (g.epfd < 0)
		die("epoll_create1: %s", strerror(errno));
	struct session *ss = calloc((size_t)conc, sizeof(*ss));
	if (!ss)
		die("out of memory");
	double t0 = now_s();
	for (int i = 0; i < conc; i++) {
		ss[i].id = i;
		ss[i].outcap = g.body_len + 1024;
		ss[i].out = xmalloc(ss[i].outcap);
		sess_connect(&ss[i]);
	}
	g.live = conc;
	struct epoll_event evs[64];
	while (g.live > 0) {
		int n = epoll_wait(g.epfd, evs, 64, STALL_MS);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("epoll_wait: %s", strerror(errno));
		if (n == 0)
			die("no reply for %d s (%ld of %ld messages done)", STALL_MS / 1000, g.ok + g.errors, g.total);
		for (int i = 0; i < n; i++) {
			struct session *s = evs[i].data.ptr;
			/* An earlier event of this batch may have closed and reopened it. */
			if ((evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && s->want_out)
				sess_on_writable(s);
			else if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				sess_on_readable(s);
		}
	}
	double secs = now_s() - t0;
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
		     (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
	if (g.errors)
		fprintf(stderr, "smtpload: %ld messages not accepted; the first: %s\n", g.errors, g.first_error);
	printf("messages=%ld ok=%ld errors=%ld seconds=%.3f msgs_per_sec=%.1f smtpload_cpu_s=%.2f message_octets=%zu\n",
	       g.ok + g.errors, g.ok, g.errors, secs, (double)g.ok / secs, cpu, g.msg_octets);
	return g.errors ? 1 : 0;
}
