/*
 * log.h - structured logging to stderr, one line per event.
 *
 * Callers write a logfmt line with printf conversions in the values:
 *
 *	log_warn("event=db_error op=%s error=%s attempt=%d", op, err, n);
 *
 * The logger, not the caller, makes the line safe: every value that comes
 * from a conversion is escaped where it lands, so a string holding spaces,
 * '"', '=', '\\' or control characters stays one value of its key.
 *   - A bare value (`key=%s`) is written as is when it is safe, else quoted
 *     ("...", with \" \\ \n \r \t and \u00XX escapes).
 *   - Inside a quoted value of the format (`note="retrying %s"`) the string
 *     is escaped and the quotes are the format's.
 *   - A NULL string as a whole bare value (`key=%s`) leaves the pair out.
 * So never pass log_quote()'d strings to these functions (tests/lint.sh
 * refuses it): they would be escaped twice.
 *
 * Output: in text format the logfmt line follows a timestamp and the level.
 * In json format the line is one JSON object: "ts", "level", then one member
 * per key=value pair, in order, then "msg" for words without '=' (if any).
 * Types: a bare value that is a JSON integer or decimal (-12, 0, 3.25; no
 * exponent, no leading zero) becomes a JSON number; every other value, and
 * every quoted value, is a string.  A string conversion (%s, and %c %x %o %p)
 * is always a string: when its text would read as a number, it is quoted.
 * Numeric conversions (%d %i %u %f %g %e) are numbers.  Keys are unique: a
 * key that repeats an earlier one (or "ts", "level", "msg") is written with
 * a suffix, "key_2", "key_3", ...  Bytes that are not UTF-8 become U+FFFD.
 *
 * log_setup() and log_set_recipients() may be called at any time (SIGHUP
 * does); every function is thread-safe.  Never log API keys, SMTP AUTH
 * data, webhook secrets or message bodies.  Recipient addresses go through
 * LOG_RCPT_FMT/LOG_RCPT below, never straight into a line.
 */
#ifndef MF_LOG_H
#define MF_LOG_H

#include <stdarg.h>
#include <stddef.h>

#include "util/limits.h"
#include "util/ratelimit.h"

enum mf_log_level { MF_LOG_DEBUG, MF_LOG_INFO, MF_LOG_WARN, MF_LOG_ERROR };

void log_setup(enum mf_log_level level, int json);
/* log_recipients: yes lets lines at info and above carry full recipient
 * addresses (see log_rcpt); no (the default) keeps them to the domain. */
void log_set_recipients(int yes);
/* Returns 0 and sets *out when s names a level, else -1. */
int log_level_parse(const char *s, enum mf_log_level *out);
int log_enabled(enum mf_log_level level);
void log_msg(enum mf_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void log_vmsg(enum mf_log_level level, const char *fmt, va_list ap);
/* log_msg with " suppressed=N" appended when suppressed > 0 (log_limited). */
void log_msg_suppressed(enum mf_log_level level, long suppressed, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_debug(...) log_msg(MF_LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(MF_LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(MF_LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(MF_LOG_ERROR, __VA_ARGS__)

/*
 * A warning a loop repeats while something is down (the database): each
 * call site logs at most once per MF_LOG_REPEAT_MS, and the line it logs
 * carries suppressed=N, the number of lines it dropped since the last one.
 */
#define log_limited(level, ...)                                                  \
	do {                                                                     \
		static struct ratelimit log_rl_ = RATELIMIT_INIT(MF_LOG_REPEAT_MS); \
		long log_sup_ = ratelimit_pass(&log_rl_);                        \
		if (log_sup_ >= 0)                                               \
			log_msg_suppressed((level), log_sup_, __VA_ARGS__);      \
	} while (0)
#define log_warn_limited(...) log_limited(MF_LOG_WARN, __VA_ARGS__)
#define log_error_limited(...) log_limited(MF_LOG_ERROR, __VA_ARGS__)

/*
 * Recipient addresses (docs/operations.md "Logs").  A line logged at debug,
 * or at any level with log_recipients = yes, carries rcpt=ADDRESS and
 * rcpt_domain=DOMAIN; any other line carries rcpt_domain=DOMAIN only:
 *
 *	log_info("event=x msg_id=%s " LOG_RCPT_FMT, id, LOG_RCPT(MF_LOG_INFO, addr));
 *
 * log_rcpt() returns addr when the level allows the full address, else NULL
 * (the logger leaves the pair out); log_rcpt_domain() the part after the
 * last '@' (the whole string when it has none; "<>" for an empty one).
 */
#define LOG_RCPT_FMT "rcpt=%s rcpt_domain=%s"
#define LOG_RCPT(level, addr) log_rcpt((level), (addr)), log_rcpt_domain(addr)
const char *log_rcpt(enum mf_log_level level, const char *addr);
const char *log_rcpt_domain(const char *addr);

/*
 * Writes s into out as a logfmt value: bare when it has no space, quote,
 * '=' or control character, else quoted with escapes.  Truncates to outsz.
 * For text built outside the logger; log lines escape their own values.
 */
const char *log_quote(char *out, size_t outsz, const char *s);

#endif
