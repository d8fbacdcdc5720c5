/*
 * internal.h - what queue/queue.c (lifecycle, scheduler, housekeeper) and
 * queue/worker.c (delivery workers, recorder) share.  Not for use outside
 * queue/.
 *
 * Locking: q->lock guards the job list, the per-domain counts, the
 * counters and the outcome list; q->work wakes workers (new job, a domain
 * slot freed, stop); q->rec wakes the recorder; q->idle signals
 * "in-flight dropped" to queue_free().  The scheduler is woken through
 * q->wake_fd (eventfd) because it sleeps in poll() on its database socket.
 */
#ifndef MF_QUEUE_INTERNAL_H
#define MF_QUEUE_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "db/queue.h"
#include "queue/destination.h"
#include "queue/policy.h"
#include "queue/queue.h"
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

struct qrcpt {
	int64_t id;
	char *email;
	int attempts;
	long age_secs;
};

struct qjob {
	struct qjob *next;
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

struct qdomain {
	char name[MF_DOMAIN_MAX + 1];
	int inflight;
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

	struct qjob *head, *tail;   /* pending jobs, FIFO */
	int pending, inflight;
	struct qdomain *domains;    /* nworkers slots: domains with jobs in flight */
	struct qout *outs;          /* outcomes to record */
	int nouts;

	int stopping;               /* no more claims */
	int workers_exit;           /* workers leave when the list is empty */
	int recorder_exit;
	int housekeeper_exit;       /* after the recorder: it renews leases until then */

	unsigned char verp_key[VERP_KEY_LEN];
	int verp;                   /* VERP return paths in use (key loaded) */

	pthread_t scheduler, recorder, housekeeper;
	pthread_t *workers;
	int nstarted;
};

void *queue_worker_main(void *arg);
void *queue_recorder_main(void *arg);
/* Wakes the scheduler (thread-safe, async-signal-unsafe). */
void queue_wake_scheduler(struct queue *q);
void queue_job_free(struct queue *q, struct qjob *j);

#endif
