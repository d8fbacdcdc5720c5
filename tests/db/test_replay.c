/*
 * Tests for replay (db/replay.c) against a real PostgreSQL: filters,
 * suppressed and expired recipients, idempotency, dry runs, events, and a
 * bulk replay of 100,000 recipients in bounded batches.
 */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "db/replay.h"
#include "harness.h"
#include "th_assert.h"

/*
 * n messages created at (now - g hours), each with recipients
 * u<p>@<domain>, p = 1..per, all in status st, attempts 3.
 */
static void seed(const char *url, int n, int per, const char *domain, const char *st, const char *tag)
{
	char sql[2048];
	snprintf(sql, sizeof(sql),
		 "WITH m AS (INSERT INTO messages (id, created_at, mail_from, from_header, message_id_hdr, size, body, tags, status)"
		 " SELECT gen_random_uuid(), now() - g * interval '1 hour', 'a@src.test', 'a@src.test', 'mid' || g, 4, 'body',"
		 " ARRAY['%s'], '%s' FROM generate_series(1, %d) g RETURNING id)"
		 " INSERT INTO recipients (message_id, position, email, domain, kind, status, attempts, bounce_type, bounce_category,"
		 " last_code, lease_owner)"
		 " SELECT m.id, p, 'U' || p || '.' || substr(m.id::text, 1, 8) || '@%s', '%s', 'to', '%s', 3, 'permanent', 'mailbox', 550, NULL"
		 " FROM m, generate_series(1, %d) p",
		 tag, st, n, domain, domain, st, per);
	th_sql_do(url, sql);
}

Test(replay, filters_suppressions_idempotency_and_events)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	seed(url, 10, 2, "x.test", "bounced", "news");
	seed(url, 5, 1, "y.test", "failed", "receipts");
	seed(url, 3, 1, "x.test", "delivered", "news");
	/* One bounced x.test address is suppressed; one message's body has expired. */
	th_sql_do(url, "INSERT INTO suppressions (email, reason) SELECT lower(email), 'bounce' FROM recipients"
		    " WHERE domain = 'x.test' AND status = 'bounced' ORDER BY id LIMIT 1");
	th_sql_do(url, "UPDATE messages SET body = NULL WHERE id = (SELECT message_id FROM recipients"
		    " WHERE domain = 'x.test' AND status = 'bounced' ORDER BY id DESC LIMIT 1)");

	struct db_pool *pool = db_pool_new(url, 2);
	char err[512];
	struct db_replay_result r;
	struct db_replay_filter f = { .statuses = DB_REPLAY_BOUNCED, .domain = "X.TEST" };

	/* Dry run: counts, changes nothing. */
	cr_assert_eq(db_replay_count(pool, &f, 0, NULL, NULL, &r, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(r.matched, 20);
	cr_assert_eq(r.skipped_suppressed, 1);
	cr_assert_eq(r.skipped_expired, 2);
	cr_assert_eq(r.requeued, 0);
	th_sql_eq(url, "SELECT count(*) FROM recipients WHERE status = 'queued'", "0");

	/* The wrong status set or domain matches nothing. */
	struct db_replay_filter none = { .statuses = DB_REPLAY_FAILED, .domain = "x.test" };
	cr_assert_eq(db_replay_count(pool, &none, 0, NULL, NULL, &r, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(r.matched, 0);

	/* The real replay. */
	cr_assert_eq(db_replay_run(pool, &f, "cli", 7, NULL, NULL, &r, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(r.matched, 20);
	cr_assert_eq(r.requeued, 17);
	cr_assert_eq(r.skipped_suppressed, 1);
	cr_assert_eq(r.skipped_expired, 2);
	cr_assert_eq(r.batches, 3, "20 rows in batches of 7: %ld", r.batches);
	th_sql_eq(url, "SELECT count(*) FROM recipients WHERE status = 'queued' AND domain = 'x.test' AND attempts = 3"
		    " AND bounce_type IS NULL AND bounce_category IS NULL AND next_attempt_at <= now()"
		    " AND first_attempt_at IS NULL", "17");
	th_sql_eq(url, "SELECT count(*) FROM recipients WHERE status = 'failed'", "5");
	th_sql_eq(url, "SELECT count(*) FROM recipients WHERE status = 'delivered'", "3");
	th_sql_eq(url, "SELECT count(*) FROM events WHERE type = 'message.requeued'"
		    " AND payload->'data'->>'requested_by' = 'cli' AND payload->'data'->>'status' = 'queued'"
		    " AND (payload->'data'->>'attempt')::int = 3", "17");
	/* Message status follows the recipients. */
	th_sql_eq(url, "SELECT count(*) FROM messages WHERE status = 'queued'", "8");

	/* Posting the same replay again requeues nothing new. */
	cr_assert_eq(db_replay_run(pool, &f, "cli", 7, NULL, NULL, &r, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(r.requeued, 0);
	cr_assert_eq(r.matched, 3, "only the skipped ones still match: %ld", r.matched);
	th_sql_eq(url, "SELECT count(*) FROM events WHERE type = 'message.requeued'", "17");

	/* Tag and created window. */
	struct db_replay_filter tagf = { .statuses = DB_REPLAY_ALL, .tag = "receipts",
					 .created_after = "2000-01-01T00:00:00Z" };
	cr_assert_eq(db_replay_count(pool, &tagf, 0, NULL, NULL, &r, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(r.matched, 5);
	char *before = th_sql(url, "SELECT to_char((now() - interval '150 minutes') AT TIME ZONE 'UTC',"
				   " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')");
	tagf.created_before = before;
	cr_assert_eq(db_replay_count(pool, &tagf, 0, NULL, NULL, &r, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(r.matched, 3, "messages 3..5 hours old: %ld", r.matched);
	free(before);

	/* One message. */
	char *mid = th_sql(url, "SELECT message_id FROM recipients WHERE status = 'failed' ORDER BY id LIMIT 1");
	struct db_replay_filter one = { .statuses = DB_REPLAY_ALL, .message_id = mid };
	cr_assert_eq(db_replay_run(pool, &one, "api_key:1", 0, NULL, NULL, &r, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(r.requeued, 1);
	th_sql_eq(url, "SELECT count(*) FROM recipients WHERE status = 'failed'", "4");
	free(mid);

	/* A bad filter is an error, not a replay of everything. */
	struct db_replay_filter bad = { 0 };
	cr_assert_eq(db_replay_run(pool, &bad, "cli", 0, NULL, NULL, &r, err, sizeof(err)), -1);

	db_pool_free(pool);
	th_db_drop(url);
	free(url);
}

struct progress_seen {
	long calls, last_requeued;
	int monotonic;
};

static void on_progress(const struct db_replay_result *r, void *arg)
{
	struct progress_seen *p = arg;
	if (r->requeued < p->last_requeued)
		p->monotonic = 0;
	p->last_requeued = r->requeued;
	p->calls++;
}

Test(replay, bulk_100k_in_bounded_batches)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	seed(url, 20000, 5, "bulk.test", "bounced", "bulk");
	th_sql_eq(url, "SELECT count(*) FROM recipients", "100000");
	struct db_pool *pool = db_pool_new(url, 2);
	char err[512];
	struct db_replay_result r;
	struct db_replay_filter f = { .statuses = DB_REPLAY_BOUNCED | DB_REPLAY_FAILED, .domain = "bulk.test" };
	struct progress_seen seen = { .monotonic = 1 };
	long t0 = th_now_ms();
	cr_assert_eq(db_replay_run(pool, &f, "cli", 1000, on_progress, &seen, &r, err, sizeof(err)), 0, "%s", err);
	long ms = th_now_ms() - t0;
	cr_log_info("replayed 100000 recipients in %ld ms, %ld batches", ms, r.batches);
	cr_assert_eq(r.matched, 100000);
	cr_assert_eq(r.requeued, 100000);
	cr_assert_eq(r.batches, 100);
	cr_assert_eq(seen.calls, 100);
	cr_assert(seen.monotonic);
	/* Every row touched exactly once: one event each, all queued. */
	th_sql_eq(url, "SELECT count(*) FROM recipients WHERE status = 'queued' AND attempts = 3", "100000");
	th_sql_eq(url, "SELECT count(*) FROM events WHERE type = 'message.requeued'", "100000");
	th_sql_eq(url, "SELECT count(DISTINCT recipient_id) FROM events WHERE type = 'message.requeued'", "100000");
	th_sql_eq(url, "SELECT count(*) FROM messages WHERE status <> 'queued'", "0");
	/* Batches are separate transactions: the events carry 100 distinct txids. */
	th_sql_eq(url, "SELECT count(DISTINCT txid) FROM events WHERE type = 'message.requeued'", "100");
	db_pool_free(pool);
	th_db_drop(url);
	free(url);
}

struct replay_thread {
	struct db_pool *pool;
	struct db_replay_filter f;
	struct db_replay_result r;
	int rc;
	char err[512];
};

static void *replay_thread_main(void *arg)
{
	struct replay_thread *t = arg;
	t->rc = db_replay_run(t->pool, &t->f, "cli", 0, NULL, NULL, &t->r, t->err, sizeof(t->err));
	return NULL;
}

/* A writer that locks a message, then its recipients (the opposite order of
 * a replay batch) makes the replay a deadlock victim: the batch is retried
 * and nothing is counted or recorded twice. */
Test(replay, deadlock_victim_batch_is_retried)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	seed(url, 1, 3, "dl.test", "bounced", "t");
	char *mid = th_sql(url, "SELECT id FROM messages");
	PGconn *other = PQconnectdb(url);
	cr_assert_eq(PQstatus(other), CONNECTION_OK);
	const char *params[] = { mid };
	/* The replay's backend (default 1 s) must be the one that detects the
	 * deadlock: this session looks much later. */
	PQclear(PQexec(other, "SET deadlock_timeout = '60s'"));
	PQclear(PQexec(other, "BEGIN"));
	PGresult *res = PQexecParams(other, "UPDATE messages SET subject = subject WHERE id = $1::uuid", 1, NULL,
				     params, NULL, NULL, 0);
	cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);

	struct replay_thread t = { .pool = db_pool_new(url, 1),
				   .f = { .statuses = DB_REPLAY_BOUNCED, .domain = "dl.test" } };
	pthread_t th;
	pthread_create(&th, NULL, replay_thread_main, &t);
	/* Wait until the replay holds the recipients and waits for the message. */
	int waiting = 0;
	for (int i = 0; i < 250 && !waiting; i++) {
		char *w = th_sql(url, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
				      " AND query LIKE '%mf_refresh_message_status%'");
		waiting = w && strcmp(w, "1") == 0;
		free(w);
		if (!waiting)
			usleep(20 * 1000);
	}
	cr_assert(waiting, "the replay never waited for the message lock");
	res = PQexecParams(other, "UPDATE recipients SET attempts = attempts WHERE message_id = $1::uuid", 1, NULL,
			   params, NULL, NULL, 0);
	cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(other));
	PQclear(res);
	PQclear(PQexec(other, "COMMIT"));
	pthread_join(th, NULL);
	cr_assert_eq(t.rc, 0, "%s", t.err);
	cr_assert_eq(t.r.requeued, 3);
	cr_assert_eq(t.r.matched, 3);
	cr_assert_eq(t.r.batches, 1);
	th_sql_eq(url, "SELECT count(*) FROM events WHERE type = 'message.requeued'", "3");
	th_sql_eq(url, "SELECT count(*) FROM recipients WHERE status = 'queued'", "3");
	char *dl = th_sql(url, "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()");
	cr_assert_geq(t.r.retries, 1, "the replay was not the deadlock victim (deadlocks %s, err %s)", dl, t.err);
	free(dl);
	db_pool_free(t.pool);
	PQfinish(other);
	free(mid);
	th_db_drop(url);
	free(url);
}
