/*
 * migrate.c - schema migrations and the readiness check (see db.h).
 *
 * The migrations are compiled in (db/migrations.h).  db_migrate() takes a
 * session advisory lock so that two migrators never race, then applies each
 * missing migration in its own transaction together with its row in
 * schema_migrations.  Running it again is a no-op.
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

/* Reads the applied version; -1 with err on error, 0 when not migrated. */
static int applied_version(PGconn *c, int *version, char *err, size_t errlen)
{
	PGresult *res = PQexec(c, "SELECT to_regclass('schema_migrations') IS NOT NULL");
	if (!db_res_ok(res, PGRES_TUPLES_OK)) {
		db_set_error(c, res, err, errlen);
		PQclear(res);
		return -1;
	}
	int exists = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	*version = 0;
	if (!exists)
		return 0;
	res = PQexec(c, "SELECT coalesce(max(version), 0) FROM schema_migrations");
	if (!db_res_ok(res, PGRES_TUPLES_OK)) {
		db_set_error(c, res, err, errlen);
		PQclear(res);
		return -1;
	}
	*version = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

static int apply_one(PGconn *c, const struct db_migration *m, char *err, size_t errlen)
{
	char ver[16];
	snprintf(ver, sizeof(ver), "%d", m->version);
	if (db_exec(c, "BEGIN", err, errlen) < 0)
		return -1;
	if (db_exec(c, m->sql, err, errlen) < 0) {
		char inner[512];
		snprintf(inner, sizeof(inner), "%s", err);
		snprintf(err, errlen, "migration %04d_%s failed: %s", m->version, m->name, inner);
		PQclear(PQexec(c, "ROLLBACK"));
		return -1;
	}
	const char *params[] = { ver, m->name };
	PGresult *res = PQexecParams(c, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
				     2, NULL, params, NULL, NULL, 0);
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

static int migrate_locked(PGconn *c, FILE *progress, char *err, size_t errlen)
{
	if (db_exec(c, "SET client_min_messages = warning", err, errlen) < 0 ||
	    db_exec(c, "CREATE TABLE IF NOT EXISTS schema_migrations ("
		       " version integer PRIMARY KEY, name text NOT NULL,"
		       " applied_at timestamptz NOT NULL DEFAULT now())", err, errlen) < 0)
		return -1;
	int current;
	if (applied_version(c, &current, err, errlen) < 0)
		return -1;
	if (current > db_schema_latest()) {
		snprintf(err, errlen, "database schema version %d is newer than this mailferry (%d)",
			 current, db_schema_latest());
		return -1;
	}
	for (int i = 0; i < db_migrations_count; i++) {
		const struct db_migration *m = &db_migrations[i];
		if (m->version <= current)
			continue;
		if (apply_one(c, m, err, errlen) < 0)
			return -1;
		if (progress)
			fprintf(progress, "applied %04d_%s\n", m->version, m->name);
	}
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
	int version;
	int rc = applied_version(c, &version, err, errlen);
	db_conn_put(pool, c);
	if (rc < 0)
		return -1;
	if (version == 0) {
		snprintf(err, errlen, "database is not migrated: run mailferry migrate");
		return -2;
	}
	if (version < db_schema_latest()) {
		snprintf(err, errlen, "database schema is at version %d, this mailferry needs %d: run mailferry migrate",
			 version, db_schema_latest());
		return -2;
	}
	if (version > db_schema_latest()) {
		snprintf(err, errlen, "database schema version %d is newer than this mailferry (%d): upgrade mailferry",
			 version, db_schema_latest());
		return -2;
	}
	return 0;
}
