/*
 * metrics.h - an in-process Prometheus registry (text exposition 0.0.4).
 *
 * Counters, gauges and histograms are created on first use, keyed by name
 * and a label string such as  route="/v1/messages",status="202"  (the
 * caller formats it; values must already be escaped).  All calls are
 * thread-safe.  Collectors registered with metrics_add_collector() run at
 * every render, e.g. to read queue depth from the database.
 */
#ifndef MF_METRICS_H
#define MF_METRICS_H

#include "util/buf.h"

struct metrics;

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

void metrics_counter_add(struct metrics *m, const char *name, const char *help, const char *labels,
			 double v);
void metrics_gauge_set(struct metrics *m, const char *name, const char *help, const char *labels,
		       double v);
/* Drops every series of a gauge (its HELP and TYPE stay), e.g. before a
 * collector sets the current set of a gauge whose label values come and go. */
void metrics_gauge_clear(struct metrics *m, const char *name);
/* Histogram with the default latency buckets (5 ms .. 60 s). */
void metrics_observe(struct metrics *m, const char *name, const char *help, const char *labels,
		     double v);
/* fn runs (outside the registry lock) at the start of every render. */
void metrics_add_collector(struct metrics *m, void (*fn)(struct metrics *m, void *arg), void *arg);
void metrics_render(struct metrics *m, struct buf *out);
/*
 * Creates at 0 every counter series of util/metrics_names.h whose label
 * values are a known fixed set (delivery outcomes by status and
 * destination, retention rows by kind, ...), so that each is exported from
 * start and rate()/increase() count its first increment.
 */
void metrics_declare_known(struct metrics *m);

#endif
