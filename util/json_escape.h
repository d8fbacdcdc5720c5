/*
 * json_escape.h - the one JSON string writer (RFC 8259 §7).
 *
 * json_escape() appends s[0..n) as a quoted JSON string: '"' and '\'
 * are escaped with a backslash, every other control character (below
 * U+0020) as \u00XX with lower-case hex, and all other bytes are copied,
 * so UTF-8 passes through as it is.  Flags choose what some callers
 * have always written:
 *   JSON_ESC_SHORT  LF, CR and HT as \n, \r and \t (the CLI's output);
 *   JSON_ESC_UTF8   a byte that does not start a well-formed UTF-8
 *                   sequence (RFC 3629 §4) becomes U+FFFD (RFC 8259
 *                   §8.1; the JSON log lines).
 * Returns 0, or -1 when the buffer's maximum would be passed (it may then
 * hold part of the string; the caller discards it).
 */
#ifndef MF_UTIL_JSON_ESCAPE_H
#define MF_UTIL_JSON_ESCAPE_H

#include <stddef.h>

#include "util/buf.h"

enum json_escape_flags {
	JSON_ESC_SHORT = 1 << 0,
	JSON_ESC_UTF8 = 1 << 1,
};

int json_escape(struct buf *b, const char *s, size_t n, unsigned flags);

#endif
