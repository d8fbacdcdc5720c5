/*
 * Tests for mail/dkim.c: messages composed and signed with freshly
 * generated RSA 2048 and Ed25519 keys are verified by an independent
 * verifier, Debian's python3-dkim (tests/mail/dkim_check.py), given the
 * public key record we publish; tampering must break the signature, and
 * changes that relaxed canonicalisation ignores must not.
 */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "mail/dkim.h"
#include "mail/encode.h"
#include "mail/mime.h"
#include "util/xmalloc.h"

struct keyset {
	char *dir;
	char *key_file;
	char *record_file;
};

static void write_all(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f, "%s", path);
	cr_assert_eq(fwrite(p, 1, n, f), n);
	fclose(f);
}

/* Generates a key of the given type, writes the PEM private key and the
 * DNS TXT record (RFC 6376 §3.6.1; RFC 8463 §4 for Ed25519's raw key). */
static void keyset_make(struct keyset *k, const char *type)
{
	EVP_PKEY *key = strcmp(type, "RSA") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
						 : EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	cr_assert_not_null(key);
	k->dir = th_tmpdir("dkim");
	cr_assert_not_null(k->dir);
	k->key_file = xasprintf("%s/key.pem", k->dir);
	k->record_file = xasprintf("%s/record.txt", k->dir);

	BIO *bio = BIO_new_file(k->key_file, "w");
	cr_assert_not_null(bio);
	cr_assert_eq(PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL), 1);
	BIO_free(bio);

	unsigned char pub[1024];
	size_t publen = sizeof(pub);
	if (strcmp(type, "RSA") == 0) {
		unsigned char *der = NULL;
		int n = i2d_PUBKEY(key, &der);
		cr_assert_gt(n, 0);
		memcpy(pub, der, (size_t)n);
		publen = (size_t)n;
		OPENSSL_free(der);
	} else {
		cr_assert_eq(EVP_PKEY_get_raw_public_key(key, pub, &publen), 1);
		cr_assert_eq(publen, 32);
	}
	struct buf rec;
	buf_init(&rec, 8192);
	buf_printf(&rec, "v=DKIM1; k=%s; p=", strcmp(type, "RSA") == 0 ? "rsa" : "ed25519");
	enc_base64(&rec, pub, publen, 0);
	write_all(k->record_file, rec.data, rec.len);
	buf_cleanup(&rec);
	EVP_PKEY_free(key);
}

static void keyset_free(struct keyset *k)
{
	th_rmrf(k->dir);
	free(k->dir);
	free(k->key_file);
	free(k->record_file);
}

static void add_str(char **dst, const char *s)
{
	*dst = xstrdup(s);
}

static void sample_request(struct mail_request *r)
{
	mail_request_init(r);
	add_str(&r->from.name, "Acme Billing");
	add_str(&r->from.addr, "billing@acme.example");
	r->rcpts = xcalloc(2, sizeof(*r->rcpts));
	add_str(&r->rcpts[0].a.name, "Zoë Müller");
	add_str(&r->rcpts[0].a.addr, "zoe@example.org");
	r->rcpts[0].kind = RCPT_TO;
	add_str(&r->rcpts[1].a.addr, "cc@example.org");
	r->rcpts[1].kind = RCPT_CC;
	r->nrcpts = 2;
	add_str(&r->subject, "Ihre Rechnung für März — a subject long enough to be folded over lines");
	add_str(&r->text, "Hello,\n\nyour   invoice\tis attached.\n\n\n");
	add_str(&r->html, "<p>Hello, your invoice is attached. Grüße</p>");
	r->atts = xcalloc(1, sizeof(*r->atts));
	add_str(&r->atts[0].filename, "invoice.pdf");
	add_str(&r->atts[0].content_type, "application/pdf");
	r->atts[0].data = xmalloc(600);
	for (int i = 0; i < 600; i++)
		r->atts[0].data[i] = (unsigned char)i;
	r->atts[0].len = 600;
	r->natts = 1;
}

/* Composes and signs the sample; returns the message (caller frees). */
static char *signed_message(const struct keyset *k, size_t *len)
{
	char err[256] = "";
	struct dkim_signer *s = dkim_signer_new("acme.example", "mf2026", k->key_file, err, sizeof(err));
	cr_assert_not_null(s, "signer: %s", err);
	struct mail_request r;
	sample_request(&r);
	struct mime_params p = {.message_id = "0190-dkim@acme.example", .date = 1796000000, .dkim = s};
	struct buf out;
	buf_init(&out, 1 << 20);
	cr_assert_eq(mime_compose(&r, &p, &out, err, sizeof(err)), 0, "compose: %s", err);
	cr_assert_eq(strncmp(out.data, "DKIM-Signature: v=1; a=", 23), 0);
	mail_request_cleanup(&r);
	dkim_signer_free(s);
	return buf_steal(&out, len);
}

/* Runs dkim_check.py on msg; returns its exit status. */
static int verify(const struct keyset *k, const char *msg, size_t len, char **output)
{
	const char *src = getenv("MAILFERRY_TEST_SRCDIR") ? getenv("MAILFERRY_TEST_SRCDIR") : ".";
	char *eml = xasprintf("%s/m.eml", k->dir);
	write_all(eml, msg, len);
	int rc = th_run(output, "/usr/bin/python3 %s/tests/mail/dkim_check.py %s %s", src, eml,
			k->record_file);
	free(eml);
	return rc;
}

static void verifies_and_tamper_fails(const char *type, const char *alg)
{
	struct keyset k;
	keyset_make(&k, type);
	size_t len;
	char *msg = signed_message(&k, &len);
	char *out = NULL;

	char *want = xasprintf("a=%s;", alg);
	cr_assert(strstr(msg, want) != NULL, "%.400s", msg);
	free(want);
	/* The usual headers are all signed, and From once more (over-signing). */
	char *sig_end = strstr(msg, "\r\nDate:");
	cr_assert_not_null(sig_end);
	char *sig = xstrndup(msg, (size_t)(sig_end - msg));
	char *flat = xmalloc(strlen(sig) + 1), *q = flat;
	for (char *p = sig; *p; p++)
		if (*p != '\r' && *p != '\n' && *p != ' ')
			*q++ = *p;
	*q = '\0';
	cr_assert(strstr(flat, "h=from:subject:date:to:cc:message-id:mime-version:content-type:from;") !=
		  NULL, "%s", flat);
	free(flat);
	free(sig);

	cr_assert_eq(verify(&k, msg, len, &out), 0, "%s\n%.1500s", out, msg);
	free(out);

	/* Relaxed canonicalisation: extra WSP inside and at the end of body
	 * lines and extra empty lines at the end do not matter (§3.4.4). */
	struct buf loose;
	buf_init(&loose, 1 << 20);
	char *body = strstr(msg, "\r\n\r\n");
	/* ... and neither does WSP around a header field's colon (§3.4.2). */
	char *to = strstr(msg, "\r\nTo: ");
	cr_assert_not_null(to);
	buf_append(&loose, msg, (size_t)(to - msg) + 5);
	buf_puts(&loose, " \t ");
	buf_append(&loose, to + 5, (size_t)(body - to) - 1);
	for (const char *p = body + 4; p < msg + len; p++) {
		if (*p == ' ')
			buf_puts(&loose, "  \t");
		else if (*p == '\r')
			buf_puts(&loose, " \r");
		else
			buf_putc(&loose, *p);
	}
	buf_puts(&loose, "\r\n\r\n");
	cr_assert_eq(verify(&k, loose.data, loose.len, &out), 0, "relaxed body: %s", out);
	free(out);
	buf_cleanup(&loose);

	/* One changed body octet breaks it. */
	char *t = xmalloc(len);
	memcpy(t, msg, len);
	char *hello = strstr(t, "Hello,");
	cr_assert_not_null(hello);
	hello[0] = 'J';
	cr_assert_eq(verify(&k, t, len, &out), 1, "tampered body verified: %s", out);
	free(out);

	/* So does a changed signed header. */
	memcpy(t, msg, len);
	char *cc = strstr(t, "Cc: cc@example.org");
	cr_assert_not_null(cc);
	cc[4] = 'x';
	cr_assert_eq(verify(&k, t, len, &out), 1, "tampered header verified: %s", out);
	free(out);
	free(t);
	free(msg);
	keyset_free(&k);
}

Test(dkim, rsa_sha256_verifies_tamper_fails)
{
	verifies_and_tamper_fails("RSA", "rsa-sha256");
}

Test(dkim, ed25519_sha256_verifies_tamper_fails)
{
	verifies_and_tamper_fails("ED25519", "ed25519-sha256");
}

Test(dkim, signer_refuses_bad_keys)
{
	char err[256];
	cr_assert_null(dkim_signer_new("acme.example", "s", "/nonexistent/key.pem", err, sizeof(err)));
	cr_assert(strstr(err, "dkim_key_file") != NULL, "%s", err);

	char *dir = th_tmpdir("dkimbad");
	char *path = xasprintf("%s/k.pem", dir);
	write_all(path, "not a key\n", 10);
	cr_assert_null(dkim_signer_new("acme.example", "s", path, err, sizeof(err)));
	cr_assert(strstr(err, "PEM") != NULL, "%s", err);

	/* An EC P-256 key is neither RSA nor Ed25519. */
	EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	cr_assert_not_null(ec);
	BIO *bio = BIO_new_file(path, "w");
	PEM_write_bio_PrivateKey(bio, ec, NULL, NULL, 0, NULL, NULL);
	BIO_free(bio);
	EVP_PKEY_free(ec);
	cr_assert_null(dkim_signer_new("acme.example", "s", path, err, sizeof(err)));
	cr_assert(strstr(err, "RSA or Ed25519") != NULL, "%s", err);

	/* RSA under 1024 bits (RFC 8301). */
	EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)512);
	cr_assert_not_null(small);
	bio = BIO_new_file(path, "w");
	PEM_write_bio_PrivateKey(bio, small, NULL, NULL, 0, NULL, NULL);
	BIO_free(bio);
	EVP_PKEY_free(small);
	cr_assert_null(dkim_signer_new("acme.example", "s", path, err, sizeof(err)));
	cr_assert(strstr(err, "1024") != NULL, "%s", err);

	cr_assert_null(dkim_signer_new("bad domain;", "s", path, err, sizeof(err)));
	th_rmrf(dir);
	free(dir);
	free(path);
}

Test(dkim, empty_body_signs_and_verifies)
{
	struct keyset k;
	keyset_make(&k, "ED25519");
	char err[256] = "";
	struct dkim_signer *s = dkim_signer_new("acme.example", "mf2026", k.key_file, err, sizeof(err));
	cr_assert_not_null(s, "%s", err);
	const char *m = "From: a@acme.example\r\nTo: b@example.org\r\nSubject: x\r\n\r\n";
	struct buf out;
	buf_init(&out, 1 << 16);
	cr_assert_eq(dkim_sign(s, m, strlen(m), &out, err, sizeof(err)), 0, "%s", err);
	/* §3.4.4: the relaxed canonical empty body is empty; SHA-256("") */
	cr_assert(strstr(out.data, "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;") != NULL, "%s",
		  out.data);
	buf_puts(&out, m);
	char *o = NULL;
	cr_assert_eq(verify(&k, out.data, out.len, &o), 0, "%s", o);
	free(o);
	buf_cleanup(&out);
	dkim_signer_free(s);
	keyset_free(&k);
}
