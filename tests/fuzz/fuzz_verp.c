/*
 * fuzz_verp.c - libFuzzer harness for VERP return paths (mail/verp.c).
 * The input is an address as a bounce's recipient or a DSN's
 * Original-Recipient carries it: verp_decode() must refuse it or return a
 * positive recipient id, without reading past the string.  Then the
 * round trip: the input's first 8 octets as an id, encoded, must decode
 * to that id, and the same address with one octet of its token changed
 * must not (the HMAC).  The key is fixed, so seeds can be real tokens.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/verp.h"
#include "util/limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned char key[VERP_KEY_LEN] = "fuzz-verp-key-0123456789abcdefg";
static const char domain[] = "bounces.example.com";

static void round_trip(const uint8_t *data, size_t size)
{
	uint64_t raw = 0;
	for (size_t i = 0; i < 8 && i < size; i++)
		raw = (raw << 8) | data[i];
	int64_t id = (int64_t)(raw & (uint64_t)INT64_MAX);
	if (id == 0)
		return;
	char addr[MF_VERP_ADDRESS_MAX + 1];
	if (verp_encode(key, id, domain, addr, sizeof(addr)) != 0)
		abort();
	int64_t got = 0;
	if (verp_decode(key, addr, domain, &got) != 0 || got != id)
		abort();
	/* Change one octet of the token (not its last, whose low bits may be
	 * padding): the HMAC must catch it. */
	char *plus = strchr(addr, '+'), *at = strrchr(addr, '@');
	if (plus == NULL || at == NULL || at - plus < 3)
		abort();
	size_t k = size > 8 ? data[8] % (size_t)(at - plus - 2) : 0;
	char *c = plus + 1 + k;
	*c = *c == 'a' || *c == 'A' ? 'b' : 'a';
	got = 0;
	if (verp_decode(key, addr, domain, &got) == 0 && got == id)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 1024)
		return 0;
	char *s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	int64_t id = 0;
	if (verp_decode(key, s, domain, &id) == 0 && id <= 0)
		abort();
	free(s);
	round_trip(data, size);
	return 0;
}
