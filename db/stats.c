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

/* Runs a parameterised query and hands each row to fn. */
static int rows(struct db_pool *pool, const char *sql, int nparams, const char *const *params, db_stats_row_fn *fn,
		void *arg, char *err, size_t errlen)
{
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	PGresult *res = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
	int ok = db_res_ok(res, PGRES_TUPLES_OK);
	if (ok) {
		int nc = PQnfields(res);
		const char *cols[16];
		if (nc > 16)
			nc = 16;
		for (int i = 0; i < PQntuples(res); i++) {
			for (int k = 0; k < nc; k++)
				cols[k] = PQgetisnull(res, i, k) ? NULL : PQgetvalue(res, i, k);
			fn(cols, nc, arg);
		}
	} else {
		db_set_error(c, res, err, errlen);
	}
	PQclear(res);
	db_conn_put(pool, c);
	return ok ? 0 : -1;
}

int db_stats_timeseries(struct db_pool *pool, const char *unit, time_t since, db_stats_row_fn *fn, void *arg,
			char *err, size_t errlen)
{
	char secs[32];
	snprintf(secs, sizeof(secs), "%lld", (long long)since);
	const char *params[] = { unit, secs };
	/* Count per bucket first (events_created_brin), then zero-fill. */
	return rows(pool,
		"WITH c AS (SELECT date_trunc($1, created_at, 'UTC') AS t,"
		"                  count(*) FILTER (WHERE type = 'message.delivered') AS dl,"
		"                  count(*) FILTER (WHERE type = 'message.deferred') AS df,"
		"                  count(*) FILTER (WHERE type = 'message.bounced') AS bo,"
		"                  count(*) FILTER (WHERE type = 'message.failed') AS fa"
		"             FROM events"
		"            WHERE created_at >= date_trunc($1, to_timestamp($2::bigint), 'UTC')"
		"              AND type IN ('message.delivered', 'message.deferred', 'message.bounced', 'message.failed')"
		"            GROUP BY 1)"
		" SELECT to_char(g.t AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
		"        coalesce(c.dl, 0), coalesce(c.df, 0), coalesce(c.bo, 0), coalesce(c.fa, 0)"
		"   FROM generate_series(date_trunc($1, to_timestamp($2::bigint), 'UTC'), now(),"
		"                        ('1 ' || $1)::interval) AS g(t)"
		"   LEFT JOIN c ON c.t = g.t ORDER BY g.t",
		2, params, fn, arg, err, errlen);
}

int db_stats_top(struct db_pool *pool, enum db_stats_top kind, int hours, int limit, db_stats_row_fn *fn,
		 void *arg, char *err, size_t errlen)
{
	char h[16], lim[16];
	snprintf(h, sizeof(h), "%d", hours);
	snprintf(lim, sizeof(lim), "%d", limit);
	const char *params[] = { h, lim };
	/* The SMTP reply an event carries: payload.data.smtp (mf_event_payload). */
#define RECENT " FROM events WHERE created_at >= now() - $1::int * interval '1 hour'"
#define REASONS(type) \
	"SELECT payload #>> '{data,smtp,code}', payload #>> '{data,smtp,enhanced_code}'," \
	"       coalesce(payload #>> '{data,smtp,text}', ''), count(*)" RECENT " AND type = '" type "'" \
	" GROUP BY 1, 2, 3 ORDER BY 4 DESC, 3 LIMIT $2::int"
	switch (kind) {
	case DB_TOP_TOTALS:
		return rows(pool,
			"SELECT count(*) FILTER (WHERE type = 'message.delivered'),"
			"       count(*) FILTER (WHERE type = 'message.deferred'),"
			"       count(*) FILTER (WHERE type = 'message.bounced'),"
			"       count(*) FILTER (WHERE type = 'message.failed'), $2::int" RECENT,
			2, params, fn, arg, err, errlen);
	case DB_TOP_DEFERRAL_REASONS:
		return rows(pool, REASONS("message.deferred"), 2, params, fn, arg, err, errlen);
	case DB_TOP_BOUNCE_REASONS:
		return rows(pool, REASONS("message.bounced"), 2, params, fn, arg, err, errlen);
	case DB_TOP_DEFERRED_DOMAINS:
		return rows(pool,
			"SELECT lower(split_part(payload #>> '{data,recipient}', '@', 2)), count(*)" RECENT
			" AND type = 'message.deferred' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $2::int",
			2, params, fn, arg, err, errlen);
	case DB_TOP_FAILING_WEBHOOKS:
		return rows(pool,
			"SELECT w.public_id, w.url, w.enabled::text,"
			"       to_char(w.failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
			"       w.disabled_reason, (SELECT count(*) FROM webhook_deliveries d"
			"                            WHERE d.webhook_id = w.id AND d.status IN ('pending', 'sending'))"
			"  FROM webhooks w WHERE (w.failing_since IS NOT NULL OR NOT w.enabled) AND $1::int >= 0"
			" ORDER BY w.failing_since NULLS LAST, w.id LIMIT $2::int",
			2, params, fn, arg, err, errlen);
	}
#undef REASONS
#undef RECENT
	snprintf(err, errlen, "unknown aggregate");
	return -1;
}
