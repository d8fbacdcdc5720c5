/*
 * fuzz_smtp_server_cmd.c - libFuzzer harness for the inbound SMTP command
 * parser (smtpd/smtp_server_cmd.c).  Any input must parse without memory
 * errors, and an accepted MAIL/RCPT path must be a clean, bounded string.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd/smtp_server_cmd.h"

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
	struct smtp_cmd c;
	enum smtp_cmd_result r = smtp_cmd_parse(line, size, &c);
	if (r == SMTP_CMD_OK && (c.verb == SMTP_VERB_MAIL || c.verb == SMTP_VERB_RCPT)) {
		size_t n = strnlen(c.path, sizeof(c.path));
		if (n > MF_ADDRESS_MAX)
			abort();
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)c.path[i] < 0x20 || (unsigned char)c.path[i] >= 0x7f)
				abort();
		if (c.verb == SMTP_VERB_RCPT && n == 0)
			abort();
	}
	free(line);
	return 0;
}
