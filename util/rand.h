/*
 * rand.h - unpredictable bytes for identifiers (message ids, MIME
 * boundaries), cheaply.  Not for secrets: keys, salts and webhook
 * secrets call OpenSSL's RAND_bytes() directly.
 */
#ifndef MF_UTIL_RAND_H
#define MF_UTIL_RAND_H

#include <stddef.h>

/* Fills out[0..n-1]; aborts if OpenSSL's generator fails (an id must
 * never be guessable, and there is no sane fallback). */
void rand_id_bytes(void *out, size_t n);

#endif
