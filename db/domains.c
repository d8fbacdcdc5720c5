/*
 * domains.c - sending domains and their DKIM keys (see domains.h).
 * Parameterised queries only; sealed keys travel as base64 text
 * (decode()/encode() in SQL), so no parameter is binary.
 */
#include "db/domains.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/internal.h"
#include "util/xmalloc.h"

#define TS(col) "coalesce(to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '')"

/* Domains joined to their keys that are not retired, one row per key
 * (or one with NULL key columns), grouped by domain. */
#define DOMAIN_SQL                                                                                  \
	"SELECT d.domain, d.status, " TS("d.created_at") ", " TS("d.verified_at") ", "              \
	TS("d.checked_at") ", coalesce(d.checks::text, ''),"                                        \
	" k.selector, k.algorithm, k.public_key, k.state, " TS("k.created_at") ", " TS("k.retire_after") \
	" FROM domains d LEFT JOIN domain_keys k ON k.domain = d.domain AND k.state <> 'retired'"

static int query(PGconn *c, const char *sql, int n, const char *const *params, PGresult **out, char *err,
		 size_t errlen)
{
	PGresult *res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
	if (!db_res_ok(res, PGRES_TUPLES_OK)) {
		db_set_error(c, res, err, errlen);
		PQclear(res);
		return -1;
	}
	*out = res;
	return 0;
}

/* query() on a connection of the pool, given back at once: *out (the
 * caller clears it) or -1 with err set. */
static int pool_query(struct db_pool *pool, const char *sql, int n, const char *const *params, PGresult **out,
		      char *err, size_t errlen)
{
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	int rc = query(c, sql, n, params, out, err, errlen);
	db_conn_put(pool, c);
	return rc;
}

/* Calls fn once per domain of res (rows grouped by domain); the count. */
static int domain_rows(PGresult *res, db_domain_fn fn, void *arg)
{
	int n = PQntuples(res), count = 0;
	struct db_domain_key *keys = xcalloc((size_t)n + 1, sizeof(*keys));
	for (int i = 0; i < n;) {
		int j = i, nk = 0;
		while (j < n && strcmp(PQgetvalue(res, j, 0), PQgetvalue(res, i, 0)) == 0) {
			if (!PQgetisnull(res, j, 6))
				keys[nk++] = (struct db_domain_key){
					.selector = PQgetvalue(res, j, 6), .algorithm = PQgetvalue(res, j, 7),
					.public_key = PQgetvalue(res, j, 8), .state = PQgetvalue(res, j, 9),
					.created_at = PQgetvalue(res, j, 10), .retire_after = PQgetvalue(res, j, 11),
				};
			j++;
		}
		struct db_domain d = {
			.domain = PQgetvalue(res, i, 0), .status = PQgetvalue(res, i, 1),
			.created_at = PQgetvalue(res, i, 2), .verified_at = PQgetvalue(res, i, 3),
			.checked_at = PQgetvalue(res, i, 4), .checks = PQgetvalue(res, i, 5),
			.nkeys = nk, .keys = keys,
		};
		if (fn)
			fn(&d, arg);
		count++;
		i = j;
	}
	free(keys);
	return count;
}

int db_domain_get(struct db_pool *pool, const char *domain, db_domain_fn fn, void *arg, char *err, size_t errlen)
{
	const char *params[] = { domain };
	PGresult *res = NULL;
	if (pool_query(pool, DOMAIN_SQL " WHERE d.domain = $1 ORDER BY d.domain, k.id", 1, params, &res, err, errlen) < 0)
		return -1;
	int rc = domain_rows(res, fn, arg);
	PQclear(res);
	return rc;
}

int db_domain_list(struct db_pool *pool, db_domain_fn fn, void *arg, char *err, size_t errlen)
{
	PGresult *res = NULL;
	if (pool_query(pool, DOMAIN_SQL " ORDER BY d.domain, k.id", 0, NULL, &res, err, errlen) < 0)
		return -1;
	int rc = domain_rows(res, fn, arg);
	PQclear(res);
	return rc;
}

/* The parameters $2.. for keys: selector, algorithm, public, sealed. */
#define KEY_PARAMS 4
#define KEYS_MAX 4

static int key_params(const char **params, const struct db_new_key *keys, int nkeys)
{
	if (nkeys < 1 || nkeys > KEYS_MAX)
		return -1;
	for (int i = 0; i < nkeys; i++) {
		params[1 + i * KEY_PARAMS] = keys[i].selector;
		params[2 + i * KEY_PARAMS] = keys[i].algorithm;
		params[3 + i * KEY_PARAMS] = keys[i].public_key;
		params[4 + i * KEY_PARAMS] = keys[i].sealed_b64;
	}
	return 0;
}

/* "($2,$3,$4,$5),($6,...)" for nkeys keys. */
static void key_values(char *out, size_t outsz, int nkeys)
{
	size_t o = 0;
	for (int i = 0; i < nkeys && o < outsz; i++) {
		int b = 2 + i * KEY_PARAMS;
		int w = snprintf(out + o, outsz - o, "%s($%d::text,$%d::text,$%d::text,$%d::text)", i ? "," : "", b,
				 b + 1, b + 2, b + 3);
		if (w < 0)
			break;
		o += (size_t)w;
	}
}

/* Runs sql with the domain and the keys; 1 when it returned a row, 0 when
 * none, 2 on a unique violation, -1 on another failure. */
static int exec_keys(struct db_pool *pool, const char *sql_fmt, const char *domain, const struct db_new_key *keys,
		     int nkeys, char *err, size_t errlen)
{
	const char *params[1 + KEYS_MAX * KEY_PARAMS];
	params[0] = domain;
	if (key_params(params, keys, nkeys) < 0) {
		snprintf(err, errlen, "db_domain: 1 to %d keys", KEYS_MAX);
		return -1;
	}
	char values[KEYS_MAX * 64], sql[2048];
	key_values(values, sizeof(values), nkeys);
	int w = snprintf(sql, sizeof(sql), sql_fmt, values);
	if (w < 0 || (size_t)w >= sizeof(sql)) {
		snprintf(err, errlen, "db_domain: statement too long");
		return -1;
	}
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	PGresult *res = PQexecParams(c, sql, 1 + nkeys * KEY_PARAMS, NULL, params, NULL, NULL, 0);
	int rc = -1;
	if (db_res_ok(res, PGRES_TUPLES_OK)) {
		rc = PQntuples(res) > 0;
	} else {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		if (state && strcmp(state, "23505") == 0)
			rc = 2;
		db_set_error(c, res, err, errlen);
	}
	PQclear(res);
	db_conn_put(pool, c);
	return rc;
}

int db_domain_create(struct db_pool *pool, const char *domain, const struct db_new_key *keys, int nkeys,
		     char *err, size_t errlen)
{
	/* One statement: the domain and its keys commit together. */
	int rc = exec_keys(pool,
		"WITH d AS (INSERT INTO domains (domain) VALUES ($1) ON CONFLICT (domain) DO NOTHING RETURNING domain),"
		" k AS (INSERT INTO domain_keys (domain, selector, algorithm, public_key, private_key, state, activated_at)"
		"   SELECT d.domain, v.sel, v.alg, v.pub, decode(v.priv, 'base64'), 'active', now()"
		"     FROM d, (VALUES %s) v (sel, alg, pub, priv) RETURNING 1)"
		" SELECT 1 FROM d", domain, keys, nkeys, err, errlen);
	return rc == 2 ? 0 : rc;
}

int db_domain_rotate(struct db_pool *pool, const char *domain, const struct db_new_key *keys, int nkeys,
		     char *err, size_t errlen)
{
	return exec_keys(pool,
		"WITH d AS (SELECT domain FROM domains WHERE domain = $1 FOR UPDATE),"
		" old AS (UPDATE domain_keys k SET state = 'retired', retire_after = now() FROM d"
		"   WHERE k.domain = d.domain AND k.state = 'pending' RETURNING 1),"
		" k AS (INSERT INTO domain_keys (domain, selector, algorithm, public_key, private_key, state)"
		"   SELECT d.domain, v.sel, v.alg, v.pub, decode(v.priv, 'base64'), 'pending'"
		"     FROM d, (VALUES %s) v (sel, alg, pub, priv) RETURNING 1)"
		" SELECT 1 FROM d", domain, keys, nkeys, err, errlen);
}

int db_domain_delete(struct db_pool *pool, const char *domain, char *err, size_t errlen)
{
	const char *params[] = { domain };
	PGresult *res = NULL;
	if (pool_query(pool, "DELETE FROM domains WHERE domain = $1 RETURNING 1", 1, params, &res, err, errlen) < 0)
		return -1;
	int rc = PQntuples(res) > 0;
	PQclear(res);
	return rc;
}

int db_domain_signing_keys(struct db_pool *pool, db_signing_fn fn, void *arg, char *err, size_t errlen)
{
	PGresult *res = NULL;
	if (pool_query(pool,
		"SELECT d.domain, d.status, k.selector, k.algorithm, encode(k.private_key, 'base64')"
		"  FROM domains d LEFT JOIN domain_keys k ON k.domain = d.domain AND k.state = 'active'"
		" ORDER BY d.domain, k.algorithm, k.id", 0, NULL, &res, err, errlen) < 0)
		return -1;
	int n = PQntuples(res);
	for (int i = 0; i < n; i++)
		fn(PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetisnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2),
		   PQgetvalue(res, i, 3), PQgetvalue(res, i, 4), arg);
	PQclear(res);
	return n;
}

/* The event of a status change: $1 domain, type and the checks in data. */
#define DOMAIN_EVENT_SQL                                                                            \
	"WITH ev AS (SELECT mf_uuidv7() AS pid)"                                                    \
	" INSERT INTO events (public_id, type, payload)"                                            \
	" SELECT pid, $2, jsonb_build_object('id', mf_event_id(pid), 'type', $2::text,"             \
	"   'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"   \
	"   'data', jsonb_build_object('domain', $1::text, 'checks', $3::jsonb))"                   \
	" FROM ev"

int db_domain_checked(struct db_pool *pool, const char *domain, int verified, const char *checks,
		      const char *promote, int grace_days, int *promoted, char *err, size_t errlen)
{
	if (promoted)
		*promoted = 0;
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	char grace[16];
	snprintf(grace, sizeof(grace), "%d", grace_days);
	const char *status = verified ? "verified" : "failed";
	const char *p1[] = { domain, status, checks };
	PGresult *res = NULL;
	int rc = db_exec(c, "BEGIN", err, errlen);
	/* The previous status, locked, then the new one. */
	if (rc == 0)
		rc = query(c, "WITH old AS (SELECT status FROM domains WHERE domain = $1 FOR UPDATE)"
			      " UPDATE domains d SET status = $2, checks = $3::jsonb, checked_at = now(),"
			      "   verified_at = CASE WHEN $2 = 'verified' THEN coalesce(d.verified_at, now()) ELSE d.verified_at END"
			      "  FROM old WHERE d.domain = $1 RETURNING old.status",
			   3, p1, &res, err, errlen);
	int changed = 0;
	if (rc == 0) {
		changed = PQntuples(res) > 0 && strcmp(PQgetvalue(res, 0, 0), status) != 0;
		PQclear(res);
	}
	if (rc == 0 && changed) {
		const char *pe[] = { domain, verified ? "domain.verified" : "domain.verification_failed", checks };
		PGresult *r2 = PQexecParams(c, DOMAIN_EVENT_SQL, 3, NULL, pe, NULL, NULL, 0);
		if (!db_res_ok(r2, PGRES_COMMAND_OK)) {
			db_set_error(c, r2, err, errlen);
			rc = -1;
		}
		PQclear(r2);
	}
	if (rc == 0 && verified && promote && *promote) {
		/* The domain row is locked (FOR UPDATE above), and so are its
		 * rotations: the pending keys are compared with those checked. */
		const char *p2[] = { domain, grace, promote };
		rc = query(c, "WITH ok AS (SELECT 1 WHERE (SELECT array_agg(selector ORDER BY selector) FROM domain_keys"
			      "   WHERE domain = $1 AND state = 'pending')"
			      "   = (SELECT array_agg(s ORDER BY s) FROM unnest(string_to_array($3, ',')) s)),"
			      " o AS (UPDATE domain_keys SET state = 'retiring',"
			      "   retire_after = now() + $2::int * interval '1 day'"
			      "  WHERE domain = $1 AND state = 'active' AND EXISTS (SELECT 1 FROM ok) RETURNING 1)"
			      " UPDATE domain_keys SET state = 'active', activated_at = now()"
			      "  WHERE domain = $1 AND state = 'pending' AND EXISTS (SELECT 1 FROM ok) RETURNING 1",
			   3, p2, &res, err, errlen);
		if (rc == 0 && promoted)
			*promoted = PQntuples(res) > 0;
		if (rc == 0)
			PQclear(res);
	}
	if (rc == 0) {
		const char *p3[] = { domain };
		rc = query(c, "UPDATE domain_keys SET state = 'retired' WHERE domain = $1 AND state = 'retiring'"
			      " AND retire_after <= now() RETURNING 1", 1, p3, &res, err, errlen);
		if (rc == 0)
			PQclear(res);
	}
	if (rc == 0)
		rc = db_exec(c, "COMMIT", err, errlen);
	else
		db_exec(c, "ROLLBACK", grace, sizeof(grace));
	db_conn_put(pool, c);
	return rc < 0 ? -1 : changed;
}

/* Runs a statement returning one or two text columns per row and calls
 * fn1 or fn2 with them; the row count or -1. */
static int rows_call(struct db_pool *pool, const char *sql, int n, const char *const *params,
		     void (*fn1)(const char *, void *), void (*fn2)(const char *, const char *, void *), void *arg,
		     char *err, size_t errlen)
{
	PGresult *res = NULL;
	if (pool_query(pool, sql, n, params, &res, err, errlen) < 0)
		return -1;
	int rc = PQntuples(res);
	for (int i = 0; i < rc; i++) {
		if (fn1)
			fn1(PQgetvalue(res, i, 0), arg);
		if (fn2)
			fn2(PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), arg);
	}
	PQclear(res);
	return rc;
}

int db_domain_claim_recheck(struct db_pool *pool, long interval_secs, int limit, void (*fn)(const char *domain, void *arg),
			    void *arg, char *err, size_t errlen)
{
	char secs[32], lim[16];
	snprintf(secs, sizeof(secs), "%ld", interval_secs);
	snprintf(lim, sizeof(lim), "%d", limit);
	const char *params[] = { secs, lim };
	/* The conditional UPDATE is the claim: a second process's statement
	 * skips the locked rows, or, once this one committed, finds their
	 * checked_at fresh. */
	return rows_call(pool,
		"UPDATE domains d SET checked_at = now() FROM"
		" (SELECT domain FROM domains WHERE status = 'verified'"
		"   AND (checked_at IS NULL OR checked_at <= now() - $1::bigint * interval '1 second')"
		"   ORDER BY checked_at NULLS FIRST LIMIT $2::int FOR UPDATE SKIP LOCKED) due"
		" WHERE d.domain = due.domain RETURNING d.domain",
		2, params, fn, NULL, arg, err, errlen);
}

int db_domain_keys_retire(struct db_pool *pool, void (*fn)(const char *domain, const char *selector, void *arg),
			  void *arg, char *err, size_t errlen)
{
	return rows_call(pool,
		"UPDATE domain_keys SET state = 'retired' WHERE state = 'retiring' AND retire_after <= now()"
		" RETURNING domain, selector", 0, NULL, NULL, fn, arg, err, errlen);
}
