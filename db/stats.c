/*
 * stats.c - queue aggregates for metrics (see stats.h).
 */
#include "db/stats.h"

#include <stdlib.h>
#include <string.h>

#include "db/internal.h"
#include "db/queue.h"
#include <stdio.h>

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

int db_destination_stats(struct db_pool *pool, const struct db_claim_opts *o, long active_secs,
			 void (*fn)(const struct db_destination_stat *d, void *arg), void *arg, char *err,
			 size_t errlen)
{
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	char initial[16], max[16], active[32], lim[16];
	snprintf(initial, sizeof(initial), "%d", o->initial);
	snprintf(max, sizeof(max), "%d", o->max);
	snprintf(active, sizeof(active), "%ld", active_secs);
	snprintf(lim, sizeof(lim), "%d", DB_DEST_STATS_MAX);
	const char *params[] = { o->verp ? "t" : "f", initial, max, o->rates_json ? o->rates_json : "{}", active, lim };
	PGresult *res = PQexecParams(c,
		"SELECT domain, busy, lim, (paused_until IS NOT NULL)::int, backoff_secs"
		"  FROM mf_destination_room($1::boolean, $2::int, $3::int, $4::jsonb)"
		" WHERE busy > 0 OR paused_until IS NOT NULL OR updated_at > now() - $5::bigint * interval '1 second'"
		" ORDER BY busy DESC, domain LIMIT $6::int",
		6, NULL, params, NULL, NULL, 0);
	int ok = db_res_ok(res, PGRES_TUPLES_OK);
	if (ok) {
		for (int i = 0; i < PQntuples(res); i++) {
			struct db_destination_stat d = {
				.domain = PQgetvalue(res, i, 0),
				.sessions = strtol(PQgetvalue(res, i, 1), NULL, 10),
				.limit = (int)strtol(PQgetvalue(res, i, 2), NULL, 10),
				.paused = PQgetvalue(res, i, 3)[0] == '1',
				.backoff_secs = strtol(PQgetvalue(res, i, 4), NULL, 10),
			};
			fn(&d, arg);
		}
	} else {
		db_set_error(c, res, err, errlen);
	}
	PQclear(res);
	db_conn_put(pool, c);
	return ok ? 0 : -1;
}
