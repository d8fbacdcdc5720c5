/*
 * head.c - judging the head of an HTTP request as it arrives (see head.h);
 * used by api/gate.c before the connection is handed to libmicrohttpd.
 */
#include "api/head.h"

#include <string.h>

#include "util/limits.h"

/* RFC 9110 §5.6.2: tchar. */
static int is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/*
 * Judges the first n octets a client sent.  The request line is checked
 * octet by octet as it arrives (RFC 9112 §3: method SP request-target SP
 * HTTP-version CRLF; a bare LF is accepted, as libmicrohttpd does), so
 * garbage is refused at its first wrong octet; then the head is complete
 * at the first empty line (RFC 9112 §2.1).
 */
enum api_head api_head_judge(const char *b, size_t n)
{
	size_t i = 0;
	int empty = 0;
	while (i < n && (b[i] == '\r' || b[i] == '\n')) {
		if (b[i] == '\n' && ++empty > MF_API_HEAD_EMPTY_LINES)
			return API_HEAD_BAD;
		i++;
	}
	size_t m = i;
	while (i < n && is_tchar((unsigned char)b[i]) && i - m < MF_API_METHOD_MAX)
		i++;
	if (i == n)
		return API_HEAD_INCOMPLETE;
	if (b[i] != ' ' || i == m)
		return API_HEAD_BAD;
	size_t t = ++i;
	while (i < n && (unsigned char)b[i] > ' ' && b[i] != 0x7f)
		i++;
	if (i == n)
		return n >= MF_API_HEAD_MAX ? API_HEAD_TOO_BIG : API_HEAD_INCOMPLETE;
	if (b[i] != ' ' || i == t)
		return API_HEAD_BAD;
	static const char version[] = "HTTP/d.d";
	i++;
	for (size_t k = 0; k < sizeof(version) - 1; k++, i++) {
		if (i == n)
			return API_HEAD_INCOMPLETE;
		unsigned char c = (unsigned char)b[i];
		if (version[k] == 'd' ? !(c >= '0' && c <= '9') : c != (unsigned char)version[k])
			return API_HEAD_BAD;
	}
	if (i < n && b[i] == '\r')
		i++;
	if (i == n)
		return API_HEAD_INCOMPLETE;
	if (b[i] != '\n')
		return API_HEAD_BAD;
	/* i is at the request line's LF: the head ends at an LF followed by
	 * CRLF or LF. */
	for (; i < n; i++) {
		if (b[i] != '\n')
			continue;
		if (i + 1 < n && b[i + 1] == '\n')
			return API_HEAD_COMPLETE;
		if (i + 2 < n && b[i + 1] == '\r' && b[i + 2] == '\n')
			return API_HEAD_COMPLETE;
	}
	return n >= MF_API_HEAD_MAX ? API_HEAD_TOO_BIG : API_HEAD_INCOMPLETE;
}
