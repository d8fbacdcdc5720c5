/*
 * Tests for the sending domains' storage (db/domains.c) that the re-check
 * (queue/domain_check.c) relies on, against a real PostgreSQL: the claim
 * takes a due verified domain once per period, expired retiring keys are
 * retired, and a verification promotes only the pending keys it looked up.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "db/domains.h"
#include "harness.h"
#include "th_assert.h"

static void one(const char *domain, void *arg)
{
	char *names = arg;
	size_t n = strlen(names);
	snprintf(names + n, 512 - n, "%s%s", n ? "," : "", domain);
}

static char *sql1(const char *url, const char *sql)
{
	char *v = th_sql(url, sql);
	cr_assert_not_null(v, "%s", sql);
	return v;
}

Test(domains_db, claim_recheck_once_per_period)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	th_sql_do(url, "INSERT INTO domains (domain, status, checked_at) VALUES"
		       " ('old.test', 'verified', now() - interval '2 days'),"
		       " ('never.test', 'verified', NULL),"
		       " ('fresh.test', 'verified', now() - interval '1 hour'),"
		       " ('failed.test', 'failed', now() - interval '2 days'),"
		       " ('pending.test', 'pending', NULL)");
	struct db_pool *pool = db_pool_new(url, 2);
	char err[512], names[512] = "";
	/* Due: verified and not checked within a day; oldest first, one per claim. */
	cr_assert_eq(db_domain_claim_recheck(pool, 86400, 1, one, names, err, sizeof(err)), 1, "%s", err);
	cr_assert_str_eq(names, "never.test");
	cr_assert_eq(db_domain_claim_recheck(pool, 86400, 10, one, names, err, sizeof(err)), 1, "%s", err);
	cr_assert_str_eq(names, "never.test,old.test");
	/* Claimed means checked_at is now: another process finds nothing due. */
	cr_assert_eq(db_domain_claim_recheck(pool, 86400, 10, one, names, err, sizeof(err)), 0, "%s", err);
	char *v = sql1(url, "SELECT count(*) FROM domains WHERE checked_at > now() - interval '1 minute'");
	cr_assert_str_eq(v, "2");
	free(v);
	db_pool_free(pool);
	th_db_drop(url);
	free(url);
}

static void retired(const char *domain, const char *selector, void *arg)
{
	one(selector, arg);
	(void)domain;
}

Test(domains_db, retire_expired_keys_only)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	th_sql_do(url, "INSERT INTO domains (domain, status) VALUES ('k.test', 'verified')");
	th_sql_do(url, "INSERT INTO domain_keys (domain, selector, algorithm, public_key, private_key, state, retire_after)"
		       " VALUES ('k.test', 'gone', 'rsa', 'p', '\\x00', 'retiring', now() - interval '1 second'),"
		       " ('k.test', 'later', 'rsa', 'p', '\\x00', 'retiring', now() + interval '1 day'),"
		       " ('k.test', 'now', 'ed25519', 'p', '\\x00', 'active', NULL)");
	struct db_pool *pool = db_pool_new(url, 1);
	char err[512], names[512] = "";
	cr_assert_eq(db_domain_keys_retire(pool, retired, names, err, sizeof(err)), 1, "%s", err);
	cr_assert_str_eq(names, "gone");
	cr_assert_eq(db_domain_keys_retire(pool, retired, names, err, sizeof(err)), 0, "%s", err);
	char *v = sql1(url, "SELECT string_agg(selector || '=' || state, ',' ORDER BY id) FROM domain_keys");
	cr_assert_str_eq(v, "gone=retired,later=retiring,now=active");
	free(v);
	db_pool_free(pool);
	th_db_drop(url);
	free(url);
}

Test(domains_db, promote_only_the_pending_keys_checked)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	struct db_pool *pool = db_pool_new(url, 1);
	char err[512];
	struct db_new_key a[2] = { { "a-e", "ed25519", "p", "AA==" }, { "a-r", "rsa", "p", "AA==" } };
	struct db_new_key b[2] = { { "b-e", "ed25519", "p", "AA==" }, { "b-r", "rsa", "p", "AA==" } };
	struct db_new_key c[2] = { { "c-e", "ed25519", "p", "AA==" }, { "c-r", "rsa", "p", "AA==" } };
	cr_assert_eq(db_domain_create(pool, "p.test", a, 2, err, sizeof(err)), 1, "%s", err);
	cr_assert_eq(db_domain_rotate(pool, "p.test", b, 2, err, sizeof(err)), 1, "%s", err);
	/* A rotation while b was looked up replaced it with c: b's match
	 * promotes nothing, c is not signing before DNS has it. */
	cr_assert_eq(db_domain_rotate(pool, "p.test", c, 2, err, sizeof(err)), 1, "%s", err);
	int promoted = -1;
	cr_assert_eq(db_domain_checked(pool, "p.test", 1, "[]", "b-e,b-r", 7, &promoted, err, sizeof(err)), 1, "%s", err);
	cr_assert_eq(promoted, 0);
	char *v = sql1(url, "SELECT string_agg(selector || '=' || state, ',' ORDER BY id) FROM domain_keys");
	cr_assert_str_eq(v, "a-e=active,a-r=active,b-e=retired,b-r=retired,c-e=pending,c-r=pending");
	free(v);
	/* The keys looked up are the pending ones: they take over. */
	cr_assert_eq(db_domain_checked(pool, "p.test", 1, "[]", "c-r,c-e", 7, &promoted, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(promoted, 1);
	v = sql1(url, "SELECT string_agg(selector || '=' || state, ',' ORDER BY id) FROM domain_keys");
	cr_assert_str_eq(v, "a-e=retiring,a-r=retiring,b-e=retired,b-r=retired,c-e=active,c-r=active");
	free(v);
	db_pool_free(pool);
	th_db_drop(url);
	free(url);
}
