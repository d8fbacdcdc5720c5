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
	const struct dkim_signer *dkim2; /* a second signature (a sending domain's
					  * RSA key beside its Ed25519 one, RFC 8463
					  * §1); only with dkim */
};

/* What mime_compose() returns: MIME_OK, or the class of its failure. */
enum mime_status {
	MIME_OK = 0,
	MIME_TOO_BIG,  /* the message exceeds out's maximum size */
	MIME_INVALID,  /* the request holds what no message may (a reserved or
			* malformed header, a bad attachment type / id / filename,
			* a bad address or Message-ID, a line break in the subject) */
	MIME_INTERNAL, /* the composer's own limit or fault (parts, boundary,
			* line length, DKIM signing) */
};

/*
 * Appends the composed message (CRLF line ends, no line over
 * MF_MIME_LINE_MAX octets, Bcc never in the headers) to out.  Returns
 * MIME_OK, or a failure class with its detail text in err; out is then as
 * it was.  Callers decide on the class, never on the text.
 */
enum mime_status mime_compose(const struct mail_request *req, const struct mime_params *p, struct buf *out,
			      char *err, size_t errlen);

#endif
