/*
 * mime.h - composing the RFC 5322 message from a validated mail_request
 * (RFC 5322, 2045-2047, 2231).  Done once, at accept time; delivery sends
 * the stored bytes unchanged.
 */
#ifndef MF_MAIL_MIME_H
#define MF_MAIL_MIME_H

#include <stddef.h>
#include <time.h>

#include "mail/mailreq.h"
#include "util/buf.h"

struct dkim_signer;

struct mime_params {
	const char *message_id;          /* without <>, e.g. "0190...@example.com" */
	time_t date;                     /* Date: header */
	const struct dkim_signer *dkim;  /* NULL: unsigned */
};

/*
 * Appends the composed message (CRLF line ends, no line over
 * MF_MIME_LINE_MAX octets,
 * Bcc never in the headers) to out.  Returns 0, or -1 with err set (e.g.
 * the message exceeds out's maximum size).
 */
int mime_compose(const struct mail_request *req, const struct mime_params *p, struct buf *out,
		 char *err, size_t errlen);

#endif
