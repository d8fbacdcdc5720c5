/*
 * mime_parse.h - a small, bounded MIME reader for mail that comes from
 * outside (bounces): header fields with folding (RFC 5322 §2.2.3),
 * multipart bodies (RFC 2046 §5.1), nested message/rfc822 and
 * text/rfc822-headers parts, Content-Transfer-Encoding base64 and
 * quoted-printable (RFC 2045 §6.7, §6.8).
 *
 * mime_parse() never fails on malformed input: it reads what it can, stops
 * at the limits of util/limits.h (depth, parts, headers, value length) and
 * returns a tree.  It fails (-1, err set) only when the input is larger
 * than MF_BOUNCE_SIZE_MAX.  The tree owns every string; free it with
 * mime_part_free().  Header values are unfolded (CRLF removed before the
 * folding white space) and kept as raw octets, NUL-free.
 */
#ifndef MF_MAIL_MIME_PARSE_H
#define MF_MAIL_MIME_PARSE_H

#include <stddef.h>

struct mime_header {
	char *name;
	char *value;
};

struct mime_part {
	struct mime_header *hdrs;
	int nhdrs;
	char *ctype;              /* "type/subtype", lower case; default text/plain */
	char *body;               /* transfer-decoded body, NUL-terminated */
	size_t body_len;
	struct mime_part **children; /* multipart parts, or the one message of a
					message/rfc822 or text/rfc822-headers part */
	int nchildren;
	int depth;
};

/* Parses data[len]; *out is a new tree (caller frees), or NULL on -1. */
int mime_parse(const char *data, size_t len, struct mime_part **out, char *err, size_t errlen);
void mime_part_free(struct mime_part *p);

/*
 * Parses only a header block (e.g. a message/delivery-status field group)
 * from data[len] into p->hdrs; returns the offset just past the empty line
 * that ends it (or len).
 */
size_t mime_parse_headers(const char *data, size_t len, struct mime_part *p);

/* First header called name (case-insensitive), or NULL.  Borrowed. */
const char *mime_header_get(const struct mime_part *p, const char *name);
/*
 * Writes the value of parameter param of a structured header value such
 * as  multipart/report; report-type="delivery-status"  into out (quotes
 * and escapes removed, RFC 2045 §5.1).  Returns 0, or -1 when absent.
 */
int mime_param_get(const char *value, const char *param, char *out, size_t outsz);

#endif
