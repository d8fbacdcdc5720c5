/*
 * accepted.h - the 202 body of an accepted message (INTERFACE.md
 * "POST /v1/messages"), rendered from what db/accept.h returns.
 *
 * One function, which appends to a caller's buffer: POST /v1/messages
 * answers one body, POST /v1/messages/batch puts one per item into its
 * "data" array (with the item's "index"), and an Idempotency-Key replay
 * renders the original message the same way, so that it answers the
 * original body byte for byte.
 */
#ifndef MF_API_ACCEPTED_H
#define MF_API_ACCEPTED_H

#include "db/accept.h"
#include "util/buf.h"

/*
 * Appends {"id","status","created_at","recipients":[{"email","kind",
 * "status"}]} to b, recipients in request order (rcpts, nrcpts: the
 * request's, borrowed), statuses from a (NULL ones are "queued"); with
 * index >= 0, an "index" member last (batch items).
 */
void api_accepted_put(struct buf *b, const char *id, const struct db_accepted *a, const struct db_rcpt_row *rcpts,
		      int nrcpts, int index);

#endif
