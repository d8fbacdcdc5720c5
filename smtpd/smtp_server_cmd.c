/*
 * smtp_server_cmd.c - SMTP command line parser (see smtp_server_cmd.h).
 *
 * Grammar from RFC 5321 §4.1.1 and §4.1.2:
 *   mail = "MAIL FROM:" Reverse-path [SP Mail-parameters]
 *   rcpt = "RCPT TO:" ( "<Postmaster@" Domain ">" / "<Postmaster>" /
 *          Forward-path ) [SP Rcpt-parameters]
 *   Path = "<" [ A-d-l ":" ] Mailbox ">"
 * Verbs are case-insensitive (§2.4).  We are lenient where common clients
 * are sloppy (spaces after the colon) and strict where it matters: no
 * control octets in paths, no 8-bit octets either unless the caller
 * offers SMTPUTF8 (smtp_cmd_parse_utf8(): RFC 6531 §3.3 lets UTF-8 into
 * the mailbox, and MAIL takes the SMTPUTF8 parameter, §3.4), RFC 5321
 * §4.5.3.1 length limits, and only the parameters we advertise.
 */
#include "smtpd/smtp_server_cmd.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
	const char *name;
	enum smtp_verb verb;
} verbs[] = {
	{ "HELO", SMTP_VERB_HELO }, { "EHLO", SMTP_VERB_EHLO }, { "MAIL", SMTP_VERB_MAIL },
	{ "RCPT", SMTP_VERB_RCPT }, { "DATA", SMTP_VERB_DATA }, { "RSET", SMTP_VERB_RSET },
	{ "NOOP", SMTP_VERB_NOOP }, { "QUIT", SMTP_VERB_QUIT }, { "VRFY", SMTP_VERB_VRFY },
	{ "EXPN", SMTP_VERB_EXPN }, { "HELP", SMTP_VERB_HELP }, { "STARTTLS", SMTP_VERB_STARTTLS },
	{ "AUTH", SMTP_VERB_AUTH }, { "BDAT", SMTP_VERB_BDAT },
};

const char *smtp_verb_name(enum smtp_verb v)
{
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (verbs[i].verb == v)
			return verbs[i].name;
	return "UNKNOWN";
}

/* Copies [p, p+n) into out as a C string; -1 if it does not fit. */
static int copy_str(char *out, size_t outsz, const char *p, size_t n)
{
	if (n >= outsz)
		return -1;
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

/*
 * Parses "<...>" at *pp; stores the mailbox in out and advances *pp past
 * '>'.  Quoted local parts (with backslash escapes) may contain '>' and
 * spaces.  Returns 0 or -1.
 */
static int parse_path(const char **pp, const char *end, char *out, size_t outsz, int allow_null,
		      int allow_postmaster, int utf8, int *saw_8bit)
{
	const char *p = *pp;
	if (p >= end || *p != '<')
		return -1;
	p++;
	const char *start = p;
	int quoted = 0;
	for (; p < end; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8))
			return -1;
		if (c >= 0x80)
			*saw_8bit = 1;
		if (quoted && c == '\\') {
			/* quoted-pairSMTP = %d92 %d32-126 (RFC 5321 §4.1.2) */
			if (++p >= end || (unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
				return -1;
			continue;
		}
		if (c == '"')
			quoted = !quoted;
		else if (!quoted && c == '>')
			break;
		else if (!quoted && (c == ' ' || c == '<'))
			return -1;
	}
	if (p >= end || quoted)
		return -1;
	const char *mb = start, *mbend = p;
	*pp = p + 1;
	if (mb == mbend) {
		if (!allow_null)
			return -1;
		out[0] = '\0';
		return 0;
	}
	/* RFC 5321 §4.1.2 / Appendix C: a source route is accepted and ignored. */
	if (*mb == '@') {
		const char *colon = memchr(mb, ':', (size_t)(mbend - mb));
		if (colon == NULL)
			return -1;
		mb = colon + 1;
	}
	if (mb == mbend || (size_t)(mbend - mb) > MF_ADDRESS_MAX)
		return -1;
	/* The domain starts after the last '@' outside quotes. */
	const char *at = NULL;
	quoted = 0;
	for (const char *q = mb; q < mbend; q++) {
		if (quoted && *q == '\\') {
			q++;
			continue;
		}
		if (*q == '"')
			quoted = !quoted;
		else if (!quoted && *q == '@')
			at = q;
	}
	if (at == NULL) {
		/* Only "<Postmaster>" may come without a domain (§4.1.1.3). */
		if (!allow_postmaster || (size_t)(mbend - mb) != 10 || strncasecmp(mb, "postmaster", 10) != 0)
			return -1;
	} else {
		size_t local = (size_t)(at - mb), dom = (size_t)(mbend - at - 1);
		if (local == 0 || local > MF_LOCAL_PART_MAX || dom == 0 || dom > MF_DOMAIN_MAX)
			return -1;
		for (const char *q = at + 1; q < mbend; q++)
			if (*q == '"' || *q == '\\' || *q == '@')
				return -1;
	}
	return copy_str(out, outsz, mb, (size_t)(mbend - mb));
}

/* MAIL parameters: SIZE=n (RFC 1870 §6) and BODY=7BIT|8BITMIME (RFC 6152). */
static enum smtp_cmd_result parse_mail_params(const char *p, const char *end, struct smtp_cmd *out, int utf8)
{
	while (p < end) {
		while (p < end && *p == ' ')
			p++;
		if (p >= end)
			break;
		const char *kw = p;
		while (p < end && *p != ' ')
			p++;
		size_t n = (size_t)(p - kw);
		const char *eq = memchr(kw, '=', n);
		size_t klen = eq ? (size_t)(eq - kw) : n;
		const char *val = eq ? eq + 1 : NULL;
		size_t vlen = eq ? (size_t)(p - val) : 0;
		if (klen == 4 && strncasecmp(kw, "SIZE", 4) == 0 && val && vlen > 0 && vlen <= 18) {
			long long v = 0;
			for (size_t i = 0; i < vlen; i++) {
				if (!isdigit((unsigned char)val[i]))
					return SMTP_CMD_BAD_PARAM;
				v = v * 10 + (val[i] - '0');
			}
			out->size = v;
		} else if (klen == 4 && strncasecmp(kw, "BODY", 4) == 0 && val) {
			if (vlen == 4 && strncasecmp(val, "7BIT", 4) == 0)
				out->body = SMTP_BODY_7BIT;
			else if (vlen == 8 && strncasecmp(val, "8BITMIME", 8) == 0)
				out->body = SMTP_BODY_8BITMIME;
			else
				return SMTP_CMD_BAD_PARAM;
		} else if (utf8 && n == 8 && strncasecmp(kw, "SMTPUTF8", 8) == 0) {
			out->smtputf8 = 1; /* RFC 6531 §3.4, no value */
		} else {
			return SMTP_CMD_BAD_PARAM;
		}
	}
	return SMTP_CMD_OK;
}

/* "FROM:" / "TO:" then optional spaces, the path, then parameters. */
static enum smtp_cmd_result parse_mail_rcpt(const char *p, const char *end, struct smtp_cmd *out, int utf8)
{
	int mail = out->verb == SMTP_VERB_MAIL;
	const char *kw = mail ? "FROM:" : "TO:";
	size_t kwlen = strlen(kw);
	if ((size_t)(end - p) < kwlen || strncasecmp(p, kw, kwlen) != 0)
		return SMTP_CMD_BAD_SYNTAX;
	p += kwlen;
	while (p < end && *p == ' ')
		p++;
	if (parse_path(&p, end, out->path, sizeof(out->path), mail, !mail, utf8, &out->path_8bit) != 0)
		return SMTP_CMD_BAD_PATH;
	if (p < end && *p != ' ')
		return SMTP_CMD_BAD_PATH;
	if (mail)
		return parse_mail_params(p, end, out, utf8);
	while (p < end && *p == ' ')
		p++;
	return p < end ? SMTP_CMD_BAD_PARAM : SMTP_CMD_OK;
}

static enum smtp_cmd_result parse_line(const char *line, size_t len, struct smtp_cmd *out, int utf8)
{
	memset(out, 0, sizeof(*out));
	out->size = -1;
	out->verb = SMTP_VERB_UNKNOWN;
	const char *end = line + len;
	while (end > line && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	const char *p = line;
	while (p < end && *p != ' ')
		p++;
	size_t vlen = (size_t)(p - line);
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (strlen(verbs[i].name) == vlen && strncasecmp(line, verbs[i].name, vlen) == 0)
			out->verb = verbs[i].verb;
	if (out->verb == SMTP_VERB_UNKNOWN)
		return SMTP_CMD_BAD_VERB;
	while (p < end && *p == ' ')
		p++;
	for (const char *q = p; q < end; q++)
		if ((unsigned char)*q < 0x20 && *q != '\t')
			return SMTP_CMD_BAD_SYNTAX;
	switch (out->verb) {
	case SMTP_VERB_MAIL:
	case SMTP_VERB_RCPT:
		return parse_mail_rcpt(p, end, out, utf8);
	case SMTP_VERB_HELO:
	case SMTP_VERB_EHLO:
		/* §4.1.1.1: one domain or address literal, nothing else. */
		if (p == end || memchr(p, ' ', (size_t)(end - p)) || copy_str(out->arg, sizeof(out->arg), p, (size_t)(end - p)))
			return SMTP_CMD_BAD_SYNTAX;
		return SMTP_CMD_OK;
	case SMTP_VERB_DATA:
	case SMTP_VERB_RSET:
	case SMTP_VERB_QUIT:
	case SMTP_VERB_STARTTLS:
		return p == end ? SMTP_CMD_OK : SMTP_CMD_BAD_SYNTAX;
	default:
		/* NOOP, HELP, VRFY ... take (and ignore) an argument. */
		return copy_str(out->arg, sizeof(out->arg), p, (size_t)(end - p)) ? SMTP_CMD_BAD_SYNTAX : SMTP_CMD_OK;
	}
}

enum smtp_cmd_result smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *out)
{
	return parse_line(line, len, out, 0);
}

enum smtp_cmd_result smtp_cmd_parse_utf8(const char *line, size_t len, struct smtp_cmd *out)
{
	return parse_line(line, len, out, 1);
}
