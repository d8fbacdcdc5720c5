/*
 * settings.c - secrets in the settings table (see settings.h).
 * Parameterised queries only.  The random bytes come from getrandom(2).
 */
#include "db/settings.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "db/internal.h"

#define SETTINGS_SECRET_MAX 256

static int fill_random(unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t r = getrandom(p, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int db_settings_secret(struct db_pool *pool, const char *name, unsigned char *out, size_t len, char *err,
		       size_t errlen)
{
	if (len == 0 || len > SETTINGS_SECRET_MAX) {
		snprintf(err, errlen, "setting %s: bad secret length %zu", name, len);
		return -1;
	}
	unsigned char fresh[SETTINGS_SECRET_MAX];
	if (fill_random(fresh, len) != 0) {
		snprintf(err, errlen, "getrandom: %s", strerror(errno));
		return -1;
	}
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	/* Binary parameters: the value goes in as raw bytes. */
	const char *params[] = { name, (const char *)fresh };
	const int lens[] = { 0, (int)len };
	const int fmts[] = { 0, 1 };
	PGresult *res = PQexecParams(c, "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
				     2, NULL, params, lens, fmts, 0);
	int rc = -1;
	if (!db_res_ok(res, PGRES_COMMAND_OK)) {
		db_set_error(c, res, err, errlen);
		goto out;
	}
	PQclear(res);
	res = PQexecParams(c, "SELECT value FROM settings WHERE name = $1", 1, NULL, params, NULL, NULL, 1);
	if (!db_res_ok(res, PGRES_TUPLES_OK)) {
		db_set_error(c, res, err, errlen);
	} else if (PQntuples(res) != 1 || PQgetlength(res, 0, 0) != (int)len) {
		snprintf(err, errlen, "setting %s is not a %zu-byte secret", name, len);
	} else {
		memcpy(out, PQgetvalue(res, 0, 0), len);
		rc = 0;
	}
out:
	PQclear(res);
	db_conn_put(pool, c);
	explicit_bzero(fresh, sizeof(fresh));
	return rc;
}
