/*
 * MX routing through the resolver (dns/dns.h) against a real authoritative
 * server (NSD, tests/harness/dns_server.h): preference order with each MX
 * host's addresses, no MX (the domain itself, RFC 5321 §5.1), null MX
 * (RFC 7505) and NXDOMAIN as permanent failures, also as relay_deliver()
 * outcomes, and an unreachable first MX: the mail goes to the second.
 * The SMTP peers are Postfix's smtp-sink on port 25 of 127.0.18.x (the
 * tests run as root); each test its own address, since tests run in
 * parallel.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "dns_server.h"
#include "harness.h"
#include "relay/relay.h"
#include "relay/route.h"
#include "smtp_sink.h"
#include "util/config.h"
#include "util/log.h"
#include "util/xmalloc.h"

static const struct th_dns_zone zone[] = {
	{ "route.test",
	  "two IN MX 20 mx-b.two\n"
	  "two IN MX 10 mx-a.two\n"
	  "two IN MX 30 mx-c.two\n"
	  "mx-a.two IN A 127.0.18.11\n"
	  "mx-b.two IN A 127.0.18.12\n"
	  "mx-b.two IN A 127.0.18.13\n"
	  "mx-c.two IN A 127.0.18.14\n"
	  "plain IN A 127.0.18.15\n"
	  "nomail IN MX 0 .\n"
	  "noaddr IN MX 10 mx.nowhere\n"
	  /* backup.route.test: the first MX has nobody listening. */
	  "backup IN MX 10 dead.backup\n"
	  "backup IN MX 20 live.backup\n"
	  "dead.backup IN A 127.0.18.21\n"
	  "live.backup IN A 127.0.18.22\n" },
};

static struct router *router_with_nsd(struct th_dns **d)
{
	*d = th_dns_start(zone, 1);
	cr_assert_not_null(*d);
	char err[128];
	struct router *rt = router_new(NULL, NULL, err, sizeof(err));
	cr_assert_not_null(rt);
	router_set_nameserver(rt, "127.0.0.1", th_dns_port(*d));
	return rt;
}

Test(route_dns, mx_records_in_preference_order)
{
	struct th_dns *d;
	struct router *rt = router_with_nsd(&d);
	struct route_hop h[ROUTE_HOPS_MAX];
	enum route_via via;
	struct smtp_outcome f;
	int n = router_resolve(rt, "two.route.test", h, ROUTE_HOPS_MAX, &via, &f);
	cr_assert_eq(n, 4, "%s", f.text);
	cr_assert_eq(via, ROUTE_VIA_MX);
	cr_assert_str_eq(h[0].host, "mx-a.two.route.test");
	cr_assert_str_eq(h[0].addr, th_ip("127.0.18.11"));
	cr_assert_str_eq(h[1].host, "mx-b.two.route.test");
	cr_assert_str_eq(h[2].host, "mx-b.two.route.test");
	cr_assert(strcmp(h[1].addr, h[2].addr) != 0);
	cr_assert_str_eq(h[3].host, "mx-c.two.route.test");
	cr_assert_eq(h[0].port, 25);
	router_free(rt);
	th_dns_stop(d);
}

Test(route_dns, no_mx_means_the_domain_itself)
{
	struct th_dns *d;
	struct router *rt = router_with_nsd(&d);
	struct route_hop h[4];
	enum route_via via;
	struct smtp_outcome f;
	cr_assert_eq(router_resolve(rt, "plain.route.test", h, 4, &via, &f), 1, "%s", f.text);
	cr_assert_str_eq(h[0].host, "plain.route.test");
	cr_assert_str_eq(h[0].addr, th_ip("127.0.18.15"));
	router_free(rt);
	th_dns_stop(d);
}

Test(route_dns, null_mx_and_nxdomain_are_permanent)
{
	struct th_dns *d;
	struct router *rt = router_with_nsd(&d);
	struct route_hop h[4];
	enum route_via via;
	struct smtp_outcome f;
	cr_assert_eq(router_resolve(rt, "nomail.route.test", h, 4, &via, &f), -1);
	cr_assert_eq(f.permanent, 1);
	cr_assert_eq(f.kind, KIND_DNS);
	cr_assert_str_eq(f.enhanced, "5.1.10");
	cr_assert_eq(router_resolve(rt, "missing.route.test", h, 4, &via, &f), -1);
	cr_assert_eq(f.permanent, 1);
	cr_assert_str_eq(f.enhanced, "5.1.2");
	/* An MX whose host has no address: temporary (the zone may be fixed). */
	cr_assert_eq(router_resolve(rt, "noaddr.route.test", h, 4, &via, &f), -1);
	cr_assert_eq(f.permanent, 0);
	cr_assert(strstr(f.text, "no MX host") != NULL, "%s", f.text);
	router_free(rt);
	th_dns_stop(d);
}

static struct relay *relay_for(struct th_dns *d)
{
	struct config c;
	memset(&c, 0, sizeof(c));
	c.helo_name = "client.test";
	c.tls_policy = TLS_POLICY_NONE;
	char servers[64], err[128];
	snprintf(servers, sizeof(servers), "%s", th_dns_servers(d));
	c.dns_servers = servers;
	log_setup(MF_LOG_WARN, 0);
	struct relay *r = relay_new(&c, err, sizeof(err));
	cr_assert_not_null(r, "%s", err);
	return r;
}

Test(route_dns, relay_reports_null_mx_for_every_recipient)
{
	struct th_dns *d = th_dns_start(zone, 1);
	cr_assert_not_null(d);
	struct relay *r = relay_for(d);
	struct delivery_rcpt rc[2] = { { .id = 1, .addr = "a@nomail.route.test" },
				       { .id = 2, .addr = "b@nomail.route.test" } };
	struct delivery_job job = { .mail_from = "", .domain = "nomail.route.test", .msg = "x\r\n",
				    .len = 3, .log_id = "dns", .rcpts = rc, .nrcpts = 2 };
	relay_deliver(r, &job);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(rc[i].out.cls, OUT_LOCAL);
		cr_assert_eq(rc[i].out.kind, KIND_DNS);
		cr_assert_eq(rc[i].out.permanent, 1);
		cr_assert_str_eq(rc[i].out.enhanced, "5.1.10");
		cr_assert(strstr(rc[i].out.text, "null MX") != NULL, "%s", rc[i].out.text);
	}
	relay_free(r);
	th_dns_stop(d);
}

Test(route_dns, unreachable_first_mx_delivers_to_the_second)
{
	struct th_dns *d = th_dns_start(zone, 1);
	cr_assert_not_null(d);
	struct th_sink *s = th_sink_start_at(NULL, "127.0.18.22", 25);
	cr_assert_not_null(s, "smtp-sink on 127.0.18.22:25");
	struct relay *r = relay_for(d);
	static const char msg[] = "From: a@x.test\r\nTo: b@backup.route.test\r\nSubject: mx\r\n\r\nhi\r\n";
	struct delivery_rcpt rc[1] = { { .id = 1, .addr = "b@backup.route.test" } };
	struct delivery_job job = { .mail_from = "a@x.test", .domain = "backup.route.test", .msg = msg,
				    .len = sizeof(msg) - 1, .log_id = "dns", .rcpts = rc, .nrcpts = 1,
				    .timeout_ms = 20000 };
	relay_deliver(r, &job);
	cr_assert_eq(rc[0].out.cls, OUT_2XX, "%s", rc[0].out.text);
	cr_assert_str_eq(rc[0].out.mx, "live.backup.route.test");
	cr_assert_eq(th_sink_wait(s, 1, 10000), 1);
	relay_free(r);
	th_sink_stop(s);
	th_dns_stop(d);
}
