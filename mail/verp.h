/*
 * verp.h - VERP return paths: bounce+TOKEN@bounce_domain, where TOKEN
 * names a recipient row and carries an HMAC (server secret), so a forged
 * bounce cannot touch other mail.  The local part stays within
 * MF_LOCAL_PART_MAX octets (RFC 5321 §4.5.3.1.1).
 */
#ifndef MF_MAIL_VERP_H
#define MF_MAIL_VERP_H

#include <stddef.h>
#include <stdint.h>

#define VERP_KEY_LEN 32

/* Writes bounce+TOKEN@domain into out; returns 0, or -1 if it does not fit. */
int verp_encode(const unsigned char key[VERP_KEY_LEN], int64_t recipient_id, const char *domain,
		char *out, size_t outsz);
/* Parses an address made by verp_encode(); returns 0 with *recipient_id set,
 * or -1 when it is not a VERP address or the HMAC does not verify. */
int verp_decode(const unsigned char key[VERP_KEY_LEN], const char *addr, const char *domain,
		int64_t *recipient_id);

#endif
