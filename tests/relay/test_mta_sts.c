/*
 * MTA-STS (RFC 8461) in relay_deliver(), against real peers: NSD serves
 * the zone (_mta-sts TXT, mta-sts.<domain> and the MX records), a Python
 * HTTPS server with a certificate from a test CA serves the policy on
 * port 443 of a 127.0.18.x address (the tests run as root; no port knob),
 * and the MX hosts are smtp-sink or a scripted STARTTLS server on port 25
 * of their own 127.0.18.x address.  Each test has its own addresses (the
 * tests run in parallel).  Cases: enforce refuses an MX the policy does
 * not name (§4.1) and a certificate that does not verify (§4.2), and
 * delivers over verified TLS to one it names; testing delivers and
 * records what enforce would have refused; no TXT record means none.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dns_server.h"
#include "harness.h"
#include "dns/dns.h"
#include "relay/mta_sts.h"
#include "relay/relay.h"
#include "smtp_script.h"
#include "smtp_sink.h"
#include "util/config.h"
#include "util/log.h"
#include "util/xmalloc.h"

static const struct th_dns_zone zone[] = {
	{ "sts.test",
	  /* enf: enforce, the policy names another host. */
	  "_mta-sts.enf IN TXT \"v=STSv1; id=1;\"\n"
	  "mta-sts.enf IN A 127.0.18.51\n"
	  "enf IN MX 10 mx.enf\n"
	  "mx.enf IN A 127.0.18.52\n"
	  /* badc: enforce, the MX's certificate is for another name. */
	  "_mta-sts.badc IN TXT \"v=STSv1; id=1;\"\n"
	  "mta-sts.badc IN A 127.0.18.53\n"
	  "badc IN MX 10 mx.badc\n"
	  "mx.badc IN A 127.0.18.54\n"
	  /* good: enforce, named MX with a valid certificate. */
	  "_mta-sts.good IN TXT \"v=STSv1; id=1;\"\n"
	  "mta-sts.good IN A 127.0.18.55\n"
	  "good IN MX 10 mx.good\n"
	  "mx.good IN A 127.0.18.56\n"
	  /* tst: testing, the policy names another host. */
	  "_mta-sts.tst IN TXT \"v=STSv1;\" \" id=7\"\n"
	  "mta-sts.tst IN A 127.0.18.57\n"
	  "tst IN MX 10 mx.tst\n"
	  "mx.tst IN A 127.0.18.58\n"
	  /* one: enforce, asked for by several workers at once. */
	  "_mta-sts.one IN TXT \"v=STSv1; id=1;\"\n"
	  "mta-sts.one IN A 127.0.18.60\n"
	  "one IN MX 10 mx.one\n"
	  "mx.one IN A 127.0.18.61\n"
	  /* plain: no _mta-sts record. */
	  "plain IN MX 10 mx.plain\n"
	  "mx.plain IN A 127.0.18.59\n" },
};

/* The policy server's answer delay (ms) for the next env_start(). */
static int g_policy_delay_ms;

struct env {
	char *dir;
	struct th_dns *dns;
	pid_t https;
	struct relay *relay;
	struct config cfg;
	char ca[512];
};

/* NSD, the CA, and (policy != NULL) the HTTPS policy server for
 * mta-sts.<sub>.sts.test on ip:443. */
static void env_start(struct env *e, const char *sub, const char *written_ip, const char *policy)
{
	char ip[INET_ADDRSTRLEN];
	snprintf(ip, sizeof(ip), "%s", th_ip(written_ip)); /* this run's addresses (harness.h) */
	memset(e, 0, sizeof(*e));
	e->dir = th_tmpdir("sts");
	cr_assert_not_null(e->dir);
	cr_assert_eq(ss_make_ca(e->dir), 0);
	snprintf(e->ca, sizeof(e->ca), "%s/ca.pem", e->dir);
	e->dns = th_dns_start(zone, 1);
	cr_assert_not_null(e->dns);
	if (policy) {
		char host[128];
		snprintf(host, sizeof(host), "mta-sts.%s.sts.test", sub);
		cr_assert_eq(ss_make_cert(e->dir, "policy", host), 0);
		cr_assert_eq(th_run(NULL, "mkdir -p '%s/www/.well-known' && printf '%%s' '%s' > '%s/www/.well-known/mta-sts.txt'",
				    e->dir, policy, e->dir), 0);
		pid_t pid = fork();
		if (pid == 0) {
			char cert[600], key[600], www[600];
			snprintf(cert, sizeof(cert), "%s/policy.pem", e->dir);
			snprintf(key, sizeof(key), "%s/policy.key", e->dir);
			snprintf(www, sizeof(www), "%s/www", e->dir);
			char log[600], delay[16];
			snprintf(log, sizeof(log), "%s/requests.log", e->dir);
			snprintf(delay, sizeof(delay), "%d", g_policy_delay_ms);
			execl("/usr/bin/timeout", "timeout", "60", "python3", "tests/harness/https_policy.py", ip, "443",
			      cert, key, www, log, delay, (char *)NULL);
			_exit(127);
		}
		e->https = pid;
		int up = 0;
		for (int i = 0; i < 200 && !up; i++) {
			up = th_tcp_open(ip, 443);
			if (!up) {
				struct timespec ts = { 0, 25 * 1000000L };
				nanosleep(&ts, NULL);
			}
		}
		cr_assert(up, "the policy server did not listen on %s:443", ip);
	}
	e->cfg.helo_name = "client.test";
	e->cfg.tls_policy = TLS_POLICY_OPPORTUNISTIC;
	e->cfg.tls_verify = 1;
	e->cfg.tls_ca_file = e->ca;
	e->cfg.mta_sts = 1;
	e->cfg.dns_servers = (char *)th_dns_servers(e->dns);
	log_setup(MF_LOG_WARN, 0);
	char err[256];
	e->relay = relay_new(&e->cfg, err, sizeof(err));
	cr_assert_not_null(e->relay, "%s", err);
}

static void env_stop(struct env *e)
{
	relay_free(e->relay);
	if (e->https > 0) {
		kill(e->https, SIGTERM);
		waitpid(e->https, NULL, 0);
	}
	th_dns_stop(e->dns);
	th_rmrf(e->dir);
	free(e->dir);
}

static const char MSG[] = "From: a@x.test\r\nTo: r@sts.test\r\nSubject: sts\r\n\r\nhello\r\n";

static void deliver(struct env *e, const char *domain, struct delivery_rcpt *rc)
{
	static char addr[128];
	snprintf(addr, sizeof(addr), "r@%s", domain);
	memset(rc, 0, sizeof(*rc));
	rc->id = 1;
	rc->addr = addr;
	struct delivery_job job = { .mail_from = "a@x.test", .domain = domain, .msg = MSG,
				    .len = sizeof(MSG) - 1, .log_id = "sts", .rcpts = rc, .nrcpts = 1,
				    .timeout_ms = 20000 };
	relay_deliver(e->relay, &job);
}

#define ENFORCE(mx) "version: STSv1\nmode: enforce\nmx: " mx "\nmax_age: 86400\n"

Test(mta_sts, enforce_refuses_an_mx_the_policy_does_not_name)
{
	struct env e;
	env_start(&e, "enf", "127.0.18.51", ENFORCE("other.sts.test"));
	struct delivery_rcpt rc;
	deliver(&e, "enf.sts.test", &rc);
	cr_assert_eq(rc.out.cls, OUT_LOCAL, "%s", rc.out.text);
	cr_assert_eq(rc.out.permanent, 0, "deferred, not bounced");
	cr_assert(strstr(rc.out.text, "MTA-STS enforce") != NULL, "%s", rc.out.text);
	cr_assert(strstr(rc.out.text, "mx.enf.sts.test") != NULL, "%s", rc.out.text);
	cr_assert_str_eq(rc.out.mta_sts, "enforce");
	env_stop(&e);
}

#define GREET { NULL, "220 mx ESMTP\r\n", 0, 0 }
#define EHLO_TLS "250-mx\r\n250-STARTTLS\r\n250 ENHANCEDSTATUSCODES\r\n"

Test(mta_sts, enforce_refuses_a_certificate_that_does_not_verify)
{
	struct env e;
	env_start(&e, "badc", "127.0.18.53", ENFORCE("mx.badc.sts.test"));
	cr_assert_eq(ss_make_cert(e.dir, "wrong", "wrong.example"), 0);
	char cert[600], key[600];
	snprintf(cert, sizeof(cert), "%s/wrong.pem", e.dir);
	snprintf(key, sizeof(key), "%s/wrong.key", e.dir);
	struct ss_step steps[] = {
		GREET,
		{ "EHLO client.test", EHLO_TLS, 0, 0 },
		{ "STARTTLS", "220 2.0.0 ready\r\n", SS_STARTTLS, 0 },
	};
	struct ss_opts o = { .cert_file = cert, .key_file = key, .listen_ip = "127.0.18.54", .listen_port = 25 };
	struct smtp_script *s = smtp_script_start(steps, 3, &o);
	cr_assert_not_null(s, "scripted server on 127.0.18.54:25");
	struct delivery_rcpt rc;
	deliver(&e, "badc.sts.test", &rc);
	cr_assert_eq(rc.out.cls, OUT_LOCAL, "%s", rc.out.text);
	cr_assert_eq(rc.out.kind, KIND_TLS, "%s", rc.out.text);
	cr_assert_eq(rc.out.permanent, 0);
	cr_assert(strncmp(rc.out.text, "MTA-STS enforce: ", 17) == 0, "%s", rc.out.text);
	cr_assert_str_eq(rc.out.mta_sts, "enforce");
	smtp_script_finish(s, NULL, NULL);
	env_stop(&e);
}

Test(mta_sts, enforce_delivers_over_verified_tls)
{
	struct env e;
	env_start(&e, "good", "127.0.18.55", ENFORCE("*.good.sts.test"));
	cr_assert_eq(ss_make_cert(e.dir, "mx", "mx.good.sts.test"), 0);
	char cert[600], key[600];
	snprintf(cert, sizeof(cert), "%s/mx.pem", e.dir);
	snprintf(key, sizeof(key), "%s/mx.key", e.dir);
	struct ss_step steps[] = {
		GREET,
		{ "EHLO client.test", EHLO_TLS, 0, 0 },
		{ "STARTTLS", "220 2.0.0 ready\r\n", SS_STARTTLS, 0 },
		{ "EHLO client.test", "250-mx\r\n250 ENHANCEDSTATUSCODES\r\n", 0, 0 },
		{ "MAIL FROM:<a@x.test>", "250 2.1.0 ok\r\n", 0, 0 },
		{ "RCPT TO:<r@good.sts.test>", "250 2.1.5 ok\r\n", 0, 0 },
		{ "DATA", "354 go ahead\r\n", 0, 0 },
		{ NULL, "250 2.0.0 queued\r\n", SS_BODY, 0 },
		{ "QUIT", "221 2.0.0 bye\r\n", SS_CLOSE, 0 },
	};
	struct ss_opts o = { .cert_file = cert, .key_file = key, .listen_ip = "127.0.18.56", .listen_port = 25 };
	struct smtp_script *s = smtp_script_start(steps, 9, &o);
	cr_assert_not_null(s, "scripted server on 127.0.18.56:25");
	struct delivery_rcpt rc;
	deliver(&e, "good.sts.test", &rc);
	cr_assert_eq(rc.out.cls, OUT_2XX, "%s", rc.out.text);
	cr_assert_eq(rc.out.tls_verified, 1);
	cr_assert(strncmp(rc.out.tls_version, "TLSv1.", 6) == 0, "%s", rc.out.tls_version);
	cr_assert_str_eq(rc.out.mta_sts, "enforce");
	cr_assert_str_eq(rc.out.sts_failure, "");
	relay_free(e.relay); /* QUIT the cached session before the script ends */
	e.relay = NULL;
	smtp_script_finish(s, NULL, NULL);
	env_stop(&e);
}

Test(mta_sts, testing_delivers_and_records)
{
	struct env e;
	env_start(&e, "tst", "127.0.18.57",
		  "version: STSv1\r\nmode: testing\r\nmx: other.sts.test\r\nmax_age: 600\r\n");
	struct th_sink *s = th_sink_start_at(NULL, "127.0.18.58", 25);
	cr_assert_not_null(s);
	struct delivery_rcpt rc;
	deliver(&e, "tst.sts.test", &rc);
	cr_assert_eq(rc.out.cls, OUT_2XX, "%s", rc.out.text);
	cr_assert_str_eq(rc.out.mta_sts, "testing");
	cr_assert(strstr(rc.out.sts_failure, "mx.tst.sts.test") != NULL &&
		  strstr(rc.out.sts_failure, "named by the policy") != NULL, "%s", rc.out.sts_failure);
	cr_assert_eq(th_sink_wait(s, 1, 10000), 1);
	th_sink_stop(s);
	env_stop(&e);
}

Test(mta_sts, no_txt_record_is_none)
{
	struct env e;
	env_start(&e, "plain", NULL, NULL);
	struct th_sink *s = th_sink_start_at(NULL, "127.0.18.59", 25);
	cr_assert_not_null(s);
	struct delivery_rcpt rc;
	deliver(&e, "plain.sts.test", &rc);
	cr_assert_eq(rc.out.cls, OUT_2XX, "%s", rc.out.text);
	cr_assert_str_eq(rc.out.mta_sts, "none");
	cr_assert_str_eq(rc.out.sts_failure, "");
	th_sink_stop(s);
	env_stop(&e);
}

struct asker {
	struct sts *s;
	enum sts_mode mode;
};

static void *ask(void *arg)
{
	struct asker *a = arg;
	struct sts_policy p;
	char note[512];
	a->mode = sts_policy_for(a->s, "one.sts.test", &p, note, sizeof(note));
	return NULL;
}

/* Eight workers need one domain's policy at once, from a policy server
 * that takes 500 ms to answer: one fetch; the others wait for it and use
 * its policy. */
Test(mta_sts, workers_asking_at_once_fetch_once)
{
	struct env e;
	g_policy_delay_ms = 500;
	env_start(&e, "one", "127.0.18.60", ENFORCE("mx.one.sts.test"));
	g_policy_delay_ms = 0;
	char err[256];
	struct dns_resolver *dns = dns_resolver_new(th_dns_servers(e.dns), err, sizeof(err));
	cr_assert_not_null(dns, "%s", err);
	struct sts *s = sts_new(dns, e.ca);
	enum { N = 8 };
	pthread_t t[N];
	struct asker a[N];
	for (int i = 0; i < N; i++) {
		a[i] = (struct asker){ s, STS_MODE_NONE };
		cr_assert_eq(pthread_create(&t[i], NULL, ask, &a[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(a[i].mode, STS_MODE_ENFORCE, "worker %d", i);
	}
	char *out = NULL;
	cr_assert_eq(th_run(&out, "wc -l < '%s/requests.log'", e.dir), 0);
	cr_assert_eq(strtol(out, NULL, 10), 1, "policy fetches: %s", out);
	free(out);
	sts_free(s);
	dns_resolver_free(dns);
	env_stop(&e);
}
