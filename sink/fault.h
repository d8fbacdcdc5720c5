/*
 * fault.h - the fault plan of "mailferry sink" (INTERFACE.md "Next
 * additions"): which replies it fakes, which connections it drops, which
 * sessions it slows down.
 *
 * A spec is a comma-separated list of items:
 *   STAGE:CODE:P%   answer CODE (400..599) instead of the real reply
 *   STAGE:drop:P%   close the connection without a reply
 *   tarpit:DUR:P%   delay every reply of the session by DUR
 * with STAGE one of connect, ehlo, mail, rcpt, data ("data" is the end of
 * the message, the reply to the final dot; "ehlo" covers HELO too).  The
 * "%" is optional; P may have a fraction ("0.5%").
 *
 * Items of one stage share one roll: a number drawn in [0,100) picks the
 * first item whose cumulated percentage exceeds it, so
 * "rcpt:421:5%,rcpt:450:10%" gives 5% 421, 10% 450 and 85% the normal
 * reply.  The percentages of one stage may not add up beyond 100.
 *
 * sink_faults_parse() returns 0, or -1 with err naming the bad item.
 * sink_duration_parse() reads "250ms", "2s", "1m", "1h" or a bare number
 * of seconds into milliseconds.
 */
#ifndef MF_SINK_FAULT_H
#define MF_SINK_FAULT_H

#include <stddef.h>

enum sink_stage { SINK_STAGE_CONNECT, SINK_STAGE_EHLO, SINK_STAGE_MAIL, SINK_STAGE_RCPT, SINK_STAGE_DATA,
		  SINK_STAGE_TARPIT, SINK_STAGE_COUNT };

enum sink_fault_kind { SINK_FAULT_NONE, SINK_FAULT_REPLY, SINK_FAULT_DROP, SINK_FAULT_TARPIT };

/* What a roll decided. */
struct sink_fault {
	enum sink_fault_kind kind;
	int code;        /* SINK_FAULT_REPLY */
	long delay_ms;   /* SINK_FAULT_TARPIT */
};

struct sink_faults;

/* spec NULL or "": an empty plan.  *out is freed with sink_faults_free(). */
int sink_faults_parse(const char *spec, struct sink_faults **out, char *err, size_t errlen);
void sink_faults_free(struct sink_faults *f);
/* Rolls for one stage; roll is uniform in [0,1).  Kind NONE when nothing applies. */
struct sink_fault sink_faults_roll(const struct sink_faults *f, enum sink_stage stage, double roll);
/* 1 when some item names the stage (so callers skip the roll otherwise). */
int sink_faults_has(const struct sink_faults *f, enum sink_stage stage);
const char *sink_stage_name(enum sink_stage s);

/* Returns 0 and *ms, or -1. */
int sink_duration_parse(const char *s, long *ms);

#endif
