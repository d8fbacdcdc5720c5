/*
 * route.c - routing and MX lookup (see route.h).
 *
 * DNS goes through libresolv's res_nquery() with a resolver state of the
 * caller's own (thread-safe), and ns_initparse()/ns_parserr() to read the
 * answer.  RFC 5321 §5.1: MX records in preference order, equal ones in
 * random order; no MX but the name exists: the name itself is the host;
 * RFC 7505 §3: a single "MX 0 ." means the domain accepts no mail.
 */
#include "relay/route.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ctype.h>
#include <netinet/in.h>
#include <netdb.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "util/config.h"
#include "util/limits.h"
#include "util/xmalloc.h"

struct route_entry {
	char *domain; /* lower case, or "*" */
	char host[256];
	int port;
};

struct router {
	struct route_entry *routes;
	int nroutes;
	int has_smarthost;
	char smart_host[256];
	int smart_port;
	route_mx_fn mx_fn;
	void *mx_arg;
	int has_ns;
	struct sockaddr_in ns;
};

struct router *router_new(const char *routes, const char *smarthost, char *err, size_t errlen)
{
	struct router *rt = xcalloc(1, sizeof(*rt));
	if (smarthost) {
		if (config_parse_hostport(smarthost, rt->smart_host, sizeof(rt->smart_host),
					  &rt->smart_port) < 0) {
			snprintf(err, errlen, "smarthost \"%s\" is not host:port", smarthost);
			router_free(rt);
			return NULL;
		}
		rt->has_smarthost = 1;
	}
	const char *p = routes ? routes : "";
	while (*p) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		char item[600];
		while (n && *p == ' ')
			p++, n--;
		while (n && p[n - 1] == ' ')
			n--;
		if (n > 0) {
			snprintf(item, sizeof(item), "%.*s", (int)n, p);
			char *eq = strchr(item, '=');
			struct route_entry e = { 0 };
			if (!eq || eq == item || n >= sizeof(item) ||
			    config_parse_hostport(eq + 1, e.host, sizeof(e.host), &e.port) < 0) {
				snprintf(err, errlen, "route \"%s\" is not domain=host:port", item);
				router_free(rt);
				return NULL;
			}
			*eq = '\0';
			for (char *q = item; *q; q++)
				*q = (char)tolower((unsigned char)*q);
			e.domain = xstrdup(item);
			rt->routes = xrealloc(rt->routes, sizeof(*rt->routes) * (size_t)(rt->nroutes + 1));
			rt->routes[rt->nroutes++] = e;
		}
		if (!comma)
			break;
		p = comma + 1;
	}
	return rt;
}

void router_free(struct router *rt)
{
	if (!rt)
		return;
	for (int i = 0; i < rt->nroutes; i++)
		free(rt->routes[i].domain);
	free(rt->routes);
	free(rt);
}

void router_set_nameserver(struct router *rt, const char *ip, int port)
{
	memset(&rt->ns, 0, sizeof(rt->ns));
	rt->ns.sin_family = AF_INET;
	rt->ns.sin_port = htons((uint16_t)port);
	rt->has_ns = inet_pton(AF_INET, ip, &rt->ns.sin_addr) == 1;
}

void router_set_mx_lookup(struct router *rt, route_mx_fn fn, void *arg)
{
	rt->mx_fn = fn;
	rt->mx_arg = arg;
}

static void dns_fail(struct smtp_outcome *f, int permanent, const char *enhanced, const char *fmt,
		     const char *domain)
{
	memset(f, 0, sizeof(*f));
	f->scope = SCOPE_SESSION;
	f->cls = OUT_LOCAL;
	f->kind = KIND_DNS;
	f->permanent = permanent;
	snprintf(f->enhanced, sizeof(f->enhanced), "%s", enhanced);
	snprintf(f->text, sizeof(f->text), fmt, domain);
}

int route_mx_parse(const unsigned char *answer, int len, struct route_hop *hops, int max)
{
	ns_msg msg;
	if (ns_initparse(answer, len, &msg) < 0)
		return -1;
	int n = 0, count = ns_msg_count(msg, ns_s_an), nullmx = 0;
	for (int i = 0; i < count; i++) {
		ns_rr rr;
		if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
			return -1;
		if (ns_rr_type(rr) != ns_t_mx || ns_rr_class(rr) != ns_c_in)
			continue; /* e.g. the CNAME the name pointed at */
		if (ns_rr_rdlen(rr) < 3)
			return -1;
		const unsigned char *rd = ns_rr_rdata(rr);
		int pref = ns_get16(rd);
		char name[NS_MAXDNAME];
		if (ns_name_uncompress(ns_msg_base(msg), ns_msg_end(msg), rd + 2, name, sizeof(name)) < 0)
			return -1;
		if (name[0] == '\0' || strcmp(name, ".") == 0) {
			nullmx = 1;
			continue;
		}
		size_t nlen = strlen(name);
		if (n < max && nlen < sizeof(hops[n].host)) {
			memcpy(hops[n].host, name, nlen + 1);
			hops[n].port = 25;
			hops[n].pref = pref;
			n++;
		}
	}
	/* RFC 7505 §3: a null MX is the only MX; ignore it beside real ones. */
	if (nullmx && n == 0)
		return ROUTE_NULL_MX;
	return n;
}

void route_sort(struct route_hop *hops, int n)
{
	/* Fisher-Yates first, then a stable insertion sort by preference:
	 * equal preferences end up in random order. */
	for (int i = n - 1; i > 0; i--) {
		unsigned r = 0;
		if (getrandom(&r, sizeof(r), 0) != sizeof(r))
			r = (unsigned)rand();
		int j = (int)(r % (unsigned)(i + 1));
		struct route_hop t = hops[i];
		hops[i] = hops[j];
		hops[j] = t;
	}
	for (int i = 1; i < n; i++) {
		struct route_hop t = hops[i];
		int j = i - 1;
		while (j >= 0 && hops[j].pref > t.pref) {
			hops[j + 1] = hops[j];
			j--;
		}
		hops[j + 1] = t;
	}
}

/* The DNS MX lookup.  Returns hops, 0 for "no MX records", -1 on failure. */
static int dns_mx(const struct router *rt, const char *domain, struct route_hop *hops, int max,
		  struct smtp_outcome *fail)
{
	struct __res_state st;
	memset(&st, 0, sizeof(st));
	if (res_ninit(&st) < 0) {
		dns_fail(fail, 0, "4.4.3", "cannot initialise the resolver for %s", domain);
		return -1;
	}
	if (rt->has_ns) {
		st.nscount = 1;
		st.nsaddr_list[0] = rt->ns;
	}
	unsigned char answer[NS_MAXMSG];
	int len = res_nquery(&st, domain, ns_c_in, ns_t_mx, answer, sizeof(answer));
	int herr = st.res_h_errno;
	res_nclose(&st);
	if (len < 0) {
		if (herr == HOST_NOT_FOUND) {
			/* NXDOMAIN: the domain does not exist (RFC 3463 5.1.2). */
			dns_fail(fail, 1, "5.1.2", "domain %s does not exist (NXDOMAIN)", domain);
			return -1;
		}
		if (herr == NO_DATA)
			return 0;
		dns_fail(fail, 0, "4.4.3", "MX lookup for %s failed temporarily", domain);
		return -1;
	}
	int n = route_mx_parse(answer, len, hops, max);
	if (n == ROUTE_NULL_MX) {
		/* RFC 7505 §4.1 / RFC 7505 §3: 5.1.10 "Recipient address has null MX". */
		dns_fail(fail, 1, "5.1.10", "domain %s accepts no mail (null MX, RFC 7505)", domain);
		return -1;
	}
	if (n < 0) {
		dns_fail(fail, 0, "4.4.3", "malformed MX answer for %s", domain);
		return -1;
	}
	return n;
}

static const struct route_entry *find_route(const struct router *rt, const char *domain)
{
	const struct route_entry *star = NULL;
	for (int i = 0; i < rt->nroutes; i++) {
		if (strcasecmp(rt->routes[i].domain, domain) == 0)
			return &rt->routes[i];
		if (strcmp(rt->routes[i].domain, "*") == 0 && !star)
			star = &rt->routes[i];
	}
	return star;
}

int router_resolve(const struct router *rt, const char *domain, struct route_hop *hops, int max,
		   enum route_via *via, struct smtp_outcome *fail)
{
	if (max < 1) {
		dns_fail(fail, 0, "4.3.0", "no room for hops routing %s", domain);
		return -1;
	}
	const struct route_entry *e = find_route(rt, domain);
	if (e) {
		snprintf(hops[0].host, sizeof(hops[0].host), "%s", e->host);
		hops[0].port = e->port;
		hops[0].pref = 0;
		*via = ROUTE_VIA_ROUTES;
		return 1;
	}
	if (rt->has_smarthost) {
		snprintf(hops[0].host, sizeof(hops[0].host), "%s", rt->smart_host);
		hops[0].port = rt->smart_port;
		hops[0].pref = 0;
		*via = ROUTE_VIA_SMARTHOST;
		return 1;
	}
	*via = ROUTE_VIA_MX;
	if (strlen(domain) > MF_DOMAIN_MAX || domain[0] == '\0') {
		dns_fail(fail, 1, "5.1.2", "invalid domain \"%s\"", domain);
		return -1;
	}
	int n = rt->mx_fn ? rt->mx_fn(rt->mx_arg, domain, hops, max, fail)
			  : dns_mx(rt, domain, hops, max, fail);
	if (n < 0)
		return -1;
	if (n == 0) {
		/* RFC 5321 §5.1: no MX, the domain is its own mail host (A/AAAA). */
		snprintf(hops[0].host, sizeof(hops[0].host), "%s", domain);
		hops[0].port = 25;
		hops[0].pref = 0;
		return 1;
	}
	route_sort(hops, n);
	return n;
}
