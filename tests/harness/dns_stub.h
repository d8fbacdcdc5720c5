/*
 * dns_stub.h - a tiny authoritative DNS responder on a loopback UDP port,
 * so that the real resolver path (libresolv res_nquery) can be tested:
 * MX answers, null MX, NXDOMAIN and "name exists, no MX".
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
int dns_stub_port(const struct dns_stub *d);
/* Queries answered so far. */
int dns_stub_queries(const struct dns_stub *d);
void dns_stub_stop(struct dns_stub *d);

#endif
