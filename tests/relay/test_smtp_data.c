/* Tests for relay/smtp_data.c: dot-stuffing and CRLF normalisation
 * (RFC 5321 §4.5.2, §2.3.8), fed whole and byte by byte. */
#include <criterion/criterion.h>
#include <string.h>

#include "relay/smtp_data.h"

/* Encodes in with pieces of size step (0 = whole). */
static char *encode(const char *in, size_t step)
{
	struct smtp_dotstuff d;
	struct buf b;
	buf_init(&b, 1 << 20);
	smtp_dotstuff_init(&d);
	size_t len = strlen(in);
	if (step == 0)
		step = len ? len : 1;
	for (size_t off = 0; off < len; off += step)
		cr_assert_eq(smtp_dotstuff_feed(&d, in + off, len - off < step ? len - off : step, &b), 0);
	cr_assert_eq(smtp_dotstuff_end(&d, &b), 0);
	return buf_steal(&b, NULL);
}

static void check(const char *in, const char *want)
{
	for (size_t step = 0; step <= 3; step++) {
		char *got = encode(in, step);
		cr_assert_str_eq(got, want, "input %s step %zu", in, step);
		free(got);
	}
}

Test(smtp_data, dot_stuffing)
{
	check("Subject: x\r\n\r\n.hidden\r\n..two\r\nmid.dle\r\n.\r\n",
	      "Subject: x\r\n\r\n..hidden\r\n...two\r\nmid.dle\r\n..\r\n.\r\n");
	check(".first line\r\n", "..first line\r\n.\r\n");
}

Test(smtp_data, crlf_normalisation)
{
	check("a\nb\rc\r\nd", "a\r\nb\r\nc\r\nd\r\n.\r\n");
	check("a\r\r\nb\n\n", "a\r\n\r\nb\r\n\r\n.\r\n");
	check("x\r.y\n.z", "x\r\n..y\r\n..z\r\n.\r\n");
	check("end with cr\r", "end with cr\r\n.\r\n");
	check("", ".\r\n");
}

Test(smtp_data, eight_bit_detection)
{
	cr_assert_eq(smtp_data_is_8bit("plain ascii\r\n", 13), 0);
	cr_assert_eq(smtp_data_is_8bit("caf\xc3\xa9\r\n", 7), 1);
}
