/*
 * test_uuid.c - UUIDv7 form (RFC 9562 §5.7) and uuid_valid().
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/uuid.h"

Test(uuid, v7_form_version_variant_and_time)
{
	char a[UUID_STR_LEN], b[UUID_STR_LEN];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	unsigned long long ms = (unsigned long long)ts.tv_sec * 1000u + (unsigned long long)ts.tv_nsec / 1000000u;
	uuid_v7(a);
	cr_assert_eq(strlen(a), 36);
	cr_assert(uuid_valid(a), "%s", a);
	cr_assert_eq(a[8], '-');
	cr_assert_eq(a[13], '-');
	cr_assert_eq(a[14], '7', "version: %s", a);
	cr_assert(strchr("89ab", a[19]) != NULL, "variant: %s", a);
	/* The first 48 bits are the Unix time in milliseconds. */
	char hexms[13];
	memcpy(hexms, a, 8);
	memcpy(hexms + 8, a + 9, 4);
	hexms[12] = '\0';
	unsigned long long got = strtoull(hexms, NULL, 16);
	cr_assert(got >= ms && got <= ms + 1000, "%llu vs %llu", got, ms);
	uuid_v7(b);
	cr_assert_neq(strcmp(a, b), 0);
	cr_assert(strncmp(a, b, 8) <= 0, "time-ordered: %s %s", a, b);
}

Test(uuid, valid_refuses_malformed)
{
	cr_assert(uuid_valid("01a2269e-964d-77e0-93ba-e9a76a4e7e9b"));
	cr_assert_not(uuid_valid("01A2269E-964D-77E0-93BA-E9A76A4E7E9B"));
	cr_assert_not(uuid_valid("01a2269e964d77e093bae9a76a4e7e9b"));
	cr_assert_not(uuid_valid("01a2269e-964d-77e0-93ba-e9a76a4e7e9"));
	cr_assert_not(uuid_valid("01a2269e-964d-77e0-93ba-e9a76a4e7e9g"));
	cr_assert_not(uuid_valid(""));
}
