/*
 * bounce_store.c - bounces_raw inserts with their NOTIFY (see
 * bounce_store.h).  Parameterised queries only; the raw message is sent as
 * a binary parameter (no escaping of up to max_message_size bytes).
 */
#include "db/bounce_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/internal.h"

static int insert_row(PGconn *c, const char *source, const char *mail_from, const char *rcpt, const char *raw,
		      size_t rawlen, int64_t *id, char *err, size_t errlen)
{
	const char *params[] = { source, mail_from, rcpt, raw };
	const int lens[] = { 0, 0, 0, (int)rawlen };
	const int fmts[] = { 0, 0, 0, 1 };
	PGresult *res = PQexecParams(c,
		"INSERT INTO bounces_raw (source, mail_from, rcpt_to, raw) VALUES ($1, $2, $3, $4) RETURNING id",
		4, NULL, params, lens, fmts, 0);
	int ok = db_res_ok(res, PGRES_TUPLES_OK) && PQntuples(res) == 1;
	if (ok)
		*id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	else
		db_set_error(c, res, err, errlen);
	PQclear(res);
	return ok ? 0 : -1;
}

int db_bounce_store(struct db_pool *pool, const char *source, const char *mail_from, const char *const *rcpts,
		    size_t nrcpts, const char *raw, size_t rawlen, int64_t *first_id, char *err, size_t errlen)
{
	if (nrcpts == 0 || rawlen > 0x7fffffff) {
		snprintf(err, errlen, "bounce_store: %s", nrcpts == 0 ? "no recipient" : "message too large");
		return -1;
	}
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	int64_t first = 0;
	int rc = db_exec(c, "BEGIN", err, errlen);
	for (size_t i = 0; rc == 0 && i < nrcpts; i++) {
		int64_t id = 0;
		rc = insert_row(c, source, mail_from, rcpts[i], raw, rawlen, &id, err, errlen);
		if (i == 0)
			first = id;
	}
	if (rc == 0) {
		char idbuf[32];
		snprintf(idbuf, sizeof(idbuf), "%lld", (long long)first);
		const char *params[] = { idbuf };
		PGresult *res = PQexecParams(c, "SELECT pg_notify('mailferry_bounces', $1)", 1, NULL, params, NULL,
					     NULL, 0);
		if (!db_res_ok(res, PGRES_TUPLES_OK)) {
			db_set_error(c, res, err, errlen);
			rc = -1;
		}
		PQclear(res);
	}
	if (rc == 0)
		rc = db_exec(c, "COMMIT", err, errlen);
	else if (PQstatus(c) == CONNECTION_OK) {
		char ignore[64];
		db_exec(c, "ROLLBACK", ignore, sizeof(ignore));
	}
	db_conn_put(pool, c);
	if (rc == 0 && first_id)
		*first_id = first;
	return rc;
}
