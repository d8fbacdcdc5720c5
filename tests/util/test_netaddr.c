/*
 * Tests for util/netaddr.c: the SSRF classifier over IPv4, IPv6,
 * IPv4-mapped/compatible/NAT64/6to4 IPv6, and odd IPv4 spellings
 * (decimal, octal, hex, short forms) that inet_aton accepts.
 */
#include <criterion/criterion.h>
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
