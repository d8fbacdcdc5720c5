/*
 * auth.h - API keys: making them and checking "Authorization: Bearer KEY".
 *
 * A key reads  mf_<public id>_<secret>.  Only the public id, a random salt
 * and SHA-256(salt || secret) are stored; the secret is shown once.
 */
#ifndef MF_API_AUTH_H
#define MF_API_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "api/http.h"

struct db_pool;

/*
 * Checks the request's bearer key against the database and the scope the
 * route needs.  Returns 0 (req->api_key_id and req->scopes set), or -1 with
 * a 401/403/503 problem already in req->resp.
 */
int api_authenticate(struct api_req *req, unsigned need_scope);

/* Parses "send,read,admin" into API_SCOPE_* bits; -1 on an unknown name. */
int api_scopes_parse(const char *csv, unsigned *out);
/* Writes "send,read" for the bits into out. */
void api_scopes_format(unsigned scopes, char *out, size_t outsz);

/*
 * Creates a key in the database.  On success returns 0 and writes the full
 * secret key (shown once) into key[keysz] and its row id into *id.
 */
int api_key_create(struct db_pool *pool, const char *name, unsigned scopes, char *key, size_t keysz,
		   int64_t *id, char *err, size_t errlen);

#endif
