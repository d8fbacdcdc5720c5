/*
 * keys.c - API key storage (see keys.h).  Parameterised queries only.
 */
#include "db/keys.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "db/internal.h"
#include "util/hex.h"

/* Hex-encodes bytea parameters: '\x...' input form. */
static void to_hex_bytea(const unsigned char *p, size_t n, char *out)
{
	out[0] = '\\';
	out[1] = 'x';
	hex_encode(p, n, out + 2);
}

int db_key_insert(struct db_pool *pool, const char *name, const char *public_id,
		  const unsigned char *salt, const unsigned char *hash, const char *scopes_csv,
		  int64_t *id, char *err, size_t errlen)
{
	char salt_hex[2 * DB_KEY_SALT_LEN + 3], hash_hex[2 * DB_KEY_HASH_LEN + 3];
	to_hex_bytea(salt, DB_KEY_SALT_LEN, salt_hex);
	to_hex_bytea(hash, DB_KEY_HASH_LEN, hash_hex);
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	const char *params[] = { name, public_id, salt_hex, hash_hex, scopes_csv };
	PGresult *res = PQexecParams(c,
		"INSERT INTO api_keys (name, public_id, salt, hash, scopes)"
		" VALUES ($1, $2, $3::bytea, $4::bytea, string_to_array($5, ',')) RETURNING id",
		5, NULL, params, NULL, NULL, 0);
	int rc = db_res_int64(c, res, id, err, errlen);
	db_conn_put(pool, c);
	return rc < 0 ? -1 : 0;
}

int db_key_lookup(struct db_pool *pool, const char *public_id, struct db_key_auth *out, char *err,
		  size_t errlen)
{
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	const char *params[] = { public_id };
	/* Binary results: salt and hash arrive as raw bytes. */
	PGresult *res = PQexecParams(c,
		"SELECT id::text::bytea, salt, hash, array_to_string(scopes, ',')::bytea,"
		" (revoked_at IS NOT NULL)::text::bytea FROM api_keys WHERE public_id = $1",
		1, NULL, params, NULL, NULL, 1);
	int rc = -1;
	if (!db_res_ok(res, PGRES_TUPLES_OK)) {
		db_set_error(c, res, err, errlen);
	} else if (PQntuples(res) == 0) {
		rc = 0;
	} else if (PQgetlength(res, 0, 1) != DB_KEY_SALT_LEN || PQgetlength(res, 0, 2) != DB_KEY_HASH_LEN) {
		snprintf(err, errlen, "api key %s has a malformed hash", public_id);
	} else {
		char idbuf[32];
		int l = PQgetlength(res, 0, 0);
		snprintf(idbuf, sizeof(idbuf), "%.*s", l, PQgetvalue(res, 0, 0));
		out->id = strtoll(idbuf, NULL, 10);
		memcpy(out->salt, PQgetvalue(res, 0, 1), DB_KEY_SALT_LEN);
		memcpy(out->hash, PQgetvalue(res, 0, 2), DB_KEY_HASH_LEN);
		snprintf(out->scopes, sizeof(out->scopes), "%.*s", PQgetlength(res, 0, 3), PQgetvalue(res, 0, 3));
		out->revoked = PQgetvalue(res, 0, 4)[0] == 't';
		rc = 1;
	}
	PQclear(res);
	db_conn_put(pool, c);
	return rc;
}

int db_key_revoke(struct db_pool *pool, int64_t id, char *err, size_t errlen)
{
	char idbuf[32];
	snprintf(idbuf, sizeof(idbuf), "%" PRId64, id);
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	const char *params[] = { idbuf };
	PGresult *res = PQexecParams(c,
		"UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
		1, NULL, params, NULL, NULL, 0);
	int rc = -1;
	if (db_res_ok(res, PGRES_COMMAND_OK))
		rc = strcmp(PQcmdTuples(res), "0") != 0;
	else
		db_set_error(c, res, err, errlen);
	PQclear(res);
	db_conn_put(pool, c);
	return rc;
}

int db_key_list(struct db_pool *pool, void (*fn)(const struct db_key_row *row, void *arg), void *arg,
		char *err, size_t errlen)
{
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	PGresult *res = PQexec(c,
		"SELECT id, name, public_id, array_to_string(scopes, ','),"
		" to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
		" coalesce(to_char(last_used_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''),"
		" coalesce(to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '')"
		" FROM api_keys ORDER BY id");
	int ok = db_res_ok(res, PGRES_TUPLES_OK);
	if (!ok)
		db_set_error(c, res, err, errlen);
	for (int i = 0; ok && i < PQntuples(res); i++) {
		struct db_key_row row = {
			.id = strtoll(PQgetvalue(res, i, 0), NULL, 10),
			.name = PQgetvalue(res, i, 1),
			.public_id = PQgetvalue(res, i, 2),
			.scopes = PQgetvalue(res, i, 3),
			.created_at = PQgetvalue(res, i, 4),
			.last_used_at = PQgetvalue(res, i, 5),
			.revoked_at = PQgetvalue(res, i, 6),
		};
		fn(&row, arg);
	}
	PQclear(res);
	db_conn_put(pool, c);
	return ok ? 0 : -1;
}
