/*
 * sts_policy.c - MTA-STS texts (see sts_policy.h), RFC 8461 §3.1, §3.2,
 * §4.1.  The parsers walk the input once, never read past len, and copy
 * only into fixed-size fields whose limits are checked first.
 */
#include "relay/sts_policy.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

const char *sts_mode_name(enum sts_mode m)
{
	switch (m) {
	case STS_MODE_TESTING: return "testing";
	case STS_MODE_ENFORCE: return "enforce";
	case STS_MODE_NONE: break;
	}
	return "none";
}

static int is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

int sts_txt_parse(const char *txt, char *id)
{
	/* sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim]
	 * sts-version = %s"v=STSv1" */
	if (strncmp(txt, "v=STSv1", 7) != 0)
		return 1;
	const char *p = txt + 7;
	if (*p != ';' && !is_wsp(*p) && *p != '\0')
		return 1; /* e.g. "v=STSv10": not ours */
	int have_id = 0;
	while (*p) {
		while (is_wsp(*p))
			p++;
		if (*p != ';')
			return -1;
		p++;
		while (is_wsp(*p))
			p++;
		if (*p == '\0')
			break;
		const char *name = p;
		while (*p && *p != '=' && *p != ';')
			p++;
		if (*p != '=')
			return -1;
		size_t nlen = (size_t)(p - name);
		const char *val = ++p;
		while (*p && *p != ';' && !is_wsp(*p))
			p++;
		size_t vlen = (size_t)(p - val);
		if (nlen == 2 && strncmp(name, "id", 2) == 0) {
			if (vlen == 0 || vlen > STS_ID_MAX)
				return -1;
			for (size_t i = 0; i < vlen; i++)
				if (!isalnum((unsigned char)val[i]))
					return -1;
			memcpy(id, val, vlen);
			id[vlen] = '\0';
			have_id = 1;
		}
	}
	return have_id ? 0 : -1;
}

/* One mx pattern (§3.2: a domain name, optionally "*." first): labels of
 * 1 to 63 letters, digits, '-' or '_', separated by single dots, none
 * empty (so no leading, doubled or trailing dot once the caller has taken
 * off the one root dot a name may end in). */
static int valid_pattern(const char *v, size_t n)
{
	size_t i = 0;
	if (n >= 2 && v[0] == '*' && v[1] == '.')
		i = 2;
	if (i == n)
		return 0;
	size_t label = 0;
	for (; i < n; i++) {
		char c = v[i];
		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
		} else if (isalnum((unsigned char)c) || c == '-' || c == '_') {
			if (++label > 63)
				return 0;
		} else {
			return 0;
		}
	}
	return label > 0;
}

int sts_policy_parse(const char *text, size_t len, struct sts_policy *p, char *why, size_t whylen)
{
	memset(p, 0, sizeof(*p));
	int have_version = 0, have_mode = 0, have_age = 0;
	if (len > (size_t)STS_POLICY_SIZE_MAX) {
		snprintf(why, whylen, "policy larger than %ld bytes", STS_POLICY_SIZE_MAX);
		return -1;
	}
	size_t i = 0;
	while (i < len) {
		size_t start = i;
		while (i < len && text[i] != '\n')
			i++;
		size_t end = i;
		if (i < len)
			i++; /* the LF */
		if (end > start && text[end - 1] == '\r')
			end--;
		/* sts-policy-field = field-name ":" *WSP field-value *WSP */
		const char *line = text + start;
		size_t n = end - start;
		if (n == 0)
			continue;
		const char *colon = memchr(line, ':', n);
		if (!colon) {
			snprintf(why, whylen, "line \"%.*s\" is not key: value", (int)(n > 40 ? 40 : n), line);
			return -1;
		}
		size_t klen = (size_t)(colon - line);
		const char *v = colon + 1;
		size_t vlen = n - klen - 1;
		while (vlen && is_wsp(*v))
			v++, vlen--;
		while (vlen && is_wsp(v[vlen - 1]))
			vlen--;
		if (klen == 7 && memcmp(line, "version", 7) == 0) {
			if (vlen != 5 || memcmp(v, "STSv1", 5) != 0) {
				snprintf(why, whylen, "version is not STSv1");
				return -1;
			}
			have_version = 1;
		} else if (klen == 4 && memcmp(line, "mode", 4) == 0) {
			if (vlen == 7 && memcmp(v, "enforce", 7) == 0)
				p->mode = STS_MODE_ENFORCE;
			else if (vlen == 7 && memcmp(v, "testing", 7) == 0)
				p->mode = STS_MODE_TESTING;
			else if (vlen == 4 && memcmp(v, "none", 4) == 0)
				p->mode = STS_MODE_NONE;
			else {
				snprintf(why, whylen, "mode \"%.*s\" is not enforce, testing or none",
					 (int)(vlen > 20 ? 20 : vlen), v);
				return -1;
			}
			have_mode = 1;
		} else if (klen == 7 && memcmp(line, "max_age", 7) == 0) {
			/* max-age-value = 1*10(DIGIT) */
			long age = 0;
			if (vlen == 0 || vlen > 10) {
				snprintf(why, whylen, "max_age is not 1 to 10 digits");
				return -1;
			}
			for (size_t k = 0; k < vlen; k++) {
				if (!isdigit((unsigned char)v[k])) {
					snprintf(why, whylen, "max_age is not a number");
					return -1;
				}
				age = age * 10 + (v[k] - '0');
			}
			/* §3.2: up to 31557600; larger values are capped there. */
			p->max_age = age > STS_MAX_AGE_MAX ? STS_MAX_AGE_MAX : age;
			have_age = 1;
		} else if (klen == 2 && memcmp(line, "mx", 2) == 0) {
			if (vlen && v[vlen - 1] == '.')
				vlen--;
			if (!valid_pattern(v, vlen) || vlen >= sizeof(p->mx[0])) {
				snprintf(why, whylen, "mx \"%.*s\" is not a host name or *.domain",
					 (int)(vlen > 60 ? 60 : vlen), v);
				return -1;
			}
			if (p->nmx >= STS_MX_MAX) {
				snprintf(why, whylen, "more than %d mx patterns", STS_MX_MAX);
				return -1;
			}
			for (size_t k = 0; k < vlen; k++)
				p->mx[p->nmx][k] = (char)tolower((unsigned char)v[k]);
			p->mx[p->nmx][vlen] = '\0';
			p->nmx++;
		}
		/* Other keys: ignored (§3.2, extension fields). */
	}
	if (!have_version || !have_mode || !have_age) {
		snprintf(why, whylen, "policy lacks %s", !have_version ? "version" : !have_mode ? "mode" : "max_age");
		return -1;
	}
	if (p->mode != STS_MODE_NONE && p->nmx == 0) {
		snprintf(why, whylen, "policy in mode %s names no mx", sts_mode_name(p->mode));
		return -1;
	}
	return 0;
}

int sts_mx_match(const struct sts_policy *p, const char *host)
{
	size_t hl = strlen(host);
	if (hl && host[hl - 1] == '.')
		hl--;
	for (int i = 0; i < p->nmx; i++) {
		const char *pat = p->mx[i];
		size_t pl = strlen(pat);
		if (pat[0] == '*' && pat[1] == '.') {
			/* "*.example.com" matches "mx.example.com", not
			 * "a.b.example.com" nor "example.com" (§4.1). */
			const char *dot = memchr(host, '.', hl);
			if (!dot || dot == host)
				continue;
			size_t rest = hl - (size_t)(dot - host);
			if (rest == pl - 1 && strncasecmp(dot, pat + 1, rest) == 0)
				return 1;
		} else if (hl == pl && strncasecmp(host, pat, hl) == 0) {
			return 1;
		}
	}
	return 0;
}
