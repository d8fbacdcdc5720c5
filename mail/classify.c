/*
 * classify.c - the one table that turns an SMTP reply (code, RFC 3463
 * enhanced status code, text) into a bounce type and category (see
 * classify.h).  The failure policy (queue/policy.c) and the DSN parser
 * both call classify_reply(), so a 5.1.1 means the same thing whether it
 * came back during the SMTP transaction or in a DSN days later.
 *
 * Order of the decision:
 *   1. the type: the class digit of the enhanced code when there is one
 *      (RFC 3463 §3.1: 2 success, 4 persistent transient, 5 permanent),
 *      else the first digit of the reply code (RFC 5321 §4.2.1);
 *   2. the category: the first row of enhanced_table whose subject.detail
 *      matches; rows may ask for the text hints to decide (5.7.x policy
 *      rejections are "spam" or "reputation" only when the text says so);
 *   3. without an enhanced code (or with a generic x.0.0), the text hints,
 *      then the plain reply code.
 * Returned category strings are static.
 */
#include "mail/classify.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>


/* Text hints, most specific first.  Each hint is lower case. */
struct hint {
	const char *word;
	const char *category;
};

static const struct hint text_hints[] = {
	/* Blocklist operators first: their names contain "spam". */
	{ "spamhaus", "reputation" },
	{ "spamcop", "reputation" },
	/* Content judged as spam. */
	{ "spam", "spam" },
	{ "junk mail", "spam" },
	{ "virus", "spam" },
	{ "malware", "spam" },
	/* The sending host or domain is blocked. */
	{ "blacklist", "reputation" },
	{ "blocklist", "reputation" },
	{ "block list", "reputation" },
	{ "black list", "reputation" },
	{ "denylist", "reputation" },
	{ "reputation", "reputation" },
	{ "rbl", "reputation" },
	{ "dnsbl", "reputation" },
	{ "blocked", "reputation" },
	/* The mailbox does not exist. */
	{ "user unknown", "bad_mailbox" },
	{ "unknown user", "bad_mailbox" },
	{ "no such user", "bad_mailbox" },
	{ "no such mailbox", "bad_mailbox" },
	{ "mailbox unavailable", "bad_mailbox" },
	{ "mailbox not found", "bad_mailbox" },
	{ "does not exist", "bad_mailbox" },
	{ "doesn't exist", "bad_mailbox" },
	{ "unknown recipient", "bad_mailbox" },
	{ "recipient unknown", "bad_mailbox" },
	{ "invalid recipient", "bad_mailbox" },
	{ "recipient rejected", "bad_mailbox" },
	{ "address rejected", "bad_mailbox" },
	{ "account disabled", "bad_mailbox" },
	{ "account has been disabled", "bad_mailbox" },
	{ "mailbox disabled", "bad_mailbox" },
	/* Full mailbox. */
	{ "mailbox full", "mailbox_full" },
	{ "mailbox is full", "mailbox_full" },
	{ "over quota", "mailbox_full" },
	{ "quota exceeded", "mailbox_full" },
	{ "insufficient storage", "mailbox_full" },
	{ "insufficient system storage", "mailbox_full" },
	/* Size. */
	{ "too large", "message_too_large" },
	{ "too big", "message_too_large" },
	{ "size limit", "message_too_large" },
	{ "exceeds size", "message_too_large" },
	/* Domain and routing. */
	{ "domain not found", "bad_domain" },
	{ "no such domain", "bad_domain" },
	{ "host not found", "bad_domain" },
	{ "unrouteable", "routing" },
	{ "unroutable", "routing" },
	{ "relay access denied", "policy" },
	{ "relaying denied", "policy" },
	{ "relay not permitted", "policy" },
	/* Policy. */
	{ "policy", "policy" },
	{ "rejected", "policy" },
	{ "denied", "policy" },
	{ "spf", "policy" },
	{ "dmarc", "policy" },
	{ "dkim", "policy" },
};

static const char *hint_category(const char *text)
{
	for (size_t i = 0; i < sizeof(text_hints) / sizeof(text_hints[0]); i++)
		if (text && strcasestr(text, text_hints[i].word))
			return text_hints[i].category;
	return NULL;
}

/* Only hints that may refine a 5.7.x policy rejection. */
static const char *policy_hint(const char *text)
{
	const char *c = hint_category(text);
	if (c && (strcmp(c, "spam") == 0 || strcmp(c, "reputation") == 0))
		return c;
	return "policy";
}

/*
 * RFC 3463 subject.detail -> category.  detail -1 matches any detail of the
 * subject.  hints: let the text refine the category (policy rejections).
 */
struct erow {
	int subject, detail;
	const char *category;
	int hints;
};

static const struct erow enhanced_table[] = {
	/* X.1 Addressing status (RFC 3463 §3.2). */
	{ 1, 1, "bad_mailbox", 0 },          /* bad destination mailbox address */
	{ 1, 2, "bad_domain", 0 },           /* bad destination system address */
	{ 1, 3, "bad_mailbox", 0 },          /* bad destination mailbox address syntax */
	{ 1, 4, "bad_mailbox", 0 },          /* destination mailbox address ambiguous */
	{ 1, 5, "other", 0 },                /* destination address valid */
	{ 1, 6, "bad_mailbox", 0 },          /* destination mailbox has moved */
	{ 1, 7, "policy", 0 },               /* bad sender's mailbox address syntax */
	{ 1, 8, "policy", 0 },               /* bad sender's system address */
	{ 1, 10, "bad_mailbox", 0 },         /* recipient address has null MX (RFC 7505 §4.2) */
	{ 1, -1, "bad_mailbox", 0 },
	/* X.2 Mailbox status (§3.3). */
	{ 2, 1, "bad_mailbox", 0 },          /* mailbox disabled */
	{ 2, 2, "mailbox_full", 0 },         /* mailbox full */
	{ 2, 3, "message_too_large", 0 },    /* message length exceeds administrative limit */
	{ 2, 4, "routing", 0 },              /* mailing list expansion problem */
	{ 2, -1, "other", 1 },
	/* X.3 Mail system status (§3.4). */
	{ 3, 1, "mailbox_full", 0 },         /* mail system full */
	{ 3, 2, "routing", 0 },              /* system not accepting network messages */
	{ 3, 4, "message_too_large", 0 },    /* message too big for system */
	{ 3, 5, "routing", 0 },              /* system incorrectly configured */
	{ 3, -1, "other", 1 },
	/* X.4 Network and routing status (§3.5). */
	{ 4, 3, "dns", 0 },                  /* directory server failure */
	{ 4, 4, "dns", 0 },                  /* unable to route (no MX/A) */
	{ 4, -1, "routing", 0 },             /* no answer, bad connection, congestion, loop, expired */
	/* X.5 Mail delivery protocol status (§3.6). */
	{ 5, 3, "policy", 0 },               /* too many recipients */
	{ 5, -1, "protocol", 0 },
	/* X.6 Message content or media status (§3.7). */
	{ 6, -1, "protocol", 0 },
	/* X.7 Security or policy status (§3.8). */
	{ 7, 1, "policy", 1 },               /* delivery not authorized, message refused */
	{ 7, -1, "policy", 1 },
};

/* Parses "c.s.d" (RFC 3463 §2: class 2/4/5, subject 0-999, detail 0-999). */
static int parse_enhanced(const char *e, int *cls, int *subject, int *detail)
{
	if (e == NULL || *e == '\0')
		return -1;
	char tail;
	if (sscanf(e, "%1d.%3d.%3d%c", cls, subject, detail, &tail) != 3)
		return -1;
	if (*cls != 2 && *cls != 4 && *cls != 5)
		return -1;
	if (*subject < 0 || *detail < 0)
		return -1;
	return 0;
}

/* Category from the plain reply code when neither table nor hints decide. */
static const char *code_category(int code)
{
	switch (code) {
	case 421: return "routing";   /* service not available, closing */
	case 450: return "bad_mailbox";  /* mailbox unavailable (busy) */
	case 451: return "other";     /* local error in processing */
	case 452: return "mailbox_full";  /* insufficient system storage */
	case 500: case 501: case 502: case 503: case 504: return "protocol";
	case 550: return "bad_mailbox";   /* mailbox unavailable */
	case 551: return "bad_mailbox";   /* user not local */
	case 552: return "mailbox_full";  /* exceeded storage allocation */
	case 553: return "bad_mailbox";   /* mailbox name not allowed */
	case 554: return "policy";        /* transaction failed */
	case 555: return "protocol";
	default: return "other";
	}
}

struct classification classify_reply(int code, const char *enhanced, const char *text)
{
	struct classification c = { BOUNCE_NONE, "other" };
	int ecls = 0, subject = 0, detail = 0;
	int have_enh = parse_enhanced(enhanced, &ecls, &subject, &detail) == 0;

	int cls = have_enh ? ecls : code / 100;
	if (cls == 5)
		c.type = BOUNCE_PERMANENT;
	else if (cls == 4)
		c.type = BOUNCE_TRANSIENT;
	else if (cls == 2)
		return c;
	else
		c.type = code == 0 && !have_enh ? BOUNCE_TRANSIENT : BOUNCE_NONE;

	if (have_enh && !(subject == 0 && detail == 0)) {
		for (size_t i = 0; i < sizeof(enhanced_table) / sizeof(enhanced_table[0]); i++) {
			const struct erow *r = &enhanced_table[i];
			if (r->subject != subject || (r->detail != -1 && r->detail != detail))
				continue;
			if (r->hints && subject == 7)
				c.category = policy_hint(text);
			else if (r->hints)
				c.category = hint_category(text) ? hint_category(text) : r->category;
			else
				c.category = r->category;
			return c;
		}
	}
	/* No (specific) enhanced code: the text, then the reply code. */
	const char *h = hint_category(text);
	if (h != NULL)
		c.category = h;
	else if (code >= 400 && code < 600)
		c.category = code_category(code);
	else if (code == 0 && text == NULL)
		c.category = "other";
	return c;
}

int classify_suppresses(const struct classification *c)
{
	/* Bounces section of INTERFACE.md: a permanent failure of the mailbox
	 * or domain suppresses the address; policy, reputation, spam, size and
	 * full mailboxes do not (they say nothing about the address). */
	return c->type == BOUNCE_PERMANENT &&
	       (strcmp(c->category, "bad_mailbox") == 0 || strcmp(c->category, "bad_domain") == 0);
}

const char *bounce_type_name(enum bounce_type t)
{
	switch (t) {
	case BOUNCE_PERMANENT: return "permanent";
	case BOUNCE_TRANSIENT: return "transient";
	default: return NULL;
	}
}
