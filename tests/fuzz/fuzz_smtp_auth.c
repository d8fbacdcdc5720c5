/*
 * fuzz_smtp_auth.c - libFuzzer harness for the SASL PLAIN and LOGIN
 * decoders (smtpd/smtp_auth.c).  Any input must decode or be refused
 * without memory errors; what decodes is NUL-terminated within its array
 * and holds no NUL of its own.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd/smtp_auth.h"
#include "util/limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > MF_SMTP_LINE_MAX)
		return 0;
	/* A copy without a terminator, so reads past the end are caught. */
	char *line = malloc(size ? size : 1);
	if (line == NULL)
		return 0;
	memcpy(line, data, size);
	char az[MF_SMTP_AUTH_USER_MAX], user[MF_SMTP_AUTH_USER_MAX], pass[MF_SMTP_AUTH_PASS_MAX];
	if (smtp_auth_plain_decode(line, size, az, sizeof(az), user, sizeof(user), pass, sizeof(pass)) == 0) {
		if (strnlen(az, sizeof(az)) == sizeof(az) || strnlen(user, sizeof(user)) == sizeof(user) ||
		    strnlen(pass, sizeof(pass)) == sizeof(pass) || user[0] == '\0' || pass[0] == '\0')
			abort();
	}
	if (smtp_auth_login_decode(line, size, user, sizeof(user)) == 0 && strnlen(user, sizeof(user)) == sizeof(user))
		abort();
	free(line);
	return 0;
}
