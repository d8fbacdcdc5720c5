/*
 * auth.h - API keys: making them and checking "Authorization: Bearer KEY"
 * (RFC 6750 §2.1); implemented in api/auth.c, keys stored by db/keys.h.
 *
 * A key reads  mf_<public id>_<secret>.  Only the public id, a random salt
 * and SHA-256(salt || secret) are stored; the secret is shown once.
 *
 * api_authenticate() only judges: it returns an enum api_auth_status and
 * knows nothing of HTTP responses.  api/server.c turns a failure into the
 * 401 / 403 / 503 answer.
 */
#ifndef MF_API_AUTH_H
#define MF_API_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "api/http.h"

struct db_pool;

enum api_auth_status {
	AUTH_OK = 0,
	AUTH_MISSING,     /* no "Authorization: Bearer ..." header: 401 */
	AUTH_INVALID,     /* unknown, malformed or revoked key: 401 */
	AUTH_FORBIDDEN,   /* a good key without the scope needed: 403 */
	AUTH_UNAVAILABLE, /* the key store cannot be read: 503, err set */
};

/* Who the request is, when AUTH_OK. */
struct api_auth {
	int64_t key_id;
	unsigned scopes; /* API_SCOPE_* bits */
};

/*
 * Checks the Authorization header value (borrowed, NULL when absent)
 * against the keys in pool and the scope the route needs (an admin key has
 * every scope).  AUTH_OK fills *out; AUTH_UNAVAILABLE writes the store's
 * error into err.  Nothing is logged here.
 */
enum api_auth_status api_authenticate(struct db_pool *pool, const char *authorization, unsigned need_scope,
				      struct api_auth *out, char *err, size_t errlen);

/*
 * The same check for a bare key (SMTP AUTH's password, submit/).  fresh
 * skips the key cache, so a key revoked a moment ago is refused at once
 * (a submission session checks its key once, at AUTH).  Never
 * AUTH_MISSING.
 */
enum api_auth_status api_authenticate_key(struct db_pool *pool, const char *key, unsigned need_scope, int fresh,
					  struct api_auth *out, char *err, size_t errlen);

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
