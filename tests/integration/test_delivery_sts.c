/*
 * test_delivery_sts.c - MTA-STS (RFC 8461) end to end through "mailferry
 * serve": messages POSTed to /v1/messages, MX and policy found through a
 * real authoritative server (NSD, tests/harness/dns_server.h, named by
 * dns_servers), policies served over HTTPS by tests/harness/https_policy.py
 * on port 443 with a certificate from a test CA (tls_ca_file), and real
 * MX peers on port 25: "mailferry sink --dir" offering STARTTLS with a
 * certificate that does or does not verify, and Postfix's smtp-sink.  What
 * the relay decided is read back where users read it: the recipient's
 * detail (GET /v1/messages/{id}: status, last_response, tls) and the
 * event feed (GET /v1/events).
 *
 * enforce_and_testing_through_serve: one serve, four domains - enforce
 * with an MX the policy does not name (deferred), enforce with an MX
 * whose certificate does not verify (deferred), enforce with a named MX
 * and a good certificate (delivered over verified TLS), testing with an
 * MX not named (delivered, the failure recorded).
 *
 * policy_cache_in_postgresql: the policy cache is the table
 * mta_sts_policies; a restarted serve holds a domain to the policy stored
 * under the TXT id without fetching (the policy server's request log
 * counts fetches), a failed fetch under a new id keeps the stored policy,
 * and a successful one replaces it.
 *
 * Addresses 127.0.18.71-78 and .81-82 (th_ip(): this run's /24) are this
 * file's.  Processes are started under timeout(1) and stopped by the
 * tests' .fini hook, so a failed assertion leaves nothing behind.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api_helpers.h"
#include "dns_server.h"
#include "harness.h"
#include "smtp_script.h"
#include "smtp_sink.h"

#define ZONE "e2sts.test"
#define PEERS_MAX 8

/* What the .fini hook tears down. */
static struct {
	char *dir;
	char ca[600];
	struct th_dns *dns;
	pid_t peers[PEERS_MAX]; /* policy servers and capture sinks */
	int npeers;
	struct th_sink *sink;
	struct api_srv srv;
} g;

static const char *srcdir(void)
{
	const char *s = getenv("MAILFERRY_TEST_SRCDIR");
	return s ? s : ".";
}

static void teardown(void)
{
	if (g.srv.p) {
		th_proc_stop(g.srv.p, 10000);
		th_proc_free(g.srv.p);
		g.srv.p = NULL;
	}
	if (g.srv.db) {
		th_db_drop(g.srv.db);
		free(g.srv.db);
		g.srv.db = NULL;
	}
	for (int i = 0; i < g.npeers; i++) {
		kill(g.peers[i], SIGTERM);
		waitpid(g.peers[i], NULL, 0);
	}
	g.npeers = 0;
	th_sink_stop(g.sink);
	g.sink = NULL;
	th_dns_stop(g.dns);
	g.dns = NULL;
	if (g.dir) {
		th_rmrf(g.dir);
		free(g.dir);
		g.dir = NULL;
	}
}

/* Runs argv (under timeout 60) in the background, its output into
 * DIR/peers.log, and waits, bounded, until
 * something listens on ip:port. */
static void peer_start(const char *ip, int port, char *const argv[])
{
	cr_assert_lt(g.npeers, PEERS_MAX);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char log[700];
		snprintf(log, sizeof(log), "%s/peers.log", g.dir);
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		execv("/usr/bin/timeout", argv);
		_exit(127);
	}
	g.peers[g.npeers++] = pid;
	long t0 = th_now_ms();
	while (!th_tcp_open(ip, port)) {
		cr_assert_lt(th_now_ms() - t0, 10000, "%s did not listen on %s:%d", argv[2], ip, port);
		usleep(25000);
	}
}

/* The test CA, NSD with records, and the directory everything lives in. */
static void env_start(const char *records)
{
	memset(&g, 0, sizeof(g));
	g.dir = th_tmpdir("dsts");
	cr_assert_not_null(g.dir);
	cr_assert_eq(ss_make_ca(g.dir), 0);
	snprintf(g.ca, sizeof(g.ca), "%s/ca.pem", g.dir);
	const struct th_dns_zone zone = { ZONE, records };
	g.dns = th_dns_start(&zone, 1);
	cr_assert_not_null(g.dns);
}

/* Writes (policy NULL: removes) the policy that mta-sts.SUB.ZONE serves. */
static void policy_write(const char *sub, const char *policy)
{
	if (policy)
		cr_assert_eq(th_run(NULL, "mkdir -p '%s/%s/.well-known' && printf '%%s' '%s' > '%s/%s/.well-known/mta-sts.txt'",
				    g.dir, sub, policy, g.dir, sub), 0);
	else
		cr_assert_eq(th_run(NULL, "rm -f '%s/%s/.well-known/mta-sts.txt'", g.dir, sub), 0);
}

/* The HTTPS policy server of mta-sts.SUB.ZONE on written_ip:443; its
 * request log is DIR/SUB.log. */
static void policy_server(const char *sub, const char *written_ip, const char *policy)
{
	char ip[INET_ADDRSTRLEN], host[128], name[64], cert[700], key[700], root[700], log[700], script[700];
	snprintf(ip, sizeof(ip), "%s", th_ip(written_ip));
	snprintf(host, sizeof(host), "mta-sts.%s." ZONE, sub);
	snprintf(name, sizeof(name), "policy-%s", sub);
	cr_assert_eq(ss_make_cert(g.dir, name, host), 0);
	policy_write(sub, policy);
	snprintf(cert, sizeof(cert), "%s/%s.pem", g.dir, name);
	snprintf(key, sizeof(key), "%s/%s.key", g.dir, name);
	snprintf(root, sizeof(root), "%s/%s", g.dir, sub);
	snprintf(log, sizeof(log), "%s/%s.log", g.dir, sub);
	snprintf(script, sizeof(script), "%s/tests/harness/https_policy.py", srcdir());
	char *const argv[] = { "timeout", "60", "python3", script, ip, "443", cert, key, root, log, NULL };
	peer_start(ip, 443, argv);
}

/* "mailferry sink --dir" on written_ip:25 offering STARTTLS with a
 * certificate for cert_host; messages land in DIR/mx-NAME. */
static void tls_mx(const char *name, const char *written_ip, const char *cert_host)
{
	char ip[INET_ADDRSTRLEN], listen[64], cname[64], cert[700], key[700], dir[700];
	snprintf(ip, sizeof(ip), "%s", th_ip(written_ip));
	snprintf(listen, sizeof(listen), "%s:25", ip);
	snprintf(cname, sizeof(cname), "mx-%s", name);
	cr_assert_eq(ss_make_cert(g.dir, cname, cert_host), 0);
	snprintf(cert, sizeof(cert), "%s/%s.pem", g.dir, cname);
	snprintf(key, sizeof(key), "%s/%s.key", g.dir, cname);
	snprintf(dir, sizeof(dir), "%s/%s", g.dir, cname);
	cr_assert_eq(th_run(NULL, "mkdir -p '%s'", dir), 0);
	char *const argv[] = { "timeout",    "60", (char *)th_bin(), "sink",      "--dir", dir,
			       "--listen",   listen, "--tls-cert",   cert,   "--tls-key", key,   NULL };
	peer_start(ip, 25, argv);
}

static long file_lines(const char *path, const char *grep)
{
	char *out = NULL;
	th_run(&out, "cat '%s' 2>/dev/null | grep -c -- '%s'", path, grep);
	long n = out ? strtol(out, NULL, 10) : 0;
	free(out);
	return n;
}

/* Requests the policy server of SUB answered (its log). */
static long fetches(const char *sub, const char *status)
{
	char log[700];
	snprintf(log, sizeof(log), "%s/%s.log", g.dir, sub);
	return file_lines(log, status);
}

static void serve_start(const char *db)
{
	static char dns[80], ca[700];
	snprintf(dns, sizeof(dns), "MAILFERRY_DNS_SERVERS=%s", th_dns_servers(g.dns));
	snprintf(ca, sizeof(ca), "MAILFERRY_TLS_CA_FILE=%s", g.ca);
	const char *env[] = { dns, ca, "MAILFERRY_ROLES=api,delivery", "MAILFERRY_RETRY_SCHEDULE=1s",
			      "MAILFERRY_HELO_NAME=client.test", NULL };
	api_srv_start(&g.srv, db, env);
}

static void serve_stop(void)
{
	cr_assert_eq(th_proc_stop(g.srv.p, 10000), 0, "serve did not stop cleanly");
	th_proc_free(g.srv.p);
	g.srv.p = NULL;
}

static char *send_to(const char *rcpt)
{
	char body[512];
	snprintf(body, sizeof(body),
		 "{\"from\":\"App <app@sender.test>\",\"to\":\"%s\",\"subject\":\"sts\",\"text\":\"hello\"}", rcpt);
	return api_send_ok(&g.srv, body);
}

/* GET /v1/messages/{id} until its recipient's status is want and
 * (attempts_min > 0) it has made that many attempts; returns the message
 * (the caller decrefs), asserting on a timeout. */
static json_t *wait_rcpt(const char *id, const char *want, long attempts_min, int timeout_ms)
{
	char path[128], last[2048] = "";
	snprintf(path, sizeof(path), "/v1/messages/%s", id);
	long t0 = th_now_ms();
	for (;;) {
		struct th_http r;
		cr_assert_eq(api_call(&g.srv, "GET", path, NULL, NULL, NULL, &r), 0, "%s", r.error);
		cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
		json_t *m = t_json(&r);
		json_t *rc = json_array_get(json_object_get(m, "recipients"), 0);
		const char *st = t_str(rc, "status");
		if (st && strcmp(st, want) == 0 && json_integer_value(json_object_get(rc, "attempts")) >= attempts_min) {
			th_http_free(&r);
			return m;
		}
		snprintf(last, sizeof(last), "%s", r.body);
		th_http_free(&r);
		json_decref(m);
		cr_assert_lt(th_now_ms() - t0, timeout_ms, "recipient of %s not %s: %s", id, want, last);
		usleep(50000);
	}
}

static json_t *rcpt0(json_t *m)
{
	return json_array_get(json_object_get(m, "recipients"), 0);
}

static const char *rcpt_text(json_t *m)
{
	const char *t = t_str(json_object_get(rcpt0(m), "last_response"), "text");
	return t ? t : "";
}

static const char *rcpt_tls(json_t *m, const char *key)
{
	const char *t = t_str(json_object_get(rcpt0(m), "tls"), key);
	return t ? t : "";
}

/* The message.delivered event of message id from GET /v1/events, paged
 * with the cursor and polled (the feed shows events once every earlier
 * transaction has committed) for up to 10 s; NULL when it did not come.
 * The caller decrefs. */
static json_t *delivered_event(const char *id)
{
	char path[256], cursor[128] = "";
	json_t *found = NULL;
	long t0 = th_now_ms();
	while (!found && th_now_ms() - t0 < 10000) {
		snprintf(path, sizeof(path), "/v1/events?limit=100%s%s", *cursor ? "&after=" : "", cursor);
		struct th_http r;
		cr_assert_eq(api_call(&g.srv, "GET", path, NULL, NULL, NULL, &r), 0, "%s", r.error);
		cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
		json_t *all = t_json(&r);
		th_http_free(&r);
		json_t *data = json_object_get(all, "data"), *ev;
		size_t i;
		json_array_foreach(data, i, ev)
		{
			json_t *d = json_object_get(ev, "data");
			if (strcmp(t_str(ev, "type"), "message.delivered") == 0 && strcmp(t_str(d, "message_id"), id) == 0)
				found = json_incref(ev);
		}
		const char *nc = t_str(all, "next_cursor");
		if (nc)
			snprintf(cursor, sizeof(cursor), "%s", nc);
		if (json_array_size(data) == 0)
			usleep(50000);
		json_decref(all);
	}
	return found;
}

#define ENFORCE(mx) "version: STSv1\nmode: enforce\nmx: " mx "\nmax_age: 86400\n"

static const char ZONE1[] =
	/* enf: enforce, the policy names another host; nothing listens at the MX. */
	"_mta-sts.enf IN TXT \"v=STSv1; id=1;\"\n"
	"mta-sts.enf IN A 127.0.18.71\n"
	"enf IN MX 10 mx.enf\n"
	"mx.enf IN A 127.0.18.72\n"
	/* badc: enforce, the named MX presents a certificate for another name. */
	"_mta-sts.badc IN TXT \"v=STSv1; id=1;\"\n"
	"mta-sts.badc IN A 127.0.18.73\n"
	"badc IN MX 10 mx.badc\n"
	"mx.badc IN A 127.0.18.74\n"
	/* good: enforce, the named MX with a certificate for its name. */
	"_mta-sts.good IN TXT \"v=STSv1; id=1;\"\n"
	"mta-sts.good IN A 127.0.18.75\n"
	"good IN MX 10 mx.good\n"
	"mx.good IN A 127.0.18.76\n"
	/* tst: testing, the policy names another host; smtp-sink, no TLS. */
	"_mta-sts.tst IN TXT \"v=STSv1; id=20261207;\"\n"
	"mta-sts.tst IN A 127.0.18.77\n"
	"tst IN MX 10 mx.tst\n"
	"mx.tst IN A 127.0.18.78\n";

Test(delivery_sts, enforce_and_testing_through_serve, .fini = teardown)
{
	env_start(ZONE1);
	policy_server("enf", "127.0.18.71", ENFORCE("other." ZONE));
	policy_server("badc", "127.0.18.73", ENFORCE("mx.badc." ZONE));
	policy_server("good", "127.0.18.75", ENFORCE("*.good." ZONE));
	policy_server("tst", "127.0.18.77", "version: STSv1\r\nmode: testing\r\nmx: other." ZONE "\r\nmax_age: 600\r\n");
	tls_mx("badc", "127.0.18.74", "wrong.example");
	tls_mx("good", "127.0.18.76", "mx.good." ZONE);
	g.sink = th_sink_start_at(NULL, "127.0.18.78", 25);
	cr_assert_not_null(g.sink, "smtp-sink on 127.0.18.78:25");
	serve_start(NULL);

	char *enf = send_to("r@enf." ZONE);
	char *badc = send_to("r@badc." ZONE);
	char *good = send_to("r@good." ZONE);
	char *tst = send_to("r@tst." ZONE);

	/* (a) §4.1: an MX the enforced policy does not name is not tried. */
	json_t *m = wait_rcpt(enf, "deferred", 1, 20000);
	cr_assert_str_eq(rcpt_tls(m, "mta_sts"), "enforce");
	cr_assert(strstr(rcpt_text(m), "MTA-STS enforce") && strstr(rcpt_text(m), "mx.enf." ZONE), "%s",
		  rcpt_text(m));
	json_decref(m);

	/* (b) §4.2: a certificate that does not verify for the MX name. */
	m = wait_rcpt(badc, "deferred", 1, 20000);
	cr_assert_str_eq(rcpt_tls(m, "mta_sts"), "enforce");
	cr_assert(strncmp(rcpt_text(m), "MTA-STS enforce: ", 17) == 0, "%s", rcpt_text(m));
	char *out = NULL;
	th_run(&out, "ls '%s/mx-badc' | wc -l", g.dir);
	cr_assert_eq(strtol(out, NULL, 10), 0, "a message reached the MX with the bad certificate");
	free(out);
	json_decref(m);

	/* (c) the named MX over verified TLS: delivered, and so reported in
	 * the detail and the delivery event. */
	m = wait_rcpt(good, "delivered", 1, 20000);
	json_t *tls = json_object_get(rcpt0(m), "tls");
	cr_assert(json_is_true(json_object_get(tls, "verified")), "%s", json_dumps(tls, 0));
	cr_assert_str_eq(rcpt_tls(m, "mta_sts"), "enforce");
	cr_assert(strncmp(rcpt_tls(m, "version"), "TLSv1.", 6) == 0, "%s", rcpt_tls(m, "version"));
	cr_assert(json_is_null(json_object_get(tls, "mta_sts_failure")), "%s", json_dumps(tls, 0));
	json_decref(m);
	json_t *ev = delivered_event(good);
	cr_assert_not_null(ev, "no message.delivered event for %s", good);
	tls = json_object_get(json_object_get(ev, "data"), "tls");
	cr_assert(json_is_true(json_object_get(tls, "verified")), "%s", json_dumps(ev, 0));
	cr_assert_str_eq(t_str(tls, "mta_sts"), "enforce");
	json_decref(ev);
	th_run(&out, "ls '%s/mx-good' | wc -l", g.dir);
	cr_assert_eq(strtol(out, NULL, 10), 1);
	free(out);

	/* (d) testing: delivered to the MX not named, what enforce would
	 * have refused recorded. */
	m = wait_rcpt(tst, "delivered", 1, 20000);
	cr_assert_str_eq(rcpt_tls(m, "mta_sts"), "testing");
	cr_assert(strstr(rcpt_tls(m, "mta_sts_failure"), "mx.tst." ZONE) &&
		  strstr(rcpt_tls(m, "mta_sts_failure"), "named by the policy"), "%s", rcpt_tls(m, "mta_sts_failure"));
	json_decref(m);
	ev = delivered_event(tst);
	cr_assert_not_null(ev, "no message.delivered event for %s", tst);
	tls = json_object_get(json_object_get(ev, "data"), "tls");
	cr_assert_str_eq(t_str(tls, "mta_sts"), "testing");
	cr_assert(strstr(t_str(tls, "mta_sts_failure"), "named by the policy"), "%s", json_dumps(ev, 0));
	json_decref(ev);
	cr_assert_eq(th_sink_wait(g.sink, 1, 10000), 1);

	/* Each policy was fetched once (the deferred ones are retried every
	 * second under the cached policy) and is in PostgreSQL. */
	const char *subs[] = { "enf", "badc", "good", "tst" };
	for (int i = 0; i < 4; i++)
		cr_assert_eq(fetches(subs[i], "/"), 1, "%s: policy fetched %ld times", subs[i], fetches(subs[i], "/"));
	char *v = th_sql(g.srv.db, "SELECT string_agg(domain || ' ' || policy_id || ' ' || mode || ' ' ||"
				   " array_to_string(mx, ','), '|' ORDER BY domain) FROM mta_sts_policies");
	cr_assert_str_eq(v, "badc." ZONE " 1 enforce mx.badc." ZONE "|enf." ZONE " 1 enforce other." ZONE
			    "|good." ZONE " 1 enforce *.good." ZONE "|tst." ZONE " 20261207 testing other." ZONE);
	free(v);
	free(enf);
	free(badc);
	free(good);
	free(tst);
}

#define CACHE_RECORDS(id)                                   \
	"_mta-sts.cache IN TXT \"v=STSv1; id=" id ";\"\n" \
	"mta-sts.cache IN A 127.0.18.81\n"                  \
	"cache IN MX 10 mx.cache\n"                         \
	"mx.cache IN A 127.0.18.82\n"

Test(delivery_sts, policy_cache_in_postgresql, .fini = teardown)
{
	env_start(CACHE_RECORDS("1"));
	/* The first policy does not name the MX; the one served after it does. */
	policy_server("cache", "127.0.18.81", ENFORCE("other." ZONE));
	tls_mx("cache", "127.0.18.82", "mx.cache." ZONE);
	serve_start(NULL);

	char *first = send_to("r@cache." ZONE);
	json_t *m = wait_rcpt(first, "deferred", 1, 20000);
	cr_assert(strstr(rcpt_text(m), "MTA-STS enforce"), "%s", rcpt_text(m));
	json_decref(m);
	cr_assert_eq(fetches("cache", " 200"), 1);
	char *v = th_sql(g.srv.db, "SELECT policy_id || ' ' || mode || ' ' || max_age || ' ' || array_to_string(mx, ',')"
				   " || ' ' || (expires_at = fetched_at + interval '86400 seconds')"
				   " FROM mta_sts_policies WHERE domain = 'cache." ZONE "'");
	cr_assert_str_eq(v, "1 enforce 86400 other." ZONE " true");
	free(v);

	/* A restarted serve, with the policy server answering 404: the
	 * stored policy applies, and under the same id nothing is fetched. */
	serve_stop();
	policy_write("cache", NULL);
	char *db = g.srv.db;
	serve_start(db); /* a new API key, the same database */
	free(db);
	char *second = send_to("r@cache." ZONE);
	m = wait_rcpt(second, "deferred", 2, 20000);
	cr_assert_str_eq(rcpt_tls(m, "mta_sts"), "enforce");
	cr_assert(strstr(rcpt_text(m), "MTA-STS enforce") && strstr(rcpt_text(m), "mx.cache." ZONE), "%s",
		  rcpt_text(m));
	json_decref(m);
	cr_assert_eq(fetches("cache", "/"), 1, "a request reached the policy server under the stored id");
	cr_assert(file_lines(g.srv.p->log, "stored policy id 1") > 0, "the serve log does not say the policy came from PostgreSQL");

	/* A new TXT id: fetched again; the fetch fails (404), so the stored
	 * policy stays (§5.1). */
	cr_assert_eq(th_dns_set_zone(g.dns, ZONE, CACHE_RECORDS("2")), 0);
	long t0 = th_now_ms();
	while (fetches("cache", " 404") < 1) {
		cr_assert_lt(th_now_ms() - t0, 20000, "no fetch under the new id");
		usleep(50000);
	}
	m = wait_rcpt(second, "deferred", 0, 20000);
	long attempts = (long)json_integer_value(json_object_get(rcpt0(m), "attempts"));
	json_decref(m);
	m = wait_rcpt(second, "deferred", attempts + 2, 20000);
	cr_assert(strstr(rcpt_text(m), "MTA-STS enforce"), "%s", rcpt_text(m));
	json_decref(m);
	cr_assert_geq(fetches("cache", " 404"), 2);
	v = th_sql(g.srv.db, "SELECT policy_id FROM mta_sts_policies WHERE domain = 'cache." ZONE "'");
	cr_assert_str_eq(v, "1");
	free(v);

	/* The server answers again: the new policy replaces the stored one
	 * and names the MX; both messages go out over verified TLS. */
	policy_write("cache", ENFORCE("mx.cache." ZONE));
	m = wait_rcpt(second, "delivered", 1, 20000);
	cr_assert(json_is_true(json_object_get(json_object_get(rcpt0(m), "tls"), "verified")));
	cr_assert_str_eq(rcpt_tls(m, "mta_sts"), "enforce");
	json_decref(m);
	json_decref(wait_rcpt(first, "delivered", 1, 20000));
	cr_assert_eq(fetches("cache", " 200"), 2);
	v = th_sql(g.srv.db, "SELECT policy_id || ' ' || array_to_string(mx, ',') FROM mta_sts_policies");
	cr_assert_str_eq(v, "2 mx.cache." ZONE);
	free(v);
	free(first);
	free(second);
}
