/*
 * policy.h - the failure policy: one module that turns a classified SMTP
 * outcome (mail/outcome.h) plus the recipient's attempts and age into
 * its next state (STYLE.md: the transport reports, the policy decides).
 *
 *   2xx                          -> delivered
 *   5xx (any scope)              -> bounced, type+category from classify
 *   local failure, permanent     -> failed (e.g. null MX, RFC 7505)
 *   4xx, connect, TLS, timeout   -> deferred, next attempt after the
 *                                   retry_schedule delay (last repeats) with
 *                                   +-10% jitter; failed once the age since
 *                                   the first attempt reached max_queue_lifetime
 * A session-level failure is reported by the relay for every recipient of
 * the session, so each of them is deferred the same way.
 * suppress: a bounce whose classification says the mailbox or domain is
 * permanently bad (classify_suppresses(), the table the DSN path uses too)
 * puts the address on the suppression list, but only when the reply
 * answered that recipient's RCPT: a 5xx to MAIL, DATA or the greeting
 * speaks for the whole transaction (often about the sender), not for one
 * mailbox.
 * Pure functions; no I/O, thread-safe.
 */
#ifndef MF_QUEUE_POLICY_H
#define MF_QUEUE_POLICY_H

#include "mail/classify.h"
#include "mail/outcome.h"
#include "util/config.h"

enum queue_next { NEXT_DELIVERED, NEXT_DEFERRED, NEXT_BOUNCED, NEXT_FAILED };

struct policy_params {
	const struct schedule *retry;  /* borrowed */
	long max_lifetime;             /* seconds */
	int jitter_pct;                /* +- percent of each delay, 0 = none */
};

struct policy_decision {
	enum queue_next next;
	long delay_ms;                 /* NEXT_DEFERRED: from now to the next attempt */
	struct classification cls;     /* type BOUNCE_NONE when delivered */
	int suppress;                  /* NEXT_BOUNCED: add the address to the suppression list */
};

/*
 * attempts: attempts made including this one (>= 1); age_secs: seconds since
 * the first attempt; rnd: a random number for the jitter.
 */
void policy_decide(const struct policy_params *p, const struct smtp_outcome *o, int attempts,
		   long age_secs, unsigned rnd, struct policy_decision *d);
/* The delay before attempt attempts+1, in milliseconds, with jitter. */
long policy_retry_delay_ms(const struct policy_params *p, int attempts, unsigned rnd);
/* "delivered", "deferred", "bounced", "failed" (the recipient status). */
const char *policy_next_name(enum queue_next n);

#endif
