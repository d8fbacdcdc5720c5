/*
 * smtp_data.c - dot-stuffing and line-end normalisation for DATA (see
 * smtp_data.h).  RFC 5321 §4.5.2: "Before sending a line of mail text, the
 * SMTP client checks the first character of the line.  If it is a period,
 * one additional period is inserted at the beginning of the line."
 * §2.3.8: lines end in CRLF only; a bare CR or LF must not be sent.
 */
#include "relay/smtp_data.h"

#include <string.h>

void smtp_dotstuff_init(struct smtp_dotstuff *d)
{
	d->bol = 1;
	d->cr = 0;
}

int smtp_dotstuff_feed(struct smtp_dotstuff *d, const char *in, size_t len, struct buf *out)
{
	size_t run = 0; /* start of the pending run of plain bytes */
	for (size_t i = 0; i < len; i++) {
		char ch = in[i];
		if (d->cr) {
			/* CR then anything: one line end (CR LF counts once). */
			d->cr = 0;
			d->bol = 1;
			if (buf_append(out, "\r\n", 2) < 0)
				return -1;
			if (ch == '\n') {
				run = i + 1;
				continue;
			}
		}
		if (ch == '\r' || ch == '\n') {
			if (buf_append(out, in + run, i - run) < 0)
				return -1;
			run = i + 1;
			if (ch == '\r') {
				d->cr = 1;
			} else {
				if (buf_append(out, "\r\n", 2) < 0)
					return -1;
				d->bol = 1;
			}
			continue;
		}
		if (d->bol && ch == '.') {
			if (buf_append(out, in + run, i - run) < 0 || buf_putc(out, '.') < 0)
				return -1;
			run = i;
		}
		d->bol = 0;
	}
	return buf_append(out, in + run, len - run);
}

int smtp_dotstuff_end(struct smtp_dotstuff *d, struct buf *out)
{
	if (d->cr) {
		d->cr = 0;
		d->bol = 1;
		if (buf_append(out, "\r\n", 2) < 0)
			return -1;
	}
	if (!d->bol && buf_append(out, "\r\n", 2) < 0)
		return -1;
	d->bol = 1;
	return buf_append(out, ".\r\n", 3);
}

int smtp_data_is_8bit(const char *msg, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)msg[i] & 0x80)
			return 1;
	return 0;
}
