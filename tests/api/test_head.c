/* Tests for api/head.c: the request-head judge that api/gate.c applies to
 * the bytes received so far (RFC 9112 §2.1, §3). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "api/head.h"
#include "util/limits.h"

static enum api_head judge(const char *s)
{
	return api_head_judge(s, strlen(s));
}

Test(head, complete_at_the_empty_line)
{
	cr_assert_eq(judge("GET /v1/messages HTTP/1.1\r\nHost: x\r\n\r\n"), API_HEAD_COMPLETE);
	cr_assert_eq(judge("POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"),
		     API_HEAD_COMPLETE);
	cr_assert_eq(judge("GET / HTTP/1.0\n\n"), API_HEAD_COMPLETE, "bare LF, as libmicrohttpd");
	cr_assert_eq(judge("GET / HTTP/1.1\r\n\r\n"), API_HEAD_COMPLETE);
}

Test(head, every_prefix_of_a_good_head_is_incomplete)
{
	const char *h = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n";
	size_t n = strlen(h);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(api_head_judge(h, i), API_HEAD_INCOMPLETE, "prefix of %zu octets", i);
	cr_assert_eq(api_head_judge(h, n), API_HEAD_COMPLETE);
}

Test(head, leading_empty_lines_up_to_the_limit)
{
	cr_assert_eq(judge("\r\n\r\nGET / HTTP/1.1\r\n\r\n"), API_HEAD_COMPLETE);
	char s[64];
	size_t n = 0;
	for (int i = 0; i <= MF_API_HEAD_EMPTY_LINES; i++, n += 2)
		memcpy(s + n, "\r\n", 2);
	cr_assert_eq(api_head_judge(s, n - 2), API_HEAD_INCOMPLETE);
	cr_assert_eq(api_head_judge(s, n), API_HEAD_BAD);
}

Test(head, garbage_is_bad_at_its_first_wrong_octet)
{
	cr_assert_eq(judge("\x16\x03\x01"), API_HEAD_BAD, "a TLS ClientHello");
	cr_assert_eq(judge("GET"), API_HEAD_INCOMPLETE);
	cr_assert_eq(judge("GET\t"), API_HEAD_BAD);
	cr_assert_eq(judge(" GET / HTTP/1.1\r\n\r\n"), API_HEAD_BAD, "no method");
	cr_assert_eq(judge("GET  HTTP/1.1\r\n\r\n"), API_HEAD_BAD, "no target");
	cr_assert_eq(judge("GET /a\x7f HTTP/1.1\r\n\r\n"), API_HEAD_BAD);
	cr_assert_eq(judge("GET / HTTX/1.1\r\n"), API_HEAD_BAD);
	cr_assert_eq(judge("GET / HTTP/x.1\r\n"), API_HEAD_BAD);
	cr_assert_eq(judge("GET / HTTP/1.1x\r\n"), API_HEAD_BAD);
	cr_assert_eq(judge("GET / HTTP/1.1\rx"), API_HEAD_BAD);
	cr_assert_eq(api_head_judge("\0GET / HTTP/1.1\r\n\r\n", 19), API_HEAD_BAD, "a NUL first");
}

Test(head, method_longer_than_the_limit_is_bad)
{
	char s[MF_API_METHOD_MAX + 16];
	memset(s, 'A', MF_API_METHOD_MAX + 1);
	s[MF_API_METHOD_MAX + 1] = '\0';
	cr_assert_eq(judge(s), API_HEAD_BAD);
	s[MF_API_METHOD_MAX] = '\0';
	cr_assert_eq(judge(s), API_HEAD_INCOMPLETE);
}

Test(head, too_big_at_the_head_limit)
{
	char *s = malloc(MF_API_HEAD_MAX);
	cr_assert_not_null(s);
	const char *line = "GET / HTTP/1.1\r\n";
	memcpy(s, line, strlen(line));
	memset(s + strlen(line), 'a', MF_API_HEAD_MAX - strlen(line));
	cr_assert_eq(api_head_judge(s, MF_API_HEAD_MAX), API_HEAD_TOO_BIG);
	cr_assert_eq(api_head_judge(s, MF_API_HEAD_MAX - 1), API_HEAD_INCOMPLETE);
	memcpy(s, "GET /", 5);
	memset(s + 5, 'x', MF_API_HEAD_MAX - 5);
	cr_assert_eq(api_head_judge(s, MF_API_HEAD_MAX), API_HEAD_TOO_BIG, "a target without end");
	free(s);
}
