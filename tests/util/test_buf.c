/* Tests for util/buf.c: growth, the maximum size, NUL termination. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

Test(buf, grows_and_stays_terminated)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(buf_printf(&b, "%d,", i), 0);
	cr_assert_eq(strlen(buf_cstr(&b)), b.len);
	cr_assert(strncmp(buf_cstr(&b), "0,1,2,", 6) == 0);
	buf_consume(&b, 2);
	cr_assert(strncmp(buf_cstr(&b), "1,2,", 4) == 0);
	buf_cleanup(&b);
}

Test(buf, refuses_beyond_max)
{
	struct buf b;
	buf_init(&b, 8);
	cr_assert_eq(buf_puts(&b, "12345678"), 0);
	cr_assert_eq(buf_putc(&b, '9'), -1);
	cr_assert_eq(b.len, 8);
	cr_assert_str_eq(buf_cstr(&b), "12345678");
	cr_assert_eq(buf_printf(&b, "%s", "x"), -1);
	buf_cleanup(&b);
}

Test(buf, steal_hands_over)
{
	struct buf *b = buf_new(100);
	buf_puts(b, "abc");
	size_t n;
	char *s = buf_steal(b, &n);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(s, "abc");
	cr_assert_eq(b->len, 0);
	free(s);
	buf_free(b);
	buf_free(NULL);
}

Test(buf, printf_longer_than_the_first_room_and_at_the_maximum)
{
	char big[1000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	struct buf b;
	buf_init(&b, 2000);
	cr_assert_eq(buf_printf(&b, "<%s>", big), 0);
	cr_assert_eq(b.len, 1001);
	cr_assert_eq(strlen(buf_cstr(&b)), b.len);
	cr_assert_eq(buf_printf(&b, "%sx", big), -1, "1000 more would pass 2000");
	cr_assert_eq(b.len, 1001);
	cr_assert_eq(strlen(buf_cstr(&b)), b.len, "a refused printf leaves the old end");
	cr_assert_eq(buf_printf(&b, "%.999s", big), 0, "exactly to the maximum");
	cr_assert_eq(b.len, 2000);
	cr_assert_eq(buf_printf(&b, "%s", ""), 0);
	cr_assert_eq(buf_printf(&b, "%s", "y"), -1);
	cr_assert_eq(b.len, 2000);
	cr_assert_eq(b.data[2000], '\0');
	buf_cleanup(&b);

	buf_init(&b, 10); /* a small maximum: the first room is capped by it */
	cr_assert_eq(buf_printf(&b, "%d", 1234567890), 0);
	cr_assert_str_eq(buf_cstr(&b), "1234567890");
	cr_assert_eq(buf_printf(&b, "%d", 1), -1);
	cr_assert_str_eq(buf_cstr(&b), "1234567890");
	buf_cleanup(&b);
}
