/*
 * webhook_sign.c - Standard Webhooks 1.0 signing (see webhook_sign.h).
 *
 * The signed content is exactly  msg_id "." timestamp "." body  with the
 * body bytes as sent; HMAC-SHA256 through OpenSSL, base64 per RFC 4648 §4
 * (standard alphabet, padded), as the reference libraries do.
 */
#include "hooks/webhook_sign.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

static const char b64tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Encodes n bytes, padded; out needs 4*ceil(n/3)+1 bytes. */
static void b64_encode(const unsigned char *in, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
			     (i + 2 < n ? in[i + 2] : 0);
		out[o++] = b64tbl[(v >> 18) & 63];
		out[o++] = b64tbl[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64tbl[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? b64tbl[v & 63] : '=';
	}
	out[o] = '\0';
}

long webhook_b64_decode(const char *in, unsigned char *out, size_t outsz)
{
	unsigned acc = 0;
	int bits = 0;
	size_t o = 0;
	const char *p = in;
	for (; *p && *p != '='; p++) {
		const char *c = strchr(b64tbl, *p);
		if (c == NULL)
			return -1;
		acc = (acc << 6) | (unsigned)(c - b64tbl);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o == outsz)
				return -1;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	for (; *p == '='; p++)
		;
	if (*p != '\0')
		return -1;
	return (long)o;
}

int webhook_secret_new(char *out, size_t outsz)
{
	unsigned char raw[WEBHOOK_SECRET_BYTES];
	char enc[4 * ((WEBHOOK_SECRET_BYTES + 2) / 3) + 1];
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -1;
	b64_encode(raw, sizeof(raw), enc);
	OPENSSL_cleanse(raw, sizeof(raw));
	int n = snprintf(out, outsz, "%s%s", WEBHOOK_SECRET_PREFIX, enc);
	OPENSSL_cleanse(enc, sizeof(enc));
	return n > 0 && (size_t)n < outsz ? 0 : -1;
}

int webhook_sign(const char *secret, const char *msg_id, long timestamp, const char *body, size_t bodylen,
		 char *out, size_t outsz)
{
	unsigned char key[256], mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char ts[32];
	size_t plen = strlen(WEBHOOK_SECRET_PREFIX);
	if (strncmp(secret, WEBHOOK_SECRET_PREFIX, plen) == 0)
		secret += plen;
	long keylen = webhook_b64_decode(secret, key, sizeof(key));
	if (keylen <= 0 || outsz < WEBHOOK_SIG_LEN)
		return -1;
	snprintf(ts, sizeof(ts), "%ld", timestamp);
	int ok = 0;
	/* OpenSSL 3 EVP_MAC: the pieces are fed in turn, no concatenated copy. */
	EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = m ? EVP_MAC_CTX_new(m) : NULL;
	if (ctx) {
		OSSL_PARAM params[] = {
			OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
			OSSL_PARAM_construct_end(),
		};
		size_t l = 0;
		ok = EVP_MAC_init(ctx, key, (size_t)keylen, params) == 1 &&
		     EVP_MAC_update(ctx, (const unsigned char *)msg_id, strlen(msg_id)) == 1 &&
		     EVP_MAC_update(ctx, (const unsigned char *)".", 1) == 1 &&
		     EVP_MAC_update(ctx, (const unsigned char *)ts, strlen(ts)) == 1 &&
		     EVP_MAC_update(ctx, (const unsigned char *)".", 1) == 1 &&
		     EVP_MAC_update(ctx, (const unsigned char *)body, bodylen) == 1 &&
		     EVP_MAC_final(ctx, mac, &l, sizeof(mac)) == 1;
		maclen = (unsigned)l;
	}
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(m);
	OPENSSL_cleanse(key, sizeof(key));
	if (!ok || maclen != 32)
		return -1;
	char enc[48];
	b64_encode(mac, maclen, enc);
	snprintf(out, outsz, "v1,%s", enc);
	return 0;
}

int webhook_signature_header(const char *secret, const char *old_secret, const char *msg_id, long timestamp,
			     const char *body, size_t bodylen, char *out, size_t outsz)
{
	char a[WEBHOOK_SIG_LEN], b[WEBHOOK_SIG_LEN];
	if (webhook_sign(secret, msg_id, timestamp, body, bodylen, a, sizeof(a)) < 0)
		return -1;
	if (old_secret == NULL || *old_secret == '\0') {
		int n = snprintf(out, outsz, "%s", a);
		return n > 0 && (size_t)n < outsz ? 0 : -1;
	}
	if (webhook_sign(old_secret, msg_id, timestamp, body, bodylen, b, sizeof(b)) < 0)
		return -1;
	int n = snprintf(out, outsz, "%s %s", a, b);
	return n > 0 && (size_t)n < outsz ? 0 : -1;
}
