/*
 * dkim.h - DKIM signing (RFC 6376) with rsa-sha256 or ed25519-sha256
 * (RFC 8463), relaxed/relaxed canonicalisation.
 *
 * A signer is made once from the configuration (dkim_domain,
 * dkim_selector, dkim_key_file) and is then read-only: several threads
 * may sign with it at the same time.  dkim_sign() is called by
 * mime_compose() on the finished message.
 */
#ifndef MF_MAIL_DKIM_H
#define MF_MAIL_DKIM_H

#include <stddef.h>

#include "util/buf.h"

struct dkim_signer;

/* Loads the PEM private key (RSA of at least 1024 bits, or Ed25519; the
 * type is detected).  Returns NULL with err set on failure. */
struct dkim_signer *dkim_signer_new(const char *domain, const char *selector, const char *key_file,
				    char *err, size_t errlen);
/* The same from a PKCS#8 (or traditional) DER private key in memory, as
 * a sending domain's key (mail/dkim_keys.h); der is borrowed. */
struct dkim_signer *dkim_signer_new_der(const char *domain, const char *selector, const void *der, size_t len,
					char *err, size_t errlen);
void dkim_signer_free(struct dkim_signer *s);
/* "rsa-sha256" or "ed25519-sha256". */
const char *dkim_signer_algorithm(const struct dkim_signer *s);
const char *dkim_signer_selector(const struct dkim_signer *s);

/* Appends the DKIM-Signature header field (folded, ending in CRLF) for the
 * message msg[0..len) (CRLF line ends) to out; the caller puts it in front
 * of the message.  Returns 0, or -1 with err set; out is unchanged then. */
int dkim_sign(const struct dkim_signer *s, const char *msg, size_t len, struct buf *out, char *err,
	      size_t errlen);

#endif
