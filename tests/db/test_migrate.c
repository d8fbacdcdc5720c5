/* Tests for db/migrate.c against a real PostgreSQL (tests/run.sh). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "harness.h"

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
