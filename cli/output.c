/*
 * output.c - shared output helpers of the operator commands (see output.h).
 */
#include "cli/output.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/config.h"

/* Escapes one byte for a JSON string into esc; returns its length. */
static int json_escape(unsigned char c, char esc[8])
{
	switch (c) {
	case '"': return snprintf(esc, 8, "\\\"");
	case '\\': return snprintf(esc, 8, "\\\\");
	case '\n': return snprintf(esc, 8, "\\n");
	case '\r': return snprintf(esc, 8, "\\r");
	case '\t': return snprintf(esc, 8, "\\t");
	default:
		if (c < 0x20)
			return snprintf(esc, 8, "\\u%04x", c);
		esc[0] = (char)c;
		esc[1] = '\0';
		return 1;
	}
}

void cli_json_str(FILE *out, const char *s)
{
	char esc[8];
	fputc('"', out);
	for (; s && *s; s++) {
		json_escape((unsigned char)*s, esc);
		fputs(esc, out);
	}
	fputc('"', out);
}

int cli_json_buf(struct buf *b, const char *s)
{
	char esc[8];
	if (buf_putc(b, '"') < 0)
		return -1;
	for (; s && *s; s++) {
		int n = json_escape((unsigned char)*s, esc);
		if (buf_append(b, esc, (size_t)n) < 0)
			return -1;
	}
	return buf_putc(b, '"');
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
	time_t t = time(NULL) - (time_t)secs;
	struct tm tm;
	gmtime_r(&t, &tm);
	return strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0 ? 0 : -1;
}

const char *cli_clip(const char *s, int width, char *out, size_t outsz)
{
	size_t n = strlen(s);
	if (width < 4 || n <= (size_t)width || outsz <= (size_t)width) {
		snprintf(out, outsz, "%s", s);
	} else {
		snprintf(out, outsz, "%.*s...", width - 3, s);
	}
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	return out;
}
