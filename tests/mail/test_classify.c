/*
 * test_classify.c - the classification table (mail/classify.c): RFC 3463
 * enhanced codes, plain reply codes and texts, suppression decisions.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "mail/classify.h"

static void expect(int code, const char *enh, const char *text, enum bounce_type t, const char *cat)
{
	struct classification c = classify_reply(code, enh, text);
	cr_expect_eq(c.type, t, "%d %s \"%s\": type %d, want %d", code, enh ? enh : "-", text ? text : "",
		     c.type, t);
	cr_expect_str_eq(c.category, cat, "%d %s \"%s\"", code, enh ? enh : "-", text ? text : "");
}

Test(classify, enhanced_codes)
{
	expect(550, "5.1.1", "Recipient address rejected", BOUNCE_PERMANENT, "bad_mailbox");
	expect(550, "5.1.10", "null MX", BOUNCE_PERMANENT, "bad_mailbox");
	expect(550, "5.1.2", "host unknown", BOUNCE_PERMANENT, "bad_domain");
	expect(552, "5.2.2", "over quota", BOUNCE_PERMANENT, "mailbox_full");
	expect(452, "4.2.2", "mailbox full", BOUNCE_TRANSIENT, "mailbox_full");
	expect(552, "5.3.4", "message too big", BOUNCE_PERMANENT, "message_too_large");
	expect(552, "5.2.3", "", BOUNCE_PERMANENT, "message_too_large");
	expect(550, "5.2.1", "account disabled", BOUNCE_PERMANENT, "bad_mailbox");
	expect(451, "4.4.1", "no answer", BOUNCE_TRANSIENT, "routing");
	expect(451, "4.4.3", "", BOUNCE_TRANSIENT, "dns");
	expect(554, "5.5.0", "", BOUNCE_PERMANENT, "protocol");
	expect(554, "5.6.0", "", BOUNCE_PERMANENT, "protocol");
}

Test(classify, policy_refined_by_text)
{
	expect(550, "5.7.1", "Message rejected as spam", BOUNCE_PERMANENT, "spam");
	expect(554, "5.7.1", "Service unavailable; client host blocked using zen.spamhaus.org",
	       BOUNCE_PERMANENT, "reputation");
	expect(550, "5.7.1", "IP 192.0.2.1 is on our blocklist", BOUNCE_PERMANENT, "reputation");
	expect(550, "5.7.1", "Poor sender REPUTATION", BOUNCE_PERMANENT, "reputation");
	expect(550, "5.7.1", "Relay access denied", BOUNCE_PERMANENT, "policy");
	expect(550, "5.7.26", "DMARC policy", BOUNCE_PERMANENT, "policy");
	/* The text never turns a 5.7 rejection into a mailbox failure. */
	expect(550, "5.7.1", "user unknown", BOUNCE_PERMANENT, "policy");
}

Test(classify, plain_codes_and_texts)
{
	expect(550, NULL, "user unknown", BOUNCE_PERMANENT, "bad_mailbox");
	expect(550, "", "No such user here", BOUNCE_PERMANENT, "bad_mailbox");
	expect(550, NULL, "Mailbox full", BOUNCE_PERMANENT, "mailbox_full");
	expect(452, NULL, "Requested action not taken", BOUNCE_TRANSIENT, "mailbox_full");
	expect(550, NULL, "Your IP is blacklisted", BOUNCE_PERMANENT, "reputation");
	expect(554, NULL, "This message looks like SPAM", BOUNCE_PERMANENT, "spam");
	expect(550, NULL, NULL, BOUNCE_PERMANENT, "bad_mailbox");
	expect(554, NULL, "Transaction failed", BOUNCE_PERMANENT, "policy");
	expect(421, NULL, "closing connection", BOUNCE_TRANSIENT, "routing");
	expect(500, NULL, "syntax error", BOUNCE_PERMANENT, "protocol");
	/* A generic 5.0.0 falls through to the text. */
	expect(550, "5.0.0", "User unknown", BOUNCE_PERMANENT, "bad_mailbox");
}

Test(classify, enhanced_class_wins_over_code)
{
	/* RFC 3463 §2: the class digit of the status code is authoritative. */
	expect(550, "4.2.2", "", BOUNCE_TRANSIENT, "mailbox_full");
	expect(250, NULL, "ok", BOUNCE_NONE, "other");
	expect(250, "2.0.0", "ok", BOUNCE_NONE, "other");
	/* Garbage enhanced code: ignored. */
	expect(550, "x.y.z", "no such user", BOUNCE_PERMANENT, "bad_mailbox");
	expect(550, "9.1.1", NULL, BOUNCE_PERMANENT, "bad_mailbox");
}

Test(classify, local_failure_without_reply)
{
	struct classification c = classify_reply(0, NULL, NULL);
	cr_assert_eq(c.type, BOUNCE_TRANSIENT);
	cr_assert_str_eq(c.category, "other");
}

Test(classify, suppression)
{
	struct classification c = classify_reply(550, "5.1.1", "");
	cr_assert(classify_suppresses(&c));
	c = classify_reply(550, "5.1.2", "");
	cr_assert(classify_suppresses(&c));
	c = classify_reply(550, "5.7.1", "blocked");
	cr_assert(!classify_suppresses(&c));
	c = classify_reply(450, "4.1.1", "");
	cr_assert(!classify_suppresses(&c), "transient failures never suppress");
	c = classify_reply(552, "5.2.2", "");
	cr_assert(!classify_suppresses(&c));
	cr_assert_str_eq(bounce_type_name(BOUNCE_PERMANENT), "permanent");
	cr_assert_str_eq(bounce_type_name(BOUNCE_TRANSIENT), "transient");
	cr_assert_null(bounce_type_name(BOUNCE_NONE));
}
