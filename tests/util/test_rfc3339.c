/* Tests for util/rfc3339.c: UTC, "Z", milliseconds as the API and the
 * log lines show them. */
#include <criterion/criterion.h>
#include <string.h>

#include "util/rfc3339.h"

Test(rfc3339, seconds)
{
	char out[RFC3339_LEN];
	cr_assert_eq(rfc3339_format(0, -1, out, sizeof(out)), 0);
	cr_assert_str_eq(out, "1970-01-01T00:00:00Z");
	cr_assert_eq(rfc3339_format(1796267661, -1, out, sizeof(out)), 0);
	cr_assert_str_eq(out, "2026-12-03T03:14:21Z");
}

Test(rfc3339, milliseconds)
{
	char out[RFC3339_LEN];
	cr_assert_eq(rfc3339_format(1796267661, 7, out, sizeof(out)), 0);
	cr_assert_str_eq(out, "2026-12-03T03:14:21.007Z");
	cr_assert_eq(rfc3339_format(951782400, 999, out, sizeof(out)), 0);
	cr_assert_str_eq(out, "2000-02-29T00:00:00.999Z");
	cr_assert_eq(rfc3339_format(0, 1000, out, sizeof(out)), -1);
}

Test(rfc3339, size_checked)
{
	char out[RFC3339_LEN];
	cr_assert_eq(rfc3339_format(0, -1, out, 21), 0);
	cr_assert_eq(rfc3339_format(0, -1, out, 20), -1);
	cr_assert_eq(rfc3339_format(0, 0, out, 24), -1);
}
