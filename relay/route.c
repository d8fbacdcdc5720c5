/*
 * route.c - routing and MX lookup (see route.h).
 *
 * DNS goes through dns/dns.h (c-ares, dns_servers or resolv.conf).  RFC
 * 5321 §5.1: MX records in preference order, equal ones in random order;
 * no MX but the name has an address: the name itself is the host; RFC
 * 7505 §3: a single "MX 0 ." means the domain accepts no mail.  Each MX
 * host's addresses are looked up through the same resolver, so that
 * dns_servers decides where mail goes end to end (the SMTP client then
 * connects to the address and still names the host for SNI and the
 * certificate check).
 */
#include "relay/route.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "dns/dns.h"
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
	struct dns_resolver *dns;
	route_mx_fn mx_fn; /* tests */
	void *mx_arg;
};
struct router *router_new(const char *routes, const char *smarthost, char *err, size_t errlen)
{
	struct router *rt = xcalloc(1, sizeof(*rt));
	rt->dns = dns_resolver_new(NULL, err, errlen);
	if (!rt->dns) {
		free(rt);
		return NULL;
	}
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
	dns_resolver_free(rt->dns);
	free(rt);
}

void router_set_mx_lookup(struct router *rt, route_mx_fn fn, void *arg)
{
	rt->mx_fn = fn;
	rt->mx_arg = arg;
}

void router_set_resolver(struct router *rt, struct dns_resolver *res)
{
	dns_resolver_free(rt->dns);
	rt->dns = res;
}

const struct dns_resolver *router_resolver(const struct router *rt)
{
	return rt->dns;
}

void router_set_nameserver(struct router *rt, const char *ip, int port)
{
	char spec[80], err[200];
	snprintf(spec, sizeof(spec), strchr(ip, ':') ? "[%s]:%d" : "%s:%d", ip, port);
	struct dns_resolver *res = dns_resolver_new(spec, err, sizeof(err));
	if (res)
		router_set_resolver(rt, res);
}

static void dns_fail(struct smtp_outcome *f, int permanent, const char *enhanced, const char *fmt,
		     const char *domain, const char *detail)
{
	memset(f, 0, sizeof(*f));
	f->scope = SCOPE_SESSION;
	f->cls = OUT_LOCAL;
	f->kind = KIND_DNS;
	f->permanent = permanent;
	snprintf(f->enhanced, sizeof(f->enhanced), "%s", enhanced);
	snprintf(f->text, sizeof(f->text), fmt, domain, detail);
}

/*
 * The MX route: hosts by preference, each host's addresses one hop each.
 * Returns hops, or -1 with fail filled.
 */
static int mx_hops(const struct router *rt, const char *domain, struct route_hop *hops, int max,
		   struct smtp_outcome *fail)
{
	struct dns_mx_result mx;
	char err[300] = "";
	enum dns_status st = dns_lookup_mx(rt->dns, domain, &mx, err, sizeof(err));
	switch (st) {
	case DNS_OK:
		break;
	case DNS_NXDOMAIN:
		/* The domain does not exist (RFC 3463 X.1.2). */
		dns_fail(fail, 1, "5.1.2", "domain %s does not exist (NXDOMAIN)%.0s", domain, err);
		return -1;
	case DNS_NODATA:
		/* RFC 5321 §5.1: neither MX nor A/AAAA, nowhere to deliver. */
		dns_fail(fail, 1, "5.1.2", "domain %s has no MX and no A/AAAA record (RFC 5321 5.1)%.0s",
			 domain, err);
		return -1;
	case DNS_SERVFAIL:
	case DNS_TIMEOUT:
		dns_fail(fail, 0, "4.4.3", "MX lookup for %s failed temporarily: %s", domain, err);
		return -1;
	}
	if (mx.null_mx) {
		/* RFC 7505 §4.1: 5.1.10 "Recipient address has null MX". */
		dns_fail(fail, 1, "5.1.10", "domain %s accepts no mail (null MX, RFC 7505)%.0s", domain, "");
		return -1;
	}
	int n = 0, temp = 0;
	char last[300] = "";
	for (int i = 0; i < mx.n && n < max; i++) {
		struct dns_addr_result ad;
		enum dns_status as = dns_lookup_addr(rt->dns, mx.mx[i].host, AF_UNSPEC, &ad, last, sizeof(last));
		if (as != DNS_OK) {
			temp |= as == DNS_SERVFAIL || as == DNS_TIMEOUT;
			continue;
		}
		for (int a = 0; a < ad.n && n < max; a++) {
			struct route_hop *h = &hops[n++];
			snprintf(h->host, sizeof(h->host), "%s", mx.mx[i].host);
			snprintf(h->addr, sizeof(h->addr), "%s", ad.addr[a].text);
			h->port = 25;
			h->pref = mx.mx[i].pref;
		}
	}
	if (n == 0) {
		/* Every MX host without an address: a broken zone that may be
		 * fixed, so a temporary failure (as Postfix's 4.4.3/4.4.4). */
		dns_fail(fail, 0, temp ? "4.4.3" : "4.4.4", "no MX host of %s has an address: %s", domain, last);
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
		dns_fail(fail, 0, "4.3.0", "no room for hops routing %s%.0s", domain, "");
		return -1;
	}
	const struct route_entry *e = find_route(rt, domain);
	if (e) {
		snprintf(hops[0].host, sizeof(hops[0].host), "%s", e->host);
		hops[0].addr[0] = '\0';
		hops[0].port = e->port;
		hops[0].pref = 0;
		*via = ROUTE_VIA_ROUTES;
		return 1;
	}
	if (rt->has_smarthost) {
		snprintf(hops[0].host, sizeof(hops[0].host), "%s", rt->smart_host);
		hops[0].addr[0] = '\0';
		hops[0].port = rt->smart_port;
		hops[0].pref = 0;
		*via = ROUTE_VIA_SMARTHOST;
		return 1;
	}
	*via = ROUTE_VIA_MX;
	if (strlen(domain) > MF_DOMAIN_MAX || domain[0] == '\0') {
		dns_fail(fail, 1, "5.1.2", "invalid domain \"%s\"%.0s", domain, "");
		return -1;
	}
	if (!rt->mx_fn)
		return mx_hops(rt, domain, hops, max, fail);
	int n = rt->mx_fn(rt->mx_arg, domain, hops, max, fail);
	if (n == 0) {
		snprintf(hops[0].host, sizeof(hops[0].host), "%s", domain);
		hops[0].addr[0] = '\0';
		hops[0].port = 25;
		hops[0].pref = 0;
		n = 1;
	}
	return n;
}
