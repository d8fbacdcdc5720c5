/* Tests for util/json_escape.c: quotes, backslash, control characters,
 * UTF-8 passed through or repaired, the CLI's short escapes. */
#include <criterion/criterion.h>
#include <string.h>

#include "util/json_escape.h"

static void check(const char *in, size_t n, unsigned flags, const char *want)
{
	struct buf b;
	buf_init(&b, 1024);
	cr_assert_eq(json_escape(&b, in, n, flags), 0);
	cr_assert_str_eq(buf_cstr(&b), want);
	buf_cleanup(&b);
}

Test(json_escape, quotes_and_backslash)
{
	check("", 0, 0, "\"\"");
	check("plain text", 10, 0, "\"plain text\"");
	check("say \"hi\" \\o/", 12, 0, "\"say \\\"hi\\\" \\\\o/\"");
}

Test(json_escape, control_characters)
{
	check("a\nb\tc\r\x01\x1f\x7f", 9, 0, "\"a\\u000ab\\u0009c\\u000d\\u0001\\u001f\x7f\"");
	check("a\nb\tc\r\x01", 7, JSON_ESC_SHORT, "\"a\\nb\\tc\\r\\u0001\"");
	check("nul\0in", 6, 0, "\"nul\\u0000in\"");
}

Test(json_escape, utf8_passes_through)
{
	check("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7", 14, 0, "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7\"");
	check("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7", 14, JSON_ESC_UTF8,
	      "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7\"");
	/* Without JSON_ESC_UTF8 bytes are copied as they are. */
	check("a\xff", 2, 0, "\"a\xff\"");
}

Test(json_escape, ill_formed_utf8_repaired_when_asked)
{
	check("a\xff" "b", 3, JSON_ESC_UTF8, "\"a\xef\xbf\xbd" "b\"");
	check("\xc3", 1, JSON_ESC_UTF8, "\"\xef\xbf\xbd\"");           /* truncated */
	check("\xe0\x80\x80", 3, JSON_ESC_UTF8, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""); /* overlong */
	check("\xed\xa0\x80", 3, JSON_ESC_UTF8, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""); /* surrogate */
}

Test(json_escape, maximum_size)
{
	struct buf b;
	buf_init(&b, 4);
	cr_assert_eq(json_escape(&b, "abcdef", 6, 0), -1);
	buf_cleanup(&b);
}
