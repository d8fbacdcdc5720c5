/*
 * ssl_err.h - OpenSSL's error queue as one line of text for an err
 * buffer: "what: <first queued error>" (or just what when the queue is
 * empty).  The queue is cleared, so a later call does not see stale
 * errors.
 */
#ifndef MF_UTIL_SSL_ERR_H
#define MF_UTIL_SSL_ERR_H

#include <stddef.h>

void ssl_err(char *err, size_t errlen, const char *what);

#endif
