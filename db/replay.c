/*
 * replay.c - requeueing recipients by filter (see replay.h).
 *
 * Every query takes the filter as the same six parameters $1..$6 (status
 * array, message id, created window, domain, tag); a NULL parameter is no
 * condition.  PQexecParams plans the unnamed statement with the values, so
 * the "$n IS NULL OR ..." terms fold away and the indexes still serve.
 *
 * A batch: lock up to N matching recipients after the keyset cursor
 * (FOR UPDATE re-checks the filter if a worker changed the row meanwhile),
 * requeue the ones that are neither suppressed nor expired, record one
 * event each, refresh their messages' status, wake the schedulers, commit.
 */
#include "db/replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/internal.h"
#include "util/buf.h"
#include "util/limits.h"

#define FILTER_PARAMS 6
#define REPLAY_RETRIES 5

static const char filter_sql[] =
	" FROM recipients r JOIN messages m ON m.id = r.message_id"
	" WHERE r.status = ANY($1::text[])"
	" AND ($2::uuid IS NULL OR r.message_id = $2::uuid)"
	" AND ($3::timestamptz IS NULL OR m.created_at >= $3::timestamptz)"
	" AND ($4::timestamptz IS NULL OR m.created_at < $4::timestamptz)"
	" AND ($5::text IS NULL OR r.domain = lower($5::text))"
	" AND ($6::text IS NULL OR m.tags @> ARRAY[$6::text])";

/* Fills params[0..5] from f; statuses is the caller's storage for $1. */
static int filter_params(const struct db_replay_filter *f, char statuses[64], const char **params,
			 char *err, size_t errlen)
{
	if ((f->statuses & DB_REPLAY_ALL) == 0) {
		snprintf(err, errlen, "replay: no status selected");
		return -1;
	}
	snprintf(statuses, 64, "{%s%s%s}", f->statuses & DB_REPLAY_FAILED ? "failed," : "",
		 f->statuses & DB_REPLAY_BOUNCED ? "bounced," : "",
		 f->statuses & DB_REPLAY_DEFERRED ? "deferred," : "");
	size_t n = strlen(statuses);
	statuses[n - 2] = '}'; /* drop the trailing comma */
	statuses[n - 1] = '\0';
	params[0] = statuses;
	params[1] = f->message_id;
	params[2] = f->created_after;
	params[3] = f->created_before;
	params[4] = f->domain;
	params[5] = f->tag;
	return 0;
}

int db_replay_count(struct db_pool *pool, const struct db_replay_filter *f, int nsample,
		    void (*sample)(const struct db_replay_sample *s, void *arg), void *arg,
		    struct db_replay_result *out, char *err, size_t errlen)
{
	char statuses[64], lim[16];
	const char *params[FILTER_PARAMS + 1];
	memset(out, 0, sizeof(*out));
	if (filter_params(f, statuses, params, err, errlen) < 0)
		return -1;
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	char sql[2048];
	snprintf(sql, sizeof(sql),
		 "SELECT count(*), count(*) FILTER (WHERE x.supp), count(*) FILTER (WHERE NOT x.supp AND x.expired)"
		 " FROM (SELECT EXISTS (SELECT 1 FROM suppressions s WHERE s.email = lower(r.email)) AS supp,"
		 " m.body IS NULL AS expired%s) x", filter_sql);
	PGresult *res = PQexecParams(c, sql, FILTER_PARAMS, NULL, params, NULL, NULL, 0);
	int rc = -1;
	if (!db_res_ok(res, PGRES_TUPLES_OK)) {
		db_set_error(c, res, err, errlen);
		goto done;
	}
	out->matched = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	out->skipped_suppressed = strtol(PQgetvalue(res, 0, 1), NULL, 10);
	out->skipped_expired = strtol(PQgetvalue(res, 0, 2), NULL, 10);
	PQclear(res);
	res = NULL;
	if (sample != NULL && nsample > 0) {
		snprintf(lim, sizeof(lim), "%d", nsample > MF_REPLAY_SAMPLE_MAX ? MF_REPLAY_SAMPLE_MAX : nsample);
		params[FILTER_PARAMS] = lim;
		snprintf(sql, sizeof(sql),
			 "SELECT r.message_id, r.email, r.status,"
			 " to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
			 "%s ORDER BY r.id LIMIT $7::int", filter_sql);
		res = PQexecParams(c, sql, FILTER_PARAMS + 1, NULL, params, NULL, NULL, 0);
		if (!db_res_ok(res, PGRES_TUPLES_OK)) {
			db_set_error(c, res, err, errlen);
			goto done;
		}
		for (int i = 0; i < PQntuples(res); i++) {
			struct db_replay_sample s = { PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
						      PQgetvalue(res, i, 2), PQgetvalue(res, i, 3) };
			sample(&s, arg);
		}
	}
	rc = 0;
done:
	PQclear(res);
	db_conn_put(pool, c);
	return rc;
}

/*
 * Runs a statement expecting rows or a command result: 0, -1 on error, -2
 * when PostgreSQL aborted the transaction as a deadlock victim or on a
 * serialization failure (SQLSTATE 40P01/40001): the batch can be retried.
 */
static int run(PGconn *c, const char *sql, int n, const char *const *params, char *err, size_t errlen)
{
	PGresult *res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
	int rc = db_res_ok(res, PGRES_TUPLES_OK) || db_res_ok(res, PGRES_COMMAND_OK) ? 0 : -1;
	if (rc < 0) {
		const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
		if (state && (strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0))
			rc = -2;
		db_set_error(c, res, err, errlen);
	}
	PQclear(res);
	return rc;
}

/*
 * One batch in its own transaction.  Returns the number of recipients
 * locked (0: nothing left after *cursor), -1 on error, or -2 when the
 * transaction was rolled back as retryable (nothing changed, *cursor kept).
 * Advances *cursor only on success.
 */
static int replay_batch(PGconn *c, const char **params, const char *requested_by, int batch_size,
			long long *cursor, struct db_replay_result *out, char *err, size_t errlen)
{
	char cur[32], lim[16], sql[2048];
	snprintf(cur, sizeof(cur), "%lld", *cursor);
	snprintf(lim, sizeof(lim), "%d", batch_size);
	const char *p[FILTER_PARAMS + 2];
	memcpy(p, params, FILTER_PARAMS * sizeof(*p));
	p[FILTER_PARAMS] = cur;
	p[FILTER_PARAMS + 1] = lim;
	snprintf(sql, sizeof(sql),
		 "SELECT r.id, r.message_id,"
		 " EXISTS (SELECT 1 FROM suppressions s WHERE s.email = lower(r.email)), m.body IS NULL"
		 "%s AND r.id > $7::bigint ORDER BY r.id LIMIT $8::int FOR UPDATE OF r", filter_sql);

	if (db_exec(c, "BEGIN", err, errlen) < 0)
		return -1;
	PGresult *res = PQexecParams(c, sql, FILTER_PARAMS + 2, NULL, p, NULL, NULL, 0);
	if (!db_res_ok(res, PGRES_TUPLES_OK)) {
		const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
		int rc = state && (strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0) ? -2 : -1;
		db_set_error(c, res, err, errlen);
		PQclear(res);
		db_exec(c, "ROLLBACK", cur, sizeof(cur));
		return rc;
	}
	int n = PQntuples(res);
	struct buf ids, msgs;
	buf_init(&ids, (size_t)batch_size * 24 + 16);
	buf_init(&msgs, (size_t)batch_size * 40 + 16);
	buf_putc(&ids, '{');
	buf_putc(&msgs, '{');
	long requeue = 0, supp = 0, expired = 0;
	for (int i = 0; i < n; i++) {
		if (PQgetvalue(res, i, 2)[0] == 't') {
			supp++;
		} else if (PQgetvalue(res, i, 3)[0] == 't') {
			expired++;
		} else {
			buf_printf(&ids, "%s%s", requeue ? "," : "", PQgetvalue(res, i, 0));
			buf_printf(&msgs, "%s%s", requeue ? "," : "", PQgetvalue(res, i, 1));
			requeue++;
		}
	}
	long long last = n > 0 ? strtoll(PQgetvalue(res, n - 1, 0), NULL, 10) : *cursor;
	PQclear(res);
	buf_putc(&ids, '}');
	buf_putc(&msgs, '}');

	int rc = 0;
	if (requeue > 0) {
		const char *u[] = { buf_cstr(&ids), requested_by, buf_cstr(&msgs) };
		rc = run(c,
			 "UPDATE recipients SET status = 'queued', next_attempt_at = now(), first_attempt_at = NULL,"
			 " lease_owner = NULL, lease_expires_at = NULL, bounce_type = NULL, bounce_category = NULL,"
			 " updated_at = now() WHERE id = ANY($1::bigint[])",
			 1, u, err, errlen);
		/* One message.requeued event per recipient, in recipient order,
		 * set-based as the delivery recorder writes its events
		 * (db/queue.c): mf_event_payload() over the updated rows and their
		 * messages, not a plpgsql mf_record_event() call with two lookups
		 * per row (which also copies each message's body). */
		if (rc == 0)
			rc = run(c,
				 "WITH v AS (SELECT nextval('events_id_seq') AS eid, mf_uuidv7() AS pid, x.rr"
				 "             FROM (SELECT rr FROM recipients rr WHERE rr.id = ANY($1::bigint[])"
				 "                   ORDER BY rr.id) x)"
				 " INSERT INTO events (id, public_id, message_id, recipient_id, type, payload)"
				 " SELECT v.eid, v.pid, (v.rr).message_id, (v.rr).id, 'message.requeued',"
				 "        mf_event_payload(v.pid, 'message.requeued', v.rr, m,"
				 "                         jsonb_build_object('requested_by', $2::text))"
				 "   FROM v JOIN messages m ON m.id = (v.rr).message_id ORDER BY v.eid",
				 2, u, err, errlen);
		if (rc == 0)
			rc = run(c, "SELECT mf_refresh_message_statuses($1::uuid[])", 1, u + 2, err, errlen);
		/* Updates do not fire the insert trigger: wake the schedulers. */
		if (rc == 0)
			rc = run(c, "SELECT pg_notify('mailferry_queue', '')", 0, NULL, err, errlen);
	}
	buf_cleanup(&ids);
	buf_cleanup(&msgs);
	if (rc == 0)
		rc = db_exec(c, "COMMIT", err, errlen);
	else
		db_exec(c, "ROLLBACK", cur, sizeof(cur));
	if (rc < 0)
		return rc == -2 ? -2 : -1;
	out->matched += n;
	out->requeued += requeue;
	out->skipped_suppressed += supp;
	out->skipped_expired += expired;
	*cursor = last;
	if (n > 0)
		out->batches++;
	return n;
}

int db_replay_run(struct db_pool *pool, const struct db_replay_filter *f, const char *requested_by,
		  int batch_size, void (*progress)(const struct db_replay_result *r, void *arg), void *arg,
		  struct db_replay_result *out, char *err, size_t errlen)
{
	char statuses[64];
	const char *params[FILTER_PARAMS];
	memset(out, 0, sizeof(*out));
	if (batch_size <= 0)
		batch_size = MF_REPLAY_BATCH;
	if (filter_params(f, statuses, params, err, errlen) < 0)
		return -1;
	long long cursor = 0;
	int retries = 0;
	for (;;) {
		/* A connection per batch: other users of the pool get a turn. */
		PGconn *c = db_conn_get(pool, err, errlen);
		if (c == NULL)
			return -1;
		int n = replay_batch(c, params, requested_by, batch_size, &cursor, out, err, errlen);
		db_conn_put(pool, c);
		/* A deadlock victim (e.g. against the recorder updating the same
		 * messages) changed nothing: run the batch again, a few times. */
		if (n == -2 && retries++ < REPLAY_RETRIES) {
			out->retries++;
			continue;
		}
		if (n < 0)
			return -1;
		retries = 0;
		if (progress && n > 0)
			progress(out, arg);
		if (n < batch_size)
			return 0;
	}
}

int db_replay_message_owner(struct db_pool *pool, const char *message_id, long long *api_key_id,
			    char *err, size_t errlen)
{
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	const char *params[] = { message_id };
	PGresult *res = PQexecParams(c, "SELECT coalesce(api_key_id, 0) FROM messages WHERE id = $1::uuid", 1,
				     NULL, params, NULL, NULL, 0);
	int64_t owner = 0;
	int rc = db_res_int64(c, res, &owner, err, errlen);
	if (rc > 0)
		*api_key_id = owner;
	db_conn_put(pool, c);
	return rc;
}
