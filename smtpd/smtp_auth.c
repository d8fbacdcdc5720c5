/*
 * smtp_auth.c - SASL PLAIN and LOGIN responses (see smtp_auth.h).
 */
#include "smtpd/smtp_auth.h"

#include <string.h>

#include "util/base64.h"
#include "util/limits.h"

/* Decodes the base64 response into raw[rawsz]; the length, or -1. */
static long decode(const char *b64, size_t len, unsigned char *raw, size_t rawsz)
{
	/* RFC 4954 §4: "=" is an empty initial response. */
	if (len == 1 && b64[0] == '=')
		return 0;
	if (len == 0)
		return 0;
	return base64_decode(b64, len, raw, rawsz, 0);
}

/* Copies raw[0..n) into out[outsz] with a NUL; -1 when too long. */
static int copy_value(const unsigned char *raw, size_t n, char *out, size_t outsz)
{
	if (n >= outsz)
		return -1;
	memcpy(out, raw, n);
	out[n] = '\0';
	return 0;
}

int smtp_auth_plain_decode(const char *b64, size_t len, char *authzid, size_t azsz, char *user, size_t usz,
			   char *pass, size_t psz)
{
	unsigned char raw[MF_SMTP_AUTH_RESPONSE_MAX];
	long n = decode(b64, len, raw, sizeof(raw));
	if (n < 0)
		return -1;
	const unsigned char *end = raw + n;
	const unsigned char *nul1 = memchr(raw, '\0', (size_t)n);
	if (nul1 == NULL)
		return -1;
	const unsigned char *nul2 = memchr(nul1 + 1, '\0', (size_t)(end - nul1 - 1));
	if (nul2 == NULL || memchr(nul2 + 1, '\0', (size_t)(end - nul2 - 1)) != NULL)
		return -1;
	/* RFC 4616 §2: authcid and passwd are at least one octet. */
	if (nul2 == nul1 + 1 || nul2 + 1 == end)
		return -1;
	if (copy_value(raw, (size_t)(nul1 - raw), authzid, azsz) != 0 ||
	    copy_value(nul1 + 1, (size_t)(nul2 - nul1 - 1), user, usz) != 0 ||
	    copy_value(nul2 + 1, (size_t)(end - nul2 - 1), pass, psz) != 0)
		return -1;
	return 0;
}

int smtp_auth_login_decode(const char *b64, size_t len, char *out, size_t outsz)
{
	unsigned char raw[MF_SMTP_AUTH_RESPONSE_MAX];
	long n = decode(b64, len, raw, sizeof(raw));
	if (n < 0 || memchr(raw, '\0', (size_t)n) != NULL)
		return -1;
	return copy_value(raw, (size_t)n, out, outsz);
}
