/*
 * rfc3339.c - RFC 3339 §5.6 timestamps in UTC (see rfc3339.h).
 */
#include "util/rfc3339.h"

#include <stdio.h>

int rfc3339_format(time_t t, long ms, char *out, size_t outsz)
{
	struct tm tm;
	char frac[8] = "";
	if (gmtime_r(&t, &tm) == NULL || ms > 999)
		return -1;
	if (ms >= 0)
		snprintf(frac, sizeof(frac), ".%03ld", ms);
	int n = snprintf(out, outsz, "%04d-%02d-%02dT%02d:%02d:%02d%sZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
	return n > 0 && (size_t)n < outsz ? 0 : -1;
}
