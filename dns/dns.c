/*
 * dns.c - the resolver (see dns.h) over c-ares 1.18.
 *
 * One lookup = one c-ares channel, made, driven with poll() on this
 * thread until its callback has run or the lookup's deadline has passed,
 * then destroyed.  The channel's per-try timeout is a third of the whole
 * and it tries twice (c-ares doubles the second round), so its own retries
 * end near the deadline; the deadline is enforced here regardless
 * (ares_cancel()).  c-ares follows a truncated UDP answer over TCP itself
 * (RFC 7766 §5) and checks that the answer matches the question.
 */
#include "dns/dns.h"

#include <arpa/inet.h>
#include <ares.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

#include "util/config.h"
#include "util/xmalloc.h"

#define DNS_SERVERS_MAX 8

struct dns_resolver {
	int nservers; /* 0: /etc/resolv.conf */
	struct ares_addr_port_node servers[DNS_SERVERS_MAX];
	long timeout_ms;
};

static pthread_once_t ares_once = PTHREAD_ONCE_INIT;
static int ares_init_rc;

static void ares_lib_init(void)
{
	ares_init_rc = ares_library_init(ARES_LIB_INIT_ALL);
}

const char *dns_status_name(enum dns_status s)
{
	switch (s) {
	case DNS_OK: return "ok";
	case DNS_NXDOMAIN: return "nxdomain";
	case DNS_NODATA: return "nodata";
	case DNS_SERVFAIL: return "servfail";
	case DNS_TIMEOUT: return "timeout";
	}
	return "?";
}

struct servers_acc {
	struct dns_resolver *r;
	int bad;
};

static void add_server(const char *host, int port, void *arg)
{
	struct servers_acc *a = arg;
	struct dns_resolver *r = a->r;
	if (!r)
		return;
	if (r->nservers >= DNS_SERVERS_MAX) {
		a->bad = 1;
		return;
	}
	struct ares_addr_port_node *n = &r->servers[r->nservers];
	memset(n, 0, sizeof(*n));
	if (inet_pton(AF_INET, host, &n->addr.addr4) == 1)
		n->family = AF_INET;
	else if (inet_pton(AF_INET6, host, &n->addr.addr6) == 1)
		n->family = AF_INET6;
	else {
		a->bad = 1;
		return;
	}
	n->udp_port = port;
	n->tcp_port = port;
	r->nservers++;
}

int dns_servers_check(const char *servers, char *why, size_t whylen)
{
	return config_parse_servers(servers, NULL, NULL, why, whylen);
}

struct dns_resolver *dns_resolver_new(const char *servers, char *err, size_t errlen)
{
	pthread_once(&ares_once, ares_lib_init);
	if (ares_init_rc != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares: %s", ares_strerror(ares_init_rc));
		return NULL;
	}
	struct dns_resolver *r = xcalloc(1, sizeof(*r));
	r->timeout_ms = DNS_TIMEOUT_MS;
	if (servers && *servers) {
		struct servers_acc a = { r, 0 };
		char why[200];
		if (config_parse_servers(servers, add_server, &a, why, sizeof(why)) < 0 || a.bad) {
			snprintf(err, errlen, "dns_servers: %s", a.bad ? "at most 8 IP addresses" : why);
			free(r);
			return NULL;
		}
		for (int i = 0; i + 1 < r->nservers; i++)
			r->servers[i].next = &r->servers[i + 1];
	}
	return r;
}

void dns_resolver_free(struct dns_resolver *r)
{
	free(r);
}

void dns_resolver_set_timeout(struct dns_resolver *r, long ms)
{
	r->timeout_ms = ms > 0 ? ms : DNS_TIMEOUT_MS;
}

/* ---- one query --------------------------------------------------------- */

struct answer {
	int done;
	int status;     /* ARES_* */
	unsigned char *buf;
	int len;
};

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	(void)timeouts;
	struct answer *a = arg;
	a->done = 1;
	a->status = status;
	if (status == ARES_SUCCESS && abuf && alen > 0) {
		a->buf = xmalloc((size_t)alen);
		memcpy(a->buf, abuf, (size_t)alen);
		a->len = alen;
	}
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs the channel until a->done or the deadline. */
static void drive(ares_channel ch, struct answer *a, long deadline)
{
	while (!a->done) {
		long left = deadline - now_ms();
		if (left <= 0)
			break;
		ares_socket_t socks[ARES_GETSOCK_MAXNUM];
		/* The bitmask read as unsigned: ARES_GETSOCK_WRITABLE shifts an
		 * int 1 by up to 31, undefined behaviour. */
		unsigned bits = (unsigned)ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM);
		struct pollfd pfd[ARES_GETSOCK_MAXNUM];
		int n = 0;
		for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
			short ev = 0;
			if (bits & (1u << i))
				ev |= POLLIN;
			if (bits & (1u << (i + ARES_GETSOCK_MAXNUM)))
				ev |= POLLOUT;
			if (!ev)
				continue;
			pfd[n].fd = socks[i];
			pfd[n].events = ev;
			pfd[n].revents = 0;
			n++;
		}
		struct timeval maxtv = { left / 1000, (left % 1000) * 1000 }, tv;
		struct timeval *tvp = ares_timeout(ch, &maxtv, &tv);
		long wait = tvp ? (long)tvp->tv_sec * 1000 + (tvp->tv_usec + 999) / 1000 : left;
		if (wait > left)
			wait = left;
		int rc = poll(pfd, (nfds_t)n, (int)wait);
		if (rc < 0 && errno != EINTR)
			break;
		if (rc <= 0) {
			ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD); /* timeouts */
			continue;
		}
		for (int i = 0; i < n && !a->done; i++) {
			if (!pfd[i].revents)
				continue;
			ares_socket_t rd = (pfd[i].revents & (POLLIN | POLLERR | POLLHUP)) ? pfd[i].fd : ARES_SOCKET_BAD;
			ares_socket_t wr = (pfd[i].revents & (POLLOUT | POLLERR)) ? pfd[i].fd : ARES_SOCKET_BAD;
			ares_process_fd(ch, rd, wr);
		}
	}
}

static enum dns_status map_status(int st, const char *name, const char *type, char *err, size_t errlen)
{
	switch (st) {
	case ARES_SUCCESS:
		return DNS_OK;
	case ARES_ENOTFOUND:
	case ARES_EBADNAME:
		if (err)
			snprintf(err, errlen, "%s does not exist (NXDOMAIN)", name);
		return DNS_NXDOMAIN;
	case ARES_ENODATA:
		if (err)
			snprintf(err, errlen, "%s has no %s record", name, type);
		return DNS_NODATA;
	case ARES_ETIMEOUT:
	case ARES_ECANCELLED:
		if (err)
			snprintf(err, errlen, "%s lookup for %s timed out", type, name);
		return DNS_TIMEOUT;
	default:
		if (err)
			snprintf(err, errlen, "%s lookup for %s failed: %s", type, name, ares_strerror(st));
		return DNS_SERVFAIL;
	}
}

/*
 * Asks for name/type; on DNS_OK *buf (the caller frees) holds the answer.
 */
static enum dns_status query(const struct dns_resolver *r, const char *name, int type,
			     const char *tname, unsigned char **buf, int *len, char *err, size_t errlen)
{
	*buf = NULL;
	*len = 0;
	size_t nlen = strlen(name);
	if (nlen == 0 || nlen > DNS_NAME_MAX - 2)
		return map_status(ARES_EBADNAME, name, tname, err, errlen);
	struct ares_options o;
	memset(&o, 0, sizeof(o));
	o.flags = ARES_FLAG_NOSEARCH;
	o.timeout = (int)(r->timeout_ms / 3 > 100 ? r->timeout_ms / 3 : 100);
	o.tries = 2;
	ares_channel ch;
	int rc = ares_init_options(&ch, &o, ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (rc != ARES_SUCCESS)
		return map_status(rc, name, tname, err, errlen);
	if (r->nservers > 0) {
		rc = ares_set_servers_ports(ch, (struct ares_addr_port_node *)&r->servers[0]);
		if (rc != ARES_SUCCESS) {
			ares_destroy(ch);
			return map_status(rc, name, tname, err, errlen);
		}
	}
	struct answer a = { 0 };
	ares_query(ch, name, 1 /* C_IN */, type, on_answer, &a);
	drive(ch, &a, now_ms() + r->timeout_ms);
	if (!a.done)
		ares_cancel(ch); /* runs on_answer with ARES_ECANCELLED */
	ares_destroy(ch);
	enum dns_status s = map_status(a.status, name, tname, err, errlen);
	if (s != DNS_OK) {
		free(a.buf);
		return s;
	}
	*buf = a.buf;
	*len = a.len;
	return DNS_OK;
}

/* ---- MX ---------------------------------------------------------------- */

void dns_mx_sort(struct dns_mx *mx, int n)
{
	/* Fisher-Yates first, then a stable insertion sort by preference:
	 * equal preferences end up in random order. */
	for (int i = n - 1; i > 0; i--) {
		unsigned rnd = 0;
		if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
			rnd = (unsigned)rand();
		int j = (int)(rnd % (unsigned)(i + 1));
		struct dns_mx t = mx[i];
		mx[i] = mx[j];
		mx[j] = t;
	}
	for (int i = 1; i < n; i++) {
		struct dns_mx t = mx[i];
		int j = i - 1;
		while (j >= 0 && mx[j].pref > t.pref) {
			mx[j + 1] = mx[j];
			j--;
		}
		mx[j + 1] = t;
	}
}

static void copy_name(char *dst, const char *src)
{
	size_t n = strlen(src);
	if (n > 0 && src[n - 1] == '.')
		n--;
	if (n > DNS_NAME_MAX)
		n = DNS_NAME_MAX;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

enum dns_status dns_lookup_mx(const struct dns_resolver *r, const char *domain,
			      struct dns_mx_result *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	unsigned char *buf;
	int len;
	enum dns_status s = query(r, domain, 15 /* T_MX */, "MX", &buf, &len, err, errlen);
	if (s == DNS_NODATA) {
		/* RFC 5321 §5.1: no MX, but an address record makes the domain
		 * its own mail host; with neither there is nowhere to deliver. */
		struct dns_addr_result ad;
		enum dns_status as = dns_lookup_addr(r, domain, AF_UNSPEC, &ad, err, errlen);
		if (as == DNS_OK) {
			out->implicit = 1;
			out->n = 1;
			copy_name(out->mx[0].host, domain);
			return DNS_OK;
		}
		if (as == DNS_NODATA && err)
			snprintf(err, errlen, "%s has neither MX nor A/AAAA records", domain);
		return as;
	}
	if (s != DNS_OK)
		return s;
	struct ares_mx_reply *mx = NULL;
	int rc = ares_parse_mx_reply(buf, len, &mx);
	free(buf);
	if (rc != ARES_SUCCESS)
		return map_status(rc == ARES_ENODATA ? ARES_ENODATA : ARES_EBADRESP, domain, "MX", err,
				  errlen);
	int nullmx = 0;
	for (struct ares_mx_reply *m = mx; m; m = m->next) {
		if (m->host[0] == '\0' || strcmp(m->host, ".") == 0) {
			nullmx = 1;
			continue;
		}
		if (out->n < DNS_MX_MAX && strlen(m->host) <= DNS_NAME_MAX + 1) {
			copy_name(out->mx[out->n].host, m->host);
			out->mx[out->n].pref = m->priority;
			out->n++;
		}
	}
	ares_free_data(mx);
	/* RFC 7505 §3: a null MX is the only MX; beside real ones it is ignored. */
	if (nullmx && out->n == 0) {
		out->null_mx = 1;
		return DNS_OK;
	}
	dns_mx_sort(out->mx, out->n);
	return DNS_OK;
}

/* ---- A / AAAA ---------------------------------------------------------- */

static enum dns_status lookup_family(const struct dns_resolver *r, const char *name, int family,
				     struct dns_addr_result *out, char *err, size_t errlen)
{
	unsigned char *buf;
	int len;
	const char *tname = family == AF_INET ? "A" : "AAAA";
	enum dns_status s = query(r, name, family == AF_INET ? 1 : 28, tname, &buf, &len, err, errlen);
	if (s != DNS_OK)
		return s;
	int rc, got = 0;
	if (family == AF_INET) {
		struct ares_addrttl at[DNS_ADDR_MAX];
		int nat = DNS_ADDR_MAX;
		rc = ares_parse_a_reply(buf, len, NULL, at, &nat);
		for (int i = 0; rc == ARES_SUCCESS && i < nat && out->n < DNS_ADDR_MAX; i++, got++) {
			out->addr[out->n].family = AF_INET;
			inet_ntop(AF_INET, &at[i].ipaddr, out->addr[out->n].text, sizeof(out->addr[0].text));
			out->n++;
		}
	} else {
		struct ares_addr6ttl at[DNS_ADDR_MAX];
		int nat = DNS_ADDR_MAX;
		rc = ares_parse_aaaa_reply(buf, len, NULL, at, &nat);
		for (int i = 0; rc == ARES_SUCCESS && i < nat && out->n < DNS_ADDR_MAX; i++, got++) {
			out->addr[out->n].family = AF_INET6;
			inet_ntop(AF_INET6, &at[i].ip6addr, out->addr[out->n].text, sizeof(out->addr[0].text));
			out->n++;
		}
	}
	free(buf);
	if (rc != ARES_SUCCESS)
		return map_status(rc == ARES_ENODATA ? ARES_ENODATA : ARES_EBADRESP, name, tname, err, errlen);
	if (got == 0)
		return map_status(ARES_ENODATA, name, tname, err, errlen);
	return DNS_OK;
}

enum dns_status dns_lookup_addr(const struct dns_resolver *r, const char *name, int family,
				struct dns_addr_result *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (family == AF_INET || family == AF_INET6)
		return lookup_family(r, name, family, out, err, errlen);
	enum dns_status s4 = lookup_family(r, name, AF_INET, out, err, errlen);
	if (s4 == DNS_NXDOMAIN)
		return s4; /* the name does not exist: no AAAA either */
	char err6[256];
	enum dns_status s6 = lookup_family(r, name, AF_INET6, out, err6, sizeof(err6));
	if (s4 == DNS_OK || s6 == DNS_OK)
		return DNS_OK;
	if (s4 == DNS_NODATA) {
		if (err && s6 != DNS_NODATA)
			snprintf(err, errlen, "%s", err6);
		if (err && s6 == DNS_NODATA)
			snprintf(err, errlen, "%s has no A or AAAA record", name);
		return s6;
	}
	return s4;
}

/* ---- TXT --------------------------------------------------------------- */

enum dns_status dns_lookup_txt(const struct dns_resolver *r, const char *name,
			       struct dns_txt_result *out, char *err, size_t errlen)
{
	out->n = 0;
	unsigned char *buf;
	int len;
	enum dns_status s = query(r, name, 16 /* T_TXT */, "TXT", &buf, &len, err, errlen);
	if (s != DNS_OK)
		return s;
	struct ares_txt_ext *txt = NULL;
	int rc = ares_parse_txt_reply_ext(buf, len, &txt);
	free(buf);
	if (rc != ARES_SUCCESS)
		return map_status(rc == ARES_ENODATA ? ARES_ENODATA : ARES_EBADRESP, name, "TXT", err, errlen);
	/* record_start marks the first character-string of each record; the
	 * strings of one record are joined with nothing between them. */
	size_t used = 0;
	int skip = 0;
	for (struct ares_txt_ext *t = txt; t; t = t->next) {
		if (t->record_start) {
			if (out->n >= DNS_TXT_MAX) {
				skip = 1;
				break;
			}
			out->rec[out->n][0] = '\0';
			used = 0;
			skip = 0;
			out->n++;
		} else if (out->n == 0) {
			continue;
		}
		if (skip)
			continue;
		if (used + t->length > DNS_TXT_LEN_MAX) {
			/* Too long to keep: dropped whole, never truncated. */
			out->n--;
			skip = 1;
			continue;
		}
		memcpy(out->rec[out->n - 1] + used, t->txt, t->length);
		used += t->length;
		out->rec[out->n - 1][used] = '\0';
	}
	ares_free_data(txt);
	if (out->n == 0)
		return map_status(ARES_ENODATA, name, "TXT", err, errlen);
	return DNS_OK;
}
