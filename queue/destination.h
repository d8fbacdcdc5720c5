/*
 * destination.h - adaptive per-destination control (issue 17 point 3):
 * how many jobs one recipient domain gets at once, and when it pauses,
 * after Postfix's qmgr concurrency scheduler (SCHEDULER_README, "The
 * Postfix 2.5 concurrency scheduler").  The state of every destination is
 * a row of the destinations table, so all delivery processes on one
 * database share it: the claim (mf_queue_claim in db/functions.sql) obeys
 * it, the recorder (db_queue_record) feeds it back in the transaction that
 * writes the outcomes, through the pure rule below.
 *
 * The feedback rule, dest_feedback():
 *  - A domain starts at DEST_INITIAL_LIMIT jobs at once (Postfix's
 *    initial_destination_concurrency = 5), at most destination_concurrency.
 *  - Positive feedback, as TCP's congestion window: below the slow-start
 *    threshold every job that reached the server and was not throttled
 *    adds 1 (the window doubles per round of jobs), so a domain that never
 *    pushed back reaches destination_concurrency within a few rounds, not
 *    after hundreds of messages (Postfix's linear rule needs about 300
 *    successful jobs to grow a window from 5 to 26).  A throttle sets the threshold to the halved window; above
 *    it a success adds 1/floor(limit): one more per "cohort" of limit
 *    successful jobs (Postfix's default_destination_concurrency_positive_
 *    feedback = 1/concurrency), so a limit the server tolerates is
 *    approached without overshooting it by more than one.  A success also
 *    resets the backoff.
 *  - Negative feedback: a throttled job (dest_signal_of(): 421 at any stage,
 *    a 4.7.x reply, "too many connections"-style text, a connection that
 *    could not be made or timed out) halves the window (floor 1) and pauses
 *    the whole domain for the backoff: DEST_BACKOFF_MIN, doubled on each
 *    further throttle, at most DEST_BACKOFF_MAX.  Postfix subtracts
 *    1/concurrency per failure and suspends a destination only after
 *    destination_concurrency_failed_cohort_limit (1) whole cohorts failed,
 *    because its negative signal is mostly "could not connect" - ambiguous.
 *    Ours includes the receiver saying "slow down" (421, 4.7.x) in so many
 *    words, and a relay that keeps knocking is what gets an IP address
 *    blocked: so the cut is multiplicative (TCP's halving) and the pause
 *    immediate.  30 s is about the shortest throttle window big providers
 *    name in their 421 texts; 10 min bounds how long one bad minute can
 *    hold a domain's mail (its recipients are deferred meanwhile anyway).
 *  - One cut per episode: feedback recorded while the domain is paused is
 *    ignored, both ways.  Those jobs were in flight when the pause began;
 *    counting their failures again would halve the window to 1 and double
 *    the backoff several times for what the server said once (TCP
 *    likewise halves once per window of losses).  Within one recorder
 *    batch the same holds: one cut for any number of throttled jobs.
 *  - Neutral: DNS, TLS and local failures say nothing about the
 *    destination's load and leave the state alone.
 * Pure functions, except dest_db_feedback() (logs a pause); thread-safe.
 */
#ifndef MF_QUEUE_DESTINATION_H
#define MF_QUEUE_DESTINATION_H

#include <stddef.h>

#include "mail/outcome.h"

#define DEST_INITIAL_LIMIT 5     /* Postfix's initial_destination_concurrency */
#define DEST_BACKOFF_MIN 30L     /* seconds, the first pause */
#define DEST_BACKOFF_MAX 600L    /* seconds, the longest pause */
#define DEST_ACTIVE_SECS 600L    /* /metrics shows destinations active this recently */

/* The values are db_outcome.feedback's. */
enum dest_signal { DEST_NONE = 0, DEST_OK = 1, DEST_THROTTLED = -1 };

struct dest_params {
	int initial;                 /* starting window, <= max */
	int max;                     /* destination_concurrency */
	long backoff_min, backoff_max;
};

struct dest_state {
	double limit;                /* the window; the claim uses floor(limit) */
	double ssthresh;             /* slow-start threshold; 0: none yet */
	long backoff_secs;           /* the pause the last throttle gave, 0 after a success */
	int paused;                  /* a pause is running now */
};

/* Fills p from destination_concurrency (DEST_* defaults). */
void dest_params_init(struct dest_params *p, int destination_concurrency);
/* The state of a domain without a row. */
void dest_state_init(const struct dest_params *p, struct dest_state *s);
/*
 * Applies a batch's feedback of one domain: ok jobs without trouble,
 * throttled jobs.  Updates s; returns the pause to start now in seconds
 * (0: none).
 */
long dest_feedback(const struct dest_params *p, struct dest_state *s, int ok, int throttled);
/* What one recipient's outcome says about the destination's load. */
enum dest_signal dest_signal_of(const struct smtp_outcome *o);
/* The signal of one job (one SMTP transaction): throttled if any
 * recipient's outcome was, else ok if any was, else none. */
enum dest_signal dest_job_signal(const struct delivery_rcpt *r, int n);
/*
 * The recorder's feedback function (db_session_set_feedback; arg: const
 * struct dest_params *): dest_feedback() over the domain's row.
 */
struct db_dest_feedback;
void dest_db_feedback(struct db_dest_feedback *f, void *arg);
/*
 * destination_rate (config_parse_rates) as the JSON object the claim
 * takes, {"gmail.com": 600, "*": 0} (jobs per minute); "{}" for NULL.
 * Returns memory the caller frees, or NULL when spec does not parse.
 */
char *dest_rates_json(const char *spec);

#endif
