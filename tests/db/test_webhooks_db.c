/*
 * Tests for the webhook outbox in the database (migration 0005 and
 * db/webhooks.c) against a real PostgreSQL: fan-out in the event's
 * transaction, the payload shape, the feed's commit-order cursor with a
 * transaction still open, per-recipient ordering of claims, lease expiry,
 * and disabling an endpoint that has failed for three days.
 */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/db.h"
#include "db/webhooks.h"
#include "harness.h"
#include "util/xmalloc.h"

#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

static char *new_recipient(const char *url, const char *email)
{
	char *sql = xasprintf(
		"WITH m AS (INSERT INTO messages (id, mail_from, from_header, message_id_hdr, size, tags, metadata)"
		" VALUES (gen_random_uuid(), 'a@example.org', 'a@example.org', 'x@example.org', 10, '{welcome}',"
		" '{\"order\":\"42\"}') RETURNING id)"
		" INSERT INTO recipients (message_id, position, email, domain, kind, status)"
		" SELECT id, 0, '%s', 'example.com', 'to', 'delivered' FROM m RETURNING id", email);
	char *id = th_sql(url, sql);
	free(sql);
	cr_assert(id && *id);
	return id;
}

static char *record(const char *url, const char *rcpt, const char *type)
{
	char *sql = xasprintf("SELECT mf_record_event(%s, '%s')", rcpt, type);
	char *id = th_sql(url, sql);
	free(sql);
	cr_assert(id && *id);
	return id;
}

/* The public id (the webhook-id) of the event with internal id ev. */
static void public_id(const char *url, const char *ev, char *out, size_t outsz)
{
	char *sql = xasprintf("SELECT mf_event_id(public_id) FROM events WHERE id = %s", ev);
	char *v = th_sql(url, sql);
	free(sql);
	cr_assert(v && strncmp(v, "evt_", 4) == 0);
	snprintf(out, outsz, "%s", v);
	free(v);
}

static char *add_webhook(const char *url, const char *pid, const char *events, int enabled)
{
	char *sql = xasprintf("INSERT INTO webhooks (public_id, url, events, secret, enabled) VALUES"
			      " ('%s', 'http://127.0.0.1:9/', '%s', '" SECRET "', %s) RETURNING id",
			      pid, events, enabled ? "true" : "false");
	char *id = th_sql(url, sql);
	free(sql);
	cr_assert(id && *id);
	return id;
}

static int count(const char *url, const char *sql)
{
	char *v = th_sql(url, sql);
	cr_assert_not_null(v, "%s", sql);
	int n = (int)strtol(v, NULL, 10);
	free(v);
	return n;
}

Test(webhooks_db, fanout_per_subscribed_endpoint_and_payload_shape)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	free(add_webhook(url, "wh_all", "{}", 1));
	free(add_webhook(url, "wh_deliv", "{message.delivered}", 1));
	free(add_webhook(url, "wh_off", "{}", 0));
	char *r = new_recipient(url, "r@example.com");
	free(record(url, r, "message.queued"));
	char *ev = record(url, r, "message.delivered");
	cr_assert_eq(count(url, "SELECT count(*) FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id"
				" WHERE w.public_id = 'wh_all'"), 2);
	cr_assert_eq(count(url, "SELECT count(*) FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id"
				" WHERE w.public_id = 'wh_deliv'"), 1);
	cr_assert_eq(count(url, "SELECT count(*) FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id"
				" WHERE w.public_id = 'wh_off'"), 0);
	/* The deliveries carry the recipient (for ordering) and are due now. */
	char *sql = xasprintf("SELECT count(*) FROM webhook_deliveries WHERE event_id = %s AND recipient_id = %s"
			      " AND status = 'pending' AND next_attempt_at <= now()", ev, r);
	cr_assert_eq(count(url, sql), 2);
	free(sql);

	/* Payload: INTERFACE.md "Events and webhooks". */
	sql = xasprintf("SELECT (payload->>'id' = mf_event_id(public_id)) AND payload->>'type' = 'message.delivered'"
			" AND payload ? 'timestamp' AND payload->'data'->>'recipient' = 'r@example.com'"
			" AND payload->'data'->>'status' = 'delivered' AND payload->'data' ? 'message_id'"
			" AND payload->'data' ? 'attempt' AND payload->'data'->'tags' = '[\"welcome\"]'"
			" AND payload->'data'->'metadata' = '{\"order\":\"42\"}' FROM events WHERE id = %s", ev);
	char *ok = th_sql(url, sql);
	cr_assert_str_eq(ok, "t");
	free(ok);
	free(sql);

	/* A rolled-back event leaves no delivery behind. */
	char *before = th_sql(url, "SELECT count(*) FROM webhook_deliveries");
	sql = xasprintf("BEGIN; SELECT mf_record_event(%s, 'message.bounced'); ROLLBACK;", r);
	free(th_sql(url, sql));
	free(sql);
	char *after = th_sql(url, "SELECT count(*) FROM webhook_deliveries");
	cr_assert_str_eq(before, after);
	free(before);
	free(after);
	free(ev);
	free(r);
	th_db_drop(url);
	free(url);
}

struct feed {
	int n;
	int64_t ids[64];
	char txid[32];
};

static void on_event(const struct db_event_row *row, void *arg)
{
	struct feed *f = arg;
	if (f->n < 64)
		f->ids[f->n++] = row->id;
	snprintf(f->txid, sizeof(f->txid), "%s", row->txid);
}

/* The feed's horizon is cluster-wide: a transaction of a test running in
 * parallel (another database, same cluster) can hold it back briefly. */
static int feed_wait(struct db_pool *pool, const char *txid, int64_t id, int limit, int want, struct feed *f)
{
	char err[512];
	int n = 0;
	for (int i = 0; i < 100; i++) {
		f->n = 0;
		n = db_events_feed(pool, txid, id, limit, on_event, f, err, sizeof(err));
		cr_assert_geq(n, 0, "%s", err);
		if (n >= want)
			break;
		usleep(50000);
	}
	return n;
}

Test(webhooks_db, feed_never_skips_a_late_commit)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	char *r = new_recipient(url, "r@example.com");
	struct db_pool *pool = db_pool_new(url, 2);
	char err[512];

	/* Transaction A takes its txid first and stays open. */
	PGconn *a = PQconnectdb(url);
	cr_assert_eq(PQstatus(a), CONNECTION_OK);
	char *sql = xasprintf("BEGIN; SELECT mf_record_event(%s, 'message.queued')", r);
	PGresult *res = PQexec(a, sql);
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQerrorMessage(a));
	int64_t ev_a = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	free(sql);
	/* Transaction B starts later and commits first. */
	char *evb = record(url, r, "message.delivered");
	int64_t ev_b = strtoll(evb, NULL, 10);
	free(evb);

	struct feed f = { 0 };
	cr_assert_eq(db_events_feed(pool, "0", 0, 100, on_event, &f, err, sizeof(err)), 0,
		     "B must not be visible while the older A is still open: %s", err);
	res = PQexec(a, "COMMIT");
	PQclear(res);
	PQfinish(a);

	cr_assert_eq(feed_wait(pool, "0", 0, 1, 1, &f), 1);
	cr_assert_eq(f.ids[0], ev_a, "A first: it began first");
	int64_t last = f.ids[0];
	char txid[32];
	snprintf(txid, sizeof(txid), "%s", f.txid);
	cr_assert_eq(feed_wait(pool, txid, last, 10, 1, &f), 1);
	cr_assert_eq(f.ids[0], ev_b);
	snprintf(txid, sizeof(txid), "%s", f.txid);
	f.n = 0;
	cr_assert_eq(db_events_feed(pool, txid, ev_b, 10, on_event, &f, err, sizeof(err)), 0);
	db_pool_free(pool);
	free(r);
	th_db_drop(url);
	free(url);
}

Test(webhooks_db, claim_keeps_recipient_order_and_leases_expire)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	free(add_webhook(url, "wh_a", "{}", 1));
	char *r1 = new_recipient(url, "one@example.com");
	char *r2 = new_recipient(url, "two@example.com");
	char *e1 = record(url, r1, "message.queued");
	char *e2 = record(url, r1, "message.delivered");
	char *e3 = record(url, r2, "message.queued");
	struct db_pool *pool = db_pool_new(url, 2);
	char err[512];
	struct db_webhook_job jobs[8];
	memset(jobs, 0, sizeof(jobs));
	int n = db_webhook_claim(pool, "w1", 60, 8, jobs, err, sizeof(err));
	cr_assert_eq(n, 2, "the later event of recipient one must wait: %d %s", n, err);
	char want1[64], want3[64];
	public_id(url, e1, want1, sizeof(want1));
	public_id(url, e3, want3, sizeof(want3));
	int saw1 = 0, saw3 = 0;
	int64_t d1 = 0;
	for (int i = 0; i < n; i++) {
		saw1 |= strcmp(jobs[i].msg_id, want1) == 0;
		saw3 |= strcmp(jobs[i].msg_id, want3) == 0;
		if (strcmp(jobs[i].msg_id, want1) == 0)
			d1 = jobs[i].delivery_id;
		cr_assert_str_eq(jobs[i].secret, SECRET);
		cr_assert_null(jobs[i].old_secret);
		cr_assert(strstr(jobs[i].body, jobs[i].msg_id) != NULL);
	}
	cr_assert(saw1 && saw3);
	/* Nothing else is due while e1 is being sent. */
	cr_assert_eq(db_webhook_claim(pool, "w2", 60, 8, jobs + 2, err, sizeof(err)), 0);
	/* e1 fails and is retried later: e2 still waits behind it. */
	cr_assert_eq(db_webhook_finish(pool, d1, "w1", "pending", 500, "HTTP 500", 3600, 0, 3 * 86400.0, err,
				       sizeof(err)), 1, "%s", err);
	cr_assert_eq(db_webhook_claim(pool, "w2", 60, 8, jobs + 2, err, sizeof(err)), 0);
	char *sql = xasprintf("UPDATE webhook_deliveries SET next_attempt_at = now() WHERE id = %lld", (long long)d1);
	free(th_sql(url, sql));
	free(sql);
	cr_assert_eq(db_webhook_claim(pool, "w2", 60, 8, jobs + 2, err, sizeof(err)), 1);
	cr_assert_str_eq(jobs[2].msg_id, want1);
	cr_assert_eq(jobs[2].attempts, 1);
	cr_assert_eq(db_webhook_finish(pool, jobs[2].delivery_id, "w2", "succeeded", 200, NULL, 0, 0, 3 * 86400.0, err,
				       sizeof(err)), 1);
	/* Now e2 is free. */
	cr_assert_eq(db_webhook_claim(pool, "w2", 1, 8, jobs + 3, err, sizeof(err)), 1);
	char want2[64];
	public_id(url, e2, want2, sizeof(want2));
	cr_assert_str_eq(jobs[3].msg_id, want2);
	/* Its 1 s lease expires; another dispatcher takes it over, and the
	 * first one's late outcome changes nothing. */
	char last[32], lsql[160];
	snprintf(lsql, sizeof(lsql), "SELECT lease_expires_at < clock_timestamp() FROM webhook_deliveries WHERE id = %lld",
		 (long long)jobs[3].delivery_id);
	cr_assert_eq(th_sql_wait(url, lsql, "t", 30000, last, sizeof(last)), 0, "the 1 s lease never expired: %s", last);
	cr_assert_eq(db_webhook_claim(pool, "w3", 60, 8, jobs + 4, err, sizeof(err)), 1);
	cr_assert_str_eq(jobs[4].msg_id, want2);
	cr_assert_eq(jobs[4].attempts, 0, "an expired lease is not a failed attempt");
	cr_assert_eq(db_webhook_finish(pool, jobs[3].delivery_id, "w2", "succeeded", 200, NULL, 0, 0, 3 * 86400.0, err,
				       sizeof(err)), 0, "the lease was lost");
	cr_assert_eq(db_webhook_finish(pool, jobs[4].delivery_id, "w3", "succeeded", 200, NULL, 0, 0, 3 * 86400.0, err,
				       sizeof(err)), 1);
	for (int i = 0; i < 8; i++)
		db_webhook_job_cleanup(&jobs[i]);
	db_pool_free(pool);
	free(e1), free(e2), free(e3), free(r1), free(r2);
	th_db_drop(url);
	free(url);
}

Test(webhooks_db, failing_for_three_days_disables_with_event)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	free(add_webhook(url, "wh_bad", "{}", 1));
	free(add_webhook(url, "wh_watch", "{webhook.disabled}", 1));
	char *r = new_recipient(url, "r@example.com");
	free(record(url, r, "message.delivered"));
	struct db_pool *pool = db_pool_new(url, 2);
	char err[512];
	struct db_webhook_job job = { 0 };
	cr_assert_eq(db_webhook_claim(pool, "w", 60, 1, &job, err, sizeof(err)), 1, "%s", err);
	/* First failure starts the clock. */
	cr_assert_eq(db_webhook_finish(pool, job.delivery_id, "w", "pending", 503, "HTTP 503", 0, 0, 3 * 86400.0, err,
				       sizeof(err)), 1);
	cr_assert_eq(count(url, "SELECT count(*) FROM webhooks WHERE public_id = 'wh_bad' AND enabled"
				" AND failing_since IS NOT NULL"), 1);
	db_webhook_job_cleanup(&job);
	free(th_sql(url, "UPDATE webhooks SET failing_since = now() - interval '3 days 1 hour'"
			 " WHERE public_id = 'wh_bad'"));
	cr_assert_eq(db_webhook_claim(pool, "w", 60, 1, &job, err, sizeof(err)), 1, "%s", err);
	cr_assert_eq(db_webhook_finish(pool, job.delivery_id, "w", "pending", 503, "HTTP 503", 0, 0, 3 * 86400.0, err,
				       sizeof(err)), 1);
	db_webhook_job_cleanup(&job);
	char *reason = th_sql(url, "SELECT disabled_reason FROM webhooks WHERE public_id = 'wh_bad' AND NOT enabled");
	cr_assert(reason && strstr(reason, "failing continuously") != NULL, "%s", reason ? reason : "(enabled)");
	free(reason);
	cr_assert_eq(count(url, "SELECT count(*) FROM events WHERE type = 'webhook.disabled'"
				" AND payload->'data'->>'webhook_id' = 'wh_bad'"), 1);
	/* The watcher is told; the disabled endpoint is not. */
	cr_assert_eq(count(url, "SELECT count(*) FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id"
				" JOIN events e ON e.id = d.event_id WHERE e.type = 'webhook.disabled'"
				" AND w.public_id = 'wh_watch'"), 1);
	cr_assert_eq(count(url, "SELECT count(*) FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id"
				" JOIN events e ON e.id = d.event_id WHERE e.type = 'webhook.disabled'"
				" AND w.public_id = 'wh_bad'"), 0);
	/* A disabled endpoint's pending deliveries are canceled, not claimed. */
	cr_assert_eq(count(url, "SELECT count(*) FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id"
				" WHERE w.public_id = 'wh_bad' AND d.status = 'canceled'"), 1);
	free(th_sql(url, "UPDATE webhook_deliveries SET next_attempt_at = now()"));
	cr_assert_eq(db_webhook_claim(pool, "w", 60, 1, &job, err, sizeof(err)), 1);
	cr_assert(strstr(job.body, "webhook.disabled") != NULL);
	db_webhook_job_cleanup(&job);
	db_pool_free(pool);
	free(r);
	th_db_drop(url);
	free(url);
}
