/*
 * Tests for relay/route.c's configuration side: routes before smarthost
 * before MX, and the '*' wildcard.  MX routing itself is tested against a
 * real DNS server in test_route_dns.c, MX parsing and ordering in
 * tests/dns/test_dns.c.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "relay/route.h"

Test(route, routes_then_wildcard_then_smarthost)
{
	char err[128];
	struct router *rt = router_new("Example.com=mx.local:2525, *=catch.local:25", "smart.local:587",
				       err, sizeof(err));
	cr_assert_not_null(rt, "%s", err);
	struct route_hop h[4];
	enum route_via via;
	struct smtp_outcome f;
	cr_assert_eq(router_resolve(rt, "example.com", h, 4, &via, &f), 1);
	cr_assert_str_eq(h[0].host, "mx.local");
	cr_assert_eq(h[0].port, 2525);
	cr_assert_eq(via, ROUTE_VIA_ROUTES);
	cr_assert_eq(router_resolve(rt, "other.org", h, 4, &via, &f), 1);
	cr_assert_str_eq(h[0].host, "catch.local");
	router_free(rt);

	rt = router_new(NULL, "smart.local:587", err, sizeof(err));
	cr_assert_eq(router_resolve(rt, "other.org", h, 4, &via, &f), 1);
	cr_assert_str_eq(h[0].host, "smart.local");
	cr_assert_eq(h[0].port, 587);
	cr_assert_eq(via, ROUTE_VIA_SMARTHOST);
	router_free(rt);

	cr_assert_null(router_new("nonsense", NULL, err, sizeof(err)));
	cr_assert(strstr(err, "nonsense") != NULL, "%s", err);
}
