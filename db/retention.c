/*
 * retention.c - batched retention deletes (see retention.h).
 *
 * Each statement picks its batch with ORDER BY age LIMIT n FOR UPDATE SKIP
 * LOCKED over an index on the age column (messages_body_kept_idx from
 * 0006 for bodies, so cleared rows are never scanned again), then updates
 * or deletes by key: short transactions, no long locks, safe to run in
 * several processes at once.
 */
#include "db/retention.h"

#include <stdio.h>
#include <stdlib.h>

#include "db/internal.h"

/* A message with a recipient still waiting or in flight is kept whole. */
#define MSG_SETTLED \
	" AND NOT EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id" \
	" AND r.status IN ('queued', 'scheduled', 'sending', 'deferred'))"

static const struct {
	const char *name;
	const char *sql; /* $1 age in seconds, $2 batch */
} kinds[DB_RET_KINDS] = {
	[DB_RET_BODIES] = { "bodies",
		"UPDATE messages SET body = NULL, request = NULL WHERE id IN ("
		" SELECT m.id FROM messages m WHERE m.body IS NOT NULL"
		" AND m.created_at < now() - $1::bigint * interval '1 second'" MSG_SETTLED
		" ORDER BY m.created_at LIMIT $2::int FOR UPDATE SKIP LOCKED)" },
	[DB_RET_EVENTS] = { "events",
		"DELETE FROM events WHERE id IN ("
		" SELECT id FROM events WHERE created_at < now() - $1::bigint * interval '1 second'"
		" ORDER BY created_at LIMIT $2::int FOR UPDATE SKIP LOCKED)" },
	/* A message goes with its recipients (no foreign key cascades them
	 * since migration 0013).  Events that outlive their message keep
	 * their document: an accept
	 * event stores none (mf_event_doc builds it from the message), so it
	 * is stored now, from the same snapshot the DELETE works on. */
	[DB_RET_MESSAGES] = { "messages",
		"WITH doomed AS ("
		" SELECT m.id FROM messages m WHERE m.created_at < now() - $1::bigint * interval '1 second'" MSG_SETTLED
		" ORDER BY m.created_at LIMIT $2::int FOR UPDATE SKIP LOCKED),"
		" kept AS (UPDATE events e SET payload = mf_event_doc(e) FROM doomed d"
		"           WHERE e.message_id = d.id AND e.payload IS NULL),"
		" rcpts AS (DELETE FROM recipients r USING doomed d WHERE r.message_id = d.id)"
		" DELETE FROM messages WHERE id IN (SELECT id FROM doomed)" },
	[DB_RET_BOUNCES] = { "bounces_raw",
		"DELETE FROM bounces_raw WHERE id IN ("
		" SELECT id FROM bounces_raw WHERE received_at < now() - $1::bigint * interval '1 second'"
		" ORDER BY id LIMIT $2::int FOR UPDATE SKIP LOCKED)" },
	[DB_RET_IDEMPOTENCY] = { "idempotency_keys",
		"DELETE FROM idempotency_keys WHERE (api_key_id, key) IN ("
		" SELECT api_key_id, key FROM idempotency_keys"
		" WHERE created_at < now() - $1::bigint * interval '1 second'"
		" ORDER BY created_at LIMIT $2::int FOR UPDATE SKIP LOCKED)" },
	/* A destination forgotten starts again as a new one (the initial
	 * window, a full token bucket), as Postfix's queue manager forgets a
	 * destination whose queue has emptied; a paused one or one with a
	 * job in flight is kept. */
	[DB_RET_DESTINATIONS] = { "destinations",
		"DELETE FROM destinations WHERE domain IN ("
		" SELECT d.domain FROM destinations d"
		" WHERE greatest(d.updated_at, d.tokens_at) < now() - $1::bigint * interval '1 second'"
		" AND (d.paused_until IS NULL OR d.paused_until < now())"
		" AND NOT EXISTS (SELECT 1 FROM recipients r WHERE r.status = 'sending' AND r.domain = d.domain)"
		" ORDER BY d.updated_at LIMIT $2::int FOR UPDATE SKIP LOCKED)" },
	/* An expired policy is never used again (RFC 8461 §5.1): the
	 * relay fetches anew. */
	[DB_RET_STS] = { "mta_sts_policies",
		"DELETE FROM mta_sts_policies WHERE domain IN ("
		" SELECT domain FROM mta_sts_policies WHERE expires_at < now() - $1::bigint * interval '1 second'"
		" ORDER BY expires_at LIMIT $2::int FOR UPDATE SKIP LOCKED)" },
};

const char *db_retention_name(enum db_retention_kind kind)
{
	return (unsigned)kind < DB_RET_KINDS ? kinds[kind].name : "unknown";
}

int db_retention_batch(struct db_pool *pool, enum db_retention_kind kind, long age_secs, int batch, char *err,
		       size_t errlen)
{
	if ((unsigned)kind >= DB_RET_KINDS || batch <= 0) {
		snprintf(err, errlen, "retention: bad kind or batch");
		return -1;
	}
	char age[32], lim[16];
	snprintf(age, sizeof(age), "%ld", age_secs);
	snprintf(lim, sizeof(lim), "%d", batch);
	const char *params[] = { age, lim };
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	PGresult *res = PQexecParams(c, kinds[kind].sql, 2, NULL, params, NULL, NULL, 0);
	int n = -1;
	if (db_res_ok(res, PGRES_COMMAND_OK))
		n = (int)strtol(PQcmdTuples(res), NULL, 10);
	else
		db_set_error(c, res, err, errlen);
	PQclear(res);
	db_conn_put(pool, c);
	return n;
}
