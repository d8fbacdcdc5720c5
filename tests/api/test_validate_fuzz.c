/*
 * Fuzz-style robustness test for the send request validator: random
 * bytes, and random mutations of a valid request (byte flips, truncation,
 * splices, inserted specials), fed through JSON parsing and validation.
 * Nothing may crash (the ASan build runs this too), and the result must
 * be self-consistent: accepted requests carry recipients and a body.
 * The seed is fixed so that a failure reproduces.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "api/validate.h"

static const char valid[] =
	"{\"from\":\"\\\"Shop, Inc.\\\" <orders@shop.example>\",\"to\":[\"a@example.net\",\"B <b@example.org>\"],"
	"\"cc\":\"c@example.net\",\"subject\":\"Grüße\",\"text\":\"t\",\"html\":\"<p>h</p>\","
	"\"headers\":{\"X-Order\":\"42\"},\"attachments\":[{\"filename\":\"a.txt\",\"content\":\"aGVsbG8=\","
	"\"content_type\":\"text/plain\",\"content_id\":\"c1\"}],\"tags\":[\"order\"],\"metadata\":{\"k\":\"v\"},"
	"\"send_at\":\"2030-01-02T03:04:05Z\",\"reply_to\":[\"r@example.net\"]}";

static unsigned rnd(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return (*s >> 16) & 0x7fff;
}

/* Parses and validates; returns 1 accepted, 0 refused. */
static int feed(const char *p, size_t n)
{
	struct json_problem jp;
	json_t *root = validate_parse_json(p, n, &jp);
	if (root == NULL) {
		cr_assert(jp.detail[0] != '\0');
		return 0;
	}
	struct val_errors e;
	struct mail_request r;
	val_errors_init(&e);
	int rc = validate_send(root, &r, &e);
	json_decref(root);
	if (rc == 0) {
		cr_assert_eq(e.n, 0);
		cr_assert_gt(r.nrcpts, 0);
		cr_assert(r.text || r.html);
		cr_assert_not_null(r.from.addr);
		for (int i = 0; i < r.nrcpts; i++)
			cr_assert(strpbrk(r.rcpts[i].a.addr, "\r\n") == NULL);
		cr_assert(strpbrk(r.subject, "\r\n") == NULL);
		mail_request_cleanup(&r);
	} else {
		cr_assert_gt(e.n + e.dropped, 0);
	}
	val_errors_cleanup(&e);
	return rc == 0;
}

Test(validate_fuzz, valid_request_is_accepted)
{
	cr_assert_eq(feed(valid, strlen(valid)), 1);
}

Test(validate_fuzz, random_bytes)
{
	unsigned s = 12345;
	unsigned char buf[512];
	for (int iter = 0; iter < 20000; iter++) {
		size_t n = rnd(&s) % sizeof(buf);
		for (size_t i = 0; i < n; i++)
			buf[i] = (unsigned char)rnd(&s);
		if (n && iter % 2)
			buf[0] = '{';
		feed((const char *)buf, n);
	}
}

Test(validate_fuzz, mutations_of_a_valid_request)
{
	static const char *specials[] = { "\\r\\n", "\"", "\\u0000", "<", ">", "@", ",", "[", "]", "{", "}",
					  ":", "\\\\", "\xff", "\xc3", "..", "=", "null", "1e999", "-" };
	unsigned s = 777;
	size_t vlen = strlen(valid);
	char *buf = malloc(vlen * 2 + 64);
	int accepted = 0;
	for (int iter = 0; iter < 20000; iter++) {
		memcpy(buf, valid, vlen + 1);
		size_t n = vlen;
		int edits = 1 + (int)(rnd(&s) % 4);
		for (int k = 0; k < edits; k++) {
			size_t at = rnd(&s) % (n ? n : 1);
			switch (rnd(&s) % 4) {
			case 0: /* flip a byte */
				buf[at] = (char)rnd(&s);
				break;
			case 1: /* truncate */
				n = at;
				break;
			case 2: { /* insert a special */
				const char *sp = specials[rnd(&s) % (sizeof(specials) / sizeof(specials[0]))];
				size_t l = strlen(sp);
				if (n + l < vlen * 2 + 32) {
					memmove(buf + at + l, buf + at, n - at);
					memcpy(buf + at, sp, l);
					n += l;
				}
				break;
			}
			default: { /* delete a span */
				size_t l = rnd(&s) % 8;
				if (at + l <= n) {
					memmove(buf + at, buf + at + l, n - at - l);
					n -= l;
				}
			}
			}
		}
		accepted += feed(buf, n);
	}
	free(buf);
	/* Some mutations (inside text values) keep the request valid. */
	cr_assert_gt(accepted, 0);
}
