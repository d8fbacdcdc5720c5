/*
 * settings.h - process-wide values kept in the settings table, shared by
 * every mailferry process that uses the same database.
 */
#ifndef MF_DB_SETTINGS_H
#define MF_DB_SETTINGS_H

#include <stddef.h>

struct db_pool;

/* The VERP HMAC key (mail/verp.h, VERP_KEY_LEN bytes). */
#define DB_SETTING_VERP_KEY "verp_key"

/*
 * Reads the secret called name (len random bytes) into out, creating it on
 * first use: INSERT ... ON CONFLICT DO NOTHING, then SELECT, so concurrent
 * first callers all end up with the same value.  Returns 0, or -1 with err
 * set (database unreachable, or a stored value of another length).
 */
int db_settings_secret(struct db_pool *pool, const char *name, unsigned char *out, size_t len, char *err,
		       size_t errlen);

#endif
