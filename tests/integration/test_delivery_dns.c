/*
 * test_delivery_dns.c - end to end through "mailferry serve" with
 * dns_servers pointing at a real authoritative server (NSD,
 * tests/harness/dns_server.h): recipients at a domain whose MX names a
 * loopback smtp-sink (port 25 of 127.0.18.31) are delivered, with no
 * routes or smarthost; recipients at a null-MX domain (RFC 7505) fail
 * permanently with the reason recorded.  The MTA-STS mode applied
 * ("none": no _mta-sts record) shows in the recipient's detail and event.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery_helpers.h"
#include "dns_server.h"
#include "harness.h"
#include "smtp_sink.h"

static const struct th_dns_zone zones[] = {
	{ "e2e.test",
	  "mail IN MX 10 mx1.mail\n"
	  "mx1.mail IN A 127.0.18.31\n"
	  "nomx IN MX 0 .\n" },
};

Test(delivery_dns, mx_from_the_dns_server_and_null_mx)
{
	struct th_dns *d = th_dns_start(zones, 1);
	cr_assert_not_null(d);
	struct th_sink *s = th_sink_start_at(NULL, "127.0.18.31", 25);
	cr_assert_not_null(s, "smtp-sink on 127.0.18.31:25");
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	char dns[64];
	snprintf(dns, sizeof(dns), "MAILFERRY_DNS_SERVERS=%s", th_dns_servers(d));
	const char *env[] = { dns, "MAILFERRY_ROLES=delivery", "MAILFERRY_TLS_POLICY=none", NULL };
	struct th_proc *p = th_serve_start(url, env);
	cr_assert_not_null(p);

	insert_messages(url, 1, "a@mail.e2e.test,b@mail.e2e.test,c@nomx.e2e.test");
	long done = wait_count(url, 3, 20000,
		"SELECT count(*) FROM recipients WHERE status IN ('delivered', 'bounced', 'failed')");
	cr_assert_eq(done, 3, "not all recipients finished: %ld", done);
	cr_assert_eq(th_sink_wait(s, 1, 10000), 1);

	char *v = q(url, "SELECT string_agg(email || ' ' || status || ' ' || coalesce(last_mx, '-'), ','"
			 " ORDER BY position) FROM recipients WHERE domain = 'mail.e2e.test'");
	cr_assert(strstr(v, "a@mail.e2e.test delivered mx1.mail.e2e.test") != NULL, "%s", v);
	cr_assert(strstr(v, "b@mail.e2e.test delivered mx1.mail.e2e.test") != NULL, "%s", v);
	free(v);
	v = q(url, "SELECT status || ' ' || coalesce(last_enhanced, '-') || ' ' || coalesce(last_text, '-')"
		   " FROM recipients WHERE domain = 'nomx.e2e.test'");
	cr_assert(strncmp(v, "bounced 5.1.10 ", 15) == 0 || strncmp(v, "failed 5.1.10 ", 14) == 0, "%s", v);
	cr_assert(strstr(v, "null MX") != NULL, "%s", v);
	free(v);
	/* mta_sts = yes by default; the zone has no _mta-sts record: none,
	 * in the recipient's detail and in the delivery event. */
	v = q(url, "SELECT string_agg(mf_api_recipient(r)->'tls'->>'mta_sts', ',') FROM recipients r"
		   " WHERE domain = 'mail.e2e.test'");
	cr_assert_str_eq(v, "none,none");
	free(v);
	v = q(url, "SELECT string_agg(payload->'data'->'tls'->>'mta_sts', ',') FROM events"
		   " WHERE type = 'message.delivered'");
	cr_assert_str_eq(v, "none,none");
	free(v);

	cr_assert_eq(th_proc_stop(p, 10000), 0);
	th_proc_free(p);
	th_db_drop(url);
	free(url);
	th_sink_stop(s);
	th_dns_stop(d);
}
