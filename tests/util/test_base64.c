/* Tests for util/base64.c: RFC 4648 §10 vectors, the §5 alphabet,
 * padding, strict refusal of bad input, the lenient MIME mode. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "util/base64.h"

static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
static const char *const coded[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };

Test(base64, rfc4648_section10_encode)
{
	char out[32];
	for (int i = 0; i < 7; i++) {
		long n = base64_encode(plain[i], strlen(plain[i]), out, sizeof(out), 0);
		cr_assert_eq(n, (long)strlen(coded[i]));
		cr_assert_str_eq(out, coded[i]);
		cr_assert_eq(base64_encoded_len(strlen(plain[i]), 0), strlen(coded[i]));
	}
}

Test(base64, rfc4648_section10_decode)
{
	unsigned char out[32];
	for (int i = 0; i < 7; i++) {
		long n = base64_decode(coded[i], strlen(coded[i]), out, sizeof(out), 0);
		cr_assert_eq(n, (long)strlen(plain[i]), "%s", coded[i]);
		cr_assert_eq(memcmp(out, plain[i], (size_t)n), 0);
	}
}

Test(base64, unpadded_when_asked)
{
	static const char *const bare[] = { "", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy" };
	char out[32];
	unsigned char back[32];
	for (int i = 0; i < 7; i++) {
		cr_assert_eq(base64_encode(plain[i], strlen(plain[i]), out, sizeof(out), B64_NOPAD),
			     (long)strlen(bare[i]));
		cr_assert_str_eq(out, bare[i]);
		cr_assert_eq(base64_encoded_len(strlen(plain[i]), B64_NOPAD), strlen(bare[i]));
		long n = base64_decode(bare[i], strlen(bare[i]), back, sizeof(back), B64_PAD_OPTIONAL);
		cr_assert_eq(n, (long)strlen(plain[i]));
		cr_assert_eq(memcmp(back, plain[i], (size_t)n), 0);
		/* Padded input still decodes with the padding optional. */
		cr_assert_eq(base64_decode(coded[i], strlen(coded[i]), back, sizeof(back), B64_PAD_OPTIONAL),
			     (long)strlen(plain[i]));
	}
	cr_assert_eq(base64_decode("Zg", 2, back, sizeof(back), 0), -1, "padding required by default");
}

Test(base64, url_alphabet)
{
	const unsigned char raw[] = { 0xfb, 0xff, 0xbf, 0xfe };
	char out[16];
	unsigned char back[8];
	cr_assert_eq(base64_encode(raw, sizeof(raw), out, sizeof(out), 0), 8);
	cr_assert_str_eq(out, "+/+//g==");
	cr_assert_eq(base64_encode(raw, sizeof(raw), out, sizeof(out), B64_URL | B64_NOPAD), 6);
	cr_assert_str_eq(out, "-_-__g");
	cr_assert_eq(base64_decode("-_-__g", 6, back, sizeof(back), B64_URL | B64_PAD_OPTIONAL), 4);
	cr_assert_eq(memcmp(back, raw, 4), 0);
	cr_assert_eq(base64_decode("+/+//g", 6, back, sizeof(back), B64_URL | B64_PAD_OPTIONAL), -1,
		     "'+' and '/' are not in the URL alphabet");
	cr_assert_eq(base64_decode("-_-__g==", 8, back, sizeof(back), 0), -1,
		     "'-' and '_' are not in the standard alphabet");
}

Test(base64, strict_refuses_bad_input)
{
	static const char *const bad[] = {
		"aGk",      /* not whole quanta */
		"aG=k",     /* data after '=' */
		"a===",     /* three '=' */
		"aGk-",     /* outside the alphabet */
		"aGk=aGk=", /* data after padding */
		"aGl=",     /* non-zero bits left over (RFC 4648 §3.5) */
		"Zh==",     /* the same, one byte */
		"====",     /* padding alone */
		"Z===",     /* one character of data */
		"aGVs bG8=", /* space without B64_SKIP_SPACE */
	};
	unsigned char out[16];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(base64_decode(bad[i], strlen(bad[i]), out, sizeof(out), 0), -1, "%s", bad[i]);
	cr_assert_eq(base64_decode("Z", 1, out, sizeof(out), B64_PAD_OPTIONAL), -1, "a lone character");
	cr_assert_eq(base64_decode("Zh", 2, out, sizeof(out), B64_PAD_OPTIONAL), -1, "left-over bits");
}

Test(base64, whitespace_when_asked)
{
	unsigned char out[16];
	cr_assert_eq(base64_decode("aGVs\r\nbG8=", 10, out, sizeof(out), B64_SKIP_SPACE), 5);
	cr_assert_eq(memcmp(out, "hello", 5), 0);
	cr_assert_eq(base64_decode(" aGVs\tbG8 = ", 12, out, sizeof(out), B64_SKIP_SPACE), 5);
}

Test(base64, mime_mode_ignores_and_stops)
{
	unsigned char out[16];
	/* RFC 2045 §6.8: other characters are ignored; '=' ends the data. */
	cr_assert_eq(base64_decode("aG*Vs\r\nbG8=junk", 15, out, sizeof(out), B64_MIME), 5);
	cr_assert_eq(memcmp(out, "hello", 5), 0);
	cr_assert_eq(base64_decode("aGk", 3, out, sizeof(out), B64_MIME), 2);
}

Test(base64, output_size_is_checked)
{
	char out[5];
	unsigned char back[2];
	cr_assert_eq(base64_encode("foo", 3, out, sizeof(out), 0), 4);
	cr_assert_eq(base64_encode("foob", 4, out, sizeof(out), 0), -1);
	cr_assert_eq(base64_decode("Zm9v", 4, back, sizeof(back), 0), -1);
}

Test(base64, buffer_round_trip)
{
	unsigned char data[5000], back[5000];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 131 + 17);
	struct buf b;
	buf_init(&b, 1 << 16);
	cr_assert_eq(base64_encode_buf(&b, data, sizeof(data), 0), 0);
	cr_assert_eq(b.len, base64_encoded_len(sizeof(data), 0));
	cr_assert_eq(base64_decode(b.data, b.len, back, sizeof(back), 0), (long)sizeof(data));
	cr_assert_arr_eq(back, data, sizeof(data));
	buf_cleanup(&b);
	buf_init(&b, 100);
	cr_assert_eq(base64_encode_buf(&b, data, sizeof(data), 0), -1, "the maximum size holds");
	buf_cleanup(&b);
}
