/*
 * Bounce processing against a real PostgreSQL (bounce/bounces.c,
 * db/bounces.c): a message and recipient are inserted, corpus DSNs from
 * tests/data/dsn/ are addressed to the recipient's real VERP address (or
 * matched by Message-ID), and the resulting recipient status, bounce
 * classification, suppression list, events and bounces_raw outcome are
 * asserted.  Forged tokens, auto-replies and delay notices must change
 * nothing but what they are allowed to.  A bounce for a recipient still
 * 'sending' waits for the delivery's outcome (claimed and recorded with
 * db/queue.h, as the delivery worker does), at most lease_time.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/bounce_store.h"
#include "db/bounces.h"
#include "db/db.h"
#include "db/queue.h"
#include "db/settings.h"
#include "harness.h"
#include "bounce/bounces.h"
#include "mail/verp.h"
#include "util/config.h"

#define PLACEHOLDER "bounce+aebagbafaydqqcikbmgq2a3hc4@bounces.shop.example"
#define BDOMAIN "bounces.shop.example"

struct fix {
	char *url;
	struct db_pool *pool;
	struct config cfg;
	unsigned char key[VERP_KEY_LEN];
};

static void fix_init(struct fix *f)
{
	f->url = th_db_create(1);
	cr_assert_not_null(f->url);
	f->pool = db_pool_new(f->url, 4);
	memset(&f->cfg, 0, sizeof(f->cfg));
	f->cfg.bounce_domain = BDOMAIN;
	f->cfg.database_url = f->url;
	f->cfg.lease_time = 600; /* the default 10m: how long a bounce waits for a 'sending' recipient */
	char err[256];
	cr_assert_eq(db_settings_secret(f->pool, DB_SETTING_VERP_KEY, f->key, VERP_KEY_LEN, err, sizeof(err)), 0, "%s", err);
}

static void fix_done(struct fix *f)
{
	db_pool_free(f->pool);
	th_db_drop(f->url);
	free(f->url);
}

static char *sqlf(struct fix *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *sqlf(struct fix *f, const char *fmt, ...)
{
	char q[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(q, sizeof(q), fmt, ap);
	va_end(ap);
	char *r = th_sql(f->url, q);
	cr_assert_not_null(r, "%s", q);
	return r;
}

static void expect_sql(struct fix *f, const char *want, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void expect_sql(struct fix *f, const char *want, const char *fmt, ...)
{
	char q[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(q, sizeof(q), fmt, ap);
	va_end(ap);
	char *r = th_sql(f->url, q);
	cr_assert_not_null(r, "%s", q);
	cr_expect_str_eq(r, want, "%s", q);
	free(r);
}

/* A message with one recipient in the given status; returns its row id. */
static int64_t add_rcpt(struct fix *f, const char *uuid, const char *msgid_hdr, const char *email, const char *status)
{
	free(sqlf(f, "INSERT INTO messages (id, mail_from, from_header, message_id_hdr, size)"
		     " VALUES ('%s', 'orders@shop.example', 'Shop <orders@shop.example>', '%s', 100)", uuid, msgid_hdr));
	char *id = sqlf(f, "INSERT INTO recipients (message_id, position, email, domain, kind, status, attempts)"
			   " VALUES ('%s', 0, '%s', split_part('%s', '@', 2), 'to', '%s', 1) RETURNING id",
			uuid, email, email, status);
	int64_t rid = strtoll(id, NULL, 10);
	free(id);
	free(sqlf(f, "SELECT mf_refresh_message_status('%s')", uuid));
	return rid;
}

/* The corpus file with every PLACEHOLDER replaced by to. */
static char *corpus(const char *name, const char *to, size_t *len)
{
	const char *src = getenv("MAILFERRY_TEST_SRCDIR");
	char path[1024];
	snprintf(path, sizeof(path), "%s/tests/data/dsn/%s", src ? src : ".", name);
	FILE *fp = fopen(path, "rb");
	cr_assert_not_null(fp, "%s", path);
	static char in[65536];
	size_t n = fread(in, 1, sizeof(in) - 1, fp);
	fclose(fp);
	in[n] = '\0';
	char *out = malloc(2 * n + 1024);
	size_t o = 0;
	for (const char *p = in; *p;) {
		if (strncmp(p, PLACEHOLDER, strlen(PLACEHOLDER)) == 0) {
			memcpy(out + o, to, strlen(to));
			o += strlen(to);
			p += strlen(PLACEHOLDER);
		} else {
			out[o++] = *p++;
		}
	}
	out[o] = '\0';
	*len = o;
	return out;
}

/* Stores the bounce as the listener would and processes it. */
static void feed(struct fix *f, const char *file, const char *rcpt_to, const char *to_hdr, struct bounce_result *res)
{
	size_t len;
	char *raw = corpus(file, to_hdr, &len);
	char err[512];
	int64_t id;
	cr_assert_eq(db_bounce_insert(f->pool, "smtp", "", rcpt_to, raw, len, &id, err, sizeof(err)), 0, "%s", err);
	free(raw);
	cr_assert_eq(bounce_process(f->pool, &f->cfg, id, res, err, sizeof(err)), 1, "%s", err);
	cr_assert_eq(res->bounce_id, id);
	expect_sql(f, "t", "SELECT processed_at IS NOT NULL FROM bounces_raw WHERE id = %" PRId64, id);
	expect_sql(f, res->outcome, "SELECT outcome FROM bounces_raw WHERE id = %" PRId64, id);
}

static void verp(struct fix *f, int64_t rid, char *out, size_t outsz)
{
	cr_assert_eq(verp_encode(f->key, rid, BDOMAIN, out, outsz), 0);
}

#define M1 "0193f7a2-6c1e-7d40-9a1b-2c3d4e5f6a01"

Test(bounces, failed_via_verp_bounces_and_suppresses)
{
	struct fix f;
	fix_init(&f);
	int64_t rid = add_rcpt(&f, M1, M1 "@shop.example", "Nobody@Example.org", "delivered");
	char addr[128];
	verp(&f, rid, addr, sizeof(addr));
	struct bounce_result *res = malloc(sizeof(*res));
	feed(&f, "postfix_user_unknown.eml", addr, addr, res);
	cr_expect_str_eq(res->outcome, "bounced");
	cr_assert_eq(res->nrcpts, 1);
	cr_expect_str_eq(res->rcpts[0].matched_by, "verp");
	cr_expect_eq(res->rcpts[0].recipient_id, rid);
	cr_expect_str_eq(res->rcpts[0].category, "bad_mailbox");
	cr_expect_eq(res->rcpts[0].suppressed, 1);
	expect_sql(&f, "bounced|permanent|bad_mailbox|550|5.1.1|mx.example.org",
		   "SELECT concat_ws('|', status, bounce_type, bounce_category, last_code, last_enhanced, last_mx)"
		   " FROM recipients WHERE id = %" PRId64, rid);
	expect_sql(&f, "t", "SELECT last_text LIKE '550 5.1.1 <nobody@example.org>: Recipient address rejected%%'"
			    " FROM recipients WHERE id = %" PRId64, rid);
	expect_sql(&f, "bounced", "SELECT status FROM messages WHERE id = '" M1 "'");
	expect_sql(&f, "1", "SELECT count(*) FROM events WHERE type = 'message.bounced' AND recipient_id = %" PRId64, rid);
	expect_sql(&f, "bounced|permanent|bad_mailbox|5.1.1|verp|failed|mail.example.net",
		   "SELECT concat_ws('|', payload->'data'->>'status', payload->'data'->'bounce'->>'type',"
		   " payload->'data'->'bounce'->>'category', payload->'data'->'dsn'->>'status',"
		   " payload->'data'->'dsn'->>'matched_by', payload->'data'->'dsn'->>'action',"
		   " payload->'data'->'dsn'->>'reporting_mta') FROM events WHERE type = 'message.bounced'");
	/* The suppression list keeps addresses in lower case. */
	expect_sql(&f, "bounce|" M1 "|t", "SELECT concat_ws('|', reason, message_id, diagnostic LIKE '550 5.1.1%%')"
					  " FROM suppressions WHERE email = 'nobody@example.org'");
	expect_sql(&f, "1", "SELECT count(*) FROM events WHERE type = 'suppression.created' AND message_id IS NULL"
			    " AND payload->'data'->>'email' = 'nobody@example.org'");

	/* The same bounce again changes nothing more. */
	feed(&f, "postfix_user_unknown.eml", addr, addr, res);
	cr_expect_str_eq(res->outcome, "unchanged");
	expect_sql(&f, "1", "SELECT count(*) FROM events WHERE type = 'message.bounced'");
	free(res);
	fix_done(&f);
}

Test(bounces, forged_token_changes_nothing)
{
	struct fix f;
	fix_init(&f);
	int64_t rid = add_rcpt(&f, M1, M1 "@shop.example", "nobody@example.org", "delivered");
	char addr[128];
	verp(&f, rid, addr, sizeof(addr));
	/* Flip one character of the token: the HMAC no longer verifies. */
	addr[9] = addr[9] == 'a' ? 'b' : 'a';
	struct bounce_result *res = malloc(sizeof(*res));
	feed(&f, "postfix_user_unknown.eml", addr, addr, res);
	cr_expect_str_eq(res->outcome, "forged_token");
	cr_expect_eq(res->nrcpts, 0);
	expect_sql(&f, "delivered", "SELECT status FROM recipients WHERE id = %" PRId64, rid);
	expect_sql(&f, "0", "SELECT count(*) FROM events");
	expect_sql(&f, "0", "SELECT count(*) FROM suppressions");
	/* A token for another key (another installation) is forged too. */
	unsigned char other[VERP_KEY_LEN] = { 1 };
	cr_assert_eq(verp_encode(other, rid, BDOMAIN, addr, sizeof(addr)), 0);
	feed(&f, "postfix_user_unknown.eml", addr, addr, res);
	cr_expect_str_eq(res->outcome, "forged_token");
	expect_sql(&f, "delivered", "SELECT status FROM recipients WHERE id = %" PRId64, rid);
	free(res);
	fix_done(&f);
}

Test(bounces, auto_replies_change_nothing)
{
	struct fix f;
	fix_init(&f);
	int64_t rid = add_rcpt(&f, M1, M1 "@shop.example", "maria.keller@fabrikam.example", "delivered");
	char addr[128];
	verp(&f, rid, addr, sizeof(addr));
	struct bounce_result *res = malloc(sizeof(*res));
	feed(&f, "out_of_office.eml", addr, addr, res);
	cr_expect_str_eq(res->outcome, "not_bounce");
	cr_expect_eq(res->kind, DSN_NOT_BOUNCE);
	feed(&f, "autoreply.eml", addr, addr, res);
	cr_expect_str_eq(res->outcome, "not_bounce");
	expect_sql(&f, "delivered", "SELECT status FROM recipients WHERE id = %" PRId64, rid);
	expect_sql(&f, "0", "SELECT count(*) FROM events");
	expect_sql(&f, "0", "SELECT count(*) FROM suppressions");
	free(res);
	fix_done(&f);
}

Test(bounces, delayed_adds_only_an_event)
{
	struct fix f;
	fix_init(&f);
	int64_t rid = add_rcpt(&f, M1, M1 "@shop.example", "slow@example.info", "delivered");
	char addr[128];
	verp(&f, rid, addr, sizeof(addr));
	struct bounce_result *res = malloc(sizeof(*res));
	feed(&f, "postfix_delayed.eml", addr, addr, res);
	cr_expect_str_eq(res->outcome, "delayed");
	expect_sql(&f, "delivered|-|-", "SELECT concat_ws('|', status, coalesce(bounce_type, '-'), coalesce(last_enhanced, '-')) FROM recipients WHERE id = %" PRId64, rid);
	expect_sql(&f, "delivered", "SELECT status FROM messages WHERE id = '" M1 "'");
	expect_sql(&f, "message.deferred|delayed|4.4.1", "SELECT concat_ws('|', type, payload->'data'->'dsn'->>'action',"
							 " payload->'data'->'dsn'->>'status') FROM events");
	expect_sql(&f, "1", "SELECT count(*) FROM events");
	expect_sql(&f, "0", "SELECT count(*) FROM suppressions");
	free(res);
	fix_done(&f);
}

Test(bounces, policy_and_mailbox_full_do_not_suppress)
{
	struct fix f;
	fix_init(&f);
	int64_t r1 = add_rcpt(&f, M1, M1 "@shop.example", "ceo@bigcorp.example", "delivered");
	int64_t r2 = add_rcpt(&f, "0193f7a2-6c1e-7d40-9a1b-2c3d4e5f6a10", "0193f7a2-6c1e-7d40-9a1b-2c3d4e5f6a10@shop.example",
			      "hoarder@example.fr", "delivered");
	char addr[128];
	struct bounce_result *res = malloc(sizeof(*res));
	verp(&f, r1, addr, sizeof(addr));
	feed(&f, "policy_571.eml", addr, addr, res);
	cr_expect_str_eq(res->outcome, "bounced");
	expect_sql(&f, "bounced|permanent|policy", "SELECT concat_ws('|', status, bounce_type, bounce_category)"
						  " FROM recipients WHERE id = %" PRId64, r1);
	verp(&f, r2, addr, sizeof(addr));
	feed(&f, "mailbox_full.eml", addr, addr, res);
	cr_expect_str_eq(res->outcome, "bounced");
	expect_sql(&f, "t", "SELECT bounce_category = 'mailbox_full' FROM recipients WHERE id = %" PRId64, r2);
	expect_sql(&f, "0", "SELECT count(*) FROM suppressions");
	expect_sql(&f, "2", "SELECT count(*) FROM events WHERE type = 'message.bounced'");
	free(res);
	fix_done(&f);
}

Test(bounces, matched_by_message_id_without_verp)
{
	struct fix f;
	fix_init(&f);
	const char *m2 = "0193f7a2-6c1e-7d40-9a1b-2c3d4e5f6a02";
	int64_t rid = add_rcpt(&f, m2, "0193f7a2-6c1e-7d40-9a1b-2c3d4e5f6a02@shop.example", "jdoe@example.com", "delivered");
	int64_t other = add_rcpt(&f, M1, M1 "@shop.example", "jdoe@example.com", "delivered");
	struct bounce_result *res = malloc(sizeof(*res));
	/* Plain return path: no VERP, the bounce goes to the From address. */
	feed(&f, "exim_multipart.eml", "orders@shop.example", "orders@shop.example", res);
	cr_expect_str_eq(res->outcome, "bounced");
	cr_assert_eq(res->nrcpts, 1);
	cr_expect_str_eq(res->rcpts[0].matched_by, "message_id");
	/* Status 5.0.0 is refined by the diagnostic's 5.1.1. */
	cr_expect_str_eq(res->rcpts[0].status, "5.1.1");
	expect_sql(&f, "bounced|bad_mailbox", "SELECT concat_ws('|', status, bounce_category) FROM recipients WHERE id = %" PRId64, rid);
	expect_sql(&f, "delivered", "SELECT status FROM recipients WHERE id = %" PRId64, other);
	expect_sql(&f, "bounce", "SELECT reason FROM suppressions WHERE email = 'jdoe@example.com'");

	/* A heuristic (qmail) bounce with an unknown Message-ID matches nothing. */
	feed(&f, "qmail.eml", "orders@shop.example", "orders@shop.example", res);
	cr_expect_str_eq(res->outcome, "unmatched");
	cr_expect_eq(res->kind, DSN_HEURISTIC);
	free(res);
	fix_done(&f);
}

Test(bounces, thread_processes_notified_rows)
{
	struct fix f;
	fix_init(&f);
	int64_t rid = add_rcpt(&f, M1, M1 "@shop.example", "gone@example.biz", "delivered");
	char addr[128];
	verp(&f, rid, addr, sizeof(addr));
	struct bounce_processor *bp = bounce_processor_new(&f.cfg, f.pool, NULL);
	cr_assert_not_null(bp);
	size_t len;
	char *raw = corpus("qmail.eml", addr, &len);
	const char *rcpts[] = { addr };
	char err[256];
	cr_assert_eq(db_bounce_store(f.pool, "smtp", "", rcpts, 1, raw, len, NULL, err, sizeof(err)), 0, "%s", err);
	free(raw);
	char *st = NULL;
	for (int i = 0; i < 200; i++) {
		free(st);
		st = sqlf(&f, "SELECT status FROM recipients WHERE id = %" PRId64, rid);
		if (strcmp(st, "bounced") == 0)
			break;
		usleep(50 * 1000);
	}
	cr_expect_str_eq(st, "bounced");
	free(st);
	bounce_processor_free(bp);
	expect_sql(&f, "bounced", "SELECT outcome FROM bounces_raw");
	expect_sql(&f, "bad_mailbox", "SELECT bounce_category FROM recipients WHERE id = %" PRId64, rid);
	fix_done(&f);
}

/* Stores the bounce (as the listener would) and processes it once, which
 * must give want; returns the row id. */
static int64_t feed_rc(struct fix *f, const char *file, const char *addr, enum bounce_process_rc want,
		       struct bounce_result *res)
{
	size_t len;
	char *raw = corpus(file, addr, &len);
	char err[512];
	int64_t id;
	cr_assert_eq(db_bounce_insert(f->pool, "smtp", "", addr, raw, len, &id, err, sizeof(err)), 0, "%s", err);
	free(raw);
	enum bounce_process_rc rc = bounce_process(f->pool, &f->cfg, id, res, err, sizeof(err));
	cr_assert_eq(rc, want, "bounce_process: %d, want %d (%s)", rc, want, rc < 0 ? err : res->outcome);
	return id;
}

Test(bounces, status_transitions_and_lease)
{
	struct fix f;
	fix_init(&f);
	/* A recipient still "sending" (a worker holds the lease): the bounce
	 * waits for the delivery's outcome and changes nothing yet. */
	int64_t sending = add_rcpt(&f, M1, M1 "@shop.example", "nobody@example.org", "sending");
	free(sqlf(&f, "UPDATE recipients SET lease_owner = 'w1', lease_expires_at = now() + interval '1 minute'"
		      " WHERE id = %" PRId64, sending));
	/* A canceled recipient is never revived by a bounce. */
	int64_t canceled = add_rcpt(&f, "0193f7a2-6c1e-7d40-9a1b-2c3d4e5f6a0c", "c@shop.example", "nobody@example.org",
				    "canceled");
	char addr[128], err[512];
	struct bounce_result *res = malloc(sizeof(*res));
	verp(&f, sending, addr, sizeof(addr));
	int64_t b = feed_rc(&f, "postfix_user_unknown.eml", addr, BOUNCE_PROCESS_WAITING, res);
	cr_expect_str_eq(res->outcome, "waiting");
	cr_expect_eq(res->bounce_id, b);
	expect_sql(&f, "sending|w1", "SELECT concat_ws('|', status, lease_owner) FROM recipients WHERE id = %" PRId64,
		   sending);
	expect_sql(&f, "t|t|t", "SELECT concat_ws('|', processed_at IS NULL AND outcome IS NULL, wait_rcpt = %" PRId64 ","
				" wait_until BETWEEN now() + interval '599 s' AND now() + interval '601 s')"
				" FROM bounces_raw WHERE id = %" PRId64, sending, b);
	expect_sql(&f, "0", "SELECT count(*) FROM events");
	expect_sql(&f, "0", "SELECT count(*) FROM suppressions");
	/* Not ready while the recipient is 'sending': nothing to claim. */
	cr_expect_eq(bounce_process(f.pool, &f.cfg, b, res, err, sizeof(err)), BOUNCE_PROCESS_NONE);
	cr_expect_eq(bounce_process(f.pool, &f.cfg, 0, res, err, sizeof(err)), BOUNCE_PROCESS_NONE);

	/* The wait is bounded (lease_time): once over, the bounce is applied
	 * to the recipient still 'sending', and the lease is cleared so the
	 * worker's late report is dropped. */
	free(sqlf(&f, "UPDATE bounces_raw SET wait_until = now() - interval '1 second' WHERE id = %" PRId64, b));
	cr_assert_eq(bounce_process(f.pool, &f.cfg, b, res, err, sizeof(err)), BOUNCE_PROCESS_DONE, "%s", err);
	cr_expect_str_eq(res->outcome, "bounced");
	expect_sql(&f, "bounced|-|-", "SELECT concat_ws('|', status, coalesce(lease_owner, '-'),"
				     " coalesce(lease_expires_at::text, '-')) FROM recipients WHERE id = %" PRId64, sending);
	expect_sql(&f, "bounced", "SELECT outcome FROM bounces_raw WHERE id = %" PRId64, b);
	expect_sql(&f, "1", "SELECT count(*) FROM suppressions WHERE email = 'nobody@example.org'");

	verp(&f, canceled, addr, sizeof(addr));
	feed(&f, "postfix_user_unknown.eml", addr, addr, res);
	cr_expect_str_eq(res->outcome, "unchanged");
	expect_sql(&f, "canceled", "SELECT status FROM recipients WHERE id = %" PRId64, canceled);
	expect_sql(&f, "1", "SELECT count(*) FROM events WHERE type = 'message.bounced'");

	/* With lease_time 0 a bounce does not wait at all. */
	int64_t now = add_rcpt(&f, "0193f7a2-6c1e-7d40-9a1b-2c3d4e5f6a0e", "e@shop.example", "gone@example.biz", "sending");
	f.cfg.lease_time = 0;
	verp(&f, now, addr, sizeof(addr));
	feed(&f, "postfix_user_unknown.eml", addr, addr, res);
	cr_expect_str_eq(res->outcome, "bounced");
	expect_sql(&f, "bounced", "SELECT status FROM recipients WHERE id = %" PRId64, now);
	free(res);
	fix_done(&f);
}

static void claimed_id(const struct db_claim_row *row, void *arg)
{
	*(int64_t *)arg = row->id;
}

/* The delivery worker's claim of the one due recipient: 'sending' under owner. */
static void worker_claims(struct db_session *s, const char *owner, int64_t want)
{
	char err[256];
	int64_t got = 0;
	cr_assert_eq(db_queue_claim(s, owner, 600, 10, NULL, claimed_id, &got, err, sizeof(err)), 1, "%s", err);
	cr_assert_eq(got, want);
}

/* The recorder writes the receiver's 250 for rid, as queue/worker.c does. */
static void recorder_delivers(struct db_session *s, const char *owner, int64_t rid)
{
	struct db_outcome o = {
		.id = rid, .lease_owner = owner, .status = "delivered", .code = 250, .enhanced = "2.0.0",
		.text = "2.0.0 Ok: queued as 4ZT1", .mx = "mx.example.org", .tls_verified = -1,
	};
	char err[256];
	int applied = -1;
	cr_assert_eq(db_queue_record(s, &o, 1, &applied, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(applied, 1, "the 250 was not recorded: the bounce was applied before it");
}

/*
 * The race of bounce_postfix::delivered_then_bounced_suppressed_and_forged_ignored:
 * the receiver answers 250 and its DSN reaches the bounce listener before
 * the recorder has written 'delivered'.  Every step is taken in order here,
 * so the race is reproduced every time: the bounce must wait (the
 * recipient stays 'sending'), the 250 is recorded, and the processor's
 * thread then applies the bounce, giving queued, delivered, bounced.
 */
Test(bounces, dsn_before_the_recorded_250_waits_for_it)
{
	struct fix f;
	fix_init(&f);
	int64_t rid = add_rcpt(&f, M1, M1 "@shop.example", "Nobody@Example.org", "queued");
	free(sqlf(&f, "SELECT mf_record_event(%" PRId64 ", 'message.queued')", rid));
	struct db_session *s = db_session_new(f.url);
	const char *owner = "host:1:r:1";
	worker_claims(s, owner, rid);

	/* The DSN arrives (stored with its NOTIFY, as the listener does) and
	 * the processor looks at it while the recipient is still 'sending'. */
	char addr[128], err[512];
	verp(&f, rid, addr, sizeof(addr));
	size_t len;
	char *raw = corpus("postfix_user_unknown.eml", addr, &len);
	const char *rcpts[] = { addr };
	int64_t b = 0;
	cr_assert_eq(db_bounce_store(f.pool, "smtp", "", rcpts, 1, raw, len, &b, err, sizeof(err)), 0, "%s", err);
	free(raw);
	struct bounce_result *res = malloc(sizeof(*res));
	enum bounce_process_rc rc = bounce_process(f.pool, &f.cfg, b, res, err, sizeof(err));
	expect_sql(&f, "sending|f", "SELECT concat_ws('|', status, (SELECT processed_at IS NOT NULL FROM bounces_raw"
				   " WHERE id = %" PRId64 ")) FROM recipients WHERE id = %" PRId64, b, rid);
	cr_assert_eq(rc, BOUNCE_PROCESS_WAITING, "the bounce did not wait for the delivery outcome: %d (%s)", rc,
		     res->outcome);
	expect_sql(&f, "message.queued", "SELECT string_agg(type, ',' ORDER BY id) FROM events");

	/* The processor runs; the waiting bounce is not ready, so nothing
	 * happens until the recorder writes the 250 (no NOTIFY then: the
	 * thread's sweep takes the bounce again). */
	struct bounce_processor *bp = bounce_processor_new(&f.cfg, f.pool, NULL);
	cr_assert_not_null(bp);
	recorder_delivers(s, owner, rid);
	char sql[256], last[64] = "";
	snprintf(sql, sizeof(sql), "SELECT coalesce(outcome, 'unprocessed') FROM bounces_raw WHERE id = %" PRId64, b);
	int waited = th_sql_wait(f.url, sql, "bounced", 30000, last, sizeof(last)); /* about one sweep, 5 s */
	bounce_processor_free(bp);
	cr_assert_eq(waited, 0, "bounce not processed after the 250 was recorded: %s", last);

	expect_sql(&f, "message.queued,message.delivered,message.bounced",
		   "SELECT string_agg(type, ',' ORDER BY id) FROM events WHERE recipient_id = %" PRId64, rid);
	expect_sql(&f, "250|mx.example.org", "SELECT concat_ws('|', payload->'data'->'smtp'->>'code',"
					    " payload->'data'->'smtp'->>'mx') FROM events WHERE type = 'message.delivered'");
	expect_sql(&f, "bounced|permanent|bad_mailbox|5.1.1|-", "SELECT concat_ws('|', status, bounce_type,"
							       " bounce_category, last_enhanced, coalesce(lease_owner, '-'))"
							       " FROM recipients WHERE id = %" PRId64, rid);
	expect_sql(&f, "bounced", "SELECT status FROM messages WHERE id = '" M1 "'");
	/* The suppression, as for a bounce with normal timing. */
	expect_sql(&f, "bounce|" M1, "SELECT concat_ws('|', reason, message_id) FROM suppressions"
				     " WHERE email = 'nobody@example.org'");
	expect_sql(&f, "1", "SELECT count(*) FROM events WHERE type = 'suppression.created'"
			    " AND payload->'data'->>'email' = 'nobody@example.org'");
	free(res);
	db_session_free(s);
	fix_done(&f);
}

/*
 * Matched by Message-ID, one report can name several recipients.  When
 * one of them is 'sending' the whole bounce waits: what it would have done
 * to the others is undone, and done once when it is applied.
 */
Test(bounces, report_with_a_sending_recipient_waits_whole)
{
	struct fix f;
	fix_init(&f);
	int64_t a = add_rcpt(&f, M1, M1 "@shop.example", "a@example.org", "delivered");
	free(sqlf(&f, "INSERT INTO recipients (message_id, position, email, domain, kind, status)"
		      " VALUES ('" M1 "', 1, 'b@example.org', 'example.org', 'to', 'queued')"));
	int64_t bid = a + 1;
	struct db_session *s = db_session_new(f.url);
	worker_claims(s, "host:1:r:2", bid);
	char raw[2048];
	int n = snprintf(raw, sizeof(raw),
			 "From: MAILER-DAEMON@mx.example.org\r\nTo: orders@shop.example\r\n"
			 "Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n"
			 "--x\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n"
			 "Final-Recipient: rfc822; a@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
			 "Final-Recipient: rfc822; b@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
			 "--x\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <" M1 "@shop.example>\r\n"
			 "--x--\r\n");
	cr_assert(n > 0 && (size_t)n < sizeof(raw));
	char err[512];
	int64_t id;
	cr_assert_eq(db_bounce_insert(f.pool, "smtp", "", "orders@shop.example", raw, (size_t)n, &id, err, sizeof(err)),
		     0, "%s", err);
	struct bounce_result *res = malloc(sizeof(*res));
	cr_assert_eq(bounce_process(f.pool, &f.cfg, id, res, err, sizeof(err)), BOUNCE_PROCESS_WAITING, "%s",
		     res->outcome);
	cr_expect_eq(res->nrcpts, 0);
	expect_sql(&f, "delivered,sending", "SELECT string_agg(status, ',' ORDER BY id) FROM recipients");
	expect_sql(&f, "0|0", "SELECT (SELECT count(*) FROM events) || '|' || (SELECT count(*) FROM suppressions)");

	recorder_delivers(s, "host:1:r:2", bid);
	cr_assert_eq(bounce_process(f.pool, &f.cfg, id, res, err, sizeof(err)), BOUNCE_PROCESS_DONE, "%s", err);
	cr_expect_str_eq(res->outcome, "bounced");
	cr_expect_eq(res->nrcpts, 2);
	expect_sql(&f, "bounced,bounced", "SELECT string_agg(status, ',' ORDER BY id) FROM recipients");
	expect_sql(&f, "message.delivered,message.bounced,message.bounced",
		   "SELECT string_agg(type, ',' ORDER BY id) FROM events WHERE message_id = '" M1 "'");
	expect_sql(&f, "2", "SELECT count(*) FROM suppressions");
	free(res);
	db_session_free(s);
	fix_done(&f);
}

Test(bounces, two_recipients_message_becomes_partial)
{
	struct fix f;
	fix_init(&f);
	int64_t a = add_rcpt(&f, M1, M1 "@shop.example", "nobody@example.org", "delivered");
	free(sqlf(&f, "INSERT INTO recipients (message_id, position, email, domain, kind, status)"
		      " VALUES ('" M1 "', 1, 'ok@example.org', 'example.org', 'cc', 'delivered')"));
	char addr[128];
	verp(&f, a, addr, sizeof(addr));
	struct bounce_result *res = malloc(sizeof(*res));
	feed(&f, "postfix_user_unknown.eml", addr, addr, res);
	expect_sql(&f, "partial", "SELECT status FROM messages WHERE id = '" M1 "'");
	expect_sql(&f, "delivered", "SELECT status FROM recipients WHERE email = 'ok@example.org'");
	free(res);
	fix_done(&f);
}

Test(bounces, latin1_diagnostic_is_stored)
{
	struct fix f;
	fix_init(&f);
	int64_t rid = add_rcpt(&f, M1, M1 "@shop.example", "jean@example.fr", "delivered");
	char addr[128];
	verp(&f, rid, addr, sizeof(addr));
	char raw[1024];
	int n = snprintf(raw, sizeof(raw),
			 "From: MAILER-DAEMON@mx.example.fr\r\nTo: %s\r\n"
			 "Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n"
			 "--x\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.fr\r\n\r\n"
			 "Final-Recipient: rfc822; jean@example.fr\r\nAction: failed\r\nStatus: 5.1.1\r\n"
			 "Diagnostic-Code: smtp; 550 5.1.1 Bo\xeete aux lettres inconnue\r\n--x--\r\n", addr);
	char err[512];
	int64_t id;
	cr_assert_eq(db_bounce_insert(f.pool, "smtp", "", addr, raw, (size_t)n, &id, err, sizeof(err)), 0, "%s", err);
	struct bounce_result *res = malloc(sizeof(*res));
	cr_assert_eq(bounce_process(f.pool, &f.cfg, id, res, err, sizeof(err)), 1, "%s", err);
	cr_expect_str_eq(res->outcome, "bounced");
	expect_sql(&f, "550 5.1.1 Bo?te aux lettres inconnue", "SELECT last_text FROM recipients WHERE id = %" PRId64, rid);
	free(res);
	fix_done(&f);
}

Test(bounces, failing_row_is_set_aside_and_does_not_block)
{
	struct fix f;
	fix_init(&f);
	/* A trigger makes every update of one recipient fail. */
	free(sqlf(&f, "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS"
		      " $$ BEGIN RAISE EXCEPTION 'boom'; END $$"));
	free(sqlf(&f, "CREATE TRIGGER boom BEFORE UPDATE ON recipients FOR EACH ROW"
		      " WHEN (NEW.email = 'poison@example.org') EXECUTE FUNCTION boom()"));
	int64_t bad = add_rcpt(&f, M1, M1 "@shop.example", "poison@example.org", "delivered");
	int64_t good = add_rcpt(&f, "0193f7a2-6c1e-7d40-9a1b-2c3d4e5f6a0d", "d@shop.example", "gone@example.biz",
				"delivered");
	char a1[128], a2[128], err[256];
	verp(&f, bad, a1, sizeof(a1));
	verp(&f, good, a2, sizeof(a2));
	size_t len;
	int64_t id1, id2;
	char *raw = corpus("qmail.eml", a1, &len);
	cr_assert_eq(db_bounce_insert(f.pool, "smtp", "", a1, raw, len, &id1, err, sizeof(err)), 0, "%s", err);
	free(raw);
	raw = corpus("qmail.eml", a2, &len);
	cr_assert_eq(db_bounce_insert(f.pool, "smtp", "", a2, raw, len, &id2, err, sizeof(err)), 0, "%s", err);
	free(raw);
	struct bounce_processor *bp = bounce_processor_new(&f.cfg, f.pool, NULL);
	char *st = NULL;
	for (int i = 0; i < 300; i++) { /* at most 30 s; about 5 s expected */
		free(st);
		st = sqlf(&f, "SELECT count(*) FROM bounces_raw WHERE processed_at IS NOT NULL");
		if (strcmp(st, "2") == 0)
			break;
		usleep(100 * 1000);
	}
	bounce_processor_free(bp);
	cr_expect_str_eq(st, "2");
	free(st);
	expect_sql(&f, "error", "SELECT outcome FROM bounces_raw WHERE id = 1");
	expect_sql(&f, "bounced", "SELECT outcome FROM bounces_raw WHERE id = 2");
	expect_sql(&f, "delivered", "SELECT status FROM recipients WHERE email = 'poison@example.org'");
	expect_sql(&f, "bounced", "SELECT status FROM recipients WHERE email = 'gone@example.biz'");
	fix_done(&f);
}
