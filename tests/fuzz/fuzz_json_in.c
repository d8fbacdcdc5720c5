/*
 * fuzz_json_in.c - libFuzzer harness for api/json_in.c, differential:
 * for every well-formed UTF-8 input, json_in_parse must give exactly what
 * json_loadb(..., JSON_REJECT_DUPLICATES) gives (same value and key
 * order, or the same error position); any difference aborts.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_problem p;
	json_t *a = validate_parse_json((const char *)data, size, &p);
	if (p.not_utf8)
		return 0;
	json_error_t je;
	json_t *b = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
	if ((a == NULL) != (b == NULL))
		abort();
	if (a == NULL) {
		if (p.position != (long)je.position || p.line != je.line || p.column != je.column)
			abort();
		return 0;
	}
	char *da = json_dumps(a, JSON_COMPACT | JSON_ENCODE_ANY);
	char *db = json_dumps(b, JSON_COMPACT | JSON_ENCODE_ANY);
	if (da == NULL || db == NULL || strcmp(da, db) != 0 || !json_equal(a, b))
		abort();
	free(da);
	free(db);
	json_decref(a);
	json_decref(b);
	return 0;
}
