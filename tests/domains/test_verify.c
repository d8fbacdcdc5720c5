/*
 * Tests for domains/verify.c against a real PostgreSQL and a DNS server
 * that never answers (a bound UDP socket the test reads): the lookups of
 * one verification run at once.  Looked up one after the other, the first
 * name would be asked again (c-ares retries after a third of the timeout)
 * before the second was asked at all; at once, every record's name arrives
 * before any is repeated, and the verification ends after one timeout.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "db/db.h"
#include "dns/dns.h"
#include "domains/verify.h"
#include "harness.h"
#include "th_assert.h"
#include "util/config.h"

struct run {
	struct domain_verify_params p;
	struct domain_verdict v;
	enum domain_verify_status st;
	char err[512];
};

static void *verify_main(void *arg)
{
	struct run *r = arg;
	r->st = domain_verify(&r->p, "par.test", &r->v, r->err, sizeof(r->err));
	return NULL;
}

/* The question name of a DNS query (RFC 1035 §4.1.2), dotted, into out. */
static void qname(const unsigned char *m, ssize_t n, char *out, size_t outsz)
{
	size_t o = 0;
	out[0] = '\0';
	for (ssize_t i = 12; i < n && m[i] != 0 && o + 65 < outsz;) {
		int len = m[i++];
		if (i + len > n)
			break;
		if (o)
			out[o++] = '.';
		memcpy(out + o, m + i, (size_t)len);
		o += (size_t)len;
		i += len;
		out[o] = '\0';
	}
}

Test(domains_verify, lookups_of_one_domain_run_at_once)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	th_sql_do(url, "INSERT INTO domains (domain, status) VALUES ('par.test', 'pending')");
	th_sql_do(url, "INSERT INTO domain_keys (domain, selector, algorithm, public_key, private_key) VALUES"
		       " ('par.test', 'e1', 'ed25519', 'AAAA', '\\x00'), ('par.test', 'r1', 'rsa', 'BBBB', '\\x00')");
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	socklen_t al = sizeof(a);
	getsockname(s, (struct sockaddr *)&a, &al);
	char servers[64], err[512];
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", ntohs(a.sin_port));
	struct dns_resolver *dns = dns_resolver_new(servers, err, sizeof(err));
	cr_assert_not_null(dns, "%s", err);
	dns_resolver_set_timeout(dns, 6000);
	struct config cfg;
	setenv("MAILFERRY_DATABASE_URL", url, 1);
	cr_assert_eq(config_load(&cfg, "/dev/null", err, sizeof(err)), 0, "%s", err);
	unsetenv("MAILFERRY_DATABASE_URL");
	struct db_pool *pool = db_pool_new(url, 2);
	/* 2 DKIM, SPF, DMARC (no bounce_domain: no return-path records). */
	const int want = 4;
	struct run r = { .p = { .cfg = &cfg, .pool = pool, .dns = dns } };
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, verify_main, &r), 0);
	char seen[16][256];
	int nseen = 0, repeated_before_all = 0;
	long deadline = th_now_ms() + 20000;
	while (nseen < want && !repeated_before_all && th_now_ms() < deadline) {
		struct pollfd pfd = { .fd = s, .events = POLLIN };
		if (poll(&pfd, 1, 500) <= 0)
			continue;
		unsigned char m[512];
		ssize_t n = recv(s, m, sizeof(m), 0);
		char name[256];
		qname(m, n, name, sizeof(name));
		int dup = 0;
		for (int i = 0; i < nseen; i++)
			dup |= strcmp(seen[i], name) == 0;
		if (dup)
			repeated_before_all = 1;
		else if (nseen < 16)
			snprintf(seen[nseen++], sizeof(seen[0]), "%s", name);
	}
	pthread_join(t, NULL);
	cr_assert_not(repeated_before_all, "a name was asked again before all %d were asked (%d seen first: %s ...):"
		      " the lookups ran one after the other", want, nseen, nseen ? seen[0] : "");
	cr_assert_eq(nseen, want, "names asked: %d of %d", nseen, want);
	/* Every lookup timed out: the API's verify stores that (failed). */
	cr_assert_eq(r.st, DOMAIN_VERIFY_DONE, "%s", r.err);
	cr_assert_not(r.v.verified);
	th_sql_eq(url, "SELECT count(*) FROM domains d, jsonb_array_elements(d.checks::jsonb) c"
		       " WHERE c->>'lookup' = 'timeout'", "4");
	close(s);
	db_pool_free(pool);
	config_cleanup(&cfg);
	dns_resolver_free(dns);
	th_db_drop(url);
	free(url);
}
