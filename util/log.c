/*
 * log.c - logfmt/JSON structured logging (see log.h).
 *
 * Each call formats the whole line into a local buffer and writes it with a
 * single write(2), so lines from different threads never interleave.
 */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

static enum mf_log_level min_level = MF_LOG_INFO;
static int json_output = 1;

static const char *level_names[] = { "debug", "info", "warn", "error" };

void log_setup(enum mf_log_level level, int json)
{
	min_level = level;
	json_output = json;
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
	return level >= min_level;
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

/* Reads one logfmt value at *pp into out (unescaped); advances *pp. */
static void logfmt_value(const char **pp, struct buf *out)
{
	const char *p = *pp;
	if (*p == '"') {
		p++;
		while (*p && *p != '"') {
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
}

/* Converts a logfmt line into JSON members; words without '=' join "msg". */
static void logfmt_to_json(struct buf *b, const char *line)
{
	struct buf val, msg;
	buf_init(&val, 1 << 20);
	buf_init(&msg, 1 << 20);
	const char *p = line;
	while (*p) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		const char *k = p;
		while (*p && *p != '=' && *p != ' ')
			p++;
		if (*p != '=') {
			if (msg.len)
				buf_putc(&msg, ' ');
			buf_append(&msg, k, (size_t)(p - k));
			continue;
		}
		size_t klen = (size_t)(p - k);
		p++;
		buf_reset(&val);
		logfmt_value(&p, &val);
		buf_putc(b, ',');
		buf_put_json_string(b, k, klen);
		buf_putc(b, ':');
		buf_put_json_string(b, buf_cstr(&val), val.len);
	}
	if (msg.len) {
		buf_puts(b, ",\"msg\":");
		buf_put_json_string(b, buf_cstr(&msg), msg.len);
	}
	buf_cleanup(&val);
	buf_cleanup(&msg);
}

void log_vmsg(enum mf_log_level level, const char *fmt, va_list ap)
{
	if (level < min_level)
		return;
	char ts[64];
	struct timespec now;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);

	struct buf line, b;
	buf_init(&line, 1 << 20);
	buf_init(&b, 2 << 20);
	buf_vprintf(&line, fmt, ap);
	if (json_output) {
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

void log_msg(enum mf_log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}
