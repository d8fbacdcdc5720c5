/*
 * Tests for retention (db/retention.c and the housekeeper thread in
 * queue/retention.c) against a real PostgreSQL: what is cleared, what is
 * kept (recent mail, mail still in the queue), batching, idempotency.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/db.h"
#include "db/retention.h"
#include "harness.h"
#include "th_assert.h"
#include "queue/retention.h"
#include "util/config.h"
#include "util/log.h"
#include "util/metrics.h"

/* n messages aged `age` (an interval), one recipient in status st, one event each. */
static void seed(const char *url, int n, const char *age, const char *st)
{
	char sql[2048];
	snprintf(sql, sizeof(sql),
		 "WITH m AS (INSERT INTO messages (id, created_at, mail_from, from_header, message_id_hdr, size, body, request)"
		 " SELECT gen_random_uuid(), now() - interval '%s', 'a@src.test', 'a@src.test', 'mid', 4, 'secret body',"
		 " '{\"text\":\"secret\"}' FROM generate_series(1, %d) RETURNING id, created_at),"
		 " r AS (INSERT INTO recipients (message_id, position, email, domain, kind, status)"
		 " SELECT id, 1, 'u@x.test', 'x.test', 'to', '%s' FROM m RETURNING id, message_id)"
		 " INSERT INTO events (message_id, recipient_id, type, created_at, payload)"
		 " SELECT r.message_id, r.id, 'message.%s', m.created_at, '{}' FROM r JOIN m ON m.id = r.message_id",
		 age, n, st, st);
	th_sql_do(url, sql);
}

Test(retention, batches_clear_old_and_keep_recent_and_queued)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	seed(url, 7, "40 days", "delivered");   /* body goes, metadata stays */
	seed(url, 3, "100 days", "bounced");    /* everything goes */
	seed(url, 2, "100 days", "deferred");   /* still in the queue: kept whole */
	seed(url, 4, "1 day", "delivered");     /* recent: kept */
	th_sql_do(url, "INSERT INTO api_keys (name, public_id, salt, hash, scopes) VALUES ('k', 'p', '\\x00', '\\x00', '{send}')");
	th_sql_do(url, "INSERT INTO idempotency_keys (api_key_id, key, request_hash, created_at)"
		    " SELECT 1, 'k' || g, '\\x00', now() - (g || ' hours')::interval FROM generate_series(1, 30) g");
	th_sql_do(url, "INSERT INTO bounces_raw (received_at, source, raw)"
		    " SELECT now() - (g * 20 || ' days')::interval, 'smtp', 'x' FROM generate_series(1, 6) g");

	struct db_pool *pool = db_pool_new(url, 1);
	char err[512];
	const long day = 86400;
	/* Bodies: 7 + 3 old settled messages, batch 4 -> 4, 4, 2, 0. */
	int seen[8], k = 0;
	int n;
	while ((n = db_retention_batch(pool, DB_RET_BODIES, 30 * day, 4, err, sizeof(err))) > 0 && k < 8)
		seen[k++] = n;
	cr_assert_eq(n, 0, "%s", err);
	cr_assert_eq(k, 3);
	cr_assert_eq(seen[0] + seen[1] + seen[2], 10);
	cr_assert_eq(seen[0], 4);
	th_sql_eq(url, "SELECT count(*) FROM messages WHERE body IS NULL AND request IS NULL", "10");
	th_sql_eq(url, "SELECT count(*) FROM messages m JOIN recipients r ON r.message_id = m.id"
		    " WHERE m.body IS NOT NULL AND (r.status = 'deferred' OR m.created_at > now() - interval '2 days')", "6");
	/* Events, messages, raw bounces after 90 days. */
	cr_assert_eq(db_retention_batch(pool, DB_RET_EVENTS, 90 * day, 100, err, sizeof(err)), 5, "%s", err);
	cr_assert_eq(db_retention_batch(pool, DB_RET_MESSAGES, 90 * day, 100, err, sizeof(err)), 3, "%s", err);
	cr_assert_eq(db_retention_batch(pool, DB_RET_BOUNCES, 90 * day, 100, err, sizeof(err)), 2, "%s", err);
	cr_assert_eq(db_retention_batch(pool, DB_RET_IDEMPOTENCY, 24 * 3600, 100, err, sizeof(err)), 7, "%s", err);
	th_sql_eq(url, "SELECT count(*) FROM messages", "13");
	th_sql_eq(url, "SELECT count(*) FROM recipients", "13");
	th_sql_eq(url, "SELECT count(*) FROM recipients WHERE status = 'deferred'", "2");
	/* No foreign key cascades since migration 0013: retention deletes
	 * a message's recipients itself. */
	th_sql_eq(url, "SELECT count(*) FROM recipients r WHERE NOT EXISTS"
		    " (SELECT 1 FROM messages m WHERE m.id = r.message_id)", "0");
	th_sql_eq(url, "SELECT count(*) FROM events", "11");
	th_sql_eq(url, "SELECT count(*) FROM bounces_raw", "4");
	th_sql_eq(url, "SELECT count(*) FROM idempotency_keys", "23");
	/* Idempotent: a second pass finds nothing. */
	for (int kind = 0; kind < DB_RET_KINDS; kind++)
		cr_assert_eq(db_retention_batch(pool, (enum db_retention_kind)kind, kind == DB_RET_BODIES ? 30 * day :
			     kind == DB_RET_IDEMPOTENCY ? 24 * 3600 : 90 * day, 100, err, sizeof(err)), 0,
			     "%s: %s", db_retention_name((enum db_retention_kind)kind), err);
	/* The body index of 0006 serves the body query. */
	th_sql_eq(url, "SELECT count(*) FROM pg_indexes WHERE indexname = 'messages_body_kept_idx'", "1");
	db_pool_free(pool);
	th_db_drop(url);
	free(url);
}

/* An accept event stores no payload (mf_event_doc builds it from its
 * message); when the message goes before the event, the document is
 * stored first, the same as it read before. */
Test(retention, deleted_message_leaves_its_accept_events_whole)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	seed(url, 3, "100 days", "bounced");
	th_sql_do(url, "INSERT INTO events (message_id, recipient_id, type)"
		    " SELECT r.message_id, r.id, 'message.queued' FROM recipients r");
	th_sql_do(url, "CREATE TABLE before AS SELECT e.id, mf_event_doc(e) AS doc FROM events e WHERE e.payload IS NULL");
	th_sql_eq(url, "SELECT count(*) FROM before WHERE doc->'data'->>'recipient' = 'u@x.test'", "3");
	struct db_pool *pool = db_pool_new(url, 1);
	char err[512];
	cr_assert_eq(db_retention_batch(pool, DB_RET_MESSAGES, 90 * 86400L, 100, err, sizeof(err)), 3, "%s", err);
	th_sql_eq(url, "SELECT count(*) FROM messages", "0");
	th_sql_eq(url, "SELECT count(*) FROM events WHERE payload IS NULL", "0");
	th_sql_eq(url, "SELECT count(*) FROM events e JOIN before b ON b.id = e.id WHERE mf_event_doc(e) = b.doc", "3");
	db_pool_free(pool);
	th_db_drop(url);
	free(url);
}

/* Per-destination control rows (0023) are forgotten after a day without
 * traffic, unless paused or with a job in flight. */
Test(retention, idle_destinations_are_forgotten)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	th_sql_do(url, "INSERT INTO destinations (domain, lim, paused_until, tokens, tokens_at, updated_at) VALUES"
		    " ('idle.test', 4, NULL, NULL, NULL, now() - interval '2 days'),"
		    " ('was-paused.test', 1, now() - interval '1 day', NULL, NULL, now() - interval '3 days'),"
		    " ('paused.test', 1, now() + interval '1 hour', NULL, NULL, now() - interval '2 days'),"
		    " ('busy.test', 2, NULL, NULL, NULL, now() - interval '2 days'),"
		    " ('rated.test', 1, NULL, 3, now() - interval '1 minute', now() - interval '2 days'),"
		    " ('recent.test', 8, NULL, NULL, NULL, now() - interval '1 hour')");
	seed(url, 1, "1 hour", "sending");
	th_sql_do(url, "UPDATE recipients SET domain = 'busy.test'");
	struct db_pool *pool = db_pool_new(url, 1);
	char err[512];
	cr_assert_eq(db_retention_batch(pool, DB_RET_DESTINATIONS, 86400, 1, err, sizeof(err)), 1, "%s", err);
	cr_assert_eq(db_retention_batch(pool, DB_RET_DESTINATIONS, 86400, 100, err, sizeof(err)), 1, "%s", err);
	cr_assert_eq(db_retention_batch(pool, DB_RET_DESTINATIONS, 86400, 100, err, sizeof(err)), 0, "%s", err);
	th_sql_eq(url, "SELECT string_agg(domain, ',' ORDER BY domain) FROM destinations",
		  "busy.test,paused.test,rated.test,recent.test");
	db_pool_free(pool);
	th_db_drop(url);
	free(url);
}

Test(retention, housekeeper_thread_runs_and_stops)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	seed(url, 1200, "40 days", "delivered");
	struct config cfg;
	char err[512];
	setenv("MAILFERRY_DATABASE_URL", url, 1);
	cr_assert_eq(config_load(&cfg, "/dev/null", err, sizeof(err)), 0, "%s", err);
	unsetenv("MAILFERRY_DATABASE_URL");
	struct db_pool *pool = db_pool_new(url, 2);
	struct metrics *m = metrics_new();
	log_setup(MF_LOG_WARN, 0);
	struct retention *r = retention_start(&cfg, pool, m);
	cr_assert_not_null(r);
	char *left = NULL;
	for (int i = 0; i < 200; i++) {
		free(left);
		left = th_sql(url, "SELECT count(*) FROM messages WHERE body IS NOT NULL");
		if (left && strcmp(left, "0") == 0)
			break;
		usleep(50 * 1000);
	}
	cr_assert_str_eq(left, "0", "bodies left: %s", left);
	free(left);
	retention_stop(r);
	struct buf out;
	buf_init(&out, 1 << 20);
	metrics_render(m, &out);
	cr_assert(strstr(buf_cstr(&out), "mailferry_retention_rows_total{kind=\"bodies\"} 1200"), "%s", buf_cstr(&out));
	buf_cleanup(&out);
	metrics_free(m);
	db_pool_free(pool);
	config_cleanup(&cfg);
	th_db_drop(url);
	free(url);
}
