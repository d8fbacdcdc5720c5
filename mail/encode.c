/*
 * encode.c - base64 lines (the codec itself is util/base64.c),
 * quoted-printable, RFC 2047 encoded-words, RFC 2231 parameters and
 * header folding for the MIME composer (see encode.h).
 *
 * Everything appends to a struct buf and returns 0, or -1 when the buffer
 * is full.  Header writers keep lines at MF_MIME_FOLD_WIDTH characters
 * where the content allows a fold, and never produce a token that cannot
 * fit a line of MF_MIME_LINE_MAX octets (RFC 5322 §2.1.1): text that could not be folded is written as
 * encoded-words instead.
 */
#include "mail/encode.h"

#include <stdlib.h>
#include <string.h>

#include "util/base64.h"
#include "util/limits.h"
#include "util/scan.h"
#include "util/xmalloc.h"

static const char hex_upper[] = "0123456789ABCDEF";

/* Lines are assembled here and appended a chunk at a time. */
#define ENC_CHUNK 1024

/* RFC 2045 §6.8 lines on top of util/base64: a line is ceil(line / 4)
 * quanta of 3 input bytes, so every line but the last is whole. */
int enc_base64(struct buf *out, const unsigned char *p, size_t n, size_t line)
{
	char chunk[ENC_CHUNK];
	size_t len = 0, per = (line + 3) / 4 * 3;

	if (line == 0)
		return base64_encode_buf(out, p, n, 0);
	for (size_t i = 0; i < n; i += per) {
		size_t k = n - i < per ? n - i : per, w = base64_encoded_len(k, 0);
		if (len + w + 3 > sizeof(chunk)) {
			if (len > 0 && buf_append(out, chunk, len))
				return -1;
			len = 0;
		}
		if (w + 3 > sizeof(chunk)) { /* a line longer than the chunk */
			if (base64_encode_buf(out, p + i, k, 0) || buf_append(out, "\r\n", 2))
				return -1;
			continue;
		}
		len += (size_t)base64_encode(p + i, k, chunk + len, sizeof(chunk) - len, 0);
		chunk[len++] = '\r';
		chunk[len++] = '\n';
	}
	return len > 0 ? buf_append(out, chunk, len) : 0;
}

/* Length of the line starting at p (up to end), and of its line break. */
static size_t line_span(const char *p, const char *end, size_t *eol)
{
	const char *q = p + scan_eol(p, (size_t)(end - p));
	*eol = 0;
	if (q < end)
		*eol = (*q == '\r' && q + 1 < end && q[1] == '\n') ? 2 : 1;
	return (size_t)(q - p);
}

int enc_crlf(struct buf *out, const char *p, size_t n)
{
	const char *end = p + n;
	while (p < end) {
		size_t eol, len = line_span(p, end, &eol);
		if (buf_append(out, p, len) || buf_append(out, "\r\n", 2))
			return -1;
		p += len + eol;
	}
	return 0;
}

/* RFC 2045 §6.7 rules (1)-(3): what must be written as =XX.  A '.' at
 * the start of a line is encoded too, so no line of the body can be the
 * SMTP end-of-data mark even before dot-stuffing. */
static int qp_must_encode(unsigned char c, int at_end, size_t col)
{
	if (c == '=' || c > 126 || (c < 32 && c != '\t'))
		return 1;
	if ((c == ' ' || c == '\t') && at_end)
		return 1;
	return c == '.' && col == 0;
}

int enc_qp(struct buf *out, const char *p, size_t n)
{
	const char *end = p + n;
	char line[MF_MIME_ENCODED_LINE + 8];

	while (p < end) {
		size_t eol, len = line_span(p, end, &eol), col = 0;
		for (size_t i = 0; i < len; i++) {
			/* Eight literal octets at once while they fit before the
			 * soft-break column and are not the line's last (whose
			 * whitespace rule 3 encodes) nor a leading '.'. */
			while (i + 8 < len && col + 8 <= MF_MIME_ENCODED_LINE - 1 && scan_word_plain(p + i) &&
			       (col > 0 || p[i] != '.')) {
				memcpy(line + col, p + i, 8);
				col += 8;
				i += 8;
			}
			unsigned char c = (unsigned char)p[i];
			int last = i + 1 == len;
			int enc = qp_must_encode(c, last, col);
			size_t t = enc ? 3 : 1;
			/* Soft break "=" keeps every line at MF_MIME_ENCODED_LINE (rule 5),
			 * unless this is the line's last token and it fits. */
			if (col + t > MF_MIME_ENCODED_LINE - 1 && !(last && col + t <= MF_MIME_ENCODED_LINE)) {
				line[col++] = '=';
				line[col++] = '\r';
				line[col++] = '\n';
				if (buf_append(out, line, col))
					return -1;
				col = 0;
				enc = qp_must_encode(c, last, col);
				t = enc ? 3 : 1;
			}
			if (enc) {
				line[col++] = '=';
				line[col++] = hex_upper[c >> 4];
				line[col++] = hex_upper[c & 15];
			} else {
				line[col++] = (char)c;
			}
		}
		line[col++] = '\r';
		line[col++] = '\n';
		if (buf_append(out, line, col))
			return -1;
		p += len + eol;
	}
	return 0;
}

int enc_is_ascii(const char *s, size_t n)
{
	for (size_t i = scan_ascii_prefix((const unsigned char *)s, n); i < n; i++)
		if ((unsigned char)s[i] > 127)
			return 0;
	return 1;
}

enum enc_cte enc_text_cte(const char *p, size_t n)
{
	size_t col = 0, maxline = 0, encoded = 0;
	int plain = 1;
	for (size_t i = 0; i < n; i++) {
		/* Printable octets other than '=' change nothing but the column. */
		while (i + 8 <= n && scan_word_plain(p + i)) {
			col += 8;
			i += 8;
		}
		if (col > maxline)
			maxline = col;
		if (i == n)
			break;
		unsigned char c = (unsigned char)p[i];
		if (c == '\r' || c == '\n') {
			if (i > 0 && (p[i - 1] == ' ' || p[i - 1] == '\t'))
				plain = 0; /* trailing whitespace may be stripped in transit */
			col = 0;
			continue;
		}
		col++;
		if (col > maxline)
			maxline = col;
		if (c > 126 || (c < 32 && c != '\t'))
			plain = 0;
		if (c > 126 || (c < 32 && c != '\t') || c == '=')
			encoded++;
	}
	if (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		plain = 0;
	if (plain && maxline <= MF_MIME_FOLD_WIDTH)
		return ENC_7BIT;
	/* Each encoded octet costs 3 characters in QP, every octet 4/3 in
	 * base64: mostly non-Latin text is smaller in base64. */
	if (n + 2 * encoded > (n / 3 + 1) * 4)
		return ENC_BASE64;
	return ENC_QP;
}

/* ---- header fields ---------------------------------------------------- */

int hdr_begin(struct hdr *h, struct buf *out, const char *name)
{
	h->out = out;
	h->col = strlen(name) + 1;
	h->first = h->col;
	if (buf_puts(out, name) || buf_putc(out, ':'))
		return -1;
	return 0;
}

/* Folds (RFC 5322 §2.2.3: CRLF before the whitespace) when a token of n
 * characters plus its space would pass width. */
static int hdr_fold_for(struct hdr *h, size_t n, size_t width)
{
	if (h->col > h->first && h->col + 1 + n > width) {
		if (buf_append(h->out, "\r\n", 2))
			return -1;
		h->col = 0;
	}
	return 0;
}

int hdr_token(struct hdr *h, const char *tok, size_t n)
{
	if (hdr_fold_for(h, n, MF_MIME_FOLD_WIDTH) || buf_putc(h->out, ' ') ||
	    buf_append(h->out, tok, n))
		return -1;
	h->col += 1 + n;
	return 0;
}

int hdr_glue(struct hdr *h, const char *s, size_t n)
{
	if (buf_append(h->out, s, n))
		return -1;
	h->col += n;
	return 0;
}

int hdr_end(struct hdr *h)
{
	h->col = 0;
	return buf_append(h->out, "\r\n", 2);
}

/* Octets of the UTF-8 sequence at s (1 for a stray byte). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t want = 1;
	if (s[0] >= 0xC2 && s[0] <= 0xDF)
		want = 2;
	else if (s[0] >= 0xE0 && s[0] <= 0xEF)
		want = 3;
	else if (s[0] >= 0xF0 && s[0] <= 0xF4)
		want = 4;
	if (want > n)
		return 1;
	for (size_t i = 1; i < want; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 1;
	return want;
}

/* RFC 2047 §5(3): characters that may stand for themselves in a "Q"
 * encoded-word anywhere, including inside a phrase. */
static int q_safe(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '!' || c == '*' || c == '+' || c == '-' || c == '/';
}

static size_t q_cost(unsigned char c)
{
	return (q_safe(c) || c == ' ') ? 1 : 3;
}

/* Writes one finished encoded-word as a token; the caller sized it so
 * that the line stays within MF_MIME_ENCODED_LINE characters (RFC 2047 §2). */
static int ew_flush(struct hdr *h, int use_b, const unsigned char *raw, size_t n)
{
	struct buf w;
	int rc;

	buf_init(&w, 2 * MF_MIME_EW_MAX);
	rc = buf_puts(&w, use_b ? "=?utf-8?b?" : "=?utf-8?q?");
	if (use_b) {
		rc = rc || enc_base64(&w, raw, n, 0);
	} else {
		for (size_t i = 0; i < n && rc == 0; i++) {
			unsigned char c = raw[i];
			if (c == ' ')
				rc = buf_putc(&w, '_');
			else if (q_safe(c))
				rc = buf_putc(&w, (char)c);
			else
				rc = buf_printf(&w, "=%c%c", hex_upper[c >> 4], hex_upper[c & 15]);
		}
	}
	rc = rc || buf_puts(&w, "?=");
	if (rc == 0)
		rc = hdr_fold_for(h, w.len, MF_MIME_ENCODED_LINE) || hdr_token(h, w.data, w.len);
	buf_cleanup(&w);
	return rc ? -1 : 0;
}

int hdr_encoded_words(struct hdr *h, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t qlen = 0;
	for (size_t i = 0; i < n; i++)
		qlen += q_cost(u[i]);
	/* "Q" stays readable; "B" only when it is clearly shorter. */
	size_t blen = (n + 2) / 3 * 4;
	int use_b = qlen > blen + blen / 4;
	const size_t overhead = 12; /* "=?utf-8?q?" "?=" */

	size_t i = 0;
	while (i < n) {
		/* Room for this word: the rest of the current line, or a fresh
		 * continuation line when little is left there. */
		size_t room = MF_MIME_ENCODED_LINE - 1;
		if (h->col + 1 + overhead + 16 <= MF_MIME_ENCODED_LINE)
			room = MF_MIME_ENCODED_LINE - h->col - 1;
		if (room > MF_MIME_EW_MAX)
			room = MF_MIME_EW_MAX;
		size_t start = i, qcost = overhead;
		while (i < n) {
			size_t cl = utf8_len(u + i, n - i), cost = 0;
			if (use_b) {
				cost = ((i + cl - start) + 2) / 3 * 4 + overhead;
			} else {
				for (size_t k = 0; k < cl; k++)
					cost += q_cost(u[i + k]);
				cost += qcost;
			}
			if (cost > room && i > start)
				break;
			qcost = cost;
			i += cl;
		}
		if (ew_flush(h, use_b, u + start, i - start))
			return -1;
	}
	return 0;
}

static int is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* Can s go out as plain unstructured text, folded only at its own
 * whitespace, and come back identical after unfolding? */
static int unstructured_plain(const struct hdr *h, const char *s)
{
	size_t n = strlen(s), word = 0;
	if (n == 0)
		return 1;
	if (is_wsp(s[0]) || is_wsp(s[n - 1]) || strstr(s, "=?") != NULL)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c > 126 || (c < 32 && c != '\t'))
			return 0;
		word = is_wsp(s[i]) ? 0 : word + 1;
		if (h->first + 1 + word > MF_MIME_LINE_MAX)
			return 0;
	}
	return 1;
}

int hdr_unstructured(struct hdr *h, const char *s)
{
	if (!unstructured_plain(h, s))
		return hdr_encoded_words(h, s, strlen(s));
	const char *p = s;
	int first = 1;
	while (*p) {
		const char *ws = p;
		while (is_wsp(*p))
			p++;
		const char *w = p;
		while (*p && !is_wsp(*p))
			p++;
		size_t wsn = (size_t)(w - ws), wn = (size_t)(p - w);
		if (first) {
			if (hdr_token(h, w, wn))
				return -1;
			first = 0;
			continue;
		}
		/* Fold by putting CRLF before the original whitespace, which
		 * unfolding (§2.2.3) turns back into the same text. */
		if (h->col > h->first && h->col + wsn + wn > MF_MIME_FOLD_WIDTH) {
			if (buf_append(h->out, "\r\n", 2))
				return -1;
			h->col = 0;
		}
		if (hdr_glue(h, ws, wsn) || hdr_glue(h, w, wn))
			return -1;
	}
	return 0;
}

/* RFC 5322 §3.2.3 atext. */
static int is_atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Longest display name written as one quoted-string. */
#define PHRASE_QUOTED_MAX 60

enum word_class { WORD_ATOM, WORD_QUOTE, WORD_ENCODE };

static enum word_class word_class(const char *w, size_t n)
{
	enum word_class k = WORD_ATOM;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)w[i];
		if (c < 32 || c > 126)
			return WORD_ENCODE;
		if (c == '=' && i + 1 < n && w[i + 1] == '?')
			return WORD_ENCODE; /* would read as an encoded-word */
		if (!is_atext(c))
			k = WORD_QUOTE;
	}
	return k;
}

static int phrase_quoted(struct hdr *h, const char *s, size_t n)
{
	struct buf q;
	int rc;
	buf_init(&q, MF_MIME_LINE_MAX);
	rc = buf_putc(&q, '"');
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (s[i] == '"' || s[i] == '\\')
			rc = buf_putc(&q, '\\');
		rc = rc || buf_putc(&q, s[i]);
	}
	rc = rc || buf_putc(&q, '"') || hdr_token(h, q.data, q.len);
	buf_cleanup(&q);
	return rc ? -1 : 0;
}

/*
 * RFC 5322 §3.2.5 phrase.  Short printable ASCII goes out as atoms or
 * one quoted-string.  Otherwise word by word: atoms stay atoms, other
 * ASCII words are quoted, and each run of words that need encoding
 * becomes encoded-words (RFC 2047 §5(3)) with its inner spaces encoded,
 * so that a decoder never has to guess whether whitespace between two
 * encoded-words was meant (§6.2 drops it; some readers keep it).  Runs
 * of whitespace between words mean one space in a phrase (§3.2.2).
 */
int hdr_phrase(struct hdr *h, const char *s)
{
	size_t n = strlen(s);
	if (n == 0)
		return 0;
	int simple = n <= PHRASE_QUOTED_MAX;
	for (size_t i = 0; i < n && simple; i++)
		if ((unsigned char)s[i] < 32 || (unsigned char)s[i] > 126)
			simple = 0;
	if (simple && strstr(s, "=?") == NULL) {
		int atoms = s[0] != ' ' && s[n - 1] != ' ' && strstr(s, "  ") == NULL &&
			    word_class(s, n) != WORD_ENCODE;
		for (size_t i = 0; i < n && atoms; i++)
			atoms = s[i] == ' ' || is_atext((unsigned char)s[i]);
		if (!atoms)
			return phrase_quoted(h, s, n);
	}

	const char *p = s, *end = s + n;
	while (p < end) {
		while (p < end && is_wsp(*p))
			p++;
		if (p == end)
			break;
		size_t wn = 0;
		while (p + wn < end && !is_wsp(p[wn]))
			wn++;
		enum word_class k = word_class(p, wn);
		if (k == WORD_ATOM) {
			if (hdr_token(h, p, wn))
				return -1;
			p += wn;
			continue;
		}
		if (k == WORD_QUOTE) {
			if (phrase_quoted(h, p, wn))
				return -1;
			p += wn;
			continue;
		}
		/* Extend the run over following words that need encoding. */
		const char *run = p, *run_end = p + wn;
		for (;;) {
			const char *q = run_end;
			while (q < end && is_wsp(*q))
				q++;
			size_t qn = 0;
			while (q + qn < end && !is_wsp(q[qn]))
				qn++;
			if (qn == 0 || word_class(q, qn) != WORD_ENCODE)
				break;
			run_end = q + qn;
		}
		/* Whitespace inside the run is normalised to single spaces, so
		 * the run's own length bounds it. */
		struct buf r;
		buf_init(&r, (size_t)(run_end - run) + 1);
		int rc = 0;
		for (const char *q = run; q < run_end && rc == 0; q++) {
			if (is_wsp(*q)) {
				if (q[-1] != ' ' && !is_wsp(q[-1]))
					rc = buf_putc(&r, ' ');
			} else {
				rc = buf_putc(&r, *q);
			}
		}
		rc = rc || hdr_encoded_words(h, r.data, r.len);
		buf_cleanup(&r);
		if (rc)
			return -1;
		p = run_end;
	}
	return 0;
}

int hdr_mailbox(struct hdr *h, const char *name, const char *addr, int comma)
{
	char *tok;
	int rc;
	if (name != NULL && *name != '\0') {
		if (hdr_phrase(h, name))
			return -1;
		tok = xasprintf("<%s>%s", addr, comma ? "," : "");
	} else {
		tok = xasprintf("%s%s", addr, comma ? "," : "");
	}
	rc = hdr_token(h, tok, strlen(tok));
	free(tok);
	return rc;
}

/* RFC 2045 §5.1 token characters. */
static int is_token_char(unsigned char c)
{
	return c > 32 && c < 127 && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/* RFC 2231 §7 attribute-char: a token character except '*', ''' and '%'. */
static int is_attr_char(unsigned char c)
{
	return is_token_char(c) && c != '*' && c != '\'' && c != '%';
}

/* Values up to this long go out as a plain token or quoted-string. */
#define PARAM_PLAIN_MAX 60
/* Percent-encoded characters per RFC 2231 continuation section. */
#define PARAM_SECTION_MAX 48

static int param_rfc2231(struct hdr *h, const char *name, const char *value)
{
	const unsigned char *u = (const unsigned char *)value;
	size_t n = strlen(value), i = 0;
	struct buf t;
	int rc = 0, section = 0;
	size_t total = 0;

	for (size_t k = 0; k < n; k++)
		total += is_attr_char(u[k]) ? 1 : 3;
	int single = total + strlen(name) + 10 <= MF_MIME_ENCODED_LINE;

	buf_init(&t, MF_MIME_LINE_MAX);
	while (i < n && rc == 0) {
		buf_reset(&t);
		if (single)
			rc = buf_printf(&t, "%s*=utf-8''", name);
		else if (section == 0)
			rc = buf_printf(&t, "%s*0*=utf-8''", name);
		else
			rc = buf_printf(&t, "%s*%d*=", name, section);
		size_t used = 0;
		/* §3/§4: sections split between characters, never inside a
		 * UTF-8 sequence or a %XX triplet. */
		while (i < n && rc == 0) {
			size_t cl = utf8_len(u + i, n - i), cost = 0;
			for (size_t k = 0; k < cl; k++)
				cost += is_attr_char(u[i + k]) ? 1 : 3;
			if (!single && used > 0 && used + cost > PARAM_SECTION_MAX)
				break;
			for (size_t k = 0; k < cl && rc == 0; k++) {
				unsigned char c = u[i + k];
				if (is_attr_char(c))
					rc = buf_putc(&t, (char)c);
				else
					rc = buf_printf(&t, "%%%c%c", hex_upper[c >> 4], hex_upper[c & 15]);
			}
			used += cost;
			i += cl;
		}
		rc = rc || hdr_glue(h, ";", 1) || hdr_token(h, t.data, t.len);
		section++;
	}
	buf_cleanup(&t);
	return rc ? -1 : 0;
}

int hdr_param(struct hdr *h, const char *name, const char *value)
{
	size_t n = strlen(value);
	int token = n > 0, printable = 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)value[i];
		if (!is_token_char(c))
			token = 0;
		if (c < 32 || c > 126)
			printable = 0;
	}
	if (!printable || n > PARAM_PLAIN_MAX)
		return param_rfc2231(h, name, value);

	struct buf t;
	int rc;
	buf_init(&t, MF_MIME_LINE_MAX);
	rc = buf_printf(&t, "%s=", name);
	if (token) {
		rc = rc || buf_puts(&t, value);
	} else {
		rc = rc || buf_putc(&t, '"');
		for (size_t i = 0; i < n && rc == 0; i++) {
			if (value[i] == '"' || value[i] == '\\')
				rc = buf_putc(&t, '\\');
			rc = rc || buf_putc(&t, value[i]);
		}
		rc = rc || buf_putc(&t, '"');
	}
	rc = rc || hdr_glue(h, ";", 1) || hdr_token(h, t.data, t.len);
	buf_cleanup(&t);
	return rc ? -1 : 0;
}
