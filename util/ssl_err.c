/*
 * ssl_err.c - OpenSSL errors as text (see ssl_err.h).
 */
#include "util/ssl_err.h"

#include <openssl/err.h>
#include <stdio.h>

void ssl_err(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_get_error();
	char detail[256] = "";
	if (e != 0)
		ERR_error_string_n(e, detail, sizeof(detail));
	ERR_clear_error();
	snprintf(err, errlen, "%s%s%s", what, *detail ? ": " : "", detail);
}
