/*
 * bounces.c - bounce processing storage (see bounces.h).  Parameterised
 * queries only.  Event rows are written with mf_record_event() (0001) in
 * the transaction that changes the recipient, so none is lost; the
 * suppression.created event has no message (message_id NULL) and follows
 * the payload shape of mf_event_payload ({"id","type","timestamp","data"}).
 */
#include "db/bounces.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/internal.h"
#include "util/uuid.h"
#include "util/xmalloc.h"

struct db_bounce_tx {
	struct db_pool *pool;
	PGconn *conn;
	int64_t id;
	unsigned char *raw;
	size_t rawlen;
	char *rcpt_to;
	int may_wait;   /* wait_until unset or ahead */
};

int db_bounce_insert(struct db_pool *pool, const char *source, const char *mail_from, const char *rcpt_to,
		     const char *raw, size_t len, int64_t *id, char *err, size_t errlen)
{
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	const char *params[] = { source, mail_from, rcpt_to, raw };
	int lens[] = { 0, 0, 0, (int)len };
	int fmts[] = { 0, 0, 0, 1 };
	PGresult *res = PQexecParams(c,
		"INSERT INTO bounces_raw (source, mail_from, rcpt_to, raw) VALUES ($1, $2, NULLIF($3, ''), $4)"
		" RETURNING id", 4, NULL, params, lens, fmts, 0);
	int rc = db_res_int64(c, res, id, err, errlen);
	db_conn_put(pool, c);
	return rc < 0 ? -1 : 0;
}

void db_bounce_tx_abort(struct db_bounce_tx *tx)
{
	if (tx == NULL)
		return;
	PQclear(PQexec(tx->conn, "ROLLBACK"));
	db_conn_put(tx->pool, tx->conn);
	PQfreemem(tx->raw);
	free(tx->rcpt_to);
	free(tx);
}

int db_bounce_claim(struct db_pool *pool, int64_t only_id, struct db_bounce_tx **out, char *err,
		    size_t errlen)
{
	*out = NULL;
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	if (db_exec(c, "BEGIN", err, errlen) < 0) {
		db_conn_put(pool, c);
		return -1;
	}
	char idbuf[32];
	snprintf(idbuf, sizeof(idbuf), "%" PRId64, only_id);
	const char *params[] = { idbuf };
	/* A row that waits for a recipient (db_bounce_tx_wait) is ready again
	 * once that recipient has left 'sending' (its outcome is recorded, or
	 * the reaper took back its lease) or its wait_until has passed. */
	PGresult *res = PQexecParams(c,
		"SELECT b.id, b.raw, coalesce(b.rcpt_to, ''), (b.wait_until IS NULL OR b.wait_until > now())::text"
		"  FROM bounces_raw b"
		" WHERE b.processed_at IS NULL AND ($1::bigint = 0 OR b.id = $1::bigint)"
		"   AND (b.wait_rcpt IS NULL OR b.wait_until <= now()"
		"        OR NOT EXISTS (SELECT 1 FROM recipients r WHERE r.id = b.wait_rcpt AND r.status = 'sending'))"
		" ORDER BY b.id LIMIT 1 FOR UPDATE OF b SKIP LOCKED", 1, NULL, params, NULL, NULL, 0);
	struct db_bounce_tx *tx = xcalloc(1, sizeof(*tx));
	tx->pool = pool;
	tx->conn = c;
	if (!db_res_ok(res, PGRES_TUPLES_OK)) {
		db_set_error(c, res, err, errlen);
		PQclear(res);
		db_bounce_tx_abort(tx);
		return -1;
	}
	if (PQntuples(res) == 0) {
		PQclear(res);
		db_bounce_tx_abort(tx);
		return 0;
	}
	tx->id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	tx->raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, 1), &tx->rawlen);
	tx->rcpt_to = xstrdup(PQgetvalue(res, 0, 2));
	tx->may_wait = PQgetvalue(res, 0, 3)[0] == 't';
	PQclear(res);
	if (tx->raw == NULL) {
		snprintf(err, errlen, "bounce %" PRId64 ": cannot decode raw", tx->id);
		db_bounce_tx_abort(tx);
		return -1;
	}
	/* db_bounce_tx_wait() undoes the processing back to here and keeps
	 * the row lock. */
	if (db_exec(c, "SAVEPOINT claimed", err, errlen) < 0) {
		db_bounce_tx_abort(tx);
		return -1;
	}
	*out = tx;
	return 1;
}

int64_t db_bounce_tx_id(const struct db_bounce_tx *tx)
{
	return tx->id;
}

const char *db_bounce_tx_raw(const struct db_bounce_tx *tx, size_t *len)
{
	*len = tx->rawlen;
	return (const char *)tx->raw;
}

const char *db_bounce_tx_rcpt_to(const struct db_bounce_tx *tx)
{
	return tx->rcpt_to;
}

int db_bounce_tx_may_wait(const struct db_bounce_tx *tx)
{
	return tx->may_wait;
}

static int rcpt_row(PGconn *c, PGresult *res, struct db_bounce_rcpt *out, char *err, size_t errlen)
{
	int rc = -1;
	if (!db_res_ok(res, PGRES_TUPLES_OK)) {
		db_set_error(c, res, err, errlen);
	} else if (PQntuples(res) == 0) {
		rc = 0;
	} else {
		out->id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		snprintf(out->message_id, sizeof(out->message_id), "%s", PQgetvalue(res, 0, 1));
		snprintf(out->email, sizeof(out->email), "%s", PQgetvalue(res, 0, 2));
		snprintf(out->status, sizeof(out->status), "%s", PQgetvalue(res, 0, 3));
		rc = 1;
	}
	PQclear(res);
	return rc;
}

int db_bounce_tx_recipient(struct db_bounce_tx *tx, int64_t recipient_id, struct db_bounce_rcpt *out,
			   char *err, size_t errlen)
{
	char idbuf[32];
	snprintf(idbuf, sizeof(idbuf), "%" PRId64, recipient_id);
	const char *params[] = { idbuf };
	PGresult *res = PQexecParams(tx->conn,
		"SELECT id, message_id, email, status FROM recipients WHERE id = $1 FOR UPDATE", 1, NULL, params,
		NULL, NULL, 0);
	return rcpt_row(tx->conn, res, out, err, errlen);
}

/*
 * mailferry makes every Message-ID "<message id>@<helo_name>" (api/messages.c),
 * so the message is found by its primary key (there is no index on the
 * header, migration 0013) and the whole header is checked; a Message-ID
 * of another form was never ours.
 */
int db_bounce_tx_find(struct db_bounce_tx *tx, const char *message_id_hdr, const char *email,
		      struct db_bounce_rcpt *out, char *err, size_t errlen)
{
	char id[UUID_STR_LEN];
	const char *at = strchr(message_id_hdr, '@');
	size_t n = at ? (size_t)(at - message_id_hdr) : 0;
	if (n != UUID_STR_LEN - 1)
		return 0;
	memcpy(id, message_id_hdr, n);
	id[n] = '\0';
	if (!uuid_valid(id))
		return 0;
	const char *params[] = { message_id_hdr, email, id };
	PGresult *res = PQexecParams(tx->conn,
		"SELECT r.id, r.message_id, r.email, r.status FROM messages m JOIN recipients r ON r.message_id = m.id"
		" WHERE m.id = $3::uuid AND m.message_id_hdr = $1 AND lower(r.email) = lower($2)"
		" ORDER BY r.id LIMIT 1 FOR UPDATE OF r", 3, NULL, params, NULL, NULL, 0);
	return rcpt_row(tx->conn, res, out, err, errlen);
}

static int exec_params(PGconn *c, const char *sql, int n, const char *const *params, ExecStatusType want,
		       PGresult **keep, char *err, size_t errlen)
{
	PGresult *res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
	if (!db_res_ok(res, want)) {
		db_set_error(c, res, err, errlen);
		PQclear(res);
		return -1;
	}
	if (keep)
		*keep = res;
	else
		PQclear(res);
	return 0;
}

/* The event with data.dsn = what the report said (empty fields left out). */
static int record_event(struct db_bounce_tx *tx, const char *rid, const char *type,
			const struct db_bounce_outcome *o, char *err, size_t errlen)
{
	char code[16], bid[32];
	snprintf(code, sizeof(code), "%d", o->code);
	snprintf(bid, sizeof(bid), "%" PRId64, o->bounce_id);
	const char *params[] = { rid, type, o->action, o->enhanced, o->text, o->mx, o->reporting_mta, o->matched_by,
				 code, bid };
	return exec_params(tx->conn,
			   "SELECT mf_record_event($1, $2, jsonb_build_object('dsn', jsonb_strip_nulls(jsonb_build_object("
			   " 'action', NULLIF($3, ''), 'status', NULLIF($4, ''), 'diagnostic', NULLIF($5, ''),"
			   " 'remote_mta', NULLIF($6, ''), 'reporting_mta', NULLIF($7, ''), 'matched_by', NULLIF($8, ''),"
			   " 'code', NULLIF($9::int, 0), 'bounce_id', $10::bigint))))",
			   10, params, PGRES_TUPLES_OK, NULL, err, errlen);
}

int db_bounce_tx_bounce(struct db_bounce_tx *tx, int64_t recipient_id, const struct db_bounce_outcome *o,
			char *err, size_t errlen)
{
	char idbuf[32], code[16];
	snprintf(idbuf, sizeof(idbuf), "%" PRId64, recipient_id);
	snprintf(code, sizeof(code), "%d", o->code);
	const char *params[] = { idbuf, code, o->enhanced, o->text, o->mx, o->bounce_type, o->category };
	PGresult *res = NULL;
	if (exec_params(tx->conn,
			"UPDATE recipients SET status = 'bounced', last_code = NULLIF($2::int, 0),"
			" last_enhanced = NULLIF($3, ''), last_text = NULLIF($4, ''), last_mx = NULLIF($5, ''),"
			" bounce_type = $6, bounce_category = $7, lease_owner = NULL, lease_expires_at = NULL,"
			" updated_at = now()"
			" WHERE id = $1 AND status IN ('delivered', 'deferred', 'queued', 'scheduled', 'sending')"
			" RETURNING message_id",
			7, params, PGRES_TUPLES_OK, &res, err, errlen) < 0)
		return -1;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return 0;
	}
	char msg[40];
	snprintf(msg, sizeof(msg), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	if (record_event(tx, idbuf, "message.bounced", o, err, errlen) < 0)
		return -1;
	const char *mp[] = { msg };
	if (exec_params(tx->conn, "SELECT mf_refresh_message_status($1)", 1, mp, PGRES_TUPLES_OK, NULL, err,
			errlen) < 0)
		return -1;
	return 1;
}

int db_bounce_tx_delayed(struct db_bounce_tx *tx, int64_t recipient_id, const struct db_bounce_outcome *o,
			 char *err, size_t errlen)
{
	char idbuf[32];
	snprintf(idbuf, sizeof(idbuf), "%" PRId64, recipient_id);
	return record_event(tx, idbuf, "message.deferred", o, err, errlen);
}

int db_bounce_tx_suppress(struct db_bounce_tx *tx, const char *email, const char *message_id,
			  const char *diagnostic, char *err, size_t errlen)
{
	const char *params[] = { email, message_id, diagnostic };
	PGresult *res = NULL;
	if (exec_params(tx->conn,
			"WITH ins AS (INSERT INTO suppressions (email, reason, message_id, diagnostic)"
			"   VALUES (lower($1), 'bounce', NULLIF($2, '')::uuid, NULLIF($3, ''))"
			"   ON CONFLICT (email) DO NOTHING RETURNING email, reason, message_id, diagnostic),"
			" ev AS (SELECT mf_uuidv7() AS pid, ins.* FROM ins)"
			" INSERT INTO events (public_id, type, payload)"
			" SELECT pid, 'suppression.created', jsonb_build_object('id', mf_event_id(pid),"
			"   'type', 'suppression.created',"
			"   'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
			"   'data', jsonb_build_object('email', email, 'reason', reason, 'message_id', message_id,"
			"                              'diagnostic', diagnostic))"
			" FROM ev RETURNING id",
			3, params, PGRES_TUPLES_OK, &res, err, errlen) < 0)
		return -1;
	int added = PQntuples(res) > 0;
	PQclear(res);
	return added;
}

/* Commits and frees tx; on failure rolls back (db_bounce_tx_abort). */
static int tx_commit(struct db_bounce_tx *tx, char *err, size_t errlen)
{
	if (db_exec(tx->conn, "COMMIT", err, errlen) < 0) {
		db_bounce_tx_abort(tx);
		return -1;
	}
	db_conn_put(tx->pool, tx->conn);
	PQfreemem(tx->raw);
	free(tx->rcpt_to);
	free(tx);
	return 0;
}

int db_bounce_tx_wait(struct db_bounce_tx *tx, int64_t recipient_id, long max_wait_secs, char *err,
		      size_t errlen)
{
	char idbuf[32], rid[32], secs[32];
	snprintf(idbuf, sizeof(idbuf), "%" PRId64, tx->id);
	snprintf(rid, sizeof(rid), "%" PRId64, recipient_id);
	snprintf(secs, sizeof(secs), "%ld", max_wait_secs);
	const char *params[] = { idbuf, rid, secs };
	if (db_exec(tx->conn, "ROLLBACK TO SAVEPOINT claimed", err, errlen) < 0 ||
	    exec_params(tx->conn, "UPDATE bounces_raw SET wait_rcpt = $2::bigint,"
				  " wait_until = coalesce(wait_until, now() + $3::bigint * interval '1 second')"
				  " WHERE id = $1::bigint", 3, params, PGRES_COMMAND_OK, NULL, err, errlen) < 0) {
		db_bounce_tx_abort(tx);
		return -1;
	}
	return tx_commit(tx, err, errlen);
}

int db_bounce_tx_finish(struct db_bounce_tx *tx, const char *outcome, char *err, size_t errlen)
{
	char idbuf[32];
	snprintf(idbuf, sizeof(idbuf), "%" PRId64, tx->id);
	const char *params[] = { idbuf, outcome };
	if (exec_params(tx->conn, "UPDATE bounces_raw SET processed_at = now(), outcome = $2 WHERE id = $1", 2,
			params, PGRES_COMMAND_OK, NULL, err, errlen) < 0) {
		db_bounce_tx_abort(tx);
		return -1;
	}
	return tx_commit(tx, err, errlen);
}

int db_bounce_mark(struct db_pool *pool, int64_t id, const char *outcome, char *err, size_t errlen)
{
	char idbuf[32];
	snprintf(idbuf, sizeof(idbuf), "%" PRId64, id);
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	const char *params[] = { idbuf, outcome };
	int rc = exec_params(c, "UPDATE bounces_raw SET processed_at = now(), outcome = $2"
				" WHERE id = $1 AND processed_at IS NULL", 2, params, PGRES_COMMAND_OK, NULL, err, errlen);
	db_conn_put(pool, c);
	return rc;
}

