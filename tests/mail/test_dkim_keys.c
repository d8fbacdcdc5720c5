/*
 * Tests for mail/dkim_keys.c: key generation (Ed25519 and RSA-2048, the
 * DKIM p= values of RFC 8463 §4 and RFC 6376 §3.6.1), AES-256-GCM sealing
 * (round trip; another AAD, another key or a changed byte does not open),
 * and master_key_file's exact length.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "mail/dkim.h"
#include "mail/dkim_keys.h"
#include "util/base64.h"

Test(dkim_keys, generate_both_algorithms)
{
	char err[256];
	for (int alg = DKIM_KEY_ED25519; alg <= DKIM_KEY_RSA; alg++) {
		struct buf priv, pub;
		buf_init(&priv, 8192);
		buf_init(&pub, 8192);
		cr_assert_eq(dkim_key_generate((enum dkim_key_alg)alg, &priv, &pub, err, sizeof(err)), 0, "%s", err);
		unsigned char raw[1024];
		long n = base64_decode(pub.data, pub.len, raw, sizeof(raw), 0);
		if (alg == DKIM_KEY_ED25519)
			cr_assert_eq(n, 32, "RFC 8463 §4: the raw key");
		else
			cr_assert_eq(n, 294, "a 2048-bit SubjectPublicKeyInfo is 294 octets, got %ld", n);
		struct dkim_signer *s = dkim_signer_new_der("shop.example", "s1", priv.data, priv.len, err, sizeof(err));
		cr_assert_not_null(s, "%s", err);
		cr_assert_str_eq(dkim_signer_algorithm(s), alg == DKIM_KEY_ED25519 ? "ed25519-sha256" : "rsa-sha256");
		dkim_signer_free(s);
		buf_cleanup(&priv);
		buf_cleanup(&pub);
	}
}

Test(dkim_keys, seal_opens_only_with_its_key_and_aad)
{
	unsigned char key[DKIM_MASTER_KEY_LEN], other[DKIM_MASTER_KEY_LEN];
	memset(key, 7, sizeof(key));
	memset(other, 8, sizeof(other));
	const char secret[] = "private key bytes";
	char err[256];
	struct buf sealed, out, again;
	buf_init(&sealed, 4096);
	buf_init(&out, 4096);
	buf_init(&again, 4096);
	cr_assert_eq(dkim_key_seal(key, "a.example/s1", secret, sizeof(secret), &sealed, err, sizeof(err)), 0);
	cr_assert_eq(sealed.len, DKIM_SEAL_NONCE_LEN + sizeof(secret) + DKIM_SEAL_TAG_LEN);
	cr_assert_null(memmem(sealed.data, sealed.len, "private", 7), "the ciphertext shows the key");
	cr_assert_eq(dkim_key_open(key, "a.example/s1", sealed.data, sealed.len, &out, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(out.len, sizeof(secret));
	cr_assert_eq(memcmp(out.data, secret, sizeof(secret)), 0);
	/* A random nonce per seal: the same key seals differently. */
	cr_assert_eq(dkim_key_seal(key, "a.example/s1", secret, sizeof(secret), &again, err, sizeof(err)), 0);
	cr_assert_neq(memcmp(again.data, sealed.data, sealed.len), 0);
	buf_reset(&out);
	cr_assert_eq(dkim_key_open(key, "b.example/s1", sealed.data, sealed.len, &out, err, sizeof(err)), -1);
	cr_assert_eq(dkim_key_open(other, "a.example/s1", sealed.data, sealed.len, &out, err, sizeof(err)), -1);
	sealed.data[DKIM_SEAL_NONCE_LEN] ^= 1;
	cr_assert_eq(dkim_key_open(key, "a.example/s1", sealed.data, sealed.len, &out, err, sizeof(err)), -1);
	cr_assert_eq(dkim_key_open(key, "a.example/s1", sealed.data, 10, &out, err, sizeof(err)), -1);
	cr_assert_eq(out.len, 0, "nothing is written when it does not open");
	buf_cleanup(&sealed);
	buf_cleanup(&out);
	buf_cleanup(&again);
}

Test(dkim_keys, master_key_file_is_exactly_32_bytes)
{
	char *dir = th_tmpdir("mk");
	char path[600], err[512];
	unsigned char key[DKIM_MASTER_KEY_LEN];
	snprintf(path, sizeof(path), "%s/k", dir);
	cr_assert_eq(th_run(NULL, "head -c 32 /dev/urandom > '%s'", path), 0);
	cr_assert_eq(dkim_master_key_load(path, key, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(th_run(NULL, "head -c 31 /dev/urandom > '%s'", path), 0);
	cr_assert_eq(dkim_master_key_load(path, key, err, sizeof(err)), -1);
	cr_assert(strstr(err, "exactly 32 bytes") && strstr(err, "it has 31"), "%s", err);
	cr_assert_eq(th_run(NULL, "head -c 33 /dev/urandom > '%s'", path), 0);
	cr_assert_eq(dkim_master_key_load(path, key, err, sizeof(err)), -1);
	cr_assert(strstr(err, "master_key_file"), "%s", err);
	cr_assert_eq(dkim_master_key_load("/nonexistent/key", key, err, sizeof(err)), -1);
	th_rmrf(dir);
	free(dir);
}
