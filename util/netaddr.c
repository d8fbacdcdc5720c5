/*
 * netaddr.c - address classification for the SSRF guard (see netaddr.h).
 *
 * One table, special[], holds every entry of the IANA IPv4 and IPv6
 * Special-Purpose Address Registries (RFC 6890 and the RFCs each entry
 * cites; registries as updated to 2025), plus IPv4 multicast (RFC 5771)
 * and the IPv6 ranges of RFC 4291 §2.4 that are not global unicast
 * (multicast, deprecated site-local, IPv4-compatible), and the cloud
 * metadata addresses.  netaddr_classify() takes the longest matching
 * prefix: the more specific entry wins (192.0.0.9/32 inside 192.0.0.0/24).
 *
 * Entries that carry an IPv4 address (IPv4-mapped, SIIT, IPv4-compatible,
 * NAT64 well-known prefix, 6to4) are judged by that IPv4 address.  The
 * registry's anycast and infrastructure entries marked "globally
 * reachable" (PCP, TURN, AS112, AMT, ORCHIDv2, DETs) are still refused: the
 * nearest instance of an anycast service is often inside the operator's
 * own network, and no webhook receiver lives there.  IPv6 outside
 * 2000::/3 that no entry names is refused too: IANA allocates global
 * unicast from 2000::/3 only (IANA IPv6 Address Space registry).
 */
#include "util/netaddr.h"

#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

const char *netaddr_class_name(enum netaddr_class c)
{
	switch (c) {
	case NETADDR_PUBLIC: return "public";
	case NETADDR_LOOPBACK: return "loopback";
	case NETADDR_PRIVATE: return "private";
	case NETADDR_LINK_LOCAL: return "link-local";
	case NETADDR_CGNAT: return "cgnat";
	case NETADDR_UNSPECIFIED: return "unspecified";
	case NETADDR_MULTICAST: return "multicast";
	case NETADDR_METADATA: return "metadata";
	case NETADDR_RESERVED: return "reserved";
	}
	return "unknown";
}

/* How an entry judges the addresses it matches. */
enum judge {
	J_CLASS,       /* the entry's class */
	J_V4_AT_12,    /* the IPv4 address in the last 32 bits */
	J_V4_AT_2,     /* the IPv4 address in bits 16..47 (6to4) */
	J_LOCAL_NAT64, /* RFC 8215 local-use: private, or worse if the /96 form says so */
};

struct special {
	int family;           /* AF_INET or AF_INET6 */
	const char *prefix;   /* numeric form */
	int len;              /* prefix length in bits */
	enum netaddr_class cls;
	enum judge judge;
	const char *ref;      /* registry name and source, for humans */
};

#define V4(p, l, c, r) { AF_INET, p, l, c, J_CLASS, r }
#define V6(p, l, c, r) { AF_INET6, p, l, c, J_CLASS, r }
#define V6J(p, l, j, r) { AF_INET6, p, l, NETADDR_RESERVED, j, r }
static const struct special special[] = {
	/* IANA IPv4 Special-Purpose Address Registry */
	V4("0.0.0.0", 8, NETADDR_UNSPECIFIED, "\"This network\", RFC 791 §3.2"),
	V4("0.0.0.0", 32, NETADDR_UNSPECIFIED, "\"This host on this network\", RFC 1122 §3.2.1.3"),
	V4("10.0.0.0", 8, NETADDR_PRIVATE, "Private-Use, RFC 1918"),
	V4("100.64.0.0", 10, NETADDR_CGNAT, "Shared Address Space, RFC 6598"),
	V4("127.0.0.0", 8, NETADDR_LOOPBACK, "Loopback, RFC 1122 §3.2.1.3"),
	V4("169.254.0.0", 16, NETADDR_LINK_LOCAL, "Link Local, RFC 3927"),
	V4("172.16.0.0", 12, NETADDR_PRIVATE, "Private-Use, RFC 1918"),
	V4("192.0.0.0", 24, NETADDR_RESERVED, "IETF Protocol Assignments, RFC 6890 §2.1"),
	V4("192.0.0.0", 29, NETADDR_RESERVED, "IPv4 Service Continuity Prefix, RFC 7335"),
	V4("192.0.0.8", 32, NETADDR_RESERVED, "IPv4 dummy address, RFC 7600"),
	V4("192.0.0.9", 32, NETADDR_RESERVED, "Port Control Protocol Anycast, RFC 7723"),
	V4("192.0.0.10", 32, NETADDR_RESERVED, "Traversal Using Relays around NAT Anycast, RFC 8155"),
	V4("192.0.0.170", 32, NETADDR_RESERVED, "NAT64/DNS64 Discovery, RFC 8880, RFC 7050 §2.2"),
	V4("192.0.0.171", 32, NETADDR_RESERVED, "NAT64/DNS64 Discovery, RFC 8880, RFC 7050 §2.2"),
	V4("192.0.2.0", 24, NETADDR_RESERVED, "Documentation (TEST-NET-1), RFC 5737"),
	V4("192.31.196.0", 24, NETADDR_RESERVED, "AS112-v4, RFC 7535"),
	V4("192.52.193.0", 24, NETADDR_RESERVED, "AMT, RFC 7450"),
	V4("192.88.99.0", 24, NETADDR_RESERVED, "Deprecated (6to4 Relay Anycast), RFC 7526"),
	V4("192.168.0.0", 16, NETADDR_PRIVATE, "Private-Use, RFC 1918"),
	V4("192.175.48.0", 24, NETADDR_RESERVED, "Direct Delegation AS112 Service, RFC 7534"),
	V4("198.18.0.0", 15, NETADDR_RESERVED, "Benchmarking, RFC 2544"),
	V4("198.51.100.0", 24, NETADDR_RESERVED, "Documentation (TEST-NET-2), RFC 5737"),
	V4("203.0.113.0", 24, NETADDR_RESERVED, "Documentation (TEST-NET-3), RFC 5737"),
	V4("240.0.0.0", 4, NETADDR_RESERVED, "Reserved, RFC 1112 §4"),
	V4("255.255.255.255", 32, NETADDR_RESERVED, "Limited Broadcast, RFC 8190, RFC 919 §7"),
	/* Not in the registry, never a webhook receiver */
	V4("224.0.0.0", 4, NETADDR_MULTICAST, "Multicast, RFC 5771"),
	V4("169.254.169.254", 32, NETADDR_METADATA, "cloud instance metadata (AWS, GCP, Azure)"),
	/* IANA IPv6 Special-Purpose Address Registry */
	V6("::1", 128, NETADDR_LOOPBACK, "Loopback Address, RFC 4291 §2.5.3"),
	V6("::", 128, NETADDR_UNSPECIFIED, "Unspecified Address, RFC 4291 §2.5.2"),
	V6J("::ffff:0:0", 96, J_V4_AT_12, "IPv4-mapped Address, RFC 4291 §2.5.5.2"),
	V6J("64:ff9b::", 96, J_V4_AT_12, "IPv4-IPv6 Translat., RFC 6052 §2.1"),
	V6J("64:ff9b:1::", 48, J_LOCAL_NAT64, "IPv4-IPv6 Translat. (local use), RFC 8215"),
	V6("100::", 64, NETADDR_RESERVED, "Discard-Only Address Block, RFC 6666"),
	V6("100:0:0:1::", 64, NETADDR_RESERVED, "Dummy IPv6 Prefix, RFC 9780"),
	V6("2001::", 23, NETADDR_RESERVED, "IETF Protocol Assignments, RFC 2928"),
	V6("2001::", 32, NETADDR_RESERVED, "TEREDO, RFC 4380, RFC 8190"),
	V6("2001:1::1", 128, NETADDR_RESERVED, "Port Control Protocol Anycast, RFC 7723"),
	V6("2001:1::2", 128, NETADDR_RESERVED, "Traversal Using Relays around NAT Anycast, RFC 8155"),
	V6("2001:1::3", 128, NETADDR_RESERVED, "DNS-SD Service Registration Protocol Anycast, RFC 9665"),
	V6("2001:2::", 48, NETADDR_RESERVED, "Benchmarking, RFC 5180, RFC Errata 1752"),
	V6("2001:3::", 32, NETADDR_RESERVED, "AMT, RFC 7450"),
	V6("2001:4:112::", 48, NETADDR_RESERVED, "AS112-v6, RFC 7535"),
	V6("2001:10::", 28, NETADDR_RESERVED, "Deprecated (previously ORCHID), RFC 4843"),
	V6("2001:20::", 28, NETADDR_RESERVED, "ORCHIDv2, RFC 7343"),
	V6("2001:30::", 28, NETADDR_RESERVED, "Drone Remote ID Protocol Entity Tags (DETs) Prefix, RFC 9374"),
	V6("2001:db8::", 32, NETADDR_RESERVED, "Documentation, RFC 3849"),
	V6J("2002::", 16, J_V4_AT_2, "6to4, RFC 3056"),
	V6("2620:4f:8000::", 48, NETADDR_RESERVED, "Direct Delegation AS112 Service, RFC 7534"),
	V6("3fff::", 20, NETADDR_RESERVED, "Documentation, RFC 9637"),
	V6("5f00::", 16, NETADDR_RESERVED, "Segment Routing (SRv6) SIDs, RFC 9602"),
	V6("fc00::", 7, NETADDR_PRIVATE, "Unique-Local, RFC 4193, RFC 8190"),
	V6("fe80::", 10, NETADDR_LINK_LOCAL, "Link-Local Unicast, RFC 4291 §2.5.6"),
	/* Not in the registry, never a webhook receiver */
	V6J("::", 96, J_V4_AT_12, "IPv4-compatible (deprecated), RFC 4291 §2.5.5.1"),
	V6J("::ffff:0:0:0", 96, J_V4_AT_12, "IPv4-translated (SIIT), RFC 2765 §2.1"),
	V6("fec0::", 10, NETADDR_PRIVATE, "Site-local (deprecated), RFC 3879"),
	V6("ff00::", 8, NETADDR_MULTICAST, "Multicast, RFC 4291 §2.7"),
	V6("fd00:ec2::254", 128, NETADDR_METADATA, "cloud instance metadata (AWS IPv6)"),
};
#undef V4
#undef V6
#undef V6J
#define NSPECIAL (sizeof(special) / sizeof(special[0]))

/* 1 when the first len bits of a and b agree. */
static int prefix_match(const uint8_t *a, const uint8_t *b, int len)
{
	int whole = len / 8, rest = len % 8;
	if (memcmp(a, b, (size_t)whole) != 0)
		return 0;
	if (rest == 0)
		return 1;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[whole] & mask) == (b[whole] & mask);
}

/* The most specific entry of family containing addr (4 or 16 bytes), or NULL. */
static const struct special *special_lookup(int family, const uint8_t *addr)
{
	const struct special *best = NULL;
	for (size_t i = 0; i < NSPECIAL; i++) {
		uint8_t p[16];
		if (special[i].family != family || (best && special[i].len <= best->len))
			continue;
		if (inet_pton(family, special[i].prefix, p) == 1 && prefix_match(addr, p, special[i].len))
			best = &special[i];
	}
	return best;
}

static enum netaddr_class classify_v4(const uint8_t *a)
{
	const struct special *e = special_lookup(AF_INET, a);
	return e ? e->cls : NETADDR_PUBLIC;
}

static enum netaddr_class classify_v6(const uint8_t *b)
{
	const struct special *e = special_lookup(AF_INET6, b);
	if (e == NULL)
		return (b[0] & 0xe0) == 0x20 ? NETADDR_PUBLIC : NETADDR_RESERVED;
	switch (e->judge) {
	case J_V4_AT_12:
		return classify_v4(b + 12);
	case J_V4_AT_2:
		return classify_v4(b + 2);
	case J_LOCAL_NAT64: {
		/* The IPv4 address may sit at any RFC 6052 §2.2 position; the
		 * /96 one decides only when it is worse than private. */
		enum netaddr_class c = classify_v4(b + 12);
		return netaddr_allowed(c, 1) ? NETADDR_PRIVATE : c;
	}
	case J_CLASS:
	default:
		return e->cls;
	}
}

enum netaddr_class netaddr_classify(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return classify_v4((const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr.s_addr);
	if (sa->sa_family == AF_INET6)
		return classify_v6(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
	return NETADDR_RESERVED;
}

int netaddr_allowed(enum netaddr_class c, int allow_private)
{
	switch (c) {
	case NETADDR_PUBLIC:
		return 1;
	case NETADDR_LOOPBACK:
	case NETADDR_PRIVATE:
	case NETADDR_LINK_LOCAL:
	case NETADDR_CGNAT:
		return allow_private != 0;
	default:
		return 0;
	}
}

int netaddr_parse_literal(const char *host, struct sockaddr_storage *ss)
{
	char tmp[128];
	size_t n = strlen(host);
	memset(ss, 0, sizeof(*ss));
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
		if (n - 2 >= sizeof(tmp))
			return 0;
		memcpy(tmp, host + 1, n - 2);
		tmp[n - 2] = '\0';
		host = tmp;
	}
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		return 1;
	}
	/* inet_aton accepts the historical forms (RFC 791 predates the
	 * dotted-quad convention): a.b.c.d, a.b.c, a.b, a, each part decimal,
	 * octal (leading 0) or hex (0x). */
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	if (inet_aton(host, &s4->sin_addr) != 0) {
		s4->sin_family = AF_INET;
		return 1;
	}
	return 0;
}

void netaddr_format(const struct sockaddr *sa, char *out, size_t outsz)
{
	const void *p = sa->sa_family == AF_INET ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
						 : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
	if (outsz == 0)
		return;
	if (inet_ntop(sa->sa_family, p, out, (socklen_t)outsz) == NULL)
		out[0] = '\0';
}

int netaddr_resolve_checked(const char *host, int allow_private, char *addr, size_t addrlen, char *err,
			    size_t errlen)
{
	struct sockaddr_storage ss;
	char one[64];
	if (netaddr_parse_literal(host, &ss)) {
		enum netaddr_class c = netaddr_classify((struct sockaddr *)&ss);
		netaddr_format((struct sockaddr *)&ss, one, sizeof(one));
		if (!netaddr_allowed(c, allow_private)) {
			snprintf(err, errlen, "address %s is %s and not allowed", one, netaddr_class_name(c));
			return -2;
		}
		snprintf(addr, addrlen, "%s", one);
		return 0;
	}
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc != 0 || res == NULL) {
		snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
		return -1;
	}
	/* Every address must pass: a name that also resolves to an internal
	 * address is refused, whichever address a client would pick. */
	int ok = 1, refused = 0;
	addr[0] = '\0';
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		enum netaddr_class c = netaddr_classify(ai->ai_addr);
		netaddr_format(ai->ai_addr, one, sizeof(one));
		if (!netaddr_allowed(c, allow_private)) {
			snprintf(err, errlen, "%s resolves to %s, which is %s and not allowed", host, one,
				 netaddr_class_name(c));
			ok = 0;
			refused = 1;
			break;
		}
		/* Append unless already listed (getaddrinfo repeats addresses). */
		size_t used = strlen(addr), n = strlen(one);
		int dup = 0;
		for (const char *p = addr; *p;) {
			size_t l = strcspn(p, ",");
			if (l == n && strncmp(p, one, n) == 0)
				dup = 1;
			p += l + (p[l] == ',');
		}
		if (dup)
			continue;
		if (used + n + 2 > addrlen) {
			snprintf(err, errlen, "%s has too many addresses", host);
			ok = 0;
			break;
		}
		snprintf(addr + used, addrlen - used, "%s%s", used ? "," : "", one);
	}
	freeaddrinfo(res);
	if (ok && addr[0] == '\0') {
		snprintf(err, errlen, "%s has no IP address", host);
		ok = 0;
	}
	return ok ? 0 : refused ? -2 : -1;
}
