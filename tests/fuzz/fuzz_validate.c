/*
 * fuzz_validate.c - libFuzzer harness for the send request validator:
 * the raw bytes are a request body, parsed (UTF-8 check, JSON) and
 * validated into a struct mail_request, which is then released.
 * Build and run with "make fuzz".
 */
#include <stddef.h>
#include <stdint.h>

#include "api/validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_problem p;
	json_t *root = validate_parse_json((const char *)data, size, &p);
	if (root == NULL)
		return 0;
	struct val_errors e;
	struct mail_request r;
	val_errors_init(&e);
	if (validate_send(root, &r, &e) == 0)
		mail_request_cleanup(&r);
	val_errors_cleanup(&e);
	json_decref(root);
	return 0;
}
