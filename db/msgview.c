/*
 * msgview.c - read-only message views for the CLI (see msgview.h).
 * Parameterised queries only; one borrowed connection per call.
 */
#include "db/msgview.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/internal.h"

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

int db_msgview_get(struct db_pool *pool, const char *message_id, const struct db_msgview_cb *cb, char *err,
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

int db_msgview_list(struct db_pool *pool, const struct db_msgview_filter *f,
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
