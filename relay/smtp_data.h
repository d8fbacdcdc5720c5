/*
 * smtp_data.h - the DATA payload (RFC 5321 §4.5.2 and §2.3.8): CRLF line
 * ends everywhere (bare CR and bare LF become CRLF), a '.' that starts a
 * line is doubled, and the payload ends with CRLF "." CRLF.
 *
 * Streaming: feed the message in pieces of any size (a CR at the end of one
 * piece and an LF at the start of the next are one line end), then end.
 * Output is appended to a struct buf; -1 when it would exceed its maximum.
 */
#ifndef MF_RELAY_SMTP_DATA_H
#define MF_RELAY_SMTP_DATA_H

#include <stddef.h>

#include "util/buf.h"

struct smtp_dotstuff {
	int bol; /* at the beginning of a line */
	int cr;  /* the last byte seen was a CR not yet written */
};

void smtp_dotstuff_init(struct smtp_dotstuff *d);
int smtp_dotstuff_feed(struct smtp_dotstuff *d, const char *in, size_t len, struct buf *out);
/* Ends the last line if needed and appends the terminating ".\r\n". */
int smtp_dotstuff_end(struct smtp_dotstuff *d, struct buf *out);

/* 1 when the message has an octet above 127 (needs BODY=8BITMIME, RFC 6152). */
int smtp_data_is_8bit(const char *msg, size_t len);

#endif
