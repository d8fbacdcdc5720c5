/*
 * webhook_sign.h - Standard Webhooks 1.0 secrets and signatures.
 *
 * A secret reads "whsec_" + base64 of 32 random bytes; the signing key is
 * the base64-decoded part after the prefix.  A signature is
 * "v1," + base64(HMAC-SHA256(key, msg_id "." timestamp "." body)); several
 * are separated by a space (during a secret rotation both keys sign).
 * Functions return 0, or -1 when a secret does not decode or out is too
 * small.  Never log secrets.
 */
#ifndef MF_WEBHOOK_SIGN_H
#define MF_WEBHOOK_SIGN_H

#include <stddef.h>

#define WEBHOOK_SECRET_PREFIX "whsec_"
#define WEBHOOK_SECRET_BYTES 32
/* "whsec_" + 44 base64 chars + NUL, with room to spare. */
#define WEBHOOK_SECRET_LEN 64
/* "v1," + 44 base64 chars + NUL. */
#define WEBHOOK_SIG_LEN 48

/* Writes a new secret into out[outsz]. */
int webhook_secret_new(char *out, size_t outsz);
/* Signs one message with one secret ("whsec_" prefix optional). */
int webhook_sign(const char *secret, const char *msg_id, long timestamp, const char *body, size_t bodylen,
		 char *out, size_t outsz);
/*
 * The webhook-signature header value: the signature with secret, then,
 * when old_secret is not NULL, a space and the signature with old_secret.
 */
int webhook_signature_header(const char *secret, const char *old_secret, const char *msg_id, long timestamp,
			     const char *body, size_t bodylen, char *out, size_t outsz);

#endif
