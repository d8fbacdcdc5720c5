/*
 * log.c - logfmt/JSON structured logging (see log.h).
 *
 * A call walks its format itself: literal text is copied, each conversion is
 * formatted on its own (vsnprintf of that one directive) and escaped for the
 * place it lands in (a bare value, a quoted value or free text), so the
 * logfmt line is unambiguous whatever the arguments hold.  For json output
 * that line is parsed back into key/value pairs.  Each call writes the whole
 * line with a single write(2), so lines from different threads never
 * interleave.  The settings are atomics: SIGHUP rewrites them while other
 * threads log.
 */
#include "util/log.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>

#include "util/buf.h"
#include "util/json_escape.h"
#include "util/limits.h"
#include "util/rfc3339.h"

static _Atomic int min_level = MF_LOG_INFO;
static _Atomic int json_output = 1;
static _Atomic int log_recipients = 0;

static const char *level_names[] = { "debug", "info", "warn", "error" };

void log_setup(enum mf_log_level level, int json)
{
	atomic_store(&min_level, (int)level);
	atomic_store(&json_output, json);
}

void log_set_recipients(int yes)
{
	atomic_store(&log_recipients, yes != 0);
}

int log_level_parse(const char *s, enum mf_log_level *out)
{
	for (int i = 0; i < 4; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum mf_log_level)i;
			return 0;
		}
	}
	return -1;
}

int log_enabled(enum mf_log_level level)
{
	return (int)level >= atomic_load_explicit(&min_level, memory_order_relaxed);
}

const char *log_rcpt(enum mf_log_level level, const char *addr)
{
	if (addr == NULL)
		return NULL;
	if (level == MF_LOG_DEBUG || atomic_load_explicit(&log_recipients, memory_order_relaxed))
		return addr;
	return NULL;
}

const char *log_rcpt_domain(const char *addr)
{
	if (addr == NULL || *addr == '\0')
		return "<>";
	const char *at = strrchr(addr, '@');
	if (at == NULL || at[1] == '\0')
		return "-";
	return at + 1;
}

const char *log_quote(char *out, size_t outsz, const char *s)
{
	int bare = *s != '\0';
	for (const char *p = s; *p; p++)
		if (*p == ' ' || *p == '"' || *p == '=' || (unsigned char)*p < 0x20)
			bare = 0;
	size_t o = 0;
	if (outsz == 0)
		return out;
	if (!bare && o + 1 < outsz)
		out[o++] = '"';
	for (const char *p = s; *p && o + 3 < outsz; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20) {
			out[o++] = '\\';
			out[o++] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
		} else {
			out[o++] = (char)c;
		}
	}
	if (!bare && o + 1 < outsz)
		out[o++] = '"';
	out[o] = '\0';
	return out;
}

/* A JSON number without exponent: -?(0|[1-9][0-9]*)(\.[0-9]+)? */
static int is_json_number(const char *s, size_t n)
{
	size_t i = 0;
	if (i < n && s[i] == '-')
		i++;
	if (i >= n || s[i] < '0' || s[i] > '9')
		return 0;
	if (s[i] == '0')
		i++;
	else
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
	if (i < n && s[i] == '.') {
		i++;
		if (i >= n || s[i] < '0' || s[i] > '9')
			return 0;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
	}
	return i == n;
}

/* Appends s[0..n-1] escaped for the inside of a quoted logfmt value. */
static void put_escaped(struct buf *b, const char *s, size_t n)
{
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			buf_putc(b, '\\');
			buf_putc(b, (char)c);
		} else if (c == '\n') {
			buf_puts(b, "\\n");
		} else if (c == '\r') {
			buf_puts(b, "\\r");
		} else if (c == '\t') {
			buf_puts(b, "\\t");
		} else if (c < 0x20 || c == 0x7f) {
			char esc[7] = { '\\', 'u', '0', '0', hx[c >> 4], hx[c & 15], 0 };
			buf_puts(b, esc);
		} else {
			buf_putc(b, (char)c);
		}
	}
}

static int needs_quotes(const char *s, size_t n)
{
	if (n == 0)
		return 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == ' ' || c == '"' || c == '=' || c == '\\' || c < 0x20 || c == 0x7f)
			return 1;
	}
	return 0;
}

enum fctx { F_KEY, F_BARE, F_QUOTED };

struct fline {
	struct buf *line;
	struct buf val;  /* the bare value being built */
	int val_str;     /* a string conversion went into val */
	int skip_space;  /* a pair was left out at the start of the line */
	enum fctx ctx;
};

static void flush_bare(struct fline *f)
{
	const char *v = buf_cstr(&f->val);
	if (needs_quotes(v, f->val.len) || (f->val_str && is_json_number(v, f->val.len))) {
		buf_putc(f->line, '"');
		put_escaped(f->line, v, f->val.len);
		buf_putc(f->line, '"');
	} else {
		buf_append(f->line, v, f->val.len);
	}
	buf_reset(&f->val);
	f->val_str = 0;
}

static void put_literal(struct fline *f, char c, const char **pp)
{
	switch (f->ctx) {
	case F_KEY:
		if (f->skip_space && c == ' ')
			break;
		f->skip_space = 0;
		buf_putc(f->line, c);
		if (c == '=') {
			if (**pp == '"') {
				buf_putc(f->line, '"');
				(*pp)++;
				f->ctx = F_QUOTED;
			} else {
				f->ctx = F_BARE;
			}
		}
		break;
	case F_BARE:
		if (c == ' ') {
			flush_bare(f);
			f->ctx = F_KEY;
			buf_putc(f->line, ' ');
		} else {
			buf_putc(&f->val, c);
		}
		break;
	case F_QUOTED:
		buf_putc(f->line, c);
		if (c == '\\' && **pp) {
			buf_putc(f->line, **pp);
			(*pp)++;
		} else if (c == '"') {
			f->ctx = F_KEY;
		}
		break;
	}
}

/* Leaves out the "key=" just written: its value is a NULL string. */
static void drop_pair(struct fline *f)
{
	struct buf *l = f->line;
	size_t i = l->len;
	if (l->data == NULL)
		return;
	while (i > 0 && l->data[i - 1] != ' ')
		i--;
	if (i > 0) {
		l->len = i - 1;
	} else {
		l->len = 0;
		f->skip_space = 1;
	}
	l->data[l->len] = '\0';
	f->ctx = F_KEY;
}

/* Places one converted argument (text t, or a NULL string) in the line. */
static void put_conv(struct fline *f, const char *t, size_t n, int is_str, int is_null, const char *next)
{
	if (is_null && f->ctx == F_BARE && f->val.len == 0 && (*next == ' ' || *next == '\0')) {
		drop_pair(f);
		return;
	}
	if (is_null) {
		t = "(null)";
		n = 6;
	}
	switch (f->ctx) {
	case F_KEY:
		/* Free text: nothing in it may start a key or a quoted value. */
		f->skip_space = 0;
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)t[i];
			buf_putc(f->line, (c == '=' || c == '"' || c < 0x20 || c == 0x7f) ? '_' : (char)c);
		}
		break;
	case F_BARE:
		buf_append(&f->val, t, n);
		f->val_str |= is_str;
		break;
	case F_QUOTED:
		put_escaped(f->line, t, n);
		break;
	}
}

/* Skips a width or precision at p[i]: digits, or '*' whose int argument
 * is taken from *ap into st[(*nst)++].  Returns the index after it. */
static size_t skip_count(const char *p, size_t i, va_list *ap, int *st, int *nst)
{
	if (p[i] == '*') {
		st[(*nst)++] = va_arg(*ap, int);
		return i + 1;
	}
	while (p[i] >= '0' && p[i] <= '9')
		i++;
	return i;
}

/*
 * Formats the one directive spec (e.g. "%-*.*ld") with its arguments from
 * *ap into t.  Sets *is_str for text conversions and *is_null for a NULL %s.
 * Returns the length of the directive in the format, or 0 when it is not
 * one we know (the rest of the format is then copied as text).
 */
static size_t format_directive(const char *p, struct buf *t, va_list *ap, int *is_str, int *is_null)
{
	char sp[32];
	int st[2], nst = 0;
	size_t i = 1;
	while (p[i] && strchr("-+ #0'", p[i]))
		i++;
	i = skip_count(p, i, ap, st, &nst); /* field width */
	if (p[i] == '.')
		i = skip_count(p, i + 1, ap, st, &nst); /* precision */
	int len = 0; /* 0 none, 1 hh, 2 h, 3 l, 4 ll, 5 z, 6 j, 7 t, 8 L */
	if (p[i] == 'h' && p[i + 1] == 'h') len = 1, i += 2;
	else if (p[i] == 'h') len = 2, i++;
	else if (p[i] == 'l' && p[i + 1] == 'l') len = 4, i += 2;
	else if (p[i] == 'l') len = 3, i++;
	else if (p[i] == 'q') len = 4, i++;
	else if (p[i] == 'z') len = 5, i++;
	else if (p[i] == 'j') len = 6, i++;
	else if (p[i] == 't') len = 7, i++;
	else if (p[i] == 'L') len = 8, i++;
	char conv = p[i];
	if (conv == '\0' || i + 2 > sizeof(sp))
		return 0;
	i++;
	memcpy(sp, p, i);
	sp[i] = '\0';
	*is_str = 0;
	*is_null = 0;

#define PUT(v)                                                  \
	do {                                                    \
		if (nst == 0)                                   \
			buf_printf(t, sp, v);                   \
		else if (nst == 1)                              \
			buf_printf(t, sp, st[0], v);            \
		else                                            \
			buf_printf(t, sp, st[0], st[1], v);     \
	} while (0)

	switch (conv) {
	case 'd': case 'i':
		switch (len) {
		case 3: PUT(va_arg(*ap, long)); break;
		case 4: PUT(va_arg(*ap, long long)); break;
		case 5: PUT(va_arg(*ap, ssize_t)); break;
		case 6: PUT(va_arg(*ap, intmax_t)); break;
		case 7: PUT(va_arg(*ap, ptrdiff_t)); break;
		default: PUT(va_arg(*ap, int)); break;
		}
		break;
	case 'u': case 'x': case 'X': case 'o':
		*is_str = conv != 'u';
		switch (len) {
		case 3: PUT(va_arg(*ap, unsigned long)); break;
		case 4: PUT(va_arg(*ap, unsigned long long)); break;
		case 5: PUT(va_arg(*ap, size_t)); break;
		case 6: PUT(va_arg(*ap, uintmax_t)); break;
		case 7: PUT(va_arg(*ap, ptrdiff_t)); break;
		default: PUT(va_arg(*ap, unsigned int)); break;
		}
		break;
	case 'f': case 'F': case 'e': case 'E': case 'g': case 'G': case 'a': case 'A':
		if (len == 8)
			PUT(va_arg(*ap, long double));
		else
			PUT(va_arg(*ap, double));
		break;
	case 'c':
		*is_str = 1;
		if (len == 3)
			PUT(va_arg(*ap, wint_t));
		else
			PUT(va_arg(*ap, int));
		break;
	case 's': {
		*is_str = 1;
		if (len == 3) {
			(void)va_arg(*ap, const wchar_t *);
			buf_puts(t, "?");
			break;
		}
		const char *s = va_arg(*ap, const char *);
		if (s == NULL)
			*is_null = 1;
		else
			PUT(s);
		break;
	}
	case 'p':
		*is_str = 1;
		PUT(va_arg(*ap, void *));
		break;
	default:
		return 0;
	}
#undef PUT
	return i;
}

/* Builds the escaped logfmt line for fmt and its arguments. */
static void format_line(struct buf *line, const char *fmt, va_list ap)
{
	struct fline f = { .line = line, .ctx = F_KEY };
	struct buf t;
	buf_init(&f.val, MF_LOG_LINE_MAX);
	buf_init(&t, MF_LOG_LINE_MAX);
	va_list aq;
	va_copy(aq, ap);
	const char *p = fmt;
	while (*p) {
		if (*p == '%' && p[1] == '%') {
			p += 2;
			put_literal(&f, '%', &p);
			continue;
		}
		if (*p == '%') {
			int is_str, is_null;
			buf_reset(&t);
			size_t n = format_directive(p, &t, &aq, &is_str, &is_null);
			if (n == 0) {
				/* Unknown directive: the rest is text, no argument is read. */
				while (*p) {
					char c = *p++;
					put_literal(&f, c, &p);
				}
				break;
			}
			p += n;
			put_conv(&f, buf_cstr(&t), t.len, is_str, is_null, p);
			continue;
		}
		char c = *p++;
		put_literal(&f, c, &p);
	}
	if (f.ctx == F_BARE)
		flush_bare(&f);
	else if (f.ctx == F_QUOTED)
		buf_putc(line, '"');
	va_end(aq);
	buf_cleanup(&f.val);
	buf_cleanup(&t);
}

/* Reads one logfmt value at *pp into out (unescaped); advances *pp.
 * Returns 1 when the value was quoted. */
static int logfmt_value(const char **pp, struct buf *out)
{
	const char *p = *pp;
	int quoted = *p == '"';
	if (quoted) {
		p++;
		while (*p && *p != '"') {
			if (*p == '\\' && p[1] == 'u' && p[2] == '0' && p[3] == '0' && p[4] && p[5]) {
				unsigned v = 0;
				for (int k = 4; k < 6; k++) {
					char h = p[k];
					v = v * 16 + (unsigned)(h >= 'a' ? h - 'a' + 10 : h >= 'A' ? h - 'A' + 10 : h - '0');
				}
				buf_putc(out, (char)(v & 0xff));
				p += 6;
				continue;
			}
			if (*p == '\\' && p[1]) {
				p++;
				buf_putc(out, *p == 'n' ? '\n' : *p == 'r' ? '\r' : *p == 't' ? '\t' : *p);
			} else {
				buf_putc(out, *p);
			}
			p++;
		}
		if (*p == '"')
			p++;
	} else {
		while (*p && *p != ' ')
			buf_putc(out, *p++);
	}
	*pp = p;
	return quoted;
}

/* Writes key as a JSON member name, with a _N suffix if already used. */
static void json_key(struct buf *b, struct buf *seen, const char *k, size_t klen)
{
	char name[160];
	int n = snprintf(name, sizeof(name), "%.*s", (int)(klen < 120 ? klen : 120), k);
	size_t base = (size_t)n;
	for (int i = 2;; i++) {
		char needle[180];
		snprintf(needle, sizeof(needle), "\n%s\n", name);
		if (strstr(buf_cstr(seen), needle) == NULL)
			break;
		snprintf(name + base, sizeof(name) - base, "_%d", i);
	}
	buf_puts(seen, name);
	buf_putc(seen, '\n');
	buf_putc(b, ',');
	json_escape(b, name, strlen(name), JSON_ESC_UTF8);
	buf_putc(b, ':');
}

/* Converts a logfmt line into JSON members; words without '=' join "msg". */
static void logfmt_to_json(struct buf *b, const char *line)
{
	struct buf val, msg, seen;
	buf_init(&val, MF_LOG_LINE_MAX);
	buf_init(&msg, MF_LOG_LINE_MAX);
	buf_init(&seen, MF_LOG_LINE_MAX);
	buf_puts(&seen, "\nts\nlevel\n");
	const char *p = line;
	while (*p) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		const char *k = p;
		while (*p && *p != '=' && *p != ' ')
			p++;
		if (*p != '=' || p == k) {
			if (msg.len)
				buf_putc(&msg, ' ');
			buf_append(&msg, k, (size_t)(p - k));
			if (*p == '=')
				p++;
			continue;
		}
		size_t klen = (size_t)(p - k);
		p++;
		buf_reset(&val);
		int quoted = logfmt_value(&p, &val);
		json_key(b, &seen, k, klen);
		if (!quoted && is_json_number(buf_cstr(&val), val.len))
			buf_append(b, val.data, val.len);
		else
			json_escape(b, buf_cstr(&val), val.len, JSON_ESC_UTF8);
	}
	if (msg.len) {
		json_key(b, &seen, "msg", 3);
		json_escape(b, buf_cstr(&msg), msg.len, JSON_ESC_UTF8);
	}
	buf_cleanup(&val);
	buf_cleanup(&msg);
	buf_cleanup(&seen);
}

static void emit(enum mf_log_level level, long suppressed, const char *fmt, va_list ap)
{
	if ((int)level < atomic_load_explicit(&min_level, memory_order_relaxed))
		return;
	char ts[RFC3339_LEN] = "";
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	rfc3339_format(now.tv_sec, now.tv_nsec / 1000000, ts, sizeof(ts));

	struct buf line, b;
	buf_init(&line, MF_LOG_LINE_MAX);
	/* JSON escaping at most sextuples a byte (\u00XX). */
	buf_init(&b, 6 * MF_LOG_LINE_MAX + 256);
	format_line(&line, fmt, ap);
	if (suppressed > 0) {
		char tail[48];
		snprintf(tail, sizeof(tail), " suppressed=%ld", suppressed);
		buf_puts(&line, tail);
	}
	if (atomic_load_explicit(&json_output, memory_order_relaxed)) {
		buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\"", ts, level_names[level]);
		logfmt_to_json(&b, buf_cstr(&line));
		buf_puts(&b, "}\n");
	} else {
		buf_printf(&b, "%s %s %s\n", ts, level_names[level], buf_cstr(&line));
	}
	ssize_t w = write(STDERR_FILENO, b.data, b.len);
	(void)w;
	buf_cleanup(&line);
	buf_cleanup(&b);
}

void log_vmsg(enum mf_log_level level, const char *fmt, va_list ap)
{
	emit(level, 0, fmt, ap);
}

void log_msg(enum mf_log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit(level, 0, fmt, ap);
	va_end(ap);
}

void log_msg_suppressed(enum mf_log_level level, long suppressed, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit(level, suppressed, fmt, ap);
	va_end(ap);
}
