/*
 * Tests for the MTA-STS policy cache's store (db/sts_cache.c, table
 * mta_sts_policies, migration 0027) and its pruning by retention (kind
 * DB_RET_STS) against a real PostgreSQL: a policy put is read back with
 * its mx patterns and time to live, a second put replaces it, an expired
 * row is not returned and retention deletes it while keeping live ones.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "db/retention.h"
#include "db/sts_cache.h"
#include "harness.h"
#include "th_assert.h"

struct got {
	int calls;
	char id[64], mode[16], mx[512];
	long max_age, ttl;
};

static void on_row(const struct db_sts_row *row, void *arg)
{
	struct got *g = arg;
	g->calls++;
	snprintf(g->id, sizeof(g->id), "%s", row->policy_id);
	snprintf(g->mode, sizeof(g->mode), "%s", row->mode);
	snprintf(g->mx, sizeof(g->mx), "%s", row->mx);
	g->max_age = row->max_age;
	g->ttl = row->ttl;
}

Test(sts_cache, put_get_replace_expire_and_prune)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	struct db_pool *pool = db_pool_new(url, 1);
	char err[512];
	struct got g = { 0 };
	cr_assert_eq(db_sts_get(pool, "a.test", on_row, &g, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(g.calls, 0);

	struct db_sts_row row = { .policy_id = "abc1", .mode = "enforce", .max_age = 86400,
				  .mx = "mx1.a.test\n*.a.test" };
	cr_assert_eq(db_sts_put(pool, "a.test", &row, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(db_sts_get(pool, "a.test", on_row, &g, err, sizeof(err)), 1, "%s", err);
	cr_assert_eq(g.calls, 1);
	cr_assert_str_eq(g.id, "abc1");
	cr_assert_str_eq(g.mode, "enforce");
	cr_assert_str_eq(g.mx, "mx1.a.test\n*.a.test");
	cr_assert_eq(g.max_age, 86400);
	cr_assert(g.ttl > 86000 && g.ttl < 86400, "ttl %ld", g.ttl);
	th_sql_eq(url, "SELECT array_to_string(mx, ',') || ' ' || (expires_at - fetched_at = interval '1 day')"
		       " FROM mta_sts_policies", "mx1.a.test,*.a.test true");

	/* A new fetch replaces the row; mode none has no patterns. */
	row = (struct db_sts_row){ .policy_id = "abc2", .mode = "none", .max_age = 600, .mx = "" };
	cr_assert_eq(db_sts_put(pool, "a.test", &row, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(db_sts_get(pool, "a.test", on_row, &g, err, sizeof(err)), 1, "%s", err);
	cr_assert_str_eq(g.id, "abc2");
	cr_assert_str_eq(g.mode, "none");
	cr_assert_str_eq(g.mx, "");
	th_sql_eq(url, "SELECT count(*) || ' ' || cardinality(max(mx)) FROM mta_sts_policies", "1 0");

	/* Expired: not returned, and pruned; the live row stays. */
	row = (struct db_sts_row){ .policy_id = "old", .mode = "testing", .max_age = 60, .mx = "mx.b.test" };
	cr_assert_eq(db_sts_put(pool, "b.test", &row, err, sizeof(err)), 0, "%s", err);
	th_sql_do(url, "UPDATE mta_sts_policies SET expires_at = now() - interval '1 second' WHERE domain = 'b.test'");
	g.calls = 0;
	cr_assert_eq(db_sts_get(pool, "b.test", on_row, &g, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(g.calls, 0);
	cr_assert_eq(db_retention_batch(pool, DB_RET_STS, 0, 10, err, sizeof(err)), 1, "%s", err);
	cr_assert_eq(db_retention_batch(pool, DB_RET_STS, 0, 10, err, sizeof(err)), 0, "%s", err);
	th_sql_eq(url, "SELECT string_agg(domain, ',') FROM mta_sts_policies", "a.test");
	cr_assert_str_eq(db_retention_name(DB_RET_STS), "mta_sts_policies");

	db_pool_free(pool);
	th_db_drop(url);
	free(url);
}
