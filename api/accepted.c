/*
 * accepted.c - renders the 202 body of an accepted message (see
 * accepted.h).  Built as text straight into the answer's buffer, not with
 * jansson: this runs for every accepted message, and parsing and dumping
 * the items again was a sixth of the process's CPU for batches
 * (docs/benchmarks.md).
 */
#include "api/accepted.h"

#include <string.h>

#include "util/json_escape.h"

static void json_member(struct buf *b, const char *sep, const char *name, const char *value)
{
	buf_puts(b, sep);
	json_escape(b, name, strlen(name), 0);
	buf_putc(b, ':');
	json_escape(b, value, strlen(value), 0);
}

void api_accepted_put(struct buf *b, const char *id, const struct db_accepted *a, const struct db_rcpt_row *rcpts,
		      int nrcpts, int index)
{
	json_member(b, "{", "id", id);
	json_member(b, ",", "status", a->status ? a->status : "queued");
	json_member(b, ",", "created_at", a->created_at);
	buf_puts(b, ",\"recipients\":[");
	for (int r = 0; r < nrcpts; r++) {
		const char *st = a->rstatus && a->rstatus[r] ? a->rstatus[r] : "queued";
		json_member(b, r ? ",{" : "{", "email", rcpts[r].email);
		json_member(b, ",", "kind", rcpts[r].kind);
		json_member(b, ",", "status", st);
		buf_putc(b, '}');
	}
	buf_putc(b, ']');
	if (index >= 0)
		buf_printf(b, ",\"index\":%d", index);
	buf_putc(b, '}');
}
