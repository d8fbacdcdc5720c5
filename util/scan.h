/*
 * scan.h - byte scans eight octets at a time, for the send path's passes
 * over whole bodies (UTF-8 check, MIME line breaks, quoted-printable).
 *
 * The tests are the word-at-a-time ones of "Bit Twiddling Hacks" (Sean
 * Eron Anderson): has_zero() and has_less() may mark a wrong octet after a
 * true one (borrows), but whether a word has a match at all is exact, and
 * that is all the callers ask.  Words are read with memcpy(), so any
 * alignment is fine.
 */
#ifndef MF_SCAN_H
#define MF_SCAN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SCAN_ONES 0x0101010101010101ULL
#define SCAN_HIGHS 0x8080808080808080ULL

static inline uint64_t scan_word(const void *p)
{
	uint64_t w;
	memcpy(&w, p, sizeof(w));
	return w;
}

/* Nonzero when some octet of w is zero. */
static inline uint64_t scan_has_zero(uint64_t w)
{
	return (w - SCAN_ONES) & ~w & SCAN_HIGHS;
}

/* Nonzero when some octet of w is below n (n <= 128). */
static inline uint64_t scan_has_less(uint64_t w, unsigned n)
{
	return (w - SCAN_ONES * n) & ~w & SCAN_HIGHS;
}

/* Nonzero when some octet of w equals c. */
static inline uint64_t scan_has_byte(uint64_t w, unsigned char c)
{
	return scan_has_zero(w ^ (SCAN_ONES * c));
}

/* 1 when the eight octets at p are printable ASCII or space (0x20-0x7E)
 * and none is '=': the octets quoted-printable and 7bit text copy as they
 * are (a tab, a line break or anything else takes the octet-wise path). */
static inline int scan_word_plain(const char *p)
{
	uint64_t w = scan_word(p);
	return !((w & SCAN_HIGHS) | scan_has_less(w, 0x20) | scan_has_byte(w, '=') | scan_has_byte(w, 0x7F));
}

/* Offset of the first CR or LF in p[0..n), or n. */
static inline size_t scan_eol(const char *p, size_t n)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w = scan_word(p + i);
		if (scan_has_byte(w, '\r') | scan_has_byte(w, '\n'))
			break;
	}
	while (i < n && p[i] != '\r' && p[i] != '\n')
		i++;
	return i;
}

/* Length of the leading run of 7-bit octets of p[0..n), give or take the
 * last partial word: every octet before the returned offset is ASCII. */
static inline size_t scan_ascii_prefix(const unsigned char *p, size_t n)
{
	size_t i = 0;
	while (i + 8 <= n && !(scan_word(p + i) & SCAN_HIGHS))
		i += 8;
	return i;
}

#endif
