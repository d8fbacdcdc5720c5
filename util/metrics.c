/*
 * metrics.c - Prometheus registry (see metrics.h).
 *
 * Families are kept in creation order in a small list; series in a list per
 * family.  Lookups are linear: mailferry has a few hundred series at most.
 *
 * metrics_declare_known() creates at 0 every counter series whose label
 * values are a known fixed set (util/metrics_names.h lists them), so that
 * rate() and increase() see the first increment: a series that first
 * appears at 1 hides it, and an alert on it could never fire.
 */
#include "util/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/metrics_names.h"
#include "util/xmalloc.h"

enum mtype { M_COUNTER, M_GAUGE, M_HISTOGRAM };

static const double buckets[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 };
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

struct series {
	struct series *next;
	char *labels;
	double value;                 /* counter/gauge value, histogram sum */
	unsigned long count;          /* histogram */
	unsigned long bucket[NBUCKETS];
};

struct family {
	struct family *next;
	char *name;
	char *help;
	enum mtype type;
	struct series *series;
};

struct collector {
	struct collector *next;
	void (*fn)(struct metrics *m, void *arg);
	void *arg;
};

struct metrics {
	pthread_mutex_t lock;
	struct family *families, *last;
	struct collector *collectors;
};

struct metrics *metrics_new(void)
{
	struct metrics *m = xcalloc(1, sizeof(*m));
	pthread_mutex_init(&m->lock, NULL);
	return m;
}

void metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	for (struct family *f = m->families, *fn; f; f = fn) {
		fn = f->next;
		for (struct series *s = f->series, *sn; s; s = sn) {
			sn = s->next;
			free(s->labels);
			free(s);
		}
		free(f->name);
		free(f->help);
		free(f);
	}
	for (struct collector *c = m->collectors, *cn; c; c = cn) {
		cn = c->next;
		free(c);
	}
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* Finds or creates the series; called with the lock held. */
static struct series *lookup(struct metrics *m, const char *name, const char *help, enum mtype t,
			     const char *labels)
{
	struct family *f;
	for (f = m->families; f; f = f->next)
		if (strcmp(f->name, name) == 0)
			break;
	if (f == NULL) {
		f = xcalloc(1, sizeof(*f));
		f->name = xstrdup(name);
		f->help = xstrdup(help);
		f->type = t;
		if (m->last)
			m->last->next = f;
		else
			m->families = f;
		m->last = f;
	}
	labels = labels ? labels : "";
	struct series **sp = &f->series;
	for (; *sp; sp = &(*sp)->next)
		if (strcmp((*sp)->labels, labels) == 0)
			return *sp;
	*sp = xcalloc(1, sizeof(**sp));
	(*sp)->labels = xstrdup(labels);
	return *sp;
}

void metrics_counter_add(struct metrics *m, const char *name, const char *help, const char *labels,
			 double v)
{
	pthread_mutex_lock(&m->lock);
	lookup(m, name, help, M_COUNTER, labels)->value += v;
	pthread_mutex_unlock(&m->lock);
}

void metrics_gauge_set(struct metrics *m, const char *name, const char *help, const char *labels,
		       double v)
{
	pthread_mutex_lock(&m->lock);
	lookup(m, name, help, M_GAUGE, labels)->value = v;
	pthread_mutex_unlock(&m->lock);
}

void metrics_gauge_clear(struct metrics *m, const char *name)
{
	pthread_mutex_lock(&m->lock);
	for (struct family *f = m->families; f; f = f->next) {
		if (strcmp(f->name, name) != 0 || f->type != M_GAUGE)
			continue;
		for (struct series *s = f->series, *sn; s; s = sn) {
			sn = s->next;
			free(s->labels);
			free(s);
		}
		f->series = NULL;
	}
	pthread_mutex_unlock(&m->lock);
}

void metrics_observe(struct metrics *m, const char *name, const char *help, const char *labels,
		     double v)
{
	pthread_mutex_lock(&m->lock);
	struct series *s = lookup(m, name, help, M_HISTOGRAM, labels);
	s->value += v;
	s->count++;
	for (size_t i = 0; i < NBUCKETS; i++)
		if (v <= buckets[i])
			s->bucket[i]++;
	pthread_mutex_unlock(&m->lock);
}

void metrics_add_collector(struct metrics *m, void (*fn)(struct metrics *m, void *arg), void *arg)
{
	struct collector *c = xcalloc(1, sizeof(*c));
	c->fn = fn;
	c->arg = arg;
	pthread_mutex_lock(&m->lock);
	c->next = m->collectors;
	m->collectors = c;
	pthread_mutex_unlock(&m->lock);
}

static void render_histogram(struct buf *out, const struct family *f, const struct series *s)
{
	const char *sep = *s->labels ? "," : "";
	for (size_t i = 0; i < NBUCKETS; i++)
		buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %lu\n", f->name, s->labels, sep, buckets[i], s->bucket[i]);
	buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %lu\n", f->name, s->labels, sep, s->count);
	buf_printf(out, "%s_sum{%s} %.6f\n", f->name, s->labels, s->value);
	buf_printf(out, "%s_count{%s} %lu\n", f->name, s->labels, s->count);
}

void metrics_render(struct metrics *m, struct buf *out)
{
	static const char *tnames[] = { "counter", "gauge", "histogram" };
	pthread_mutex_lock(&m->lock);
	struct collector *cs = m->collectors;
	pthread_mutex_unlock(&m->lock);
	for (struct collector *c = cs; c; c = c->next)
		c->fn(m, c->arg);

	pthread_mutex_lock(&m->lock);
	for (struct family *f = m->families; f; f = f->next) {
		buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, tnames[f->type]);
		for (struct series *s = f->series; s; s = s->next) {
			if (f->type == M_HISTOGRAM)
				render_histogram(out, f, s);
			else if (*s->labels)
				buf_printf(out, "%s{%s} %.17g\n", f->name, s->labels, s->value);
			else
				buf_printf(out, "%s %.17g\n", f->name, s->value);
		}
	}
	pthread_mutex_unlock(&m->lock);
}

/* Label values of the counters metrics_declare_known() creates. */
static const char *const outcome_statuses[] = { "delivered", "deferred", "bounced", "failed", NULL };
static const char *const destinations[] = { "google", "microsoft", "yahoo", "apple", "other", NULL };
static const char *const tls_series[] = {
	"tls=\"none\",verified=\"no\"",       "tls=\"TLSv1.2\",verified=\"yes\"",
	"tls=\"TLSv1.2\",verified=\"no\"",    "tls=\"TLSv1.3\",verified=\"yes\"",
	"tls=\"TLSv1.3\",verified=\"no\"",    NULL,
};
static const char *const bounce_types[] = { "permanent", "transient", NULL };
/* mail/classify.c's categories. */
static const char *const bounce_categories[] = {
	"bad_mailbox", "bad_domain", "mailbox_full", "message_too_large", "routing", "dns",
	"protocol",    "policy",     "reputation",   "spam",              "other",   NULL,
};
static const char *const bounce_sources[] = { "smtp", "dsn", NULL };
/* hooks/webhook_dispatch.c's decisions. */
static const char *const webhook_outcomes[] = { "succeeded", "pending", "failed", NULL };
/* db/retention.c's kinds. */
static const char *const retention_kinds[] = { "bodies",           "events",           "messages", "bounces_raw",
					       "idempotency_keys", "destinations",     "mta_sts_policies", NULL };
/* The send route's server errors, which the "API errors" alert divides. */
static const char *const http_errors[] = {
	"method=\"POST\",route=\"/v1/messages\",status=\"500\"",
	"method=\"POST\",route=\"/v1/messages\",status=\"503\"",
	NULL,
};

/* submit/submit.c's results (util/metrics_names.h MF_M_SUBMIT_*). */
static const char *const submit_refusals[] = { "max_sessions", "max_sessions_per_addr", "pregreet", NULL };
static const char *const submit_auth_results[] = { "ok", "failed", "throttled", "unavailable", NULL };
static const char *const submit_msg_results[] = { "accepted", "replayed",      "invalid",
						  "too_big",  "sender_policy", "deferred", NULL };

/* One series at 0 per value of vals, labels fmt % value. */
static void declare_each(struct metrics *m, const char *name, const char *help, const char *fmt,
			 const char *const *vals)
{
	char labels[256];
	for (; *vals; vals++) {
		snprintf(labels, sizeof(labels), fmt, *vals);
		metrics_counter_add(m, name, help, labels, 0);
	}
}

void metrics_declare_known(struct metrics *m)
{
	char labels[256];
	metrics_counter_add(m, MF_M_MESSAGES_ACCEPTED, NULL, 0);
	metrics_counter_add(m, MF_M_RECIPIENTS_ACCEPTED, NULL, 0);
	metrics_counter_add(m, MF_M_CLAIMED, "", 0);
	declare_each(m, MF_M_HTTP_REQUESTS, "%s", http_errors);
	for (const char *const *st = outcome_statuses; *st; st++)
		for (const char *const *d = destinations; *d; d++) {
			snprintf(labels, sizeof(labels), "status=\"%s\",destination=\"%s\"", *st, *d);
			metrics_counter_add(m, MF_M_DELIVERIES, labels, 0);
		}
	declare_each(m, MF_M_SMTP_TLS, "%s", tls_series);
	metrics_counter_add(m, MF_M_SMTP_TLS_RESUMED, "", 0);
	for (const char *const *t = bounce_types; *t; t++)
		for (const char *const *c = bounce_categories; *c; c++)
			for (const char *const *src = bounce_sources; *src; src++) {
				snprintf(labels, sizeof(labels), "type=\"%s\",category=\"%s\",source=\"%s\"", *t, *c,
					 *src);
				metrics_counter_add(m, MF_M_BOUNCES, labels, 0);
			}
	declare_each(m, MF_M_WEBHOOK_ATTEMPTS, "outcome=\"%s\"", webhook_outcomes);
	metrics_counter_add(m, MF_M_REPLAY_REQUEUED, "via=\"api\"", 0);
	declare_each(m, MF_M_RETENTION, "kind=\"%s\"", retention_kinds);
	metrics_counter_add(m, MF_M_SUBMIT_SESSIONS, "", 0);
	declare_each(m, MF_M_SUBMIT_REFUSED, "reason=\"%s\"", submit_refusals);
	declare_each(m, MF_M_SUBMIT_AUTH, "result=\"%s\"", submit_auth_results);
	declare_each(m, MF_M_SUBMIT_MESSAGES, "result=\"%s\"", submit_msg_results);
	metrics_counter_add(m, "mailferry_bounce_listener_rcpt_refused_total",
			    "Recipients refused by the bounce listener (not bounce_domain).", "", 0);
	metrics_counter_add(m, "mailferry_bounce_listener_messages_total",
			    "Messages received by the bounce listener, by result (stored, failed).", "result=\"stored\"", 0);
	metrics_counter_add(m, "mailferry_bounce_listener_messages_total",
			    "Messages received by the bounce listener, by result (stored, failed).", "result=\"failed\"", 0);
}
