/*
 * classify.h - the one table that turns an SMTP reply or a DSN status into
 * a bounce type and category.  Used by the failure policy (synchronous SMTP
 * rejections) and by the DSN parser alike.
 */
#ifndef MF_MAIL_CLASSIFY_H
#define MF_MAIL_CLASSIFY_H

enum bounce_type { BOUNCE_NONE, BOUNCE_TRANSIENT, BOUNCE_PERMANENT };

struct classification {
	enum bounce_type type;
	const char *category;  /* static: bad_mailbox, bad_domain, mailbox_full, message_too_large,
				  policy, reputation, spam, dns, routing, protocol, other */
};

/* code: SMTP reply code or 0; enhanced: "5.1.1" or NULL/""; text may be NULL. */
struct classification classify_reply(int code, const char *enhanced, const char *text);
/* 1 when this outcome puts the address on the suppression list. */
int classify_suppresses(const struct classification *c);
const char *bounce_type_name(enum bounce_type t);  /* "permanent", "transient", NULL */

#endif
