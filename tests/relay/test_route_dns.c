/*
 * The MX lookup through the real resolver (libresolv res_nquery) against
 * a loopback DNS responder (tests/harness/dns_stub.h): preference order,
 * no MX (the domain itself, RFC 5321 §5.1), null MX (RFC 7505) and
 * NXDOMAIN as permanent failures, also as relay_deliver() outcomes.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "dns_stub.h"
#include "relay/relay.h"
#include "relay/relay.h"
#include "relay/route.h"
#include "util/config.h"
#include "util/log.h"
#include "util/xmalloc.h"

static const struct dns_stub_rr zone[] = {
	{ "two.test", 20, "mx-b.two.test" },
	{ "two.test", 10, "mx-a.two.test" },
	{ "two.test", 30, "mx-c.two.test" },
	{ "plain.test", 0, NULL },
	{ "nomail.test", 0, "" },
};

static struct router *router_with_stub(struct dns_stub **d)
{
	*d = dns_stub_start(zone, sizeof(zone) / sizeof(zone[0]));
	cr_assert_not_null(*d);
	char err[128];
	struct router *rt = router_new(NULL, NULL, err, sizeof(err));
	cr_assert_not_null(rt);
	router_set_nameserver(rt, "127.0.0.1", dns_stub_port(*d));
	return rt;
}

Test(route_dns, mx_records_in_preference_order)
{
	struct dns_stub *d;
	struct router *rt = router_with_stub(&d);
	struct route_hop h[ROUTE_HOPS_MAX];
	enum route_via via;
	struct smtp_outcome f;
	int n = router_resolve(rt, "two.test", h, ROUTE_HOPS_MAX, &via, &f);
	cr_assert_eq(n, 3, "%s", f.text);
	cr_assert_eq(via, ROUTE_VIA_MX);
	cr_assert_str_eq(h[0].host, "mx-a.two.test");
	cr_assert_str_eq(h[1].host, "mx-b.two.test");
	cr_assert_str_eq(h[2].host, "mx-c.two.test");
	cr_assert_eq(h[0].port, 25);
	cr_assert_geq(dns_stub_queries(d), 1, "the stub was really asked");
	router_free(rt);
	dns_stub_stop(d);
}

Test(route_dns, no_mx_means_the_domain_itself)
{
	struct dns_stub *d;
	struct router *rt = router_with_stub(&d);
	struct route_hop h[4];
	enum route_via via;
	struct smtp_outcome f;
	cr_assert_eq(router_resolve(rt, "plain.test", h, 4, &via, &f), 1, "%s", f.text);
	cr_assert_str_eq(h[0].host, "plain.test");
	router_free(rt);
	dns_stub_stop(d);
}

Test(route_dns, null_mx_and_nxdomain_are_permanent)
{
	struct dns_stub *d;
	struct router *rt = router_with_stub(&d);
	struct route_hop h[4];
	enum route_via via;
	struct smtp_outcome f;
	cr_assert_eq(router_resolve(rt, "nomail.test", h, 4, &via, &f), -1);
	cr_assert_eq(f.permanent, 1);
	cr_assert_eq(f.kind, KIND_DNS);
	cr_assert_str_eq(f.enhanced, "5.1.10");
	cr_assert_eq(router_resolve(rt, "missing.test", h, 4, &via, &f), -1);
	cr_assert_eq(f.permanent, 1);
	cr_assert_str_eq(f.enhanced, "5.1.2");
	router_free(rt);
	dns_stub_stop(d);
}

Test(route_dns, relay_reports_null_mx_for_every_recipient)
{
	struct dns_stub *d = dns_stub_start(zone, sizeof(zone) / sizeof(zone[0]));
	struct config c;
	memset(&c, 0, sizeof(c));
	c.helo_name = "client.test";
	c.tls_policy = TLS_POLICY_NONE;
	char err[128];
	log_setup(MF_LOG_WARN, 0);
	struct relay *r = relay_new(&c, err, sizeof(err));
	cr_assert_not_null(r, "%s", err);
	relay_set_nameserver(r, "127.0.0.1", dns_stub_port(d));
	struct delivery_rcpt rc[2] = { { .id = 1, .addr = "a@nomail.test" },
				       { .id = 2, .addr = "b@nomail.test" } };
	struct delivery_job job = { .mail_from = "", .domain = "nomail.test", .msg = "x\r\n",
				    .len = 3, .log_id = "dns", .rcpts = rc, .nrcpts = 2 };
	relay_deliver(r, &job);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(rc[i].out.cls, OUT_LOCAL);
		cr_assert_eq(rc[i].out.kind, KIND_DNS);
		cr_assert_eq(rc[i].out.permanent, 1);
		cr_assert_str_eq(rc[i].out.enhanced, "5.1.10");
	}
	relay_free(r);
	dns_stub_stop(d);
}
