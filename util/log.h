/*
 * log.h - structured logging to stderr, one line per event.
 *
 * Callers write a logfmt line: "event=name key=value key2=\"quoted value\"".
 * In text format the line is printed as is after a timestamp and the level;
 * in json format every key=value pair becomes a JSON member.  log_setup() is
 * called once at start-up; the functions are thread-safe.  Never log API
 * keys, SMTP AUTH data, webhook secrets or message bodies.
 */
#ifndef MF_LOG_H
#define MF_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum mf_log_level { MF_LOG_DEBUG, MF_LOG_INFO, MF_LOG_WARN, MF_LOG_ERROR };

void log_setup(enum mf_log_level level, int json);
/* Returns 0 and sets *out when s names a level, else -1. */
int log_level_parse(const char *s, enum mf_log_level *out);
int log_enabled(enum mf_log_level level);
void log_msg(enum mf_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void log_vmsg(enum mf_log_level level, const char *fmt, va_list ap);

#define log_debug(...) log_msg(MF_LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(MF_LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(MF_LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(MF_LOG_ERROR, __VA_ARGS__)

/*
 * Writes s into out as a logfmt value: bare when it has no space, quote,
 * '=' or control character, else quoted with escapes.  Truncates to outsz.
 */
const char *log_quote(char *out, size_t outsz, const char *s);

#endif
