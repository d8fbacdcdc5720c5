/*
 * smtp_reply.h - parsing SMTP replies (RFC 5321 §4.2) with enhanced status
 * codes (RFC 3463, RFC 2034).
 *
 * A reply is one or more lines "CCC-text" ending with a line "CCC text"
 * (or a bare "CCC").  smtp_reply_parse() takes bytes as they arrived and
 * reports whether a complete reply is at their start.  Every line must
 * carry the same code; lines longer than MF_SMTP_LINE_MAX, replies longer
 * than MF_SMTP_REPLY_MAX and anything not shaped like a reply are errors
 * (the session cannot be trusted after them).
 *
 * A struct smtp_reply is embedded by its owner: smtp_reply_init() /
 * smtp_reply_cleanup().  Its text is owned by the struct.
 */
#ifndef MF_RELAY_SMTP_REPLY_H
#define MF_RELAY_SMTP_REPLY_H

#include <stddef.h>

#include "util/buf.h"

struct smtp_reply {
	int code;          /* 200..599 */
	char enhanced[16]; /* "2.1.5" from the first line, "" when absent */
	int nlines;
	struct buf lines;  /* the lines' text after "CCC-", each ending in '\n' */
};

enum smtp_parse { SMTP_PARSE_ERROR = -1, SMTP_PARSE_MORE = 0, SMTP_PARSE_DONE = 1 };

void smtp_reply_init(struct smtp_reply *r);
void smtp_reply_cleanup(struct smtp_reply *r);
void smtp_reply_reset(struct smtp_reply *r);

/*
 * Parses one reply at the start of data[0..len).  SMTP_PARSE_DONE: r holds
 * it and *consumed the bytes it took (more replies may follow, e.g. when
 * pipelining).  SMTP_PARSE_MORE: the reply is not complete yet (r is
 * reset).  SMTP_PARSE_ERROR: err says why.
 */
enum smtp_parse smtp_reply_parse(struct smtp_reply *r, const char *data, size_t len,
				 size_t *consumed, char *err, size_t errlen);

/*
 * Writes the enhanced status code at the start of s ("5.1.1 text") into
 * out and returns its length, or 0 when s does not start with one whose
 * class is cls ('2', '4' or '5').  RFC 3463 §2: class.subject.detail, the
 * subject and detail 1 to 3 digits.
 */
size_t smtp_enhanced_code(const char *s, char cls, char *out, size_t outsz);

/* Joins the lines, without their enhanced codes, with single spaces into
 * out (truncated to outsz).  Returns out. */
const char *smtp_reply_text(const struct smtp_reply *r, char *out, size_t outsz);

#endif
