/*
 * suppressions.c - the suppression list (see suppressions.h).
 * Parameterised queries only; events follow mf_event_payload's shape
 * ({"id","type","timestamp","data"}) with the address in data.
 */
#include "db/suppressions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/internal.h"

#define COLS "email, reason, coalesce(message_id::text, ''), coalesce(diagnostic, ''), " \
	     "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* The event insert shared by add and remove: $type, then the row's data. */
#define EVENT_SQL(type, src)                                                                       \
	" INSERT INTO events (public_id, type, payload)"                                           \
	" SELECT pid, '" type "', jsonb_build_object('id', mf_event_id(pid), 'type', '" type "',"  \
	"   'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"  \
	"   'data', jsonb_build_object('email', email, 'reason', reason, 'message_id', message_id," \
	"                              'source', " src "))"                                        \
	" FROM ev"

static int rows(PGconn *c, PGresult *res, void (*fn)(const struct db_suppression *, void *), void *arg,
		char *err, size_t errlen)
{
	if (!db_res_ok(res, PGRES_TUPLES_OK)) {
		db_set_error(c, res, err, errlen);
		PQclear(res);
		return -1;
	}
	int n = PQntuples(res);
	for (int i = 0; i < n && fn; i++) {
		struct db_suppression s = {
			.email = PQgetvalue(res, i, 0), .reason = PQgetvalue(res, i, 1),
			.message_id = PQgetvalue(res, i, 2), .diagnostic = PQgetvalue(res, i, 3),
			.created_at = PQgetvalue(res, i, 4),
		};
		fn(&s, arg);
	}
	PQclear(res);
	return n;
}

int db_suppression_list(struct db_pool *pool, const char *reason, const char *after, int limit,
			void (*fn)(const struct db_suppression *s, void *arg), void *arg, char *err, size_t errlen)
{
	char lim[16];
	snprintf(lim, sizeof(lim), "%d", limit);
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	const char *params[] = { reason, after, lim };
	PGresult *res = PQexecParams(c,
		"SELECT " COLS " FROM suppressions"
		" WHERE ($1::text IS NULL OR reason = $1) AND ($2::text IS NULL OR email > lower($2))"
		" ORDER BY email LIMIT $3::int", 3, NULL, params, NULL, NULL, 0);
	int n = rows(c, res, fn, arg, err, errlen);
	db_conn_put(pool, c);
	return n;
}

int db_suppression_get(struct db_pool *pool, const char *email,
		       void (*fn)(const struct db_suppression *s, void *arg), void *arg, char *err, size_t errlen)
{
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	const char *params[] = { email };
	PGresult *res = PQexecParams(c, "SELECT " COLS " FROM suppressions WHERE email = lower($1)", 1, NULL,
				     params, NULL, NULL, 0);
	int n = rows(c, res, fn, arg, err, errlen);
	db_conn_put(pool, c);
	return n;
}

/* Runs sql on c (which goes back to pool): 1 when it returned a row, 0
 * when none, -1 with err set on failure. */
static int exec_any_row(struct db_pool *pool, PGconn *c, const char *sql, int n, const char *const *params,
			char *err, size_t errlen)
{
	PGresult *res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
	int found = -1;
	if (db_res_ok(res, PGRES_TUPLES_OK))
		found = PQntuples(res) > 0;
	else
		db_set_error(c, res, err, errlen);
	PQclear(res);
	db_conn_put(pool, c);
	return found;
}

int db_suppression_add(struct db_pool *pool, const char *email, const char *reason, const char *source,
		       void (*fn)(const struct db_suppression *s, void *arg), void *arg, char *err, size_t errlen)
{
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	const char *params[] = { email, reason, source };
	/* One statement, so the row and its event commit together. */
	int added = exec_any_row(pool, c,
		"WITH ins AS (INSERT INTO suppressions (email, reason) VALUES (lower($1), $2)"
		"   ON CONFLICT (email) DO NOTHING RETURNING *),"
		" ev AS (SELECT mf_uuidv7() AS pid, ins.* FROM ins),"
		" e AS (" EVENT_SQL("suppression.created", "$3::text") " RETURNING 1)"
		" SELECT 1 FROM e", 3, params, err, errlen);
	if (added >= 0 && db_suppression_get(pool, email, fn, arg, err, errlen) < 0)
		added = -1;
	return added;
}

int db_suppression_remove(struct db_pool *pool, const char *email, const char *source, char *err, size_t errlen)
{
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	const char *params[] = { email, source };
	return exec_any_row(pool, c,
		"WITH d AS (DELETE FROM suppressions WHERE email = lower($1) RETURNING *),"
		" ev AS (SELECT mf_uuidv7() AS pid, d.* FROM d),"
		" e AS (" EVENT_SQL("suppression.removed", "$2::text") " RETURNING 1)"
		" SELECT 1 FROM e", 2, params, err, errlen);
}
