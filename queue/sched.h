/*
 * sched.h - the in-process job scheduler of the delivery workers: which
 * claimed job starts next, with at most `cap` jobs in flight per
 * destination domain.
 *
 * Structures (O(1) per operation, whatever the number of jobs, workers or
 * destinations):
 *  - a hash table of destinations (util/strmap.h), each with its FIFO of
 *    pending jobs and its count of jobs in flight;
 *  - the ready FIFO: the destinations that have a pending job and are
 *    under the cap, each at most once.
 * sched_take() pops the destination at the head of the ready FIFO, takes
 * its oldest job, and puts it back at the tail while it stays startable;
 * a destination joins the tail when it gets a job or a free slot.  So
 * within a destination the oldest job goes first, and startable
 * destinations take turns (Postfix's qmgr round-robin): a burst to one
 * domain cannot delay another domain's first job by more than one turn
 * of the others.  (The previous scan took the globally oldest startable
 * job, at O(pending x workers) per take; the order differs only when all
 * workers are busy and several destinations wait.)
 *
 * Not thread-safe: queue/ calls it under q->lock.  Jobs are borrowed;
 * the scheduler links them (qjob.next, qjob.dest) but never frees them.
 * A destination's entry exists while it has jobs pending or in flight.
 */
#ifndef MF_QUEUE_SCHED_H
#define MF_QUEUE_SCHED_H

struct qjob;
struct sched;

/* cap: jobs in flight per destination (>= 1). */
struct sched *sched_new(int cap);
/* Frees the structure; every job must have been taken and done, or drained. */
void sched_free(struct sched *s);
/* Queues j (j->domain set) behind its destination's earlier jobs. */
void sched_push(struct sched *s, struct qjob *j);
/* The next job to start (now counted in flight), or NULL when none may. */
struct qjob *sched_take(struct sched *s);
/* j (from sched_take) finished: its destination's slot is free again. */
void sched_done(struct sched *s, struct qjob *j);
/* Unlinks every pending job and returns them as a list (qjob.next). */
struct qjob *sched_drain(struct sched *s);
/* Jobs that could start now: the sum over ready destinations of
 * min(pending, cap - in flight).  Tells the queue how many workers to wake. */
int sched_startable(const struct sched *s);
int sched_pending(const struct sched *s);
/* Jobs in flight to domain (for tests). */
int sched_inflight(const struct sched *s, const char *domain);
/* Destinations with jobs pending or in flight (for tests). */
int sched_destinations(const struct sched *s);

#endif
