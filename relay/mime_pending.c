/*
 * mime_pending.c - TEMPORARY stand-in for mime_compose() (relay/mime.h)
 * until the real composer lands from the "mime" branch; delete this file
 * when merging it.  The definition is weak, so the real one wins at link
 * time even if both are present.  It is NOT a composer: it writes just
 * enough (Message-ID, Subject as given, the text body) for the API's
 * storage path and its tests to run, and refuses anything larger than
 * the output buffer allows.
 */
#include <stdio.h>

#include "relay/mime.h"

__attribute__((weak)) int mime_compose(const struct mail_request *req, const struct mime_params *p,
				       struct buf *out, char *err, size_t errlen)
{
	const char *body = req->text ? req->text : (req->html ? req->html : "");
	int rc = buf_printf(out, "Message-ID: <%s>\r\nSubject: %s\r\nMIME-Version: 1.0\r\n\r\n", p->message_id,
			    req->subject ? req->subject : "");
	if (rc == 0)
		rc = buf_puts(out, body);
	for (int i = 0; rc == 0 && i < req->natts; i++)
		rc = buf_append(out, req->atts[i].data, req->atts[i].len);
	if (rc < 0) {
		snprintf(err, errlen, "message exceeds the maximum size");
		return -1;
	}
	return 0;
}
