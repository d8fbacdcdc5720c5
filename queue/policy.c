/*
 * policy.c - the failure policy (see policy.h).  The retry-or-bounce
 * decision reads the outcome's class, scope and permanence, never its
 * text; the text only refines the bounce category (mail/classify.c).
 */
#include "queue/policy.h"

long policy_retry_delay_ms(const struct policy_params *p, int attempts, unsigned rnd)
{
	long secs = 300;
	if (p->retry != NULL && p->retry->n > 0) {
		int i = attempts < 1 ? 0 : attempts - 1;
		if (i >= p->retry->n)
			i = p->retry->n - 1;  /* the last delay repeats */
		secs = p->retry->secs[i];
	}
	long ms = secs * 1000;
	if (p->jitter_pct > 0) {
		/* Jitter spreads retries of a burst of failures (e.g. one
		 * destination down) so they do not all come back at once. */
		long span = ms * p->jitter_pct / 100;
		if (span > 0)
			ms += (long)(rnd % (unsigned long)(2 * span + 1)) - span;
	}
	return ms < 1 ? 1 : ms;
}

void policy_decide(const struct policy_params *p, const struct smtp_outcome *o, int attempts,
		   long age_secs, unsigned rnd, struct policy_decision *d)
{
	d->delay_ms = 0;
	d->suppress = 0;
	d->cls = classify_reply(o->code, o->enhanced, o->text);
	switch (o->cls) {
	case OUT_2XX:
		d->next = NEXT_DELIVERED;
		d->cls.type = BOUNCE_NONE;
		return;
	case OUT_5XX:
		/* RFC 5321 §4.2.1: 5yz is a permanent negative completion,
		 * whether it answered RCPT (recipient), MAIL/DATA (message) or
		 * the greeting (session): the same transaction would fail again. */
		d->next = NEXT_BOUNCED;
		d->cls.type = BOUNCE_PERMANENT;
		/* Only an RCPT reply is about this recipient's mailbox. */
		d->suppress = o->scope == SCOPE_RECIPIENT && classify_suppresses(&d->cls);
		return;
	case OUT_LOCAL:
		if (o->permanent) {
			d->next = NEXT_FAILED;
			d->cls.type = BOUNCE_PERMANENT;
			return;
		}
		break;
	case OUT_4XX:
		break;
	}
	/* Transient: 4xx at any scope, connect, DNS, TLS, timeout. */
	d->cls.type = BOUNCE_TRANSIENT;
	if (age_secs >= p->max_lifetime) {
		d->next = NEXT_FAILED;
		return;
	}
	d->next = NEXT_DEFERRED;
	d->delay_ms = policy_retry_delay_ms(p, attempts, rnd);
}

const char *policy_next_name(enum queue_next n)
{
	switch (n) {
	case NEXT_DELIVERED: return "delivered";
	case NEXT_DEFERRED: return "deferred";
	case NEXT_BOUNCED: return "bounced";
	case NEXT_FAILED: return "failed";
	}
	return "failed";
}
