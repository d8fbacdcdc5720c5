/*
 * End to end with a real Postfix as the receiving MTA: a throwaway Postfix
 * (tests/integration/postfix_bounce.sh) accepts a message for an unknown
 * local user, local(8) bounces it, and its DSN travels back over SMTP to
 * mailferry's bounce listener (transport map -> bounce_listen) addressed
 * to the recipient's VERP return path.  The recipient must go delivered ->
 * bounced (bad_mailbox) and the address land on the suppression list.
 * The message is injected with swaks (mailferry's delivery role is
 * another engineer's work; this checks the bounce half with real mail).
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
	cr_assert_eq(db_settings_secret(pool, "verp_key", key, sizeof(key), err, sizeof(err)), 0, "%s", err);
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
