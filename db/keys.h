/*
 * keys.h - storage of API keys (see api/auth.h for their format).
 */
#ifndef MF_DB_KEYS_H
#define MF_DB_KEYS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct db_pool;

#define DB_KEY_SALT_LEN 16
#define DB_KEY_HASH_LEN 32

struct db_key_auth {
	int64_t id;
	unsigned char salt[DB_KEY_SALT_LEN];
	unsigned char hash[DB_KEY_HASH_LEN];
	char scopes[64]; /* "send,read,admin" */
	int revoked;
};

int db_key_insert(struct db_pool *pool, const char *name, const char *public_id,
		  const unsigned char *salt, const unsigned char *hash, const char *scopes_csv,
		  int64_t *id, char *err, size_t errlen);
/* 1 found, 0 no such key, -1 error. */
int db_key_lookup(struct db_pool *pool, const char *public_id, struct db_key_auth *out, char *err,
		  size_t errlen);
/* 1 revoked now, 0 no such (unrevoked) key, -1 error. */
int db_key_revoke(struct db_pool *pool, int64_t id, char *err, size_t errlen);

struct db_key_row {
	int64_t id;
	const char *name, *public_id, *scopes, *created_at, *last_used_at, *revoked_at;
};
/* Calls fn for each key, oldest first. */
int db_key_list(struct db_pool *pool, void (*fn)(const struct db_key_row *row, void *arg), void *arg,
		char *err, size_t errlen);

#endif
