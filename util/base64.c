/*
 * base64.c - base64 encoding and decoding, RFC 4648 §4 and §5 (see
 * base64.h).
 *
 * One encoder and one decoder serve every caller: API cursors and keys
 * (URL alphabet, unpadded), webhook secrets and signatures, SMTP AUTH,
 * DKIM values, MIME bodies (through mail/encode.c) and the decoders of
 * attachments (strict) and of received MIME parts (RFC 2045 §6.8, lenient).
 */
#include "util/base64.h"

static const char alphabet_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char alphabet_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Bytes encoded per piece by base64_encode_buf(): a multiple of 3, so the
 * pieces join without padding in between. */
#define B64_PIECE 768

size_t base64_encoded_len(size_t n, unsigned flags)
{
	if (flags & B64_NOPAD)
		return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
	return (n + 2) / 3 * 4;
}

long base64_encode(const void *in, size_t n, char *out, size_t outsz, unsigned flags)
{
	const char *tbl = flags & B64_URL ? alphabet_url : alphabet_std;
	const unsigned char *p = in;
	int pad = !(flags & B64_NOPAD);
	size_t o = 0;
	if (base64_encoded_len(n, flags) >= outsz)
		return -1;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
			     (i + 2 < n ? p[i + 2] : 0);
		out[o++] = tbl[(v >> 18) & 63];
		out[o++] = tbl[(v >> 12) & 63];
		if (i + 1 < n || pad)
			out[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
		if (i + 2 < n || pad)
			out[o++] = i + 2 < n ? tbl[v & 63] : '=';
	}
	out[o] = '\0';
	return (long)o;
}

int base64_encode_buf(struct buf *b, const void *in, size_t n, unsigned flags)
{
	const unsigned char *p = in;
	char piece[B64_PIECE / 3 * 4 + 1];
	do {
		size_t k = n < B64_PIECE ? n : B64_PIECE;
		long len = base64_encode(p, k, piece, sizeof(piece), flags);
		if (len < 0 || buf_append(b, piece, (size_t)len) < 0)
			return -1;
		p += k;
		n -= k;
	} while (n > 0);
	return 0;
}

/* The 6-bit value of c in the alphabet, or -1. */
static int value_of(unsigned char c, unsigned flags)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == (flags & B64_URL ? '-' : '+'))
		return 62;
	if (c == (flags & B64_URL ? '_' : '/'))
		return 63;
	return -1;
}

static int is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* RFC 4648 §3.2, §3.5: whether the count of data characters (quad less
 * pad), the '=' count and the bits left over make a canonical end. */
static int end_ok(size_t quad, size_t pad, unsigned acc, unsigned flags)
{
	size_t data = quad - pad;
	if (pad > 2 || acc != 0 || data % 4 == 1)
		return 0;
	if (pad == 0)
		return data % 4 == 0 || (flags & B64_PAD_OPTIONAL);
	return quad % 4 == 0;
}

long base64_decode(const char *in, size_t n, unsigned char *out, size_t outsz, unsigned flags)
{
	unsigned acc = 0;
	int bits = 0;
	size_t o = 0, quad = 0, pad = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		if ((flags & B64_SKIP_SPACE) && is_space(c))
			continue;
		if (c == '=' && (flags & B64_MIME))
			break;
		if (c == '=') {
			pad++;
			quad++;
			continue;
		}
		int v = value_of(c, flags);
		if (v < 0 && (flags & B64_MIME))
			continue;
		if (v < 0 || pad)
			return -1; /* not in the alphabet, or data after '=' */
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		quad++;
		if (bits >= 8) {
			bits -= 8;
			if (o == outsz)
				return -1;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (!(flags & B64_MIME) && !end_ok(quad, pad, acc, flags))
		return -1;
	return (long)o;
}
