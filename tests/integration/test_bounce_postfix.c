/*
 * test_bounce_postfix.c - issue 5's end-to-end acceptance, the whole chain
 * through "mailferry serve" (roles api,delivery,bounces) and a real Postfix
 * as the receiving MTA (tests/integration/postfix_bounce.sh: a throwaway
 * instance with its own config_directory on loopback ports).
 *
 *   POST /v1/messages -> delivery worker -> Postfix smtpd (250, the
 *   recipient is "delivered") -> local(8) bounces the unknown user
 *   (RFC 3464 DSN, Status 5.1.1) to the VERP return path -> Postfix's
 *   transport map -> mailferry's bounce listener -> bounce processor:
 *   recipient "bounced" (bad_mailbox), message.bounced event, address
 *   suppressed.  A second send to it is "suppressed" and Postfix sees no
 *   new SMTP connection.  Finally Postfix's real DSN, re-addressed to a
 *   forged token of another delivered recipient and sent over SMTP to the
 *   listener, is stored but changes nothing.
 *
 * Cleanup (Postfix, serve, database) runs in the .fini hook, so a failed
 * assertion still stops Postfix.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_helpers.h"
#include "db/db.h"
#include "db/settings.h"
#include "harness.h"
#include "mail/verp.h"
#include "th_smtp.h"

#define RDOMAIN "rcpt.localhost" /* Postfix's mydestination (postfix_bounce.sh) */
#define BDOMAIN "bounces.test"
#define DEAD "nosuchuser@" RDOMAIN
#define VICTIM_MSG "0193f7a2-6c1e-7d40-9a1b-2c3d4e5f6b01"

/* What the .fini hook tears down; each is cleared once torn down. */
static struct api_srv g_srv;
static char *g_pfdir;
static int g_pfport;

static const char *srcdir(void)
{
	const char *s = getenv("MAILFERRY_TEST_SRCDIR");
	return s ? s : ".";
}

static void teardown(void)
{
	if (g_pfdir) {
		th_run(NULL, "%s/tests/integration/postfix_bounce.sh stop '%s'", srcdir(), g_pfdir);
		th_rmrf(g_pfdir);
		free(g_pfdir);
		g_pfdir = NULL;
		th_run(NULL, "rm -f /var/log/mailferry-test-postfix-%d.log", g_pfport);
	}
	if (g_srv.p) {
		th_proc_stop(g_srv.p, 10000);
		th_proc_free(g_srv.p);
		g_srv.p = NULL;
	}
	if (g_srv.db) {
		th_db_drop(g_srv.db);
		free(g_srv.db);
		g_srv.db = NULL;
	}
}

static char *sqlf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *sqlf(const char *fmt, ...)
{
	char sql[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	return th_sql(g_srv.db, sql);
}

/* Polls until the SQL answers want (at most timeout_ms); the last answer. */
static char *wait_sql(const char *want, int timeout_ms, const char *sql)
{
	long t0 = th_now_ms();
	char *v = NULL;
	for (;;) {
		free(v);
		v = th_sql(g_srv.db, sql);
		if ((v && strcmp(v, want) == 0) || th_now_ms() - t0 > timeout_ms)
			return v;
		usleep(100 * 1000);
	}
}

/* Lines of the Postfix maillog matching a grep -E pattern. */
static long postfix_count(const char *pattern)
{
	char *o = NULL;
	th_run(&o, "grep -cE '%s' /var/log/mailferry-test-postfix-%d.log", pattern, g_pfport);
	long n = o ? strtol(o, NULL, 10) : -1;
	free(o);
	return n;
}

/* One per SMTP session to Postfix, and one per message it received
 * (the latter also catches a reused, cached session). */
#define PF_CONNECT "postfix/smtpd\\[[0-9]+\\]: connect from"
#define PF_MESSAGE "postfix/smtpd\\[[0-9]+\\]: [0-9A-F]+: client="

static void dump_logs(void)
{
	char *o = NULL;
	th_run(&o, "cat /var/log/mailferry-test-postfix-%d.log; tail -40 '%s'", g_pfport, g_srv.p ? g_srv.p->log : "/dev/null");
	cr_log_error("postfix log + serve log:\n%s", o ? o : "");
	free(o);
}

Test(bounce_postfix, delivered_then_bounced_suppressed_and_forged_ignored, .fini = teardown)
{
	cr_assert_eq(th_run(NULL, "command -v postfix && command -v swaks"), 0,
		     "postfix and swaks are test dependencies (deploy/bootstrap.sh installs them)");
	int bport = th_free_port();
	g_pfport = th_free_port();
	cr_assert_neq(bport, g_pfport);

	/* Postfix: final destination for RDOMAIN, DSNs for BDOMAIN to the listener. */
	g_pfdir = th_tmpdir("pfe2e");
	cr_assert_not_null(g_pfdir);
	char *o = NULL;
	int rc = th_run(&o, "%s/tests/integration/postfix_bounce.sh start '%s' %d %s %d", srcdir(), g_pfdir, g_pfport,
			BDOMAIN, bport);
	cr_assert_eq(rc, 0, "postfix: %s", o);
	free(o);

	char routes[128], listen[64];
	snprintf(routes, sizeof(routes), "MAILFERRY_ROUTES=" RDOMAIN "=127.0.0.1:%d", g_pfport);
	snprintf(listen, sizeof(listen), "MAILFERRY_BOUNCE_LISTEN=127.0.0.1:%d", bport);
	const char *env[] = { routes, listen, "MAILFERRY_BOUNCE_DOMAIN=" BDOMAIN, "MAILFERRY_ROLES=api,delivery,bounces",
			      NULL };
	api_srv_start(&g_srv, NULL, env);
	cr_assert_eq(th_smtp_wait_port(bport, 10000), 0, "bounce listener not up on %d", bport);

	/* 1. Send to an unknown user of Postfix's local domain. */
	char *id = api_send_ok(&g_srv, "{\"from\":\"Shop <orders@shop.example>\",\"to\":\"" DEAD "\","
				       "\"subject\":\"Your order\",\"text\":\"Thanks for your order\"}");

	/* 2. delivered (Postfix answered 250) ... then bounced by its DSN. */
	char *v = wait_sql("bounced", 30000, "SELECT status FROM recipients");
	if (v == NULL || strcmp(v, "bounced") != 0)
		dump_logs();
	cr_assert_str_eq(v, "bounced");
	free(v);
	v = sqlf("SELECT string_agg(type, ',' ORDER BY id) FROM events WHERE message_id = '%s'", id);
	cr_expect_str_eq(v, "message.queued,message.delivered,message.bounced");
	free(v);
	v = sqlf("SELECT (payload->'data'->'smtp'->>'code') || '|' || (payload->'data'->'smtp'->>'mx')"
		 " FROM events WHERE type = 'message.delivered' AND message_id = '%s'", id);
	cr_expect(v && strncmp(v, "250|", 4) == 0, "delivered event: %s", v ? v : "NULL");
	free(v);
	v = sqlf("SELECT concat_ws('|', bounce_type, bounce_category, last_enhanced, attempts) FROM recipients");
	cr_expect_str_eq(v, "permanent|bad_mailbox|5.1.1|1");
	free(v);
	/* The DSN came over SMTP from Postfix (null sender) to the VERP return path. */
	v = sqlf("SELECT source || '|' || outcome || '|' || (mail_from = '') || '|' || (rcpt_to LIKE 'bounce+%%@" BDOMAIN
		 "') FROM bounces_raw");
	cr_expect_str_eq(v, "smtp|bounced|true|true");
	free(v);
	/* Postfix's side: the mail from mailferry's VERP sender, bounced by local(8), DSN relayed to the listener. */
	cr_expect_eq(th_run(&o, "grep -q 'from=<bounce+[^>]*@" BDOMAIN ">' /var/log/mailferry-test-postfix-%d.log &&"
				" grep -q 'to=<" DEAD ">.*status=bounced' /var/log/mailferry-test-postfix-%d.log &&"
				" grep -q 'relay=127.0.0.1\\[127.0.0.1\\]:%d.*status=sent' /var/log/mailferry-test-postfix-%d.log",
			     g_pfport, g_pfport, bport, g_pfport),
		     0, "postfix log lacks the expected lines");
	free(o);

	/* GET /v1/messages/{id}: bounced, with the event in the timeline. */
	struct th_http r;
	char path[256];
	snprintf(path, sizeof(path), "/v1/messages/%s", id);
	cr_assert_eq(api_call(&g_srv, "GET", path, NULL, NULL, NULL, &r), 0);
	cr_expect_eq(r.status, 200);
	json_t *j = t_json(&r);
	cr_expect_str_eq(t_str(j, "status"), "bounced", "%s", r.body);
	json_t *ev, *bounced = NULL;
	size_t i;
	json_array_foreach(json_object_get(j, "events"), i, ev)
	{
		if (strcmp(t_str(ev, "type") ? t_str(ev, "type") : "", "message.bounced") == 0)
			bounced = ev;
	}
	cr_expect_not_null(bounced, "no message.bounced in the timeline: %s", r.body);
	if (bounced) {
		json_t *b = json_object_get(json_object_get(bounced, "data"), "bounce");
		cr_expect_str_eq(t_str(b, "category") ? t_str(b, "category") : "", "bad_mailbox", "%s", r.body);
		cr_expect_str_eq(t_str(b, "type") ? t_str(b, "type") : "", "permanent", "%s", r.body);
	}
	json_decref(j);
	th_http_free(&r);

	/* The address is on the suppression list, reason bounce, naming the message. */
	cr_assert_eq(api_call(&g_srv, "GET", "/v1/suppressions/" DEAD, NULL, NULL, NULL, &r), 0);
	cr_expect_eq(r.status, 200, "%s", r.body ? r.body : "");
	cr_expect(r.body && strstr(r.body, "\"reason\":\"bounce\"") && strstr(r.body, id), "%s", r.body ? r.body : "");
	th_http_free(&r);

	/* /metrics counts the DSN bounce by category. */
	cr_assert_eq(api_call(&g_srv, "GET", "/metrics", "", NULL, NULL, &r), 0);
	cr_expect(r.body && strstr(r.body, "mailferry_bounces_total{type=\"permanent\",category=\"bad_mailbox\","
					   "source=\"dsn\"} 1\n"), "%s", r.body ? r.body : "");
	th_http_free(&r);

	/* 3. A second send: suppressed, never an SMTP connection to Postfix. */
	long connects = postfix_count(PF_CONNECT), received = postfix_count(PF_MESSAGE);
	cr_expect_eq(connects, 1, "postfix saw %ld SMTP sessions for one delivery", connects);
	cr_expect_eq(received, 1, "postfix received %ld messages for one delivery", received);
	char *id2 = api_send_ok(&g_srv, "{\"from\":\"orders@shop.example\",\"to\":\"" DEAD "\","
					"\"subject\":\"Your second order\",\"text\":\"Thanks again\"}");
	char sql[512];
	snprintf(sql, sizeof(sql), "SELECT status FROM recipients WHERE message_id = '%s'", id2);
	v = wait_sql("suppressed", 15000, sql);
	cr_expect_str_eq(v, "suppressed");
	free(v);
	v = sqlf("SELECT attempts || '|' || string_agg(e.type, ',') FROM recipients r JOIN events e USING (message_id)"
		 " WHERE r.message_id = '%s' GROUP BY attempts",
		 id2);
	cr_expect(v && strcmp(v, "0|message.suppressed") == 0, "%s", v ? v : "NULL");
	free(v);
	cr_expect_eq(postfix_count(PF_CONNECT), connects, "a suppressed send opened an SMTP session");
	cr_expect_eq(postfix_count(PF_MESSAGE), received, "a suppressed send reached Postfix");

	/* 4. A forged token over SMTP changes nothing: Postfix's own DSN,
	 * re-addressed to another delivered recipient (also its Message-ID, so
	 * the Message-ID fallback would match), sent to a token whose HMAC
	 * fails. */
	free(sqlf("INSERT INTO messages (id, mail_from, from_header, message_id_hdr, size, status)"
		  " VALUES ('" VICTIM_MSG "', 'orders@shop.example', 'orders@shop.example', '" VICTIM_MSG "@shop.example',"
		  " 10, 'delivered')"));
	char *rid = sqlf("INSERT INTO recipients (message_id, position, email, domain, kind, status, attempts)"
			 " VALUES ('" VICTIM_MSG "', 0, 'victim@" RDOMAIN "', '" RDOMAIN "', 'to', 'delivered', 1)"
			 " RETURNING id");
	cr_assert_not_null(rid);
	struct db_pool *pool = db_pool_new(g_srv.db, 1);
	cr_assert_not_null(pool);
	unsigned char key[VERP_KEY_LEN];
	char err[256], forged[128];
	cr_assert_eq(db_settings_secret(pool, "verp_key", key, sizeof(key), err, sizeof(err)), 0, "%s", err);
	db_pool_free(pool);
	cr_assert_eq(verp_encode(key, strtoll(rid, NULL, 10), BDOMAIN, forged, sizeof(forged)), 0);
	free(rid);
	forged[9] = forged[9] == 'a' ? 'b' : 'a'; /* inside the token: the HMAC no longer verifies */
	char *dsn = sqlf("SELECT replace(replace(replace(convert_from(b.raw, 'UTF8'), E'\\r', ''),"
			 " 'nosuchuser@', 'victim@'), m.message_id_hdr, '" VICTIM_MSG "@shop.example')"
			 " FROM bounces_raw b, messages m WHERE m.id = '%s'",
			 id);
	cr_assert_not_null(dsn);
	cr_assert(strstr(dsn, "victim@" RDOMAIN) && strstr(dsn, VICTIM_MSG "@shop.example"), "%s", dsn);
	char file[512];
	snprintf(file, sizeof(file), "%s/forged.eml", g_pfdir);
	FILE *f = fopen(file, "w");
	cr_assert_not_null(f);
	fputs(dsn, f);
	fclose(f);
	free(dsn);
	char args[1024];
	snprintf(args, sizeof(args), "--from '<>' --to '%s' --data - < '%s'", forged, file);
	rc = th_swaks(&o, bport, args);
	cr_expect_eq(rc, 0, "%s", o);
	free(o);
	v = wait_sql("forged_token", 15000, "SELECT outcome FROM bounces_raw ORDER BY id DESC LIMIT 1");
	cr_expect_str_eq(v, "forged_token");
	free(v);
	v = sqlf("SELECT status || '|' || (SELECT count(*) FROM events WHERE message_id = '" VICTIM_MSG "')"
		 " || '|' || (SELECT count(*) FROM suppressions WHERE email = 'victim@" RDOMAIN "')"
		 " FROM recipients WHERE message_id = '" VICTIM_MSG "'");
	cr_expect_str_eq(v, "delivered|0|0");
	free(v);
	free(id);
	free(id2);

	/* Clean stop of serve is part of the contract; the rest is teardown's. */
	cr_expect_eq(th_proc_stop(g_srv.p, 10000), 0, "serve did not stop cleanly");
	th_proc_free(g_srv.p);
	g_srv.p = NULL;
}
