/*
 * netaddr.h - classifying IP addresses for the webhook SSRF guard.
 *
 * netaddr_classify() sorts an address into public or one of the special
 * ranges: every entry of the IANA IPv4 and IPv6 Special-Purpose Address
 * Registries (RFC 6890), one table in netaddr.c.  IPv4-mapped, SIIT
 * (RFC 2765), IPv4-compatible, NAT64 (RFC 6052) and 6to4 (RFC 3056) IPv6
 * forms are judged by the IPv4 address they carry; the local-use NAT64
 * prefix 64:ff9b:1::/48 (RFC 8215) is private.  netaddr_parse_literal() accepts every IPv4 spelling
 * inet_aton(3) does (decimal "2130706433", octal "0177.0.0.1", hex, short
 * forms), so a URL cannot smuggle 127.0.0.1 past the guard in odd notation.
 * netaddr_resolve_checked() resolves a host name and refuses it when any of
 * its addresses is not allowed; the caller then pins the address returned
 * (no second lookup, no DNS rebinding).
 */
#ifndef MF_NETADDR_H
#define MF_NETADDR_H

#include <stddef.h>
#include <sys/socket.h>

enum netaddr_class {
	NETADDR_PUBLIC,
	NETADDR_LOOPBACK,
	NETADDR_PRIVATE,     /* RFC 1918, ULA fc00::/7, site-local fec0::/10, 64:ff9b:1::/48 */
	NETADDR_LINK_LOCAL,  /* 169.254/16, fe80::/10 */
	NETADDR_CGNAT,       /* 100.64/10, RFC 6598 */
	NETADDR_UNSPECIFIED, /* 0/8, :: */
	NETADDR_MULTICAST,   /* 224/4, ff00::/8 */
	NETADDR_METADATA,    /* 169.254.169.254: cloud instance metadata */
	NETADDR_RESERVED,    /* 240/4, broadcast, documentation, benchmarking, the
			      * registries' other entries, IPv6 outside 2000::/3 */
};

const char *netaddr_class_name(enum netaddr_class c);
enum netaddr_class netaddr_classify(const struct sockaddr *sa);
/*
 * 1 when an address of class c may be contacted.  allow_private admits
 * loopback, private, link-local and CGNAT; metadata, unspecified,
 * multicast and reserved addresses are never allowed.
 */
int netaddr_allowed(enum netaddr_class c, int allow_private);
/* 1 and *ss filled when host is an IP literal ("[v6]" too), else 0. */
int netaddr_parse_literal(const char *host, struct sockaddr_storage *ss);
/* Writes the numeric form of sa into out ("::1", "127.0.0.1"). */
void netaddr_format(const struct sockaddr *sa, char *out, size_t outsz);
/*
 * Resolves host (a name or a literal) and checks every address.  Returns 0
 * with the numeric forms, comma-separated and without duplicates, in addr
 * ("127.0.0.1,::1"); -1 with err set when the name does not resolve (or
 * addr is too small); -2 with err set when an address is not allowed.
 */
int netaddr_resolve_checked(const char *host, int allow_private, char *addr, size_t addrlen, char *err,
			    size_t errlen);

#endif
