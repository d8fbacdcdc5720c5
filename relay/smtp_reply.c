/*
 * smtp_reply.c - SMTP reply parser (see smtp_reply.h).
 *
 * RFC 5321 §4.2: a reply is a three-digit code, then SP (last line) or "-"
 * (more lines follow), then text.  §4.2.1 restricts the first digit to 2-5
 * and the second to 0-5.  We also accept a bare "CCC" line (§4.2 allows the
 * text to be empty) and a bare LF line end, which real servers send.
 */
#include "relay/smtp_reply.h"

#include <stdio.h>
#include <string.h>

#include "util/limits.h"

void smtp_reply_init(struct smtp_reply *r)
{
	r->code = 0;
	r->enhanced[0] = '\0';
	r->nlines = 0;
	buf_init(&r->lines, MF_SMTP_REPLY_MAX);
}

void smtp_reply_cleanup(struct smtp_reply *r)
{
	buf_cleanup(&r->lines);
}

void smtp_reply_reset(struct smtp_reply *r)
{
	r->code = 0;
	r->enhanced[0] = '\0';
	r->nlines = 0;
	buf_reset(&r->lines);
}

/* Counts 1..3 digits at s; returns how many, 0 when none or too many. */
static size_t digits(const char *s)
{
	size_t n = 0;
	while (s[n] >= '0' && s[n] <= '9')
		n++;
	return n >= 1 && n <= 3 ? n : 0;
}

size_t smtp_enhanced_code(const char *s, char cls, char *out, size_t outsz)
{
	/* RFC 3463 §3.1: the class is 2 (success), 4 or 5. */
	if ((cls != '2' && cls != '4' && cls != '5') || s[0] != cls || s[1] != '.')
		return 0;
	size_t a = digits(s + 2);
	if (a == 0 || s[2 + a] != '.')
		return 0;
	size_t b = digits(s + 3 + a);
	if (b == 0)
		return 0;
	size_t n = 3 + a + b;
	/* The code is a word of its own: followed by a space or the line's end. */
	if (s[n] != ' ' && s[n] != '\0' && s[n] != '\n')
		return 0;
	if (n >= outsz)
		return 0;
	memcpy(out, s, n);
	out[n] = '\0';
	return n;
}

/* Checks one line (without its line end) and appends its text to r.
 * Returns 1 when it was the last line, 0 when more follow, -1 on error. */
static int add_line(struct smtp_reply *r, const char *p, size_t n, char *err, size_t errlen)
{
	if (n < 3 || p[0] < '2' || p[0] > '5' || p[1] < '0' || p[1] > '5' || p[2] < '0' ||
	    p[2] > '9') {
		snprintf(err, errlen, "malformed reply line (no reply code)");
		return -1;
	}
	if (n > 3 && p[3] != ' ' && p[3] != '-') {
		snprintf(err, errlen, "malformed reply line (code not followed by space or '-')");
		return -1;
	}
	int code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
	if (r->nlines > 0 && code != r->code) {
		snprintf(err, errlen, "multiline reply changes code from %d to %d", r->code, code);
		return -1;
	}
	for (size_t i = 3; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			snprintf(err, errlen, "control character 0x%02x in reply", c);
			return -1;
		}
	}
	const char *text = n > 4 ? p + 4 : "";
	size_t tlen = n > 4 ? n - 4 : 0;
	if (buf_append(&r->lines, text, tlen) < 0 || buf_putc(&r->lines, '\n') < 0) {
		snprintf(err, errlen, "reply longer than %d octets", MF_SMTP_REPLY_MAX);
		return -1;
	}
	if (r->nlines == 0) {
		r->code = code;
		/* RFC 2034 §4: the enhanced code starts the text of every line;
		 * a code whose class differs from the reply's is not one. */
		char tmp[MF_SMTP_LINE_MAX + 1];
		snprintf(tmp, sizeof(tmp), "%.*s", (int)tlen, text);
		if (smtp_enhanced_code(tmp, p[0], r->enhanced, sizeof(r->enhanced)) == 0)
			r->enhanced[0] = '\0';
	}
	r->nlines++;
	return n == 3 || p[3] == ' ';
}

enum smtp_parse smtp_reply_parse(struct smtp_reply *r, const char *data, size_t len,
				 size_t *consumed, char *err, size_t errlen)
{
	size_t off = 0;
	smtp_reply_reset(r);
	*consumed = 0;
	for (;;) {
		const char *nl = memchr(data + off, '\n', len - off);
		size_t avail = nl ? (size_t)(nl - (data + off)) + 1 : len - off;
		/* RFC 5321 §4.5.3.1.5 allows 512 octets; we tolerate up to a text
		 * line's MF_SMTP_LINE_MAX and refuse longer ones before buffering them. */
		if (avail > MF_SMTP_LINE_MAX) {
			snprintf(err, errlen, "reply line longer than %d octets", MF_SMTP_LINE_MAX);
			smtp_reply_reset(r);
			return SMTP_PARSE_ERROR;
		}
		if (!nl) {
			smtp_reply_reset(r);
			return SMTP_PARSE_MORE;
		}
		size_t n = avail - 1;
		if (n > 0 && data[off + n - 1] == '\r')
			n--;
		if (memchr(data + off, '\0', n)) {
			snprintf(err, errlen, "NUL in reply");
			smtp_reply_reset(r);
			return SMTP_PARSE_ERROR;
		}
		int last = add_line(r, data + off, n, err, errlen);
		if (last < 0) {
			smtp_reply_reset(r);
			return SMTP_PARSE_ERROR;
		}
		off += avail;
		if (last) {
			*consumed = off;
			return SMTP_PARSE_DONE;
		}
	}
}

const char *smtp_reply_text(const struct smtp_reply *r, char *out, size_t outsz)
{
	size_t o = 0;
	const char *p = r->lines.data ? r->lines.data : "";
	char cls = (char)('0' + r->code / 100);
	if (outsz == 0)
		return out;
	out[0] = '\0';
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		char tmp[MF_SMTP_LINE_MAX + 1];
		snprintf(tmp, sizeof(tmp), "%.*s", (int)n, p);
		char code[16];
		size_t skip = smtp_enhanced_code(tmp, cls, code, sizeof(code));
		const char *t = tmp + skip;
		while (*t == ' ')
			t++;
		if (*t) {
			int w = snprintf(out + o, outsz - o, "%s%s", o ? " " : "", t);
			if (w < 0 || (size_t)w >= outsz - o) {
				o = outsz - 1;
				break;
			}
			o += (size_t)w;
		}
		p = nl ? nl + 1 : p + n;
	}
	out[o] = '\0';
	return out;
}
