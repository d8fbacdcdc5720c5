/*
 * netaddr.c - address classification for the SSRF guard (see netaddr.h).
 *
 * Ranges from the IANA special-purpose address registries (RFC 6890 and
 * the RFCs it lists): RFC 1122 §3.2.1.3 (0/8, 127/8), RFC 1918 (private),
 * RFC 6598 (shared CGNAT space), RFC 3927 (IPv4 link-local), RFC 5771
 * (multicast), RFC 1112 §4 (240/4), RFC 4291 §2.4/2.5 (IPv6 loopback,
 * unspecified, link-local, multicast, IPv4-mapped), RFC 4193 (ULA),
 * RFC 3879 (deprecated site-local), RFC 6052 (NAT64), RFC 3056 (6to4).
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

/* a in host byte order. */
static enum netaddr_class classify_v4(uint32_t a)
{
	uint8_t o1 = (uint8_t)(a >> 24), o2 = (uint8_t)(a >> 16), o3 = (uint8_t)(a >> 8);
	if (o1 == 0)
		return NETADDR_UNSPECIFIED;
	if (o1 == 127)
		return NETADDR_LOOPBACK;
	if (o1 == 10 || (o1 == 172 && (o2 & 0xf0) == 16) || (o1 == 192 && o2 == 168))
		return NETADDR_PRIVATE;
	if (o1 == 100 && (o2 & 0xc0) == 64)
		return NETADDR_CGNAT;
	if (a == 0xa9fea9feu) /* 169.254.169.254 */
		return NETADDR_METADATA;
	if (o1 == 169 && o2 == 254)
		return NETADDR_LINK_LOCAL;
	if ((o1 & 0xf0) == 224)
		return NETADDR_MULTICAST;
	if ((o1 & 0xf0) == 240) /* includes 255.255.255.255 */
		return NETADDR_RESERVED;
	if ((o1 == 192 && o2 == 0 && (o3 == 0 || o3 == 2)) || (o1 == 198 && (o2 & 0xfe) == 18) ||
	    (o1 == 198 && o2 == 51 && o3 == 100) || (o1 == 203 && o2 == 0 && o3 == 113))
		return NETADDR_RESERVED;
	return NETADDR_PUBLIC;
}

static uint32_t v4_at(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static enum netaddr_class classify_v6(const uint8_t *b)
{
	static const uint8_t zero[16];
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	static const uint8_t nat64[12] = { 0, 0x64, 0xff, 0x9b };
	if (memcmp(b, zero, 16) == 0)
		return NETADDR_UNSPECIFIED;
	if (memcmp(b, zero, 15) == 0 && b[15] == 1)
		return NETADDR_LOOPBACK;
	/* ::ffff:a.b.c.d, ::a.b.c.d (deprecated compatible form), 64:ff9b::a.b.c.d */
	if (memcmp(b, mapped, 12) == 0 || memcmp(b, zero, 12) == 0 || memcmp(b, nat64, 12) == 0)
		return classify_v4(v4_at(b + 12));
	if (b[0] == 0x20 && b[1] == 0x02) /* 6to4: 2002:a.b.c.d::/48 */
		return classify_v4(v4_at(b + 2));
	if (b[0] == 0xff)
		return NETADDR_MULTICAST;
	if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
		return NETADDR_LINK_LOCAL;
	if ((b[0] & 0xfe) == 0xfc || (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0))
		return NETADDR_PRIVATE;
	if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) /* documentation */
		return NETADDR_RESERVED;
	if (b[0] == 0x01 && b[1] == 0 && memcmp(b + 2, zero, 6) == 0) /* 100::/64 discard */
		return NETADDR_RESERVED;
	return NETADDR_PUBLIC;
}

enum netaddr_class netaddr_classify(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return classify_v4(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
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
