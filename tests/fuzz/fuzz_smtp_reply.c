/*
 * fuzz_smtp_reply.c - libFuzzer harness for the SMTP reply parser
 * (relay/smtp_reply.c): parse every reply in the input the way the client
 * reads pipelined replies, then render the text; checks the invariants
 * that the client relies on.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_reply r;
	smtp_reply_init(&r);
	size_t off = 0;
	while (off < size) {
		size_t used = 0;
		char err[256], text[512];
		enum smtp_parse p = smtp_reply_parse(&r, (const char *)data + off, size - off, &used,
						     err, sizeof(err));
		if (p != SMTP_PARSE_DONE)
			break;
		if (used == 0 || used > size - off || r.code < 200 || r.code > 559 || r.nlines < 1)
			abort();
		smtp_reply_text(&r, text, sizeof(text));
		if (strlen(text) >= sizeof(text))
			abort();
		if (r.enhanced[0] && r.enhanced[0] != (char)('0' + r.code / 100))
			abort();
		off += used;
	}
	smtp_reply_cleanup(&r);
	return 0;
}
