/*
 * test_domains.c - sending domains (issue 18, docs/domains.md) end to end:
 * a real "mailferry serve" with its own database and master_key_file,
 * delivering to Postfix's smtp-sink; every DKIM-Signature of the
 * delivered messages checked by dkimpy (python3-dkim, Ed25519 through
 * python3-nacl; tests/integration/dkim_domains.py), which looks the keys
 * up in NSD (tests/harness/dns_server.h) serving the records the domain's
 * API answer published, through dnspython.
 *
 *   signs_with_both_keys        add (name normalised, parent domain signs
 *                               a subdomain's mail), records, two signatures
 *                               that verify, for the API and for SMTP
 *                               submission alike; list/get/404/409/422; delete
 *   sender_policy_verified      422 domain_not_verified (field from) for an
 *                               unknown and for a pending domain; without
 *                               master_key_file adding is 503 master_key_missing
 *   verify_against_nsd          records served by NSD (tests/harness/dns_server.h):
 *                               verified, events; a wrong and a missing record
 *                               reported per record; rotate + verify switches
 *                               the signing selectors, mail signed throughout;
 *                               sender_policy = verified lets a verified domain send
 *   recheck_by_housekeeper      domain_recheck_interval = 1s, no verify call:
 *                               intact records advance checked_at; a DKIM
 *                               record removed from NSD makes the domain
 *                               failed, domain.verification_failed, and its
 *                               webhook; published pending keys take over;
 *                               a retiring key past retire_after is retired
 *   private_keys_never_leave    "mailferry domains" prints zone-file lines;
 *                               the decrypted private keys appear in no API
 *                               or command answer and not in the daemon's log
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_helpers.h"
#include "harness.h"
#include "mail/dkim_keys.h"
#include "dns_server.h"
#include "smtp_sink.h"
#include "util/base64.h"
#include "wh_receiver.h"

struct dom {
	struct api_srv s;
	struct th_sink *sink;
	char *dir;
	char mk[512];           /* master_key_file */
	char admin[160];
	json_t *answers;        /* every API answer body, for the key scan */
};

/* Starts a sink and serve; with_key: a master_key_file; policy: sender_policy;
 * dns: dns_servers (NULL: unset); extra: more KEY=VALUE (NULL-terminated,
 * at most 4; may be NULL). */
static void dom_start_env(struct dom *d, int with_key, const char *policy, const char *dns,
			  const char *const *extra)
{
	memset(d, 0, sizeof(*d));
	d->answers = json_array();
	d->dir = th_tmpdir("domains");
	cr_assert_not_null(d->dir);
	snprintf(d->mk, sizeof(d->mk), "%s/master.key", d->dir);
	cr_assert_eq(th_run(NULL, "head -c 32 /dev/urandom > '%s' && chmod 600 '%s'", d->mk, d->mk), 0);
	d->sink = th_sink_start(NULL);
	cr_assert_not_null(d->sink, "smtp-sink did not start");
	char routes[128], mk[600], pol[64];
	snprintf(routes, sizeof(routes), "MAILFERRY_ROUTES=*=127.0.0.1:%d", d->sink->port);
	snprintf(mk, sizeof(mk), "MAILFERRY_MASTER_KEY_FILE=%s", d->mk);
	snprintf(pol, sizeof(pol), "MAILFERRY_SENDER_POLICY=%s", policy);
	char dnsv[128];
	snprintf(dnsv, sizeof(dnsv), "MAILFERRY_DNS_SERVERS=%s", dns ? dns : "");
	const char *env[16] = { routes, pol, "MAILFERRY_TLS_POLICY=none", "MAILFERRY_BOUNCE_DOMAIN=bounces.relay.test",
				"MAILFERRY_HELO_NAME=relay.test", "MAILFERRY_LOG_LEVEL=debug" };
	int n = 6;
	if (with_key)
		env[n++] = mk;
	if (dns)
		env[n++] = dnsv;
	int roles = 0;
	for (int i = 0; extra && extra[i]; i++) {
		cr_assert_lt(n, 14);
		roles |= strncmp(extra[i], "MAILFERRY_ROLES=", 16) == 0;
		env[n++] = extra[i];
	}
	if (!roles)
		env[n++] = "MAILFERRY_ROLES=api,delivery";
	api_srv_start(&d->s, NULL, env);
	cr_assert_eq(api_make_key(d->s.db, "send,read,admin", d->admin, sizeof(d->admin)), 0);
}

static void dom_start_dns(struct dom *d, int with_key, const char *policy, const char *dns)
{
	dom_start_env(d, with_key, policy, dns, NULL);
}

static void dom_start(struct dom *d, int with_key, const char *policy)
{
	dom_start_dns(d, with_key, policy, NULL);
}

static void dom_stop(struct dom *d)
{
	api_srv_stop(&d->s, 1);
	th_sink_stop(d->sink);
	th_rmrf(d->dir);
	free(d->dir);
	json_decref(d->answers);
}

/* An admin request; the answer body is kept for the key scan. */
static long dom_call(struct dom *d, const char *method, const char *path, const char *body, json_t **out)
{
	struct th_http r;
	cr_assert_eq(api_call(&d->s, method, path, d->admin, NULL, body, &r), 0, "%s %s: %s", method, path, r.error);
	json_array_append_new(d->answers, json_string(r.body ? r.body : ""));
	if (out)
		*out = r.body && *r.body ? t_json(&r) : NULL;
	long st = r.status;
	th_http_free(&r);
	return st;
}

/* The records of purpose p in a domain answer. */
static int count_records(const json_t *dj, const char *purpose)
{
	int n = 0;
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(dj, "records"), i, r)
		n += strcmp(t_str(r, "purpose"), purpose) == 0;
	return n;
}

/* Sends from `from` with subject subj; asserts 202. */
static void send_from(struct dom *d, const char *from, const char *subj)
{
	char body[512];
	snprintf(body, sizeof(body),
		 "{\"from\":\"%s\",\"to\":[\"rcpt@inbox.test\"],\"subject\":\"%s\",\"text\":\"hello from %s\"}", from,
		 subj, subj);
	free(api_send_ok(&d->s, body));
}

/* The delivered message whose Subject is subj, once smtp-sink has
 * written all of it (its body's text): waits for n messages, then polls
 * the files, bounded. */
static char *delivered(struct dom *d, int n, const char *subj)
{
	cr_assert_eq(th_sink_wait(d->sink, n, 20000), n, "%d messages did not arrive", n);
	char want[128], end[128];
	snprintf(want, sizeof(want), "Subject: %s\n", subj);
	snprintf(end, sizeof(end), "hello from %s", subj);
	for (long t0 = th_now_ms(); th_now_ms() - t0 < 20000; usleep(20000)) {
		for (int i = 0; i < n; i++) {
			char *m = th_sink_message(d->sink, i);
			if (m && strstr(m, want) && strstr(m, end))
				return m;
			free(m);
		}
	}
	char *m0 = th_sink_message(d->sink, 0);
	cr_assert_fail("no delivered message has the subject %s; the first:\n%s", subj, m0 ? m0 : "(none)");
	return NULL;
}

/* Runs dkimpy over msg, its key lookups sent to the DNS server at
 * server ("127.0.0.1:PORT"); returns its exit status. */
static int dkimpy(struct dom *d, const char *msg, const char *server, char **output)
{
	char *eml = NULL;
	cr_assert(asprintf(&eml, "%s/msg.eml", d->dir) > 0);
	FILE *f = fopen(eml, "w");
	cr_assert_not_null(f);
	fputs(msg, f);
	fclose(f);
	const char *src = getenv("MF_SRC_DIR") ? getenv("MF_SRC_DIR") : ".";
	int rc = th_run(output, "/usr/bin/python3 %s/tests/integration/dkim_domains.py %s %s", src, eml, server);
	free(eml);
	return rc;
}

/* Asserts that msg carries exactly two signatures, Ed25519 and RSA, of
 * selectors sel_e and sel_r, and that dkimpy verifies both with the keys
 * the DNS server at server publishes. */
static void assert_signed(struct dom *d, const char *msg, const char *server, const char *sel_e, const char *sel_r)
{
	char *out = NULL;
	int rc = dkimpy(d, msg, server, &out);
	cr_assert_eq(rc, 0, "dkimpy: %s\n--- message ---\n%s", out, msg);
	char want[128];
	snprintf(want, sizeof(want), "a=ed25519-sha256 s=%s pass", sel_e);
	cr_assert(strstr(out, want), "want \"%s\" in: %s", want, out);
	snprintf(want, sizeof(want), "a=rsa-sha256 s=%s pass", sel_r);
	cr_assert(strstr(out, want), "want \"%s\" in: %s", want, out);
	int sigs = 0;
	for (const char *p = out; (p = strstr(p, " pass")); p++)
		sigs++;
	cr_assert_eq(sigs, 2, "%s", out);
	free(out);
}

/* The selector of the key of algorithm alg and state state. */
static const char *selector(const json_t *dj, const char *alg, const char *state)
{
	size_t i;
	json_t *k;
	json_array_foreach(json_object_get(dj, "keys"), i, k)
		if (strcmp(t_str(k, "algorithm"), alg) == 0 && strcmp(t_str(k, "state"), state) == 0)
			return t_str(k, "selector");
	cr_assert_fail("no %s key in state %s", alg, state);
	return NULL;
}

static void zone_lines(const json_t *dj, const char *origin, const char *purposes, const char *states, char *out,
		       size_t outsz);

/* Submits a message from `from` with subject subj over SMTP submission
 * (Python's smtplib, AUTH PLAIN with the admin key: it has the send
 * scope) on port; asserts the 250. */
static void submit_from(struct dom *d, int port, const char *from, const char *subj)
{
	char *out = NULL;
	int rc = th_run(&out,
			"/usr/bin/python3 -c 'import smtplib,sys\n"
			"s = smtplib.SMTP(\"127.0.0.1\", %d, timeout=20)\n"
			"s.login(\"shop\", \"%s\")\n"
			"m = \"From: %s\\r\\nTo: rcpt@inbox.test\\r\\nSubject: %s\\r\\n\\r\\nhello from %s\\r\\n\"\n"
			"print(s.sendmail(\"app@host.test\", [\"rcpt@inbox.test\"], m))\n"
			"s.quit()'",
			port, d->admin, from, subj, subj);
	cr_assert_eq(rc, 0, "smtplib: %s", out ? out : "");
	free(out);
}

Test(domains, signs_with_both_keys)
{
	struct dom d;
	/* SMTP submission too (plaintext AUTH from loopback): its messages
	 * are signed with the same keys as the API's. */
	static char listen[64], cert[600], key[600];
	char *certdir = th_tmpdir("domcert");
	cr_assert_not_null(certdir);
	cr_assert_eq(th_run(NULL, "cd '%s' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
				  "-keyout key.pem -out cert.pem -subj /CN=localhost -days 2 2>/dev/null", certdir), 0);
	int sport = th_free_port();
	snprintf(listen, sizeof(listen), "MAILFERRY_SUBMISSION_LISTEN=127.0.0.1:%d", sport);
	snprintf(cert, sizeof(cert), "MAILFERRY_SUBMISSION_TLS_CERT_FILE=%s/cert.pem", certdir);
	snprintf(key, sizeof(key), "MAILFERRY_SUBMISSION_TLS_KEY_FILE=%s/key.pem", certdir);
	const char *extra[] = { listen, cert, key, "MAILFERRY_SUBMISSION_ALLOW_PLAINTEXT_AUTH=yes", NULL };
	dom_start_env(&d, 1, "any", NULL, extra);
	json_t *dj = NULL;
	cr_assert_eq(dom_call(&d, "POST", "/v1/domains", "{\"domain\":\"Shop.Example.\"}", &dj), 201);
	cr_assert_str_eq(t_str(dj, "domain"), "shop.example");
	cr_assert_str_eq(t_str(dj, "status"), "pending");
	cr_assert(json_is_string(json_object_get(dj, "created_at")));
	cr_assert_eq(count_records(dj, "dkim"), 2);
	cr_assert_eq(count_records(dj, "spf"), 1);
	cr_assert_eq(count_records(dj, "dmarc"), 1);
	cr_assert_eq(count_records(dj, "return_path"), 2, "MX and SPF for bounce_domain");
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(dj, "records"), i, r) {
		const char *v = t_str(r, "value"), *name = t_str(r, "name");
		if (strcmp(t_str(r, "purpose"), "dkim") == 0) {
			cr_assert(strstr(name, "._domainkey.shop.example"), "%s", name);
			cr_assert(strncmp(v, "v=DKIM1; k=ed25519; p=", 22) == 0 || strncmp(v, "v=DKIM1; k=rsa; p=", 18) == 0,
				  "%s", v);
		}
		if (strcmp(t_str(r, "purpose"), "dmarc") == 0) {
			cr_assert_str_eq(name, "_dmarc.shop.example");
			cr_assert(strncmp(v, "v=DMARC1; p=none; rua=mailto:", 29) == 0, "%s", v);
		}
		if (strcmp(t_str(r, "type"), "MX") == 0)
			cr_assert_str_eq(name, "bounces.relay.test");
	}
	/* RFC 8463 §4: the Ed25519 p= is the raw 32-byte key. */
	json_array_foreach(json_object_get(dj, "records"), i, r) {
		const char *v = t_str(r, "value");
		if (strncmp(v, "v=DKIM1; k=ed25519; p=", 22) == 0) {
			unsigned char raw[64];
			cr_assert_eq(base64_decode(v + 22, strlen(v + 22), raw, sizeof(raw), 0), 32, "%s", v);
		}
	}
	/* NSD serves the DKIM records, for dkimpy. */
	static char zone[16384];
	zone[0] = '\0';
	zone_lines(dj, "example", "dkim", "active", zone, sizeof(zone));
	struct th_dns_zone zones[] = { { "example", zone } };
	struct th_dns *dns = th_dns_start(zones, 1);
	cr_assert_not_null(dns, "NSD did not start (deploy/bootstrap.sh test installs nsd)");
	char sel_e[64], sel_r[64];
	snprintf(sel_e, sizeof(sel_e), "%s", selector(dj, "ed25519", "active"));
	snprintf(sel_r, sizeof(sel_r), "%s", selector(dj, "rsa", "active"));

	/* A subdomain without its own registration signs with the parent's keys. */
	send_from(&d, "News <news@mail.shop.example>", "first");
	char *m = delivered(&d, 1, "first");
	cr_assert(strstr(m, "d=shop.example;"), "%s", m);
	assert_signed(&d, m, th_dns_servers(dns), sel_e, sel_r);
	free(m);
	/* The same over SMTP submission. */
	submit_from(&d, sport, "News <news@mail.shop.example>", "bysmtp");
	m = delivered(&d, 2, "bysmtp");
	cr_assert(strstr(m, "d=shop.example;"), "%s", m);
	assert_signed(&d, m, th_dns_servers(dns), sel_e, sel_r);
	free(m);
	th_rmrf(certdir);
	free(certdir);

	/* The rest of the API. */
	json_t *j = NULL;
	cr_assert_eq(dom_call(&d, "POST", "/v1/domains", "{\"domain\":\"shop.example\"}", &j), 409);
	cr_assert_str_eq(t_str(j, "code"), "domain_exists");
	json_decref(j);
	const char *bad[] = { "{\"domain\":\"nodot\"}", "{\"domain\":\"-bad.example\"}", "{\"domain\":\"a b.example\"}",
			      "{\"domain\":42}", "{}", "{\"domain\":\"ok.example\",\"x\":1}" };
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		cr_assert_eq(dom_call(&d, "POST", "/v1/domains", bad[k], &j), 422, "%s", bad[k]);
		cr_assert_str_eq(t_str(j, "code"), "validation_failed");
		json_t *e0 = json_array_get(json_object_get(j, "errors"), 0);
		cr_assert(strcmp(t_str(e0, "field"), "domain") == 0 || strcmp(t_str(e0, "field"), "x") == 0, "%s", bad[k]);
		json_decref(j);
	}
	cr_assert_eq(dom_call(&d, "GET", "/v1/domains", NULL, &j), 200);
	cr_assert_eq(json_array_size(json_object_get(j, "data")), 1);
	json_decref(j);
	cr_assert_eq(dom_call(&d, "GET", "/v1/domains/shop.example", NULL, &j), 200);
	cr_assert_str_eq(t_str(j, "domain"), "shop.example");
	json_decref(j);
	cr_assert_eq(dom_call(&d, "GET", "/v1/domains/none.example", NULL, &j), 404);
	json_decref(j);
	/* The send key has no admin scope. */
	struct th_http hr;
	cr_assert_eq(api_call(&d.s, "GET", "/v1/domains", NULL, NULL, NULL, &hr), 0);
	cr_assert_eq(hr.status, 403, "%ld %s", hr.status, hr.body);
	th_http_free(&hr);
	cr_assert_eq(dom_call(&d, "DELETE", "/v1/domains/shop.example", NULL, NULL), 204);
	cr_assert_eq(dom_call(&d, "DELETE", "/v1/domains/shop.example", NULL, &j), 404);
	json_decref(j);
	cr_assert_eq(t_count(d.s.db, "SELECT count(*) FROM domain_keys"), 0);

	json_decref(dj);
	dom_stop(&d);
	th_dns_stop(dns);
}

Test(domains, sender_policy_verified)
{
	struct dom d;
	dom_start(&d, 0, "verified");
	json_t *j = NULL;
	cr_assert_eq(dom_call(&d, "POST", "/v1/domains", "{\"domain\":\"shop.example\"}", &j), 503);
	cr_assert_str_eq(t_str(j, "code"), "master_key_missing");
	json_decref(j);
	const char *body = "{\"from\":\"app@unknown.example\",\"to\":\"rcpt@inbox.test\",\"subject\":\"s\",\"text\":\"x\"}";
	struct th_http r;
	cr_assert_eq(api_call(&d.s, "POST", "/v1/messages", NULL, NULL, body, &r), 0);
	cr_assert_eq(r.status, 422, "%ld %s", r.status, r.body);
	j = t_json(&r);
	cr_assert_str_eq(t_str(j, "code"), "domain_not_verified");
	json_t *e0 = json_array_get(json_object_get(j, "errors"), 0);
	cr_assert_str_eq(t_str(e0, "field"), "from");
	cr_assert_str_eq(t_str(e0, "code"), "domain_not_verified");
	json_decref(j);
	th_http_free(&r);
	/* Registered but pending is refused too (whether or not the cache has
	 * seen the row yet: either way the domain is not verified). */
	free(th_sql(d.s.db, "INSERT INTO domains (domain) VALUES ('pending.example')"));
	const char *pbody = "{\"from\":\"app@pending.example\",\"to\":\"rcpt@inbox.test\",\"subject\":\"s\",\"text\":\"x\"}";
	cr_assert_eq(api_call(&d.s, "POST", "/v1/messages", NULL, NULL, pbody, &r), 0);
	cr_assert_eq(r.status, 422, "%ld %s", r.status, r.body);
	th_http_free(&r);
	/* In a batch, the item is named. */
	char batch[512];
	snprintf(batch, sizeof(batch), "{\"messages\":[%s]}", body);
	cr_assert_eq(api_call(&d.s, "POST", "/v1/messages/batch", NULL, NULL, batch, &r), 0);
	cr_assert_eq(r.status, 422, "%ld %s", r.status, r.body);
	cr_assert(strstr(r.body, "\"domain_not_verified\""), "%s", r.body);
	th_http_free(&r);
	cr_assert_eq(t_count(d.s.db, "SELECT count(*) FROM messages"), 0);
	dom_stop(&d);
}

/* The base64 of the PKCS#8 DER of every private key, decrypted from the
 * database with the master key. */
static json_t *private_keys(struct dom *d)
{
	unsigned char mk[DKIM_MASTER_KEY_LEN];
	char err[256];
	cr_assert_eq(dkim_master_key_load(d->mk, mk, err, sizeof(err)), 0, "%s", err);
	char *rows = th_sql(d->s.db, "SELECT string_agg(domain || '/' || selector || ' ' || encode(private_key, 'base64'),"
				     " '|') FROM domain_keys");
	cr_assert_not_null(rows);
	json_t *out = json_array();
	char *save = NULL;
	for (char *row = strtok_r(rows, "|", &save); row; row = strtok_r(NULL, "|", &save)) {
		char *sp = strchr(row, ' ');
		cr_assert_not_null(sp);
		*sp = '\0';
		unsigned char sealed[8192];
		long n = base64_decode(sp + 1, strlen(sp + 1), sealed, sizeof(sealed), B64_SKIP_SPACE);
		cr_assert_gt(n, 0);
		struct buf der, b64;
		buf_init(&der, 8192);
		buf_init(&b64, 16384);
		cr_assert_eq(dkim_key_open(mk, row, sealed, (size_t)n, &der, err, sizeof(err)), 0, "%s: %s", row, err);
		cr_assert_eq(base64_encode_buf(&b64, der.data, der.len, 0), 0);
		json_array_append_new(out, json_string(buf_cstr(&b64)));
		buf_cleanup(&der);
		buf_cleanup(&b64);
	}
	free(rows);
	return out;
}

Test(domains, private_keys_never_leave)
{
	struct dom d;
	dom_start(&d, 1, "any");
	json_t *j = NULL;
	cr_assert_eq(dom_call(&d, "POST", "/v1/domains", "{\"domain\":\"keys.example\"}", &j), 201);
	json_decref(j);
	cr_assert_eq(dom_call(&d, "POST", "/v1/domains", "{\"domain\":\"other.example\"}", &j), 201);
	json_decref(j);
	cr_assert_eq(dom_call(&d, "POST", "/v1/domains/keys.example/rotate", NULL, &j), 200);
	json_decref(j);
	cr_assert_eq(dom_call(&d, "GET", "/v1/domains", NULL, &j), 200);
	json_decref(j);
	cr_assert_eq(dom_call(&d, "GET", "/v1/domains/keys.example", NULL, &j), 200);
	json_decref(j);
	/* The command line, over the same API: zone-file lines, --json. */
	char *out = NULL;
	cr_assert_eq(th_run(&out, "%s domains add CLI.example --api %s --key %s", th_bin(), d.s.base, d.admin), 0, "%s", out);
	cr_assert(strstr(out, "._domainkey.cli.example.\t3600\tIN\tTXT\t\"v=DKIM1; k=ed25519; p="), "%s", out);
	cr_assert(strstr(out, "IN\tTXT\t( \"v=DKIM1; k=rsa; p="), "an RSA value is split in strings: %s", out);
	cr_assert(strstr(out, "_dmarc.cli.example.\t3600\tIN\tTXT\t\"v=DMARC1; p=none;"), "%s", out);
	cr_assert(strstr(out, "bounces.relay.test.\t3600\tIN\tMX\t10 relay.test."), "%s", out);
	json_array_append_new(d.answers, json_string(out));
	free(out);
	cr_assert_eq(th_run(&out, "%s domains rotate cli.example --json --api %s --key %s", th_bin(), d.s.base, d.admin), 0,
		     "%s", out);
	cr_assert(strstr(out, "\"key_state\":\"pending\""), "%s", out);
	json_array_append_new(d.answers, json_string(out));
	free(out);
	cr_assert_eq(th_run(&out, "%s domains list --api %s --key %s", th_bin(), d.s.base, d.admin), 0, "%s", out);
	cr_assert(strstr(out, "cli.example") && strstr(out, "pending"), "%s", out);
	json_array_append_new(d.answers, json_string(out));
	free(out);
	cr_assert_eq(th_run(&out, "%s domains show none.example --api %s --key %s", th_bin(), d.s.base, d.admin), 1);
	cr_assert(strstr(out, "not_found"), "%s", out);
	free(out);
	cr_assert_eq(th_run(&out, "%s domains add 'bad domain' --api %s --key %s", th_bin(), d.s.base, d.admin), 1);
	cr_assert(strstr(out, "domain: "), "the field is named: %s", out);
	free(out);
	cr_assert_eq(th_run(&out, "%s domains --help", th_bin()), 0);
	cr_assert(strstr(out, "usage: mailferry domains add DOMAIN"), "%s", out);
	free(out);
	cr_assert_eq(th_run(&out, "%s domains show --api %s --key %s", th_bin(), d.s.base, d.admin), 2);
	free(out);
	cr_assert_eq(th_run(&out, "%s domains remove other.example --api %s --key %s", th_bin(), d.s.base, d.admin), 0);
	cr_assert(strstr(out, "removed other.example"), "%s", out);
	free(out);
	send_from(&d, "app@keys.example", "keys");
	cr_assert_eq(th_sink_wait(d.sink, 1, 20000), 1);
	json_t *keys = private_keys(&d);
	cr_assert_eq(json_array_size(keys), 8, "two generations of keys.example and cli.example (other.example removed)");
	char *log = NULL;
	cr_assert_eq(th_run(&log, "cat '%s'", d.s.p->log), 0);
	cr_assert(strstr(log, "event=domain_added") || strstr(log, "domain_added"), "the log is the daemon's");
	size_t i, k;
	json_t *key, *ans;
	json_array_foreach(keys, i, key) {
		/* Any 40 characters of the key's base64 would give it away. */
		const char *b = json_string_value(key);
		size_t n = strlen(b);
		for (size_t off = 0; off + 40 <= n; off += 20) {
			char piece[41];
			memcpy(piece, b + off, 40);
			piece[40] = '\0';
			json_array_foreach(d.answers, k, ans)
				cr_assert_null(strstr(json_string_value(ans), piece), "an API answer holds a private key");
			cr_assert_null(strstr(log, piece), "the log holds a private key");
		}
	}
	cr_assert_gt(json_array_size(d.answers), 4);
	free(log);
	json_decref(keys);
	dom_stop(&d);
}

/* The records of dj under origin as zone-file lines (names relative, TXT
 * split in 255-octet strings); only those whose purpose is in purposes
 * (a comma-separated list) and, for dkim, whose key state is in states. */
static void zone_lines(const json_t *dj, const char *origin, const char *purposes, const char *states, char *out,
		       size_t outsz)
{
	size_t o = strlen(out), i;
	json_t *r;
	json_array_foreach(json_object_get(dj, "records"), i, r) {
		const char *name = t_str(r, "name"), *v = t_str(r, "value"), *st = t_str(r, "key_state");
		size_t nl = strlen(name), ol = strlen(origin);
		if (!strstr(purposes, t_str(r, "purpose")) || (st && !strstr(states, st)))
			continue;
		if (nl < ol || strcmp(name + nl - ol, origin) != 0)
			continue;
		char rel[300];
		if (nl == ol)
			snprintf(rel, sizeof(rel), "@");
		else
			snprintf(rel, sizeof(rel), "%.*s", (int)(nl - ol - 1), name);
		o += (size_t)snprintf(out + o, outsz - o, "%s IN %s ", rel, t_str(r, "type"));
		if (strcmp(t_str(r, "type"), "TXT") == 0) {
			for (size_t k = 0, n = strlen(v); k < n; k += 255)
				o += (size_t)snprintf(out + o, outsz - o, "\"%.*s\" ", (int)(n - k < 255 ? n - k : 255), v + k);
		} else {
			o += (size_t)snprintf(out + o, outsz - o, "%s", v);
		}
		o += (size_t)snprintf(out + o, outsz - o, "\n");
		cr_assert_lt(o, outsz);
	}
}

/* The check of the record named name of purpose p with key algorithm alg ("" any). */
static const json_t *check_of(const json_t *dj, const char *name_part, const char *value_part)
{
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(dj, "checks"), i, c)
		if (strstr(t_str(c, "name"), name_part) && strstr(t_str(c, "value"), value_part))
			return c;
	cr_assert_fail("no check for %s %s", name_part, value_part);
	return NULL;
}

/* th_dns_set_zone(), again when NSD missed the reload signal (a SIGHUP
 * that arrives while the previous reload finishes is dropped); bounded. */
static int set_zone(struct th_dns *dns, const char *origin, const char *records)
{
	for (int tries = 0; tries < 4; tries++)
		if (th_dns_set_zone(dns, origin, records) == 0)
			return 0;
	return -1;
}

Test(domains, verify_against_nsd)
{
	/* One zone, test., holds every name: one reload per change. */
	struct th_dns_zone zones[] = { { "test", "" } };
	struct th_dns *dns = th_dns_start(zones, 1);
	cr_assert_not_null(dns, "NSD did not start (deploy/bootstrap.sh test installs nsd)");
	struct dom d;
	dom_start_dns(&d, 1, "verified", th_dns_servers(dns));
	json_t *dj = NULL, *bj = NULL, *j = NULL;
	cr_assert_eq(dom_call(&d, "POST", "/v1/domains", "{\"domain\":\"vfy.test\"}", &dj), 201);
	cr_assert_eq(dom_call(&d, "POST", "/v1/domains", "{\"domain\":\"bad.test\"}", &bj), 201);
	/* Pending: sender_policy = verified refuses it. */
	const char *body = "{\"from\":\"app@vfy.test\",\"to\":\"rcpt@inbox.test\",\"subject\":\"s\",\"text\":\"x\"}";
	struct th_http r;
	cr_assert_eq(api_call(&d.s, "POST", "/v1/messages", NULL, NULL, body, &r), 0);
	cr_assert_eq(r.status, 422, "%ld %s", r.status, r.body);
	cr_assert(strstr(r.body, "domain_not_verified"), "%s", r.body);
	th_http_free(&r);

	/* vfy.test publishes everything; bad.test its RSA value under the
	 * Ed25519 selector and nothing for the RSA one. */
	static char zone[65536];
	zone[0] = '\0';
	zone_lines(dj, "test", "dkim,spf,dmarc,return_path", "active", zone, sizeof(zone));
	size_t zl = strlen(zone);
	snprintf(zone + zl, sizeof(zone) - zl,
		 "%s._domainkey.bad IN TXT \"v=DKIM1; k=ed25519; p=AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"\n"
		 /* a byte that is not UTF-8: reported as U+FFFD, the checks still stored */
		 "_dmarc.bad IN TXT \"v=DMARC1; p=none; \\255\"\n",
		 selector(bj, "ed25519", "active"));
	cr_assert_eq(set_zone(dns, "test", zone), 0, "zone:\n%s", zone);

	cr_assert_eq(dom_call(&d, "POST", "/v1/domains/vfy.test/verify", NULL, &j), 200);
	cr_assert_str_eq(t_str(j, "status"), "verified", "%s", json_dumps(j, 0));
	cr_assert(json_is_string(json_object_get(j, "verified_at")));
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(j, "checks"), i, c)
		cr_assert(json_is_true(json_object_get(c, "matches")), "%s %s does not match", t_str(c, "type"), t_str(c, "name"));
	json_decref(j);
	cr_assert_eq(dom_call(&d, "POST", "/v1/domains/bad.test/verify", NULL, &j), 200);
	cr_assert_str_eq(t_str(j, "status"), "failed");
	const json_t *ce = check_of(j, "-e._domainkey.bad.test", "k=ed25519");
	cr_assert(json_is_true(json_object_get(ce, "found")));
	cr_assert(json_is_false(json_object_get(ce, "matches")));
	cr_assert_eq(json_array_size(json_object_get(ce, "seen")), 1);
	const json_t *cr = check_of(j, "-r._domainkey.bad.test", "k=rsa");
	cr_assert(json_is_false(json_object_get(cr, "found")));
	cr_assert(json_is_false(json_object_get(cr, "matches")));
	const json_t *cd = check_of(j, "_dmarc.bad.test", "DMARC1");
	cr_assert(json_is_true(json_object_get(cd, "found")));
	const char *seen = json_string_value(json_array_get(json_object_get(cd, "seen"), 0));
	cr_assert(seen && strstr(seen, "p=none; \xef\xbf\xbd"), "%s", seen ? seen : "(none)");
	json_decref(j);
	cr_assert_eq(t_count(d.s.db, "SELECT count(*) FROM events WHERE type = 'domain.verified'"
				     " AND payload->'data'->>'domain' = 'vfy.test'"), 1);
	cr_assert_eq(t_count(d.s.db, "SELECT count(*) FROM events WHERE type = 'domain.verification_failed'"
				     " AND payload->'data'->>'domain' = 'bad.test'"), 1);
	/* Verified, it may send (the process dropped its cache on verify). */
	send_from(&d, "app@vfy.test", "verified");
	char old_e[64], old_r[64];
	snprintf(old_e, sizeof(old_e), "%s", selector(dj, "ed25519", "active"));
	snprintf(old_r, sizeof(old_r), "%s", selector(dj, "rsa", "active"));
	char *m = delivered(&d, 1, "verified");
	assert_signed(&d, m, th_dns_servers(dns), old_e, old_r);
	free(m);

	/* Rotate: the new keys are pending until DNS has them. */
	json_decref(dj);
	cr_assert_eq(dom_call(&d, "POST", "/v1/domains/vfy.test/rotate", NULL, &dj), 200);
	char new_e[64], new_r[64];
	snprintf(new_e, sizeof(new_e), "%s", selector(dj, "ed25519", "pending"));
	snprintf(new_r, sizeof(new_r), "%s", selector(dj, "rsa", "pending"));
	cr_assert_eq(dom_call(&d, "POST", "/v1/domains/vfy.test/verify", NULL, &j), 200);
	cr_assert_str_eq(t_str(j, "status"), "verified", "the active keys still match");
	cr_assert_str_eq(selector(j, "ed25519", "active"), old_e, "not promoted before DNS has the new keys");
	json_decref(j);
	send_from(&d, "app@vfy.test", "rotating");
	m = delivered(&d, 2, "rotating");
	assert_signed(&d, m, th_dns_servers(dns), old_e, old_r);
	free(m);
	/* Both generations published: verify switches the signing keys. */
	zone[0] = '\0';
	zone_lines(dj, "test", "dkim,spf,dmarc,return_path", "active,pending", zone, sizeof(zone));
	cr_assert_eq(set_zone(dns, "test", zone), 0);
	json_decref(dj);
	cr_assert_eq(dom_call(&d, "POST", "/v1/domains/vfy.test/verify", NULL, &dj), 200);
	cr_assert_str_eq(selector(dj, "ed25519", "active"), new_e);
	cr_assert_str_eq(selector(dj, "rsa", "active"), new_r);
	cr_assert_str_eq(selector(dj, "ed25519", "retiring"), old_e, "the old keys stay published");
	cr_assert_eq(count_records(dj, "dkim"), 4);
	send_from(&d, "app@vfy.test", "rotated");
	m = delivered(&d, 3, "rotated");
	assert_signed(&d, m, th_dns_servers(dns), new_e, new_r);
	free(m);
	json_decref(dj);
	json_decref(bj);
	dom_stop(&d);
	th_dns_stop(dns);
}

/* One value of a query about a domain (its name in %s). */
static char *dom_sql(struct dom *d, const char *fmt, const char *domain)
{
	char sql[512];
	snprintf(sql, sizeof(sql), fmt, domain);
	char *v = th_sql(d->s.db, sql);
	cr_assert_not_null(v, "%s", sql);
	return v;
}

/* Waits (bounded) until the query about domain answers want. */
static void dom_wait(struct dom *d, const char *fmt, const char *domain, const char *want, const char *what)
{
	char sql[512], last[256] = "";
	snprintf(sql, sizeof(sql), fmt, domain);
	cr_assert_eq(th_sql_wait(d->s.db, sql, want, 15000, last, sizeof(last)), 0, "%s: %s is %s, not %s", domain,
		     what, last, want);
}

Test(domains, recheck_by_housekeeper)
{
	struct th_dns_zone zones[] = { { "test", "" } };
	struct th_dns *dns = th_dns_start(zones, 1);
	cr_assert_not_null(dns, "NSD did not start (deploy/bootstrap.sh test installs nsd)");
	struct th_receiver *rx = th_receiver_start("200");
	cr_assert_not_null(rx);
	struct dom d;
	const char *extra[] = { "MAILFERRY_ROLES=api,delivery,webhooks", "MAILFERRY_WEBHOOK_ALLOW_PRIVATE=yes",
				"MAILFERRY_DOMAIN_RECHECK_INTERVAL=1s", NULL };
	dom_start_env(&d, 1, "any", th_dns_servers(dns), extra);
	char hook[256];
	snprintf(hook, sizeof(hook), "{\"url\":\"http://127.0.0.1:%d/hook\",\"events\":[\"domain.verification_failed\"]}",
		 th_receiver_port(rx));
	json_t *kj = NULL, *gj = NULL, *j = NULL;
	cr_assert_eq(dom_call(&d, "POST", "/v1/webhooks", hook, &j), 201, "an endpoint may subscribe to domain events");
	th_receiver_set_secrets(rx, t_str(j, "secret"), NULL);
	json_decref(j);
	cr_assert_eq(dom_call(&d, "POST", "/v1/domains", "{\"domain\":\"keep.test\"}", &kj), 201);
	cr_assert_eq(dom_call(&d, "POST", "/v1/domains", "{\"domain\":\"gone.test\"}", &gj), 201);
	static char zone[65536], keep[32768];
	keep[0] = '\0';
	zone_lines(kj, "test", "dkim,spf,dmarc,return_path", "active", keep, sizeof(keep));
	snprintf(zone, sizeof(zone), "%s", keep);
	zone_lines(gj, "test", "dkim", "active", zone, sizeof(zone));
	cr_assert_eq(set_zone(dns, "test", zone), 0, "zone:\n%s", zone);
	/* Verified once through the API; from then on only the housekeeper. */
	cr_assert_eq(dom_call(&d, "POST", "/v1/domains/keep.test/verify", NULL, &j), 200);
	cr_assert_str_eq(t_str(j, "status"), "verified");
	json_decref(j);
	cr_assert_eq(dom_call(&d, "POST", "/v1/domains/gone.test/verify", NULL, &j), 200);
	cr_assert_str_eq(t_str(j, "status"), "verified");
	json_decref(j);

	/* Records intact: still verified, checked_at advances. */
	char *t0 = dom_sql(&d, "SELECT checked_at FROM domains WHERE domain = '%s'", "keep.test");
	char fmt[512];
	snprintf(fmt, sizeof(fmt), "SELECT status || ' ' || (checked_at > '%s') FROM domains WHERE domain = '%%s'", t0);
	dom_wait(&d, fmt, "keep.test", "verified true", "status and checked_at > its verify's");
	free(t0);

	/* gone.test's DKIM records disappear: failed, with its event and webhook. */
	cr_assert_eq(set_zone(dns, "test", keep), 0);
	dom_wait(&d, "SELECT status FROM domains WHERE domain = '%s'", "gone.test", "failed", "status");
	cr_assert_eq(t_count(d.s.db, "SELECT count(*) FROM events WHERE type = 'domain.verification_failed'"
				     " AND payload->'data'->>'domain' = 'gone.test'"), 1);
	cr_assert_geq(th_receiver_wait_ok(rx, 1, 15000), 0, "the webhook did not get the event");
	char *body = th_receiver_last_body(rx);
	cr_assert(strstr(body, "\"domain.verification_failed\"") && strstr(body, "\"gone.test\""), "%s", body);
	cr_assert(strstr(body, "\"matches\": false") || strstr(body, "\"matches\":false"), "the checks: %s", body);
	free(body);
	cr_assert_eq(th_receiver_bad(rx), 0, "a webhook signature did not verify");
	char *ks = dom_sql(&d, "SELECT status FROM domains WHERE domain = '%s'", "keep.test");
	cr_assert_str_eq(ks, "verified");
	free(ks);
	cr_assert_eq(dom_call(&d, "GET", "/v1/domains/gone.test", NULL, &j), 200);
	cr_assert_str_eq(t_str(j, "status"), "failed");
	/* The re-check that failed it may have run while NSD was reloading
	 * (it runs every second here): its lookups, made in parallel, can
	 * straddle the change, so at least one DKIM record, not necessarily
	 * both, was seen gone. */
	const json_t *ce = check_of(j, "-e._domainkey.gone.test", "k=ed25519");
	const json_t *cr = check_of(j, "-r._domainkey.gone.test", "k=rsa");
	const json_t *gone = json_is_false(json_object_get(ce, "found")) ? ce : cr;
	cr_assert(json_is_false(json_object_get(gone, "found")), "neither DKIM record was seen gone");
	cr_assert_str_eq(t_str(gone, "lookup"), "nxdomain");
	json_decref(j);

	/* A rotation's keys, once published, take over at a re-check. */
	json_decref(kj);
	cr_assert_eq(dom_call(&d, "POST", "/v1/domains/keep.test/rotate", NULL, &kj), 200);
	char old_e[64], new_e[64];
	snprintf(old_e, sizeof(old_e), "%s", selector(kj, "ed25519", "active"));
	snprintf(new_e, sizeof(new_e), "%s", selector(kj, "ed25519", "pending"));
	keep[0] = '\0';
	zone_lines(kj, "test", "dkim,spf,dmarc,return_path", "active,pending", keep, sizeof(keep));
	cr_assert_eq(set_zone(dns, "test", keep), 0);
	dom_wait(&d, "SELECT string_agg(state, ',' ORDER BY id) FROM domain_keys WHERE domain = '%s'", "keep.test",
		 "retiring,retiring,active,active", "the key states");
	/* Past retire_after, the old keys are retired by the housekeeper and
	 * leave records. */
	free(th_sql(d.s.db, "UPDATE domain_keys SET retire_after = now() - interval '1 second' WHERE state = 'retiring'"));
	dom_wait(&d, "SELECT string_agg(state, ',' ORDER BY id) FROM domain_keys WHERE domain = '%s'", "keep.test",
		 "retired,retired,active,active", "the key states");
	cr_assert_eq(dom_call(&d, "GET", "/v1/domains/keep.test", NULL, &j), 200);
	cr_assert_eq(count_records(j, "dkim"), 2);
	cr_assert_str_eq(selector(j, "ed25519", "active"), new_e);
	/* (checks may still hold it until the next re-check: they are the
	 * last lookups'.) */
	char *dump = json_dumps(json_object_get(j, "records"), 0);
	cr_assert_null(strstr(dump, old_e), "the retired selector is gone from records: %s", dump);
	free(dump);
	dump = json_dumps(json_object_get(j, "keys"), 0);
	cr_assert_null(strstr(dump, old_e), "the retired selector is gone from keys: %s", dump);
	free(dump);
	cr_assert_str_eq(t_str(j, "status"), "verified");
	json_decref(j);
	char *log = NULL;
	cr_assert_eq(th_run(&log, "grep -c 'domain_key_retired' '%s'", d.s.p->log), 0);
	free(log);

	json_decref(kj);
	json_decref(gj);
	dom_stop(&d);
	th_receiver_free(rx);
	th_dns_stop(dns);
}
