/*
 * sts_cache.c - the MTA-STS policy cache's two statements (see
 * sts_cache.h).  Parameterised queries only; the mx patterns travel as
 * one text, a line each, and are stored as text[].
 */
#include "db/sts_cache.h"

#include <stdio.h>
#include <stdlib.h>

#include "db/internal.h"

int db_sts_get(struct db_pool *pool, const char *domain, db_sts_fn fn, void *arg, char *err, size_t errlen)
{
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	const char *params[] = { domain };
	/* ttl rounds down and must stay > 0: a row about to expire is
	 * treated as expired. */
	PGresult *res = PQexecParams(c,
		"SELECT policy_id, mode, max_age, array_to_string(mx, E'\\n'),"
		" floor(extract(epoch FROM expires_at - now()))::bigint"
		" FROM mta_sts_policies WHERE domain = $1 AND expires_at > now() + interval '1 second'",
		1, NULL, params, NULL, NULL, 0);
	int rc = -1;
	if (!db_res_ok(res, PGRES_TUPLES_OK)) {
		db_set_error(c, res, err, errlen);
	} else if (PQntuples(res) == 0) {
		rc = 0;
	} else {
		struct db_sts_row row = {
			.policy_id = PQgetvalue(res, 0, 0),
			.mode = PQgetvalue(res, 0, 1),
			.max_age = strtol(PQgetvalue(res, 0, 2), NULL, 10),
			.mx = PQgetvalue(res, 0, 3),
			.ttl = strtol(PQgetvalue(res, 0, 4), NULL, 10),
		};
		fn(&row, arg);
		rc = 1;
	}
	PQclear(res);
	db_conn_put(pool, c);
	return rc;
}

int db_sts_put(struct db_pool *pool, const char *domain, const struct db_sts_row *row, char *err, size_t errlen)
{
	char age[32];
	snprintf(age, sizeof(age), "%ld", row->max_age);
	const char *params[] = { domain, row->policy_id, row->mode, age, row->mx };
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	PGresult *res = PQexecParams(c,
		"INSERT INTO mta_sts_policies AS p (domain, policy_id, mode, max_age, mx, fetched_at, expires_at)"
		" VALUES ($1, $2, $3, $4::bigint, string_to_array($5::text, E'\\n'),"
		"         now(), now() + $4::bigint * interval '1 second')"
		" ON CONFLICT (domain) DO UPDATE SET policy_id = EXCLUDED.policy_id, mode = EXCLUDED.mode,"
		"  max_age = EXCLUDED.max_age, mx = EXCLUDED.mx, fetched_at = EXCLUDED.fetched_at,"
		"  expires_at = EXCLUDED.expires_at",
		5, NULL, params, NULL, NULL, 0);
	int rc = 0;
	if (!db_res_ok(res, PGRES_COMMAND_OK)) {
		db_set_error(c, res, err, errlen);
		rc = -1;
	}
	PQclear(res);
	db_conn_put(pool, c);
	return rc;
}
