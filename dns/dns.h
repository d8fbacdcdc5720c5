/*
 * dns.h - a DNS stub resolver you can point (dns_servers = host[:port],...),
 * built on c-ares: MX (RFC 5321 §5.1, null MX of RFC 7505), A/AAAA and TXT
 * lookups, each bounded by a timeout, each answering one of a small set of
 * outcomes (enum dns_status) that callers decide on.
 *
 * struct dns_resolver holds the configuration only (servers, timeout) and
 * is read-only after dns_resolver_new(): any number of threads may share
 * one.  Every lookup makes its own c-ares channel on the calling thread,
 * runs it to completion and destroys it (c-ares 1.18 channels must not be
 * used by two threads at once; a channel per call needs no lock and costs
 * one socket per lookup, which is small beside the SMTP session that
 * follows).  Lookups block the calling thread until an answer or the
 * timeout.
 *
 * Results are plain structs filled by the lookup; nothing is allocated
 * that the caller must free.  err (may be NULL) receives a one-line
 * explanation for anything but DNS_OK.
 */
#ifndef MF_DNS_DNS_H
#define MF_DNS_DNS_H

#include <stddef.h>

/* The outcome of one lookup: stable, callers switch on it. */
enum dns_status {
	DNS_OK,       /* at least one record of the type asked */
	DNS_NXDOMAIN, /* the name does not exist (RCODE 3, RFC 1035 §4.1.1) */
	DNS_NODATA,   /* the name exists, no record of this type (RFC 2308 §2.2) */
	DNS_SERVFAIL, /* the servers failed, refused or answered garbage */
	DNS_TIMEOUT,  /* no answer within the timeout */
};

/* "ok", "nxdomain", "nodata", "servfail", "timeout". */
const char *dns_status_name(enum dns_status s);

#define DNS_NAME_MAX 255       /* a presentation-form domain name (RFC 1035 §2.3.4) */
#define DNS_MX_MAX 16          /* MX records kept from one answer */
#define DNS_ADDR_MAX 16        /* addresses kept from one A + AAAA lookup */
#define DNS_TXT_MAX 8          /* TXT records kept from one answer */
#define DNS_TXT_LEN_MAX 2048   /* one TXT record, its strings joined (longer ones are skipped) */
#define DNS_TIMEOUT_MS 5000L   /* default per lookup, all servers and retries included */

struct dns_resolver;

/*
 * servers: "host[:port],..." where host is an IP address ("[v6]:port" for a
 * port with IPv6), port 53 by default; NULL or "" uses /etc/resolv.conf.
 * Returns NULL with err filled when servers does not parse.
 */
struct dns_resolver *dns_resolver_new(const char *servers, char *err, size_t errlen);
void dns_resolver_free(struct dns_resolver *r);
/* The whole time one lookup may take (default DNS_TIMEOUT_MS).  Call
 * before sharing the resolver with other threads. */
void dns_resolver_set_timeout(struct dns_resolver *r, long ms);

/* Checks a dns_servers value; 0, or -1 with the bad item in why. */
int dns_servers_check(const char *servers, char *why, size_t whylen);

struct dns_mx {
	char host[DNS_NAME_MAX + 1]; /* no trailing dot */
	int pref;
};

struct dns_mx_result {
	int n;        /* hosts in mx[], by preference, equal ones shuffled */
	int null_mx;  /* RFC 7505 §3: "MX 0 ." - the domain accepts no mail; n is 0 */
	int implicit; /* RFC 5321 §5.1: no MX but the name has A/AAAA: mx[0] is the domain */
	struct dns_mx mx[DNS_MX_MAX];
};

/*
 * The mail hosts of domain (RFC 5321 §5.1): its MX records in preference
 * order (equal preferences in random order); a null MX (RFC 7505) as
 * DNS_OK with null_mx set; no MX records but an address record: DNS_OK
 * with implicit set and the domain itself as the one host; neither:
 * DNS_NODATA.  MX records that point at "." beside real ones are ignored
 * (RFC 7505 §3).
 */
enum dns_status dns_lookup_mx(const struct dns_resolver *r, const char *domain,
			      struct dns_mx_result *out, char *err, size_t errlen);

struct dns_addr {
	int family;    /* AF_INET or AF_INET6 */
	char text[46]; /* INET6_ADDRSTRLEN: the address in presentation form */
};

struct dns_addr_result {
	int n;
	struct dns_addr addr[DNS_ADDR_MAX];
};

/* family AF_INET (A), AF_INET6 (AAAA) or AF_UNSPEC (both; A records
 * first).  With AF_UNSPEC the answer is DNS_OK when either has records,
 * else the A lookup's status unless that was NODATA. */
enum dns_status dns_lookup_addr(const struct dns_resolver *r, const char *name, int family,
				struct dns_addr_result *out, char *err, size_t errlen);

struct dns_txt_result {
	int n;
	/* Each record's character-strings joined without separators (RFC 7208
	 * §3.3, RFC 6376 §3.6.2.2), NUL-terminated. */
	char rec[DNS_TXT_MAX][DNS_TXT_LEN_MAX + 1];
};

/* TXT records of name.  out is large (~16 KiB): allocate it, do not put it
 * on a worker's stack. */
enum dns_status dns_lookup_txt(const struct dns_resolver *r, const char *name,
			       struct dns_txt_result *out, char *err, size_t errlen);

/* Sorts by preference, equal preferences in random order (RFC 5321 §5.1). */
void dns_mx_sort(struct dns_mx *mx, int n);

#endif
