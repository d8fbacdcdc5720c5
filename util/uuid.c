/*
 * uuid.c - UUIDv7 generation (see uuid.h).  Randomness from OpenSSL's
 * DRBG, drawn through util/rand.h's per-thread pool (getrandom(2) per id
 * was ~2% of the send path, RAND_bytes() per id more).
 */
#include "util/uuid.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/hex.h"
#include "util/rand.h"

void uuid_v7(char out[UUID_STR_LEN])
{
	unsigned char b[16];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
	rand_id_bytes(b + 6, 10);
	for (int i = 0; i < 6; i++)
		b[i] = (unsigned char)(ms >> (40 - 8 * i));
	b[6] = (unsigned char)(0x70 | (b[6] & 0x0f)); /* version 7 */
	b[8] = (unsigned char)(0x80 | (b[8] & 0x3f)); /* variant 10 */
	/* 8-4-4-4-12 hex digits (RFC 9562 §4). */
	static const int group[] = { 4, 2, 2, 2, 6 };
	char *o = out;
	const unsigned char *p = b;
	for (int g = 0; g < 5; g++) {
		if (g)
			*o++ = '-';
		hex_encode(p, (size_t)group[g], o);
		o += 2 * group[g];
		p += group[g];
	}
}

int uuid_valid(const char *s)
{
	if (strlen(s) != 36)
		return 0;
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i])) {
			return 0;
		}
	}
	return 1;
}
