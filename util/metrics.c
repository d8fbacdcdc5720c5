/*
 * metrics.c - Prometheus registry (see metrics.h).
 *
 * Families are kept in creation order in a small list; series in a list per
 * family.  Lookups are linear: mailferry has tens of series, not thousands.
 */
#include "util/metrics.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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
