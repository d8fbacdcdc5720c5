/*
 * address.c - RFC 5322 mailbox parsing (see address.h).
 *
 * Grammar implemented (RFC 5322 §3.4, §3.4.1, §3.2.3, §3.2.4):
 *   mailbox      = name-addr / addr-spec
 *   name-addr    = [display-name] "<" addr-spec ">"
 *   display-name = phrase (atoms, '.' tolerated as in obs-phrase, UTF-8)
 *                  / quoted-string
 *   addr-spec    = local-part "@" domain
 *   local-part   = dot-atom / quoted-string
 * Comments (CFWS) and obsolete forms are not accepted: an API caller has no
 * use for them and they are a classic source of parser disagreement.
 * Domains follow RFC 5321 §4.1.2 / RFC 1035 §2.3.1 (LDH labels); address
 * literals are refused.  Sizes follow RFC 5321 §4.5.3.1.
 */
#include "mail/address.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/limits.h"
#include "util/xmalloc.h"

/* RFC 5322 §3.2.3 atext. */
static int is_atext(unsigned char c)
{
	return isalnum(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* RFC 5322 §3.2.4 qtext: printable US-ASCII except '\' and '"'. */
static int is_qtext(unsigned char c)
{
	return c == 33 || (c >= 35 && c <= 91) || (c >= 93 && c <= 126);
}

static int has_ctl_break(const char *s)
{
	for (; *s; s++)
		if (*s == '\r' || *s == '\n')
			return 1;
	return 0;
}

/* Validates a quoted-string local part "..." of n octets. */
static int check_quoted_local(const char *p, size_t n, char *err, size_t errlen)
{
	if (n < 2 || p[n - 1] != '"') {
		snprintf(err, errlen, "unterminated quoted local part");
		return -1;
	}
	for (size_t i = 1; i < n - 1; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '\\') {
			/* quoted-pair = "\" (VCHAR / WSP) */
			unsigned char d = (unsigned char)p[i + 1];
			if (i + 1 >= n - 1 || !(d == ' ' || d == '\t' || (d >= 33 && d <= 126))) {
				snprintf(err, errlen, "bad escape in quoted local part");
				return -1;
			}
			i++;
		} else if (!is_qtext(c) && c != ' ' && c != '\t') {
			snprintf(err, errlen, "character 0x%02x not allowed in quoted local part", c);
			return -1;
		}
	}
	return 0;
}

/* Validates a dot-atom local part of n octets. */
static int check_dot_atom(const char *p, size_t n, char *err, size_t errlen)
{
	if (n == 0) {
		snprintf(err, errlen, "empty local part");
		return -1;
	}
	if (p[0] == '.' || p[n - 1] == '.') {
		snprintf(err, errlen, "local part must not start or end with a dot");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '.') {
			if (p[i + 1] == '.') {
				snprintf(err, errlen, "local part must not contain two dots in a row");
				return -1;
			}
		} else if (c >= 0x80) {
			snprintf(err, errlen, "non-ASCII local parts need SMTPUTF8, which is not supported");
			return -1;
		} else if (!is_atext(c)) {
			snprintf(err, errlen, "character '%c' not allowed in local part (quote it)", isprint(c) ? c : '?');
			return -1;
		}
	}
	return 0;
}

/* RFC 1035 §2.3.1 / RFC 5321 §4.1.2: LDH labels, 1 to MF_DOMAIN_LABEL_MAX
 * octets, MF_DOMAIN_MAX in all. */
static int check_domain(const char *d, char *err, size_t errlen)
{
	size_t n = strlen(d);
	if (n == 0) {
		snprintf(err, errlen, "missing domain");
		return -1;
	}
	if (d[0] == '[') {
		snprintf(err, errlen, "address literals are not accepted; use a domain name");
		return -1;
	}
	if (n > MF_DOMAIN_MAX) {
		snprintf(err, errlen, "domain longer than %d octets", MF_DOMAIN_MAX);
		return -1;
	}
	int labels = 0;
	const char *p = d;
	while (*p) {
		const char *e = strchr(p, '.');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (len == 0) {
			snprintf(err, errlen, "empty label in domain");
			return -1;
		}
		if (len > MF_DOMAIN_LABEL_MAX) {
			snprintf(err, errlen, "domain label longer than %d octets", MF_DOMAIN_LABEL_MAX);
			return -1;
		}
		if (p[0] == '-' || p[len - 1] == '-') {
			snprintf(err, errlen, "domain label must not start or end with '-'");
			return -1;
		}
		for (size_t i = 0; i < len; i++) {
			unsigned char c = (unsigned char)p[i];
			if (c >= 0x80) {
				snprintf(err, errlen, "internationalised domain: give it in its ASCII (xn--) form");
				return -1;
			}
			if (!isalnum(c) && c != '-') {
				snprintf(err, errlen, "character '%c' not allowed in domain", isprint(c) ? c : '?');
				return -1;
			}
		}
		labels++;
		if (!e)
			break;
		p = e + 1;
		if (*p == '\0') {
			snprintf(err, errlen, "domain must not end with a dot");
			return -1;
		}
	}
	if (labels < 2) {
		snprintf(err, errlen, "domain must be fully qualified (e.g. example.com)");
		return -1;
	}
	return 0;
}

int address_check_spec(const char *addr, char *err, size_t errlen)
{
	if (has_ctl_break(addr)) {
		snprintf(err, errlen, "CR or LF in address");
		return -1;
	}
	size_t n = strlen(addr);
	if (n == 0) {
		snprintf(err, errlen, "empty address");
		return -1;
	}
	if (n > MF_ADDRESS_MAX) {
		snprintf(err, errlen, "address longer than %d octets", MF_ADDRESS_MAX);
		return -1;
	}
	const char *at = strrchr(addr, '@');
	if (at == NULL) {
		snprintf(err, errlen, "missing '@'");
		return -1;
	}
	size_t ln = (size_t)(at - addr);
	if (ln == 0) {
		snprintf(err, errlen, "empty local part");
		return -1;
	}
	if (ln > MF_LOCAL_PART_MAX) {
		snprintf(err, errlen, "local part longer than %d octets", MF_LOCAL_PART_MAX);
		return -1;
	}
	int rc = addr[0] == '"' ? check_quoted_local(addr, ln, err, errlen) : check_dot_atom(addr, ln, err, errlen);
	if (rc < 0)
		return -1;
	return check_domain(at + 1, err, errlen);
}

void address_domain_lower(const char *addr, char *out, size_t outsz)
{
	const char *at = strrchr(addr, '@');
	const char *d = at ? at + 1 : "";
	size_t i = 0;
	for (; d[i] && i + 1 < outsz; i++)
		out[i] = (char)tolower((unsigned char)d[i]);
	if (outsz)
		out[i] = '\0';
}

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* Parses a display name that ends before '<' at end; NULL name when blank. */
static int parse_display_name(const char *s, const char *end, char **name, char *err, size_t errlen)
{
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	s = skip_ws(s);
	*name = NULL;
	if (s == end)
		return 0;
	struct buf b;
	buf_init(&b, MF_MIME_LINE_MAX);
	if (*s == '"') {
		/* quoted-string, RFC 5322 §3.2.4; UTF-8 allowed (RFC 6532). */
		const char *p = s + 1;
		for (; p < end && *p != '"'; p++) {
			if (*p == '\\' && p + 1 < end)
				p++;
			if (buf_putc(&b, *p) < 0)
				goto toolong;
		}
		if (p >= end || p + 1 != end) {
			snprintf(err, errlen, "bad quoting in display name");
			buf_cleanup(&b);
			return -1;
		}
	} else {
		/* phrase: atoms separated by spaces; '.' as in obs-phrase. */
		for (const char *p = s; p < end; p++) {
			unsigned char c = (unsigned char)*p;
			if (!(is_atext(c) || c >= 0x80 || c == ' ' || c == '\t' || c == '.')) {
				snprintf(err, errlen, "character '%c' in display name must be quoted", isprint(c) ? c : '?');
				buf_cleanup(&b);
				return -1;
			}
			if (buf_putc(&b, (char)c) < 0)
				goto toolong;
		}
	}
	*name = buf_steal(&b, NULL);
	return 0;
toolong:
	snprintf(err, errlen, "display name too long");
	buf_cleanup(&b);
	return -1;
}

int address_parse(const char *s, struct mail_address *out, char *err, size_t errlen)
{
	out->name = NULL;
	out->addr = NULL;
	if (has_ctl_break(s)) {
		snprintf(err, errlen, "CR or LF in address");
		return -1;
	}
	const char *lt = NULL;
	/* The '<' that opens the angle-addr is the last one outside quotes. */
	int inq = 0;
	for (const char *p = s; *p; p++) {
		if (*p == '\\' && inq && p[1])
			p++;
		else if (*p == '"')
			inq = !inq;
		else if (*p == '<' && !inq)
			lt = p;
	}
	if (lt == NULL) {
		const char *a = skip_ws(s);
		size_t n = strlen(a);
		while (n && (a[n - 1] == ' ' || a[n - 1] == '\t'))
			n--;
		char *spec = xstrndup(a, n);
		if (address_check_spec(spec, err, errlen) < 0) {
			free(spec);
			return -1;
		}
		out->addr = spec;
		return 0;
	}
	const char *gt = strchr(lt, '>');
	if (gt == NULL || *skip_ws(gt + 1) != '\0') {
		snprintf(err, errlen, "expected 'Name <local@domain>'");
		return -1;
	}
	char *spec = xstrndup(lt + 1, (size_t)(gt - lt - 1));
	if (address_check_spec(spec, err, errlen) < 0) {
		free(spec);
		return -1;
	}
	char *name = NULL;
	if (parse_display_name(s, lt, &name, err, errlen) < 0) {
		free(spec);
		return -1;
	}
	out->name = name;
	out->addr = spec;
	return 0;
}
