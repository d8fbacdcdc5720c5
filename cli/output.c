/*
 * output.c - shared output helpers of the operator commands (see output.h).
 */
#include "cli/output.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/config.h"
#include "util/json_escape.h"
#include "util/rfc3339.h"

void cli_json_str(FILE *out, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	struct buf b;
	buf_init(&b, 6 * n + 3); /* an escape is at most 6 bytes (\u00XX) */
	json_escape(&b, s ? s : "", n, JSON_ESC_SHORT);
	fwrite(buf_cstr(&b), 1, b.len, out);
	buf_cleanup(&b);
}

int cli_json_buf(struct buf *b, const char *s)
{
	return json_escape(b, s ? s : "", s ? strlen(s) : 0, JSON_ESC_SHORT);
}

int cli_time_arg(const char *s, char *out, size_t outsz)
{
	/* RFC 3339 §5.6: full-date first; PostgreSQL checks the rest. */
	if (strlen(s) >= 10 && isdigit((unsigned char)s[0]) && isdigit((unsigned char)s[3]) && s[4] == '-' &&
	    s[7] == '-') {
		int n = snprintf(out, outsz, "%s", s);
		return n > 0 && (size_t)n < outsz ? 0 : -1;
	}
	long secs;
	if (config_parse_duration(s, &secs) < 0 || secs < 0)
		return -1;
	return rfc3339_format(time(NULL) - (time_t)secs, -1, out, outsz);
}

/* Bytes of the UTF-8 character at s (RFC 3629 §3); 1 for a stray byte. */
static size_t utf8_char_len(const unsigned char *s)
{
	size_t n = s[0] < 0x80 ? 1 : (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3 : (s[0] & 0xF8) == 0xF0 ? 4 : 1;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 1;
	return n;
}

static size_t utf8_chars(const char *s)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p += utf8_char_len(p))
		n++;
	return n;
}

/* Copies whole characters of s while at most max of them and room (bytes) remain; returns bytes copied. */
static size_t copy_chars(const char *s, size_t max, char *out, size_t room)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0;
	for (size_t k = 0; *p && k < max; k++) {
		size_t l = utf8_char_len(p);
		if (o + l > room)
			break;
		memcpy(out + o, p, l);
		o += l;
		p += l;
	}
	return o;
}

const char *cli_clip(const char *s, int width, char *out, size_t outsz)
{
	if (outsz == 0)
		return "";
	size_t o;
	if (width < 4 || (utf8_chars(s) <= (size_t)width && strlen(s) < outsz)) {
		o = copy_chars(s, (size_t)-1, out, outsz - 1);
	} else {
		o = copy_chars(s, (size_t)width - 3, out, outsz > 4 ? outsz - 4 : 0);
		o += (size_t)snprintf(out + o, outsz - o, "%s", outsz - o > 3 ? "..." : "");
	}
	out[o] = '\0';
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	return out;
}

const char *cli_cell(const char *s, int width, char *out, size_t outsz)
{
	cli_clip(s, width, out, outsz);
	size_t n = utf8_chars(out), o = strlen(out);
	while (n++ < (size_t)width && o + 1 < outsz)
		out[o++] = ' ';
	out[o] = '\0';
	return out;
}
