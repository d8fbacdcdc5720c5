/*
 * fuzz_http_head.c - libFuzzer harness for the HTTP request head judge
 * (api/head.c) that api/gate.c applies to every arrival of bytes.  For
 * every prefix of the input the verdict must be consistent with the whole:
 * once a prefix is complete or bad, every longer prefix is judged the same
 * (the gate judges again from the start on each arrival, so a verdict must
 * never change as bytes are added), and "too big" needs MF_API_HEAD_MAX
 * octets.  The input is copied into a buffer of its exact size.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/head.h"
#include "util/limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > MF_API_HEAD_MAX)
		return 0;
	char *b = malloc(size ? size : 1);
	if (b == NULL)
		return 0;
	memcpy(b, data, size);
	enum api_head whole = api_head_judge(b, size);
	if (whole == API_HEAD_TOO_BIG && size < MF_API_HEAD_MAX)
		abort();
	/* Prefixes: a final verdict never changes as bytes arrive.  Up to 64
	 * cut points, spread over the input, keep a run fast. */
	size_t step = size / 64 + 1;
	for (size_t n = 0; n <= size; n += step) {
		enum api_head v = api_head_judge(b, n);
		if ((v == API_HEAD_COMPLETE || v == API_HEAD_BAD) && v != whole)
			abort();
	}
	free(b);
	return 0;
}
