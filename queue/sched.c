/*
 * sched.c - per-destination FIFOs and the ready FIFO (see sched.h).
 *
 * Invariant, after every call: a destination is in the ready FIFO exactly
 * when it has a pending job and fewer than cap jobs in flight, and
 * s->startable is the sum over those of min(pending, cap - inflight).
 * update() restores both for the one destination a call changed.
 */
#include "queue/sched.h"

#include <stdlib.h>
#include <string.h>

#include "queue/internal.h"
#include "util/strmap.h"
#include "util/xmalloc.h"

struct qdest {
	struct qjob *head, *tail;   /* pending jobs, oldest first */
	int pending, inflight;
	int ready;                  /* in the ready FIFO */
	int startable;              /* its share of s->startable */
	struct qdest *ready_next;
	char name[];
};

struct sched {
	int cap;
	struct strmap *dests;       /* domain -> struct qdest */
	struct qdest *ready_head, *ready_tail;
	int startable, pending;
};

struct sched *sched_new(int cap)
{
	struct sched *s = xcalloc(1, sizeof(*s));
	s->cap = cap > 0 ? cap : 1;
	s->dests = strmap_new();
	return s;
}

void sched_free(struct sched *s)
{
	if (s == NULL)
		return;
	strmap_free(s->dests); /* empty: entries go when their last job does */
	free(s);
}

static void ready_append(struct sched *s, struct qdest *d)
{
	d->ready = 1;
	d->ready_next = NULL;
	if (s->ready_tail)
		s->ready_tail->ready_next = d;
	else
		s->ready_head = d;
	s->ready_tail = d;
}

static struct qdest *ready_pop(struct sched *s)
{
	struct qdest *d = s->ready_head;
	if (d == NULL)
		return NULL;
	s->ready_head = d->ready_next;
	if (s->ready_head == NULL)
		s->ready_tail = NULL;
	d->ready = 0;
	d->ready_next = NULL;
	return d;
}

/* Restores the invariant for d, which is not in the ready FIFO unless it
 * was left there; frees d when nothing refers to it any more. */
static void update(struct sched *s, struct qdest *d)
{
	int room = s->cap - d->inflight;
	int can = d->pending > 0 && room > 0;
	s->startable -= d->startable;
	d->startable = can ? (d->pending < room ? d->pending : room) : 0;
	s->startable += d->startable;
	/* Only pops (take, drain) leave the FIFO, and nothing but a take
	 * makes a destination less startable: d is in it iff can. */
	if (can && !d->ready)
		ready_append(s, d);
	if (d->pending == 0 && d->inflight == 0) {
		strmap_del(s->dests, d->name);
		free(d);
	}
}

void sched_push(struct sched *s, struct qjob *j)
{
	struct qdest *d = strmap_get(s->dests, j->domain);
	if (d == NULL) {
		size_t len = strlen(j->domain);
		d = xcalloc(1, sizeof(*d) + len + 1);
		memcpy(d->name, j->domain, len + 1);
		strmap_put(s->dests, d->name, d);
	}
	j->next = NULL;
	j->dest = d;
	if (d->tail)
		d->tail->next = j;
	else
		d->head = j;
	d->tail = j;
	d->pending++;
	s->pending++;
	update(s, d);
}

struct qjob *sched_take(struct sched *s)
{
	struct qdest *d = ready_pop(s);
	if (d == NULL)
		return NULL;
	/* The invariant holds, so d can start a job. */
	struct qjob *j = d->head;
	d->head = j->next;
	if (d->head == NULL)
		d->tail = NULL;
	j->next = NULL;
	d->pending--;
	d->inflight++;
	s->pending--;
	update(s, d); /* back at the tail if it can start another */
	return j;
}

void sched_done(struct sched *s, struct qjob *j)
{
	struct qdest *d = j->dest;
	j->dest = NULL;
	d->inflight--;
	update(s, d);
}

struct dest_list {
	struct qdest **v;
	size_t n;
};

static void collect_dest(const char *key, void *val, void *arg)
{
	(void)key;
	struct dest_list *l = arg;
	l->v[l->n++] = val;
}

struct qjob *sched_drain(struct sched *s)
{
	struct qjob *first = NULL, *last = NULL;
	while (ready_pop(s) != NULL)
		;
	/* Collect first: update() may free entries, and strmap_each forbids
	 * changes while it walks. */
	struct dest_list all = { xcalloc(strmap_count(s->dests) + 1, sizeof(*all.v)), 0 };
	strmap_each(s->dests, collect_dest, &all);
	for (size_t i = 0; i < all.n; i++) {
		struct qdest *d = all.v[i];
		for (struct qjob *j = d->head; j; j = j->next)
			j->dest = NULL;
		if (d->head) {
			if (last)
				last->next = d->head;
			else
				first = d->head;
			last = d->tail;
		}
		s->pending -= d->pending;
		d->head = d->tail = NULL;
		d->pending = 0;
		update(s, d);
	}
	free(all.v);
	return first;
}

int sched_startable(const struct sched *s)
{
	return s->startable;
}

int sched_pending(const struct sched *s)
{
	return s->pending;
}

int sched_inflight(const struct sched *s, const char *domain)
{
	const struct qdest *d = strmap_get(s->dests, domain);
	return d ? d->inflight : 0;
}

int sched_destinations(const struct sched *s)
{
	return (int)strmap_count(s->dests);
}
