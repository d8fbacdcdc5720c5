/*
 * dsn.c - bounce reading (see dsn.h).
 *
 * Order of judgement:
 *  1. A multipart/report; report-type=delivery-status anywhere in the tree
 *     (RFC 6522 §3, RFC 3464 §2) is read field by field.  Such reports may
 *     carry "Auto-Submitted: auto-replied" (Postfix and Exim add it) and
 *     are still bounces.
 *  2. Otherwise an auto-reply marker (RFC 3834 §5 Auto-Submitted other than
 *     "no", X-Autoreply, X-Autorespond, Precedence: auto_reply, or an
 *     out-of-office subject) makes it a non-bounce, unless the message
 *     also carries bounce evidence (X-Failed-Recipients, qmail's text).
 *  3. Otherwise bounce evidence (a mailer-daemon/postmaster sender, a
 *     bounce subject, X-Failed-Recipients, qmail-send's greeting) lets the
 *     text be searched for the recipient, reply code and enhanced status.
 *
 * Every copy goes through copy_field(), which truncates to the field size.
 */
#include "bounce/dsn.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mail/mime_parse.h"
#include "util/xmalloc.h"

const char *dsn_action_name(enum dsn_action a)
{
	switch (a) {
	case DSN_ACTION_FAILED: return "failed";
	case DSN_ACTION_DELAYED: return "delayed";
	case DSN_ACTION_DELIVERED: return "delivered";
	case DSN_ACTION_RELAYED: return "relayed";
	case DSN_ACTION_EXPANDED: return "expanded";
	case DSN_ACTION_NONE: break;
	}
	return "";
}

const char *dsn_kind_name(enum dsn_kind k)
{
	switch (k) {
	case DSN_RFC3464: return "rfc3464";
	case DSN_HEURISTIC: return "heuristic";
	case DSN_NOT_BOUNCE: break;
	}
	return "not_bounce";
}

void dsn_report_cleanup(struct dsn_report *r)
{
	if (r == NULL)
		return;
	free(r->rcpts);
	r->rcpts = NULL;
	r->nrcpts = 0;
}

/* Length of the valid UTF-8 sequence at s (RFC 3629 §4: no overlongs, no
 * surrogates, at most U+10FFFF), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *s)
{
	if (s[0] < 0x80)
		return 1;
	size_t n;
	unsigned lo = 0x80, hi = 0xbf;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		if (s[0] == 0xe0)
			lo = 0xa0;
		if (s[0] == 0xed)
			hi = 0x9f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		if (s[0] == 0xf0)
			lo = 0x90;
		if (s[0] == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

/* Replaces every octet that is not part of valid UTF-8 with '?': the fields
 * go to PostgreSQL text columns and JSON, which take UTF-8 only, and
 * bounces arrive in any charset (or truncated mid-character). */
static void utf8_sanitize(char *s)
{
	unsigned char *p = (unsigned char *)s;
	while (*p) {
		size_t n = utf8_seq(p);
		if (n == 0) {
			*p++ = '?';
			continue;
		}
		p += n;
	}
}

/* Copies at most n octets of s into dst[dstsz], collapsing runs of white
 * space (and control characters) into one space and trimming both ends. */
static void copy_field(char *dst, size_t dstsz, const char *s, size_t n)
{
	size_t o = 0;
	int space = 0;
	for (size_t i = 0; i < n && s[i]; i++) {
		unsigned char c = (unsigned char)s[i];
		if (isspace(c) || c < 32 || c == 127) {
			space = o > 0;
			continue;
		}
		if (space && o + 1 < dstsz)
			dst[o++] = ' ';
		space = 0;
		if (o + 1 < dstsz)
			dst[o++] = (char)c;
	}
	if (dstsz > 0) {
		dst[o] = '\0';
		utf8_sanitize(dst);
	}
}

/* Appends a space and the collapsed s[n] to the field in dst (truncating). */
static void append_field(char *dst, size_t dstsz, const char *s, size_t n)
{
	size_t have = strlen(dst);
	if (have + 2 >= dstsz)
		return;
	if (have > 0)
		dst[have++] = ' ';
	copy_field(dst + have, dstsz - have, s, n);
	if (dst[have] == '\0' && have > 0)
		dst[have - 1] = '\0';
}

static void copy_str(char *dst, size_t dstsz, const char *s)
{
	copy_field(dst, dstsz, s ? s : "", s ? strlen(s) : 0);
}

/* RFC 3464 §2.1.2: "address-type ; address"; drops the type. */
static const char *after_type(const char *v)
{
	const char *semi = strchr(v, ';');
	if (semi == NULL)
		return v;
	for (const char *p = v; p < semi; p++)
		if (isspace((unsigned char)*p) && p[1] != ';' && !isspace((unsigned char)p[1]))
			return v; /* a space inside: not a type label */
	semi++;
	while (isspace((unsigned char)*semi))
		semi++;
	return semi;
}

static int addr_char(unsigned char c)
{
	return isalnum(c) || strchr("!#$%&'*+-/=?^_`{|}~.@", c) != NULL || c >= 128;
}

/* Writes the first addr-spec in s (angle-bracketed preferred) into out;
 * returns 0, or -1 when s holds none. */
static int find_addr(const char *s, size_t n, char *out, size_t outsz)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '<')
			continue;
		const char *e = memchr(s + i + 1, '>', n - i - 1);
		if (e == NULL)
			break;
		size_t len = (size_t)(e - (s + i + 1));
		if (len > 2 && len <= MF_ADDRESS_MAX && memchr(s + i + 1, '@', len)) {
			copy_field(out, outsz, s + i + 1, len);
			if (strchr(out, ' ') == NULL)
				return 0;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '@')
			continue;
		size_t a = i, b = i + 1;
		while (a > 0 && addr_char((unsigned char)s[a - 1]) && s[a - 1] != '@')
			a--;
		while (b < n && addr_char((unsigned char)s[b]) && s[b] != '@')
			b++;
		while (b > i + 1 && s[b - 1] == '.')
			b--;
		if (a < i && b > i + 1 && b - a <= MF_ADDRESS_MAX && memchr(s + i + 1, '.', b - i - 1)) {
			copy_field(out, outsz, s + a, b - a);
			return 0;
		}
	}
	if (outsz > 0)
		out[0] = '\0';
	return -1;
}

/* RFC 3463 §2: class "." subject "." detail, class 2, 4 or 5, subject and
 * detail 1-3 digits.  Returns the length matched at s, or 0. */
static size_t status_at(const char *s, size_t n)
{
	if (n < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return 0;
	size_t i = 2, d = 0;
	while (i < n && isdigit((unsigned char)s[i]) && d < 4)
		i++, d++;
	if (d == 0 || d > 3 || i >= n || s[i] != '.')
		return 0;
	i++;
	d = 0;
	while (i < n && isdigit((unsigned char)s[i]) && d < 4)
		i++, d++;
	if (d == 0 || d > 3 || (i < n && (isalnum((unsigned char)s[i]) || s[i] == '.')))
		return 0;
	return i;
}

/* Finds an enhanced status code in s[n] at a word start; writes it. */
static int find_status(const char *s, size_t n, char *out, size_t outsz)
{
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && (isalnum((unsigned char)s[i - 1]) || s[i - 1] == '.'))
			continue;
		size_t m = status_at(s + i, n - i);
		if (m > 0) {
			copy_field(out, outsz, s + i, m);
			return 0;
		}
	}
	return -1;
}

/* Finds an SMTP reply code (RFC 5321 §4.2: three digits then SP or "-")
 * with class 4 or 5 at a word start; returns it, or 0. */
static int find_code(const char *s, size_t n)
{
	for (size_t i = 0; i + 3 < n; i++) {
		if (i > 0 && (isalnum((unsigned char)s[i - 1]) || s[i - 1] == '.' || s[i - 1] == ':'))
			continue;
		if ((s[i] == '4' || s[i] == '5') && s[i + 1] >= '0' && s[i + 1] <= '5' &&
		    isdigit((unsigned char)s[i + 2]) && (s[i + 3] == ' ' || s[i + 3] == '-'))
			return (s[i] - '0') * 100 + (s[i + 1] - '0') * 10 + (s[i + 2] - '0');
	}
	return 0;
}

/* RFC 3464 §2.3.5: "mta-name-type ; mta-name"; keeps the name only (no
 * comment, no trailing root dot). */
static void set_mta(char *dst, size_t dstsz, const char *v)
{
	size_t n = strcspn(v, " \t(");
	while (n > 0 && v[n - 1] == '.')
		n--;
	copy_field(dst, dstsz, v, n);
}

/* RFC 3464 §2.3.6: "diagnostic-type ; text". */
static void set_diagnostic(struct dsn_rcpt *r, const char *v)
{
	copy_str(r->diagnostic, sizeof(r->diagnostic), after_type(v));
	const char *d = r->diagnostic;
	if (isdigit((unsigned char)d[0]) && isdigit((unsigned char)d[1]) && isdigit((unsigned char)d[2]) &&
	    (d[3] == ' ' || d[3] == '-' || d[3] == '\0'))
		r->diag_code = (d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0');
	else
		r->diag_code = find_code(d, strlen(d));
	find_status(d, strlen(d), r->diag_status, sizeof(r->diag_status));
}

static enum dsn_action parse_action(const char *v)
{
	static const struct { const char *name; enum dsn_action a; } tab[] = {
		{ "failed", DSN_ACTION_FAILED },   { "delayed", DSN_ACTION_DELAYED },
		{ "delivered", DSN_ACTION_DELIVERED }, { "relayed", DSN_ACTION_RELAYED },
		{ "expanded", DSN_ACTION_EXPANDED },
	};
	while (v && isspace((unsigned char)*v))
		v++;
	for (size_t i = 0; v && i < sizeof(tab) / sizeof(tab[0]); i++) {
		size_t n = strlen(tab[i].name);
		/* RFC 3464 §2.3.3 allows a comment after the keyword. */
		if (strncasecmp(v, tab[i].name, n) == 0 && !isalpha((unsigned char)v[n]))
			return tab[i].a;
	}
	return DSN_ACTION_NONE;
}

static struct dsn_rcpt *add_rcpt(struct dsn_report *r)
{
	if (r->nrcpts >= MF_DSN_RCPTS_MAX)
		return NULL;
	r->rcpts = xrealloc(r->rcpts, (size_t)(r->nrcpts + 1) * sizeof(*r->rcpts));
	struct dsn_rcpt *x = &r->rcpts[r->nrcpts++];
	memset(x, 0, sizeof(*x));
	return x;
}

static void headers_free(struct mime_part *p)
{
	for (int i = 0; i < p->nhdrs; i++) {
		free(p->hdrs[i].name);
		free(p->hdrs[i].value);
	}
	free(p->hdrs);
	p->hdrs = NULL;
	p->nhdrs = 0;
}

/* RFC 3464 §2.1: the per-message fields, then one group per recipient,
 * groups separated by blank lines. */
static void parse_delivery_status(const char *body, size_t len, struct dsn_report *r)
{
	size_t off = 0;
	int group = 0;
	while (off < len) {
		while (off < len && (body[off] == '\r' || body[off] == '\n' || body[off] == ' ' || body[off] == '\t'))
			off++;
		if (off >= len)
			break;
		struct mime_part g = { 0 };
		size_t used = mime_parse_headers(body + off, len - off, &g);
		if (used == 0) {
			/* Not a field line: skip it. */
			const char *nl = memchr(body + off, '\n', len - off);
			off = nl ? (size_t)(nl - body) + 1 : len;
			headers_free(&g);
			continue;
		}
		off += used;
		const char *fr = mime_header_get(&g, "Final-Recipient");
		const char *orr = mime_header_get(&g, "Original-Recipient");
		const char *act = mime_header_get(&g, "Action");
		if (group == 0 || (fr == NULL && orr == NULL && act == NULL)) {
			const char *v;
			if ((v = mime_header_get(&g, "Reporting-MTA")) && r->reporting_mta[0] == '\0')
				copy_str(r->reporting_mta, sizeof(r->reporting_mta), after_type(v));
			if ((v = mime_header_get(&g, "Original-Envelope-Id")) && r->original_envid[0] == '\0')
				copy_str(r->original_envid, sizeof(r->original_envid), v);
		}
		if (fr || orr || act) {
			struct dsn_rcpt *x = add_rcpt(r);
			if (x != NULL) {
				const char *v;
				if (fr)
					find_addr(after_type(fr), strlen(after_type(fr)), x->final_rcpt, sizeof(x->final_rcpt));
				if (orr)
					find_addr(after_type(orr), strlen(after_type(orr)), x->original_rcpt,
						  sizeof(x->original_rcpt));
				if (x->final_rcpt[0] == '\0')
					copy_str(x->final_rcpt, sizeof(x->final_rcpt), x->original_rcpt);
				x->action = parse_action(act);
				if ((v = mime_header_get(&g, "Status")) != NULL)
					find_status(v, strlen(v), x->status, sizeof(x->status));
				if ((v = mime_header_get(&g, "Remote-MTA")) != NULL)
					set_mta(x->remote_mta, sizeof(x->remote_mta), after_type(v));
				if ((v = mime_header_get(&g, "Diagnostic-Code")) != NULL)
					set_diagnostic(x, v);
			}
		}
		headers_free(&g);
		group++;
	}
}

/* Depth-first search for a part of content type ctype (not descending
 * into returned messages when skip_messages). */
static const struct mime_part *find_part(const struct mime_part *p, const char *ctype, int skip_messages)
{
	if (strcmp(p->ctype, ctype) == 0)
		return p;
	if (skip_messages && strncmp(p->ctype, "message/", 8) == 0 && strcmp(p->ctype, "message/delivery-status") != 0)
		return NULL;
	for (int i = 0; i < p->nchildren; i++) {
		const struct mime_part *f = find_part(p->children[i], ctype, skip_messages);
		if (f)
			return f;
	}
	return NULL;
}

static const struct mime_part *find_report(const struct mime_part *p)
{
	if (strcmp(p->ctype, "multipart/report") == 0) {
		char rt[64];
		if (mime_param_get(mime_header_get(p, "Content-Type"), "report-type", rt, sizeof(rt)) == 0 &&
		    (strcasecmp(rt, "delivery-status") == 0 || strcasecmp(rt, "global-delivery-status") == 0))
			return p;
	}
	if (strncmp(p->ctype, "multipart/", 10) != 0)
		return NULL;
	for (int i = 0; i < p->nchildren; i++) {
		const struct mime_part *f = find_report(p->children[i]);
		if (f)
			return f;
	}
	return NULL;
}

static void set_message_id(struct dsn_report *r, const char *v)
{
	if (v == NULL || r->orig_message_id[0])
		return;
	const char *lt = strchr(v, '<');
	if (lt) {
		const char *gt = strchr(lt, '>');
		copy_field(r->orig_message_id, sizeof(r->orig_message_id), lt + 1,
			   gt ? (size_t)(gt - lt - 1) : strlen(lt + 1));
	} else {
		copy_str(r->orig_message_id, sizeof(r->orig_message_id), v);
	}
}

/* The returned message (RFC 3464 §2: the third part) or its headers. */
static void returned_message(const struct mime_part *report, struct dsn_report *r)
{
	static const char *const types[] = { "message/rfc822", "text/rfc822-headers", "message/global",
					     "message/global-headers" };
	for (int i = 0; i < report->nchildren; i++)
		for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++)
			if (strcmp(report->children[i]->ctype, types[t]) == 0 && report->children[i]->nchildren > 0)
				set_message_id(r, mime_header_get(report->children[i]->children[0], "Message-ID"));
}

static int contains_ci(const char *hay, const char *needle)
{
	return hay && strcasestr(hay, needle) != NULL;
}

static int starts_ci(const char *s, const char *prefix)
{
	while (s && isspace((unsigned char)*s))
		s++;
	return s && strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* RFC 3834 §5 and the de facto markers of vacation responders. */
static int is_auto_reply(const struct mime_part *top, int *strong)
{
	static const char *const subj[] = { "auto:", "automatic reply", "autoreply", "auto-reply",
					    "auto reply", "out of office", "out of the office",
					    "vacation", "away from", "abwesenheit", "absence" };
	const char *s = mime_header_get(top, "Subject");
	*strong = 0;
	for (size_t i = 0; i < sizeof(subj) / sizeof(subj[0]); i++)
		if (starts_ci(s, subj[i]))
			*strong = 1;
	if (mime_header_get(top, "X-Autoreply") || mime_header_get(top, "X-Autorespond") ||
	    contains_ci(mime_header_get(top, "Precedence"), "auto_reply") ||
	    contains_ci(mime_header_get(top, "X-Auto-Response"), "yes"))
		*strong = 1;
	const char *as = mime_header_get(top, "Auto-Submitted");
	return *strong || (as && !starts_ci(as, "no"));
}

static int looks_like_bounce(const struct mime_part *top, const char *text)
{
	static const char *const subj[] = { "undeliverable", "undelivered", "delivery status notification",
					    "mail delivery failed", "failure notice", "returned mail",
					    "delivery failure", "could not be delivered", "delivery has failed",
					    "mail system error", "non-delivery", "delivery notification" };
	const char *from = mime_header_get(top, "From");
	const char *s = mime_header_get(top, "Subject");
	int sender = contains_ci(from, "mailer-daemon") || contains_ci(from, "postmaster") ||
		     contains_ci(from, "mail delivery");
	int subject = 0;
	for (size_t i = 0; i < sizeof(subj) / sizeof(subj[0]); i++)
		if (contains_ci(s, subj[i]))
			subject = 1;
	return sender || subject || contains_ci(text, "This is the qmail-send program");
}

/* The first text part outside returned messages: the human-readable
 * explanation.  Falls back to text/html. */
static const char *explanation(const struct mime_part *top)
{
	const struct mime_part *t = find_part(top, "text/plain", 1);
	if (t == NULL)
		t = find_part(top, "text/html", 1);
	return t ? t->body : "";
}

/* Line iteration over a NUL-terminated text. */
struct line {
	const char *s;
	size_t n;
};

static int next_line(const char **cur, struct line *l)
{
	if (**cur == '\0')
		return 0;
	l->s = *cur;
	const char *nl = strchr(*cur, '\n');
	l->n = nl ? (size_t)(nl - *cur) : strlen(*cur);
	*cur = nl ? nl + 1 : *cur + l->n;
	if (l->n > 0 && l->s[l->n - 1] == '\r')
		l->n--;
	return 1;
}

static int blank(const struct line *l)
{
	for (size_t i = 0; i < l->n; i++)
		if (!isspace((unsigned char)l->s[i]))
			return 0;
	return 1;
}

/* A line that is only an address (possibly in <> and with a trailing ':'). */
static int address_line(const struct line *l, char *out, size_t outsz)
{
	size_t a = 0, b = l->n;
	while (a < b && isspace((unsigned char)l->s[a]))
		a++;
	while (b > a && (isspace((unsigned char)l->s[b - 1]) || l->s[b - 1] == ':'))
		b--;
	if (b > a && l->s[a] == '<' && l->s[b - 1] == '>')
		a++, b--;
	if (b <= a || b - a > MF_ADDRESS_MAX || memchr(l->s + a, '@', b - a) == NULL)
		return 0;
	for (size_t i = a; i < b; i++)
		if (!addr_char((unsigned char)l->s[i]))
			return 0;
	copy_field(out, outsz, l->s + a, b - a);
	return 1;
}

static int line_has_code(const struct line *l)
{
	char st[16];
	return find_code(l->s, l->n) != 0 || find_status(l->s, l->n, st, sizeof(st)) == 0;
}

/* Fills status and code of x from its diagnostic text. */
static void finish_heuristic(struct dsn_rcpt *x, int delayed)
{
	size_t n = strlen(x->diagnostic);
	if (x->diag_code == 0)
		x->diag_code = find_code(x->diagnostic, n);
	find_status(x->diagnostic, n, x->diag_status, sizeof(x->diag_status));
	if (x->status[0] == '\0')
		snprintf(x->status, sizeof(x->status), "%s", x->diag_status);
	if (x->status[0] == '\0' && x->diag_code >= 400)
		snprintf(x->status, sizeof(x->status), "%d.0.0", x->diag_code / 100);
	if (delayed)
		x->action = DSN_ACTION_DELAYED;
	else if (x->status[0] == '4' && x->diag_code == 0)
		x->action = DSN_ACTION_DELAYED;
	else
		x->action = DSN_ACTION_FAILED;
}

/*
 * qmail-send's format (qmail-send.c, "Hi. This is the qmail-send program"):
 *   <user@example.com>:
 *   192.0.2.1 does not like recipient.
 *   Remote host said: 550 5.1.1 ...
 *   Giving up on 192.0.2.1.
 */
static void heuristic_qmail(const char *text, struct dsn_report *r)
{
	const char *cur = text;
	struct line l;
	struct dsn_rcpt *x = NULL;
	while (next_line(&cur, &l)) {
		if (l.n >= 3 && l.s[0] == '<' && l.s[l.n - 1] == ':' && l.s[l.n - 2] == '>') {
			char a[MF_ADDRESS_MAX + 1];
			if (address_line(&l, a, sizeof(a)) && (x = add_rcpt(r)) != NULL)
				copy_str(x->final_rcpt, sizeof(x->final_rcpt), a);
			continue;
		}
		if (starts_ci(l.s, "--- Below this line"))
			break;
		if (x == NULL || blank(&l)) {
			x = NULL;
			continue;
		}
		append_field(x->diagnostic, sizeof(x->diagnostic), l.s, l.n);
	}
	for (int i = 0; i < r->nrcpts; i++) {
		/* "Remote host said: 550 ..." is the part worth keeping first. */
		struct dsn_rcpt *y = &r->rcpts[i];
		const char *said = strcasestr(y->diagnostic, "Remote host said:");
		if (said)
			y->diag_code = find_code(said, strlen(said));
		finish_heuristic(y, 0);
	}
}

/* The text after a recipient mention: the first line with a reply code or
 * enhanced status, plus its continuation lines (indented or code lines). */
static void diagnostic_from(const char *from, struct dsn_rcpt *x)
{
	const char *cur = from;
	struct line l;
	int found = 0;
	while (next_line(&cur, &l)) {
		if (starts_ci(l.s, "------ This is a copy") || starts_ci(l.s, "--- Below this line") ||
		    starts_ci(l.s, "----- Original message") || starts_ci(l.s, "Original message headers"))
			break;
		if (!found) {
			if (line_has_code(&l)) {
				found = 1;
				copy_field(x->diagnostic, sizeof(x->diagnostic), l.s, l.n);
			}
			continue;
		}
		if (blank(&l) || !(isspace((unsigned char)l.s[0]) || line_has_code(&l)))
			break;
		append_field(x->diagnostic, sizeof(x->diagnostic), l.s, l.n);
	}
	/* Start the diagnostic at the reply code when one is on the line. */
	char *d = x->diagnostic;
	size_t n = strlen(d);
	for (size_t i = 0; i + 3 < n; i++) {
		if ((i == 0 || !isalnum((unsigned char)d[i - 1])) && (d[i] == '4' || d[i] == '5') &&
		    isdigit((unsigned char)d[i + 1]) && isdigit((unsigned char)d[i + 2]) &&
		    (d[i + 3] == ' ' || d[i + 3] == '-')) {
			memmove(d, d + i, n - i + 1);
			break;
		}
	}
}

static int text_says_delayed(const char *text)
{
	static const char *const words[] = { "has been delayed", "will retry", "will keep trying",
					     "still trying", "has not yet been delivered", "not been delivered yet",
					     "delivery is delayed", "temporarily deferred", "delivery delayed" };
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (contains_ci(text, words[i]))
			return 1;
	return 0;
}

/* Exim/Gmail/Exchange text: recipients listed after "following
 * address(es)/recipient(s)", or in X-Failed-Recipients, or named on the
 * line with the reply code. */
static void heuristic_text(const struct mime_part *top, const char *text, struct dsn_report *r)
{
	int delayed = text_says_delayed(text) || contains_ci(mime_header_get(top, "Subject"), "delay");
	if (r->failed_recipients[0]) {
		const char *p = r->failed_recipients;
		while (*p) {
			size_t n = strcspn(p, ",");
			struct dsn_rcpt *x;
			char a[MF_ADDRESS_MAX + 1];
			if (find_addr(p, n, a, sizeof(a)) == 0 && (x = add_rcpt(r)) != NULL)
				copy_str(x->final_rcpt, sizeof(x->final_rcpt), a);
			p += n;
			if (*p == ',')
				p++;
		}
	}
	const char *cur = text;
	struct line l;
	int listing = 0;
	while (r->nrcpts == 0 && next_line(&cur, &l)) {
		char a[MF_ADDRESS_MAX + 1];
		char tmp[MF_DSN_FIELD_MAX];
		copy_field(tmp, sizeof(tmp), l.s, l.n);
		if (contains_ci(tmp, "following address") || contains_ci(tmp, "following recipient") ||
		    contains_ci(tmp, "could not be delivered to") || contains_ci(tmp, "wasn't delivered to")) {
			listing = 1;
			if (find_addr(l.s, l.n, a, sizeof(a)) == 0) {
				struct dsn_rcpt *x = add_rcpt(r);
				if (x)
					copy_str(x->final_rcpt, sizeof(x->final_rcpt), a);
			}
			continue;
		}
		if (listing && address_line(&l, a, sizeof(a))) {
			struct dsn_rcpt *x = add_rcpt(r);
			if (x)
				copy_str(x->final_rcpt, sizeof(x->final_rcpt), a);
		}
	}
	/* Else: an address on a line with a reply code. */
	cur = text;
	while (r->nrcpts == 0 && next_line(&cur, &l)) {
		char a[MF_ADDRESS_MAX + 1];
		if (line_has_code(&l) && find_addr(l.s, l.n, a, sizeof(a)) == 0) {
			struct dsn_rcpt *x = add_rcpt(r);
			if (x)
				copy_str(x->final_rcpt, sizeof(x->final_rcpt), a);
		}
	}
	if (r->nrcpts == 0)
		add_rcpt(r); /* a bounce for an unknown recipient: VERP may still match */
	for (int i = 0; i < r->nrcpts; i++) {
		struct dsn_rcpt *x = &r->rcpts[i];
		const char *from = x->final_rcpt[0] ? strcasestr(text, x->final_rcpt) : NULL;
		diagnostic_from(from ? from : text, x);
		if (x->diagnostic[0] == '\0')
			diagnostic_from(text, x);
		finish_heuristic(x, delayed);
	}
}

/* Best effort for a returned message inline in text: a Message-ID field
 * after the copy marker. */
static void message_id_in_text(const char *text, struct dsn_report *r)
{
	const char *cur = text;
	struct line l;
	while (!r->orig_message_id[0] && next_line(&cur, &l)) {
		if (l.n > 11 && strncasecmp(l.s, "Message-ID:", 11) == 0) {
			char v[MF_DSN_FIELD_MAX];
			copy_field(v, sizeof(v), l.s + 11, l.n - 11);
			set_message_id(r, v);
		}
	}
}

int dsn_parse(const char *data, size_t len, struct dsn_report *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	struct mime_part *top = NULL;
	if (mime_parse(data, len, &top, err, errlen) < 0)
		return -1;
	const char *to = mime_header_get(top, "To");
	if (to)
		find_addr(to, strlen(to), out->bounce_to, sizeof(out->bounce_to));
	const char *xf = mime_header_get(top, "X-Failed-Recipients");
	if (xf)
		copy_str(out->failed_recipients, sizeof(out->failed_recipients), xf);

	const struct mime_part *report = find_report(top);
	const struct mime_part *ds = NULL;
	if (report) {
		ds = find_part(report, "message/delivery-status", 1);
		if (ds == NULL)
			ds = find_part(report, "message/global-delivery-status", 1);
	}
	if (ds) {
		out->kind = DSN_RFC3464;
		parse_delivery_status(ds->body, ds->body_len, out);
		returned_message(report, out);
		if (out->nrcpts > 0) {
			mime_part_free(top);
			return 0;
		}
		/* A report without recipient groups: read its text instead. */
	}

	const char *text = explanation(top);
	int strong = 0;
	int autoreply = is_auto_reply(top, &strong);
	int evidence = xf != NULL || contains_ci(text, "This is the qmail-send program");
	int bounce_like = evidence || looks_like_bounce(top, text);
	if (ds == NULL && autoreply && (strong || !bounce_like)) {
		out->kind = DSN_NOT_BOUNCE;
		snprintf(out->not_bounce_reason, sizeof(out->not_bounce_reason), "%s",
			 strong ? "auto-reply" : "auto-submitted");
		mime_part_free(top);
		return 0;
	}
	if (ds == NULL && !bounce_like) {
		out->kind = DSN_NOT_BOUNCE;
		snprintf(out->not_bounce_reason, sizeof(out->not_bounce_reason), "no delivery status");
		mime_part_free(top);
		return 0;
	}
	out->kind = DSN_HEURISTIC;
	if (contains_ci(text, "This is the qmail-send program"))
		heuristic_qmail(text, out);
	if (out->nrcpts == 0)
		heuristic_text(top, text, out);
	/* The returned message: a message part, else inline text. */
	const struct mime_part *m = find_part(top, "message/rfc822", 0);
	if (m == NULL)
		m = find_part(top, "text/rfc822-headers", 0);
	if (m && m->nchildren > 0)
		set_message_id(out, mime_header_get(m->children[0], "Message-ID"));
	if (!out->orig_message_id[0])
		message_id_in_text(top->body, out);
	if (!out->orig_message_id[0])
		message_id_in_text(text, out);
	mime_part_free(top);
	return 0;
}
