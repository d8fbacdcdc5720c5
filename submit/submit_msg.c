/*
 * submit_msg.c - checking and preparing a submitted message (see
 * submit_msg.h).  One pass over every octet for the line rules, then one
 * over the header section, field by field.
 */
#include "submit/submit_msg.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util/json_escape.h"
#include "util/xmalloc.h"

/* RFC 5322 §2.1.1: at most 998 octets before the CRLF. */
#define LINE_MAX_OCTETS 998

static enum submit_msg_status fail(struct submit_msg *m, enum submit_msg_status st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static enum submit_msg_status fail(struct submit_msg *m, enum submit_msg_status st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m->why, sizeof(m->why), fmt, ap);
	va_end(ap);
	return st;
}

/* The octet rules of submit_msg.h, over the whole message. */
static enum submit_msg_status scan_octets(const char *d, size_t len, const struct submit_msg_params *p,
					  struct submit_msg *m)
{
	size_t line = 0, lineno = 1;
	int eight = p->body_8bitmime || p->smtputf8;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)d[i];
		if (c == '\r') {
			if (i + 1 >= len || d[i + 1] != '\n')
				return fail(m, SUBMIT_MSG_BARE_EOL, "bare CR in line %zu", lineno);
			i++;
			line = 0;
			lineno++;
			continue;
		}
		if (c == '\n')
			return fail(m, SUBMIT_MSG_BARE_EOL, "bare LF in line %zu", lineno);
		if (c == '\0')
			return fail(m, SUBMIT_MSG_NUL, "NUL octet in line %zu", lineno);
		if (c >= 0x80 && !eight)
			return fail(m, SUBMIT_MSG_8BIT, "8-bit octet in line %zu", lineno);
		if (++line > LINE_MAX_OCTETS)
			return fail(m, SUBMIT_MSG_LONG_LINE, "line %zu is longer than 998 octets", lineno);
	}
	return SUBMIT_MSG_OK;
}

/* The unfolded value of a field (CRLFs removed, outer blanks trimmed). */
static char *unfold(const char *v, size_t n)
{
	char *out = xmalloc(n + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i++)
		if (v[i] != '\r' && v[i] != '\n')
			out[o++] = v[i];
	size_t b = 0;
	while (b < o && (out[b] == ' ' || out[b] == '\t'))
		b++;
	while (o > b && (out[o - 1] == ' ' || out[o - 1] == '\t'))
		o--;
	memmove(out, out + b, o - b);
	out[o - b] = '\0';
	return out;
}

static void append_line(char **list, const char *v)
{
	if (*list == NULL) {
		*list = xstrdup(v);
		return;
	}
	char *n = xasprintf("%s\n%s", *list, v);
	free(*list);
	*list = n;
}

static enum submit_msg_status add_tag(struct submit_msg *m, char *v)
{
	size_t n = strlen(v);
	if (n == 0 || n > MF_TAG_LEN_MAX) {
		free(v);
		return fail(m, SUBMIT_MSG_BAD_TAG, "X-Mailferry-Tag must be 1 to %zu octets", (size_t)MF_TAG_LEN_MAX);
	}
	if (m->ntags >= MF_TAGS_MAX) {
		free(v);
		return fail(m, SUBMIT_MSG_BAD_TAG, "more than %zu X-Mailferry-Tag fields", (size_t)MF_TAGS_MAX);
	}
	m->tags[m->ntags++] = v;
	return SUBMIT_MSG_OK;
}

/* Adds "key=value" to the metadata object (a later key wins, as in
 * jsonb). */
static enum submit_msg_status add_meta(struct submit_msg *m, const char *v)
{
	const char *eq = strchr(v, '=');
	size_t klen = eq ? (size_t)(eq - v) : 0;
	while (klen > 0 && (v[klen - 1] == ' ' || v[klen - 1] == '\t'))
		klen--;
	if (klen == 0)
		return fail(m, SUBMIT_MSG_BAD_META, "X-Mailferry-Metadata must be key=value");
	const char *val = eq + 1;
	while (*val == ' ' || *val == '\t')
		val++;
	struct buf *b = &m->metadata;
	int first = b->len == 2;
	b->len--; /* the closing brace */
	b->data[b->len] = '\0';
	if ((!first && buf_putc(b, ',') != 0) || json_escape(b, v, klen, 0) != 0 || buf_putc(b, ':') != 0 ||
	    json_escape(b, val, strlen(val), 0) != 0 || buf_putc(b, '}') != 0)
		return fail(m, SUBMIT_MSG_BAD_META, "X-Mailferry-Metadata over %d octets in all", MF_METADATA_MAX);
	return SUBMIT_MSG_OK;
}

/* A field name: printable ASCII but ':' (RFC 5322 §2.2). */
static int is_ftext(unsigned char c)
{
	return c >= 33 && c <= 126 && c != ':';
}

static int name_is(const char *name, size_t n, const char *want)
{
	return strlen(want) == n && strncasecmp(name, want, n) == 0;
}

/* The Message-ID's content without <> (RFC 5322 §3.6.4), or NULL. */
static char *msgid_strip(const char *v)
{
	const char *lt = strchr(v, '<');
	const char *gt = lt ? strchr(lt, '>') : NULL;
	if (lt == NULL || gt == NULL || gt == lt + 1)
		return NULL;
	for (const char *q = lt + 1; q < gt; q++)
		if ((unsigned char)*q <= ' ' || *q == '<')
			return NULL;
	return xstrndup(lt + 1, (size_t)(gt - lt - 1));
}

/* One header field: name[0..nlen), the whole field raw[0..rawlen) with its
 * CRLFs, value[0..vlen) after the colon.  Copies it to the body unless it
 * is one of ours. */
static enum submit_msg_status field(struct submit_msg *m, const char *name, size_t nlen, const char *raw,
				    size_t rawlen, const char *value, size_t vlen, int *froms, int *date)
{
	if (name_is(name, nlen, "X-Mailferry-Tag"))
		return add_tag(m, unfold(value, vlen));
	if (name_is(name, nlen, "X-Mailferry-Metadata")) {
		char *v = unfold(value, vlen);
		enum submit_msg_status st = add_meta(m, v);
		free(v);
		return st;
	}
	if (name_is(name, nlen, "From")) {
		if (++*froms > 1)
			return fail(m, SUBMIT_MSG_NO_FROM, "more than one From: field (RFC 5322 §3.6)");
		m->from = unfold(value, vlen);
	} else if (name_is(name, nlen, "Subject") && m->subject == NULL) {
		m->subject = unfold(value, vlen);
	} else if (name_is(name, nlen, "Date")) {
		*date = 1;
	} else if (name_is(name, nlen, "Message-ID")) {
		char *v = unfold(value, vlen);
		char *id = msgid_strip(v);
		free(v);
		if (id == NULL || m->message_id != NULL) {
			free(id);
			return fail(m, SUBMIT_MSG_BAD_HEADER, "%s", m->message_id ? "more than one Message-ID: field"
										   : "Message-ID: is not <id-left@id-right> (RFC 5322 §3.6.4)");
		}
		m->message_id = id;
	} else if (name_is(name, nlen, "To") || name_is(name, nlen, "Cc")) {
		char *v = unfold(value, vlen);
		append_line(name_is(name, nlen, "To") ? &m->to : &m->cc, v);
		free(v);
	}
	if (buf_append(&m->body, raw, rawlen) != 0)
		return fail(m, SUBMIT_MSG_TOO_BIG, "message over %zu octets", m->body.max);
	return SUBMIT_MSG_OK;
}

/* Walks the header section d[0..len) (CRLF line ends, checked); *hend is
 * set to where the body separator (the empty line) starts, or len. */
static enum submit_msg_status headers(struct submit_msg *m, const char *d, size_t len, size_t *hend, int *froms,
				      int *date)
{
	size_t i = 0;
	while (i < len) {
		if (len - i >= 2 && d[i] == '\r' && d[i + 1] == '\n')
			break; /* the empty line */
		if (d[i] == ' ' || d[i] == '\t')
			return fail(m, SUBMIT_MSG_BAD_HEADER, "the header section starts with a continuation line");
		size_t n = i;
		while (n < len && is_ftext((unsigned char)d[n]))
			n++;
		/* RFC 5322 §3.6.8 has no blanks before the colon, but §4.5.3
		 * (obsolete syntax) allows them and MUAs still write them. */
		size_t c = n;
		while (c < len && (d[c] == ' ' || d[c] == '\t'))
			c++;
		if (n == i || c >= len || d[c] != ':')
			return fail(m, SUBMIT_MSG_BAD_HEADER, "a header line is not a field (RFC 5322 §2.2)");
		/* The field runs to the CRLF not followed by WSP. */
		size_t e = c + 1;
		for (;;) {
			const char *crlf = memmem(d + e, len - e, "\r\n", 2);
			if (crlf == NULL) {
				e = len;
				break;
			}
			e = (size_t)(crlf - d) + 2;
			if (e >= len || (d[e] != ' ' && d[e] != '\t'))
				break;
		}
		enum submit_msg_status st = field(m, d + i, n - i, d + i, e - i, d + c + 1, e - c - 1, froms, date);
		if (st != SUBMIT_MSG_OK)
			return st;
		i = e;
	}
	*hend = i;
	return SUBMIT_MSG_OK;
}

enum submit_msg_status submit_msg_prepare(const char *data, size_t len, const struct submit_msg_params *p,
					  struct submit_msg *out)
{
	memset(out, 0, sizeof(*out));
	buf_init(&out->metadata, MF_METADATA_MAX);
	buf_puts(&out->metadata, "{}");
	buf_init(&out->body, p->max_size);
	enum submit_msg_status st = scan_octets(data, len, p, out);
	if (st != SUBMIT_MSG_OK)
		return st;
	size_t hend = 0;
	int froms = 0, date = 0;
	st = headers(out, data, len, &hend, &froms, &date);
	if (st != SUBMIT_MSG_OK)
		return st;
	if (froms == 0)
		return fail(out, SUBMIT_MSG_NO_FROM, "no From: field (RFC 5322 §3.6)");
	/* RFC 5321 §6.4: what an MTA adds to a message that lacks it. */
	if (!date) {
		char d[64];
		time_t t = (time_t)p->date;
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(d, sizeof(d), "Date: %a, %d %b %Y %H:%M:%S +0000\r\n", &tm);
		if (buf_puts(&out->body, d) != 0)
			return fail(out, SUBMIT_MSG_TOO_BIG, "message over %zu octets", p->max_size);
	}
	if (out->message_id == NULL) {
		out->message_id = xasprintf("%s@%s", p->msgid_local, p->msgid_domain);
		out->message_id_added = 1;
		if (buf_printf(&out->body, "Message-ID: <%s>\r\n", out->message_id) != 0)
			return fail(out, SUBMIT_MSG_TOO_BIG, "message over %zu octets", p->max_size);
	}
	/* A message of header fields only gets no separator of its own. */
	if (buf_append(&out->body, data + hend, len - hend) != 0)
		return fail(out, SUBMIT_MSG_TOO_BIG, "message over %zu octets", p->max_size);
	if (out->subject == NULL)
		out->subject = xstrdup("");
	return SUBMIT_MSG_OK;
}

void submit_msg_cleanup(struct submit_msg *m)
{
	free(m->from);
	free(m->subject);
	free(m->message_id);
	free(m->to);
	free(m->cc);
	for (int i = 0; i < m->ntags; i++)
		free(m->tags[i]);
	buf_cleanup(&m->metadata);
	buf_cleanup(&m->body);
	memset(m, 0, sizeof(*m));
}

/*
 * The address-list reader (RFC 5322 §3.4).  One element (a mailbox, or a
 * group's member) runs to a ',' or ';' outside quotes, comments and
 * angle brackets; a ':' there ends a group's display name, which is
 * dropped ("undisclosed-recipients:;" has no member at all).  Outside
 * quoted strings, white space and comments (nested, §3.2.2) are dropped;
 * what is left is the angle-addr's content when there is one (a
 * display name, plain, quoted or RFC 2047 encoded, is never read as an
 * address), else the element itself.  A '\n' (submit_msg joins fields
 * with it) ends the element and resets every state, so that one
 * malformed field cannot swallow the next.
 */
struct alist {
	char a[MF_ADDRESS_MAX + 1]; /* the text of the current element's angle-addr */
	char e[MF_ADDRESS_MAX + 1]; /* the element outside angle brackets */
	size_t alen, elen;
	int angle, had_angle;
	int over_a, over_e; /* a or e did not fit */
};

static void alist_put(struct alist *l, char c)
{
	char *b = l->angle ? l->a : l->e;
	size_t *n = l->angle ? &l->alen : &l->elen;
	if (*n + 1 >= sizeof(l->a)) {
		*(l->angle ? &l->over_a : &l->over_e) = 1;
		return;
	}
	b[(*n)++] = c;
	b[*n] = '\0';
}

/* The local part unquoted (quoted-pairs resolved, RFC 5322 §3.2.4) and
 * the domain lower-cased; 0, or -1 when in is no local@domain (an
 * unclosed quote, a domain with a quote, blank or second '@'). */
static int addr_normalize(const char *in, char *out, size_t outsz)
{
	/* A source route (obsolete, §4.4) before the address: "@a,@b:". */
	if (in[0] == '@') {
		const char *c = strchr(in, ':');
		if (c == NULL)
			return -1;
		in = c + 1;
	}
	const char *at = NULL;
	int q = 0;
	for (const char *p = in; *p; p++) {
		if (q && *p == '\\' && p[1])
			p++;
		else if (*p == '"')
			q = !q;
		else if (!q && *p == '@')
			at = p;
	}
	/* A domain is a dot-atom or a domain-literal (RFC 5322 §3.4.1): no
	 * quotes, no second '@', nothing a list or an angle-addr is made of. */
	if (q || at == NULL || at == in || at[1] == '\0' || strpbrk(at + 1, "\"\\@<>(),; \t") != NULL)
		return -1;
	size_t o = 0;
	for (const char *p = in; p < at; p++) {
		if (*p == '"')
			continue;
		if (*p == '\\' && p + 1 < at)
			p++;
		if (o + 1 >= outsz)
			return -1;
		out[o++] = *p;
	}
	if (o == 0 || o + 1 + strlen(at + 1) + 1 > outsz)
		return -1;
	out[o++] = '@';
	for (const char *p = at + 1; *p; p++)
		out[o++] = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p;
	out[o] = '\0';
	return 0;
}

int submit_msg_next_addr(const char **cursor, char *out, size_t outsz)
{
	const char *p = *cursor;
	if (p == NULL)
		return 0;
	while (*p) {
		struct alist l = { .alen = 0 };
		int quoted = 0, depth = 0;
		for (; *p; p++) {
			char c = *p;
			if (c == '\n') {
				p++;
				break;
			}
			if (depth > 0) { /* a comment */
				if (c == '\\' && p[1] && p[1] != '\n')
					p++;
				else if (c == '(')
					depth++;
				else if (c == ')')
					depth--;
				continue;
			}
			if (quoted) {
				if (c == '\\' && p[1] && p[1] != '\n') {
					alist_put(&l, c);
					c = *++p;
				} else if (c == '"') {
					quoted = 0;
				}
				alist_put(&l, c);
				continue;
			}
			if (c == '"') {
				quoted = 1;
				alist_put(&l, c);
			} else if (c == '(') {
				depth = 1;
			} else if (c == ' ' || c == '\t' || c == '\r') {
				continue;
			} else if (c == '<' && !l.angle) {
				l.angle = l.had_angle = 1;
				l.alen = 0;
				l.a[0] = '\0';
				l.over_a = 0;
			} else if (c == '>' && l.angle) {
				l.angle = 0;
			} else if (!l.angle && c == ':') {
				l.elen = 0; /* a group's display name */
				l.e[0] = '\0';
				l.over_e = 0;
			} else if (!l.angle && (c == ',' || c == ';')) {
				p++;
				break;
			} else {
				alist_put(&l, c);
			}
		}
		const char *cand = l.had_angle ? l.a : l.e;
		int over = l.had_angle ? l.over_a : l.over_e;
		if (!over && cand[0] && addr_normalize(cand, out, outsz) == 0) {
			*cursor = p;
			return 1;
		}
	}
	*cursor = p;
	return 0;
}

/* 1 when the addr-spec addr is one of list's addresses (ASCII
 * case-insensitively, after normalizing both). */
static int mentions(const char *list, const char *addr)
{
	char want[MF_ADDRESS_MAX + 1], got[MF_ADDRESS_MAX + 1];
	if (list == NULL || addr_normalize(addr, want, sizeof(want)) != 0)
		return 0;
	const char *cur = list;
	while (submit_msg_next_addr(&cur, got, sizeof(got)))
		if (strcasecmp(got, want) == 0)
			return 1;
	return 0;
}

const char *submit_msg_kind(const struct submit_msg *m, const char *rcpt)
{
	if (mentions(m->to, rcpt))
		return "to";
	if (mentions(m->cc, rcpt))
		return "cc";
	return "bcc";
}
