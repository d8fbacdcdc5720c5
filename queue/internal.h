/*
 * internal.h - what queue/queue.c (lifecycle, scheduler, housekeeper) and
 * queue/worker.c (delivery workers, recorder) share.  Not for use outside
 * queue/.
 *
 * Locking: q->lock guards the job scheduler (queue/sched.h), the
 * counters, the worker-thread counts and the outcome list; q->work wakes
 * one idle worker per startable job (signal, with q->wakeups counting the
 * wake-ups handed out; broadcast only to stop); q->rec wakes the
 * recorder; q->idle tells queue_free() that the jobs in flight or the
 * worker threads dropped to 0.  The scheduler is woken through q->wake_fd
 * (eventfd) because it sleeps in poll() on its database socket.
 *
 * Worker threads (worker.c) are started on demand, up to `workers`: when
 * a claim makes more jobs startable than there are idle threads.  They
 * are detached, run on a QUEUE_WORKER_STACK stack, and exit after
 * QUEUE_WORKER_IDLE_MS without work, down to QUEUE_WORKERS_FLOOR.
 */
#ifndef MF_QUEUE_INTERNAL_H
#define MF_QUEUE_INTERNAL_H

#include <pthread.h>
#include <time.h>
#include <stdint.h>

#include "db/queue.h"
#include "queue/destination.h"
#include "queue/policy.h"
#include "queue/queue.h"
#include "queue/sched.h"
#include "mail/outcome.h"
#include "mail/verp.h"
#include "util/limits.h"

#define QUEUE_OWNER_MAX 128
#define QUEUE_OWNER_BASE_MAX 96  /* host:pid:random; a claim adds :seq */

/* One message's shared data; freed when the last job referencing it is. */
struct qmsg {
	int refs;                 /* under q->lock */
	char *id;
	char *mail_from;
	char *body;
	size_t len;
	int has_body;
};

struct qdest;

struct qrcpt {
	int64_t id;
	char *email;
	int attempts;
	long age_secs;
};

struct qjob {
	struct qjob *next;
	struct qdest *dest;       /* queue/sched.c's destination entry */
	struct qmsg *msg;
	char domain[MF_DOMAIN_MAX + 1];
	char owner[QUEUE_OWNER_MAX];
	int n;
	struct qrcpt r[MF_RECIPIENTS_MAX];
};

/* One outcome waiting for the recorder; db points into the fields. */
struct qout {
	struct qout *next;
	struct db_outcome db;
	struct smtp_outcome so;
	char owner[QUEUE_OWNER_MAX];
	char domain[MF_DOMAIN_MAX + 1];
	const char *status;
};

struct queue {
	struct queue_params p;
	struct policy_params policy;
	struct dest_params dest;    /* per-destination feedback (destination.h) */
	char *dest_rates;           /* destination_rate as the claim's JSON */
	char owner[QUEUE_OWNER_BASE_MAX];
	long claim_seq;
	int nworkers;
	int domain_limit;
	long lease_secs;

	pthread_mutex_t lock;
	pthread_cond_t work, rec, idle, hk;
	int wake_fd;

	struct sched *sched;        /* pending jobs per destination */
	int pending, inflight;
	struct qout *outs;          /* outcomes to record */
	int nouts;

	int stopping;               /* no more claims */
	int workers_exit;           /* workers leave when the list is empty */
	int recorder_exit;
	int housekeeper_exit;       /* after the recorder: it renews leases until then */

	unsigned char verp_key[VERP_KEY_LEN];
	int verp;                   /* VERP return paths in use (key loaded) */

	pthread_t scheduler, recorder, housekeeper;
	pthread_attr_t worker_attr; /* detached, QUEUE_WORKER_STACK */
	int nthreads;               /* worker threads running or being started */
	int nidle;                  /* waiting for work, not yet handed a wake-up */
	int wakeups;                /* wake-ups handed out, not yet taken */
	int threads_peak;
};

/* Worker threads: a stack of 256 KiB holds the deepest path measured
 * (see worker.c) three times over; sanitizers' instrumented frames,
 * redzones and interceptors get 1 MiB. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define QUEUE_WORKER_STACK (1024 * 1024)
#else
#define QUEUE_WORKER_STACK (256 * 1024)
#endif
#define QUEUE_WORKER_IDLE_MS 60000L /* an idle thread exits after this */
#define QUEUE_WORKERS_FLOOR 4       /* ... unless only this many are left */

void *queue_recorder_main(void *arg);
/* Under q->lock: n more jobs became startable.  Wakes up to n idle
 * workers and reserves threads for the rest (up to `workers`); returns
 * how many threads the caller must start with queue_workers_start()
 * after releasing the lock. */
int queue_workers_kick(struct queue *q, int n);
/* Starts n reserved worker threads (not under q->lock); returns how many
 * started (a failure gives its reservation back and is logged). */
int queue_workers_start(struct queue *q, int n);
/* Wakes the scheduler (thread-safe, async-signal-unsafe). */
void queue_wake_scheduler(struct queue *q);
/* The CLOCK_REALTIME time ms from now, for pthread_cond_timedwait(). */
void queue_deadline(struct timespec *ts, long ms);
void queue_job_free(struct queue *q, struct qjob *j);

#endif
