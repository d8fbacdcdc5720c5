/*
 * route.h - where mail for a domain goes: the `routes` overrides
 * (domain=host:port, '*' for every domain) first, then the `smarthost`,
 * else the domain's MX records (RFC 5321 §5.1) looked up through the
 * resolver (dns/dns.h: dns_servers, else /etc/resolv.conf).
 *
 * router_resolve() returns the hops to try, in order: MX records sorted by
 * preference with equal preferences shuffled, each MX host's addresses (A
 * then AAAA, looked up through the same resolver) one hop each; the domain
 * itself when it has no MX but an address (implicit MX, §5.1); none and a
 * permanent failure for a null MX (RFC 7505), a domain that does not exist
 * or one with neither MX nor address.  A struct router is read-only after
 * router_new() and the router_set_* calls, and may be shared by threads.
 */
#ifndef MF_RELAY_ROUTE_H
#define MF_RELAY_ROUTE_H

#include <stddef.h>

#include "mail/outcome.h"

struct dns_resolver;

#define ROUTE_HOPS_MAX 16

enum route_via { ROUTE_VIA_ROUTES, ROUTE_VIA_SMARTHOST, ROUTE_VIA_MX };

struct route_hop {
	char host[256]; /* the name: SNI, certificate match, shown as mx */
	char addr[46];  /* the address to connect to; "" = resolve host when connecting */
	int port;
	int pref;
};

struct router;

/* routes and smarthost as in the configuration (either may be NULL). */
struct router *router_new(const char *routes, const char *smarthost, char *err, size_t errlen);
void router_free(struct router *rt);

/*
 * Replaces the MX lookup (tests only: SMTP faults across several MX hosts
 * played by scripted servers on ephemeral loopback ports, which no zone
 * can name since MX implies port 25).  Fills hops and returns how many,
 * 0 for "no MX" (the domain itself), or -1 with fail filled.  MX routing
 * through DNS is tested against a real server (tests/relay/test_route_dns.c).
 */
typedef int (*route_mx_fn)(void *arg, const char *domain, struct route_hop *hops, int max,
			   struct smtp_outcome *fail);
void router_set_mx_lookup(struct router *rt, route_mx_fn fn, void *arg);

/* Replaces the resolver (default: /etc/resolv.conf's servers); the router
 * takes ownership of res. */
void router_set_resolver(struct router *rt, struct dns_resolver *res);
/* The router's resolver (borrowed), for other lookups of the relay (MTA-STS). */
const struct dns_resolver *router_resolver(const struct router *rt);
/* Sends DNS queries to ip:port only (tests; the same as dns_servers = ip:port). */
void router_set_nameserver(struct router *rt, const char *ip, int port);

/* Returns the number of hops (> 0) with *via set, or -1 with fail filled
 * (scope SESSION, class LOCAL, kind DNS; permanent for a null MX, NXDOMAIN
 * or a domain with neither MX nor address, temporary for SERVFAIL and
 * timeouts). */
int router_resolve(const struct router *rt, const char *domain, struct route_hop *hops, int max,
		   enum route_via *via, struct smtp_outcome *fail);

#endif
