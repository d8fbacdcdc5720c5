/*
 * verp.c - VERP return paths (see verp.h).
 *
 * The address is  bounce+TOKEN@domain  where TOKEN is the lower-case
 * base32 (RFC 4648 §6 alphabet, no padding) of
 *     ID || MAC
 * ID is the recipient row id in big-endian with leading zero bytes dropped
 * (1..8 bytes) and MAC the first VERP_MAC_LEN bytes of
 * HMAC-SHA256(key, "mfverp1" || 8-byte big-endian id).  The decoder learns
 * the id length from the token length, so no separator is needed.  At most
 * 18 bytes -> 29 characters, so the local part stays at 36 octets, well
 * inside RFC 5321 §4.5.3.1.1's MF_LOCAL_PART_MAX.  Base32 survives MTAs that fold the
 * local part to lower case (RFC 5321 §2.4 allows case-sensitive local
 * parts, but many MTAs do not keep them).
 *
 * Both functions return 0 or -1 and touch no global state (thread-safe).
 */
#include "mail/verp.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util/limits.h"

#define VERP_MAC_LEN 10
#define VERP_PREFIX "bounce+"
#define VERP_TOKEN_BYTES_MAX (8 + VERP_MAC_LEN)

static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";

static void verp_mac(const unsigned char key[VERP_KEY_LEN], uint64_t id, unsigned char out[VERP_MAC_LEN])
{
	unsigned char msg[7 + 8];
	memcpy(msg, "mfverp1", 7);
	for (int i = 0; i < 8; i++)
		msg[7 + i] = (unsigned char)(id >> (56 - 8 * i));
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	HMAC(EVP_sha256(), key, VERP_KEY_LEN, msg, sizeof(msg), md, &mdlen);
	memcpy(out, md, VERP_MAC_LEN);
}

/* Base32-encodes n bytes into out (NUL-terminated); returns the length. */
static size_t b32_encode(const unsigned char *p, size_t n, char *out)
{
	size_t o = 0;
	unsigned acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		acc = (acc << 8) | p[i];
		bits += 8;
		while (bits >= 5) {
			out[o++] = b32[(acc >> (bits - 5)) & 31];
			bits -= 5;
		}
	}
	if (bits > 0)
		out[o++] = b32[(acc << (5 - bits)) & 31];
	out[o] = '\0';
	return o;
}

static int b32_value(char c)
{
	if (c >= 'a' && c <= 'z')
		return c - 'a';
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= '2' && c <= '7')
		return c - '2' + 26;
	return -1;
}

/* Decodes n characters; -1 on a bad character, too many bytes or non-zero
 * padding bits (so every token has exactly one spelling, up to case). */
static int b32_decode(const char *s, size_t n, unsigned char *out, size_t outsz, size_t *outlen)
{
	size_t o = 0;
	unsigned acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b32_value(s[i]);
		if (v < 0)
			return -1;
		acc = (acc << 5) | (unsigned)v;
		bits += 5;
		if (bits >= 8) {
			if (o >= outsz)
				return -1;
			out[o++] = (unsigned char)(acc >> (bits - 8));
			bits -= 8;
		}
		acc &= (1u << bits) - 1;
	}
	if (bits >= 5 || acc != 0)
		return -1;
	*outlen = o;
	return 0;
}

int verp_encode(const unsigned char key[VERP_KEY_LEN], int64_t recipient_id, const char *domain, char *out,
		size_t outsz)
{
	if (recipient_id <= 0 || domain == NULL || *domain == '\0' || strlen(domain) > MF_DOMAIN_MAX)
		return -1;
	uint64_t id = (uint64_t)recipient_id;
	unsigned char raw[VERP_TOKEN_BYTES_MAX];
	size_t n = 0;
	int started = 0;
	for (int i = 0; i < 8; i++) {
		unsigned char b = (unsigned char)(id >> (56 - 8 * i));
		if (b != 0 || started || i == 7) {
			raw[n++] = b;
			started = 1;
		}
	}
	verp_mac(key, id, raw + n);
	n += VERP_MAC_LEN;
	char token[(VERP_TOKEN_BYTES_MAX * 8 + 4) / 5 + 1];
	b32_encode(raw, n, token);
	if (strlen(VERP_PREFIX) + strlen(token) > MF_LOCAL_PART_MAX)
		return -1;
	int w = snprintf(out, outsz, VERP_PREFIX "%s@%s", token, domain);
	return (w < 0 || (size_t)w >= outsz) ? -1 : 0;
}

int verp_decode(const unsigned char key[VERP_KEY_LEN], const char *addr, const char *domain, int64_t *recipient_id)
{
	if (addr == NULL || domain == NULL)
		return -1;
	size_t len = strlen(addr);
	if (len >= 2 && addr[0] == '<' && addr[len - 1] == '>') {
		addr++;
		len -= 2;
	}
	const char *at = memrchr(addr, '@', len);
	if (at == NULL)
		return -1;
	size_t local_len = (size_t)(at - addr);
	size_t dom_len = len - local_len - 1;
	if (local_len > MF_LOCAL_PART_MAX || dom_len != strlen(domain) || strncasecmp(at + 1, domain, dom_len) != 0)
		return -1;
	size_t plen = strlen(VERP_PREFIX);
	if (local_len <= plen || strncasecmp(addr, VERP_PREFIX, plen) != 0)
		return -1;
	unsigned char raw[VERP_TOKEN_BYTES_MAX];
	size_t n = 0;
	if (b32_decode(addr + plen, local_len - plen, raw, sizeof(raw), &n) != 0 || n <= VERP_MAC_LEN)
		return -1;
	size_t idlen = n - VERP_MAC_LEN;
	if (idlen > 8 || (idlen > 1 && raw[0] == 0))
		return -1;
	uint64_t id = 0;
	for (size_t i = 0; i < idlen; i++)
		id = (id << 8) | raw[i];
	if (id == 0 || id > (uint64_t)INT64_MAX)
		return -1;
	unsigned char mac[VERP_MAC_LEN];
	verp_mac(key, id, mac);
	if (CRYPTO_memcmp(mac, raw + idlen, VERP_MAC_LEN) != 0)
		return -1;
	*recipient_id = (int64_t)id;
	return 0;
}
