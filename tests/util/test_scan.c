/*
 * Tests of util/scan.h: the word-at-a-time scans give the same answers as
 * an octet-by-octet loop, at every alignment and length, on every octet
 * value next to the boundaries they test (0x1F/0x20, '=', 0x7E/0x7F,
 * 0x80, CR, LF).
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "util/scan.h"

static int plain_octet(unsigned char c)
{
	return c >= 0x20 && c <= 0x7E && c != '=';
}

static void fill(unsigned char *b, size_t n, unsigned *seed)
{
	static const unsigned char pick[] = { 'a', 'a', 'a', 'a', ' ', 0x1F, 0x20, '=', 0x7E, 0x7F, 0x80, 0xFF, '\r', '\n', 0 };
	for (size_t i = 0; i < n; i++)
		b[i] = rand_r(seed) % 3 ? 'a' : pick[rand_r(seed) % sizeof(pick)];
}

Test(scan, word_plain_matches_octets)
{
	unsigned seed = 1;
	unsigned char w[8];
	for (int iter = 0; iter < 200000; iter++) {
		fill(w, 8, &seed);
		int want = 1;
		for (int i = 0; i < 8; i++)
			want &= plain_octet(w[i]);
		cr_assert_eq(scan_word_plain((const char *)w), want, "iteration %d", iter);
	}
	for (int c = 0; c < 256; c++) {
		memset(w, 'a', sizeof(w));
		w[c % 8] = (unsigned char)c;
		cr_assert_eq(scan_word_plain((const char *)w), plain_octet((unsigned char)c), "octet 0x%02x", c);
	}
}

Test(scan, eol_and_ascii_prefix_match_octets)
{
	unsigned seed = 2;
	static unsigned char b[200];
	for (int iter = 0; iter < 50000; iter++) {
		size_t n = (size_t)(rand_r(&seed) % 64), off = (size_t)(rand_r(&seed) % 8);
		fill(b + off, n, &seed);
		/* Sparse specials, so that long runs reach the word loop. */
		if (iter % 2)
			for (size_t i = off; i < off + n; i++)
				if (rand_r(&seed) % 8)
					b[i] = 'q';
		size_t eol = 0;
		while (eol < n && b[off + eol] != '\r' && b[off + eol] != '\n')
			eol++;
		cr_assert_eq(scan_eol((const char *)b + off, n), eol, "iteration %d", iter);
		size_t ascii = 0;
		while (ascii < n && b[off + ascii] < 0x80)
			ascii++;
		size_t got = scan_ascii_prefix(b + off, n);
		cr_assert_leq(got, ascii, "iteration %d: past a non-ASCII octet", iter);
		cr_assert(got + 8 > ascii || got + 8 > n, "iteration %d: stopped %zu early", iter, ascii - got);
	}
}
