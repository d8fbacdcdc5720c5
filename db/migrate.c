/*
 * migrate.c - schema migrations and the readiness check (see db.h).
 *
 * The migrations and db/functions.sql are compiled in (db/migrations.h).
 * db_migrate() takes a session advisory lock so that two migrators never
 * race, applies each missing migration in its own transaction together
 * with its row in schema_migrations, then - on every run, still under the
 * lock - applies db/functions.sql (every SQL function's current
 * definition, idempotent) in one transaction with its SHA-256 in
 * schema_functions (migration 0020).  Running it again changes nothing.
 * db_check_ready() says the schema is current when every migration is
 * recorded and schema_functions holds this binary's SHA-256.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/internal.h"
#include "db/migrations.h"

/* Arbitrary constant: the advisory lock key of "mailferry migrate". */
#define MIGRATE_LOCK_KEY "7242011"

int db_schema_latest(void)
{
	return db_migrations_count ? db_migrations[db_migrations_count - 1].version : 0;
}

/*
 * Reads which migrations are applied: *count of the embedded ones, *newest
 * version recorded (which may be one this binary does not know).  Returns
 * 0, or -1 with err set.  A database without schema_migrations has none.
 */
static int applied_state(PGconn *c, int *count, int *newest, char *err, size_t errlen)
{
	*count = 0;
	*newest = 0;
	PGresult *res = PQexec(c, "SELECT to_regclass('schema_migrations') IS NOT NULL");
	if (!db_res_ok(res, PGRES_TUPLES_OK)) {
		db_set_error(c, res, err, errlen);
		PQclear(res);
		return -1;
	}
	int exists = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	if (!exists)
		return 0;
	res = PQexec(c, "SELECT version FROM schema_migrations ORDER BY version");
	if (!db_res_ok(res, PGRES_TUPLES_OK)) {
		db_set_error(c, res, err, errlen);
		PQclear(res);
		return -1;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		int v = (int)strtol(PQgetvalue(res, i, 0), NULL, 10);
		if (v > *newest)
			*newest = v;
		for (int k = 0; k < db_migrations_count; k++)
			if (db_migrations[k].version == v)
				(*count)++;
	}
	PQclear(res);
	return 0;
}

/* 1 when the one-parameter query finds a row, 0 when not, -1 on error. */
static int row_exists(PGconn *c, const char *sql, const char *param, char *err, size_t errlen)
{
	const char *params[] = { param };
	PGresult *res = PQexecParams(c, sql, 1, NULL, params, NULL, NULL, 0);
	int rc = -1;
	if (db_res_ok(res, PGRES_TUPLES_OK))
		rc = PQntuples(res) > 0;
	else
		db_set_error(c, res, err, errlen);
	PQclear(res);
	return rc;
}

/* 1 when migration version v is recorded as applied. */
static int is_applied(PGconn *c, int v, char *err, size_t errlen)
{
	char ver[16];
	snprintf(ver, sizeof(ver), "%d", v);
	return row_exists(c, "SELECT 1 FROM schema_migrations WHERE version = $1", ver, err, errlen);
}

/* Runs one migration's SQL; a migration of comments only (its functions
 * moved to db/functions.sql) is an empty query, which is fine. */
static int exec_migration(PGconn *c, const char *sql, char *err, size_t errlen)
{
	PGresult *res = PQexec(c, sql);
	int ok = db_res_ok(res, PGRES_COMMAND_OK) || db_res_ok(res, PGRES_TUPLES_OK) ||
		 db_res_ok(res, PGRES_EMPTY_QUERY);
	if (!ok)
		db_set_error(c, res, err, errlen);
	PQclear(res);
	return ok ? 0 : -1;
}

/* Runs sql, then the statement that records it (record, with nparams
 * params), in one transaction; what names sql prefixes a failure of it. */
static int apply_and_record(PGconn *c, const char *sql, const char *what, const char *record, int nparams,
			    const char *const *params, char *err, size_t errlen)
{
	if (db_exec(c, "BEGIN", err, errlen) < 0)
		return -1;
	if (exec_migration(c, sql, err, errlen) < 0) {
		char inner[512];
		snprintf(inner, sizeof(inner), "%s", err);
		snprintf(err, errlen, "%s failed: %s", what, inner);
		PQclear(PQexec(c, "ROLLBACK"));
		return -1;
	}
	PGresult *res = PQexecParams(c, record, nparams, NULL, params, NULL, NULL, 0);
	int ok = db_res_ok(res, PGRES_COMMAND_OK);
	if (!ok)
		db_set_error(c, res, err, errlen);
	PQclear(res);
	if (!ok) {
		PQclear(PQexec(c, "ROLLBACK"));
		return -1;
	}
	return db_exec(c, "COMMIT", err, errlen);
}

/* Applies db/functions.sql and records its SHA-256, in one transaction. */
static int apply_functions(PGconn *c, char *err, size_t errlen)
{
	const char *params[] = { db_functions_sha256 };
	return apply_and_record(c, db_functions_sql, "db/functions.sql",
				"INSERT INTO schema_functions (id, sha256) VALUES (true, $1)"
				" ON CONFLICT (id) DO UPDATE SET sha256 = EXCLUDED.sha256, applied_at = now()",
				1, params, err, errlen);
}

/* 1 when schema_functions records this binary's db/functions.sql, 0 when
 * not, -1 on error. */
static int functions_current(PGconn *c, char *err, size_t errlen)
{
	return row_exists(c, "SELECT 1 FROM schema_functions WHERE sha256 = $1", db_functions_sha256, err, errlen);
}

static int apply_one(PGconn *c, const struct db_migration *m, char *err, size_t errlen)
{
	char ver[16], what[160];
	snprintf(ver, sizeof(ver), "%d", m->version);
	snprintf(what, sizeof(what), "migration %04d_%s", m->version, m->name);
	const char *params[] = { ver, m->name };
	return apply_and_record(c, m->sql, what, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2,
				params, err, errlen);
}

static int migrate_locked(PGconn *c, FILE *progress, char *err, size_t errlen)
{
	if (db_exec(c, "SET client_min_messages = warning", err, errlen) < 0 ||
	    db_exec(c, "CREATE TABLE IF NOT EXISTS schema_migrations ("
		       " version integer PRIMARY KEY, name text NOT NULL,"
		       " applied_at timestamptz NOT NULL DEFAULT now())", err, errlen) < 0)
		return -1;
	int count, newest;
	if (applied_state(c, &count, &newest, err, errlen) < 0)
		return -1;
	if (newest > db_schema_latest()) {
		snprintf(err, errlen, "database schema version %d is newer than this mailferry (%d)",
			 newest, db_schema_latest());
		return -1;
	}
	/* Every embedded migration not yet recorded is applied, in order, so a
	 * migration merged with a lower number than one already applied still
	 * runs. */
	for (int i = 0; i < db_migrations_count; i++) {
		const struct db_migration *m = &db_migrations[i];
		int applied = is_applied(c, m->version, err, errlen);
		if (applied < 0)
			return -1;
		if (applied)
			continue;
		if (apply_one(c, m, err, errlen) < 0)
			return -1;
		if (progress)
			fprintf(progress, "applied %04d_%s\n", m->version, m->name);
	}
	if (apply_functions(c, err, errlen) < 0)
		return -1;
	if (progress)
		fprintf(progress, "schema at version %d\n", db_schema_latest());
	return 0;
}

int db_migrate(const char *conninfo, FILE *progress, char *err, size_t errlen)
{
	PGconn *c = db_connect(conninfo, err, errlen);
	if (c == NULL)
		return -1;
	int rc = db_exec(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", err, errlen);
	if (rc == 0)
		rc = migrate_locked(c, progress, err, errlen);
	PQfinish(c); /* releases the advisory lock */
	return rc;
}

int db_check_ready(struct db_pool *pool, char *err, size_t errlen)
{
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	int count, newest;
	int rc = applied_state(c, &count, &newest, err, errlen);
	int fresh = 0;
	if (rc == 0 && newest > 0 && newest <= db_schema_latest() && count == db_migrations_count)
		fresh = functions_current(c, err, errlen);
	db_conn_put(pool, c);
	if (rc < 0 || fresh < 0)
		return -1;
	if (newest == 0) {
		snprintf(err, errlen, "database is not migrated: run mailferry migrate");
		return -2;
	}
	if (newest > db_schema_latest()) {
		snprintf(err, errlen, "database schema version %d is newer than this mailferry (%d): upgrade mailferry",
			 newest, db_schema_latest());
		return -2;
	}
	if (count < db_migrations_count) {
		snprintf(err, errlen, "database schema lacks %d of this mailferry's %d migrations: run mailferry migrate",
			 db_migrations_count - count, db_migrations_count);
		return -2;
	}
	if (!fresh) {
		snprintf(err, errlen, "database functions are not this mailferry's (db/functions.sql): run mailferry migrate");
		return -2;
	}
	return 0;
}
