/*
 * Tests for util/netaddr.c: the SSRF classifier over IPv4, IPv6,
 * IPv4-mapped/compatible/NAT64/6to4 IPv6, and odd IPv4 spellings
 * (decimal, octal, hex, short forms) that inet_aton accepts.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <string.h>

#include "util/netaddr.h"

static enum netaddr_class cls(const char *host)
{
	struct sockaddr_storage ss;
	cr_assert_eq(netaddr_parse_literal(host, &ss), 1, "%s should parse as an address", host);
	return netaddr_classify((struct sockaddr *)&ss);
}

Test(netaddr, ipv4_ranges)
{
	cr_assert_eq(cls("8.8.8.8"), NETADDR_PUBLIC);
	cr_assert_eq(cls("93.184.216.34"), NETADDR_PUBLIC);
	cr_assert_eq(cls("127.0.0.1"), NETADDR_LOOPBACK);
	cr_assert_eq(cls("127.255.1.2"), NETADDR_LOOPBACK);
	cr_assert_eq(cls("10.1.2.3"), NETADDR_PRIVATE);
	cr_assert_eq(cls("172.16.0.1"), NETADDR_PRIVATE);
	cr_assert_eq(cls("172.31.255.255"), NETADDR_PRIVATE);
	cr_assert_eq(cls("172.32.0.1"), NETADDR_PUBLIC);
	cr_assert_eq(cls("192.168.1.1"), NETADDR_PRIVATE);
	cr_assert_eq(cls("100.64.0.1"), NETADDR_CGNAT);
	cr_assert_eq(cls("100.127.255.255"), NETADDR_CGNAT);
	cr_assert_eq(cls("100.128.0.1"), NETADDR_PUBLIC);
	cr_assert_eq(cls("169.254.169.254"), NETADDR_METADATA);
	cr_assert_eq(cls("169.254.1.1"), NETADDR_LINK_LOCAL);
	cr_assert_eq(cls("0.0.0.0"), NETADDR_UNSPECIFIED);
	cr_assert_eq(cls("224.0.0.1"), NETADDR_MULTICAST);
	cr_assert_eq(cls("255.255.255.255"), NETADDR_RESERVED);
	cr_assert_eq(cls("192.0.2.1"), NETADDR_RESERVED);
}

Test(netaddr, odd_ipv4_spellings)
{
	cr_assert_eq(cls("2130706433"), NETADDR_LOOPBACK);   /* 127.0.0.1 as one number */
	cr_assert_eq(cls("0177.0.0.1"), NETADDR_LOOPBACK);   /* octal first part */
	cr_assert_eq(cls("0x7f.1"), NETADDR_LOOPBACK);       /* hex, short form */
	cr_assert_eq(cls("127.1"), NETADDR_LOOPBACK);
	cr_assert_eq(cls("0xa9fea9fe"), NETADDR_METADATA);   /* 169.254.169.254 */
	cr_assert_eq(cls("3232235777"), NETADDR_PRIVATE);    /* 192.168.1.1 */
	cr_assert_eq(cls("012.0.0.1"), NETADDR_PRIVATE);     /* octal 012 = 10 */
	struct sockaddr_storage ss;
	cr_assert_eq(netaddr_parse_literal("example.com", &ss), 0);
	cr_assert_eq(netaddr_parse_literal("1.2.3.4.example.com", &ss), 0);
}

Test(netaddr, ipv6_ranges)
{
	cr_assert_eq(cls("2606:4700:4700::1111"), NETADDR_PUBLIC);
	cr_assert_eq(cls("::1"), NETADDR_LOOPBACK);
	cr_assert_eq(cls("[::1]"), NETADDR_LOOPBACK);
	cr_assert_eq(cls("::"), NETADDR_UNSPECIFIED);
	cr_assert_eq(cls("fe80::1"), NETADDR_LINK_LOCAL);
	cr_assert_eq(cls("fc00::1"), NETADDR_PRIVATE);
	cr_assert_eq(cls("fd12:3456::1"), NETADDR_PRIVATE);
	cr_assert_eq(cls("fec0::1"), NETADDR_PRIVATE);
	cr_assert_eq(cls("ff02::1"), NETADDR_MULTICAST);
	cr_assert_eq(cls("2001:db8::1"), NETADDR_RESERVED);
}

Test(netaddr, ipv4_inside_ipv6)
{
	cr_assert_eq(cls("::ffff:127.0.0.1"), NETADDR_LOOPBACK);
	cr_assert_eq(cls("::ffff:7f00:1"), NETADDR_LOOPBACK);
	cr_assert_eq(cls("[::ffff:169.254.169.254]"), NETADDR_METADATA);
	cr_assert_eq(cls("::ffff:10.0.0.1"), NETADDR_PRIVATE);
	cr_assert_eq(cls("::ffff:8.8.8.8"), NETADDR_PUBLIC);
	cr_assert_eq(cls("::127.0.0.1"), NETADDR_LOOPBACK);      /* IPv4-compatible */
	cr_assert_eq(cls("64:ff9b::a9fe:a9fe"), NETADDR_METADATA); /* NAT64 */
	cr_assert_eq(cls("2002:7f00:1::"), NETADDR_LOOPBACK);     /* 6to4 */
	cr_assert_eq(cls("2002:808:808::"), NETADDR_PUBLIC);
}

/*
 * One case per entry of util/netaddr.c's table (the IANA IPv4 and IPv6
 * Special-Purpose Address Registries and the few ranges added to them):
 * the first and the last address of the range with their expected class,
 * and the neighbours just outside it, which must be public where they are
 * ("" where the neighbour is itself special or does not exist).
 */
struct range_case {
	/* Arrays, not pointers: Criterion runs each case in a new process,
	 * where the addresses of string literals differ (PIE). */
	char range[24];
	char first[48];
	enum netaddr_class first_cls;
	char last[48];
	enum netaddr_class last_cls;
	char below[48]; /* public, or "" */
	char above[48]; /* public, or "" */
};

#define PUB NETADDR_PUBLIC
#define LO NETADDR_LOOPBACK
#define PRIV NETADDR_PRIVATE
#define LL NETADDR_LINK_LOCAL
#define CGN NETADDR_CGNAT
#define UNSP NETADDR_UNSPECIFIED
#define MC NETADDR_MULTICAST
#define META NETADDR_METADATA
#define RES NETADDR_RESERVED
static struct range_case range_cases[] = {
	/* IANA IPv4 Special-Purpose Address Registry */
	{ "0.0.0.0/8", "0.0.0.0", UNSP, "0.255.255.255", UNSP, "", "1.0.0.0" },
	{ "0.0.0.0/32", "0.0.0.0", UNSP, "0.0.0.0", UNSP, "", "" },
	{ "10.0.0.0/8", "10.0.0.0", PRIV, "10.255.255.255", PRIV, "9.255.255.255", "11.0.0.0" },
	{ "100.64.0.0/10", "100.64.0.0", CGN, "100.127.255.255", CGN, "100.63.255.255", "100.128.0.0" },
	{ "127.0.0.0/8", "127.0.0.0", LO, "127.255.255.255", LO, "126.255.255.255", "128.0.0.0" },
	{ "169.254.0.0/16", "169.254.0.0", LL, "169.254.255.255", LL, "169.253.255.255", "169.255.0.0" },
	{ "172.16.0.0/12", "172.16.0.0", PRIV, "172.31.255.255", PRIV, "172.15.255.255", "172.32.0.0" },
	{ "192.0.0.0/24", "192.0.0.0", RES, "192.0.0.255", RES, "191.255.255.255", "192.0.1.0" },
	{ "192.0.0.0/29", "192.0.0.0", RES, "192.0.0.7", RES, "", "" },
	{ "192.0.0.8/32", "192.0.0.8", RES, "192.0.0.8", RES, "", "" },
	{ "192.0.0.9/32", "192.0.0.9", RES, "192.0.0.9", RES, "", "" },
	{ "192.0.0.10/32", "192.0.0.10", RES, "192.0.0.10", RES, "", "" },
	{ "192.0.0.170/32", "192.0.0.170", RES, "192.0.0.170", RES, "", "" },
	{ "192.0.0.171/32", "192.0.0.171", RES, "192.0.0.171", RES, "", "" },
	{ "192.0.2.0/24", "192.0.2.0", RES, "192.0.2.255", RES, "192.0.1.255", "192.0.3.0" },
	{ "192.31.196.0/24", "192.31.196.0", RES, "192.31.196.255", RES, "192.31.195.255", "192.31.197.0" },
	{ "192.52.193.0/24", "192.52.193.0", RES, "192.52.193.255", RES, "192.52.192.255", "192.52.194.0" },
	{ "192.88.99.0/24", "192.88.99.0", RES, "192.88.99.255", RES, "192.88.98.255", "192.88.100.0" },
	{ "192.168.0.0/16", "192.168.0.0", PRIV, "192.168.255.255", PRIV, "192.167.255.255", "192.169.0.0" },
	{ "192.175.48.0/24", "192.175.48.0", RES, "192.175.48.255", RES, "192.175.47.255", "192.175.49.0" },
	{ "198.18.0.0/15", "198.18.0.0", RES, "198.19.255.255", RES, "198.17.255.255", "198.20.0.0" },
	{ "198.51.100.0/24", "198.51.100.0", RES, "198.51.100.255", RES, "198.51.99.255", "198.51.101.0" },
	{ "203.0.113.0/24", "203.0.113.0", RES, "203.0.113.255", RES, "203.0.112.255", "203.0.114.0" },
	{ "240.0.0.0/4", "240.0.0.0", RES, "255.255.255.255", RES, "", "" },
	{ "255.255.255.255/32", "255.255.255.255", RES, "255.255.255.255", RES, "", "" },
	/* added: multicast and the metadata address */
	{ "224.0.0.0/4", "224.0.0.0", MC, "239.255.255.255", MC, "223.255.255.255", "" },
	{ "169.254.169.254/32", "169.254.169.254", META, "169.254.169.254", META, "", "" },
	/* IANA IPv6 Special-Purpose Address Registry */
	{ "::1/128", "::1", LO, "::1", LO, "", "" },
	{ "::/128", "::", UNSP, "::", UNSP, "", "" },
	{ "::ffff:0:0/96", "::ffff:0.0.0.0", UNSP, "::ffff:255.255.255.255", RES, "", "" },
	{ "64:ff9b::/96", "64:ff9b::", UNSP, "64:ff9b::ffff:ffff", RES, "", "" },
	{ "64:ff9b:1::/48", "64:ff9b:1::", UNSP, "64:ff9b:1:ffff:ffff:ffff:ffff:ffff", RES, "", "" },
	{ "100::/64", "100::", RES, "100::ffff:ffff:ffff:ffff", RES, "", "" },
	{ "100:0:0:1::/64", "100:0:0:1::", RES, "100:0:0:1:ffff:ffff:ffff:ffff", RES, "", "" },
	{ "2001::/23", "2001::", RES, "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", RES,
	  "2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "2001:200::" },
	{ "2001::/32", "2001::", RES, "2001:0:ffff:ffff:ffff:ffff:ffff:ffff", RES, "", "" },
	{ "2001:1::1/128", "2001:1::1", RES, "2001:1::1", RES, "", "" },
	{ "2001:1::2/128", "2001:1::2", RES, "2001:1::2", RES, "", "" },
	{ "2001:1::3/128", "2001:1::3", RES, "2001:1::3", RES, "", "" },
	{ "2001:2::/48", "2001:2::", RES, "2001:2:0:ffff:ffff:ffff:ffff:ffff", RES, "", "" },
	{ "2001:3::/32", "2001:3::", RES, "2001:3:ffff:ffff:ffff:ffff:ffff:ffff", RES, "", "" },
	{ "2001:4:112::/48", "2001:4:112::", RES, "2001:4:112:ffff:ffff:ffff:ffff:ffff", RES, "", "" },
	{ "2001:10::/28", "2001:10::", RES, "2001:1f:ffff:ffff:ffff:ffff:ffff:ffff", RES, "", "" },
	{ "2001:20::/28", "2001:20::", RES, "2001:2f:ffff:ffff:ffff:ffff:ffff:ffff", RES, "", "" },
	{ "2001:30::/28", "2001:30::", RES, "2001:3f:ffff:ffff:ffff:ffff:ffff:ffff", RES, "", "" },
	{ "2001:db8::/32", "2001:db8::", RES, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", RES,
	  "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db9::" },
	{ "2002::/16", "2002::", UNSP, "2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", RES,
	  "2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "2003::" },
	{ "2620:4f:8000::/48", "2620:4f:8000::", RES, "2620:4f:8000:ffff:ffff:ffff:ffff:ffff", RES,
	  "2620:4f:7fff:ffff:ffff:ffff:ffff:ffff", "2620:4f:8001::" },
	{ "3fff::/20", "3fff::", RES, "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", RES,
	  "3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "3fff:1000::" },
	{ "5f00::/16", "5f00::", RES, "5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff", RES, "", "" },
	{ "fc00::/7", "fc00::", PRIV, "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", PRIV, "", "" },
	{ "fe80::/10", "fe80::", LL, "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", LL, "", "" },
	/* added: IPv4-compatible, SIIT, site-local, multicast, metadata */
	{ "::/96", "::", UNSP, "::255.255.255.255", RES, "", "" },
	{ "::ffff:0:0:0/96", "::ffff:0:0.0.0.0", UNSP, "::ffff:0:255.255.255.255", RES, "", "" },
	{ "fec0::/10", "fec0::", PRIV, "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", PRIV, "", "" },
	{ "ff00::/8", "ff00::", MC, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", MC, "", "" },
	{ "fd00:ec2::254/128", "fd00:ec2::254", META, "fd00:ec2::254", META, "", "" },
	/* outside 2000::/3 and every entry */
	{ "4000::/3", "4000::", RES, "5eff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", RES, "3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "" },
};

ParameterizedTestParameters(netaddr, special_range)
{
	return cr_make_param_array(struct range_case, range_cases, sizeof(range_cases) / sizeof(range_cases[0]));
}

ParameterizedTest(struct range_case *rc, netaddr, special_range)
{
	cr_expect_eq(cls(rc->first), rc->first_cls, "%s: first %s is %s", rc->range, rc->first,
		     netaddr_class_name(cls(rc->first)));
	cr_expect_eq(cls(rc->last), rc->last_cls, "%s: last %s is %s", rc->range, rc->last,
		     netaddr_class_name(cls(rc->last)));
	cr_expect(!netaddr_allowed(cls(rc->first), 0) && !netaddr_allowed(cls(rc->last), 0),
		  "%s: refused with webhook_allow_private = no", rc->range);
	if (rc->below[0])
		cr_expect_eq(cls(rc->below), NETADDR_PUBLIC, "%s: %s just below is %s", rc->range, rc->below,
			     netaddr_class_name(cls(rc->below)));
	if (rc->above[0])
		cr_expect_eq(cls(rc->above), NETADDR_PUBLIC, "%s: %s just above is %s", rc->range, rc->above,
			     netaddr_class_name(cls(rc->above)));
}

/* The forms that carry an IPv4 address are judged by it, both ways. */
Test(netaddr, embedded_ipv4_forms)
{
	cr_assert_eq(cls("::ffff:0:7f00:1"), NETADDR_LOOPBACK);            /* SIIT 127.0.0.1 */
	cr_assert_eq(cls("::ffff:0:a9fe:a9fe"), NETADDR_METADATA);         /* SIIT 169.254.169.254 */
	cr_assert_eq(cls("::ffff:0:808:808"), NETADDR_PUBLIC);             /* SIIT 8.8.8.8 */
	cr_assert_eq(cls("64:ff9b::808:808"), NETADDR_PUBLIC);             /* NAT64 well-known prefix */
	cr_assert_eq(cls("64:ff9b:1::a9fe:a9fe"), NETADDR_METADATA);       /* local-use NAT64 */
	cr_assert_eq(cls("64:ff9b:1::808:808"), NETADDR_PRIVATE);
	cr_assert_eq(cls("64:ff9b:1:a9fe:a9fe:0:808:808"), NETADDR_PRIVATE); /* /48 embedding */
	cr_assert_eq(cls("::ffff:0.0.0.1"), NETADDR_UNSPECIFIED);
}

Test(netaddr, allowed_policy)
{
	cr_assert(netaddr_allowed(NETADDR_PUBLIC, 0));
	cr_assert(!netaddr_allowed(NETADDR_LOOPBACK, 0));
	cr_assert(!netaddr_allowed(NETADDR_PRIVATE, 0));
	cr_assert(!netaddr_allowed(NETADDR_CGNAT, 0));
	cr_assert(!netaddr_allowed(NETADDR_LINK_LOCAL, 0));
	cr_assert(netaddr_allowed(NETADDR_LOOPBACK, 1));
	cr_assert(netaddr_allowed(NETADDR_PRIVATE, 1));
	/* Never, whatever the setting. */
	cr_assert(!netaddr_allowed(NETADDR_METADATA, 1));
	cr_assert(!netaddr_allowed(NETADDR_UNSPECIFIED, 1));
	cr_assert(!netaddr_allowed(NETADDR_MULTICAST, 1));
}

Test(netaddr, resolve_checked)
{
	char addr[64], err[256];
	cr_assert_eq(netaddr_resolve_checked("127.0.0.1", 0, addr, sizeof(addr), err, sizeof(err)), -2);
	cr_assert(strstr(err, "loopback") != NULL, "%s", err);
	cr_assert_eq(netaddr_resolve_checked("2130706433", 0, addr, sizeof(addr), err, sizeof(err)), -2);
	cr_assert_eq(netaddr_resolve_checked("0177.0.0.1", 0, addr, sizeof(addr), err, sizeof(err)), -2);
	cr_assert_eq(netaddr_resolve_checked("[::ffff:127.0.0.1]", 0, addr, sizeof(addr), err, sizeof(err)), -2);
	cr_assert_eq(netaddr_resolve_checked("localhost", 0, addr, sizeof(addr), err, sizeof(err)), -2);
	cr_assert(strstr(err, "not allowed") != NULL, "%s", err);
	cr_assert_eq(netaddr_resolve_checked("localhost", 1, addr, sizeof(addr), err, sizeof(err)), 0, "%s", err);
	cr_assert(strstr(addr, "127.0.0.1") != NULL || strstr(addr, "::1") != NULL, "%s", addr);
	cr_assert(strstr(addr, "127.0.0.1,127.0.0.1") == NULL, "no duplicates: %s", addr);
	cr_assert_eq(netaddr_resolve_checked("2130706433", 1, addr, sizeof(addr), err, sizeof(err)), 0);
	cr_assert_str_eq(addr, "127.0.0.1");
	cr_assert_eq(netaddr_resolve_checked("169.254.169.254", 1, addr, sizeof(addr), err, sizeof(err)), -2);
	cr_assert_eq(netaddr_resolve_checked("no-such-host.invalid", 0, addr, sizeof(addr), err, sizeof(err)), -1,
		     "not resolving is not the same as refused");
	cr_assert_eq(netaddr_resolve_checked("8.8.8.8", 0, addr, sizeof(addr), err, sizeof(err)), 0);
	cr_assert_str_eq(addr, "8.8.8.8");
}
