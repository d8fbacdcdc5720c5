/*
 * hex.h - lower-case hexadecimal encoding, for ids, boundaries and bytea
 * parameters (snprintf("%02x") per byte was measurable on the send path).
 */
#ifndef MF_UTIL_HEX_H
#define MF_UTIL_HEX_H

#include <stddef.h>

/* Writes the 2n hex digits of p[0..n-1] and a NUL to out[2n + 1]. */
static inline void hex_encode(const unsigned char *p, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[p[i] >> 4];
		out[2 * i + 1] = hx[p[i] & 15];
	}
	out[2 * n] = '\0';
}

#endif
