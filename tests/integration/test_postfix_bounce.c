/*
 * End to end with a real Postfix as the receiving MTA: a throwaway Postfix
 * (tests/integration/postfix_bounce.sh) accepts a message for an unknown
 * local user, local(8) bounces it, and its DSN travels back over SMTP to
 * mailferry's bounce listener (transport map -> bounce_listen) addressed
 * to the recipient's VERP return path.  The recipient must go delivered ->
 * bounced (bad_mailbox) and the address land on the suppression list.
 * The first test injects with swaks (the bounce half alone); the second
 * sends through the API and mailferry's delivery role.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/db.h"
#include "db/settings.h"
#include "harness.h"
#include "relay/verp.h"

#define MSGUUID "0193f7a2-6c1e-7d40-9a1b-2c3d4e5f6aee"
#define BDOMAIN "bounces.shop.example"

Test(postfix_e2e, unknown_user_bounces_to_the_listener)
{
	char *o = NULL;
	if (th_run(&o, "command -v postfix && command -v swaks") != 0) {
		free(o);
		cr_skip_test("postfix or swaks not installed");
	}
	free(o);
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	int bport = th_free_port(), in_port = th_free_port();
	char benv[64];
	snprintf(benv, sizeof(benv), "MAILFERRY_BOUNCE_LISTEN=127.0.0.1:%d", bport);
	const char *env[] = { "MAILFERRY_BOUNCE_DOMAIN=" BDOMAIN, benv, "MAILFERRY_ROLES=api,bounces", NULL };
	struct th_proc *p = th_serve_start(url, env);
	cr_assert_not_null(p);

	free(th_sql(url, "INSERT INTO messages (id, mail_from, from_header, message_id_hdr, size, status)"
			 " VALUES ('" MSGUUID "', 'orders@shop.example', 'orders@shop.example', '" MSGUUID "@shop.example',"
			 " 10, 'delivered')"));
	char *rid = th_sql(url, "INSERT INTO recipients (message_id, position, email, domain, kind, status, attempts)"
				" VALUES ('" MSGUUID "', 0, 'nosuchuser@rcpt.localhost', 'rcpt.localhost', 'to', 'delivered', 1)"
				" RETURNING id");
	cr_assert_not_null(rid);
	struct db_pool *pool = db_pool_new(url, 1);
	unsigned char key[VERP_KEY_LEN];
	char err[256], verp[128];
	cr_assert_eq(db_settings_secret(pool, DB_SETTING_VERP_KEY, key, sizeof(key), err, sizeof(err)), 0, "%s", err);
	db_pool_free(pool);
	cr_assert_eq(verp_encode(key, strtoll(rid, NULL, 10), BDOMAIN, verp, sizeof(verp)), 0);

	char *dir = th_tmpdir("pfbounce");
	cr_assert_not_null(dir);
	const char *src = getenv("MAILFERRY_TEST_SRCDIR");
	int rc = th_run(&o, "%s/tests/integration/postfix_bounce.sh start '%s' %d %s %d", src ? src : ".", dir, in_port,
			BDOMAIN, bport);
	cr_assert_eq(rc, 0, "postfix: %s", o);
	free(o);
	rc = th_run(&o, "swaks --server 127.0.0.1:%d --from '%s' --to nosuchuser@rcpt.localhost"
			" --header 'Message-ID: <" MSGUUID "@shop.example>' --header 'Subject: Your order' --body 'hello'",
		    in_port, verp);
	cr_expect_eq(rc, 0, "swaks: %s", o);
	free(o);

	char *st = NULL;
	for (int i = 0; i < 300; i++) {
		free(st);
		st = th_sql(url, "SELECT status FROM recipients");
		if (st && strcmp(st, "bounced") == 0)
			break;
		usleep(100 * 1000);
	}
	if (st == NULL || strcmp(st, "bounced") != 0) {
		th_run(&o, "cat /var/log/mailferry-test-postfix-%d.log; tail -30 '%s'", in_port, p->log);
		cr_log_error("postfix log + serve log:\n%s", o);
		free(o);
	}
	cr_expect_str_eq(st, "bounced");
	free(st);
	char *v = th_sql(url, "SELECT concat_ws('|', bounce_type, bounce_category, last_enhanced) FROM recipients");
	cr_expect_str_eq(v, "permanent|bad_mailbox|5.1.1");
	free(v);
	v = th_sql(url, "SELECT reason || '|' || message_id FROM suppressions WHERE email = 'nosuchuser@rcpt.localhost'");
	cr_expect_str_eq(v, "bounce|" MSGUUID);
	free(v);
	v = th_sql(url, "SELECT source || '|' || outcome || '|' || (mail_from = '') FROM bounces_raw");
	cr_expect_str_eq(v, "smtp|bounced|true");
	free(v);
	v = th_sql(url, "SELECT payload->'data'->'dsn'->>'matched_by' FROM events WHERE type = 'message.bounced'");
	cr_expect_str_eq(v, "verp");
	free(v);

	th_run(NULL, "%s/tests/integration/postfix_bounce.sh stop '%s'", src ? src : ".", dir);
	th_rmrf(dir);
	free(dir);
	free(rid);
	cr_expect_eq(th_proc_stop(p, 5000), 0);
	th_proc_free(p);
	th_db_drop(url);
	free(url);
}

static long count_lines(const char *path, const char *needle)
{
	char *o = NULL;
	th_run(&o, "grep -c '%s' '%s' || true", needle, path);
	long n = o ? strtol(o, NULL, 10) : -1;
	free(o);
	return n;
}

/*
 * The whole loop through the API: mailferry delivers to Postfix (route),
 * Postfix accepts (250: delivered), then bounces the unknown user to the
 * VERP return path; the recipient goes delivered -> bounced, the address
 * is suppressed, and a second send is suppressed without any SMTP.
 */
Test(postfix_e2e, api_send_delivered_then_bounced_then_suppressed)
{
	char *o = NULL;
	if (th_run(&o, "command -v postfix") != 0) {
		free(o);
		cr_skip_test("postfix not installed");
	}
	free(o);
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	cr_assert_eq(th_run(&o, "MAILFERRY_DATABASE_URL='%s' %s keys create --name e2e --scopes send,read --json", url,
			    th_bin()), 0, "%s", o);
	char key[128] = "", auth[200];
	char *k = strstr(o, "\"key\":\"");
	cr_assert_not_null(k, "%s", o);
	sscanf(k + 7, "%127[^\"]", key);
	free(o);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);

	int bport = th_free_port(), in_port = th_free_port();
	char benv[64], renv[96];
	snprintf(benv, sizeof(benv), "MAILFERRY_BOUNCE_LISTEN=127.0.0.1:%d", bport);
	snprintf(renv, sizeof(renv), "MAILFERRY_ROUTES=rcpt.localhost=127.0.0.1:%d", in_port);
	const char *env[] = { "MAILFERRY_BOUNCE_DOMAIN=" BDOMAIN, benv, renv, "MAILFERRY_ROLES=api,delivery,bounces", NULL };
	char *dir = th_tmpdir("pfapi");
	cr_assert_not_null(dir);
	const char *src = getenv("MAILFERRY_TEST_SRCDIR");
	int rc = th_run(&o, "%s/tests/integration/postfix_bounce.sh start '%s' %d %s %d", src ? src : ".", dir, in_port,
			BDOMAIN, bport);
	cr_assert_eq(rc, 0, "postfix: %s", o);
	free(o);
	struct th_proc *p = th_serve_start(url, env);
	cr_assert_not_null(p);

	char u[128];
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/v1/messages", p->port);
	const char *h[] = { auth, "Content-Type: application/json", NULL };
	static const char body[] = "{\"from\":\"Shop <orders@shop.example>\",\"to\":\"nosuchuser@rcpt.localhost\","
				   "\"subject\":\"Your order\",\"text\":\"Thank you.\"}";
	struct th_http r;
	cr_assert_eq(th_http("POST", u, h, body, &r), 0);
	cr_assert_eq(r.status, 202, "%s", r.body);
	th_http_free(&r);

	char *st = NULL;
	for (int i = 0; i < 300; i++) { /* at most 30 s */
		free(st);
		st = th_sql(url, "SELECT status FROM recipients");
		if (st && strcmp(st, "bounced") == 0)
			break;
		usleep(100 * 1000);
	}
	char log[128];
	snprintf(log, sizeof(log), "/var/log/mailferry-test-postfix-%d.log", in_port);
	if (st == NULL || strcmp(st, "bounced") != 0) {
		th_run(&o, "cat %s; tail -40 '%s'", log, p->log);
		cr_log_error("postfix log + serve log:\n%s", o);
		free(o);
	}
	cr_expect_str_eq(st, "bounced");
	free(st);
	char *v = th_sql(url, "SELECT string_agg(type, ',' ORDER BY id) FROM events WHERE recipient_id IS NOT NULL");
	cr_expect_str_eq(v, "message.queued,message.delivered,message.bounced");
	free(v);
	v = th_sql(url, "SELECT concat_ws('|', bounce_type, bounce_category, last_enhanced) FROM recipients");
	cr_expect_str_eq(v, "permanent|bad_mailbox|5.1.1");
	free(v);
	v = th_sql(url, "SELECT reason FROM suppressions WHERE email = 'nosuchuser@rcpt.localhost'");
	cr_expect_str_eq(v, "bounce");
	free(v);
	long connects = count_lines(log, "smtpd.*connect from");

	/* The second send: suppressed at accept time, no SMTP. */
	cr_assert_eq(th_http("POST", u, h, body, &r), 0);
	cr_expect_eq(r.status, 202, "%s", r.body);
	cr_expect(strstr(r.body, "\"status\":\"suppressed\"") || strstr(r.body, "\"status\": \"suppressed\""), "%s", r.body);
	th_http_free(&r);
	usleep(1500 * 1000);
	v = th_sql(url, "SELECT string_agg(status, ',' ORDER BY id) FROM recipients");
	cr_expect_str_eq(v, "bounced,suppressed");
	free(v);
	cr_expect_eq(count_lines(log, "smtpd.*connect from"), connects, "a suppressed recipient reached Postfix");

	cr_expect_eq(th_proc_stop(p, 10000), 0);
	th_proc_free(p);
	th_run(NULL, "%s/tests/integration/postfix_bounce.sh stop '%s'", src ? src : ".", dir);
	th_rmrf(dir);
	free(dir);
	th_db_drop(url);
	free(url);
}
