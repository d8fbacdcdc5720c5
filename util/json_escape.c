/*
 * json_escape.c - JSON string escaping, RFC 8259 §7 (see json_escape.h).
 */
#include "util/json_escape.h"

/* Length of the UTF-8 sequence at s (RFC 3629 §4), 0 if ill-formed. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t len;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		lo = c == 0xe0 ? 0xa0 : lo;
		hi = c == 0xed ? 0x9f : hi;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		lo = c == 0xf0 ? 0x90 : lo;
		hi = c == 0xf4 ? 0x8f : hi;
	} else {
		return 0;
	}
	if (len > n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

/* Whether byte c is escaped, or (JSON_ESC_UTF8) starts a sequence to check. */
static int needs_care(unsigned char c, unsigned flags)
{
	return c < 0x20 || c == '"' || c == '\\' || (c >= 0x80 && (flags & JSON_ESC_UTF8));
}

/* Writes the escape for ASCII byte c into esc (NUL-terminated). */
static void escape_ascii(unsigned char c, unsigned flags, char esc[8])
{
	static const char hx[] = "0123456789abcdef";
	const char *shrt = (flags & JSON_ESC_SHORT) ? (c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL)
						    : NULL;
	if (c == '"' || c == '\\') {
		esc[0] = '\\';
		esc[1] = (char)c;
		esc[2] = '\0';
	} else if (shrt) {
		esc[0] = shrt[0];
		esc[1] = shrt[1];
		esc[2] = '\0';
	} else if (c < 0x20) {
		const char u[7] = { '\\', 'u', '0', '0', hx[c >> 4], hx[c & 15], 0 };
		for (int i = 0; i < 7; i++)
			esc[i] = u[i];
	} else {
		esc[0] = (char)c;
		esc[1] = '\0';
	}
}

int json_escape(struct buf *b, const char *s, size_t n, unsigned flags)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, plain;
	int rc = buf_putc(b, '"');
	while (rc == 0 && i < n) {
		/* Runs that need no escaping are copied in one append. */
		for (plain = i; plain < n && !needs_care(u[plain], flags); plain++)
			;
		if (plain > i) {
			rc = buf_append(b, s + i, plain - i);
			i = plain;
			continue;
		}
		if (u[i] < 0x80) {
			char esc[8];
			escape_ascii(u[i], flags, esc);
			rc = buf_puts(b, esc);
			i++;
			continue;
		}
		size_t l = (flags & JSON_ESC_UTF8) ? utf8_len(u + i, n - i) : 1;
		rc = l == 0 ? buf_puts(b, "\xef\xbf\xbd") : buf_append(b, s + i, l);
		i += l == 0 ? 1 : l;
	}
	return rc == 0 ? buf_putc(b, '"') : rc;
}
