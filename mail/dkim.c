/*
 * dkim.c - DKIM-Signature (RFC 6376) for composed messages (see dkim.h).
 *
 * Signing: the body is canonicalised with "relaxed" (§3.4.4) and hashed
 * into bh=; the signed header fields (those of signed_headers[] that are
 * present, bottom-up per §5.4.2, plus one extra "from" so that a second
 * From cannot be added later) are canonicalised with "relaxed" (§3.4.2),
 * followed by the DKIM-Signature field itself with an empty b= (§3.7).
 * rsa-sha256 signs that data with RSASSA-PKCS1-v1_5/SHA-256; ed25519-sha256
 * signs the SHA-256 hash of it with PureEdDSA (RFC 8463 §3).
 *
 * Only OpenSSL 3 EVP interfaces are used.  The EVP_PKEY is shared
 * read-only between threads; every signature gets its own EVP_MD_CTX.
 */
#include "mail/dkim.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mail/encode.h"
#include "util/limits.h"
#include "util/ssl_err.h"
#include "util/xmalloc.h"

enum dkim_alg { DKIM_RSA_SHA256, DKIM_ED25519_SHA256 };

struct dkim_signer {
	char *domain;
	char *selector;
	enum dkim_alg alg;
	EVP_PKEY *key;
};

/* The header fields signed when present (RFC 6376 §5.4.1 recommends
 * these), in h= order. */
static const char *const signed_headers[] = {
	"from", "reply-to", "subject", "date", "to", "cc", "message-id", "mime-version",
	"content-type", "content-transfer-encoding", "in-reply-to", "references", "sender",
	"list-id", "list-unsubscribe", "list-unsubscribe-post", "list-help", "list-post",
	"feedback-id", NULL,
};


/* Encrypted keys are refused rather than prompting on a terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf, (void)size, (void)rwflag, (void)u;
	return -1;
}

/* RFC 6376 §3.5: d= and s= are domain names / selectors. */
static int valid_dns_label_list(const char *s)
{
	if (s == NULL || *s == '\0' || strlen(s) > MF_DOMAIN_MAX)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '.' && *s != '-' && *s != '_')
			return 0;
	return 1;
}

/* Takes key (freed on failure too) into a new signer. */
static struct dkim_signer *signer_from_key(const char *domain, const char *selector, EVP_PKEY *key,
					   char *err, size_t errlen)
{
	enum dkim_alg alg;
	if (EVP_PKEY_is_a(key, "RSA")) {
		/* RFC 8301 §3.2: signers MUST use at least 1024 bits. */
		if (EVP_PKEY_get_bits(key) < 1024) {
			snprintf(err, errlen, "dkim key: RSA key of %d bits, at least 1024 needed",
				 EVP_PKEY_get_bits(key));
			EVP_PKEY_free(key);
			return NULL;
		}
		alg = DKIM_RSA_SHA256;
	} else if (EVP_PKEY_is_a(key, "ED25519")) {
		alg = DKIM_ED25519_SHA256;
	} else {
		snprintf(err, errlen, "dkim key: key type %s, RSA or Ed25519 needed",
			 EVP_PKEY_get0_type_name(key));
		EVP_PKEY_free(key);
		return NULL;
	}
	struct dkim_signer *s = xcalloc(1, sizeof(*s));
	s->domain = xstrdup(domain);
	s->selector = xstrdup(selector);
	s->alg = alg;
	s->key = key;
	return s;
}

struct dkim_signer *dkim_signer_new(const char *domain, const char *selector, const char *key_file,
				    char *err, size_t errlen)
{
	if (!valid_dns_label_list(domain) || !valid_dns_label_list(selector)) {
		snprintf(err, errlen, "dkim_domain and dkim_selector must be domain names");
		return NULL;
	}
	BIO *bio = BIO_new_file(key_file, "r");
	if (bio == NULL) {
		ssl_err(err, errlen, "cannot open dkim_key_file");
		return NULL;
	}
	EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	if (key == NULL) {
		ssl_err(err, errlen, "dkim_key_file is not an unencrypted PEM private key");
		return NULL;
	}
	return signer_from_key(domain, selector, key, err, errlen);
}

struct dkim_signer *dkim_signer_new_der(const char *domain, const char *selector, const void *der, size_t len,
					char *err, size_t errlen)
{
	if (!valid_dns_label_list(domain) || !valid_dns_label_list(selector)) {
		snprintf(err, errlen, "dkim: domain and selector must be domain names");
		return NULL;
	}
	const unsigned char *p = der;
	EVP_PKEY *key = d2i_AutoPrivateKey(NULL, &p, (long)len);
	if (key == NULL) {
		ssl_err(err, errlen, "dkim: not a DER private key");
		return NULL;
	}
	return signer_from_key(domain, selector, key, err, errlen);
}

const char *dkim_signer_selector(const struct dkim_signer *s)
{
	return s->selector;
}

void dkim_signer_free(struct dkim_signer *s)
{
	if (s == NULL)
		return;
	EVP_PKEY_free(s->key);
	free(s->domain);
	free(s->selector);
	free(s);
}

const char *dkim_signer_algorithm(const struct dkim_signer *s)
{
	return s->alg == DKIM_RSA_SHA256 ? "rsa-sha256" : "ed25519-sha256";
}

/* ---- canonicalisation --------------------------------------------------- */

static int is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * RFC 6376 §3.4.2 relaxed header canonicalisation of one field
 * f[0..n) (without its final CRLF): lower-case name, unfold, runs of WSP
 * to one SP, no WSP at the end or around the colon; then CRLF unless
 * last (the DKIM-Signature field itself is hashed without it, §3.7).
 */
static int canon_header(struct buf *out, const char *f, size_t n, int crlf)
{
	size_t i = 0;
	while (i < n && f[i] != ':')
		i++;
	size_t name_end = i;
	while (name_end > 0 && is_wsp(f[name_end - 1]))
		name_end--;
	for (size_t k = 0; k < name_end; k++)
		if (buf_putc(out, (char)tolower((unsigned char)f[k])))
			return -1;
	if (buf_putc(out, ':'))
		return -1;
	i++; /* the colon */
	int pending_space = 0, started = 0;
	for (; i < n; i++) {
		char c = f[i];
		if (c == '\r' || c == '\n' || is_wsp(c)) {
			pending_space = started;
			continue;
		}
		if (pending_space && buf_putc(out, ' '))
			return -1;
		pending_space = 0;
		started = 1;
		if (buf_putc(out, c))
			return -1;
	}
	return crlf ? buf_append(out, "\r\n", 2) : 0;
}

/*
 * bh=: SHA-256 of the relaxed canonical body (RFC 6376 §3.4.4): WSP at
 * line ends removed, other WSP runs reduced to one SP, empty lines at the
 * end removed, and a non-empty body ends in exactly one CRLF.  Streamed:
 * line ends are held back until content follows them.
 */
struct canon_stream {
	EVP_MD_CTX *md;
	char chunk[4096];
	size_t len;
};

static int cs_put(struct canon_stream *cs, const char *p, size_t n)
{
	if (cs->len + n > sizeof(cs->chunk)) {
		if (!EVP_DigestUpdate(cs->md, cs->chunk, cs->len))
			return -1;
		cs->len = 0;
	}
	memcpy(cs->chunk + cs->len, p, n);
	cs->len += n;
	return 0;
}

static int body_hash(const char *body, size_t n, unsigned char out[32])
{
	struct canon_stream *cs = xcalloc(1, sizeof(*cs));
	size_t held_crlf = 0;
	int wsp = 0, any = 0, rc = -1;
	unsigned int hl = 0;

	cs->md = EVP_MD_CTX_new();
	if (cs->md == NULL || !EVP_DigestInit_ex(cs->md, EVP_sha256(), NULL))
		goto done;
	for (size_t i = 0; i < n; i++) {
		char c = body[i];
		if (c == '\r' && i + 1 < n && body[i + 1] == '\n')
			continue;
		if (c == '\n') {
			held_crlf++;
			wsp = 0;
			continue;
		}
		if (is_wsp(c)) {
			wsp = 1;
			continue;
		}
		for (; held_crlf > 0; held_crlf--)
			if (cs_put(cs, "\r\n", 2))
				goto done;
		if ((wsp && cs_put(cs, " ", 1)) || cs_put(cs, &c, 1))
			goto done;
		wsp = 0;
		any = 1;
	}
	if (any && cs_put(cs, "\r\n", 2))
		goto done;
	if (EVP_DigestUpdate(cs->md, cs->chunk, cs->len) && EVP_DigestFinal_ex(cs->md, out, &hl) &&
	    hl == 32)
		rc = 0;
done:
	EVP_MD_CTX_free(cs->md);
	free(cs);
	return rc;
}

/* ---- signing -------------------------------------------------------------- */

struct field {
	const char *start; /* name */
	size_t len;        /* up to, not including, the final CRLF */
	size_t name_len;
	int used;
};

/* Splits the header block into fields; returns their count, or -1. */
static int split_fields(const char *msg, size_t len, struct field *f, int max, size_t *body_off)
{
	size_t i = 0;
	int n = 0;
	*body_off = len;
	while (i < len) {
		if (msg[i] == '\r' && i + 1 < len && msg[i + 1] == '\n') {
			*body_off = i + 2;
			return n;
		}
		if (n == max)
			return -1;
		size_t s = i;
		/* The field runs until a line that does not start with WSP. */
		for (;;) {
			const char *nl = memchr(msg + i, '\n', len - i);
			if (nl == NULL) {
				i = len;
				break;
			}
			i = (size_t)(nl - msg) + 1;
			if (i >= len || !is_wsp(msg[i]))
				break;
		}
		size_t e = i;
		if (e > s && msg[e - 1] == '\n')
			e--;
		if (e > s && msg[e - 1] == '\r')
			e--;
		const char *colon = memchr(msg + s, ':', e - s);
		if (colon == NULL)
			return -1;
		f[n].start = msg + s;
		f[n].len = e - s;
		f[n].name_len = (size_t)(colon - (msg + s));
		while (f[n].name_len > 0 && is_wsp(f[n].start[f[n].name_len - 1]))
			f[n].name_len--;
		f[n].used = 0;
		n++;
	}
	return n;
}

static int sign_data(const struct dkim_signer *s, const struct buf *data, unsigned char *sig,
		     size_t *siglen)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = md != NULL;
	if (ok && s->alg == DKIM_RSA_SHA256) {
		ok = EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, s->key) == 1 &&
		     EVP_DigestSign(md, sig, siglen, (const unsigned char *)data->data, data->len) == 1;
	} else if (ok) {
		/* RFC 8463 §3: Ed25519 (PureEdDSA) over the SHA-256 hash. */
		unsigned char h[32];
		unsigned int hl = 0;
		ok = EVP_Digest(data->data, data->len, h, &hl, EVP_sha256(), NULL) == 1 &&
		     EVP_DigestSignInit(md, NULL, NULL, NULL, s->key) == 1 &&
		     EVP_DigestSign(md, sig, siglen, h, hl) == 1;
	}
	EVP_MD_CTX_free(md);
	return ok ? 0 : -1;
}

/* Writes the signature value after "b=", folded at 78 columns with FWS,
 * which verifiers remove with the value (RFC 6376 §3.5, b=). */
static int put_b_value(struct hdr *h, const char *b64, size_t n)
{
	size_t i = 0;
	while (i < n) {
		size_t room = h->col < MF_MIME_FOLD_WIDTH ? MF_MIME_FOLD_WIDTH - h->col : 0;
		if (room == 0) {
			if (hdr_glue(h, "\r\n ", 3))
				return -1;
			h->col = 1;
			continue;
		}
		size_t k = n - i < room ? n - i : room;
		if (hdr_glue(h, b64 + i, k))
			return -1;
		i += k;
	}
	return 0;
}

int dkim_sign(const struct dkim_signer *s, const char *msg, size_t len, struct buf *out, char *err,
	      size_t errlen)
{
	struct field *f = xcalloc(MF_DKIM_FIELDS_MAX, sizeof(*f));
	struct buf data, sighdr, tmp;
	int rc = -1;
	size_t body_off;
	unsigned char bh[32];

	buf_init(&data, MF_DKIM_HEADER_DATA_MAX);
	buf_init(&sighdr, MF_DKIM_SIGNATURE_MAX);
	buf_init(&tmp, MF_DKIM_SIGNATURE_MAX);
	int nf = split_fields(msg, len, f, MF_DKIM_FIELDS_MAX, &body_off);
	if (nf < 0) {
		snprintf(err, errlen, "dkim: malformed or too many header fields");
		goto done;
	}
	if (body_hash(msg + body_off, len - body_off, bh)) {
		ssl_err(err, errlen, "dkim: body hash");
		goto done;
	}

	/* h= and the signed data, bottom-up for repeated names (§5.4.2). */
	const char *names[MF_DKIM_FIELDS_MAX + 1];
	int nnames = 0;
	for (const char *const *sh = signed_headers; *sh; sh++) {
		for (int i = nf - 1; i >= 0; i--) {
			if (f[i].used || f[i].name_len != strlen(*sh) ||
			    strncasecmp(f[i].start, *sh, f[i].name_len) != 0)
				continue;
			f[i].used = 1;
			names[nnames++] = *sh;
			if (canon_header(&data, f[i].start, f[i].len, 1)) {
				snprintf(err, errlen, "dkim: header data too large");
				goto done;
			}
		}
	}
	names[nnames++] = "from"; /* over-signing: no From may be added */

	struct hdr h;
	int w = hdr_begin(&h, &sighdr, "DKIM-Signature");
	w = w || buf_printf(&tmp, "a=%s;", dkim_signer_algorithm(s));
	w = w || hdr_token(&h, "v=1;", 4) || hdr_token(&h, tmp.data, tmp.len);
	w = w || hdr_token(&h, "c=relaxed/relaxed;", 18);
	buf_reset(&tmp);
	w = w || buf_printf(&tmp, "d=%s;", s->domain) || hdr_token(&h, tmp.data, tmp.len);
	buf_reset(&tmp);
	w = w || buf_printf(&tmp, "s=%s;", s->selector) || hdr_token(&h, tmp.data, tmp.len);
	buf_reset(&tmp);
	w = w || buf_printf(&tmp, "t=%lld;", (long long)time(NULL)) || hdr_token(&h, tmp.data, tmp.len);
	for (int i = 0; i < nnames && !w; i++) {
		buf_reset(&tmp);
		w = buf_printf(&tmp, "%s%s%s", i == 0 ? "h=" : "", names[i], i + 1 < nnames ? ":" : ";");
		/* Names follow the colon directly; FWS only where a fold is needed. */
		if (!w && i > 0 && h.col + tmp.len <= MF_MIME_FOLD_WIDTH)
			w = hdr_glue(&h, tmp.data, tmp.len);
		else if (!w)
			w = hdr_token(&h, tmp.data, tmp.len);
	}
	buf_reset(&tmp);
	w = w || buf_puts(&tmp, "bh=") || enc_base64(&tmp, bh, sizeof(bh), 0) || buf_putc(&tmp, ';');
	w = w || hdr_token(&h, tmp.data, tmp.len) || hdr_token(&h, "b=", 2);
	/* §3.7: the field as it will appear, with an empty b=, no CRLF. */
	w = w || canon_header(&data, sighdr.data, sighdr.len, 0);
	if (w) {
		snprintf(err, errlen, "dkim: signature field too large");
		goto done;
	}

	unsigned char sig[1024];
	size_t siglen = sizeof(sig);
	if (EVP_PKEY_get_size(s->key) > (int)sizeof(sig) || sign_data(s, &data, sig, &siglen)) {
		ssl_err(err, errlen, "dkim: signing failed");
		goto done;
	}
	buf_reset(&tmp);
	if (enc_base64(&tmp, sig, siglen, 0) || put_b_value(&h, tmp.data, tmp.len) || hdr_end(&h) ||
	    buf_append(out, sighdr.data, sighdr.len)) {
		snprintf(err, errlen, "composed message exceeds max_message_size (%zu bytes)", out->max);
		goto done;
	}
	rc = 0;
done:
	buf_cleanup(&data);
	buf_cleanup(&sighdr);
	buf_cleanup(&tmp);
	free(f);
	return rc;
}
