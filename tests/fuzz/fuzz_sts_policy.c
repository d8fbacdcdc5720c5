/*
 * fuzz_sts_policy.c - libFuzzer harness for MTA-STS texts
 * (relay/sts_policy.c): the policy file parser (RFC 8461 §3.2) must accept
 * or refuse any input without reading past it, and what it accepts must
 * hold its invariants (mode known, max_age within the year, mx patterns
 * NUL-terminated and matching themselves); the TXT record parser (§3.1)
 * gets the same bytes as a string.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/sts_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy, so that ASan sees any read past the end. */
	char *text = malloc(size ? size : 1);
	if (size)
		memcpy(text, data, size);
	struct sts_policy p;
	char why[128];
	if (sts_policy_parse(text, size, &p, why, sizeof(why)) == 0) {
		if (p.mode > STS_MODE_ENFORCE || p.max_age < 0 || p.max_age > STS_MAX_AGE_MAX ||
		    p.nmx < 0 || p.nmx > STS_MX_MAX || (p.mode != STS_MODE_NONE && p.nmx == 0))
			abort();
		for (int i = 0; i < p.nmx; i++) {
			if (memchr(p.mx[i], '\0', sizeof(p.mx[i])) == NULL)
				abort();
			if (p.mx[i][0] != '*' && !sts_mx_match(&p, p.mx[i]))
				abort();
		}
	}
	free(text);
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	char id[STS_ID_MAX + 1];
	if (sts_txt_parse(s, id) == 0 && (strlen(id) == 0 || strlen(id) > STS_ID_MAX))
		abort();
	free(s);
	return 0;
}
