/*
 * auth.c - API keys and bearer authentication (see auth.h).
 *
 * The key's secret has 256 bits of entropy, so a salted SHA-256 is enough
 * (no slow KDF needed); the comparison is constant-time (CRYPTO_memcmp).
 * Key rows found in the database are cached for MF_AUTH_CACHE_TTL_MS (the
 * secret is still hashed and compared on every request), so a revocation
 * takes effect within that time and the hot send path does not pay a
 * database round trip per request.
 *
 * api_authenticate() returns an enum api_auth_status and never builds a
 * response: api/server.c maps it to 401 / 403 / 503.  Nothing here calls
 * into api/server.c.
 */
#include "api/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>
#include <strings.h>
#include <time.h>

#include "db/keys.h"
#include "util/base64.h"
#include "util/limits.h"

#define PUBLIC_ID_LEN 12
#define SECRET_BYTES 32

static const char *scope_names[] = { "send", "read", "admin" };

int api_scopes_parse(const char *csv, unsigned *out)
{
	unsigned bits = 0;
	const char *p = csv;
	while (*p) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		int found = 0;
		for (int i = 0; i < 3; i++)
			if (strlen(scope_names[i]) == n && strncmp(p, scope_names[i], n) == 0)
				bits |= 1u << i, found = 1;
		if (!found)
			return -1;
		if (!e)
			break;
		p = e + 1;
	}
	if (bits == 0)
		return -1;
	*out = bits;
	return 0;
}

void api_scopes_format(unsigned scopes, char *out, size_t outsz)
{
	size_t o = 0;
	out[0] = '\0';
	for (int i = 0; i < 3; i++)
		if (scopes & (1u << i)) {
			int n = snprintf(out + o, outsz - o, "%s%s", o ? "," : "", scope_names[i]);
			if (n < 0 || (size_t)n >= outsz - o)
				return;
			o += (size_t)n;
		}
}

/* SHA-256, fetched once for the life of the process: EVP_sha256() makes
 * OpenSSL 3 look the implementation up again at every digest (~1% of the
 * send path's CPU). */
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256;

static void sha256_fetch(void)
{
	sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static void hash_secret(const unsigned char *salt, const char *secret, unsigned char *out)
{
	pthread_once(&sha256_once, sha256_fetch);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int len = 0;
	EVP_DigestInit_ex(ctx, sha256 ? sha256 : EVP_sha256(), NULL);
	EVP_DigestUpdate(ctx, salt, DB_KEY_SALT_LEN);
	EVP_DigestUpdate(ctx, secret, strlen(secret));
	EVP_DigestFinal_ex(ctx, out, &len);
	EVP_MD_CTX_free(ctx);
}

int api_key_create(struct db_pool *pool, const char *name, unsigned scopes, char *key, size_t keysz,
		   int64_t *id, char *err, size_t errlen)
{
	static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char rnd[PUBLIC_ID_LEN], secret_raw[SECRET_BYTES], salt[DB_KEY_SALT_LEN], hash[DB_KEY_HASH_LEN];
	char public_id[PUBLIC_ID_LEN + 1], secret[2 * SECRET_BYTES], scopes_csv[64];
	if (RAND_bytes(rnd, sizeof(rnd)) != 1 || RAND_bytes(secret_raw, sizeof(secret_raw)) != 1 ||
	    RAND_bytes(salt, sizeof(salt)) != 1) {
		snprintf(err, errlen, "no randomness available");
		return -1;
	}
	for (int i = 0; i < PUBLIC_ID_LEN; i++)
		public_id[i] = alnum[rnd[i] % 36];
	public_id[PUBLIC_ID_LEN] = '\0';
	base64_encode(secret_raw, sizeof(secret_raw), secret, sizeof(secret), B64_URL | B64_NOPAD);
	hash_secret(salt, secret, hash);
	api_scopes_format(scopes, scopes_csv, sizeof(scopes_csv));
	if (db_key_insert(pool, name, public_id, salt, hash, scopes_csv, id, err, errlen) < 0)
		return -1;
	int n = snprintf(key, keysz, "mf_%s_%s", public_id, secret);
	if (n < 0 || (size_t)n >= keysz) {
		snprintf(err, errlen, "key buffer too small");
		return -1;
	}
	OPENSSL_cleanse(secret, sizeof(secret));
	return 0;
}

/* Splits "mf_<id>_<secret>"; returns 0 with public_id filled, or -1. */
static int split_key(const char *key, char *public_id, const char **secret)
{
	if (strncmp(key, "mf_", 3) != 0)
		return -1;
	const char *p = key + 3;
	const char *us = strchr(p, '_');
	if (us == NULL || us - p != PUBLIC_ID_LEN || us[1] == '\0' || strlen(us + 1) > 128)
		return -1;
	memcpy(public_id, p, PUBLIC_ID_LEN);
	public_id[PUBLIC_ID_LEN] = '\0';
	*secret = us + 1;
	return 0;
}

/* The key cache: a small table, the oldest slot replaced when full. */
#define AUTH_CACHE_SLOTS 64
static struct {
	char public_id[PUBLIC_ID_LEN + 1];
	struct db_key_auth auth;
	long fetched_ms;
} auth_cache[AUTH_CACHE_SLOTS];
static pthread_mutex_t auth_cache_mu = PTHREAD_MUTEX_INITIALIZER;

static long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* 1 with *out from the cache when fresh, else 0. */
static int cache_get(const char *public_id, struct db_key_auth *out)
{
	long now = mono_ms();
	int hit = 0;
	pthread_mutex_lock(&auth_cache_mu);
	for (int i = 0; i < AUTH_CACHE_SLOTS && !hit; i++)
		if (auth_cache[i].fetched_ms && now - auth_cache[i].fetched_ms < MF_AUTH_CACHE_TTL_MS &&
		    strcmp(auth_cache[i].public_id, public_id) == 0) {
			*out = auth_cache[i].auth;
			hit = 1;
		}
	pthread_mutex_unlock(&auth_cache_mu);
	return hit;
}

static void cache_put(const char *public_id, const struct db_key_auth *a)
{
	long now = mono_ms();
	pthread_mutex_lock(&auth_cache_mu);
	int slot = 0;
	for (int i = 0; i < AUTH_CACHE_SLOTS; i++) {
		if (strcmp(auth_cache[i].public_id, public_id) == 0) {
			slot = i;
			break;
		}
		if (auth_cache[i].fetched_ms < auth_cache[slot].fetched_ms)
			slot = i;
	}
	snprintf(auth_cache[slot].public_id, sizeof(auth_cache[slot].public_id), "%s", public_id);
	auth_cache[slot].auth = *a;
	auth_cache[slot].fetched_ms = now;
	pthread_mutex_unlock(&auth_cache_mu);
}

enum api_auth_status api_authenticate_key(struct db_pool *pool, const char *key, unsigned need_scope, int fresh,
					  struct api_auth *out, char *err, size_t errlen)
{
	char public_id[PUBLIC_ID_LEN + 1];
	const char *secret;
	struct db_key_auth auth;
	int found = 0;
	if (split_key(key, public_id, &secret) == 0) {
		found = fresh ? 0 : cache_get(public_id, &auth);
		if (!found) {
			found = db_key_lookup(pool, public_id, &auth, err, errlen);
			if (found == 1)
				cache_put(public_id, &auth);
		}
	}
	if (found < 0)
		return AUTH_UNAVAILABLE;
	unsigned char hash[DB_KEY_HASH_LEN];
	if (found)
		hash_secret(auth.salt, secret, hash);
	if (!found || CRYPTO_memcmp(hash, auth.hash, sizeof(hash)) != 0 || auth.revoked)
		return AUTH_INVALID;
	unsigned scopes = 0;
	if (api_scopes_parse(auth.scopes, &scopes) < 0)
		scopes = 0;
	if ((scopes & need_scope) == 0 && (scopes & API_SCOPE_ADMIN) == 0)
		return AUTH_FORBIDDEN;
	out->key_id = auth.id;
	out->scopes = scopes;
	return AUTH_OK;
}

enum api_auth_status api_authenticate(struct db_pool *pool, const char *authorization, unsigned need_scope,
				      struct api_auth *out, char *err, size_t errlen)
{
	const char *h = authorization;
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return AUTH_MISSING;
	const char *key = h + 7;
	while (*key == ' ')
		key++;
	return api_authenticate_key(pool, key, need_scope, 0, out, err, errlen);
}
