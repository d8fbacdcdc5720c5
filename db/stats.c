/*
 * stats.c - queue aggregates for metrics (see stats.h).
 */
#include "db/stats.h"

#include <stdlib.h>
#include <string.h>

#include "db/internal.h"

int db_queue_stats(struct db_pool *pool, struct db_queue_stats *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	/* Each subquery matches a partial index predicate exactly. */
	PGresult *res = PQexec(c,
		"SELECT (SELECT count(*) FROM recipients WHERE status IN ('queued', 'scheduled', 'deferred')"
		"        AND status = 'queued'),"
		" (SELECT count(*) FROM recipients WHERE status IN ('queued', 'scheduled', 'deferred')"
		"        AND status = 'scheduled'),"
		" (SELECT count(*) FROM recipients WHERE status IN ('queued', 'scheduled', 'deferred')"
		"        AND status = 'deferred'),"
		" (SELECT count(*) FROM recipients WHERE status = 'sending'),"
		" coalesce((SELECT extract(epoch FROM now() - min(next_attempt_at)) FROM recipients"
		"        WHERE status IN ('queued', 'scheduled', 'deferred') AND next_attempt_at <= now()), 0)");
	int ok = db_res_ok(res, PGRES_TUPLES_OK) && PQntuples(res) == 1;
	if (ok) {
		out->queued = strtol(PQgetvalue(res, 0, 0), NULL, 10);
		out->scheduled = strtol(PQgetvalue(res, 0, 1), NULL, 10);
		out->deferred = strtol(PQgetvalue(res, 0, 2), NULL, 10);
		out->sending = strtol(PQgetvalue(res, 0, 3), NULL, 10);
		out->oldest_due_seconds = strtod(PQgetvalue(res, 0, 4), NULL);
	} else {
		db_set_error(c, res, err, errlen);
	}
	PQclear(res);
	db_conn_put(pool, c);
	return ok ? 0 : -1;
}
