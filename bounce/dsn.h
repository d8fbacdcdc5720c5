/*
 * dsn.h - reading bounces: RFC 3464 delivery status notifications
 * (multipart/report; report-type=delivery-status, RFC 6522) and, as best
 * effort, the common non-standard formats (qmail, old Exim, Exchange and
 * Gmail text), told apart from RFC 3834 auto-replies and out-of-office
 * mail, which are not bounces.
 *
 * dsn_parse() takes raw outside input and never crashes on it; every
 * field is bounded (util/limits.h) and truncated, never overflowed.  It
 * returns 0 with *out filled (kind DSN_NOT_BOUNCE when it is not a bounce),
 * or -1 when the input is too large.  The report owns its recipient array;
 * release it with dsn_report_cleanup().  No database, no classification:
 * bounce processing (bounce/bounces.c) does that with the result.
 */
#ifndef MF_BOUNCE_DSN_H
#define MF_BOUNCE_DSN_H

#include <stddef.h>

#include "util/limits.h"

enum dsn_kind {
	DSN_NOT_BOUNCE,   /* an auto-reply, out-of-office, or ordinary mail */
	DSN_RFC3464,      /* a multipart/report delivery-status */
	DSN_HEURISTIC,    /* a non-standard bounce, read from its text */
};

/* RFC 3464 §2.3.3. */
enum dsn_action { DSN_ACTION_NONE, DSN_ACTION_FAILED, DSN_ACTION_DELAYED, DSN_ACTION_DELIVERED,
		  DSN_ACTION_RELAYED, DSN_ACTION_EXPANDED };

struct dsn_rcpt {
	char final_rcpt[MF_ADDRESS_MAX + 1];     /* addr-spec, "rfc822;" removed */
	char original_rcpt[MF_ADDRESS_MAX + 1];
	enum dsn_action action;
	char status[16];                         /* "5.1.1" (RFC 3463), "" when none */
	char remote_mta[MF_DOMAIN_MAX + 1];      /* "dns;" removed */
	char diagnostic[MF_DSN_FIELD_MAX];       /* the text after "smtp;" */
	int diag_code;                           /* SMTP reply code in the diagnostic, 0 when none */
	char diag_status[16];                    /* enhanced code in the diagnostic ("" when none):
						    more precise than Exim's "Status: 5.0.0" */
};

struct dsn_report {
	enum dsn_kind kind;
	char not_bounce_reason[64];              /* why DSN_NOT_BOUNCE: "auto-submitted", ... */
	char reporting_mta[MF_DOMAIN_MAX + 1];
	char original_envid[MF_DSN_FIELD_MAX];
	char orig_message_id[MF_DSN_FIELD_MAX];  /* of the returned message, without <> */
	char bounce_to[MF_ADDRESS_MAX + 1];      /* addr-spec of the bounce's To: (the VERP address) */
	char failed_recipients[MF_DSN_FIELD_MAX]; /* X-Failed-Recipients, as given */
	struct dsn_rcpt *rcpts;
	int nrcpts;
};

int dsn_parse(const char *data, size_t len, struct dsn_report *out, char *err, size_t errlen);
void dsn_report_cleanup(struct dsn_report *r);

/* "failed", "delayed", ... ; "" for DSN_ACTION_NONE. */
const char *dsn_action_name(enum dsn_action a);
const char *dsn_kind_name(enum dsn_kind k);

#endif
