/*
 * dkim_keys.h - the DKIM key pairs of sending domains (issue 18): making
 * them, the DNS value that publishes their public half, and sealing their
 * private half for storage.
 *
 * dkim_key_generate() makes an Ed25519 or RSA-2048 key pair (OpenSSL 3
 * EVP) and returns the private key as PKCS#8 DER and the public key as
 * the DKIM p= value: for rsa the base64 of the SubjectPublicKeyInfo (RFC
 * 6376 §3.6.1), for ed25519 the base64 of the raw 32-byte public key
 * (RFC 8463 §4).  dkim_signer_new_der() (mail/dkim.h) signs with the
 * private key.
 *
 * Sealing: AES-256-GCM (NIST SP 800-38D) under the 32-byte master key of
 * master_key_file, a random 96-bit nonce per key, the AAD "domain/selector"
 * so that a sealed key moved to another row does not open.  The sealed
 * form is nonce (12) || ciphertext || tag (16).
 *
 * Every function returns 0, or -1 with err set.  Output buffers are the
 * caller's: struct buf with its own maximum.
 */
#ifndef MF_MAIL_DKIM_KEYS_H
#define MF_MAIL_DKIM_KEYS_H

#include <stddef.h>

#include "util/buf.h"

#define DKIM_MASTER_KEY_LEN 32
#define DKIM_SEAL_NONCE_LEN 12
#define DKIM_SEAL_TAG_LEN 16

enum dkim_key_alg { DKIM_KEY_ED25519, DKIM_KEY_RSA };

/* "ed25519" or "rsa" (the DKIM k= tag, RFC 6376 §3.6.1, RFC 8463 §4). */
const char *dkim_key_alg_name(enum dkim_key_alg alg);

/* Reads master_key_file: exactly DKIM_MASTER_KEY_LEN bytes. */
int dkim_master_key_load(const char *path, unsigned char key[DKIM_MASTER_KEY_LEN], char *err,
			 size_t errlen);

/* A new key pair: the PKCS#8 DER private key is appended to priv, the
 * base64 p= value to pub (NUL-terminated). */
int dkim_key_generate(enum dkim_key_alg alg, struct buf *priv, struct buf *pub, char *err, size_t errlen);

/* Seals / opens plain[0..n) with the master key and aad; appends to out.
 * dkim_key_open() fails when the tag does not verify (wrong key or AAD,
 * or a changed ciphertext). */
int dkim_key_seal(const unsigned char key[DKIM_MASTER_KEY_LEN], const char *aad, const void *plain, size_t n,
		  struct buf *out, char *err, size_t errlen);
int dkim_key_open(const unsigned char key[DKIM_MASTER_KEY_LEN], const char *aad, const void *sealed, size_t n,
		  struct buf *out, char *err, size_t errlen);

#endif
