/*
 * base64.h - the one base64 codec (RFC 4648): the standard alphabet
 * (§4, "+/") and the URL and filename safe one (§5, "-_").
 *
 * Encoders write whole quanta padded with '=' (§3.2) unless B64_NOPAD;
 * line wrapping for MIME bodies (RFC 2045 §6.8) is the caller's
 * (mail/encode.c), built on these.  Decoders are strict by default, for
 * input from clients: only alphabet characters, the data in whole padded
 * quanta, no data after '=', and zero bits left over at the end (§3.5);
 * flags relax that where a caller needs it.
 *
 * base64_encode() and base64_decode() write into the caller's array and
 * return the length written, or -1 (too small, or bad input); nothing
 * here allocates.  base64_encode_buf() appends to a struct buf: 0, or -1
 * when its maximum would be passed.
 */
#ifndef MF_UTIL_BASE64_H
#define MF_UTIL_BASE64_H

#include <stddef.h>

#include "util/buf.h"

enum base64_flags {
	B64_URL = 1 << 0,          /* RFC 4648 §5 alphabet instead of §4 */
	B64_NOPAD = 1 << 1,        /* encode: no '=' padding (§3.2) */
	B64_PAD_OPTIONAL = 1 << 2, /* decode: the last quantum may lack its '=' */
	B64_SKIP_SPACE = 1 << 3,   /* decode: SP, HT, CR and LF are ignored */
	B64_MIME = 1 << 4,         /* decode, RFC 2045 §6.8: characters outside the
				    * alphabet are ignored, '=' ends the data, and
				    * nothing is refused */
};

/* Characters base64_encode() writes for n bytes, without the NUL. */
size_t base64_encoded_len(size_t n, unsigned flags);

/* Encodes in[0..n) into out[outsz] with a NUL; the length, or -1 when out
 * is too small (then out holds nothing useful). */
long base64_encode(const void *in, size_t n, char *out, size_t outsz, unsigned flags);

/* Appends the encoding of in[0..n), unbroken; 0 or -1 (buffer full). */
int base64_encode_buf(struct buf *b, const void *in, size_t n, unsigned flags);

/* Decodes in[0..n) into out[outsz]; the decoded length, or -1 for input
 * the flags do not allow or an out too small.  Needs at most 3 * ceil(n / 4)
 * bytes of out. */
long base64_decode(const char *in, size_t n, unsigned char *out, size_t outsz, unsigned flags);

#endif
