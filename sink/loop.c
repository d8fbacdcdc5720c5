/*
 * loop.c - the sink's event loop (see sink.h): listeners, one epoll set,
 * a signalfd, and a min-heap of session timers (sink/reactor.c).  Modelled on Redis's
 * ae.c: one thread, level-triggered epoll, the nearest timer bounds the
 * wait.
 *
 * Every session is always in the heap (its reply due time, or else its
 * idle deadline), so the heap is also the list of sessions sink_free()
 * closes.  Accepting stops for 100 ms when the process runs out of
 * descriptors (EMFILE/ENFILE), instead of spinning on a listener that
 * stays readable.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sink/internal.h"
#include "util/config.h"
#include "util/limits.h"
#include "util/log.h"
#include "util/xmalloc.h"

#define SINK_EVENTS_MAX 256
#define SINK_ACCEPT_BURST 256
#define SINK_PAUSE_MS 100
#define SINK_STATS_EVERY_MS 1000

/* ---- listeners ---- */

/* Binds one "host:port"; returns the socket or -1 with err set. */
static int listen_one(const char *addr, int *port, char *err, size_t errlen)
{
	char host[256], ps[16];
	int p = 0;
	if (config_parse_hostport(addr, host, sizeof(host), &p) != 0 || p < 0 || p > 65535)
		return snprintf(err, errlen, "bad listen address \"%s\" (want host:port)", addr), -1;
	snprintf(ps, sizeof(ps), "%d", p);
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	int gai = getaddrinfo(host, ps, &hints, &ai);
	if (gai != 0)
		return snprintf(err, errlen, "%s: %s", addr, gai_strerror(gai)), -1;
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
		snprintf(err, errlen, "%s: %s", addr, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return -1;
	}
	freeaddrinfo(ai);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	*port = p;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		*port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						     : ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

static int listeners_open(struct sink *sk, char *err, size_t errlen)
{
	char *copy = xstrdup(sk->p.listen);
	int rc = 0;
	for (char *p = copy, *next; rc == 0 && p != NULL; p = next) {
		next = strchr(p, ',');
		if (next)
			*next++ = '\0';
		sk->ls = xrealloc(sk->ls, (sk->nls + 1) * sizeof(*sk->ls));
		struct sink_listener *l = &sk->ls[sk->nls];
		l->kind = SINK_EV_LISTENER;
		l->fd = listen_one(p, &l->port, err, errlen);
		if (l->fd < 0)
			rc = -1;
		else
			sk->nls++;
	}
	free(copy);
	return rc;
}

static void listeners_watch(struct sink *sk, int on)
{
	for (size_t i = 0; i < sk->nls; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &sk->ls[i] };
		epoll_ctl(sk->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, sk->ls[i].fd, &ev);
	}
	sk->paused = !on;
}

/* Tens of thousands of sessions need as many descriptors. */
static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

struct sink *sink_new(const struct sink_params *params, char *err, size_t errlen)
{
	struct sink *sk = xcalloc(1, sizeof(*sk));
	sk->p = *params;
	if (sk->p.idle_timeout_ms <= 0)
		sk->p.idle_timeout_ms = MF_SMTP_SERVER_IDLE_TIMEOUT_MS;
	if (sk->p.hostname == NULL)
		sk->p.hostname = "mailferry-sink";
	sink_count_init(&sk->count);
	sk->rng = ((uint64_t)sink_now_ms() << 20) ^ (uint64_t)getpid() ^ 0x9e3779b97f4a7c15ULL;
	sk->rbuf = xmalloc(SINK_READ_CHUNK + SINK_TEXT_LINE_MAX);
	raise_nofile();
	if (sk->p.tls_cert_file != NULL || sk->p.tls_key_file != NULL) {
		if (sk->p.tls_cert_file == NULL || sk->p.tls_key_file == NULL) {
			snprintf(err, errlen, "a TLS certificate needs its key and a key its certificate");
			sink_free(sk);
			return NULL;
		}
		sk->tls = tls_server_ctx_new(sk->p.tls_cert_file, sk->p.tls_key_file, err, errlen);
		if (sk->tls == NULL) {
			sink_free(sk);
			return NULL;
		}
	}
	sk->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (sk->epfd < 0) {
		snprintf(err, errlen, "epoll_create1: %s", strerror(errno));
		sink_free(sk);
		return NULL;
	}
	if (listeners_open(sk, err, errlen) != 0) {
		sink_free(sk);
		return NULL;
	}
	listeners_watch(sk, 1);
	return sk;
}

size_t sink_listeners(const struct sink *sk)
{
	return sk->nls;
}

int sink_port(const struct sink *sk, size_t i)
{
	return i < sk->nls ? sk->ls[i].port : -1;
}

const struct sink_count *sink_counts(const struct sink *sk)
{
	return &sk->count;
}

/* ---- the loop ---- */

static void accept_burst(struct sink *sk, struct sink_listener *l)
{
	for (int i = 0; i < SINK_ACCEPT_BURST; i++) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				listeners_watch(sk, 0);
				sk->resume_ms = sk->now_ms + SINK_PAUSE_MS;
			}
			return;
		}
		/* Replies are small and timed: do not let Nagle hold them. */
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		sk->count.sessions++;
		if (++sk->count.open > sk->count.peak)
			sk->count.peak = sk->count.open;
		struct sink_session *s = NULL;
		if (sink_session_open(sk, fd, &s) != 0)
			sink_session_close(sk, s);
		sink_hold_check(sk);
	}
}

void sink_hold_check(struct sink *sk)
{
	if (sk->p.data_hold == 0 || sk->hold_released || sk->count.peak < sk->p.data_hold)
		return;
	sk->hold_released = 1;
	/* Every session is in the heap; the held ones move to their due time
	 * (collected first: rescheduling reorders the heap). */
	struct sink_session **held = xcalloc(sk->heap_n + 1, sizeof(*held));
	size_t n = 0;
	for (size_t i = 0; i < sk->heap_n; i++)
		if (sk->heap[i]->due_ms == SINK_HELD_MS)
			held[n++] = sk->heap[i];
	long delay = sk->p.data_delay_ms > 0 ? sk->p.data_delay_ms : sk->p.reply_delay_ms;
	for (size_t i = 0; i < n; i++) {
		held[i]->due_ms = sk->now_ms + delay + held[i]->tarpit_ms;
		held[i]->at_ms = held[i]->due_ms;
		sink_timer_set(sk, held[i]);
	}
	free(held);
	log_info("event=sink_hold_released sessions=%llu held_replies=%zu", sk->count.peak, n);
}

static void print_counts(struct sink *sk, FILE *f)
{
	char line[512];
	if (sink_count_format(&sk->count, sk->p.json, line, sizeof(line)) == 0)
		fprintf(f, "%s\n", line);
	fflush(f);
}

/* Writes the counters into stats_file through a temporary name. */
static void write_stats(struct sink *sk)
{
	char tmp[4096];
	int n = snprintf(tmp, sizeof(tmp), "%s.tmp", sk->p.stats_file);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return;
	FILE *f = fopen(tmp, "w");
	if (f == NULL)
		return;
	print_counts(sk, f);
	if (fclose(f) == 0)
		rename(tmp, sk->p.stats_file);
}

static void run_timers(struct sink *sk)
{
	while (sk->heap_n > 0 && sk->heap[0]->at_ms <= sk->now_ms) {
		struct sink_session *s = sk->heap[0];
		if (sink_session_timer(sk, s) != 0)
			sink_session_close(sk, s);
		else if (s->heap_idx == 0 && s->at_ms <= sk->now_ms)
			break;  /* cannot happen: a session always moves its timer on */
	}
}

static int wait_ms(struct sink *sk, long long next_stats)
{
	long long next = next_stats;
	if (sk->heap_n > 0 && (next == 0 || sk->heap[0]->at_ms < next))
		next = sk->heap[0]->at_ms;
	if (sk->paused && (next == 0 || sk->resume_ms < next))
		next = sk->resume_ms;
	if (next == 0)
		return -1;
	long long d = next - sink_now_ms();
	return d < 0 ? 0 : d > 60000 ? 60000 : (int)d;
}

/* Handles one signal; 1 when the loop must stop. */
static int on_signal(struct sink *sk, int sfd)
{
	struct signalfd_siginfo si;
	if (read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
		return 0;
	if (si.ssi_signo == SIGUSR1) {
		print_counts(sk, stdout);
		return 0;
	}
	return si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT;
}

int sink_run(struct sink *sk, const sigset_t *sigs, char *err, size_t errlen)
{
	int sfd = signalfd(-1, sigs, SFD_NONBLOCK | SFD_CLOEXEC);
	static enum sink_ev_kind sig_kind = SINK_EV_SIGNAL;
	struct epoll_event sev = { .events = EPOLLIN, .data.ptr = &sig_kind };
	if (sfd < 0 || epoll_ctl(sk->epfd, EPOLL_CTL_ADD, sfd, &sev) != 0) {
		snprintf(err, errlen, "signalfd: %s", strerror(errno));
		if (sfd >= 0)
			close(sfd);
		return -1;
	}
	struct epoll_event evs[SINK_EVENTS_MAX];
	long long next_stats = sk->p.stats_file ? sink_now_ms() : 0;
	int stop = 0;
	while (!stop) {
		int n = epoll_wait(sk->epfd, evs, SINK_EVENTS_MAX, wait_ms(sk, next_stats));
		if (n < 0 && errno != EINTR) {
			snprintf(err, errlen, "epoll_wait: %s", strerror(errno));
			close(sfd);
			return -1;
		}
		sk->now_ms = sink_now_ms();
		for (int i = 0; i < n; i++) {
			enum sink_ev_kind *k = evs[i].data.ptr;
			if (*k == SINK_EV_SIGNAL) {
				stop |= on_signal(sk, sfd);
			} else if (*k == SINK_EV_LISTENER) {
				accept_burst(sk, (struct sink_listener *)(void *)k);
			} else {
				struct sink_session *s = (struct sink_session *)(void *)k;
				int rc = 0;
				if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
					rc = sink_session_writable(sk, s);
				if (rc == 0 && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && s->ev & EPOLLIN)
					rc = sink_session_readable(sk, s);
				if (rc != 0)
					sink_session_close(sk, s);
			}
		}
		run_timers(sk);
		if (sk->paused && sk->resume_ms <= sk->now_ms)
			listeners_watch(sk, 1);
		if (next_stats != 0 && next_stats <= sk->now_ms) {
			write_stats(sk);
			next_stats = sk->now_ms + SINK_STATS_EVERY_MS;
		}
	}
	close(sfd);
	if (sk->p.stats_file)
		write_stats(sk);
	return 0;
}

void sink_free(struct sink *sk)
{
	if (sk == NULL)
		return;
	while (sk->heap_n > 0)
		sink_session_close(sk, sk->heap[sk->heap_n - 1]);
	for (size_t i = 0; i < sk->nls; i++)
		close(sk->ls[i].fd);
	if (sk->epfd > 0)
		close(sk->epfd);
	free(sk->ls);
	free(sk->heap);
	free(sk->rbuf);
	tls_ctx_free(sk->tls);
	sink_count_cleanup(&sk->count);
	free(sk);
}
