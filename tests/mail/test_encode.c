/*
 * Tests for mail/encode.c: base64 (RFC 4648 vectors, 76-column lines),
 * quoted-printable (soft line breaks, trailing whitespace, '='), RFC 2047
 * encoded-words (length limits, UTF-8 never split across words), RFC 2231
 * parameters and header folding.  Decoders here are written from the
 * RFCs, independently of the encoders under test; the transfer encoding
 * chosen for text bodies is checked against Python's email package
 * (tests/mail/cte_check.py).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "mail/encode.h"
#include "util/xmalloc.h"

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static size_t b64_decode(const char *s, size_t n, unsigned char *out)
{
	static const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned v = 0;
	int bits = 0;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		const char *p = strchr(alpha, s[i]);
		if (s[i] == '=' || p == NULL || s[i] == '\0')
			continue;
		v = (v << 6) | (unsigned)(p - alpha);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[k++] = (unsigned char)(v >> bits);
		}
	}
	return k;
}

/* Strict UTF-8 check: complete sequences only. */
static int utf8_valid(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t l = s[i] < 0x80 ? 1 : s[i] >= 0xF0 ? 4 : s[i] >= 0xE0 ? 3 : s[i] >= 0xC2 ? 2 : 0;
		if (l == 0 || i + l > n)
			return 0;
		for (size_t k = 1; k < l; k++)
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
		i += l;
	}
	return 1;
}

static void check_lines(const char *s, size_t max)
{
	const char *p = s;
	while (*p) {
		const char *e = strstr(p, "\r\n");
		cr_assert_not_null(e, "line without CRLF: %s", p);
		cr_assert_leq((size_t)(e - p), max, "line too long (%zu): %.*s", (size_t)(e - p),
			      (int)(e - p), p);
		p = e + 2;
	}
}

Test(encode, base64_rfc4648_vectors)
{
	const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	const char *want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	for (int i = 0; i < 7; i++) {
		struct buf b;
		buf_init(&b, 1024);
		cr_assert_eq(enc_base64(&b, (const unsigned char *)in[i], strlen(in[i]), 0), 0);
		cr_assert_str_eq(buf_cstr(&b), want[i]);
		buf_cleanup(&b);
	}
}

Test(encode, base64_lines_of_76_round_trip)
{
	unsigned char data[1000], back[1000];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 31 + 7);
	struct buf b;
	buf_init(&b, 1 << 16);
	cr_assert_eq(enc_base64(&b, data, sizeof(data), 76), 0);
	check_lines(b.data, 76);
	cr_assert_eq(strncmp(b.data + 76, "\r\n", 2), 0);
	cr_assert_eq(b64_decode(b.data, b.len, back), sizeof(data));
	cr_assert_arr_eq(back, data, sizeof(data));
	buf_cleanup(&b);

	buf_init(&b, 10);
	cr_assert_eq(enc_base64(&b, data, sizeof(data), 76), -1, "maximum size is enforced");
	buf_cleanup(&b);
}

/* RFC 2045 §6.7 decoder: soft breaks "=\r\n" vanish, =XX is an octet. */
static char *qp_decode(const char *s)
{
	size_t n = strlen(s), k = 0;
	char *out = xmalloc(n + 1);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '=' && i + 2 < n && s[i + 1] == '\r' && s[i + 2] == '\n') {
			i += 2;
		} else if (s[i] == '=') {
			cr_assert(i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0,
				  "bad escape at %zu", i);
			out[k++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		} else {
			out[k++] = s[i];
		}
	}
	out[k] = '\0';
	return out;
}

static void qp_case(const char *in, const char *want_decoded)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	cr_assert_eq(enc_qp(&b, in, strlen(in)), 0);
	check_lines(b.data, 76);
	/* No encoded line ends in whitespace (rule 3). */
	for (const char *p = strstr(b.data, "\r\n"); p; p = strstr(p + 2, "\r\n"))
		cr_assert(p == b.data || (p[-1] != ' ' && p[-1] != '\t'), "trailing whitespace");
	char *d = qp_decode(b.data);
	cr_assert_str_eq(d, want_decoded, "qp: %s", b.data);
	free(d);
	buf_cleanup(&b);
}

Test(encode, qp_escapes_and_trailing_whitespace)
{
	struct buf b;
	buf_init(&b, 1024);
	cr_assert_eq(enc_qp(&b, "a=b caf\xc3\xa9 \nend\t\n.dot", strlen("a=b caf\xc3\xa9 \nend\t\n.dot")), 0);
	cr_assert_str_eq(buf_cstr(&b), "a=3Db caf=C3=A9=20\r\nend=09\r\n=2Edot\r\n");
	buf_cleanup(&b);
	qp_case("x \t \r\ny\r\n", "x \t \r\ny\r\n");
	qp_case("bare\rcr\n", "bare\r\ncr\r\n");
}

Test(encode, qp_soft_breaks_never_split_escapes)
{
	/* 100 'é' (=C3=A9): soft breaks must fall between triplets. */
	struct buf in;
	buf_init(&in, 1 << 16);
	for (int i = 0; i < 100; i++)
		buf_puts(&in, "\xc3\xa9");
	buf_puts(&in, "\n");
	for (int shift = 0; shift < 4; shift++) {
		struct buf line;
		buf_init(&line, 1 << 16);
		for (int i = 0; i < shift; i++)
			buf_putc(&line, 'a');
		buf_append(&line, in.data, in.len);
		char *want = xasprintf("%.*s\r\n", (int)line.len - 1, line.data);
		qp_case(buf_cstr(&line), want);
		free(want);
		buf_cleanup(&line);
	}
	/* A long line with a space right at the break point. */
	char longline[300];
	memset(longline, 'w', sizeof(longline));
	for (int i = 74; i < 300; i += 75)
		longline[i] = ' ';
	longline[299] = '\0';
	char *want = xasprintf("%s\r\n", longline);
	qp_case(longline, want);
	free(want);
	buf_cleanup(&in);
}

Test(encode, text_transfer_encoding_choice)
{
	cr_assert_eq(enc_text_cte("short ascii\nlines\n", 18), ENC_7BIT);
	cr_assert_eq(enc_text_cte("trailing \nspace", 15), ENC_QP);
	const char *fr = "Un caf\xc3\xa9 cr\xc3\xa8me, s'il vous pla\xc3\xaet.";
	cr_assert_eq(enc_text_cte(fr, strlen(fr)), ENC_QP);
	char l[200];
	memset(l, 'a', sizeof(l));
	cr_assert_eq(enc_text_cte(l, sizeof(l)), ENC_QP);
	const char *cjk = "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86\xe3\x82\xad";
	cr_assert_eq(enc_text_cte(cjk, strlen(cjk)), ENC_BASE64);
}

/* Decodes every encoded-word of a header field; each word's octets must be
 * valid UTF-8 on their own (no sequence split across words). */
static char *ew_decode_all(const char *field, int *nwords)
{
	struct buf out;
	buf_init(&out, 1 << 16);
	*nwords = 0;
	const char *p = field;
	while ((p = strstr(p, "=?utf-8?")) != NULL) {
		char kind = p[8];
		const char *data = p + 10, *end = strstr(data, "?=");
		cr_assert_not_null(end);
		cr_assert_leq((size_t)(end + 2 - p), 75, "encoded-word longer than 75");
		unsigned char dec[128];
		size_t k = 0;
		if (kind == 'b') {
			k = b64_decode(data, (size_t)(end - data), dec);
		} else {
			cr_assert_eq(kind, 'q');
			for (const char *q = data; q < end; q++) {
				if (*q == '_')
					dec[k++] = ' ';
				else if (*q == '=') {
					dec[k++] = (unsigned char)(hexval(q[1]) * 16 + hexval(q[2]));
					q += 2;
				} else
					dec[k++] = (unsigned char)*q;
			}
		}
		cr_assert(utf8_valid(dec, k), "encoded-word %d splits a UTF-8 sequence", *nwords);
		buf_append(&out, dec, k);
		(*nwords)++;
		p = end + 2;
	}
	return buf_steal(&out, NULL);
}

static void ew_case(const char *s, int min_words)
{
	struct buf b;
	struct hdr h;
	buf_init(&b, 1 << 16);
	cr_assert_eq(hdr_begin(&h, &b, "Subject"), 0);
	cr_assert_eq(hdr_encoded_words(&h, s, strlen(s)), 0);
	cr_assert_eq(hdr_end(&h), 0);
	check_lines(b.data, 76);
	int n;
	char *d = ew_decode_all(b.data, &n);
	cr_assert_str_eq(d, s, "%s", b.data);
	cr_assert_geq(n, min_words, "%s", b.data);
	free(d);
	buf_cleanup(&b);
}

Test(encode, encoded_words_never_split_utf8)
{
	/* 3-octet and 4-octet characters, with Q (mostly ASCII) and B. */
	struct buf s;
	buf_init(&s, 1 << 16);
	for (int i = 0; i < 40; i++)
		buf_puts(&s, "\xe2\x82\xac");  /* € */
	ew_case(s.data, 3);
	buf_reset(&s);
	for (int i = 0; i < 30; i++)
		buf_puts(&s, "a\xf0\x9f\x8e\x89");  /* a🎉 */
	ew_case(s.data, 3);
	buf_reset(&s);
	for (int i = 0; i < 20; i++)
		buf_puts(&s, "Caf\xc3\xa9 au lait ");
	ew_case(s.data, 4);
	ew_case("=?not an encoded word?= _ ? =", 1);
	buf_cleanup(&s);
}

Test(encode, q_words_use_underscore_and_escapes)
{
	struct buf b;
	struct hdr h;
	buf_init(&b, 1024);
	hdr_begin(&h, &b, "Subject");
	hdr_encoded_words(&h, "Caf\xc3\xa9 au lait ok_?", strlen("Caf\xc3\xa9 au lait ok_?"));
	hdr_end(&h);
	cr_assert_str_eq(buf_cstr(&b), "Subject: =?utf-8?q?Caf=C3=A9_au_lait_ok=5F=3F?=\r\n");
	buf_cleanup(&b);
}

static char *unfold(const char *s)
{
	size_t n = strlen(s), k = 0;
	char *o = xmalloc(n + 1);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r' && s[i + 1] == '\n' && (s[i + 2] == ' ' || s[i + 2] == '\t')) {
			i++;
			continue;
		}
		o[k++] = s[i];
	}
	o[k] = '\0';
	return o;
}

Test(encode, unstructured_ascii_folds_at_its_own_whitespace)
{
	const char *subj = "This is a fairly long subject line that goes on  and on\tuntil it "
			   "has to be folded somewhere sensible, twice or even three times over";
	struct buf b;
	struct hdr h;
	buf_init(&b, 4096);
	hdr_begin(&h, &b, "Subject");
	hdr_unstructured(&h, subj);
	hdr_end(&h);
	check_lines(b.data, 78);
	char *u = unfold(b.data);
	char *want = xasprintf("Subject: %s\r\n", subj);
	cr_assert_str_eq(u, want);
	cr_assert(strstr(b.data, "=?") == NULL, "plain ASCII stays plain");
	free(u);
	free(want);
	buf_cleanup(&b);
}

Test(encode, phrase_forms)
{
	struct {
		const char *in, *want;
	} cases[] = {
		{"Jane Doe", "To: Jane Doe <j@x>\r\n"},
		{"Doe, Jane", "To: \"Doe, Jane\" <j@x>\r\n"},
		{"A \"B\" \\C", "To: \"A \\\"B\\\" \\\\C\" <j@x>\r\n"},
		{"Zo\xc3\xab", "To: =?utf-8?q?Zo=C3=AB?= <j@x>\r\n"},
		{"Zo\xc3\xab Smith", "To: =?utf-8?q?Zo=C3=AB?= Smith <j@x>\r\n"},
		{"", "To: j@x\r\n"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b;
		struct hdr h;
		buf_init(&b, 1024);
		hdr_begin(&h, &b, "To");
		cr_assert_eq(hdr_mailbox(&h, cases[i].in, "j@x", 0), 0);
		hdr_end(&h);
		cr_assert_str_eq(buf_cstr(&b), cases[i].want);
		buf_cleanup(&b);
	}
}

/* Reassembles RFC 2231 sections "name*N*=..." / "name*=..." and decodes. */
static char *rfc2231_decode(const char *field, const char *name)
{
	struct buf raw;
	buf_init(&raw, 4096);
	for (int sec = -1; sec < 100; sec++) {
		char key[64];
		if (sec < 0)
			snprintf(key, sizeof(key), " %s*=", name);
		else
			snprintf(key, sizeof(key), " %s*%d*=", name, sec);
		const char *p = strstr(field, key);
		if (p == NULL) {
			if (sec >= 0)
				break;
			continue;
		}
		p += strlen(key);
		if (strncmp(p, "utf-8''", 7) == 0)
			p += 7;
		size_t n = strcspn(p, ";\r");
		for (size_t i = 0; i < n; i++) {
			if (p[i] == '%') {
				cr_assert(i + 2 < n, "%%XX split across sections");
				buf_putc(&raw, (char)(hexval(p[i + 1]) * 16 + hexval(p[i + 2])));
				i += 2;
			} else {
				buf_putc(&raw, p[i]);
			}
		}
		cr_assert(utf8_valid((const unsigned char *)raw.data, raw.len), "section splits UTF-8");
	}
	return buf_steal(&raw, NULL);
}

Test(encode, rfc2231_parameters)
{
	struct {
		const char *value, *want;
	} plain[] = {
		{"invoice.pdf", "X: a; filename=invoice.pdf\r\n"},
		{"my invoice (1).pdf", "X: a; filename=\"my invoice (1).pdf\"\r\n"},
		{"r\xc3\xa9sum\xc3\xa9.pdf", "X: a; filename*=utf-8''r%C3%A9sum%C3%A9.pdf\r\n"},
	};
	for (size_t i = 0; i < 3; i++) {
		struct buf b;
		struct hdr h;
		buf_init(&b, 1024);
		hdr_begin(&h, &b, "X");
		hdr_token(&h, "a", 1);
		cr_assert_eq(hdr_param(&h, "filename", plain[i].value), 0);
		hdr_end(&h);
		cr_assert_str_eq(buf_cstr(&b), plain[i].want);
		buf_cleanup(&b);
	}

	/* Long non-ASCII: continuations, each line folded under 78. */
	struct buf v;
	buf_init(&v, 4096);
	for (int i = 0; i < 15; i++)
		buf_puts(&v, "\xe5\xa0\xb1\xe5\x91\x8a-\xc3\xbc ");
	buf_puts(&v, "final.pdf");
	struct buf b;
	struct hdr h;
	buf_init(&b, 8192);
	hdr_begin(&h, &b, "Content-Disposition");
	hdr_token(&h, "attachment", 10);
	cr_assert_eq(hdr_param(&h, "filename", v.data), 0);
	hdr_end(&h);
	check_lines(b.data, 78);
	cr_assert(strstr(b.data, "filename*0*=utf-8''") != NULL, "%s", b.data);
	cr_assert(strstr(b.data, "filename*2*=") != NULL, "%s", b.data);
	char *d = rfc2231_decode(b.data, "filename");
	cr_assert_str_eq(d, v.data);
	free(d);
	buf_cleanup(&b);
	buf_cleanup(&v);
}

/* Random text over an alphabet that exercises every quoted-printable rule:
 * letters, space, tab, '=', '.', CR, LF, DEL and UTF-8 octets, with line
 * lengths on both sides of 76 and word boundaries at every offset. */
static size_t random_text(char *out, size_t max, unsigned *seed)
{
	static const char *const pieces[] = { "a", "b", "Z", " ", "\t", "=", ".", "\n", "\r\n", "\r",
					      "\x7f", "\xc3\xa9", "\x01", "0123456789", "abcdefghijklmnop" };
	size_t n = 0, want = (size_t)(rand_r(seed) % (max - 16));
	while (n < want) {
		const char *p = pieces[rand_r(seed) % (sizeof(pieces) / sizeof(pieces[0]))];
		/* Long runs of plain letters, so that lines pass 76. */
		if (rand_r(seed) % 4 == 0)
			p = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
		size_t l = strlen(p);
		if (n + l >= max)
			break;
		memcpy(out + n, p, l);
		n += l;
	}
	out[n] = '\0';
	return n;
}

/* Text with every line end as CRLF and a final CRLF (what enc_qp encodes). */
static char *canonical(const char *s)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	cr_assert_eq(enc_crlf(&b, s, strlen(s)), 0);
	return buf_steal(&b, NULL);
}

static int qp_needs_escape(unsigned char c, int line_start, int line_end)
{
	return c == '=' || c > 126 || (c < 32 && c != '\t') || ((c == ' ' || c == '\t') && line_end) ||
	       (c == '.' && line_start);
}

Test(encode, qp_random_texts_round_trip_with_minimal_escapes)
{
	unsigned seed = 20261129;
	static char in[4096];
	for (int iter = 0; iter < 3000; iter++) {
		size_t n = random_text(in, sizeof(in), &seed);
		char *want = canonical(in);
		qp_case(in, want);
		free(want);
		/* Every escape is one rule (1)-(3) requires, and every soft
		 * break ends a line that had no room left. */
		struct buf b;
		buf_init(&b, 1 << 20);
		cr_assert_eq(enc_qp(&b, in, n), 0);
		const char *line = b.data;
		for (const char *e; (e = strstr(line, "\r\n")) != NULL; line = e + 2) {
			size_t len = (size_t)(e - line);
			int soft = len > 0 && line[len - 1] == '=';
			if (soft)
				cr_assert_geq(len, 73, "soft break in a short line: %.*s", (int)len, line);
			cr_assert(len == 0 || line[0] != '.', "a line starts with a literal '.': %.*s", (int)len, line);
			for (size_t i = 0; i + (soft ? 1 : 0) < len; i++) {
				unsigned char lit = (unsigned char)line[i];
				if (lit != '=') {
					cr_assert(!qp_needs_escape(lit, 0, !soft && i + 1 == len), "literal 0x%02x in %.*s",
						  lit, (int)len, line);
					continue;
				}
				unsigned char c = (unsigned char)(hexval(line[i + 1]) * 16 + hexval(line[i + 2]));
				int at_end = !soft && i + 3 == len;
				cr_assert(qp_needs_escape(c, i == 0, at_end), "needless escape %.3s in %.*s",
					  line + i, (int)len, line);
				i += 2;
			}
		}
		buf_cleanup(&b);
	}
}

/*
 * RFC 2045 §6.7 by its own rules, one vector each: (1) '=' and octets
 * above 126 as =XX in upper-case hex; (2) other printable ASCII as itself;
 * (3) space and tab literal inside a line, encoded at its end; (4) a line
 * break of the text is a CRLF; (5) no encoded line over 76 characters, a
 * soft line break ("=" CRLF) where the text's line goes on.
 */
Test(encode, qp_rfc2045_rule_vectors)
{
	static const struct {
		const char *in, *want;
	} v[] = {
		{ "1+1=2", "1+1=3D2\r\n" },                                    /* rule 1 */
		{ "\xe2\x82\xac", "=E2=82=AC\r\n" },                           /* rule 1 */
		{ "!\"#$%&'()*+,-./:;<>?@[\\]^_`{|}~", "!\"#$%&'()*+,-./:;<>?@[\\]^_`{|}~\r\n" }, /* rule 2 */
		{ "a b\tc", "a b\tc\r\n" },                                     /* rule 3 */
		{ "end \nend\t\n", "end=20\r\nend=09\r\n" },                     /* rule 3 */
		{ "one\r\ntwo\nthree\rfour", "one\r\ntwo\r\nthree\r\nfour\r\n" }, /* rule 4 */
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct buf b;
		buf_init(&b, 1024);
		cr_assert_eq(enc_qp(&b, v[i].in, strlen(v[i].in)), 0);
		cr_assert_str_eq(buf_cstr(&b), v[i].want, "vector %zu", i);
		buf_cleanup(&b);
	}
	/* Rule 5: 80 letters are one line of 75 and "=", then the other 5. */
	char l80[81], want[100];
	memset(l80, 'a', 80);
	l80[80] = '\0';
	snprintf(want, sizeof(want), "%.75s=\r\n%.5s\r\n", l80, l80);
	struct buf b;
	buf_init(&b, 1024);
	cr_assert_eq(enc_qp(&b, l80, 80), 0);
	cr_assert_str_eq(buf_cstr(&b), want);
	buf_cleanup(&b);
	/* Exactly 76 fit on one line; an escape is never split by the break. */
	buf_init(&b, 1024);
	cr_assert_eq(enc_qp(&b, l80, 76), 0);
	snprintf(want, sizeof(want), "%.76s\r\n", l80);
	cr_assert_str_eq(buf_cstr(&b), want);
	buf_cleanup(&b);
	char l74eq[80];
	snprintf(l74eq, sizeof(l74eq), "%.74s=b", l80);
	buf_init(&b, 1024);
	cr_assert_eq(enc_qp(&b, l74eq, strlen(l74eq)), 0);
	snprintf(want, sizeof(want), "%.74s=\r\n=3Db\r\n", l80);
	cr_assert_str_eq(buf_cstr(&b), want);
	buf_cleanup(&b);
}

static const char *cte_name(enum enc_cte c)
{
	return c == ENC_7BIT ? "7bit" : c == ENC_QP ? "quoted-printable" : "base64";
}

/* base64 of p[0..n), no line breaks, into f. */
static void put_b64(FILE *f, const char *p, size_t n)
{
	struct buf b;
	buf_init(&b, 1 << 22);
	cr_assert_eq(enc_base64(&b, (const unsigned char *)p, n, 0), 0);
	fputs(buf_cstr(&b), f);
	buf_cleanup(&b);
}

/*
 * Random texts, each written as a one-part message in the transfer
 * encoding enc_text_cte() chose for it (enc_crlf, enc_qp, or base64 of
 * the canonical text, as the composer does) and handed to Python's email
 * package (tests/mail/cte_check.py): every message decodes back to its
 * text, and its body follows its encoding's rules - 7bit only when lines
 * are short, printable ASCII without trailing whitespace.  Every choice
 * is exercised.
 */
Test(encode, text_transfer_encoding_round_trips_through_python_email)
{
	const char *src = getenv("MAILFERRY_TEST_SRCDIR");
	char *dir = th_tmpdir("cte");
	cr_assert_not_null(dir);
	char path[512];
	snprintf(path, sizeof(path), "%s/cases.json", dir);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	unsigned seed = 7;
	static char in[1024];
	int seen[3] = { 0 };
	fputs("[", f);
	for (int iter = 0; iter < 3000; iter++) {
		size_t n = random_text(in, 1 + (size_t)(rand_r(&seed) % 2) * 500 + 40, &seed);
		/* Mostly-plain variants too, so that 7bit is chosen often. */
		if (iter % 2)
			for (size_t i = 0; i < n; i++)
				if ((unsigned char)in[i] > 126 || in[i] == '\t' || in[i] == '\x01' || in[i] == '\r')
					in[i] = 'x';
		if (n == 0)
			continue;
		enum enc_cte cte = enc_text_cte(in, n);
		seen[cte]++;
		struct buf msg, text;
		buf_init(&msg, 1 << 20);
		buf_init(&text, 1 << 20);
		cr_assert_eq(enc_crlf(&text, in, n), 0);
		buf_printf(&msg, "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
				 "Content-Transfer-Encoding: %s\r\n\r\n", cte_name(cte));
		if (cte == ENC_7BIT)
			cr_assert_eq(enc_crlf(&msg, in, n), 0);
		else if (cte == ENC_QP)
			cr_assert_eq(enc_qp(&msg, in, n), 0);
		else
			cr_assert_eq(enc_base64(&msg, (const unsigned char *)text.data, text.len, 76), 0);
		fprintf(f, "%s{\"cte\":\"%s\",\"message\":\"", iter ? "," : "", cte_name(cte));
		put_b64(f, msg.data, msg.len);
		fputs("\",\"text\":\"", f);
		put_b64(f, text.data, text.len);
		fputs("\"}", f);
		buf_cleanup(&msg);
		buf_cleanup(&text);
	}
	fputs("]\n", f);
	cr_assert_eq(fclose(f), 0);
	cr_assert(seen[ENC_7BIT] > 0 && seen[ENC_QP] > 0 && seen[ENC_BASE64] > 0, "%d %d %d", seen[0], seen[1],
		  seen[2]);
	char *out = NULL;
	int rc = th_run(&out, "/usr/bin/python3 %s/tests/mail/cte_check.py %s", src && *src ? src : ".", path);
	cr_assert_eq(rc, 0, "cte_check failed:\n%s", out ? out : "");
	free(out);
	th_rmrf(dir);
	free(dir);
}
