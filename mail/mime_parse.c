/*
 * mime_parse.c - bounded MIME reader for outside mail (see mime_parse.h).
 *
 * The reader is lenient in what it accepts (bounces are written by every
 * kind of MTA) and strict in what it spends: nesting depth, part count,
 * header count and header value length are capped (util/limits.h), and
 * every pass over the input is linear.  Line ends may be CRLF or bare LF.
 */
#include "mail/mime_parse.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/base64.h"
#include "util/limits.h"
#include "util/xmalloc.h"

struct parse_ctx {
	int nparts;
};

static struct mime_part *parse_entity(struct parse_ctx *ctx, const char *data, size_t len, int depth);

void mime_part_free(struct mime_part *p)
{
	if (p == NULL)
		return;
	for (int i = 0; i < p->nhdrs; i++) {
		free(p->hdrs[i].name);
		free(p->hdrs[i].value);
	}
	free(p->hdrs);
	for (int i = 0; i < p->nchildren; i++)
		mime_part_free(p->children[i]);
	free(p->children);
	free(p->ctype);
	free(p->body);
	free(p);
}

/* Length of the line at data[off..len) without its line end; *next is
 * the offset of the following line. */
static size_t line_at(const char *data, size_t len, size_t off, size_t *next)
{
	const char *nl = memchr(data + off, '\n', len - off);
	size_t end = nl ? (size_t)(nl - data) : len;
	*next = nl ? end + 1 : len;
	if (end > off && data[end - 1] == '\r')
		end--;
	return end - off;
}

/* Appends n octets to a header value, keeping it under the cap and NUL-free. */
static void value_append(char **v, size_t *vlen, const char *s, size_t n)
{
	if (*vlen + n > MF_MIME_HEADER_VALUE_MAX)
		n = MF_MIME_HEADER_VALUE_MAX - *vlen;
	*v = xrealloc(*v, *vlen + n + 1);
	for (size_t i = 0; i < n; i++)
		(*v)[*vlen + i] = s[i] == '\0' ? ' ' : s[i];
	*vlen += n;
	(*v)[*vlen] = '\0';
}

static void value_trim(char *v)
{
	size_t n = strlen(v);
	while (n > 0 && isspace((unsigned char)v[n - 1]))
		v[--n] = '\0';
}

/* RFC 5322 §3.6.8: field-name is printable US-ASCII except ':'.  Returns
 * the name length (trailing white space allowed, obsolete syntax §4.5.8)
 * or 0 when the line is not a header field. */
static size_t field_name_len(const char *s, size_t n, size_t *colon)
{
	size_t i = 0;
	while (i < n && s[i] > 32 && s[i] < 127 && s[i] != ':')
		i++;
	size_t name = i;
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (name == 0 || i >= n || s[i] != ':')
		return 0;
	*colon = i;
	return name;
}

size_t mime_parse_headers(const char *data, size_t len, struct mime_part *p)
{
	size_t off = 0, vlen = 0;
	int cur = -1;  /* index of the field being read, -1 when none */
	int first = 1;
	while (off < len) {
		size_t next;
		size_t n = line_at(data, len, off, &next);
		const char *s = data + off;
		if (n == 0)
			return next; /* the empty line that ends the header (RFC 5322 §2.1) */
		if (s[0] == ' ' || s[0] == '\t') {
			/* RFC 5322 §2.2.3: unfolding removes the CRLF before WSP. */
			if (cur >= 0)
				value_append(&p->hdrs[cur].value, &vlen, s, n);
			off = next;
			first = 0;
			continue;
		}
		size_t colon;
		size_t name = field_name_len(s, n, &colon);
		if (name == 0) {
			if (first && n >= 5 && memcmp(s, "From ", 5) == 0) {
				off = next; /* an mbox separator line */
				first = 0;
				continue;
			}
			return off; /* not a header: the body starts here */
		}
		first = 0;
		if (cur >= 0)
			value_trim(p->hdrs[cur].value);
		cur = -1;
		if (p->nhdrs < MF_MIME_HEADERS_MAX) {
			p->hdrs = xrealloc(p->hdrs, (size_t)(p->nhdrs + 1) * sizeof(*p->hdrs));
			cur = p->nhdrs++;
			p->hdrs[cur].name = xstrndup(s, name);
			p->hdrs[cur].value = NULL;
			vlen = 0;
			size_t v = colon + 1;
			while (v < n && (s[v] == ' ' || s[v] == '\t'))
				v++;
			value_append(&p->hdrs[cur].value, &vlen, s + v, n - v);
		}
		off = next;
	}
	if (cur >= 0)
		value_trim(p->hdrs[cur].value);
	return len;
}

const char *mime_header_get(const struct mime_part *p, const char *name)
{
	for (int i = 0; p && i < p->nhdrs; i++)
		if (strcasecmp(p->hdrs[i].name, name) == 0)
			return p->hdrs[i].value;
	return NULL;
}

int mime_param_get(const char *value, const char *param, char *out, size_t outsz)
{
	size_t plen = strlen(param);
	const char *s = value ? strchr(value, ';') : NULL;
	while (s != NULL) {
		s++;
		while (*s == ' ' || *s == '\t')
			s++;
		if (strncasecmp(s, param, plen) == 0) {
			const char *v = s + plen;
			while (*v == ' ' || *v == '\t')
				v++;
			if (*v == '=') {
				v++;
				while (*v == ' ' || *v == '\t')
					v++;
				size_t o = 0;
				if (*v == '"') {
					/* RFC 2045 §5.1 quoted-string, RFC 5322 §3.2.4 quoted-pair. */
					for (v++; *v && *v != '"'; v++) {
						if (*v == '\\' && v[1])
							v++;
						if (o + 1 < outsz)
							out[o++] = *v;
					}
				} else {
					for (; *v && *v != ';' && *v != ' ' && *v != '\t'; v++)
						if (o + 1 < outsz)
							out[o++] = *v;
				}
				if (outsz > 0)
					out[o] = '\0';
				return 0;
			}
		}
		/* Skip to the next ';' outside quotes. */
		int q = 0;
		for (; *s; s++) {
			if (*s == '\\' && q && s[1])
				s++;
			else if (*s == '"')
				q = !q;
			else if (*s == ';' && !q)
				break;
		}
		if (*s != ';')
			s = NULL;
	}
	return -1;
}

/* "Type/Subtype; params" -> "type/subtype", or NULL when malformed. */
static char *content_type(const char *v)
{
	if (v == NULL)
		return NULL;
	while (*v == ' ' || *v == '\t')
		v++;
	size_t n = strcspn(v, "; \t(");
	if (n == 0 || n > 127 || memchr(v, '/', n) == NULL)
		return NULL;
	char *t = xstrndup(v, n);
	for (char *c = t; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	return t;
}

/* RFC 2045 §6.8: characters outside the alphabet are ignored; '=' ends. */
static char *decode_base64(const char *s, size_t n, size_t *outlen)
{
	size_t max = n / 4 * 3 + 3;
	char *out = xmalloc(max + 1);
	long o = base64_decode(s, n, (unsigned char *)out, max, B64_MIME);
	*outlen = o > 0 ? (size_t)o : 0;
	out[*outlen] = '\0';
	return out;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (unsigned char)tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* RFC 2045 §6.7: "=XX" is an octet, "=" at the end of a line is a soft
 * line break; a malformed "=" is kept as it is (rule 1, robustness). */
static char *decode_qp(const char *s, size_t n, size_t *outlen)
{
	char *out = xmalloc(n + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '=') {
			out[o++] = s[i];
			continue;
		}
		size_t j = i + 1;
		while (j < n && (s[j] == ' ' || s[j] == '\t'))
			j++;
		if (j < n && s[j] == '\r' && j + 1 < n && s[j + 1] == '\n') {
			i = j + 1;
			continue;
		}
		if (j < n && s[j] == '\n') {
			i = j;
			continue;
		}
		if (j == n) {
			i = j;
			continue;
		}
		int h = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
		int l = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
		if (h >= 0 && l >= 0) {
			out[o++] = (char)(h * 16 + l);
			i += 2;
		} else {
			out[o++] = '=';
		}
	}
	out[o] = '\0';
	*outlen = o;
	return out;
}

static void add_child(struct mime_part *p, struct mime_part *c)
{
	if (c == NULL)
		return;
	p->children = xrealloc(p->children, (size_t)(p->nchildren + 1) * sizeof(*p->children));
	p->children[p->nchildren++] = c;
}

/* RFC 2046 §5.1.1: a delimiter line is "--" boundary, then optional
 * white space; the close delimiter has "--" after the boundary. Returns
 * 0 not a delimiter, 1 delimiter, 2 close delimiter. */
static int delimiter(const char *s, size_t n, const char *b, size_t blen)
{
	if (n < blen + 2 || s[0] != '-' || s[1] != '-' || memcmp(s + 2, b, blen) != 0)
		return 0;
	size_t i = blen + 2;
	int close = 0;
	if (i + 1 < n + 1 && n - i >= 2 && s[i] == '-' && s[i + 1] == '-') {
		close = 1;
		i += 2;
	}
	for (; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t')
			return 0;
	return close ? 2 : 1;
}

static void split_multipart(struct parse_ctx *ctx, struct mime_part *p, const char *data, size_t len,
			    const char *boundary)
{
	size_t blen = strlen(boundary);
	size_t off = 0;
	long start = -1;
	while (off < len) {
		size_t next;
		size_t n = line_at(data, len, off, &next);
		int d = delimiter(data + off, n, boundary, blen);
		if (d != 0) {
			if (start >= 0) {
				/* The line end before the delimiter belongs to it. */
				size_t end = off;
				if (end > (size_t)start && data[end - 1] == '\n')
					end--;
				if (end > (size_t)start && data[end - 1] == '\r')
					end--;
				if (ctx->nparts >= MF_MIME_PARTS_MAX)
					return;
				add_child(p, parse_entity(ctx, data + start, end - (size_t)start, p->depth + 1));
			}
			if (d == 2)
				return;
			start = (long)next;
		}
		off = next;
	}
	/* No close delimiter: the last part runs to the end (robustness). */
	if (start >= 0 && (size_t)start < len && ctx->nparts < MF_MIME_PARTS_MAX)
		add_child(p, parse_entity(ctx, data + start, len - (size_t)start, p->depth + 1));
}

static struct mime_part *parse_entity(struct parse_ctx *ctx, const char *data, size_t len, int depth)
{
	struct mime_part *p = xcalloc(1, sizeof(*p));
	p->depth = depth;
	ctx->nparts++;
	size_t off = mime_parse_headers(data, len, p);
	const char *ctv = mime_header_get(p, "Content-Type");
	p->ctype = content_type(ctv);
	if (p->ctype == NULL)
		p->ctype = xstrdup("text/plain");
	const char *body = data + off;
	size_t blen = len - off;

	char boundary[256];
	if (strncmp(p->ctype, "multipart/", 10) == 0 &&
	    mime_param_get(ctv, "boundary", boundary, sizeof(boundary)) == 0 && boundary[0] != '\0') {
		p->body = xstrdup("");
		if (depth < MF_MIME_DEPTH_MAX)
			split_multipart(ctx, p, body, blen, boundary);
		return p;
	}

	char cte[32] = "";
	const char *ctev = mime_header_get(p, "Content-Transfer-Encoding");
	if (ctev)
		snprintf(cte, sizeof(cte), "%.*s", (int)strcspn(ctev, " \t;("), ctev);
	if (strcasecmp(cte, "base64") == 0) {
		p->body = decode_base64(body, blen, &p->body_len);
	} else if (strcasecmp(cte, "quoted-printable") == 0) {
		p->body = decode_qp(body, blen, &p->body_len);
	} else {
		p->body = xstrndup(body, blen);
		p->body_len = strlen(p->body);
	}

	if (depth < MF_MIME_DEPTH_MAX && ctx->nparts < MF_MIME_PARTS_MAX) {
		if (strcmp(p->ctype, "message/rfc822") == 0 || strcmp(p->ctype, "message/global") == 0) {
			add_child(p, parse_entity(ctx, p->body, p->body_len, depth + 1));
		} else if (strcmp(p->ctype, "text/rfc822-headers") == 0 ||
			   strcmp(p->ctype, "message/global-headers") == 0) {
			/* RFC 6522 §4 (formerly RFC 3462): the returned headers only. */
			struct mime_part *h = xcalloc(1, sizeof(*h));
			h->depth = depth + 1;
			ctx->nparts++;
			mime_parse_headers(p->body, p->body_len, h);
			h->ctype = xstrdup("text/plain");
			h->body = xstrdup("");
			add_child(p, h);
		}
	}
	return p;
}

int mime_parse(const char *data, size_t len, struct mime_part **out, char *err, size_t errlen)
{
	*out = NULL;
	if (len > MF_BOUNCE_SIZE_MAX) {
		snprintf(err, errlen, "message of %zu octets is larger than %u", len, MF_BOUNCE_SIZE_MAX);
		return -1;
	}
	struct parse_ctx ctx = { 0 };
	*out = parse_entity(&ctx, data, len, 0);
	return 0;
}
