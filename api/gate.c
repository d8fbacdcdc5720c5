/*
 * gate.c - admission in front of libmicrohttpd (see gate.h).
 *
 * One thread per gate waits in epoll on the listening socket, a wake-up
 * pipe and the connections whose first head is still arriving.  The
 * connections are edge-triggered: each arrival of bytes is one event, on
 * which the gate peeks at everything received so far (at most
 * MF_API_HEAD_MAX octets) and judges it again from the start.  Pending
 * connections sit in a list in accept order, which is also deadline order
 * (one timeout for all), so expiry looks at the head of the list only.
 *
 * Counts per client address live in a small hash table under a mutex: the
 * gate adds on accept, and releases when it closes a connection itself or
 * when the server reports the close of one handed off.  Both happen once
 * per connection, not per request.
 *
 * Refusals are written with one non-blocking send() and followed by a
 * drain of what the client sent (so that close() sends a FIN, not a reset
 * that could destroy the answer before the client reads it).
 */
#include "api/gate.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "api/head.h"
#include "util/limits.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/xmalloc.h"

#define ADDR_BUCKETS 256

struct addr_count {
	struct addr_count *next;
	uint8_t key[16]; /* IPv6, or IPv4 as ::ffff:a.b.c.d */
	int n;
};

struct pending {
	struct pending *prev, *next;
	int fd;
	int peeks;
	long deadline_ms;
	struct sockaddr_storage ss;
	socklen_t sslen;
};

struct api_gate {
	struct api_gate_params p;
	char name[16];
	int lfd, epfd;
	int wake[2];
	pthread_t thread;
	int started;
	pthread_mutex_t mu; /* the counts */
	struct addr_count *buckets[ADDR_BUCKETS];
	int total;
	struct pending *head, *tail; /* accept order = deadline order */
	char peek[MF_API_HEAD_MAX];
};

/* --- rate-limited server log -------------------------------------------- */

static pthread_mutex_t netlog_mu = PTHREAD_MUTEX_INITIALIZER;
static long netlog_window_start;
static int netlog_lines;
static long netlog_suppressed;

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Opens a new window when the old one is over; returns the count of lines
 * left out in the old one (to be reported).  Under netlog_mu. */
static long netlog_roll(long now)
{
	long dropped = 0;
	if (now - netlog_window_start >= MF_API_NETLOG_WINDOW_MS) {
		dropped = netlog_suppressed;
		netlog_suppressed = 0;
		netlog_lines = 0;
		netlog_window_start = now;
	}
	return dropped;
}

static void netlog_report(long dropped)
{
	if (dropped > 0)
		log_warn("event=http_server_messages_suppressed count=%ld window_ms=%d", dropped,
			 MF_API_NETLOG_WINDOW_MS);
}

void api_netlog(const char *fmt, ...)
{
	pthread_mutex_lock(&netlog_mu);
	long dropped = netlog_roll(now_ms());
	int ok = netlog_lines < MF_API_NETLOG_BURST;
	if (ok)
		netlog_lines++;
	else
		netlog_suppressed++;
	pthread_mutex_unlock(&netlog_mu);
	netlog_report(dropped);
	if (ok) {
		va_list ap;
		va_start(ap, fmt);
		log_vmsg(MF_LOG_WARN, fmt, ap);
		va_end(ap);
	}
}

/* Reports lines left out in a window that has ended (called by the gate
 * thread at least once a second, so a burst's count is not held back
 * until the next message). */
static void netlog_tick(void)
{
	pthread_mutex_lock(&netlog_mu);
	long dropped = netlog_suppressed > 0 ? netlog_roll(now_ms()) : 0;
	pthread_mutex_unlock(&netlog_mu);
	netlog_report(dropped);
}

/* --- counts per address ------------------------------------------------- */

static void addr_key(const struct sockaddr *sa, uint8_t key[16])
{
	memset(key, 0, 16);
	if (sa->sa_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	} else if (sa->sa_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	}
}

static unsigned addr_hash(const uint8_t key[16])
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 16777619u;
	return h % ADDR_BUCKETS;
}

/* 0 and counted, or the status refusing it (429 per address, 503 in all). */
static int addr_take(struct api_gate *g, const struct sockaddr *sa)
{
	uint8_t key[16];
	addr_key(sa, key);
	unsigned h = addr_hash(key);
	int status = 0;
	pthread_mutex_lock(&g->mu);
	struct addr_count *c = g->buckets[h];
	while (c && memcmp(c->key, key, 16) != 0)
		c = c->next;
	if (g->total >= g->p.total_max) {
		status = 503;
	} else if (c && c->n >= g->p.per_addr_max) {
		status = 429;
	} else {
		if (c == NULL) {
			c = xcalloc(1, sizeof(*c));
			memcpy(c->key, key, 16);
			c->next = g->buckets[h];
			g->buckets[h] = c;
		}
		c->n++;
		g->total++;
	}
	pthread_mutex_unlock(&g->mu);
	return status;
}

void api_gate_release(struct api_gate *g, const struct sockaddr *sa)
{
	uint8_t key[16];
	addr_key(sa, key);
	unsigned h = addr_hash(key);
	pthread_mutex_lock(&g->mu);
	for (struct addr_count **pp = &g->buckets[h]; *pp; pp = &(*pp)->next) {
		struct addr_count *c = *pp;
		if (memcmp(c->key, key, 16) != 0)
			continue;
		g->total--;
		if (--c->n == 0) {
			*pp = c->next;
			free(c);
		}
		break;
	}
	pthread_mutex_unlock(&g->mu);
}

/* --- connections -------------------------------------------------------- */

static void count(struct api_gate *g, const char *reason)
{
	if (g->p.metrics == NULL)
		return;
	char labels[96];
	snprintf(labels, sizeof(labels), "listener=\"%s\",reason=\"%s\"", g->name, reason);
	metrics_counter_add(g->p.metrics, "mailferry_http_connections_refused_total",
			    "HTTP connections closed by the server before a request (limits, deadlines, garbage).",
			    labels, 1);
}

/* Sends a problem+json answer, reads what the client sent, closes. */
static void refuse(struct api_gate *g, int fd, const struct sockaddr *sa, int status, const char *code,
		   const char *detail)
{
	const char *title = status == 400 ? "Bad Request" : status == 408 ? "Request Timeout"
			  : status == 429 ? "Too Many Requests" : status == 431 ? "Request Header Fields Too Large"
			  : "Service Unavailable";
	char body[512], msg[1024];
	int bl = snprintf(body, sizeof(body),
			  "{\"type\":\"https://mailferry.dev/problems/%s\",\"title\":\"%s\",\"status\":%d,"
			  "\"code\":\"%s\",\"detail\":\"%s\"}",
			  code, title, status, code, detail);
	int ml = snprintf(msg, sizeof(msg),
			  "HTTP/1.1 %d %s\r\nContent-Type: application/problem+json\r\nContent-Length: %d\r\n"
			  "Connection: close\r\n%s\r\n%s",
			  status, title, bl, status == 429 || status == 503 ? "Retry-After: 1\r\n" : "", body);
	if (ml > 0 && (size_t)ml < sizeof(msg) && send(fd, msg, (size_t)ml, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_debug("event=http_refusal_unsent error=\"%s\"", strerror(errno));
	for (int i = 0; i < 4 && recv(fd, g->peek, sizeof(g->peek), MSG_DONTWAIT) > 0; i++)
		;
	shutdown(fd, SHUT_WR);
	close(fd);
	char host[64] = "";
	const void *a = sa->sa_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
						  : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
	inet_ntop(sa->sa_family, a, host, sizeof(host));
	api_netlog("event=http_connection_refused listener=%s peer=%s status=%d code=%s detail=%s", g->name, host,
		   status, code, detail);
	count(g, code);
}

static void pending_unlink(struct api_gate *g, struct pending *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		g->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		g->tail = c->prev;
	epoll_ctl(g->epfd, EPOLL_CTL_DEL, c->fd, NULL);
}

/* Ends a pending connection: refused (status != 0) or silently closed. */
static void pending_end(struct api_gate *g, struct pending *c, int status, const char *code, const char *detail)
{
	pending_unlink(g, c);
	if (status)
		refuse(g, c->fd, (struct sockaddr *)&c->ss, status, code, detail);
	else
		close(c->fd);
	api_gate_release(g, (struct sockaddr *)&c->ss);
	free(c);
}

static void on_accept(struct api_gate *g)
{
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(g->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_error("event=http_accept_failed listener=%s error=\"%s\"", g->name, strerror(errno));
			return;
		}
		int status = addr_take(g, (struct sockaddr *)&ss);
		if (status == 429) {
			refuse(g, fd, (struct sockaddr *)&ss, 429, "rate_limited",
			       "too many connections from this address");
			continue;
		}
		if (status == 503) {
			refuse(g, fd, (struct sockaddr *)&ss, 503, "unavailable", "too many connections");
			continue;
		}
		struct pending *c = xcalloc(1, sizeof(*c));
		c->fd = fd;
		c->ss = ss;
		c->sslen = sl;
		c->deadline_ms = now_ms() + g->p.head_timeout_ms;
		c->prev = g->tail;
		if (g->tail)
			g->tail->next = c;
		else
			g->head = c;
		g->tail = c;
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = c };
		if (epoll_ctl(g->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
			pending_end(g, c, 503, "unavailable", "cannot watch the connection");
	}
}

static void on_readable(struct api_gate *g, struct pending *c)
{
	ssize_t n = recv(c->fd, g->peek, sizeof(g->peek), MSG_PEEK);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		pending_end(g, c, 0, NULL, NULL);
		return;
	}
	c->peeks++;
	switch (api_head_judge(g->peek, (size_t)n)) {
	case API_HEAD_COMPLETE: {
		pending_unlink(g, c);
		int fd = c->fd;
		struct sockaddr_storage ss = c->ss;
		socklen_t sl = c->sslen;
		free(c);
		if (g->p.handoff(g->p.arg, fd, (struct sockaddr *)&ss, sl) != 0)
			api_gate_release(g, (struct sockaddr *)&ss);
		return;
	}
	case API_HEAD_BAD:
		pending_end(g, c, 400, "bad_request", "the request line is not HTTP");
		return;
	case API_HEAD_TOO_BIG:
		pending_end(g, c, 431, "header_too_large", "the request head is larger than allowed");
		return;
	case API_HEAD_INCOMPLETE:
		if (c->peeks >= MF_API_HEAD_PEEKS)
			pending_end(g, c, 408, "request_timeout", "the request head arrived in too many pieces");
		return;
	}
}

static void *gate_main(void *arg)
{
	struct api_gate *g = arg;
	struct epoll_event evs[64];
	for (;;) {
		long now = now_ms();
		while (g->head && g->head->deadline_ms <= now)
			pending_end(g, g->head, 408, "request_timeout", "the request head did not arrive in time");
		int wait = 1000;
		if (g->head && g->head->deadline_ms - now < wait)
			wait = (int)(g->head->deadline_ms - now);
		int n = epoll_wait(g->epfd, evs, 64, wait);
		if (n < 0 && errno != EINTR) {
			log_error("event=http_gate_failed listener=%s error=\"%s\"", g->name, strerror(errno));
			break;
		}
		netlog_tick();
		int stop = 0;
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == &g->lfd)
				on_accept(g);
			else if (evs[i].data.ptr == &g->wake)
				stop = 1;
			else
				on_readable(g, evs[i].data.ptr);
		}
		if (stop)
			break;
	}
	return NULL;
}

struct api_gate *api_gate_new(const struct api_gate_params *p, int lfd, char *err, size_t errlen)
{
	struct api_gate *g = xcalloc(1, sizeof(*g));
	g->p = *p;
	snprintf(g->name, sizeof(g->name), "%s", p->name ? p->name : "http");
	g->p.name = g->name;
	g->lfd = lfd;
	g->wake[0] = g->wake[1] = -1;
	pthread_mutex_init(&g->mu, NULL);
	g->epfd = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event el = { .events = EPOLLIN, .data.ptr = &g->lfd };
	struct epoll_event ew = { .events = EPOLLIN, .data.ptr = &g->wake };
	if (g->epfd < 0 || fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK) != 0 ||
	    pipe2(g->wake, O_CLOEXEC) != 0 || epoll_ctl(g->epfd, EPOLL_CTL_ADD, lfd, &el) != 0 ||
	    epoll_ctl(g->epfd, EPOLL_CTL_ADD, g->wake[0], &ew) != 0) {
		snprintf(err, errlen, "%s listener: %s", g->name, strerror(errno));
		api_gate_free(g);
		return NULL;
	}
	if (p->publish)
		*p->publish = g; /* before the thread: pthread_create orders it before every handoff */
	if (pthread_create(&g->thread, NULL, gate_main, g) != 0) {
		snprintf(err, errlen, "%s listener: cannot start thread", g->name);
		if (p->publish)
			*p->publish = NULL;
		api_gate_free(g);
		return NULL;
	}
	g->started = 1;
	return g;
}

void api_gate_stop(struct api_gate *g)
{
	if (g == NULL)
		return;
	if (g->started) {
		if (write(g->wake[1], "x", 1) != 1)
			log_error("event=http_gate_wake_failed error=\"%s\"", strerror(errno));
		pthread_join(g->thread, NULL);
		g->started = 0;
	}
	while (g->head)
		pending_end(g, g->head, 0, NULL, NULL);
	if (g->lfd >= 0)
		close(g->lfd);
	g->lfd = -1;
}

void api_gate_free(struct api_gate *g)
{
	if (g == NULL)
		return;
	api_gate_stop(g);
	if (g->epfd >= 0)
		close(g->epfd);
	if (g->wake[0] >= 0)
		close(g->wake[0]);
	if (g->wake[1] >= 0)
		close(g->wake[1]);
	for (int i = 0; i < ADDR_BUCKETS; i++) {
		while (g->buckets[i]) {
			struct addr_count *c = g->buckets[i];
			g->buckets[i] = c->next;
			free(c);
		}
	}
	pthread_mutex_destroy(&g->mu);
	free(g);
}
