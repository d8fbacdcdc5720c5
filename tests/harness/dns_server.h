/*
 * dns_server.h - a real authoritative DNS server (NSD, Debian's nsd) on a
 * free loopback port, serving zones the test writes, for testing the
 * resolver (dns/dns.h) and everything above it end to end.
 *
 * A zone is given as its origin ("mx.test") and the records in zone file
 * syntax with names relative to the origin; the harness adds $ORIGIN,
 * $TTL, the SOA (serial bumped on every change) and the NS record.
 * th_dns_set_zone() on a running server rewrites the file, signals NSD to
 * reload (SIGHUP) and waits, bounded, until the new serial is served.
 *
 * th_dns_start() returns NULL when NSD cannot be started (the reason is
 * printed); the test asserts on it.  Returned structs are the caller's
 * (th_dns_stop() frees).
 */
#ifndef MF_TEST_DNS_SERVER_H
#define MF_TEST_DNS_SERVER_H

#include <sys/types.h>

#define TH_DNS_ZONES_MAX 16

struct th_dns_zone {
	const char *origin;  /* e.g. "mx.test", no trailing dot */
	const char *records; /* zone file lines, relative names, may be "" */
};

struct th_dns;

/* Starts NSD on 127.0.0.1 with the zones (at most TH_DNS_ZONES_MAX). */
struct th_dns *th_dns_start(const struct th_dns_zone *zones, int n);
/* Replaces the records of a zone given at start and waits (bounded) until
 * NSD serves them; 0 or -1. */
int th_dns_set_zone(struct th_dns *d, const char *origin, const char *records);
int th_dns_port(const struct th_dns *d);
/* "127.0.0.1:PORT", the dns_servers value that points at it. */
const char *th_dns_servers(const struct th_dns *d);
void th_dns_stop(struct th_dns *d);

#endif
