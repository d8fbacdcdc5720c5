/*
 * dns_stub.c - the loopback DNS responder for tests (see dns_stub.h).
 * Answers MX queries (RFC 1035 §4.1 wire format; RFC 7505 null MX) from a
 * fixed table, and A queries for one name from a list that moves on with
 * every query, one UDP datagram at a time, on its own thread.
 */
#include "dns_stub.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/xmalloc.h"

struct dns_stub {
	int fd;
	int port;
	const struct dns_stub_rr *rrs;
	int n;
	atomic_int stop;
	atomic_int queries;
	pthread_t th;
	const char *a_name;         /* dns_stub_set_a() */
	const char *const *a_addrs;
	int a_n;
	atomic_int a_queries;
};

static size_t put_name(unsigned char *p, const char *name)
{
	size_t o = 0;
	while (*name) {
		const char *dot = strchr(name, '.');
		size_t n = dot ? (size_t)(dot - name) : strlen(name);
		p[o++] = (unsigned char)n;
		memcpy(p + o, name, n);
		o += n;
		name += n + (dot ? 1 : 0);
	}
	p[o++] = 0;
	return o;
}

/* Builds the answer to query q (len bytes) into out; returns its length. */
static size_t answer(struct dns_stub *d, const unsigned char *q, size_t len, unsigned char *out)
{
	char name[256];
	size_t o = 12, no = 0;
	while (o < len && q[o] != 0 && no + q[o] + 1 < sizeof(name)) {
		if (no)
			name[no++] = '.';
		memcpy(name + no, q + o + 1, q[o]);
		no += q[o];
		o += (size_t)q[o] + 1;
	}
	name[no] = '\0';
	size_t qend = o + 5; /* zero label, QTYPE, QCLASS */
	if (qend > len)
		return 0;
	int qtype = (q[o + 1] << 8) | q[o + 2];
	memcpy(out, q, qend);
	out[2] = 0x84 | (q[2] & 0x01); /* QR, AA, RD copied */
	out[3] = 0x80;                  /* RA, NOERROR */
	out[6] = out[7] = out[8] = out[9] = out[10] = out[11] = 0;
	int exists = 0, an = 0;
	size_t w = qend;
	if (d->a_name && strcasecmp(d->a_name, name) == 0) {
		struct in_addr ia;
		int k = atomic_fetch_add(&d->a_queries, qtype == 1 ? 1 : 0);
		if (qtype == 1 && inet_pton(AF_INET, d->a_addrs[k < d->a_n ? k : d->a_n - 1], &ia) == 1) {
			out[w++] = 0xc0, out[w++] = 12;
			out[w++] = 0, out[w++] = 1, out[w++] = 0, out[w++] = 1;
			out[w++] = 0, out[w++] = 0, out[w++] = 0, out[w++] = 0; /* TTL 0: nothing may cache it */
			out[w++] = 0, out[w++] = 4;
			memcpy(out + w, &ia, 4);
			w += 4;
			out[7] = 1;
		}
		return w;
	}
	for (int i = 0; i < d->n; i++) {
		if (strcasecmp(d->rrs[i].name, name) != 0)
			continue;
		exists = 1;
		if (!d->rrs[i].exchange || qtype != 15)
			continue;
		out[w++] = 0xc0, out[w++] = 12;
		out[w++] = 0, out[w++] = 15, out[w++] = 0, out[w++] = 1;
		out[w++] = 0, out[w++] = 0, out[w++] = 0, out[w++] = 60;
		unsigned char *rdlen = out + w;
		w += 2;
		size_t start = w;
		out[w++] = (unsigned char)(d->rrs[i].pref >> 8);
		out[w++] = (unsigned char)d->rrs[i].pref;
		w += put_name(out + w, d->rrs[i].exchange);
		rdlen[0] = (unsigned char)((w - start) >> 8);
		rdlen[1] = (unsigned char)(w - start);
		an++;
	}
	out[7] = (unsigned char)an;
	if (!exists)
		out[3] = 0x83; /* NXDOMAIN */
	return w;
}

static void *stub_thread(void *arg)
{
	struct dns_stub *d = arg;
	while (!atomic_load(&d->stop)) {
		struct pollfd p = { .fd = d->fd, .events = POLLIN };
		if (poll(&p, 1, 100) <= 0)
			continue;
		unsigned char q[512], out[4096];
		struct sockaddr_storage from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(d->fd, q, sizeof(q), 0, (struct sockaddr *)&from, &fl);
		if (n < 12)
			continue;
		size_t len = answer(d, q, (size_t)n, out);
		if (len > 0) {
			atomic_fetch_add(&d->queries, 1);
			sendto(d->fd, out, len, 0, (struct sockaddr *)&from, fl);
		}
	}
	return NULL;
}

struct dns_stub *dns_stub_start(const struct dns_stub_rr *rrs, int n)
{
	return dns_stub_start_at(rrs, n, "127.0.0.1", 0);
}

struct dns_stub *dns_stub_start_at(const struct dns_stub_rr *rrs, int n, const char *ip, int port)
{
	struct dns_stub *d = xcalloc(1, sizeof(*d));
	d->rrs = rrs;
	d->n = n;
	d->fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
	socklen_t sl = sizeof(sin);
	if (inet_pton(AF_INET, ip, &sin.sin_addr) != 1 || bind(d->fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(d->fd, (struct sockaddr *)&sin, &sl) < 0) {
		close(d->fd);
		free(d);
		return NULL;
	}
	d->port = ntohs(sin.sin_port);
	pthread_create(&d->th, NULL, stub_thread, d);
	return d;
}

int dns_stub_port(const struct dns_stub *d)
{
	return d->port;
}

void dns_stub_set_a(struct dns_stub *d, const char *name, const char *const *addrs, int n)
{
	d->a_addrs = addrs;
	d->a_n = n;
	d->a_name = name;
}

int dns_stub_a_queries(const struct dns_stub *d)
{
	return atomic_load(&((struct dns_stub *)d)->a_queries);
}

int dns_stub_queries(const struct dns_stub *d)
{
	return atomic_load(&((struct dns_stub *)d)->queries);
}

void dns_stub_stop(struct dns_stub *d)
{
	if (!d)
		return;
	atomic_store(&d->stop, 1);
	pthread_join(d->th, NULL);
	close(d->fd);
	free(d);
}
