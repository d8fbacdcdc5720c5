/* Tests for db/migrate.c against a real PostgreSQL (tests/run.sh). */
#include <criterion/criterion.h>
#include <glob.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "db/migrations.h"
#include "db/webhooks.h"
#include "harness.h"
#include "util/xmalloc.h"

Test(migrate, applies_in_order_and_is_idempotent)
{
	char *url = th_db_create(0);
	cr_assert_not_null(url);
	char err[512];
	struct db_pool *pool = db_pool_new(url, 2);
	cr_assert_eq(db_check_ready(pool, err, sizeof(err)), -2, "unmigrated schema must not be ready");
	cr_assert(strstr(err, "not migrated") != NULL, "%s", err);

	cr_assert_eq(db_migrate(url, NULL, err, sizeof(err)), 0, "%s", err);
	char *v = th_sql(url, "SELECT max(version) FROM schema_migrations");
	cr_assert_eq(atoi(v), db_schema_latest());
	free(v);
	char *n1 = th_sql(url, "SELECT count(*) FROM schema_migrations");
	cr_assert_eq(db_migrate(url, NULL, err, sizeof(err)), 0, "second run: %s", err);
	char *n2 = th_sql(url, "SELECT count(*) FROM schema_migrations");
	cr_assert_str_eq(n1, n2, "second migrate must be a no-op");
	free(n1);
	free(n2);
	cr_assert_eq(db_check_ready(pool, err, sizeof(err)), 0, "%s", err);

	/* The claim index exists and is partial. */
	char *idx = th_sql(url, "SELECT indexdef FROM pg_indexes WHERE indexname = 'recipients_due_idx'");
	cr_assert(idx && strstr(idx, "WHERE") != NULL, "claim index must be partial: %s", idx ? idx : "missing");
	free(idx);
	db_pool_free(pool);
	th_db_drop(url);
	free(url);
}

Test(migrate, newer_schema_is_refused)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	free(th_sql(url, "INSERT INTO schema_migrations (version, name) VALUES (9999, 'future')"));
	char err[512];
	struct db_pool *pool = db_pool_new(url, 1);
	cr_assert_eq(db_check_ready(pool, err, sizeof(err)), -2);
	cr_assert(strstr(err, "newer") != NULL, "%s", err);
	cr_assert_eq(db_migrate(url, NULL, err, sizeof(err)), -1);
	db_pool_free(pool);

	/* serve refuses to start against it. */
	char *out = NULL;
	int rc = th_run(&out, "MAILFERRY_DATABASE_URL='%s' MAILFERRY_HTTP_LISTEN=127.0.0.1:%d %s serve", url,
			th_free_port(), th_bin());
	cr_assert_eq(rc, 1, "serve exit %d: %s", rc, out);
	cr_assert(strstr(out, "newer than this mailferry") != NULL, "%s", out);
	free(out);
	th_db_drop(url);
	free(url);
}

Test(migrate, failed_migration_leaves_nothing)
{
	/* A failing migration is rolled back with its schema_migrations row:
	 * simulate by pre-creating a table the first migration creates. */
	char *url = th_db_create(0);
	cr_assert_not_null(url);
	free(th_sql(url, "CREATE TABLE api_keys (x int)"));
	char err[512];
	cr_assert_eq(db_migrate(url, NULL, err, sizeof(err)), -1);
	cr_assert(strstr(err, "0001_init") != NULL, "%s", err);
	char *n = th_sql(url, "SELECT count(*) FROM schema_migrations");
	cr_assert_str_eq(n, "0");
	free(n);
	char *t = th_sql(url, "SELECT count(*) FROM pg_tables WHERE tablename = 'messages'");
	cr_assert_str_eq(t, "0", "a half-applied migration left tables behind");
	free(t);
	th_db_drop(url);
	free(url);
}

Test(migrate, missing_lower_migration_is_not_ready)
{
	/* A database that lacks one of the embedded migrations (e.g. one merged
	 * with a lower number than the newest applied) is not ready. */
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	free(th_sql(url, "INSERT INTO schema_migrations (version, name) VALUES (0, 'placeholder')"));
	free(th_sql(url, "DELETE FROM schema_migrations WHERE version = 1"));
	char err[512];
	struct db_pool *pool = db_pool_new(url, 1);
	cr_assert_eq(db_check_ready(pool, err, sizeof(err)), -2);
	cr_assert(strstr(err, "run mailferry migrate") != NULL, "%s", err);
	db_pool_free(pool);
	th_db_drop(url);
	free(url);
}

/* Runs sql on c; the test fails unless it succeeds. */
static void exec_ok(PGconn *c, const char *sql)
{
	PGresult *res = PQexec(c, sql);
	cr_assert(PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s %s", sql,
		  PQresStatus(PQresultStatus(res)),
		  PQerrorMessage(c));
	PQclear(res);
}

/* The whole file at path, NUL-terminated (caller frees); NULL if unreadable. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	size_t cap = 1 << 16, n = 0, got;
	char *s = xmalloc(cap);
	while ((got = fread(s + n, 1, cap - n - 1, f)) > 0) {
		n += got;
		if (n + 1 == cap)
			s = xrealloc(s, cap *= 2);
	}
	fclose(f);
	s[n] = '\0';
	return s;
}

/*
 * Builds the schema of a mailferry from before db/functions.sql on c, as
 * its "mailferry migrate" did: the migration files of that time
 * (tests/db/schema_0019/, which still define the SQL functions), those
 * numbered below upto, each in its own transaction with its row in
 * schema_migrations.
 */
static void apply_old_schema(PGconn *c, int upto)
{
	exec_ok(c, "SET client_min_messages = warning");
	exec_ok(c, "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
		   " applied_at timestamptz NOT NULL DEFAULT now())");
	glob_t g;
	cr_assert_eq(glob("tests/db/schema_0019/*.sql", 0, NULL, &g), 0, "fixture missing");
	for (size_t i = 0; i < g.gl_pathc; i++) {
		const char *base = strrchr(g.gl_pathv[i], '/') + 1;
		int version = (int)strtol(base, NULL, 10);
		if (version >= upto)
			continue;
		char *sql = slurp(g.gl_pathv[i]);
		cr_assert_not_null(sql, "%s", g.gl_pathv[i]);
		exec_ok(c, "BEGIN");
		exec_ok(c, sql);
		char ins[128];
		snprintf(ins, sizeof(ins), "INSERT INTO schema_migrations (version, name) VALUES (%d, 'old')", version);
		exec_ok(c, ins);
		exec_ok(c, "COMMIT");
		free(sql);
	}
	globfree(&g);
}

/* Every mf_ function of url's database as pg_get_functiondef() shows it. */
static char *function_defs(const char *url)
{
	return th_sql(url, "SELECT string_agg(pg_get_functiondef(p.oid), E'\\n'"
			   "                  ORDER BY p.proname, pg_get_function_identity_arguments(p.oid))"
			   "  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
			   " WHERE n.nspname = 'public' AND p.proname LIKE 'mf\\_%'");
}

/*
 * A database migrated by a mailferry from before db/functions.sql (schema
 * 0019, its functions defined by the migrations) upgrades: migrate adds
 * 0020 and applies db/functions.sql, after which its functions are exactly
 * a fresh database's and the API's SQL works on the rows it had.  /readyz
 * says "not current" before, and again when the recorded functions are
 * not this binary's.
 */
Test(migrate, upgrades_a_0019_database)
{
	char *url = th_db_create(0);
	cr_assert_not_null(url);
	PGconn *c = PQconnectdb(url);
	cr_assert_eq(PQstatus(c), CONNECTION_OK);
	apply_old_schema(c, 20);
	exec_ok(c, "WITH m AS (INSERT INTO messages (id, mail_from, from_header, message_id_hdr, size)"
		   " VALUES ('0190a000-0000-7000-8000-000000000001', 'a@example.org', 'a@example.org',"
		   "         'x@example.org', 10) RETURNING id)"
		   " INSERT INTO recipients (message_id, position, email, domain, kind, status)"
		   " SELECT id, 0, 'r@example.com', 'example.com', 'to', 'queued' FROM m");
	exec_ok(c, "SELECT mf_record_event(id, 'message.queued') FROM recipients");
	PQfinish(c);

	char err[512];
	struct db_pool *pool = db_pool_new(url, 1);
	cr_assert_eq(db_check_ready(pool, err, sizeof(err)), -2);
	/* The count grows with every migration after 0020 (0023: 2). */
	cr_assert(strstr(err, "lacks ") != NULL && strstr(err, " migrations") != NULL, "%s", err);
	cr_assert_eq(db_migrate(url, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(db_check_ready(pool, err, sizeof(err)), 0, "%s", err);

	char *fresh_url = th_db_create(1);
	cr_assert_not_null(fresh_url);
	char *want = function_defs(fresh_url), *got = function_defs(url);
	cr_assert(want && got && want[0] != '\0');
	cr_assert_str_eq(got, want, "the upgraded database's functions differ from a fresh one's");
	free(want);
	free(got);
	th_db_drop(fresh_url);
	free(fresh_url);

	static const char *const checks[] = {
		"SELECT mf_api_message(m, true)->'events'->0->>'id' = 'evt_' || e.public_id::text"
		"  FROM messages m, events e WHERE e.message_id = m.id",
		"SELECT mf_record_event(id, 'message.canceled') > 0 FROM recipients",
		"SELECT count(*) = 2 FROM events",
	};
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		char *v = th_sql(url, checks[i]);
		cr_assert(v && strcmp(v, "t") == 0, "%s: %s", checks[i], v ? v : "(error)");
		free(v);
	}

	/* Functions recorded from another db/functions.sql are not current. */
	free(th_sql(url, "UPDATE schema_functions SET sha256 = 'other'"));
	cr_assert_eq(db_check_ready(pool, err, sizeof(err)), -2);
	cr_assert(strstr(err, "functions") != NULL, "%s", err);
	cr_assert_eq(db_migrate(url, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(db_check_ready(pool, err, sizeof(err)), 0, "%s", err);
	db_pool_free(pool);
	th_db_drop(url);
	free(url);
}

/* Events written before migration 0019 (one with a stored payload naming
 * its old evt_N id, one accept event built on read, both with a webhook
 * delivery pending) get public ids of their own time; the documents,
 * and the webhook-id of the pending deliveries, carry them. */
Test(migrate, events_before_0019_get_public_ids)
{
	char *url = th_db_create(0);
	cr_assert_not_null(url);
	PGconn *c = PQconnectdb(url);
	cr_assert_eq(PQstatus(c), CONNECTION_OK);
	apply_old_schema(c, 19);
	exec_ok(c, "INSERT INTO webhooks (public_id, url, secret) VALUES ('wh_a', 'http://127.0.0.1:9/', 'whsec_x')");
	exec_ok(c, "WITH m AS (INSERT INTO messages (id, mail_from, from_header, message_id_hdr, size)"
		   " VALUES (gen_random_uuid(), 'a@example.org', 'a@example.org', 'x@example.org', 10) RETURNING id),"
		   " r AS (INSERT INTO recipients (message_id, position, email, domain, kind, status)"
		   " SELECT id, 0, 'r@example.com', 'example.com', 'to', 'delivered' FROM m RETURNING id, message_id)"
		   " INSERT INTO events (message_id, recipient_id, type, created_at)"
		   " SELECT message_id, id, 'message.queued', now() - interval '1 day' FROM r");
	exec_ok(c, "SELECT mf_record_event(id, 'message.delivered') FROM recipients");
	PQfinish(c);
	char *v = th_sql(url, "SELECT count(*) FROM events WHERE payload->>'id' LIKE 'evt\\_%' AND payload->>'id' = 'evt_' || id");
	cr_assert_str_eq(v, "1", "the old payload names evt_N");
	free(v);

	char err[512];
	cr_assert_eq(db_migrate(url, NULL, err, sizeof(err)), 0, "%s", err);
	static const char *const checks[] = {
		"SELECT count(*) = 2 AND count(DISTINCT public_id) = 2 FROM events",
		/* UUIDv7 (RFC 9562 section 5.7): version 7, variant 10, the event's milliseconds. */
		"SELECT bool_and(substr(public_id::text, 15, 1) = '7' AND substr(public_id::text, 20, 1) IN ('8', '9', 'a', 'b')"
		" AND ('x' || substr(replace(public_id::text, '-', ''), 1, 12))::bit(48)::bigint"
		"     = floor(date_part('epoch', created_at) * 1000)::bigint) FROM events",
		"SELECT bool_and(mf_event_doc(e)->>'id' = 'evt_' || e.public_id::text) FROM events e",
		"SELECT count(*) = 1 AND bool_and(payload->>'id' = 'evt_' || public_id::text) FROM events"
		" WHERE payload IS NOT NULL",
	};
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		v = th_sql(url, checks[i]);
		cr_assert(v && strcmp(v, "t") == 0, "%s", checks[i]);
		free(v);
	}
	/* Pending deliveries are sent with the events' new ids (one at a
	 * time: both are for one recipient). */
	struct db_pool *pool = db_pool_new(url, 1);
	for (int i = 0; i < 2; i++) {
		struct db_webhook_job job = { 0 };
		err[0] = '\0';
		cr_assert_eq(db_webhook_claim(pool, "w", 60, 1, &job, err, sizeof(err)), 1, "%s", err);
		char *sql = xasprintf("SELECT count(*) FROM events WHERE 'evt_' || public_id::text = '%s'", job.msg_id);
		v = th_sql(url, sql);
		cr_assert_str_eq(v, "1", "%s", job.msg_id);
		free(v);
		free(sql);
		char *want = xasprintf("\"id\": \"%s\"", job.msg_id);
		cr_assert(strstr(job.body, want) != NULL, "%s", job.body);
		free(want);
		cr_assert_eq(db_webhook_finish(pool, job.delivery_id, "w", "succeeded", 200, NULL, 0, 0, 86400.0, err,
					       sizeof(err)), 1, "%s", err);
		db_webhook_job_cleanup(&job);
	}
	db_pool_free(pool);
	/* New events get one from the column's default. */
	free(th_sql(url, "INSERT INTO events (message_id, recipient_id, type)"
			 " SELECT message_id, id, 'message.queued' FROM recipients"));
	v = th_sql(url, "SELECT count(DISTINCT public_id) = 3 AND bool_and(substr(public_id::text, 15, 1) = '7')"
			" FROM events");
	cr_assert_str_eq(v, "t");
	free(v);
	th_db_drop(url);
	free(url);
}
