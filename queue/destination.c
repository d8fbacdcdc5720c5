/*
 * destination.c - the per-destination feedback rule and what counts as
 * throttling (see destination.h for the rule and its reasons).
 */
#include "queue/destination.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

#include "db/queue.h"
#include "util/buf.h"
#include "util/config.h"
#include "util/json_escape.h"
#include "util/limits.h"
#include "util/log.h"

void dest_params_init(struct dest_params *p, int destination_concurrency)
{
	p->max = destination_concurrency > 0 ? destination_concurrency : 1;
	p->initial = DEST_INITIAL_LIMIT < p->max ? DEST_INITIAL_LIMIT : p->max;
	p->backoff_min = DEST_BACKOFF_MIN;
	p->backoff_max = DEST_BACKOFF_MAX;
}

void dest_state_init(const struct dest_params *p, struct dest_state *s)
{
	s->limit = p->initial;
	s->ssthresh = 0;
	s->backoff_secs = 0;
	s->paused = 0;
}

long dest_feedback(const struct dest_params *p, struct dest_state *s, int ok, int throttled)
{
	/* A window beyond a lowered destination_concurrency, or a row written
	 * by a process with other settings, is brought into range first. */
	if (!(s->limit >= 1))
		s->limit = 1;
	if (s->limit > p->max)
		s->limit = p->max;
	if (s->paused)
		return 0;  /* one cut per episode: these jobs predate the pause */
	for (int i = 0; i < ok; i++) {
		/* Slow start below the threshold, then congestion avoidance. */
		if (s->ssthresh <= 0 || s->limit < s->ssthresh)
			s->limit += 1;
		else
			s->limit += 1.0 / floor(s->limit);
		if (s->limit > p->max)
			s->limit = p->max;
	}
	if (ok > 0)
		s->backoff_secs = 0;
	if (throttled == 0)
		return 0;
	s->limit = floor(s->limit / 2);
	if (s->limit < 1)
		s->limit = 1;
	s->ssthresh = s->limit;
	long b = s->backoff_secs > 0 ? s->backoff_secs * 2 : p->backoff_min;
	if (b > p->backoff_max)
		b = p->backoff_max;
	s->backoff_secs = b;
	s->paused = 1;
	return b;
}

void dest_db_feedback(struct db_dest_feedback *f, void *arg)
{
	const struct dest_params *p = arg;
	struct dest_state st;
	dest_state_init(p, &st);
	if (f->known) {
		st.limit = f->limit;
		st.ssthresh = f->ssthresh;
		st.backoff_secs = f->backoff_secs;
		st.paused = f->paused;
	}
	f->pause_secs = dest_feedback(p, &st, f->ok, f->throttled);
	f->limit = st.limit;
	f->ssthresh = st.ssthresh;
	f->backoff_secs = st.backoff_secs;
	if (f->pause_secs > 0)
		log_info("event=destination_paused domain=%s limit=%d backoff_secs=%ld throttled_jobs=%d code=%d",
			 f->domain, (int)st.limit, f->pause_secs, f->throttled, f->last_code);
}


/* Reply texts that ask a sender to slow down, whatever the code. */
static const char *const throttle_hints[] = {
	"too many connections", "too many concurrent", "too many sessions", "rate limit",
	"throttl", "too many messages", "slow down",
};

enum dest_signal dest_signal_of(const struct smtp_outcome *o)
{
	if (o->cls == OUT_LOCAL)
		/* No reply: a refused or timed-out connection is the
		 * destination's load (Postfix's negative feedback); DNS, TLS,
		 * protocol and internal failures are not. */
		return o->scope == SCOPE_SESSION && (o->kind == KIND_CONNECT || o->kind == KIND_TIMEOUT)
			       ? DEST_THROTTLED
			       : DEST_NONE;
	/* RFC 5321 §3.8: 421 is the server closing the channel, typically
	 * for load; RFC 3463 §3.8 X.7.x is policy, which at 4xx is how the
	 * big providers phrase rate limiting (e.g. "421 4.7.0 Try again
	 * later", "451 4.7.1 ... rate limited"). */
	if (o->code == 421)
		return DEST_THROTTLED;
	if (o->cls == OUT_4XX && strncmp(o->enhanced, "4.7.", 4) == 0)
		return DEST_THROTTLED;
	if (o->cls != OUT_2XX)
		for (size_t i = 0; i < sizeof(throttle_hints) / sizeof(throttle_hints[0]); i++)
			if (strcasestr(o->text, throttle_hints[i]))
				return DEST_THROTTLED;
	/* Any other reply: the server took the session (a 5xx for one
	 * mailbox says nothing about load). */
	return DEST_OK;
}

enum dest_signal dest_job_signal(const struct delivery_rcpt *r, int n)
{
	enum dest_signal s = DEST_NONE;
	for (int i = 0; i < n; i++) {
		enum dest_signal x = dest_signal_of(&r[i].out);
		if (x == DEST_THROTTLED)
			return x;
		if (x == DEST_OK)
			s = DEST_OK;
	}
	return s;
}

static void rate_item(const char *domain, size_t dlen, long per_min, void *arg)
{
	struct buf *b = arg;
	char d[MF_DOMAIN_MAX + 1];
	size_t i;
	for (i = 0; i < dlen && i < MF_DOMAIN_MAX; i++)
		d[i] = (char)tolower((unsigned char)domain[i]);
	d[i] = '\0';
	buf_puts(b, b->len > 1 ? "," : "");
	json_escape(b, d, i, 0);
	buf_printf(b, ":%ld", per_min);
}

char *dest_rates_json(const char *spec)
{
	struct buf b;
	buf_init(&b, MF_CONFIG_LINE_MAX * 2);
	buf_putc(&b, '{');
	char why[256];
	if (spec != NULL && config_parse_rates(spec, rate_item, &b, why, sizeof(why)) < 0) {
		buf_cleanup(&b);
		return NULL;
	}
	buf_putc(&b, '}');
	return buf_steal(&b, NULL);
}
