/*
 * Unit tests for mail/verp.c: the VERP return path round-trips, resists
 * tampering, is bound to the bounce domain, survives case folding and
 * stays within the 64-octet local part.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mail/verp.h"
#include "util/limits.h"

static const unsigned char key[VERP_KEY_LEN] = "0123456789abcdef0123456789abcdef";
static const unsigned char key2[VERP_KEY_LEN] = "fedcba9876543210fedcba9876543210";

Test(verp, round_trip)
{
	const int64_t ids[] = { 1, 2, 255, 256, 65535, 123456789, (int64_t)1 << 40, INT64_MAX };
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		char addr[MF_VERP_ADDRESS_MAX];
		cr_assert_eq(verp_encode(key, ids[i], "bounces.example.com", addr, sizeof(addr)), 0);
		cr_assert(strncmp(addr, "bounce+", 7) == 0, "%s", addr);
		cr_assert(strstr(addr, "@bounces.example.com") != NULL, "%s", addr);
		int64_t got = 0;
		cr_assert_eq(verp_decode(key, addr, "bounces.example.com", &got), 0, "%s", addr);
		cr_assert_eq(got, ids[i]);
		/* Angle brackets, as in a Final-Recipient or envelope, are fine. */
		char br[MF_VERP_ADDRESS_MAX + 2];
		snprintf(br, sizeof(br), "<%s>", addr);
		got = 0;
		cr_assert_eq(verp_decode(key, br, "bounces.example.com", &got), 0);
		cr_assert_eq(got, ids[i]);
	}
}

Test(verp, distinct_ids_give_distinct_tokens)
{
	char a[MF_VERP_ADDRESS_MAX], b[MF_VERP_ADDRESS_MAX];
	cr_assert_eq(verp_encode(key, 41, "b.example", a, sizeof(a)), 0);
	cr_assert_eq(verp_encode(key, 42, "b.example", b, sizeof(b)), 0);
	cr_assert_str_neq(a, b);
	cr_assert_eq(verp_encode(key2, 41, "b.example", b, sizeof(b)), 0);
	cr_assert_str_neq(a, b, "the key must change the token");
}

Test(verp, tampered_token_fails)
{
	char addr[MF_VERP_ADDRESS_MAX];
	cr_assert_eq(verp_encode(key, 987654, "b.example", addr, sizeof(addr)), 0);
	char *at = strchr(addr, '@');
	/* Change every token character in turn to another base32 character. */
	for (char *p = addr + 7; p < at; p++) {
		char saved = *p;
		*p = (saved == 'a') ? 'b' : 'a';
		int64_t got = 0;
		cr_assert_neq(verp_decode(key, addr, "b.example", &got), 0, "tampered %s verified", addr);
		*p = saved;
	}
	/* A token made with another key does not verify. */
	int64_t got = 0;
	cr_assert_neq(verp_decode(key2, addr, "b.example", &got), 0);
	/* Truncated and extended tokens do not verify. */
	char shorter[MF_VERP_ADDRESS_MAX];
	snprintf(shorter, sizeof(shorter), "%.*s%s", (int)(at - addr - 1), addr, at);
	cr_assert_neq(verp_decode(key, shorter, "b.example", &got), 0);
	char longer[MF_VERP_ADDRESS_MAX + 8];
	snprintf(longer, sizeof(longer), "%.*saa%s", (int)(at - addr), addr, at);
	cr_assert_neq(verp_decode(key, longer, "b.example", &got), 0);
}

Test(verp, wrong_domain_fails)
{
	char addr[MF_VERP_ADDRESS_MAX];
	cr_assert_eq(verp_encode(key, 77, "bounces.example.com", addr, sizeof(addr)), 0);
	int64_t got = 0;
	cr_assert_neq(verp_decode(key, addr, "example.com", &got), 0);
	cr_assert_neq(verp_decode(key, addr, "bounces.example.co", &got), 0);
	cr_assert_neq(verp_decode(key, addr, "xbounces.example.com", &got), 0);
}

Test(verp, case_folded_token_verifies)
{
	char addr[MF_VERP_ADDRESS_MAX];
	cr_assert_eq(verp_encode(key, 5551212, "Bounces.Example.com", addr, sizeof(addr)), 0);
	for (char *p = addr; *p; p++)
		*p = (char)toupper((unsigned char)*p);
	int64_t got = 0;
	cr_assert_eq(verp_decode(key, addr, "bounces.example.com", &got), 0, "%s", addr);
	cr_assert_eq(got, 5551212);
	for (char *p = addr; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	cr_assert_eq(verp_decode(key, addr, "BOUNCES.EXAMPLE.COM", &got), 0, "%s", addr);
}

Test(verp, length_limit)
{
	char addr[MF_VERP_ADDRESS_MAX];
	cr_assert_eq(verp_encode(key, INT64_MAX, "b.example", addr, sizeof(addr)), 0);
	size_t local = (size_t)(strchr(addr, '@') - addr);
	cr_assert_leq(local, MF_LOCAL_PART_MAX, "local part %zu octets: %s", local, addr);
	/* The output buffer must hold the whole address. */
	char small[16];
	cr_assert_eq(verp_encode(key, 1, "b.example", small, sizeof(small)), -1);
	cr_assert_eq(verp_encode(key, 1, "b.example", addr, strlen("bounce+") + 5), -1);
	/* Ids must be positive; domains must be present and not too long. */
	cr_assert_eq(verp_encode(key, 0, "b.example", addr, sizeof(addr)), -1);
	cr_assert_eq(verp_encode(key, -5, "b.example", addr, sizeof(addr)), -1);
	cr_assert_eq(verp_encode(key, 1, "", addr, sizeof(addr)), -1);
	char longdom[MF_DOMAIN_MAX + 10];
	memset(longdom, 'a', sizeof(longdom) - 1);
	longdom[sizeof(longdom) - 1] = '\0';
	cr_assert_eq(verp_encode(key, 1, longdom, addr, sizeof(addr)), -1);
	/* An over-long local part is refused before any decoding. */
	char big[200];
	snprintf(big, sizeof(big), "bounce+%0100d@b.example", 0);
	int64_t got;
	cr_assert_eq(verp_decode(key, big, "b.example", &got), -1);
}

Test(verp, not_a_verp_address)
{
	int64_t got = 0;
	const char *bad[] = { "", "@b.example", "user@b.example", "bounce+@b.example", "bounce@b.example",
			      "bounce+!!!!@b.example", "bounce+aaaa", "bounce+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@b.example",
			      "bounce+0189@b.example" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(verp_decode(key, bad[i], "b.example", &got), -1, "%s", bad[i]);
	cr_assert_eq(verp_decode(key, NULL, "b.example", &got), -1);
}
