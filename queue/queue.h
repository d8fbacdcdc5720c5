/*
 * queue.h - the delivery engine of the "delivery" role: a scheduler thread
 * that claims due recipients under a lease, delivery worker threads that
 * hand them to the relay, a recorder that writes outcomes in batches, and
 * a housekeeper that renews this process's leases, stands for its
 * liveness and reaps the leases of expired or gone owners.
 *
 * Strategy (after Postfix's qmgr, DESIGN.md "Process and threads"):
 *  - The scheduler LISTENs on mailferry_queue (the recipients insert
 *    trigger NOTIFYs it) and otherwise sleeps until the earliest
 *    next_attempt_at (at most QUEUE_IDLE_WAIT_MS, for rows other processes
 *    deferred), so new mail leaves within a few milliseconds, with no poll.
 *  - It claims only what the workers can start soon (at most twice
 *    `workers` jobs pending or in flight), so leases do not run out while
 *    jobs wait in memory.  Recipients of one message and one domain form one
 *    job (one SMTP transaction); with VERP (bounce_domain set) every
 *    recipient has its own return path and so its own job.
 *  - Workers take a job of a destination domain that has fewer than
 *    destination_concurrency jobs in flight, so one slow domain cannot hold
 *    every worker: per-destination FIFOs (oldest first) and a FIFO of the
 *    destinations that may start one, which take turns (queue/sched.h),
 *    O(1) per job however many workers and destinations.
 *  - `workers` is the process's budget of concurrent SMTP sessions; the
 *    threads start when jobs need them and idle ones exit after a minute
 *    (a few stay), so a large budget costs nothing while mail is light.
 *  - The failure policy (queue/policy.h) turns each outcome into the next
 *    state; the recorder writes a batch of them in one transaction, only
 *    for rows whose lease this process still holds, except deliveries
 *    (db/queue.h).
 *  - The housekeeper renews the leases of everything this process holds
 *    (pending, in flight, waiting to be recorded) every lease_time/3, so a
 *    session slower than lease_time keeps its recipients.
 *  - A lease is tied to its owner's liveness.  The housekeeper keeps one
 *    connection for the process's life and registers the process's owner
 *    prefix on it (db_session_register): a session-level advisory lock on
 *    a fresh key, and the row (owner, key) in queue_owners, again after
 *    every reconnect.  Its every round refreshes the row's seen_at.
 *  - A process that dies leaves 'sending' rows, and its connection, so its
 *    lock, goes with it.  Any process's reaper (every QUEUE_REAP_EVERY_MS,
 *    and at once when a process starts) returns to 'deferred' the rows of
 *    an owner whose lock no session holds and whose seen_at is older than
 *    QUEUE_OWNER_GRACE_S, whatever their lease_expires_at, and later
 *    deletes that owner's registry row.  So a killed process's recipients
 *    are retried about QUEUE_OWNER_GRACE_S after the kill, not lease_time.  The grace lets a live
 *    process whose connection dropped reconnect and register again before
 *    anyone judges it; and a reaper that has just reconnected itself (the
 *    database restarted: everybody's locks went) judges nobody for that
 *    long.  Rows of an owner with no registration (an older binary) are
 *    reaped on expiry only.
 *  - A process that is alive but wedged (its lock held, its leases no
 *    longer renewed) loses its rows by expiry, once lease_time has passed.
 *  - Either way the attempt counts, and a 250 is recorded even if its
 *    lease was lost meanwhile (db_queue_record): a live process judged
 *    gone (its connection away for longer than the grace) costs at most a
 *    duplicate delivery of what it had in flight, never a lost outcome.
 * queue_free() stops gracefully: no new claims, unstarted jobs are given
 * back, jobs in flight get shutdown_grace to finish and be recorded, then
 * the registration is deleted.
 */
#ifndef MF_QUEUE_QUEUE_H
#define MF_QUEUE_QUEUE_H

#include <stddef.h>

struct config;
struct db_pool;
struct metrics;
struct delivery_job;

/* Delivers one job, filling every job->rcpts[i].out (relay_deliver()). */
typedef void (*queue_deliver_fn)(void *arg, struct delivery_job *job);

struct queue_params {
	const struct config *cfg;   /* borrowed, outlives the queue */
	struct db_pool *pool;       /* borrowed: reaper, release, VERP key */
	struct metrics *metrics;    /* may be NULL */
	queue_deliver_fn deliver;
	void *deliver_arg;
};

#define QUEUE_IDLE_WAIT_MS 2000L
#define QUEUE_CLAIM_MAX 200       /* recipients per claim */
#define QUEUE_RECORD_MAX 500      /* outcomes per recorder transaction */
#define QUEUE_REAP_EVERY_MS 2000L
/* How long a registered owner whose lock is gone still counts as alive:
 * time for a live process whose connection dropped to notice (at its next
 * round), reconnect and register again.  Its last refresh may be a round
 * older than the drop, so at least twice QUEUE_REAP_EVERY_MS (the
 * heartbeat's period) plus a connect; 10 s leaves a margin for slow rounds. */
#define QUEUE_OWNER_GRACE_S 10L
#define QUEUE_JITTER_PCT 10

struct queue;

/* Starts the threads; NULL with err set when a thread cannot start. */
struct queue *queue_new(const struct queue_params *p, char *err, size_t errlen);
/*
 * Stops gracefully and frees.  Returns 0, or -1 when jobs were still in
 * flight after shutdown_grace: then the threads are left running and
 * nothing is freed, and the caller must exit the process without freeing
 * what the queue borrows (their leases expire and another process
 * finishes the work).
 */
int queue_free(struct queue *q);
/* The lease owner prefix of this process, "host:pid:random". */
const char *queue_owner(const struct queue *q);

#endif
