/*
 * head.h - judging the head of an HTTP request as it arrives (RFC 9112),
 * before libmicrohttpd sees the connection (api/gate.c).
 *
 * api_head_judge() is pure: it reads the first n octets a client sent and
 * says whether they are a complete head, the start of one, garbage, or a
 * head larger than MF_API_HEAD_MAX (util/limits.h).  It keeps no state, so
 * the caller judges everything received so far again on each arrival.
 */
#ifndef MF_API_HEAD_H
#define MF_API_HEAD_H

#include <stddef.h>

enum api_head {
	API_HEAD_INCOMPLETE, /* a valid prefix: wait for more */
	API_HEAD_COMPLETE,   /* request line and headers up to the empty line */
	API_HEAD_BAD,        /* not an HTTP request line: refuse with 400 */
	API_HEAD_TOO_BIG,    /* MF_API_HEAD_MAX octets and no end yet: 431 */
};

/* Judges the first n octets of b (not NUL-terminated). */
enum api_head api_head_judge(const char *b, size_t n);

#endif
