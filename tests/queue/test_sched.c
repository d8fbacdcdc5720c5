/*
 * test_sched.c - the delivery workers' job scheduler (queue/sched.h):
 * per-destination FIFOs in a hash table and the FIFO of startable
 * destinations.  Oldest first within a destination, never more than cap
 * in flight to one, startable destinations take turns, drained jobs come
 * back whole; and the util/strmap.h table under it.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue/internal.h"
#include "queue/sched.h"
#include "util/strmap.h"
#include "util/xmalloc.h"

/* A job to domain whose first recipient id is seq (its age order). */
static struct qjob *job(const char *domain, int64_t seq)
{
	struct qjob *j = xcalloc(1, sizeof(*j));
	snprintf(j->domain, sizeof(j->domain), "%s", domain);
	j->n = 1;
	j->r[0].id = seq;
	return j;
}

Test(sched, oldest_first_within_a_destination)
{
	struct sched *s = sched_new(100);
	for (int i = 1; i <= 10; i++)
		sched_push(s, job("a.test", i));
	cr_assert_eq(sched_pending(s), 10);
	cr_assert_eq(sched_startable(s), 10);
	for (int i = 1; i <= 10; i++) {
		struct qjob *j = sched_take(s);
		cr_assert_not_null(j);
		cr_assert_eq(j->r[0].id, i, "took %ld, want %d", (long)j->r[0].id, i);
		sched_done(s, j);
		free(j);
	}
	cr_assert_null(sched_take(s));
	cr_assert_eq(sched_destinations(s), 0, "an idle destination's entry is freed");
	sched_free(s);
}

Test(sched, cap_is_never_exceeded_and_a_free_slot_restarts)
{
	struct sched *s = sched_new(3);
	for (int i = 1; i <= 7; i++)
		sched_push(s, job("slow.test", i));
	cr_assert_eq(sched_startable(s), 3);
	struct qjob *run[3];
	for (int i = 0; i < 3; i++)
		cr_assert_not_null(run[i] = sched_take(s));
	cr_assert_eq(sched_inflight(s, "slow.test"), 3);
	cr_assert_null(sched_take(s), "a fourth job to a destination at its cap");
	cr_assert_eq(sched_startable(s), 0);
	/* Another destination still starts while slow.test is full. */
	sched_push(s, job("other.test", 100));
	cr_assert_eq(sched_startable(s), 1);
	struct qjob *o = sched_take(s);
	cr_assert_eq(o->r[0].id, 100);
	sched_done(s, run[1]);
	free(run[1]);
	cr_assert_eq(sched_startable(s), 1);
	struct qjob *next = sched_take(s);
	cr_assert_not_null(next);
	cr_assert_eq(next->r[0].id, 4, "the oldest waiting job takes the freed slot");
	cr_assert_eq(sched_inflight(s, "slow.test"), 3);
	cr_assert_null(sched_take(s));
	sched_done(s, o);
	free(o);
	sched_done(s, run[0]);
	sched_done(s, run[2]);
	sched_done(s, next);
	free(run[0]);
	free(run[2]);
	free(next);
	struct qjob *j;
	int got = 0;
	while ((j = sched_take(s)) != NULL) {
		cr_assert_eq(j->r[0].id, 5 + got);
		got++;
		sched_done(s, j);
		free(j);
	}
	cr_assert_eq(got, 3);
	cr_assert_eq(sched_pending(s), 0);
	cr_assert_eq(sched_destinations(s), 0);
	sched_free(s);
}

/* A burst of 100 jobs to one domain queued before one job to each of two
 * others: those start within the first turn, not after the burst. */
Test(sched, startable_destinations_take_turns)
{
	struct sched *s = sched_new(1000);
	for (int i = 1; i <= 100; i++)
		sched_push(s, job("big.test", i));
	sched_push(s, job("b.test", 1001));
	sched_push(s, job("c.test", 1002));
	char order[8][MF_DOMAIN_MAX + 1];
	struct qjob *taken[8];
	for (int i = 0; i < 8; i++) {
		taken[i] = sched_take(s);
		snprintf(order[i], sizeof(order[i]), "%s", taken[i]->domain);
	}
	cr_assert_str_eq(order[0], "big.test");
	cr_assert_str_eq(order[1], "b.test");
	cr_assert_str_eq(order[2], "c.test");
	for (int i = 3; i < 8; i++)
		cr_assert_str_eq(order[i], "big.test");
	cr_assert_eq(taken[3]->r[0].id, 2, "big.test's jobs still go oldest first");
	for (int i = 0; i < 8; i++) {
		sched_done(s, taken[i]);
		free(taken[i]);
	}
	struct qjob *list = sched_drain(s);
	int n = 0;
	for (struct qjob *j = list, *next; j; j = next, n++) {
		next = j->next;
		free(j);
	}
	cr_assert_eq(n, 94);
	sched_free(s);
}

/* Drain with jobs in flight: pending jobs come back, the in-flight ones
 * finish later and their destinations go. */
Test(sched, drain_returns_every_pending_job)
{
	struct sched *s = sched_new(2);
	int64_t sum = 0;
	for (int d = 0; d < 50; d++)
		for (int i = 0; i < 5; i++) {
			char dom[32];
			snprintf(dom, sizeof(dom), "d%d.test", d);
			sched_push(s, job(dom, d * 10 + i));
			sum += d * 10 + i;
		}
	cr_assert_eq(sched_startable(s), 100);
	struct qjob *a = sched_take(s), *b = sched_take(s);
	sum -= a->r[0].id + b->r[0].id;
	struct qjob *list = sched_drain(s);
	int n = 0;
	for (struct qjob *j = list, *next; j; j = next, n++) {
		next = j->next;
		sum -= j->r[0].id;
		free(j);
	}
	cr_assert_eq(n, 248);
	cr_assert_eq(sum, 0, "every pending job exactly once");
	cr_assert_eq(sched_pending(s), 0);
	cr_assert_eq(sched_startable(s), 0);
	cr_assert_null(sched_take(s));
	sched_done(s, a);
	sched_done(s, b);
	free(a);
	free(b);
	cr_assert_eq(sched_destinations(s), 0);
	sched_free(s);
}

/* 10,000 destinations at the cap, one job waiting behind each: a freed
 * slot is found without a scan (the test bounds work by count, not time:
 * every take returns the job of the destination just freed). */
Test(sched, ten_thousand_destinations)
{
	enum { D = 10000 };
	struct sched *s = sched_new(1);
	struct qjob **run = xcalloc(D, sizeof(*run));
	for (int d = 0; d < D; d++) {
		char dom[32];
		snprintf(dom, sizeof(dom), "d%d.test", d);
		sched_push(s, job(dom, d));
		sched_push(s, job(dom, D + d));
	}
	for (int d = 0; d < D; d++) {
		run[d] = sched_take(s);
		cr_assert_eq(run[d]->r[0].id, d);
	}
	cr_assert_null(sched_take(s));
	for (int d = D - 1; d >= 0; d--) {
		sched_done(s, run[d]);
		free(run[d]);
		struct qjob *j = sched_take(s);
		cr_assert_not_null(j);
		cr_assert_eq(j->r[0].id, D + d);
		sched_done(s, j);
		free(j);
	}
	cr_assert_eq(sched_destinations(s), 0);
	free(run);
	sched_free(s);
}

static void count_entry(const char *key, void *val, void *arg)
{
	(void)key;
	*(long *)arg += (long)(intptr_t)val;
}

Test(strmap, put_get_del_and_growth)
{
	struct strmap *m = strmap_new();
	char k[32];
	for (long i = 1; i <= 5000; i++) {
		snprintf(k, sizeof(k), "key%ld", i);
		strmap_put(m, k, (void *)(intptr_t)i);
	}
	cr_assert_eq(strmap_count(m), 5000);
	strmap_put(m, "key7", (void *)(intptr_t)7);
	cr_assert_eq(strmap_count(m), 5000, "a put over an existing key replaces");
	for (long i = 1; i <= 5000; i++) {
		snprintf(k, sizeof(k), "key%ld", i);
		cr_assert_eq((long)(intptr_t)strmap_get(m, k), i);
	}
	cr_assert_null(strmap_get(m, "key0"));
	cr_assert_null(strmap_get(m, "KEY1"), "keys compare exactly");
	long sum = 0;
	strmap_each(m, count_entry, &sum);
	cr_assert_eq(sum, 5000L * 5001 / 2);
	for (long i = 1; i <= 5000; i += 2) {
		snprintf(k, sizeof(k), "key%ld", i);
		cr_assert_eq((long)(intptr_t)strmap_del(m, k), i);
	}
	cr_assert_null(strmap_del(m, "key1"));
	cr_assert_eq(strmap_count(m), 2500);
	cr_assert_eq((long)(intptr_t)strmap_get(m, "key2"), 2);
	strmap_free(m);
	strmap_free(NULL);
}
