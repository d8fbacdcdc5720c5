/*
 * webhook_sign.c - Standard Webhooks 1.0 signing (see webhook_sign.h).
 *
 * The signed content is exactly  msg_id "." timestamp "." body  with the
 * body bytes as sent; HMAC-SHA256 through OpenSSL, base64 per RFC 4648 §4
 * (standard alphabet, padded; util/base64), as the reference libraries do.
 * A secret's key decodes with its padding optional.
 */
#include "hooks/webhook_sign.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "util/base64.h"

int webhook_secret_new(char *out, size_t outsz)
{
	unsigned char raw[WEBHOOK_SECRET_BYTES];
	char enc[4 * ((WEBHOOK_SECRET_BYTES + 2) / 3) + 1];
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -1;
	long len = base64_encode(raw, sizeof(raw), enc, sizeof(enc), 0);
	OPENSSL_cleanse(raw, sizeof(raw));
	if (len < 0)
		return -1;
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
	long keylen = base64_decode(secret, strlen(secret), key, sizeof(key), B64_PAD_OPTIONAL);
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
	if (base64_encode(mac, maclen, enc, sizeof(enc), 0) < 0)
		return -1;
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
