/*
 * fuzz_validate.c - libFuzzer harness for the send path up to the stored
 * message: the raw bytes are a request body, parsed (UTF-8 check, JSON)
 * and validated into a struct mail_request; a valid request is composed
 * (mail/mime.c, with the word-at-a-time encoders of mail/encode.c) and
 * the composed message must keep mime.h's promises: CRLF line ends only,
 * no line over 998 octets, no bare CR or LF.  Build and run with
 * "make fuzz".
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/validate.h"
#include "mail/mime.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_composed(const char *m, size_t n)
{
	size_t col = 0;
	for (size_t i = 0; i < n; i++) {
		if (m[i] == '\r') {
			if (i + 1 >= n || m[i + 1] != '\n')
				abort(); /* a bare CR */
			i++;
			col = 0;
		} else if (m[i] == '\n') {
			abort(); /* a bare LF */
		} else if (++col > 998) {
			abort(); /* RFC 5322 §2.1.1 */
		}
	}
	if (n < 2 || memcmp(m + n - 2, "\r\n", 2) != 0)
		abort();
}

static void compose(const struct mail_request *r)
{
	struct mime_params p = { .message_id = "0190fuzz@mailferry.example", .date = 1700000000, .dkim = NULL };
	struct buf out;
	char err[256];
	buf_init(&out, 1 << 22);
	if (mime_compose(r, &p, &out, err, sizeof(err)) == 0)
		check_composed(out.data, out.len);
	buf_cleanup(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_problem p;
	json_t *root = validate_parse_json((const char *)data, size, &p);
	if (root == NULL)
		return 0;
	struct val_errors e;
	struct mail_request r;
	val_errors_init(&e);
	if (validate_send(root, &r, &e) == 0) {
		compose(&r);
		mail_request_cleanup(&r);
	}
	val_errors_cleanup(&e);
	json_decref(root);
	return 0;
}
