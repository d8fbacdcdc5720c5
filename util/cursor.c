/*
 * cursor.c - opaque pagination cursors (see cursor.h).
 */
#include "util/cursor.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/base64.h"

int cursor_encode(const char *tag, const char *pos, char *out, size_t outsz)
{
	char plain[CURSOR_POS_MAX + 16];
	int n = snprintf(plain, sizeof(plain), "%s:%s", tag, pos);
	if (n < 0 || (size_t)n >= sizeof(plain))
		return -1;
	return base64_encode(plain, (size_t)n, out, outsz, B64_URL | B64_NOPAD) < 0 ? -1 : 0;
}

int cursor_decode(const char *s, const char *tag, char *pos, size_t possz)
{
	unsigned char plain[CURSOR_POS_MAX + 16];
	size_t n = strlen(s), tl = strlen(tag);
	if (n == 0 || n > CURSOR_LEN)
		return -1;
	long len = base64_decode(s, n, plain, sizeof(plain), B64_URL | B64_PAD_OPTIONAL);
	if (len < (long)tl + 2 || memcmp(plain, tag, tl) != 0 || plain[tl] != ':' ||
	    memchr(plain, '\0', (size_t)len) != NULL || (size_t)len - tl - 1 >= possz)
		return -1;
	memcpy(pos, plain + tl + 1, (size_t)len - tl - 1);
	pos[len - (long)tl - 1] = '\0';
	return 0;
}

int cursor_encode_nums(const char *tag, const int64_t *v, size_t n, char *out, size_t outsz)
{
	char pos[CURSOR_POS_MAX + 1];
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int w = snprintf(pos + o, sizeof(pos) - o, "%s%" PRId64, i ? "." : "", v[i]);
		if (v[i] < 0 || w < 0 || (size_t)w >= sizeof(pos) - o)
			return -1;
		o += (size_t)w;
	}
	return cursor_encode(tag, pos, out, outsz);
}

/* One whole decimal number of 1 to 19 digits, at most INT64_MAX. */
static int parse_num(const char *s, size_t len, int64_t *out)
{
	char d[20];
	if (len == 0 || len >= sizeof(d) || strspn(s, "0123456789") < len)
		return -1;
	memcpy(d, s, len);
	d[len] = '\0';
	unsigned long long v = strtoull(d, NULL, 10);
	if (v > INT64_MAX)
		return -1;
	*out = (int64_t)v;
	return 0;
}

int cursor_decode_nums(const char *s, const char *tag, int64_t *v, size_t n)
{
	char pos[CURSOR_POS_MAX + 1];
	if (n == 0 || cursor_decode(s, tag, pos, sizeof(pos)) < 0)
		return -1;
	const char *p = pos;
	for (size_t i = 0; i < n; i++) {
		size_t len = strcspn(p, ".");
		if (parse_num(p, len, &v[i]) < 0 || (i + 1 < n) != (p[len] == '.'))
			return -1;
		p += len + (p[len] == '.');
	}
	return 0;
}
