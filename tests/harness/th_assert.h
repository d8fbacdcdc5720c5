/*
 * th_assert.h - Criterion assertions over th_sql() (header only: the
 * harness library itself does not link Criterion).
 */
#ifndef MF_TH_ASSERT_H
#define MF_TH_ASSERT_H

#include <criterion/criterion.h>
#include <stdlib.h>

#include "harness.h"

/* Asserts that the one-value query sql on url returns want. */
static inline void th_sql_eq(const char *url, const char *sql, const char *want)
{
	char *got = th_sql(url, sql);
	cr_assert_not_null(got, "%s", sql);
	cr_assert_str_eq(got, want, "%s: got %s, want %s", sql, got, want);
	free(got);
}

/* Runs sql on url, asserting that it succeeds. */
static inline void th_sql_do(const char *url, const char *sql)
{
	char *r = th_sql(url, sql);
	cr_assert_not_null(r, "%s", sql);
	free(r);
}

#endif
