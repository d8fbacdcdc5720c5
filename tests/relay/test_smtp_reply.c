/* Tests for relay/smtp_reply.c: single and multiline replies, enhanced
 * status codes (RFC 3463, RFC 2034), pipelined replies, garbage. */
#include <criterion/criterion.h>
#include <string.h>

#include "relay/smtp_reply.h"
#include "util/limits.h"

static enum smtp_parse parse(struct smtp_reply *r, const char *s, size_t *used, char *err)
{
	return smtp_reply_parse(r, s, strlen(s), used, err, 200);
}

Test(smtp_reply, parses_single_line_with_enhanced_code)
{
	struct smtp_reply r;
	smtp_reply_init(&r);
	size_t used;
	char err[200], text[512];
	cr_assert_eq(parse(&r, "550 5.1.1 <bob@example.com>: Recipient address rejected\r\n", &used, err),
		     SMTP_PARSE_DONE);
	cr_assert_eq(r.code, 550);
	cr_assert_str_eq(r.enhanced, "5.1.1");
	cr_assert_eq(r.nlines, 1);
	cr_assert_str_eq(smtp_reply_text(&r, text, sizeof(text)),
			 "<bob@example.com>: Recipient address rejected");
	smtp_reply_cleanup(&r);
}

Test(smtp_reply, parses_multiline)
{
	struct smtp_reply r;
	smtp_reply_init(&r);
	size_t used;
	char err[200], text[512];
	const char *s = "250-mx.example.com Hello\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\nNEXT";
	cr_assert_eq(parse(&r, s, &used, err), SMTP_PARSE_DONE);
	cr_assert_eq(r.code, 250);
	cr_assert_eq(r.nlines, 4);
	cr_assert_eq(used, strlen(s) - 4, "consumed %zu", used);
	cr_assert_str_eq(r.lines.data, "mx.example.com Hello\nPIPELINING\nSIZE 1000\n8BITMIME\n");
	cr_assert_str_eq(smtp_reply_text(&r, text, sizeof(text)),
			 "mx.example.com Hello PIPELINING SIZE 1000 8BITMIME");
	smtp_reply_cleanup(&r);
}

Test(smtp_reply, multiline_enhanced_codes_stripped_from_every_line)
{
	struct smtp_reply r;
	smtp_reply_init(&r);
	size_t used;
	char err[200], text[512];
	cr_assert_eq(parse(&r, "452-4.2.2 Mailbox full\r\n452 4.2.2 try later\r\n", &used, err),
		     SMTP_PARSE_DONE);
	cr_assert_eq(r.code, 452);
	cr_assert_str_eq(r.enhanced, "4.2.2");
	cr_assert_str_eq(smtp_reply_text(&r, text, sizeof(text)), "Mailbox full try later");
	smtp_reply_cleanup(&r);
}

Test(smtp_reply, incomplete_needs_more)
{
	struct smtp_reply r;
	smtp_reply_init(&r);
	size_t used = 99;
	char err[200];
	cr_assert_eq(parse(&r, "250-first\r\n250-second\r\n", &used, err), SMTP_PARSE_MORE);
	cr_assert_eq(used, 0);
	cr_assert_eq(parse(&r, "220 no line end yet", &used, err), SMTP_PARSE_MORE);
	cr_assert_eq(parse(&r, "", &used, err), SMTP_PARSE_MORE);
	smtp_reply_cleanup(&r);
}

Test(smtp_reply, pipelined_replies_one_at_a_time)
{
	struct smtp_reply r;
	smtp_reply_init(&r);
	size_t used;
	char err[200];
	const char *s = "250 2.1.0 Ok\r\n550 5.1.1 no\r\n250 2.1.5 Ok\r\n";
	int codes[3];
	size_t off = 0;
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(smtp_reply_parse(&r, s + off, strlen(s + off), &used, err, sizeof(err)),
			     SMTP_PARSE_DONE);
		codes[i] = r.code;
		off += used;
	}
	cr_assert_eq(off, strlen(s));
	cr_assert_eq(codes[0], 250);
	cr_assert_eq(codes[1], 550);
	cr_assert_eq(codes[2], 250);
	cr_assert_str_eq(r.enhanced, "2.1.5");
	smtp_reply_cleanup(&r);
}

Test(smtp_reply, bare_code_and_bare_lf_accepted)
{
	struct smtp_reply r;
	smtp_reply_init(&r);
	size_t used;
	char err[200], text[64];
	cr_assert_eq(parse(&r, "250\n", &used, err), SMTP_PARSE_DONE);
	cr_assert_eq(r.code, 250);
	cr_assert_str_eq(r.enhanced, "");
	cr_assert_str_eq(smtp_reply_text(&r, text, sizeof(text)), "");
	smtp_reply_cleanup(&r);
}

Test(smtp_reply, enhanced_code_rules)
{
	char out[16];
	cr_assert_eq(smtp_enhanced_code("5.7.1 denied", '5', out, sizeof(out)), 5);
	cr_assert_str_eq(out, "5.7.1");
	cr_assert_eq(smtp_enhanced_code("5.1.10", '5', out, sizeof(out)), 6);
	cr_assert_str_eq(out, "5.1.10");
	cr_assert_eq(smtp_enhanced_code("4.123.456 x", '4', out, sizeof(out)), 9);
	/* class must match the reply code's first digit (RFC 2034 §4) */
	cr_assert_eq(smtp_enhanced_code("4.7.1 x", '5', out, sizeof(out)), 0);
	/* subject/detail 1-3 digits, then a word break */
	cr_assert_eq(smtp_enhanced_code("5.1234.1 x", '5', out, sizeof(out)), 0);
	cr_assert_eq(smtp_enhanced_code("5.1. x", '5', out, sizeof(out)), 0);
	cr_assert_eq(smtp_enhanced_code("5.1.1x", '5', out, sizeof(out)), 0);
	cr_assert_eq(smtp_enhanced_code("3.1.1 x", '3', out, sizeof(out)), 0);
	cr_assert_eq(smtp_enhanced_code("Ok", '2', out, sizeof(out)), 0);

	/* a mismatched class in a reply is not an enhanced code */
	struct smtp_reply r;
	smtp_reply_init(&r);
	size_t used;
	char err[200], text[64];
	cr_assert_eq(parse(&r, "550 4.1.1 odd\r\n", &used, err), SMTP_PARSE_DONE);
	cr_assert_str_eq(r.enhanced, "");
	cr_assert_str_eq(smtp_reply_text(&r, text, sizeof(text)), "4.1.1 odd");
	smtp_reply_cleanup(&r);
}

Test(smtp_reply, rejects_garbage)
{
	struct smtp_reply r;
	smtp_reply_init(&r);
	size_t used;
	char err[200];
	const char *bad[] = {
		"hello\r\n",                  /* no code */
		"25 short\r\n",               /* two digits */
		"2500 too many digits\r\n",   /* code not followed by SP or '-' */
		"650 first digit\r\n",        /* RFC 5321 §4.2.1: 2..5 */
		"170 first digit\r\n",
		"260 second digit\r\n",       /* second digit 0..5 */
		"250-a\r\n251 b\r\n",         /* code changes inside a multiline reply */
		"250 a\x01" "b\r\n",          /* control character */
		"250-ok\r\n\r\n",             /* empty line inside */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		cr_assert_eq(parse(&r, bad[i], &used, err), SMTP_PARSE_ERROR, "accepted %s", bad[i]);
		cr_assert(err[0] != '\0');
	}
	const char nul[] = "250 a\0b\r\n";
	cr_assert_eq(smtp_reply_parse(&r, nul, sizeof(nul) - 1, &used, err, sizeof(err)),
		     SMTP_PARSE_ERROR);
	smtp_reply_cleanup(&r);
}

Test(smtp_reply, rejects_overlong_line_and_reply)
{
	struct smtp_reply r;
	smtp_reply_init(&r);
	size_t used;
	char err[200];
	/* One line over MF_SMTP_LINE_MAX, even before its line end arrives. */
	char line[MF_SMTP_LINE_MAX + 10];
	memset(line, 'a', sizeof(line) - 1);
	memcpy(line, "250 ", 4);
	line[sizeof(line) - 1] = '\0';
	cr_assert_eq(parse(&r, line, &used, err), SMTP_PARSE_ERROR);
	cr_assert(strstr(err, "longer") != NULL, "%s", err);

	/* Many acceptable lines adding up to more than MF_SMTP_REPLY_MAX. */
	size_t n = MF_SMTP_REPLY_MAX / 100 + 10;
	char *big = malloc(n * 104 + 16);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		memcpy(big + o, "250-", 4);
		memset(big + o + 4, 'x', 98);
		memcpy(big + o + 102, "\r\n", 2);
		o += 104;
	}
	memcpy(big + o, "250 end\r\n", 10);
	cr_assert_eq(parse(&r, big, &used, err), SMTP_PARSE_ERROR);
	free(big);
	smtp_reply_cleanup(&r);
}
