/*
 * test_policy.c - the failure policy (queue/policy.c): outcome to next
 * state, the backoff schedule (last delay repeats, jitter bounds) and the
 * queue lifetime.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "queue/policy.h"

static struct schedule sched = { 3, { 60, 600, 3600 } };
static struct policy_params params = { &sched, 5 * 86400, 0 };

static struct smtp_outcome outcome(enum outcome_scope scope, enum outcome_class cls, int code,
				   const char *enh, const char *text)
{
	struct smtp_outcome o;
	memset(&o, 0, sizeof(o));
	o.scope = scope;
	o.cls = cls;
	o.kind = cls == OUT_LOCAL ? KIND_CONNECT : KIND_RESPONSE;
	o.code = code;
	snprintf(o.enhanced, sizeof(o.enhanced), "%s", enh);
	snprintf(o.text, sizeof(o.text), "%s", text);
	return o;
}

Test(policy, delivered)
{
	struct smtp_outcome o = outcome(SCOPE_RECIPIENT, OUT_2XX, 250, "2.0.0", "Ok: queued");
	struct policy_decision d;
	policy_decide(&params, &o, 1, 0, 0, &d);
	cr_assert_eq(d.next, NEXT_DELIVERED);
	cr_assert_eq(d.cls.type, BOUNCE_NONE);
	cr_assert_str_eq(policy_next_name(d.next), "delivered");
}

Test(policy, recipient_5xx_bounces_with_category)
{
	struct smtp_outcome o = outcome(SCOPE_RECIPIENT, OUT_5XX, 550, "5.1.1", "User unknown");
	struct policy_decision d;
	policy_decide(&params, &o, 1, 0, 0, &d);
	cr_assert_eq(d.next, NEXT_BOUNCED);
	cr_assert_eq(d.cls.type, BOUNCE_PERMANENT);
	cr_assert_str_eq(d.cls.category, "bad_mailbox");
	o = outcome(SCOPE_MESSAGE, OUT_5XX, 552, "5.3.4", "Message too big");
	policy_decide(&params, &o, 2, 100, 0, &d);
	cr_assert_eq(d.next, NEXT_BOUNCED);
	cr_assert_str_eq(d.cls.category, "message_too_large");
	/* Without an enhanced code the text decides the category. */
	o = outcome(SCOPE_RECIPIENT, OUT_5XX, 550, "", "blocked: your IP is on a blacklist");
	policy_decide(&params, &o, 1, 0, 0, &d);
	cr_assert_eq(d.next, NEXT_BOUNCED);
	cr_assert_str_eq(d.cls.category, "reputation");
}

Test(policy, transient_failures_defer_on_schedule)
{
	struct smtp_outcome outs[] = {
		outcome(SCOPE_RECIPIENT, OUT_4XX, 451, "4.3.0", "try later"),
		outcome(SCOPE_SESSION, OUT_4XX, 421, "", "too busy"),
		outcome(SCOPE_SESSION, OUT_LOCAL, 0, "", "connection refused"),
	};
	for (size_t i = 0; i < sizeof(outs) / sizeof(outs[0]); i++) {
		struct policy_decision d;
		policy_decide(&params, &outs[i], 1, 0, 0, &d);
		cr_assert_eq(d.next, NEXT_DEFERRED, "case %zu", i);
		cr_assert_eq(d.cls.type, BOUNCE_TRANSIENT);
		cr_assert_eq(d.delay_ms, 60000);
		policy_decide(&params, &outs[i], 2, 60, 0, &d);
		cr_assert_eq(d.delay_ms, 600000);
	}
}

Test(policy, last_delay_repeats)
{
	cr_assert_eq(policy_retry_delay_ms(&params, 1, 0), 60000);
	cr_assert_eq(policy_retry_delay_ms(&params, 2, 0), 600000);
	cr_assert_eq(policy_retry_delay_ms(&params, 3, 0), 3600000);
	cr_assert_eq(policy_retry_delay_ms(&params, 4, 0), 3600000);
	cr_assert_eq(policy_retry_delay_ms(&params, 400, 0), 3600000);
	cr_assert_eq(policy_retry_delay_ms(&params, 0, 0), 60000);
}

Test(policy, jitter_stays_within_bounds_and_varies)
{
	struct policy_params p = { &sched, 86400, 10 };
	long lo = 1L << 40, hi = 0;
	for (unsigned r = 0; r < 5000; r++) {
		long ms = policy_retry_delay_ms(&p, 1, r * 2654435761u);
		cr_assert_geq(ms, 54000);
		cr_assert_leq(ms, 66000);
		lo = ms < lo ? ms : lo;
		hi = ms > hi ? ms : hi;
	}
	cr_assert_lt(lo, 56000, "jitter should reach near the low bound");
	cr_assert_gt(hi, 64000, "jitter should reach near the high bound");
}

Test(policy, lifetime_expiry_fails)
{
	struct smtp_outcome o = outcome(SCOPE_RECIPIENT, OUT_4XX, 452, "4.2.2", "mailbox full");
	struct policy_decision d;
	policy_decide(&params, &o, 9, 5 * 86400 - 1, 0, &d);
	cr_assert_eq(d.next, NEXT_DEFERRED);
	policy_decide(&params, &o, 10, 5 * 86400, 0, &d);
	cr_assert_eq(d.next, NEXT_FAILED);
	cr_assert_eq(d.cls.type, BOUNCE_TRANSIENT);
	cr_assert_str_eq(d.cls.category, "mailbox_full");
	/* A 5xx after the lifetime is still a bounce, not an expiry. */
	o = outcome(SCOPE_RECIPIENT, OUT_5XX, 550, "5.1.1", "");
	policy_decide(&params, &o, 10, 6 * 86400, 0, &d);
	cr_assert_eq(d.next, NEXT_BOUNCED);
}

Test(policy, permanent_local_failure_fails_at_once)
{
	struct smtp_outcome o = outcome(SCOPE_SESSION, OUT_LOCAL, 0, "5.1.10", "domain has a null MX");
	o.kind = KIND_DNS;
	o.permanent = 1;
	struct policy_decision d;
	policy_decide(&params, &o, 1, 0, 0, &d);
	cr_assert_eq(d.next, NEXT_FAILED);
	cr_assert_eq(d.cls.type, BOUNCE_PERMANENT);
	cr_assert_str_eq(d.cls.category, "bad_mailbox");
}

/* INTERFACE.md "Bounces": a permanent failure of the recipient's mailbox
 * suppresses the address, a policy or reputation rejection does not; the
 * decision comes from the classification table the DSN path uses too, and
 * only a reply to that recipient's RCPT speaks for its mailbox. */
Test(policy, rcpt_bad_mailbox_suppresses_policy_does_not)
{
	static const struct {
		enum outcome_scope scope;
		enum outcome_class cls;
		int code;
		const char *enh, *text;
		int suppress;
	} cases[] = {
		{ SCOPE_RECIPIENT, OUT_5XX, 550, "5.1.1", "User unknown", 1 },
		{ SCOPE_RECIPIENT, OUT_5XX, 550, "5.1.2", "Host unknown", 1 },
		{ SCOPE_RECIPIENT, OUT_5XX, 550, "5.2.1", "Mailbox disabled", 1 },
		{ SCOPE_RECIPIENT, OUT_5XX, 550, "", "No such user here", 1 },
		{ SCOPE_RECIPIENT, OUT_5XX, 550, "5.7.1", "Rejected by policy", 0 },
		{ SCOPE_RECIPIENT, OUT_5XX, 554, "5.7.1", "Blocked using zen.spamhaus.org", 0 },
		{ SCOPE_RECIPIENT, OUT_5XX, 552, "5.2.2", "Mailbox full", 0 },
		{ SCOPE_RECIPIENT, OUT_4XX, 450, "4.1.1", "Try later", 0 },
		/* MAIL or DATA: the reply is about the transaction (often the sender). */
		{ SCOPE_MESSAGE, OUT_5XX, 550, "5.1.1", "User unknown", 0 },
		{ SCOPE_SESSION, OUT_5XX, 550, "", "mailbox unavailable", 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct smtp_outcome o = outcome(cases[i].scope, cases[i].cls, cases[i].code, cases[i].enh, cases[i].text);
		struct policy_decision d;
		policy_decide(&params, &o, 1, 0, 0, &d);
		cr_assert_eq(d.suppress, cases[i].suppress, "case %zu (%d %s %s): suppress %d", i, cases[i].code,
			     cases[i].enh, cases[i].text, d.suppress);
		if (d.suppress)
			cr_assert_eq(d.suppress, classify_suppresses(&d.cls));
	}
}
