/*
 * route.h - where mail for a domain goes: the `routes` overrides
 * (domain=host:port, '*' for every domain) first, then the `smarthost`,
 * else the domain's MX records (RFC 5321 §5.1) looked up with libresolv.
 *
 * router_resolve() returns the hosts to try, in order: MX records sorted by
 * preference with equal preferences shuffled; the domain itself when it has
 * no MX (implicit MX, §5.1); none and a permanent failure for a null MX
 * (RFC 7505) or a domain that does not exist.  A struct router is read-only
 * after router_new() and may be shared by threads.
 */
#ifndef MF_RELAY_ROUTE_H
#define MF_RELAY_ROUTE_H

#include <stddef.h>

#include "mail/outcome.h"

#define ROUTE_HOPS_MAX 16

enum route_via { ROUTE_VIA_ROUTES, ROUTE_VIA_SMARTHOST, ROUTE_VIA_MX };

struct route_hop {
	char host[256];
	int port;
	int pref;
};

struct router;

/* routes and smarthost as in the configuration (either may be NULL). */
struct router *router_new(const char *routes, const char *smarthost, char *err, size_t errlen);
void router_free(struct router *rt);

/*
 * A replacement for the DNS MX lookup (tests): fills hops and returns how
 * many, 0 for "no MX", or -1 with fail filled.
 */
typedef int (*route_mx_fn)(void *arg, const char *domain, struct route_hop *hops, int max,
			   struct smtp_outcome *fail);
void router_set_mx_lookup(struct router *rt, route_mx_fn fn, void *arg);

/* Sends DNS queries to ip:port instead of resolv.conf's servers (tests). */
void router_set_nameserver(struct router *rt, const char *ip, int port);

/* Returns the number of hops (> 0) with *via set, or -1 with fail filled
 * (scope SESSION, class LOCAL, kind DNS; permanent for a null MX or NXDOMAIN). */
int router_resolve(const struct router *rt, const char *domain, struct route_hop *hops, int max,
		   enum route_via *via, struct smtp_outcome *fail);

#define ROUTE_NULL_MX (-2)
/* Parses a DNS answer to an MX query: returns the number of hops (port 25),
 * ROUTE_NULL_MX for RFC 7505's "MX 0 .", or -1 when malformed. */
int route_mx_parse(const unsigned char *answer, int len, struct route_hop *hops, int max);
/* Sorts by preference; equal preferences in random order (RFC 5321 §5.1). */
void route_sort(struct route_hop *hops, int n);

#endif
