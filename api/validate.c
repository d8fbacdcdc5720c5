/*
 * validate.c - send request validation (see validate.h).
 *
 * Every string that ends up in a header (subject, display names, header
 * names and values, filenames, content types and ids, addresses) is refused
 * when it holds CR or LF: that is how header injection works (RFC 5322
 * §2.2: a header field ends at CRLF).  Other control characters are
 * refused as well.  Structural headers that mailferry writes itself are
 * refused in "headers".
 */
#include "api/validate.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/json_in.h"
#include "mail/address.h"
#include "util/base64.h"
#include "util/limits.h"
#include "util/scan.h"
#include "util/xmalloc.h"

/* --- error list -------------------------------------------------------- */

void val_errors_init(struct val_errors *e)
{
	memset(e, 0, sizeof(*e));
}

void val_errors_cleanup(struct val_errors *e)
{
	free(e->v);
	memset(e, 0, sizeof(*e));
}

void val_add(struct val_errors *e, const char *field, const char *code, const char *fmt, ...)
{
	if (e->n >= MF_VALIDATION_ERRORS_MAX) {
		e->dropped++;
		return;
	}
	if (e->n == e->cap) {
		e->cap = e->cap ? e->cap * 2 : 8;
		e->v = xrealloc(e->v, (size_t)e->cap * sizeof(*e->v));
	}
	struct val_error *v = &e->v[e->n++];
	snprintf(v->field, sizeof(v->field), "%s", field);
	snprintf(v->code, sizeof(v->code), "%s", code);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v->message, sizeof(v->message), fmt, ap);
	va_end(ap);
}

/* --- JSON body --------------------------------------------------------- */

/* Returns the offset of the first byte that is not well-formed UTF-8
 * (RFC 3629 §4: no overlongs, no surrogates, nothing above U+10FFFF),
 * or -1 when all is well. */
static long utf8_invalid_at(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		i += scan_ascii_prefix(s + i, n - i);
		if (i == n)
			break;
		unsigned char c = s[i];
		size_t len;
		unsigned lo = 0x80, hi = 0xBF;
		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xC2 && c <= 0xDF) {
			len = 2;
		} else if (c >= 0xE0 && c <= 0xEF) {
			len = 3;
			if (c == 0xE0)
				lo = 0xA0;
			if (c == 0xED)
				hi = 0x9F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			len = 4;
			if (c == 0xF0)
				lo = 0x90;
			if (c == 0xF4)
				hi = 0x8F;
		} else {
			return (long)i;
		}
		if (i + len > n)
			return (long)i;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return (long)i;
		for (size_t k = 2; k < len; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xBF)
				return (long)i;
		i += len;
	}
	return -1;
}

json_t *validate_parse_json(const char *body, size_t len, struct json_problem *p)
{
	memset(p, 0, sizeof(*p));
	long bad = utf8_invalid_at((const unsigned char *)body, len);
	if (bad >= 0) {
		p->not_utf8 = 1;
		p->position = bad;
		snprintf(p->detail, sizeof(p->detail), "the body is not valid UTF-8 (byte %ld)", bad);
		return NULL;
	}
	json_error_t je;
	json_t *v = json_in_parse(body, len, &je); /* json_loadb's result, faster */
	if (v == NULL) {
		p->line = je.line;
		p->column = je.column;
		p->position = (long)je.position;
		snprintf(p->detail, sizeof(p->detail), "malformed JSON at line %d, column %d: %s", je.line, je.column,
			 je.text);
	}
	return v;
}

int validate_is_json_content_type(const char *ct)
{
	if (ct == NULL)
		return 0;
	while (*ct == ' ')
		ct++;
	if (strncasecmp(ct, "application/json", 16) != 0)
		return 0;
	const char *p = ct + 16;
	while (*p == ' ')
		p++;
	if (*p == '\0')
		return 1;
	if (*p != ';')
		return 0;
	/* RFC 8259 §11: no charset parameter is defined, but a charset of
	 * utf-8 is harmless; anything else is refused. */
	p++;
	while (*p == ' ')
		p++;
	if (*p == '\0')
		return 1;
	if (strncasecmp(p, "charset=", 8) != 0)
		return 0;
	p += 8;
	if (*p == '"')
		p++;
	return strncasecmp(p, "utf-8", 5) == 0 && (p[5] == '\0' || p[5] == '"' || p[5] == ' ' || p[5] == ';');
}

/* --- small checks ------------------------------------------------------ */

/* Checks a string that will be placed in a header.  Returns 0 or -1 with
 * the problem added. */
static int check_header_text(struct val_errors *e, const char *field, const char *s, size_t n, size_t max)
{
	if (strlen(s) != n) {
		val_add(e, field, "invalid_character", "NUL is not allowed");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\r' || c == '\n') {
			val_add(e, field, "header_injection", "CR and LF are not allowed here");
			return -1;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			val_add(e, field, "invalid_character", "control character 0x%02x is not allowed", c);
			return -1;
		}
	}
	if (n > max) {
		val_add(e, field, "too_long", "at most %zu octets", max);
		return -1;
	}
	return 0;
}

static const char *type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER:
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

/*
 * The start of an optional array or object field: 1 when v is there, of
 * the wanted kind ("must be <shape>") and, when max > 0, with at most max
 * items; 0 when it is absent or null, or after an error was added.
 */
static int open_container(struct val_errors *e, const char *field, const json_t *v, int object,
			  const char *shape, int max, const char *items)
{
	if (v == NULL || json_is_null(v))
		return 0;
	if (object ? !json_is_object(v) : !json_is_array(v)) {
		val_add(e, field, "invalid_type", "must be %s, not %s", shape, type_name(v));
		return 0;
	}
	if (max > 0 && (object ? json_object_size(v) : json_array_size(v)) > (size_t)max) {
		val_add(e, field, "too_many", "at most %d %s", max, items);
		return 0;
	}
	return 1;
}

static int need_string(struct val_errors *e, const char *field, const json_t *v)
{
	if (json_is_string(v))
		return 0;
	val_add(e, field, "invalid_type", "must be a string, not %s", type_name(v));
	return -1;
}

/* --- base64 and dates -------------------------------------------------- */

/* RFC 4648 §4, strict (util/base64.h), with whitespace allowed. */
unsigned char *validate_base64_decode(const char *s, size_t n, size_t *outlen)
{
	size_t max = n / 4 * 3 + 3;
	unsigned char *out = xmalloc(max + 1);
	long len = base64_decode(s, n, out, max, B64_SKIP_SPACE);
	if (len < 0) {
		free(out);
		return NULL;
	}
	*outlen = (size_t)len;
	return out;
}

static int digits(const char *s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

int validate_rfc3339(const char *s, time_t *out)
{
	/* date-time = full-date "T" full-time ; RFC 3339 §5.6 */
	int Y, M, D, h, m, sec;
	if (strlen(s) < 20 || digits(s, 4, &Y) || s[4] != '-' || digits(s + 5, 2, &M) || s[7] != '-' ||
	    digits(s + 8, 2, &D) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || digits(s + 11, 2, &h) ||
	    s[13] != ':' || digits(s + 14, 2, &m) || s[16] != ':' || digits(s + 17, 2, &sec))
		return -1;
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	if (Y < 1970 || M < 1 || M > 12 || D < 1 || D > mdays[M - 1] || h > 23 || m > 59 || sec > 60)
		return -1;
	int leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
	if (M == 2 && D == 29 && !leap)
		return -1;
	const char *p = s + 19;
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -1;
		while (isdigit((unsigned char)*p))
			p++;
	}
	long off = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh, om;
		if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59)
			return -1;
		off = (oh * 3600L + om * 60L) * (*p == '+' ? 1 : -1);
		p += 6;
	} else {
		return -1;
	}
	if (*p)
		return -1;
	struct tm tm = { .tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h, .tm_min = m,
			 .tm_sec = sec > 59 ? 59 : sec };
	*out = timegm(&tm) - off;
	return 0;
}

/* --- the request ------------------------------------------------------- */

static const char *const structural_headers[] = {
	"from", "to", "cc", "bcc", "date", "message-id", "mime-version", "content-type",
	"content-transfer-encoding", "content-disposition", "content-id", "content-length",
	"dkim-signature", "domainkey-signature", "return-path", "received", "sender", "reply-to",
	"subject", "x-mailferry-id", NULL,
};

static int header_structural(const char *name)
{
	for (int i = 0; structural_headers[i]; i++)
		if (strcasecmp(name, structural_headers[i]) == 0)
			return 1;
	/* Trace and signature families (RFC 5322 §3.6.6-7, RFC 8617). */
	return strncasecmp(name, "resent-", 7) == 0 || strncasecmp(name, "arc-", 4) == 0;
}

/* RFC 5322 §3.6.8: field-name = 1*ftext, ftext = %d33-57 / %d59-126. */
static int header_name_ok(const char *name)
{
	if (*name == '\0')
		return 0;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 33 || *p > 126 || *p == ':')
			return 0;
	return 1;
}

static void add_address(struct val_errors *e, const char *field, const char *s, struct mail_address *out,
			int *ok)
{
	char err[256];
	if (address_parse(s, out, err, sizeof(err)) < 0) {
		/* A line break anywhere is injection (address_parse refuses it). */
		int inj = strpbrk(s, "\r\n") != NULL;
		val_add(e, field, inj ? "header_injection" : "invalid_address", "%s", err);
		*ok = 0;
		return;
	}
	if (out->name && check_header_text(e, field, out->name, strlen(out->name), MF_HEADER_VALUE_MAX) < 0)
		*ok = 0;
}

/* add_address() into a slot of a list: 1 when the address is good, else 0
 * with the slot emptied again. */
static int take_address(struct val_errors *e, const char *field, const char *s, struct mail_address *a)
{
	int ok = 1;
	add_address(e, field, s, a, &ok);
	if (!ok) {
		free(a->name);
		free(a->addr);
		a->name = a->addr = NULL;
	}
	return ok;
}

/* to/cc/bcc: a string or an array of strings. */
static void parse_rcpts(struct val_errors *e, const json_t *root, const char *key, enum rcpt_kind kind,
			struct mail_request *r, int *total)
{
	const json_t *v = json_object_get(root, key);
	if (v == NULL || json_is_null(v))
		return;
	char field[64];
	if (json_is_string(v)) {
		(*total)++;
		if (*total > MF_RECIPIENTS_MAX)
			return;
		struct mail_recipient *rc = &r->rcpts[r->nrcpts];
		if (take_address(e, key, json_string_value(v), &rc->a)) {
			rc->kind = kind;
			r->nrcpts++;
		}
		return;
	}
	if (!json_is_array(v)) {
		val_add(e, key, "invalid_type", "must be a string or an array of strings, not %s", type_name(v));
		return;
	}
	size_t i;
	const json_t *it;
	json_array_foreach(v, i, it) {
		snprintf(field, sizeof(field), "%s[%zu]", key, i);
		(*total)++;
		if (*total > MF_RECIPIENTS_MAX)
			continue;
		if (need_string(e, field, it) < 0)
			continue;
		struct mail_recipient *rc = &r->rcpts[r->nrcpts];
		if (take_address(e, field, json_string_value(it), &rc->a)) {
			rc->kind = kind;
			r->nrcpts++;
		}
	}
}

static void parse_reply_to(struct val_errors *e, const json_t *v, struct mail_request *r)
{
	if (v == NULL || json_is_null(v))
		return;
	size_t n = json_is_array(v) ? json_array_size(v) : 1;
	if (!json_is_array(v) && !json_is_string(v)) {
		val_add(e, "reply_to", "invalid_type", "must be a string or an array of strings, not %s", type_name(v));
		return;
	}
	if (n > MF_REPLY_TO_MAX) {
		val_add(e, "reply_to", "too_many", "at most %d addresses", MF_REPLY_TO_MAX);
		return;
	}
	r->reply_to = xcalloc(n ? n : 1, sizeof(*r->reply_to));
	for (size_t i = 0; i < n; i++) {
		const json_t *it = json_is_array(v) ? json_array_get(v, i) : v;
		char field[32];
		if (json_is_array(v))
			snprintf(field, sizeof(field), "reply_to[%zu]", i);
		else
			snprintf(field, sizeof(field), "reply_to");
		if (need_string(e, field, it) < 0)
			continue;
		if (take_address(e, field, json_string_value(it), &r->reply_to[r->nreply_to]))
			r->nreply_to++;
	}
}

static void parse_headers(struct val_errors *e, const json_t *v, struct mail_request *r)
{
	if (!open_container(e, "headers", v, 1, "an object of name: value", MF_CUSTOM_HEADERS_MAX, "custom headers"))
		return;
	r->headers = xcalloc(json_object_size(v) + 1, sizeof(*r->headers));
	const char *name;
	const json_t *val;
	json_object_foreach((json_t *)v, name, val) {
		char field[160];
		snprintf(field, sizeof(field), "headers.%.140s", name);
		int bad = 0;
		size_t nlen = strlen(name);
		if (strchr(name, '\r') || strchr(name, '\n')) {
			val_add(e, field, "header_injection", "CR and LF are not allowed in a header name");
			bad = 1;
		} else if (!header_name_ok(name) || nlen > MF_HEADER_NAME_MAX) {
			val_add(e, field, "invalid_header_name",
				"a header name is 1 to %d printable ASCII characters without ':' or spaces (RFC 5322 §3.6.8)",
				MF_HEADER_NAME_MAX);
			bad = 1;
		} else if (header_structural(name)) {
			val_add(e, field, "forbidden_header", "%s is set by mailferry and cannot be given", name);
			bad = 1;
		}
		if (need_string(e, field, val) < 0)
			continue;
		if (check_header_text(e, field, json_string_value(val), json_string_length(val), MF_HEADER_VALUE_MAX) < 0 ||
		    bad)
			continue;
		r->headers[r->nheaders].name = xstrdup(name);
		r->headers[r->nheaders].value = xstrdup(json_string_value(val));
		r->nheaders++;
	}
}

/* RFC 2045 §5.1: type "/" subtype, tokens; parameters after ';'. */
static int content_type_ok(const char *s)
{
	static const char tspecials[] = "()<>@,;:\\\"/[]?=";
	const char *p = s;
	int slash = 0, n = 0;
	for (; *p && *p != ';'; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '/') {
			if (slash++ || n == 0)
				return 0;
			n = 0;
			continue;
		}
		if (c <= 32 || c >= 127 || strchr(tspecials, c))
			return 0;
		n++;
	}
	if (!slash || n == 0)
		return 0;
	for (; *p; p++)
		if ((unsigned char)*p < 32 || (unsigned char)*p >= 127)
			return 0;
	return 1;
}

static void parse_attachment(struct val_errors *e, size_t i, const json_t *a, struct mail_request *r)
{
	char field[96], base[48];
	snprintf(base, sizeof(base), "attachments[%zu]", i);
	if (!json_is_object(a)) {
		val_add(e, base, "invalid_type", "must be an object, not %s", type_name(a));
		return;
	}
	int ok = 1;
	const char *key;
	const json_t *v;
	json_object_foreach((json_t *)a, key, v) {
		if (strcmp(key, "filename") && strcmp(key, "content") && strcmp(key, "content_type") &&
		    strcmp(key, "content_id")) {
			snprintf(field, sizeof(field), "%s.%.40s", base, key);
			val_add(e, field, "unknown_field", "unknown attachment field");
			ok = 0;
		}
	}
	const json_t *fn = json_object_get(a, "filename");
	snprintf(field, sizeof(field), "%s.filename", base);
	if (fn == NULL || json_is_null(fn)) {
		val_add(e, field, "required", "every attachment needs a filename");
		ok = 0;
	} else if (need_string(e, field, fn) < 0 ||
		   check_header_text(e, field, json_string_value(fn), json_string_length(fn), MF_FILENAME_MAX) < 0) {
		ok = 0;
	} else if (json_string_length(fn) == 0) {
		val_add(e, field, "required", "the filename must not be empty");
		ok = 0;
	}
	const json_t *ct = json_object_get(a, "content_type");
	snprintf(field, sizeof(field), "%s.content_type", base);
	if (ct && !json_is_null(ct)) {
		if (need_string(e, field, ct) < 0 ||
		    check_header_text(e, field, json_string_value(ct), json_string_length(ct), 255) < 0) {
			ok = 0;
		} else if (!content_type_ok(json_string_value(ct))) {
			val_add(e, field, "invalid_value", "expected a MIME type such as application/pdf (RFC 2045 §5.1)");
			ok = 0;
		}
	}
	const json_t *cid = json_object_get(a, "content_id");
	snprintf(field, sizeof(field), "%s.content_id", base);
	if (cid && !json_is_null(cid)) {
		if (need_string(e, field, cid) < 0 ||
		    check_header_text(e, field, json_string_value(cid), json_string_length(cid), 250) < 0) {
			ok = 0;
		} else {
			const char *s = json_string_value(cid);
			int good = *s != '\0';
			for (; *s; s++)
				if (*s <= 32 || *s >= 127 || *s == '<' || *s == '>')
					good = 0;
			if (!good) {
				val_add(e, field, "invalid_value", "a content id is printable ASCII without spaces or <>");
				ok = 0;
			}
		}
	}
	const json_t *c = json_object_get(a, "content");
	snprintf(field, sizeof(field), "%s.content", base);
	unsigned char *data = NULL;
	size_t len = 0;
	if (c == NULL || json_is_null(c)) {
		val_add(e, field, "required", "attachment content (base64) is required");
		ok = 0;
	} else if (need_string(e, field, c) < 0) {
		ok = 0;
	} else if ((data = validate_base64_decode(json_string_value(c), json_string_length(c), &len)) == NULL) {
		val_add(e, field, "invalid_base64", "content is not valid base64 (RFC 4648 §4)");
		ok = 0;
	}
	if (!ok) {
		free(data);
		return;
	}
	struct mail_attachment *m = &r->atts[r->natts++];
	m->filename = xstrdup(json_string_value(fn));
	m->content_type = xstrdup(ct && json_is_string(ct) ? json_string_value(ct) : "application/octet-stream");
	m->content_id = cid && json_is_string(cid) ? xstrdup(json_string_value(cid)) : NULL;
	m->data = data;
	m->len = len;
}

static void parse_attachments(struct val_errors *e, const json_t *v, struct mail_request *r)
{
	if (!open_container(e, "attachments", v, 0, "an array", MF_ATTACHMENTS_MAX, "attachments"))
		return;
	r->atts = xcalloc(json_array_size(v) + 1, sizeof(*r->atts));
	size_t i;
	const json_t *a;
	json_array_foreach(v, i, a) parse_attachment(e, i, a, r);
}

static void parse_tags(struct val_errors *e, const json_t *v, struct mail_request *r)
{
	if (!open_container(e, "tags", v, 0, "an array of strings", MF_TAGS_MAX, "tags"))
		return;
	r->tags = xcalloc(json_array_size(v) + 1, sizeof(char *));
	size_t i;
	const json_t *t;
	json_array_foreach(v, i, t) {
		char field[32];
		snprintf(field, sizeof(field), "tags[%zu]", i);
		if (need_string(e, field, t) < 0 ||
		    check_header_text(e, field, json_string_value(t), json_string_length(t), MF_TAG_LEN_MAX) < 0)
			continue;
		if (json_string_length(t) == 0) {
			val_add(e, field, "invalid_value", "a tag must not be empty");
			continue;
		}
		r->tags[r->ntags++] = xstrdup(json_string_value(t));
	}
}

static void parse_metadata(struct val_errors *e, const json_t *v, struct mail_request *r)
{
	if (!open_container(e, "metadata", v, 1, "an object of string values", 0, NULL))
		return;
	r->metadata = xcalloc(json_object_size(v) + 1, sizeof(*r->metadata));
	size_t total = 0;
	const char *k;
	const json_t *val;
	json_object_foreach((json_t *)v, k, val) {
		char field[160];
		snprintf(field, sizeof(field), "metadata.%.140s", k);
		total += strlen(k);
		if (!json_is_string(val)) {
			val_add(e, field, "invalid_type", "metadata values must be strings, not %s", type_name(val));
			continue;
		}
		total += json_string_length(val);
		if (strlen(json_string_value(val)) != json_string_length(val)) {
			val_add(e, field, "invalid_character", "NUL is not allowed");
			continue;
		}
		r->metadata[r->nmetadata].name = xstrdup(k);
		r->metadata[r->nmetadata].value = xstrdup(json_string_value(val));
		r->nmetadata++;
	}
	if (total > MF_METADATA_MAX)
		val_add(e, "metadata", "too_long", "keys and values together are at most %d octets", MF_METADATA_MAX);
}

static const char *const known_fields[] = {
	"from", "to", "cc", "bcc", "reply_to", "subject", "text", "html", "headers",
	"attachments", "tags", "metadata", "send_at", NULL,
};

int validate_send(const json_t *root, struct mail_request *r, struct val_errors *e)
{
	mail_request_init(r);
	int before = e->n + e->dropped;
	if (!json_is_object(root)) {
		val_add(e, "", "invalid_type", "the send request must be a JSON object, not %s", type_name(root));
		return -1;
	}
	const char *key;
	const json_t *v;
	json_object_foreach((json_t *)root, key, v) {
		int known = 0;
		for (int i = 0; known_fields[i]; i++)
			known |= strcmp(key, known_fields[i]) == 0;
		if (!known) {
			char field[160];
			snprintf(field, sizeof(field), "%.140s", key);
			val_add(e, field, "unknown_field", "not a field of the send request");
		}
	}

	const json_t *from = json_object_get(root, "from");
	if (from == NULL || json_is_null(from)) {
		val_add(e, "from", "required", "from is required");
	} else if (need_string(e, "from", from) == 0) {
		int ok = 1;
		add_address(e, "from", json_string_value(from), &r->from, &ok);
	}

	r->rcpts = xcalloc(MF_RECIPIENTS_MAX, sizeof(*r->rcpts));
	int total = 0;
	parse_rcpts(e, root, "to", RCPT_TO, r, &total);
	parse_rcpts(e, root, "cc", RCPT_CC, r, &total);
	parse_rcpts(e, root, "bcc", RCPT_BCC, r, &total);
	if (total == 0)
		val_add(e, "to", "required", "at least one recipient (to, cc or bcc) is required");
	else if (total > MF_RECIPIENTS_MAX)
		val_add(e, "to", "too_many", "at most %d recipients in to, cc and bcc together (got %d)",
			MF_RECIPIENTS_MAX, total);

	parse_reply_to(e, json_object_get(root, "reply_to"), r);

	const json_t *subj = json_object_get(root, "subject");
	if (subj && !json_is_null(subj)) {
		if (need_string(e, "subject", subj) == 0 &&
		    check_header_text(e, "subject", json_string_value(subj), json_string_length(subj), MF_SUBJECT_MAX) == 0)
			r->subject = xstrdup(json_string_value(subj));
	}
	if (r->subject == NULL)
		r->subject = xstrdup("");

	const char *bodies[] = { "text", "html" };
	char **dst[] = { &r->text, &r->html };
	int present = 0, body_bad = 0;
	for (int i = 0; i < 2; i++) {
		const json_t *b = json_object_get(root, bodies[i]);
		if (b == NULL || json_is_null(b))
			continue;
		present = 1;
		if (need_string(e, bodies[i], b) < 0) {
			body_bad = 1;
			continue;
		}
		if (strlen(json_string_value(b)) != json_string_length(b)) {
			val_add(e, bodies[i], "invalid_character", "NUL is not allowed");
			body_bad = 1;
			continue;
		}
		if (json_string_length(b) > 0)
			*dst[i] = xstrdup(json_string_value(b));
	}
	if (!present)
		val_add(e, "text", "required", "give text, html or both");
	else if (r->text == NULL && r->html == NULL && !body_bad)
		val_add(e, "text", "required", "text and html must not both be empty");

	parse_headers(e, json_object_get(root, "headers"), r);
	parse_attachments(e, json_object_get(root, "attachments"), r);
	parse_tags(e, json_object_get(root, "tags"), r);
	parse_metadata(e, json_object_get(root, "metadata"), r);

	const json_t *sa = json_object_get(root, "send_at");
	if (sa && !json_is_null(sa) && need_string(e, "send_at", sa) == 0 &&
	    validate_rfc3339(json_string_value(sa), &r->send_at) < 0)
		val_add(e, "send_at", "invalid_datetime", "expected an RFC 3339 date-time such as 2026-01-31T09:00:00Z");

	if (e->n + e->dropped > before) {
		mail_request_cleanup(r);
		return -1;
	}
	return 0;
}
