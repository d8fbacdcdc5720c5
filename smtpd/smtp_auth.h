/*
 * smtp_auth.h - decoding of SASL responses for SMTP AUTH (RFC 4954):
 * PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login, what every
 * client and Postfix speak).  Pure: no I/O, no state, so it is unit-tested
 * and fuzzed on its own (tests/fuzz/fuzz_smtp_auth.c).
 *
 * Each function decodes one base64 response (RFC 4954 §4: strict
 * RFC 4648 §4 base64, "=" alone is the empty response) into the caller's
 * NUL-terminated arrays and returns 0, or -1 for bad base64, a value
 * longer than its array, or a NUL inside a value (which could not be told
 * from the end of a C string).
 */
#ifndef MF_SMTPD_SMTP_AUTH_H
#define MF_SMTPD_SMTP_AUTH_H

#include <stddef.h>

/* RFC 4616 §2: message = [authzid] NUL authcid NUL passwd. */
int smtp_auth_plain_decode(const char *b64, size_t len, char *authzid, size_t azsz, char *user, size_t usz,
			   char *pass, size_t psz);
/* One LOGIN response (the user name or the password). */
int smtp_auth_login_decode(const char *b64, size_t len, char *out, size_t outsz);

#endif
