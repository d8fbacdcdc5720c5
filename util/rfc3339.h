/*
 * rfc3339.h - the one RFC 3339 timestamp formatter (§5.6 date-time, UTC,
 * "Z"), as the API, the CLI and the log lines show time:
 * "2026-12-07T05:14:21Z", or with milliseconds "2026-12-07T05:14:21.123Z"
 * (the form PostgreSQL's to_char(..., 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
 * gives the event timestamps).
 *
 * rfc3339_format() returns 0, or -1 when out is too small or the time
 * cannot be broken down.
 */
#ifndef MF_UTIL_RFC3339_H
#define MF_UTIL_RFC3339_H

#include <stddef.h>
#include <time.h>

/* Room for a formatted time and its NUL. */
#define RFC3339_LEN 32

/* Formats t (UTC); ms in [0, 999] adds ".mmm", ms < 0 leaves it out. */
int rfc3339_format(time_t t, long ms, char *out, size_t outsz);

#endif
