/*
 * dns_stub.h - a tiny authoritative DNS responder on a loopback UDP port,
 * so that the real resolver path (libresolv res_nquery) can be tested:
 * MX answers, null MX, NXDOMAIN and "name exists, no MX".
 *
 * A names (dns_stub_set_a) answer A queries from a list that moves on with
 * every query: the first query gets the first address, the next the
 * second, and the last repeats - a name whose answer changes between two
 * lookups, as in DNS rebinding.  Their AAAA queries get no answer.
 *
 * Names not in the table get NXDOMAIN.  An entry with exchange NULL says
 * the name exists without MX records (NOERROR, no answer).  exchange "" is
 * the null MX target ".".  The table must outlive the stub.
 */
#ifndef MF_TEST_DNS_STUB_H
#define MF_TEST_DNS_STUB_H

struct dns_stub_rr {
	const char *name;     /* owner, lower case, no trailing dot */
	int pref;
	const char *exchange; /* MX target; "" = "."; NULL = no MX */
};

struct dns_stub;

struct dns_stub *dns_stub_start(const struct dns_stub_rr *rrs, int n);
/* The same on ip:port (port 0: any); NULL when it cannot bind there. */
struct dns_stub *dns_stub_start_at(const struct dns_stub_rr *rrs, int n, const char *ip, int port);
/* Answers A queries for name with addrs[0], then addrs[1], ... (the last
 * repeats).  Call before the first query; name and addrs must outlive the
 * stub. */
void dns_stub_set_a(struct dns_stub *d, const char *name, const char *const *addrs, int n);
/* A queries answered for the dns_stub_set_a() name. */
int dns_stub_a_queries(const struct dns_stub *d);
int dns_stub_port(const struct dns_stub *d);
/* Queries answered so far. */
int dns_stub_queries(const struct dns_stub *d);
void dns_stub_stop(struct dns_stub *d);

#endif
