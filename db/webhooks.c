/*
 * webhooks.c - webhook endpoints, the delivery outbox and the event feed
 * (see webhooks.h).  Parameterised queries only.
 */
#include "db/webhooks.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/internal.h"
#include "util/xmalloc.h"

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* The columns of struct db_webhook_row, in order. */
#define WH_COLS                                                                                      \
	"public_id, url, array_to_string(events, ','), description, " TS("created_at") ", "          \
	TS("updated_at") ", disabled_reason, "                                                       \
	"CASE WHEN old_secret IS NOT NULL AND old_secret_expires_at > now() THEN "                   \
	TS("old_secret_expires_at") " END, enabled"

static const char *nullable(const PGresult *res, int i, int col)
{
	return PQgetisnull(res, i, col) ? NULL : PQgetvalue(res, i, col);
}

static void wh_row(const PGresult *res, int i, struct db_webhook_row *r)
{
	r->public_id = PQgetvalue(res, i, 0);
	r->url = PQgetvalue(res, i, 1);
	r->events_csv = PQgetvalue(res, i, 2);
	r->description = PQgetvalue(res, i, 3);
	r->created_at = PQgetvalue(res, i, 4);
	r->updated_at = PQgetvalue(res, i, 5);
	r->disabled_reason = nullable(res, i, 6);
	r->rotation_expires_at = nullable(res, i, 7);
	r->enabled = PQgetvalue(res, i, 8)[0] == 't';
}

/*
 * Runs a query returning webhook rows; calls fn for each.  Returns the
 * number of rows or -1.
 */
static int wh_query(struct db_pool *pool, const char *sql, int n, const char *const *params, db_webhook_fn fn,
		    void *arg, char *err, size_t errlen)
{
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	PGresult *res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
	int rc = -1;
	if (db_res_ok(res, PGRES_TUPLES_OK)) {
		rc = PQntuples(res);
		for (int i = 0; i < rc; i++) {
			struct db_webhook_row row;
			wh_row(res, i, &row);
			if (fn)
				fn(&row, arg);
		}
	} else {
		db_set_error(c, res, err, errlen);
	}
	PQclear(res);
	db_conn_put(pool, c);
	return rc;
}

int db_webhook_insert(struct db_pool *pool, const char *public_id, const char *url, const char *events_csv,
		      const char *description, int enabled, const char *secret, db_webhook_fn fn, void *arg,
		      char *err, size_t errlen)
{
	const char *params[] = { public_id, url, events_csv, description, enabled ? "t" : "f", secret };
	int rc = wh_query(pool,
			  "INSERT INTO webhooks (public_id, url, events, description, enabled, secret)"
			  " VALUES ($1, $2, string_to_array($3, ','), $4, $5::boolean, $6) RETURNING " WH_COLS,
			  6, params, fn, arg, err, errlen);
	return rc < 0 ? -1 : 0;
}

int db_webhook_get(struct db_pool *pool, const char *public_id, db_webhook_fn fn, void *arg, char *err,
		   size_t errlen)
{
	const char *params[] = { public_id };
	return wh_query(pool, "SELECT " WH_COLS " FROM webhooks WHERE public_id = $1", 1, params, fn, arg, err,
			errlen);
}

int db_webhook_list(struct db_pool *pool, db_webhook_fn fn, void *arg, char *err, size_t errlen)
{
	int rc = wh_query(pool, "SELECT " WH_COLS " FROM webhooks ORDER BY id", 0, NULL, fn, arg, err, errlen);
	return rc < 0 ? -1 : 0;
}

int db_webhook_update(struct db_pool *pool, const char *public_id, const struct db_webhook_patch *p,
		      db_webhook_fn fn, void *arg, char *err, size_t errlen)
{
	const char *en = p->enabled < 0 ? NULL : p->enabled ? "t" : "f";
	const char *params[] = { public_id, p->url, p->events_csv, p->description, en };
	return wh_query(pool,
			"UPDATE webhooks SET url = coalesce($2, url),"
			" events = coalesce(string_to_array($3, ','), events),"
			" description = coalesce($4, description),"
			" enabled = coalesce($5::boolean, enabled),"
			" disabled_reason = CASE WHEN $5::boolean THEN NULL ELSE disabled_reason END,"
			" failing_since = CASE WHEN $5::boolean THEN NULL ELSE failing_since END,"
			" updated_at = now()"
			" WHERE public_id = $1 RETURNING " WH_COLS,
			5, params, fn, arg, err, errlen);
}

/* Runs a command; returns the number of rows it touched, or -1. */
static int command(struct db_pool *pool, const char *sql, int n, const char *const *params, char *err,
		   size_t errlen)
{
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	PGresult *res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
	int rc = -1;
	if (db_res_ok(res, PGRES_COMMAND_OK) || db_res_ok(res, PGRES_TUPLES_OK))
		rc = (int)strtol(PQcmdTuples(res), NULL, 10);
	else
		db_set_error(c, res, err, errlen);
	PQclear(res);
	db_conn_put(pool, c);
	return rc;
}

int db_webhook_delete(struct db_pool *pool, const char *public_id, char *err, size_t errlen)
{
	const char *params[] = { public_id };
	return command(pool, "DELETE FROM webhooks WHERE public_id = $1", 1, params, err, errlen);
}

int db_webhook_rotate(struct db_pool *pool, const char *public_id, const char *new_secret, long keep_secs,
		      db_webhook_fn fn, void *arg, char *err, size_t errlen)
{
	char keep[32];
	snprintf(keep, sizeof(keep), "%ld", keep_secs);
	const char *params[] = { public_id, new_secret, keep };
	return wh_query(pool,
			"UPDATE webhooks SET old_secret = secret, secret = $2,"
			" old_secret_expires_at = now() + make_interval(secs => $3::double precision),"
			" updated_at = now() WHERE public_id = $1 RETURNING " WH_COLS,
			3, params, fn, arg, err, errlen);
}

int db_webhook_deliveries(struct db_pool *pool, const char *public_id, int64_t before, int limit,
			  void (*fn)(const struct db_delivery_row *row, void *arg), void *arg, char *err,
			  size_t errlen)
{
	char b[32], l[16];
	snprintf(b, sizeof(b), "%" PRId64, before > 0 ? before : INT64_MAX);
	snprintf(l, sizeof(l), "%d", limit);
	const char *params[] = { public_id, b, l };
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	PGresult *res = PQexecParams(c,
		"SELECT d.id, mf_event_id(e.public_id), e.type, d.status, " TS("d.created_at") ", "
		TS("d.updated_at") ", d.attempts, coalesce(d.last_http_status, 0), d.last_error,"
		" CASE WHEN d.status = 'pending' THEN " TS("d.next_attempt_at") " END, "
		TS("d.last_attempt_at")
		" FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id"
		" JOIN events e ON e.id = d.event_id"
		" WHERE w.public_id = $1 AND d.id < $2::bigint ORDER BY d.id DESC LIMIT $3::integer",
		3, NULL, params, NULL, NULL, 0);
	int rc = -1;
	if (db_res_ok(res, PGRES_TUPLES_OK)) {
		rc = PQntuples(res);
		for (int i = 0; i < rc; i++) {
			struct db_delivery_row r = {
				.id = strtoll(PQgetvalue(res, i, 0), NULL, 10),
				.event_id = PQgetvalue(res, i, 1),
				.event_type = PQgetvalue(res, i, 2),
				.status = PQgetvalue(res, i, 3),
				.created_at = PQgetvalue(res, i, 4),
				.updated_at = PQgetvalue(res, i, 5),
				.attempts = (int)strtol(PQgetvalue(res, i, 6), NULL, 10),
				.last_http_status = (int)strtol(PQgetvalue(res, i, 7), NULL, 10),
				.last_error = nullable(res, i, 8),
				.next_attempt_at = nullable(res, i, 9),
				.last_attempt_at = nullable(res, i, 10),
			};
			fn(&r, arg);
		}
	} else {
		db_set_error(c, res, err, errlen);
	}
	PQclear(res);
	db_conn_put(pool, c);
	return rc;
}

int db_webhook_delivery_retry(struct db_pool *pool, const char *public_id, int64_t delivery_id, char *err,
			      size_t errlen)
{
	char id[32];
	snprintf(id, sizeof(id), "%" PRId64, delivery_id);
	const char *params[] = { public_id, id };
	/* The CTE makes "exists but is being sent" count as found. */
	int rc = command(pool,
			 "WITH d AS (SELECT d.id, d.status FROM webhook_deliveries d JOIN webhooks w"
			 "   ON w.id = d.webhook_id WHERE w.public_id = $1 AND d.id = $2::bigint),"
			 " u AS (UPDATE webhook_deliveries x SET status = 'pending', next_attempt_at = now(),"
			 "   updated_at = now() FROM d WHERE x.id = d.id AND d.status <> 'sending' RETURNING x.id),"
			 " n AS (SELECT pg_notify('mailferry_webhooks', '') FROM u)"
			 " SELECT (SELECT count(*) FROM n) FROM d",
			 2, params, err, errlen);
	return rc < 0 ? -1 : rc > 0;
}

int db_events_feed(struct db_pool *pool, const char *after_txid, int64_t after_id, int limit,
		   void (*fn)(const struct db_event_row *row, void *arg), void *arg, char *err, size_t errlen)
{
	char id[32], l[16];
	snprintf(id, sizeof(id), "%" PRId64, after_id);
	snprintf(l, sizeof(l), "%d", limit);
	const char *params[] = { after_txid, id, l };
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	/* Only transactions older than the snapshot's xmin are certainly
	 * finished; a running one may still commit an event with a smaller
	 * txid, so the feed stops short of it (events_feed_idx).  Every
	 * column is qualified: an output column named txid (the text of it)
	 * would make ORDER BY txid sort 1000 before 999. */
	PGresult *res = PQexecParams(c,
		"SELECT e.txid::text AS txid_text, e.id, mf_event_doc(e)::text FROM events e"
		" WHERE (e.txid, e.id) > ($1::xid8, $2::bigint)"
		"   AND e.txid < pg_snapshot_xmin(pg_current_snapshot())"
		" ORDER BY e.txid, e.id LIMIT $3::integer",
		3, NULL, params, NULL, NULL, 0);
	int rc = -1;
	if (db_res_ok(res, PGRES_TUPLES_OK)) {
		rc = PQntuples(res);
		for (int i = 0; i < rc; i++) {
			struct db_event_row r = {
				.txid = PQgetvalue(res, i, 0),
				.id = strtoll(PQgetvalue(res, i, 1), NULL, 10),
				.payload = PQgetvalue(res, i, 2),
			};
			fn(&r, arg);
		}
	} else {
		db_set_error(c, res, err, errlen);
	}
	PQclear(res);
	db_conn_put(pool, c);
	return rc;
}

/* --- dispatcher ----------------------------------------------------------- */

void db_webhook_job_cleanup(struct db_webhook_job *j)
{
	free(j->url);
	free(j->secret);
	free(j->old_secret);
	free(j->msg_id);
	free(j->body);
	memset(j, 0, sizeof(*j));
}

int db_webhook_claim(struct db_pool *pool, const char *owner, long lease_secs, int max, struct db_webhook_job *jobs,
		     char *err, size_t errlen)
{
	char lease[32], lim[16];
	snprintf(lease, sizeof(lease), "%ld", lease_secs);
	snprintf(lim, sizeof(lim), "%d", max);
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	/* A dispatcher that died leaves 'sending' rows: once their lease
	 * expires they are due again; the attempt is not counted. */
	PGresult *res = PQexec(c,
		"UPDATE webhook_deliveries SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL,"
		" next_attempt_at = now() WHERE status = 'sending' AND lease_expires_at < now()");
	if (!db_res_ok(res, PGRES_COMMAND_OK)) {
		db_set_error(c, res, err, errlen);
		PQclear(res);
		db_conn_put(pool, c);
		return -1;
	}
	PQclear(res);
	const char *params[] = { owner, lease, lim };
	res = PQexecParams(c,
		"WITH due AS ("
		"  SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id"
		"   WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND w.enabled"
		"     AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p"
		"                      WHERE p.webhook_id = d.webhook_id AND p.recipient_id = d.recipient_id"
		"                        AND p.event_id < d.event_id AND p.status IN ('pending', 'sending'))"
		"   ORDER BY d.next_attempt_at LIMIT $3::integer FOR UPDATE OF d SKIP LOCKED)"
		" UPDATE webhook_deliveries d SET status = 'sending', lease_owner = $1,"
		"   lease_expires_at = now() + make_interval(secs => $2::double precision), updated_at = now()"
		"  FROM due, webhooks w, events e"
		" WHERE d.id = due.id AND w.id = d.webhook_id AND e.id = d.event_id"
		" RETURNING d.id, d.webhook_id, d.attempts, w.url, w.secret,"
		"   CASE WHEN w.old_secret_expires_at > now() THEN w.old_secret END,"
		"   mf_event_id(e.public_id), mf_event_doc(e)::text",
		3, NULL, params, NULL, NULL, 0);
	int n = -1;
	if (db_res_ok(res, PGRES_TUPLES_OK)) {
		n = PQntuples(res);
		for (int i = 0; i < n; i++) {
			struct db_webhook_job *j = &jobs[i];
			j->delivery_id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
			j->webhook_id = strtoll(PQgetvalue(res, i, 1), NULL, 10);
			j->attempts = (int)strtol(PQgetvalue(res, i, 2), NULL, 10);
			j->url = xstrdup(PQgetvalue(res, i, 3));
			j->secret = xstrdup(PQgetvalue(res, i, 4));
			j->old_secret = PQgetisnull(res, i, 5) ? NULL : xstrdup(PQgetvalue(res, i, 5));
			j->msg_id = xstrdup(PQgetvalue(res, i, 6));
			j->body = xstrdup(PQgetvalue(res, i, 7));
			j->bodylen = (size_t)PQgetlength(res, i, 7);
		}
	} else {
		db_set_error(c, res, err, errlen);
	}
	PQclear(res);
	db_conn_put(pool, c);
	return n;
}

int db_webhook_finish(struct db_pool *pool, int64_t delivery_id, const char *owner, const char *status,
		      int http_status, const char *error, double delay_secs, int gone, double disable_after_secs,
		      char *err, size_t errlen)
{
	char id[32], hs[16], delay[32], after[32];
	snprintf(id, sizeof(id), "%" PRId64, delivery_id);
	snprintf(hs, sizeof(hs), "%d", http_status);
	snprintf(delay, sizeof(delay), "%.3f", delay_secs);
	snprintf(after, sizeof(after), "%.0f", disable_after_secs);
	const char *params[] = { id, owner, status, http_status > 0 ? hs : NULL, error, delay, gone ? "t" : "f",
				 after };
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	PGresult *res = PQexecParams(c,
		"SELECT mf_webhook_finish($1::bigint, $2, $3, $4::integer, $5, $6::double precision,"
		" $7::boolean, $8::double precision)",
		8, NULL, params, NULL, NULL, 0);
	int rc = -1;
	if (db_res_ok(res, PGRES_TUPLES_OK) && PQntuples(res) == 1)
		rc = PQgetvalue(res, 0, 0)[0] == 't';
	else
		db_set_error(c, res, err, errlen);
	PQclear(res);
	db_conn_put(pool, c);
	return rc;
}

int db_webhook_release(struct db_pool *pool, int64_t delivery_id, const char *owner, char *err, size_t errlen)
{
	char id[32];
	snprintf(id, sizeof(id), "%" PRId64, delivery_id);
	const char *params[] = { id, owner };
	return command(pool,
		       "UPDATE webhook_deliveries SET status = 'pending', lease_owner = NULL,"
		       " lease_expires_at = NULL, next_attempt_at = now(), updated_at = now()"
		       " WHERE id = $1::bigint AND status = 'sending' AND lease_owner = $2",
		       2, params, err, errlen);
}

int db_webhook_backlog(struct db_pool *pool, long *pending, long *sending, char *err, size_t errlen)
{
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	/* Both counts read only the partial indexes' rows. */
	PGresult *res = PQexec(c,
		"SELECT (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'),"
		" (SELECT count(*) FROM webhook_deliveries WHERE status = 'sending')");
	int ok = db_res_ok(res, PGRES_TUPLES_OK) && PQntuples(res) == 1;
	if (ok) {
		*pending = strtol(PQgetvalue(res, 0, 0), NULL, 10);
		*sending = strtol(PQgetvalue(res, 0, 1), NULL, 10);
	} else {
		db_set_error(c, res, err, errlen);
	}
	PQclear(res);
	db_conn_put(pool, c);
	return ok ? 0 : -1;
}

