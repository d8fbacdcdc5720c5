/*
 * submit_msg.h - a message submitted over SMTP, checked and made ready to
 * store (issue 19 point 3 and 4).  Pure: no I/O, no database, so it is
 * unit-tested and fuzzed on its own (tests/fuzz/fuzz_submit_msg.c).
 *
 * submit_msg_prepare() scans the message as the SMTP server received it
 * (dot-unstuffed, our Received: line first) and refuses what would break
 * it downstream:
 *   - a bare CR or LF (RFC 5321 §2.3.8: lines end in CRLF; a relay that
 *     "fixes" them changes the DKIM body hash, and bare LF is what SMTP
 *     smuggling is made of);
 *   - a line longer than 998 octets (RFC 5322 §2.1.1, RFC 5321 §4.5.3.1.6);
 *   - octets above 127 unless MAIL said BODY=8BITMIME (RFC 6152 §3) or
 *     SMTPUTF8 (RFC 6531 §3.2, which implies it); NUL anywhere;
 *   - a header section that is not header fields (RFC 5322 §2.2), no
 *     From: or two of them (§3.6: exactly one).
 * What it keeps is the message as submitted - its own Message-ID, its
 * headers and MIME structure - except that it removes the
 * X-Mailferry-Tag and X-Mailferry-Metadata fields (they become the
 * message's tags and metadata) and adds Date: and Message-ID: when they
 * are missing, as an MTA does (RFC 5321 §6.4).  DKIM signing is the
 * caller's (submit.c, with the signer the API path uses), over these
 * bytes.
 *
 * Returns SUBMIT_MSG_OK with out filled (free with submit_msg_cleanup), or
 * another status with a short reason in out->why (the caller chooses the
 * SMTP reply).
 */
#ifndef MF_SUBMIT_SUBMIT_MSG_H
#define MF_SUBMIT_SUBMIT_MSG_H

#include <stddef.h>

#include "util/buf.h"
#include "util/limits.h"

enum submit_msg_status {
	SUBMIT_MSG_OK,
	SUBMIT_MSG_BARE_EOL,   /* a CR or LF not in a CRLF pair */
	SUBMIT_MSG_LONG_LINE,  /* a line over 998 octets */
	SUBMIT_MSG_8BIT,       /* 8-bit octets without BODY=8BITMIME / SMTPUTF8 */
	SUBMIT_MSG_NUL,        /* a NUL octet */
	SUBMIT_MSG_BAD_HEADER, /* a header line that is no field, or an empty name */
	SUBMIT_MSG_NO_FROM,    /* no From: field, or more than one */
	SUBMIT_MSG_BAD_TAG,    /* X-Mailferry-Tag empty, too long or too many */
	SUBMIT_MSG_BAD_META,   /* X-Mailferry-Metadata not key=value, or too much */
	SUBMIT_MSG_TOO_BIG,    /* with the added fields, over max_size */
};

struct submit_msg_params {
	int body_8bitmime;     /* MAIL BODY=8BITMIME */
	int smtputf8;          /* MAIL SMTPUTF8 */
	const char *msgid_domain; /* for a Message-ID we add: <uuid@msgid_domain> */
	const char *msgid_local;  /* its left-hand side (the message's id) */
	long date;             /* time_t for a Date: we add */
	size_t max_size;       /* the prepared message's limit */
};

struct submit_msg {
	char *from;            /* the From: value, unfolded and trimmed */
	char *subject;         /* the Subject: value, unfolded ("" when none) */
	char *message_id;      /* the Message-ID without <> (ours when added) */
	int message_id_added;  /* 1 when the client sent none */
	char *to;              /* To: and Cc: values, unfolded, "\n"-joined: to tell to/cc/bcc */
	char *cc;
	char *tags[MF_TAGS_MAX];
	int ntags;
	struct buf metadata;   /* a JSON object, "{}" when none */
	struct buf body;       /* the message to store (before DKIM) */
	char why[160];
};

enum submit_msg_status submit_msg_prepare(const char *data, size_t len, const struct submit_msg_params *p,
					  struct submit_msg *out);
void submit_msg_cleanup(struct submit_msg *m);
/* "to", "cc" or "bcc": where rcpt (an addr-spec, as RCPT TO gave it)
 * appears among the addresses of m's To: and Cc: fields; bcc when in
 * neither.  Addresses are compared as submit_msg_next_addr() writes
 * them, ASCII case-insensitively (local parts too, as mailbox providers
 * treat them); display names, comments and group names are never
 * addresses. */
const char *submit_msg_kind(const struct submit_msg *m, const char *rcpt);
/* The next address of an RFC 5322 address-list (§3.4: mailboxes, groups,
 * display names plain, quoted or RFC 2047 encoded, comments, folding
 * already unfolded; several fields joined by '\n'), advancing *cursor.
 * Writes it to out normalized: the local part unquoted, the domain lower
 * case.  Returns 1, or 0 at the end of the list.  An element that is no
 * local@domain, or longer than MF_ADDRESS_MAX, is skipped. */
int submit_msg_next_addr(const char **cursor, char *out, size_t outsz);

#endif
