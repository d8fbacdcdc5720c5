/*
 * msgread.c - reading stored messages back (see msgread.h): the API's
 * message JSON (mf_api_message, db/functions.sql), its keyset-paginated
 * list, cancel, and the CLI's row views.  Parameterised queries only; one
 * borrowed connection per call.
 */
#include "db/msgread.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/internal.h"
#include "util/xmalloc.h"

#define TS(col) "coalesce(to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '')"

static const char msg_cols[] =
	"SELECT m.id, " TS("m.created_at") ", m.status, m.from_header, m.subject, array_to_string(m.tags, ','),"
	" coalesce((SELECT email FROM recipients WHERE message_id = m.id ORDER BY position LIMIT 1), ''),"
	" (SELECT count(*) FROM recipients WHERE message_id = m.id), m.size, m.body IS NOT NULL, to_jsonb(m.tags)::text"
	" FROM messages m";

static void msg_row(const PGresult *res, int i, struct db_view_msg *m)
{
	m->id = PQgetvalue(res, i, 0);
	m->created_at = PQgetvalue(res, i, 1);
	m->status = PQgetvalue(res, i, 2);
	m->from = PQgetvalue(res, i, 3);
	m->subject = PQgetvalue(res, i, 4);
	m->tags = PQgetvalue(res, i, 5);
	m->first_rcpt = PQgetvalue(res, i, 6);
	m->nrcpt = (int)strtol(PQgetvalue(res, i, 7), NULL, 10);
	m->size = strtol(PQgetvalue(res, i, 8), NULL, 10);
	m->body_kept = PQgetvalue(res, i, 9)[0] == 't';
	m->tags_json = PQgetvalue(res, i, 10);
}

/* Runs a query; NULL (err set) unless it returned rows. */
static PGresult *query(PGconn *c, const char *sql, int n, const char *const *params, char *err, size_t errlen)
{
	PGresult *res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
	if (db_res_ok(res, PGRES_TUPLES_OK))
		return res;
	db_set_error(c, res, err, errlen);
	PQclear(res);
	return NULL;
}

int db_message_view(struct db_pool *pool, const char *message_id, const struct db_message_view_cb *cb, char *err,
		   size_t errlen)
{
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	const char *params[] = { message_id };
	char sql[1024];
	int rc = -1;
	snprintf(sql, sizeof(sql), "%s WHERE m.id = $1::uuid", msg_cols);
	PGresult *res = query(c, sql, 1, params, err, errlen);
	if (res == NULL)
		goto done;
	if (PQntuples(res) == 0) {
		rc = 0;
		goto done;
	}
	struct db_view_msg m;
	msg_row(res, 0, &m);
	if (cb->message)
		cb->message(&m, cb->arg);
	PQclear(res);
	res = query(c,
		    "SELECT email, kind, status, " TS("next_attempt_at") ", coalesce(last_code::text, ''),"
		    " coalesce(last_enhanced, ''), coalesce(last_text, ''), coalesce(last_mx, ''),"
		    " coalesce(tls_version, ''), coalesce(bounce_type, ''), coalesce(bounce_category, ''),"
		    " " TS("updated_at") ", attempts FROM recipients WHERE message_id = $1::uuid ORDER BY position",
		    1, params, err, errlen);
	if (res == NULL)
		goto done;
	for (int i = 0; cb->recipient && i < PQntuples(res); i++) {
		struct db_view_rcpt r = {
			PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
			PQgetvalue(res, i, 4), PQgetvalue(res, i, 5), PQgetvalue(res, i, 6), PQgetvalue(res, i, 7),
			PQgetvalue(res, i, 8), PQgetvalue(res, i, 9), PQgetvalue(res, i, 10), PQgetvalue(res, i, 11),
			(int)strtol(PQgetvalue(res, i, 12), NULL, 10),
		};
		cb->recipient(&r, cb->arg);
	}
	PQclear(res);
	res = query(c,
		    "SELECT mf_event_id(e.public_id), e.type, " TS("e.created_at") ", coalesce(d.doc->'data'->>'recipient', ''),"
		    " concat_ws(' ', d.doc->'data'->'smtp'->>'code', d.doc->'data'->'smtp'->>'enhanced_code',"
		    " d.doc->'data'->'smtp'->>'text',"
		    " CASE WHEN d.doc->'data' ? 'requested_by' THEN 'requested_by=' || (d.doc->'data'->>'requested_by') END)"
		    " FROM events e CROSS JOIN LATERAL (SELECT mf_event_doc(e) AS doc) d"
		    " WHERE e.message_id = $1::uuid ORDER BY e.id",
		    1, params, err, errlen);
	if (res == NULL)
		goto done;
	for (int i = 0; cb->event && i < PQntuples(res); i++) {
		struct db_view_event e = { PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
					  PQgetvalue(res, i, 3), PQgetvalue(res, i, 4) };
		cb->event(&e, cb->arg);
	}
	rc = 1;
done:
	PQclear(res);
	db_conn_put(pool, c);
	return rc;
}

int db_message_view_list(struct db_pool *pool, const struct db_message_view_filter *f,
		    void (*fn)(const struct db_view_msg *m, void *arg), void *arg, char *err, size_t errlen)
{
	char lim[16], sql[1536];
	snprintf(lim, sizeof(lim), "%d", f->limit > 0 ? f->limit : 20);
	const char *params[] = { f->status, f->since, f->recipient, lim };
	snprintf(sql, sizeof(sql),
		 "%s WHERE ($1::text IS NULL OR m.status = $1::text)"
		 " AND ($2::timestamptz IS NULL OR m.created_at >= $2::timestamptz)"
		 " AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM recipients r"
		 "      WHERE lower(r.email) = lower($3::text) AND r.message_id = m.id))"
		 " ORDER BY m.created_at DESC, m.id DESC LIMIT $4::int",
		 msg_cols);
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	PGresult *res = query(c, sql, 4, params, err, errlen);
	for (int i = 0; res && i < PQntuples(res); i++) {
		struct db_view_msg m;
		msg_row(res, i, &m);
		fn(&m, arg);
	}
	int rc = res ? 0 : -1;
	PQclear(res);
	db_conn_put(pool, c);
	return rc;
}

/* --- the API's reads ------------------------------------------------- */

static PGresult *exec_params(PGconn *c, const char *sql, int n, const char *const *v, const int *lens,
			     const int *fmts, ExecStatusType want, char *err, size_t errlen)
{
	PGresult *res = PQexecParams(c, sql, n, NULL, v, lens, fmts, 0);
	if (!db_res_ok(res, want)) {
		db_set_error(c, res, err, errlen);
		PQclear(res);
		return NULL;
	}
	return res;
}

/* Runs a one-row, one-column query; 1 with *out (owned), 0 no row, -1 error. */
static int query_one(PGconn *c, const char *sql, int n, const char *const *v, char **out, char *err,
		     size_t errlen)
{
	PGresult *res = exec_params(c, sql, n, v, NULL, NULL, PGRES_TUPLES_OK, err, errlen);
	if (res == NULL)
		return -1;
	int found = PQntuples(res) > 0 && !PQgetisnull(res, 0, 0);
	if (found)
		*out = xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return found;
}

int db_message_get(struct db_pool *pool, const char *id, char **json, char *err, size_t errlen)
{
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	const char *v[] = { id };
	int rc = query_one(c, "SELECT mf_api_message(m, true)::text FROM messages m WHERE m.id = $1::uuid", 1, v,
			   json, err, errlen);
	db_conn_put(pool, c);
	return rc;
}

int db_message_list(struct db_pool *pool, const struct db_list_query *q, char **json, int *has_more,
		    char *last_id, char *err, size_t errlen)
{
	char lim[16], lim1[16];
	snprintf(lim, sizeof(lim), "%d", q->limit);
	snprintf(lim1, sizeof(lim1), "%d", q->limit + 1);
	const char *v[] = { q->status, q->recipient, q->tag, q->created_after, q->created_before, q->before_id,
			    lim1, lim };
	/* Keyset pagination on the time-ordered id, newest first: a page
	 * starts below the cursor, so rows inserted meanwhile (newer ids)
	 * never shift it.  One extra row tells whether there is more.  The
	 * statement is planned with the actual parameters, so the unused
	 * filters fold away and each filter can use its index. */
	const char *sql =
		"WITH page AS ("
		"  SELECT m.id FROM messages m"
		"   WHERE ($1::text IS NULL OR m.status = $1)"
		"     AND ($2::text IS NULL OR EXISTS (SELECT 1 FROM recipients r"
		"                                       WHERE lower(r.email) = lower($2) AND r.message_id = m.id))"
		"     AND ($3::text IS NULL OR m.tags @> ARRAY[$3::text])"
		"     AND ($4::timestamptz IS NULL OR m.created_at > $4::timestamptz)"
		"     AND ($5::timestamptz IS NULL OR m.created_at < $5::timestamptz)"
		"     AND ($6::uuid IS NULL OR m.id < $6::uuid)"
		"   ORDER BY m.id DESC LIMIT $7::int),"
		" shown AS (SELECT id FROM page ORDER BY id DESC LIMIT $8::int)"
		" SELECT (SELECT count(*) FROM page) > $8::int,"
		"        coalesce((SELECT jsonb_agg(mf_api_message(m, false) ORDER BY m.id DESC)"
		"                    FROM messages m JOIN shown s ON s.id = m.id), '[]'::jsonb)::text,"
		"        coalesce((SELECT id::text FROM shown ORDER BY id LIMIT 1), '')";
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	PGresult *res = exec_params(c, sql, 8, v, NULL, NULL, PGRES_TUPLES_OK, err, errlen);
	db_conn_put(pool, c);
	if (res == NULL)
		return -1;
	*has_more = PQgetvalue(res, 0, 0)[0] == 't';
	*json = xstrdup(PQgetvalue(res, 0, 1));
	snprintf(last_id, UUID_STR_LEN, "%s", PQgetvalue(res, 0, 2));
	PQclear(res);
	return 0;
}

int db_message_cancel(struct db_pool *pool, const char *id, char **json, char *err, size_t errlen)
{
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	const char *v[] = { id };
	int rc = -1;
	char *dummy = NULL, rb_err[256];
	if (db_exec(c, "BEGIN", err, errlen) < 0)
		goto out;
	/* Lock the message so that two cancels (or a cancel and the status
	 * refresh of a delivery) are serialised. */
	rc = query_one(c, "SELECT id::text FROM messages WHERE id = $1::uuid FOR UPDATE", 1, v, &dummy, err, errlen);
	free(dummy);
	if (rc <= 0)
		goto rollback;
	/* Recipients a worker holds ('sending') are left alone: their outcome
	 * will be recorded as usual.  Events are written in a second
	 * statement so that their payload sees the new status. */
	PGresult *res = exec_params(c,
		"WITH c AS (UPDATE recipients SET status = 'canceled', updated_at = now(),"
		"                  lease_owner = NULL, lease_expires_at = NULL"
		"            WHERE message_id = $1::uuid AND status IN ('queued', 'scheduled', 'deferred')"
		"            RETURNING id, position)"
		" SELECT coalesce(array_agg(id ORDER BY position), '{}')::text FROM c",
		1, v, NULL, NULL, PGRES_TUPLES_OK, err, errlen);
	if (res == NULL) {
		rc = -1;
		goto rollback;
	}
	const char *ids[] = { PQgetvalue(res, 0, 0) };
	PGresult *ev = exec_params(c,
				   "SELECT count(mf_record_event(x, 'message.canceled'))"
				   "  FROM (SELECT x FROM unnest($1::bigint[]) WITH ORDINALITY AS u(x, o) ORDER BY o) s",
				   1, ids, NULL, NULL, PGRES_TUPLES_OK, err, errlen);
	PQclear(res);
	if (ev == NULL) {
		rc = -1;
		goto rollback;
	}
	PQclear(ev);
	ev = exec_params(c, "SELECT 1 FROM (SELECT mf_refresh_message_status($1::uuid)) x", 1, v, NULL, NULL,
			 PGRES_TUPLES_OK, err, errlen);
	if (ev == NULL) {
		rc = -1;
		goto rollback;
	}
	PQclear(ev);
	rc = query_one(c, "SELECT mf_api_message(m, true)::text FROM messages m WHERE m.id = $1::uuid", 1, v, json, err,
		       errlen);
	if (rc <= 0)
		goto rollback;
	if (db_exec(c, "COMMIT", err, errlen) < 0) {
		free(*json);
		*json = NULL;
		rc = -1;
	}
	goto out;
rollback:
	db_exec(c, "ROLLBACK", rb_err, sizeof(rb_err));
out:
	db_conn_put(pool, c);
	return rc;
}
