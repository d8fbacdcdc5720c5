/*
 * dns/dns.c against a real authoritative server (NSD, tests/harness/
 * dns_server.h): MX with preferences, null MX (RFC 7505), the implicit MX
 * of RFC 5321 §5.1, NXDOMAIN, NODATA, TXT character-strings joined, A and
 * AAAA, a zone changed under a running server, REFUSED as servfail, and a
 * server that never answers as timeout.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dns/dns.h"
#include "dns_server.h"
#include "harness.h"
#include "util/config.h"
#include "util/xmalloc.h"

static const struct th_dns_zone zones[] = {
	{ "dnst.test",
	  "two IN MX 20 mx-b.two\n"
	  "two IN MX 10 mx-a.two\n"
	  "two IN MX 30 mx-c.two\n"
	  "mx-a.two IN A 127.0.18.1\n"
	  "plain IN A 127.0.18.2\n"
	  "plain IN AAAA ::1\n"
	  "nomail IN MX 0 .\n"
	  "empty IN TXT \"only text\"\n"
	  "txt IN TXT \"v=spf1 \" \"-all\"\n"
	  "txt IN TXT \"second record\"\n"
	  "gone IN TXT \"here\"\n" },
};

static struct th_dns *start(struct dns_resolver **r)
{
	struct th_dns *d = th_dns_start(zones, 1);
	cr_assert_not_null(d, "nsd did not start");
	char err[200];
	*r = dns_resolver_new(th_dns_servers(d), err, sizeof(err));
	cr_assert_not_null(*r, "%s", err);
	return d;
}

Test(dns, mx_in_preference_order_null_mx_and_implicit)
{
	struct dns_resolver *r;
	struct th_dns *d = start(&r);
	struct dns_mx_result mx;
	char err[256];
	cr_assert_eq(dns_lookup_mx(r, "two.dnst.test", &mx, err, sizeof(err)), DNS_OK, "%s", err);
	cr_assert_eq(mx.n, 3);
	cr_assert_str_eq(mx.mx[0].host, "mx-a.two.dnst.test");
	cr_assert_eq(mx.mx[0].pref, 10);
	cr_assert_str_eq(mx.mx[1].host, "mx-b.two.dnst.test");
	cr_assert_str_eq(mx.mx[2].host, "mx-c.two.dnst.test");
	cr_assert(!mx.null_mx && !mx.implicit);

	cr_assert_eq(dns_lookup_mx(r, "nomail.dnst.test", &mx, err, sizeof(err)), DNS_OK, "%s", err);
	cr_assert_eq(mx.null_mx, 1);
	cr_assert_eq(mx.n, 0);

	/* RFC 5321 §5.1: no MX, an A record: the domain is its own host. */
	cr_assert_eq(dns_lookup_mx(r, "plain.dnst.test", &mx, err, sizeof(err)), DNS_OK, "%s", err);
	cr_assert_eq(mx.implicit, 1);
	cr_assert_eq(mx.n, 1);
	cr_assert_str_eq(mx.mx[0].host, "plain.dnst.test");

	/* The name exists with neither MX nor address. */
	cr_assert_eq(dns_lookup_mx(r, "empty.dnst.test", &mx, err, sizeof(err)), DNS_NODATA);
	cr_assert(strstr(err, "neither MX nor A/AAAA") != NULL, "%s", err);
	cr_assert_eq(dns_lookup_mx(r, "missing.dnst.test", &mx, err, sizeof(err)), DNS_NXDOMAIN);
	cr_assert(strstr(err, "NXDOMAIN") != NULL, "%s", err);
	dns_resolver_free(r);
	th_dns_stop(d);
}

Test(dns, addresses_and_txt)
{
	struct dns_resolver *r;
	struct th_dns *d = start(&r);
	struct dns_addr_result a;
	char err[256];
	cr_assert_eq(dns_lookup_addr(r, "plain.dnst.test", AF_UNSPEC, &a, err, sizeof(err)), DNS_OK, "%s", err);
	cr_assert_eq(a.n, 2);
	cr_assert_str_eq(a.addr[0].text, th_ip("127.0.18.2"));
	cr_assert_eq(a.addr[0].family, AF_INET);
	cr_assert_str_eq(a.addr[1].text, "::1");
	cr_assert_eq(dns_lookup_addr(r, "mx-a.two.dnst.test", AF_INET6, &a, err, sizeof(err)), DNS_NODATA);
	cr_assert_eq(dns_lookup_addr(r, "nope.dnst.test", AF_INET, &a, err, sizeof(err)), DNS_NXDOMAIN);

	struct dns_txt_result *t = xmalloc(sizeof(*t));
	cr_assert_eq(dns_lookup_txt(r, "txt.dnst.test", t, err, sizeof(err)), DNS_OK, "%s", err);
	cr_assert_eq(t->n, 2);
	/* One record's strings joined with nothing between (RFC 7208 §3.3). */
	int spf = strcmp(t->rec[0], "v=spf1 -all") == 0 ? 0 : 1;
	cr_assert_str_eq(t->rec[spf], "v=spf1 -all");
	cr_assert_str_eq(t->rec[1 - spf], "second record");
	cr_assert_eq(dns_lookup_txt(r, "two.dnst.test", t, err, sizeof(err)), DNS_NODATA);
	cr_assert_eq(dns_lookup_txt(r, "nope.dnst.test", t, err, sizeof(err)), DNS_NXDOMAIN);
	free(t);
	dns_resolver_free(r);
	th_dns_stop(d);
}

Test(dns, a_record_removed_later)
{
	struct dns_resolver *r;
	struct th_dns *d = start(&r);
	struct dns_txt_result *t = xmalloc(sizeof(*t));
	char err[256];
	cr_assert_eq(dns_lookup_txt(r, "gone.dnst.test", t, err, sizeof(err)), DNS_OK, "%s", err);
	cr_assert_str_eq(t->rec[0], "here");
	cr_assert_eq(th_dns_set_zone(d, "dnst.test", "other IN TXT \"x\"\n"), 0);
	cr_assert_eq(dns_lookup_txt(r, "gone.dnst.test", t, err, sizeof(err)), DNS_NXDOMAIN, "%s", err);
	free(t);
	dns_resolver_free(r);
	th_dns_stop(d);
}

/* NSD refuses names outside its zones: a real REFUSED answer. */
Test(dns, refused_is_servfail)
{
	struct dns_resolver *r;
	struct th_dns *d = start(&r);
	struct dns_mx_result mx;
	char err[256];
	cr_assert_eq(dns_lookup_mx(r, "example.org", &mx, err, sizeof(err)), DNS_SERVFAIL);
	cr_assert_str_eq(dns_status_name(DNS_SERVFAIL), "servfail");
	dns_resolver_free(r);
	th_dns_stop(d);
}

/* A server that never answers cannot be had from NSD: a bound UDP socket
 * that nobody reads is the silent server. */
Test(dns, silent_server_times_out)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	getsockname(fd, (struct sockaddr *)&sin, &len);
	char spec[64], err[256];
	snprintf(spec, sizeof(spec), "127.0.0.1:%d", ntohs(sin.sin_port));
	struct dns_resolver *r = dns_resolver_new(spec, err, sizeof(err));
	cr_assert_not_null(r, "%s", err);
	dns_resolver_set_timeout(r, 300);
	struct dns_addr_result a;
	cr_assert_eq(dns_lookup_addr(r, "x.test", AF_INET, &a, err, sizeof(err)), DNS_TIMEOUT);
	cr_assert(strstr(err, "timed out") != NULL, "%s", err);
	dns_resolver_free(r);
	close(fd);
}

Test(dns, servers_parse)
{
	char why[200];
	cr_assert_eq(dns_servers_check("127.0.0.1", why, sizeof(why)), 0);
	cr_assert_eq(dns_servers_check("127.0.0.1:5353, [::1]:53,::1", why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(dns_servers_check("ns.example:53", why, sizeof(why)), -1);
	cr_assert(strstr(why, "ns.example") != NULL, "%s", why);
	cr_assert_eq(dns_servers_check("", why, sizeof(why)), -1);
	cr_assert_eq(dns_servers_check("1.2.3.4:0", why, sizeof(why)), -1);
	char err[200];
	cr_assert_null(dns_resolver_new("nonsense", err, sizeof(err)));
	cr_assert(strstr(err, "dns_servers") != NULL, "%s", err);
	struct dns_resolver *r = dns_resolver_new(NULL, err, sizeof(err));
	cr_assert_not_null(r, "resolv.conf: %s", err);
	dns_resolver_free(r);
}

Test(dns, mx_sort_shuffles_equal_preferences)
{
	int first_a = 0;
	for (int i = 0; i < 200; i++) {
		struct dns_mx m[3] = { { "a", 10 }, { "b", 10 }, { "c", 5 } };
		dns_mx_sort(m, 3);
		cr_assert_str_eq(m[0].host, "c");
		first_a += strcmp(m[1].host, "a") == 0;
	}
	cr_assert(first_a > 20 && first_a < 180, "a came second %d times of 200", first_a);
}
