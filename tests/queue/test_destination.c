/*
 * test_destination.c - the per-destination feedback rule
 * (queue/destination.c): slow start from the initial window, growth by
 * 1/window per successful job up to destination_concurrency, halving and
 * a doubling pause on throttling, one cut per episode, the backoff reset
 * by success; what counts as throttling; destination_rate as the claim's
 * JSON.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue/destination.h"

static struct smtp_outcome reply(enum outcome_class cls, int code, const char *enh, const char *text)
{
	struct smtp_outcome o;
	memset(&o, 0, sizeof(o));
	o.scope = SCOPE_SESSION;
	o.cls = cls;
	o.kind = cls == OUT_LOCAL ? KIND_CONNECT : KIND_RESPONSE;
	o.code = code;
	snprintf(o.enhanced, sizeof(o.enhanced), "%s", enh);
	snprintf(o.text, sizeof(o.text), "%s", text);
	return o;
}

Test(destination, starts_at_the_initial_window_capped_by_the_maximum)
{
	struct dest_params p;
	struct dest_state s;
	dest_params_init(&p, 20);
	dest_state_init(&p, &s);
	cr_assert_eq(p.initial, DEST_INITIAL_LIMIT);
	cr_assert_eq((int)s.limit, 5);
	cr_assert_eq(s.backoff_secs, 0);
	dest_params_init(&p, 3);
	dest_state_init(&p, &s);
	cr_assert_eq((int)s.limit, 3, "initial above destination_concurrency");
}

/* Before its first throttle a domain is in slow start: each success adds
 * one, so the window doubles per round of jobs, up to the maximum. */
Test(destination, slow_start_doubles_per_round_until_the_maximum)
{
	struct dest_params p;
	struct dest_state s;
	dest_params_init(&p, 40);
	dest_state_init(&p, &s);
	cr_assert_eq(dest_feedback(&p, &s, 5, 0), 0);
	cr_assert_eq(s.limit, 10.0, "a round of 5 at window 5 doubles it: %f", s.limit);
	dest_feedback(&p, &s, 10, 0);
	cr_assert_eq(s.limit, 20.0, "%f", s.limit);
	dest_feedback(&p, &s, 1000, 0);
	cr_assert_eq(s.limit, 40.0, "never beyond destination_concurrency: %f", s.limit);
}

/* After a throttle the threshold is half the window: below it slow start
 * again, above it one more per window of successes (congestion
 * avoidance, Postfix's 1/concurrency positive feedback). */
Test(destination, after_a_throttle_grows_by_one_per_window_of_successes)
{
	struct dest_params p;
	struct dest_state s;
	dest_params_init(&p, 40);
	dest_state_init(&p, &s);
	s.limit = 12;
	cr_assert_eq(dest_feedback(&p, &s, 0, 1), DEST_BACKOFF_MIN);
	cr_assert_eq(s.limit, 6.0, "%f", s.limit);
	cr_assert_eq(s.ssthresh, 6.0, "%f", s.ssthresh);
	s.paused = 0;
	/* 6 successes at window 6: +1. */
	dest_feedback(&p, &s, 5, 0);
	cr_assert_eq((int)(s.limit + 1e-9), 6, "%f", s.limit);
	dest_feedback(&p, &s, 1, 0);
	cr_assert_eq((int)(s.limit + 1e-9), 7, "%f", s.limit);
	/* Then 7 at window 7. */
	dest_feedback(&p, &s, 6, 0);
	cr_assert_eq((int)(s.limit + 1e-9), 7, "%f", s.limit);
	dest_feedback(&p, &s, 1, 0);
	cr_assert_eq((int)(s.limit + 1e-9), 8, "%f", s.limit);
	/* A window cut below the threshold regains it in slow start. */
	s.limit = 2;
	s.ssthresh = 6;
	dest_feedback(&p, &s, 4, 0);
	cr_assert_eq(s.limit, 6.0, "%f", s.limit);
	dest_feedback(&p, &s, 1000, 0);
	cr_assert_eq(s.limit, 40.0, "%f", s.limit);
}

Test(destination, throttle_halves_and_pauses_with_doubling_backoff)
{
	struct dest_params p;
	struct dest_state s;
	dest_params_init(&p, 20);
	dest_state_init(&p, &s);
	s.limit = 16;
	long pause = dest_feedback(&p, &s, 0, 3);
	cr_assert_eq(pause, DEST_BACKOFF_MIN);
	cr_assert_eq(s.limit, 8.0, "one halving for the batch: %f", s.limit);
	cr_assert(s.paused);
	/* Feedback while paused changes nothing (jobs from before the pause). */
	cr_assert_eq(dest_feedback(&p, &s, 5, 5), 0);
	cr_assert_eq(s.limit, 8.0);
	cr_assert_eq(s.backoff_secs, DEST_BACKOFF_MIN);
	/* The pause ended; the next throttle doubles it. */
	s.paused = 0;
	cr_assert_eq(dest_feedback(&p, &s, 0, 1), 2 * DEST_BACKOFF_MIN);
	cr_assert_eq(s.limit, 4.0);
	long last = 0;
	for (int i = 0; i < 10; i++) {
		s.paused = 0;
		last = dest_feedback(&p, &s, 0, 1);
	}
	cr_assert_eq(last, DEST_BACKOFF_MAX, "bounded: %ld", last);
	cr_assert_eq(s.limit, 1.0, "floor 1: %f", s.limit);
}

Test(destination, success_resets_the_backoff)
{
	struct dest_params p;
	struct dest_state s;
	dest_params_init(&p, 20);
	dest_state_init(&p, &s);
	cr_assert_eq(dest_feedback(&p, &s, 0, 1), DEST_BACKOFF_MIN);
	s.paused = 0;
	cr_assert_eq(dest_feedback(&p, &s, 0, 1), 2 * DEST_BACKOFF_MIN);
	s.paused = 0;
	cr_assert_eq(dest_feedback(&p, &s, 1, 0), 0);
	cr_assert_eq(s.backoff_secs, 0);
	cr_assert_eq(dest_feedback(&p, &s, 0, 1), DEST_BACKOFF_MIN, "back to the first pause");
}

Test(destination, out_of_range_window_is_clamped)
{
	struct dest_params p;
	struct dest_state s = { .limit = 50, .backoff_secs = 0, .paused = 0 };
	dest_params_init(&p, 10);
	dest_feedback(&p, &s, 0, 0);
	cr_assert_eq(s.limit, 10.0, "destination_concurrency lowered since: %f", s.limit);
	s.limit = 0;
	dest_feedback(&p, &s, 0, 0);
	cr_assert_eq(s.limit, 1.0);
}

Test(destination, what_counts_as_throttling)
{
	struct smtp_outcome o;
	o = reply(OUT_4XX, 421, "4.7.0", "Try again later, closing connection");
	cr_assert_eq(dest_signal_of(&o), DEST_THROTTLED);
	o = reply(OUT_4XX, 421, "", "Service not available");
	cr_assert_eq(dest_signal_of(&o), DEST_THROTTLED);
	o = reply(OUT_4XX, 451, "4.7.1", "Temporarily rate limited");
	cr_assert_eq(dest_signal_of(&o), DEST_THROTTLED);
	o = reply(OUT_4XX, 450, "4.2.1", "Too many connections from your IP");
	cr_assert_eq(dest_signal_of(&o), DEST_THROTTLED);
	o = reply(OUT_LOCAL, 0, "", "connect: Connection refused");
	cr_assert_eq(dest_signal_of(&o), DEST_THROTTLED);
	o.kind = KIND_TIMEOUT;
	cr_assert_eq(dest_signal_of(&o), DEST_THROTTLED);
	/* Not about load. */
	o.kind = KIND_DNS;
	cr_assert_eq(dest_signal_of(&o), DEST_NONE);
	o.kind = KIND_TLS;
	cr_assert_eq(dest_signal_of(&o), DEST_NONE);
	o = reply(OUT_4XX, 451, "4.3.0", "try again later (local error)");
	cr_assert_eq(dest_signal_of(&o), DEST_OK, "a plain 451 is the server working");
	o = reply(OUT_5XX, 550, "5.1.1", "User unknown");
	cr_assert_eq(dest_signal_of(&o), DEST_OK);
	o = reply(OUT_2XX, 250, "2.0.0", "Ok: queued");
	cr_assert_eq(dest_signal_of(&o), DEST_OK);
}

Test(destination, a_job_is_throttled_when_any_recipient_was)
{
	struct delivery_rcpt r[3];
	memset(r, 0, sizeof(r));
	r[0].out = reply(OUT_2XX, 250, "2.1.5", "Ok");
	r[1].out = reply(OUT_4XX, 421, "4.7.0", "Too many recipients this hour");
	r[2].out = reply(OUT_5XX, 550, "5.1.1", "User unknown");
	cr_assert_eq(dest_job_signal(r, 3), DEST_THROTTLED);
	cr_assert_eq(dest_job_signal(r, 1), DEST_OK);
	r[0].out = reply(OUT_LOCAL, 0, "", "no MX");
	r[0].out.kind = KIND_DNS;
	cr_assert_eq(dest_job_signal(r, 1), DEST_NONE);
	cr_assert_eq((int)DEST_THROTTLED, -1, "the value db_outcome.feedback stores");
}

Test(destination, rates_as_claim_json)
{
	char *j = dest_rates_json("Gmail.com=600/min, *=0/min");
	cr_assert_not_null(j);
	cr_assert_str_eq(j, "{\"gmail.com\":600,\"*\":0}");
	free(j);
	j = dest_rates_json(NULL);
	cr_assert_str_eq(j, "{}");
	free(j);
	cr_assert_null(dest_rates_json("gmail.com=600"));
}
