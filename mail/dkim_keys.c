/*
 * dkim_keys.c - DKIM key pairs for sending domains: generation, the
 * published p= value, AES-256-GCM sealing (see dkim_keys.h).
 *
 * Only OpenSSL 3 EVP interfaces.  Intermediate copies of private key
 * material are cleansed before they are freed.
 */
#include "mail/dkim_keys.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/base64.h"
#include "util/ssl_err.h"

/* RFC 8301 §3.2 asks for at least 1024 bits and recommends 2048. */
#define DKIM_RSA_BITS 2048

const char *dkim_key_alg_name(enum dkim_key_alg alg)
{
	return alg == DKIM_KEY_ED25519 ? "ed25519" : "rsa";
}

int dkim_master_key_load(const char *path, unsigned char key[DKIM_MASTER_KEY_LEN], char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		snprintf(err, errlen, "master_key_file: %s: %s", path, strerror(errno));
		return -1;
	}
	unsigned char b[DKIM_MASTER_KEY_LEN + 1];
	size_t n = fread(b, 1, sizeof(b), f);
	int bad = ferror(f);
	fclose(f);
	int rc = 0;
	if (bad) {
		snprintf(err, errlen, "master_key_file: %s: read error", path);
		rc = -1;
	} else if (n != DKIM_MASTER_KEY_LEN) {
		snprintf(err, errlen, "master_key_file: %s: must hold exactly %d bytes (it has %s%zu); "
			 "make one with: head -c %d /dev/urandom > FILE", path, DKIM_MASTER_KEY_LEN,
			 n > DKIM_MASTER_KEY_LEN ? "more than " : "", n > DKIM_MASTER_KEY_LEN ? (size_t)DKIM_MASTER_KEY_LEN : n,
			 DKIM_MASTER_KEY_LEN);
		rc = -1;
	} else {
		memcpy(key, b, DKIM_MASTER_KEY_LEN);
	}
	OPENSSL_cleanse(b, sizeof(b));
	return rc;
}

/* Appends the base64 of p[0..n) to out. */
static int put_b64(struct buf *out, const unsigned char *p, size_t n)
{
	size_t need = base64_encoded_len(n, 0) + 1;
	char *tmp = malloc(need);
	if (tmp == NULL)
		return -1;
	long w = base64_encode(p, n, tmp, need, 0);
	int rc = w < 0 || buf_append(out, tmp, (size_t)w) ? -1 : 0;
	free(tmp);
	return rc;
}

static int public_value(EVP_PKEY *k, enum dkim_key_alg alg, struct buf *pub)
{
	if (alg == DKIM_KEY_ED25519) {
		/* RFC 8463 §4: the raw public key, not a SubjectPublicKeyInfo. */
		unsigned char raw[32];
		size_t len = sizeof(raw);
		if (EVP_PKEY_get_raw_public_key(k, raw, &len) != 1 || len != 32)
			return -1;
		return put_b64(pub, raw, len);
	}
	/* RFC 6376 §3.6.1: k=rsa, p= the DER SubjectPublicKeyInfo. */
	unsigned char *der = NULL;
	int len = i2d_PUBKEY(k, &der);
	if (len <= 0)
		return -1;
	int rc = put_b64(pub, der, (size_t)len);
	OPENSSL_free(der);
	return rc;
}

int dkim_key_generate(enum dkim_key_alg alg, struct buf *priv, struct buf *pub, char *err, size_t errlen)
{
	EVP_PKEY *k = alg == DKIM_KEY_ED25519 ? EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")
					      : EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)DKIM_RSA_BITS);
	if (k == NULL) {
		ssl_err(err, errlen, "dkim: key generation failed");
		return -1;
	}
	unsigned char *der = NULL;
	PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(k);
	int len = p8 ? i2d_PKCS8_PRIV_KEY_INFO(p8, &der) : -1;
	PKCS8_PRIV_KEY_INFO_free(p8);
	int rc = -1;
	if (len <= 0)
		ssl_err(err, errlen, "dkim: cannot encode the private key");
	else if (buf_append(priv, der, (size_t)len))
		snprintf(err, errlen, "dkim: private key larger than its buffer");
	else if (public_value(k, alg, pub))
		snprintf(err, errlen, "dkim: cannot encode the public key");
	else
		rc = 0;
	if (der) {
		OPENSSL_cleanse(der, (size_t)len);
		OPENSSL_free(der);
	}
	EVP_PKEY_free(k);
	return rc;
}

/* One AES-256-GCM pass: enc 1 seals, 0 opens. */
static int gcm(int enc, const unsigned char key[DKIM_MASTER_KEY_LEN], const unsigned char nonce[DKIM_SEAL_NONCE_LEN],
	       const char *aad, const unsigned char *in, size_t n, unsigned char *out, unsigned char tag[DKIM_SEAL_TAG_LEN])
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int len = 0, ok = c != NULL && n <= 0x7fffffff;
	ok = ok && EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) == 1;
	ok = ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, DKIM_SEAL_NONCE_LEN, NULL) == 1;
	ok = ok && EVP_CipherInit_ex(c, NULL, NULL, key, nonce, enc) == 1;
	ok = ok && EVP_CipherUpdate(c, NULL, &len, (const unsigned char *)aad, (int)strlen(aad)) == 1;
	ok = ok && EVP_CipherUpdate(c, out, &len, in, (int)n) == 1;
	if (ok && !enc)
		ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, DKIM_SEAL_TAG_LEN, tag) == 1;
	ok = ok && EVP_CipherFinal_ex(c, out + len, &len) == 1;
	if (ok && enc)
		ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, DKIM_SEAL_TAG_LEN, tag) == 1;
	EVP_CIPHER_CTX_free(c);
	return ok ? 0 : -1;
}

int dkim_key_seal(const unsigned char key[DKIM_MASTER_KEY_LEN], const char *aad, const void *plain, size_t n,
		  struct buf *out, char *err, size_t errlen)
{
	size_t total = DKIM_SEAL_NONCE_LEN + n + DKIM_SEAL_TAG_LEN;
	unsigned char *s = malloc(total);
	if (s == NULL || RAND_bytes(s, DKIM_SEAL_NONCE_LEN) != 1 ||
	    gcm(1, key, s, aad, plain, n, s + DKIM_SEAL_NONCE_LEN, s + DKIM_SEAL_NONCE_LEN + n)) {
		ssl_err(err, errlen, "dkim: cannot seal the private key");
		free(s);
		return -1;
	}
	int rc = buf_append(out, s, total);
	if (rc)
		snprintf(err, errlen, "dkim: sealed key larger than its buffer");
	free(s);
	return rc;
}

int dkim_key_open(const unsigned char key[DKIM_MASTER_KEY_LEN], const char *aad, const void *sealed, size_t n,
		  struct buf *out, char *err, size_t errlen)
{
	const unsigned char *s = sealed;
	if (n < DKIM_SEAL_NONCE_LEN + DKIM_SEAL_TAG_LEN) {
		snprintf(err, errlen, "dkim: sealed key too short");
		return -1;
	}
	size_t clen = n - DKIM_SEAL_NONCE_LEN - DKIM_SEAL_TAG_LEN;
	unsigned char tag[DKIM_SEAL_TAG_LEN];
	memcpy(tag, s + n - DKIM_SEAL_TAG_LEN, DKIM_SEAL_TAG_LEN);
	unsigned char *p = malloc(clen ? clen : 1);
	if (p == NULL || gcm(0, key, s, aad, s + DKIM_SEAL_NONCE_LEN, clen, p, tag)) {
		ERR_clear_error();
		snprintf(err, errlen, "dkim: the sealed key does not open (another master_key_file?)");
		free(p);
		return -1;
	}
	int rc = buf_append(out, p, clen);
	if (rc)
		snprintf(err, errlen, "dkim: key larger than its buffer");
	OPENSSL_cleanse(p, clen);
	free(p);
	return rc;
}
