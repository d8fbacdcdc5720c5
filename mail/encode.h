/*
 * encode.h - the MIME encodings the composer (mail/mime.c) is built from:
 * base64 and quoted-printable bodies (RFC 2045 §6.7, §6.8), RFC 2047
 * encoded-words, RFC 2231 parameter values, and header field folding
 * (RFC 5322 §2.2.3).
 *
 * Every function appends to a caller's struct buf and returns 0, or -1 when
 * the buffer's maximum size would be exceeded (the buffer may then hold a
 * partial result; the caller discards it).  Input text is UTF-8; nothing
 * here allocates memory that outlives a call.
 */
#ifndef MF_MAIL_ENCODE_H
#define MF_MAIL_ENCODE_H

#include <stddef.h>

#include "util/buf.h"

/* Base64 (RFC 4648 §4).  line > 0: CRLF after every line chars and at the
 * end (RFC 2045 §6.8: MF_MIME_ENCODED_LINE); line == 0: one unbroken run, no CRLF. */
int enc_base64(struct buf *out, const unsigned char *p, size_t n, size_t line);

/* Quoted-printable (RFC 2045 §6.7) of text whose line ends are CRLF, LF or
 * CR; output lines end in CRLF and are at most MF_MIME_ENCODED_LINE
 * characters, with soft
 * line breaks, encoded trailing whitespace, '=' and non-ASCII as =XX.  A
 * final CRLF is always written. */
int enc_qp(struct buf *out, const char *p, size_t n);

/* Text with its line ends turned into CRLF (lone CR and LF alike), with a
 * final CRLF added when missing and the text is not empty. */
int enc_crlf(struct buf *out, const char *p, size_t n);

enum enc_cte { ENC_7BIT, ENC_QP, ENC_BASE64 };
/* The transfer encoding for a text body: 7bit when it is short-lined
 * printable ASCII, else quoted-printable, or base64 when that is shorter
 * (mostly non-Latin text). */
enum enc_cte enc_text_cte(const char *p, size_t n);

/* 1 when s[0..n) is all 7-bit ASCII. */
int enc_is_ascii(const char *s, size_t n);

/*
 * Header field writer with folding.  hdr_begin() writes "Name:"; each
 * token is preceded by one space, and the writer folds (CRLF before that
 * space) when the token would pass column MF_MIME_FOLD_WIDTH.  A token
 * longer than the room on a fresh line is written unbroken (callers keep
 * tokens under MF_MIME_LINE_MAX octets).  hdr_end() writes the final CRLF.
 */
struct hdr {
	struct buf *out;
	size_t col;    /* octets on the current line */
	size_t first;  /* col just after "Name:", folding is pointless there */
};
int hdr_begin(struct hdr *h, struct buf *out, const char *name);
int hdr_token(struct hdr *h, const char *tok, size_t n);
/* Appends without a space and without folding, e.g. "," or ";". */
int hdr_glue(struct hdr *h, const char *s, size_t n);
int hdr_end(struct hdr *h);

/* An unstructured value (Subject, custom headers), RFC 5322 §3.2.5: plain
 * and folded at its own whitespace when it is ASCII that survives that;
 * else one or more RFC 2047 encoded-words. */
int hdr_unstructured(struct hdr *h, const char *s);

/* A display name (RFC 5322 §3.2.5 phrase): atoms, one quoted-string, or
 * RFC 2047 encoded-words (§5(3)) for non-ASCII or long names. */
int hdr_phrase(struct hdr *h, const char *s);

/* A mailbox: [phrase] "<" addr ">", or the bare addr-spec without name. */
int hdr_mailbox(struct hdr *h, const char *name, const char *addr, int comma);

/* RFC 2047 encoded-words ("=?utf-8?q?...?=" or "?b?"), each at most
 * MF_MIME_EW_MAX characters and never splitting a UTF-8 sequence, written as tokens. */
int hdr_encoded_words(struct hdr *h, const char *s, size_t n);

/* A parameter "; name=value" (RFC 2045 §5.1): token or quoted-string for
 * short ASCII, RFC 2231 (name*=utf-8''%XX.. with continuations name*0*=,
 * name*1*=, ...) for non-ASCII or long values. */
int hdr_param(struct hdr *h, const char *name, const char *value);

#endif
