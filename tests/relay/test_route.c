/*
 * Tests for relay/route.c: routes before smarthost before MX, the '*'
 * wildcard, MX answers parsed from real DNS wire format (built here),
 * null MX (RFC 7505), preference order with equal preferences shuffled.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "relay/route.h"

/* Appends a DNS name in wire format. */
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

/* A DNS response to "example.com MX" with the given records. */
static int mx_answer(unsigned char *buf, const int *prefs, const char *const *hosts, int n)
{
	unsigned char *p = buf;
	memset(p, 0, 12);
	p[2] = 0x81, p[3] = 0x80;           /* response, RD, RA, NOERROR */
	p[5] = 1;                            /* QDCOUNT */
	p[7] = (unsigned char)n;             /* ANCOUNT */
	size_t o = 12;
	o += put_name(p + o, "example.com");
	p[o++] = 0, p[o++] = 15, p[o++] = 0, p[o++] = 1; /* MX IN */
	for (int i = 0; i < n; i++) {
		p[o++] = 0xc0, p[o++] = 12;                  /* name: pointer to question */
		p[o++] = 0, p[o++] = 15, p[o++] = 0, p[o++] = 1;
		p[o++] = 0, p[o++] = 0, p[o++] = 1, p[o++] = 44; /* TTL 300 */
		unsigned char *rdlen = p + o;
		o += 2;
		size_t start = o;
		p[o++] = (unsigned char)(prefs[i] >> 8), p[o++] = (unsigned char)prefs[i];
		o += hosts[i][0] ? put_name(p + o, hosts[i]) : (p[o] = 0, 1);
		rdlen[0] = (unsigned char)((o - start) >> 8);
		rdlen[1] = (unsigned char)(o - start);
	}
	return (int)o;
}

Test(route, parses_mx_answer)
{
	unsigned char buf[1024];
	int prefs[] = { 20, 10 };
	const char *hosts[] = { "mx2.example.com", "mx1.example.com" };
	int len = mx_answer(buf, prefs, hosts, 2);
	struct route_hop hops[4];
	cr_assert_eq(route_mx_parse(buf, len, hops, 4), 2);
	cr_assert_str_eq(hops[0].host, "mx2.example.com");
	cr_assert_eq(hops[0].pref, 20);
	cr_assert_eq(hops[0].port, 25);
	route_sort(hops, 2);
	cr_assert_str_eq(hops[0].host, "mx1.example.com");
	cr_assert_str_eq(hops[1].host, "mx2.example.com");
}

Test(route, null_mx_is_recognised)
{
	unsigned char buf[512];
	int prefs[] = { 0 };
	const char *hosts[] = { "" };
	int len = mx_answer(buf, prefs, hosts, 1);
	struct route_hop hops[4];
	cr_assert_eq(route_mx_parse(buf, len, hops, 4), ROUTE_NULL_MX);
}

Test(route, truncated_answer_is_malformed)
{
	unsigned char buf[1024];
	int prefs[] = { 10 };
	const char *hosts[] = { "mx.example.com" };
	int len = mx_answer(buf, prefs, hosts, 1);
	struct route_hop hops[4];
	cr_assert_eq(route_mx_parse(buf, len - 5, hops, 4), -1);
}

Test(route, equal_preferences_are_shuffled)
{
	int first_a = 0;
	for (int k = 0; k < 200; k++) {
		struct route_hop hops[3] = {
			{ "b", 25, 10 }, { "a", 25, 5 }, { "c", 25, 10 },
		};
		route_sort(hops, 3);
		cr_assert_str_eq(hops[0].host, "a");
		cr_assert_eq(hops[1].pref, 10);
		first_a += strcmp(hops[1].host, "b") == 0;
	}
	/* Both orders of the two preference-10 hosts occur. */
	cr_assert(first_a > 20 && first_a < 180, "b came second-first %d times of 200", first_a);
}

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

static int no_mx(void *arg, const char *domain, struct route_hop *hops, int max,
		 struct smtp_outcome *fail)
{
	(void)arg, (void)domain, (void)hops, (void)max, (void)fail;
	return 0;
}

Test(route, no_mx_falls_back_to_the_domain)
{
	char err[128];
	struct router *rt = router_new(NULL, NULL, err, sizeof(err));
	router_set_mx_lookup(rt, no_mx, NULL);
	struct route_hop h[4];
	enum route_via via;
	struct smtp_outcome f;
	cr_assert_eq(router_resolve(rt, "plain.example", h, 4, &via, &f), 1);
	cr_assert_str_eq(h[0].host, "plain.example");
	cr_assert_eq(h[0].port, 25);
	cr_assert_eq(via, ROUTE_VIA_MX);
	router_free(rt);
}
