/*
 * Tests for db/settings.c against a real PostgreSQL: the VERP key is made
 * once and then shared by every process (pool) using the database.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "db/settings.h"
#include "harness.h"
#include "mail/verp.h"

Test(settings, secret_created_once_and_shared)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	struct db_pool *a = db_pool_new(url, 2), *b = db_pool_new(url, 2);
	unsigned char k1[VERP_KEY_LEN], k2[VERP_KEY_LEN], k3[VERP_KEY_LEN];
	char err[256] = "";
	cr_assert_eq(db_settings_secret(a, DB_SETTING_VERP_KEY, k1, sizeof(k1), err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(db_settings_secret(b, DB_SETTING_VERP_KEY, k2, sizeof(k2), err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(db_settings_secret(a, DB_SETTING_VERP_KEY, k3, sizeof(k3), err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(memcmp(k1, k2, sizeof(k1)), 0, "a second pool must read the same key");
	cr_assert_eq(memcmp(k1, k3, sizeof(k1)), 0);
	static const unsigned char zero[VERP_KEY_LEN];
	cr_assert_neq(memcmp(k1, zero, sizeof(k1)), 0);
	char *n = th_sql(url, "SELECT count(*) || ':' || length(value) FROM settings WHERE name = 'verp_key' GROUP BY value");
	cr_assert_str_eq(n, "1:32");
	free(n);
	/* Another name is another secret; the wrong length is an error. */
	unsigned char other[VERP_KEY_LEN];
	cr_assert_eq(db_settings_secret(a, "other_key", other, sizeof(other), err, sizeof(err)), 0, "%s", err);
	cr_assert_neq(memcmp(k1, other, sizeof(k1)), 0);
	unsigned char shortk[16];
	cr_assert_eq(db_settings_secret(a, DB_SETTING_VERP_KEY, shortk, sizeof(shortk), err, sizeof(err)), -1);
	cr_assert(strstr(err, "verp_key") != NULL, "%s", err);
	db_pool_free(a);
	db_pool_free(b);
	th_db_drop(url);
	free(url);
}

Test(settings, database_down_is_an_error)
{
	struct db_pool *p = db_pool_new("postgresql://postgres@/none?host=/nonexistent-mailferry", 1);
	unsigned char k[VERP_KEY_LEN];
	char err[256] = "";
	cr_assert_eq(db_settings_secret(p, DB_SETTING_VERP_KEY, k, sizeof(k), err, sizeof(err)), -1);
	cr_assert_neq(err[0], '\0');
	db_pool_free(p);
}
