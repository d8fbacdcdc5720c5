/* Tests for util/cursor.c: round trips, the formats clients already hold,
 * garbage refused. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "util/base64.h"
#include "util/cursor.h"

Test(cursor, round_trip)
{
	char c[CURSOR_LEN], pos[64];
	cr_assert_eq(cursor_encode("m1", "0b6c1d9e-8f7a-4e0c-9a1b-2c3d4e5f6a7b", c, sizeof(c)), 0);
	cr_assert_eq(cursor_decode(c, "m1", pos, sizeof(pos)), 0);
	cr_assert_str_eq(pos, "0b6c1d9e-8f7a-4e0c-9a1b-2c3d4e5f6a7b");
	cr_assert_eq(cursor_decode(c, "m2", pos, sizeof(pos)), -1, "another tag");
	cr_assert_eq(cursor_decode(c, "m", pos, sizeof(pos)), -1, "a tag's prefix");
	cr_assert_eq(cursor_decode(c, "m1", pos, 36), -1, "too long for pos");
}

Test(cursor, formats_already_handed_out)
{
	/* Cursors as the API wrote them before util/cursor existed. */
	char c[CURSOR_LEN], pos[64];
	int64_t v[2];
	cr_assert_eq(cursor_encode("m1", "0b6c1d9e-8f7a-4e0c-9a1b-2c3d4e5f6a7b", c, sizeof(c)), 0);
	cr_assert_str_eq(c, "bTE6MGI2YzFkOWUtOGY3YS00ZTBjLTlhMWItMmMzZDRlNWY2YTdi");
	cr_assert_eq(cursor_encode_nums("d", (int64_t[]){ 42 }, 1, c, sizeof(c)), 0);
	cr_assert_str_eq(c, "ZDo0Mg");
	cr_assert_eq(cursor_decode_nums("ZDo0Mg", "d", v, 1), 0);
	cr_assert_eq(v[0], 42);
	cr_assert_eq(cursor_encode_nums("e", (int64_t[]){ 751, 9 }, 2, c, sizeof(c)), 0);
	cr_assert_str_eq(c, "ZTo3NTEuOQ");
	cr_assert_eq(cursor_decode_nums("ZTo3NTEuOQ", "e", v, 2), 0);
	cr_assert(v[0] == 751 && v[1] == 9);
	cr_assert_eq(cursor_decode("ZTo3NTEuOQ==", "e", pos, sizeof(pos)), 0, "padding is accepted");
	cr_assert_str_eq(pos, "751.9");
}

Test(cursor, garbage_refused)
{
	char pos[64];
	int64_t v[2];
	static const char *const bad[] = { "", "!!!!", "ZDo0Mg*", "Z", "ZDo", "ZDo0Mg===", "aGVsbG8" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(cursor_decode(bad[i], "d", pos, sizeof(pos)), -1, "%s", bad[i]);
		cr_assert_eq(cursor_decode_nums(bad[i], "d", v, 1), -1, "%s", bad[i]);
	}
	char c[CURSOR_LEN];
	/* Well-formed cursors with the wrong positions. */
	static const char *const pos_bad[] = { "", "x", "1.", ".1", "1.2.3", "-1", "99999999999999999999",
					       "9223372036854775808" };
	for (size_t i = 0; i < sizeof(pos_bad) / sizeof(pos_bad[0]); i++) {
		cr_assert_eq(cursor_encode("e", pos_bad[i], c, sizeof(c)), 0);
		cr_assert_eq(cursor_decode_nums(c, "e", v, 2), -1, "%s", pos_bad[i]);
	}
	cr_assert_eq(cursor_encode("e", "9223372036854775807.0", c, sizeof(c)), 0);
	cr_assert_eq(cursor_decode_nums(c, "e", v, 2), 0);
	cr_assert_eq(v[0], INT64_MAX);
	/* A NUL inside the decoded text. */
	long n = base64_encode("d:1\0" "2", 5, c, sizeof(c), B64_URL | B64_NOPAD);
	cr_assert_gt(n, 0);
	cr_assert_eq(cursor_decode(c, "d", pos, sizeof(pos)), -1);
	cr_assert_eq(cursor_encode_nums("d", (int64_t[]){ -1 }, 1, c, sizeof(c)), -1);
}
