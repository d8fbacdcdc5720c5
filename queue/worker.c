/*
 * worker.c - delivery workers and the outcome recorder (see queue.h).
 *
 * A worker takes the next startable job from queue/sched.h (O(1): the
 * destination at the head of the ready FIFO, its oldest job), builds the
 * envelope (VERP return path when
 * bounce_domain is set, else the message's sender), calls the deliver
 * function (relay_deliver), asks the failure policy what each outcome
 * means and hands the results to the recorder.  The recorder writes every
 * outcome waiting at that moment in one transaction (db_queue_record), so
 * one commit serves many deliveries; if the database is down it keeps the
 * outcomes and tries again (their leases protect against a reclaim).
 *
 * Worker threads start on demand (queue_workers_kick/start, called by the
 * scheduler's claim) up to `workers`, each on a QUEUE_WORKER_STACK stack:
 * the deepest path measured (a painted stack under relay_deliver) is an
 * MX lookup, 83 KiB (res_nquery's 64 KiB answer buffer, when route.c
 * used libresolv; dns/dns.c's c-ares lookup keeps answers on the heap and
 * about 10 KiB of results on the stack, not measured again); a
 * STARTTLS handshake (RSA-2048 server) and delivery 34 KiB; 85 and 37
 * KiB under ASan.  256 KiB leaves three times that; a session touches 8
 * pages of it (32 KiB resident).  The job's outcomes (45 KiB for
 * MF_RECIPIENTS_MAX) live on the heap, and the thread turns jemalloc's
 * per-thread cache off (~58 KiB resident each): about 40 KB of RSS per
 * session in all (1,000 and 5,000 sessions, tests/integration/
 * test_delivery_scale.c).  A
 * finishing thread takes the next job itself, so only a claim wakes idle
 * threads: one signal per newly startable job.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "queue/internal.h"
#include "util/config.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/metrics_names.h"
#include "util/xmalloc.h"

static unsigned rnd32(void)
{
	static __thread unsigned state;
	if (state == 0)
		state = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)&state ^ (unsigned)getpid();
	/* xorshift32: jitter only, not security. */
	state ^= state << 13;
	state ^= state >> 17;
	state ^= state << 5;
	return state;
}

/* The outcome for recipients of a message whose body is gone. */
static void no_body_outcome(struct smtp_outcome *o)
{
	memset(o, 0, sizeof(*o));
	o->scope = SCOPE_MESSAGE;
	o->cls = OUT_LOCAL;
	o->kind = KIND_INTERNAL;
	o->permanent = 1;
	snprintf(o->text, sizeof(o->text), "the message body is no longer stored (body_retention)");
}

static struct qout *make_out(struct queue *q, const struct qjob *j, const struct qrcpt *r,
			     const struct smtp_outcome *so)
{
	struct qout *o = xcalloc(1, sizeof(*o));
	o->so = *so;
	snprintf(o->owner, sizeof(o->owner), "%s", j->owner);
	snprintf(o->domain, sizeof(o->domain), "%s", j->domain);
	struct policy_decision d;
	policy_decide(&q->policy, so, r->attempts, r->age_secs, rnd32(), &d);
	o->status = policy_next_name(d.next);
	struct db_outcome *db = &o->db;
	db->id = r->id;
	db->lease_owner = o->owner;
	db->status = o->status;
	db->delay_ms = d.delay_ms;
	db->code = o->so.code;
	db->enhanced = o->so.enhanced;
	db->text = o->so.text;
	db->mx = o->so.mx;
	db->tls_version = o->so.tls_version;
	db->tls_cipher = o->so.tls_cipher;
	db->tls_verified = o->so.tls_version[0] ? (o->so.tls_verified != 0) : -1;
	db->mta_sts = o->so.mta_sts;
	db->mta_sts_failure = o->so.sts_failure;
	if (d.next == NEXT_BOUNCED || d.next == NEXT_FAILED) {
		db->bounce_type = bounce_type_name(d.cls.type);
		db->bounce_category = d.cls.category;
		db->suppress = d.next == NEXT_BOUNCED && d.suppress;
	}
	db->domain = o->domain;
	log_debug("event=queue_outcome msg_id=%s rcpt_id=%" PRId64 " attempt=%d status=%s delay_ms=%ld",
		  j->msg->id, r->id, r->attempts, o->status, d.delay_ms);
	return o;
}

/*
 * The destination class of a domain for metrics: the big mailbox providers
 * by name, everything else "other" (never the domain itself: unbounded
 * label values would make the series count grow with the mail).
 */
static const char *destination_class(const char *domain)
{
	static const struct { const char *suffix, *cls; } classes[] = {
		{ "gmail.com", "google" }, { "googlemail.com", "google" },
		{ "outlook.com", "microsoft" }, { "hotmail.com", "microsoft" }, { "live.com", "microsoft" },
		{ "yahoo.com", "yahoo" }, { "icloud.com", "apple" }, { "me.com", "apple" },
	};
	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
		if (strcasecmp(domain, classes[i].suffix) == 0)
			return classes[i].cls;
	return "other";
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Session-level metrics of one delivery job (docs/operations.md names). */
static void job_metrics(struct queue *q, const struct qjob *j, const struct smtp_outcome *first, double secs)
{
	char labels[128];
	const char *dest = destination_class(j->domain);
	snprintf(labels, sizeof(labels), "destination=\"%s\"", dest);
	metrics_observe(q->p.metrics, MF_M_SMTP_SESSION, labels, secs);
	snprintf(labels, sizeof(labels), "tls=\"%s\",verified=\"%s\"",
		 first->tls_version[0] ? first->tls_version : "none",
		 first->tls_version[0] && first->tls_verified ? "yes" : "no");
	metrics_counter_add(q->p.metrics, MF_M_SMTP_TLS, labels, 1);
}

/* Per-recipient metrics: outcome by destination class, bounces by category. */
static void outcome_metrics(struct queue *q, const struct qjob *j, const struct qout *o)
{
	char labels[160];
	snprintf(labels, sizeof(labels), "status=\"%s\",destination=\"%s\"", o->status,
		 destination_class(j->domain));
	metrics_counter_add(q->p.metrics, MF_M_DELIVERIES, labels, 1);
	if (o->db.bounce_category && strcmp(o->status, "bounced") == 0) {
		snprintf(labels, sizeof(labels), "type=\"%s\",category=\"%s\",source=\"smtp\"",
			 o->db.bounce_type ? o->db.bounce_type : "permanent", o->db.bounce_category);
		metrics_counter_add(q->p.metrics, MF_M_BOUNCES, labels, 1);
	}
}

static void run_job(struct queue *q, struct qjob *j)
{
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* On the heap: MF_RECIPIENTS_MAX outcomes are 45 KiB, which zeroed
	 * on the stack cost every session thread 11 resident pages. */
	struct delivery_rcpt *rc = xcalloc((size_t)j->n, sizeof(*rc));
	for (int i = 0; i < j->n; i++) {
		rc[i].id = j->r[i].id;
		rc[i].addr = j->r[i].email;
	}
	char verp[MF_ADDRESS_MAX + 1];
	const char *mail_from = j->msg->mail_from;
	if (q->verp) {
		/* One recipient per job with VERP (see claim_row). */
		if (verp_encode(q->verp_key, j->r[0].id, q->p.cfg->bounce_domain, verp, sizeof(verp)) == 0)
			mail_from = verp;
		else
			log_warn("event=verp_encode_failed rcpt_id=%" PRId64 " note=\"using the sender\"", j->r[0].id);
	}
	if (j->msg->has_body) {
		struct delivery_job dj = { .mail_from = mail_from, .domain = j->domain, .msg = j->msg->body,
					   .len = j->msg->len, .log_id = j->msg->id, .rcpts = rc, .nrcpts = j->n,
					   .timeout_ms = q->p.cfg->delivery_timeout * 1000 };
		q->p.deliver(q->p.deliver_arg, &dj);
		if (q->p.metrics)
			job_metrics(q, j, &rc[0].out, seconds_since(&t0));
	} else {
		for (int i = 0; i < j->n; i++)
			no_body_outcome(&rc[i].out);
	}
	/* Outcomes go to the recorder at once: the window between the
	 * server's 250 and the commit is what a crash can deliver twice. */
	struct qout *first = NULL, *last = NULL;
	for (int i = 0; i < j->n; i++) {
		struct qout *o = make_out(q, j, &j->r[i], &rc[i].out);
		if (last)
			last->next = o;
		else
			first = o;
		last = o;
		if (q->p.metrics)
			outcome_metrics(q, j, o);
	}
	/* The job's feedback to its destination, once (destination.h). */
	first->db.feedback = (int)dest_job_signal(rc, j->n);
	free(rc);
	pthread_mutex_lock(&q->lock);
	last->next = q->outs;
	q->outs = first;
	q->nouts += j->n;
	pthread_cond_signal(&q->rec);
	pthread_mutex_unlock(&q->lock);
}

/* Under q->lock: waits for a wake-up (or stop, or the idle timeout).
 * Returns 0 to look for work again, -1 to exit the thread. */
static int worker_wait(struct queue *q)
{
	struct timespec until;
	queue_deadline(&until, QUEUE_WORKER_IDLE_MS);
	q->nidle++;
	for (;;) {
		if (q->wakeups > 0) {
			q->wakeups--; /* the waker took us out of nidle */
			return 0;
		}
		if (q->workers_exit) {
			q->nidle--;
			return -1;
		}
		if (pthread_cond_timedwait(&q->work, &q->lock, &until) == ETIMEDOUT && q->wakeups == 0 &&
		    !q->workers_exit) {
			if (q->nthreads > QUEUE_WORKERS_FLOOR) {
				q->nidle--;
				return -1;
			}
			until.tv_sec += QUEUE_WORKER_IDLE_MS / 1000;
		}
	}
}

/* A worker thread: takes startable jobs until none is left, then waits;
 * leaves on stop, or after QUEUE_WORKER_IDLE_MS idle above the floor. */
static void *worker_main(void *arg)
{
	struct queue *q = arg;
	xmalloc_thread_cache_off();
	pthread_mutex_lock(&q->lock);
	for (;;) {
		struct qjob *j = sched_take(q->sched);
		if (j == NULL) {
			if (q->workers_exit || worker_wait(q) < 0)
				break;
			continue;
		}
		q->pending--;
		q->inflight++;
		pthread_mutex_unlock(&q->lock);
		run_job(q, j);
		pthread_mutex_lock(&q->lock);
		/* A freed slot makes at most one job startable: this thread
		 * takes it (or another) on its next turn, so no wake-up. */
		sched_done(q->sched, j);
		q->inflight--;
		if (q->inflight == 0)
			pthread_cond_broadcast(&q->idle);
		pthread_mutex_unlock(&q->lock);
		queue_job_free(q, j);
		queue_wake_scheduler(q);  /* room to claim more */
		pthread_mutex_lock(&q->lock);
	}
	q->nthreads--;
	int left = q->nthreads;
	if (left == 0)
		pthread_cond_broadcast(&q->idle);
	pthread_mutex_unlock(&q->lock);
	log_debug("event=queue_worker_exit threads=%d", left);
	return NULL;
}

int queue_workers_kick(struct queue *q, int n)
{
	if (n <= 0)
		return 0;
	int wake = n < q->nidle ? n : q->nidle;
	for (int i = 0; i < wake; i++) {
		q->nidle--;
		q->wakeups++;
		pthread_cond_signal(&q->work);
	}
	int spawn = n - wake;
	if (spawn > q->nworkers - q->nthreads)
		spawn = q->nworkers - q->nthreads;
	if (spawn < 0)
		spawn = 0;
	q->nthreads += spawn;
	if (q->nthreads > q->threads_peak)
		q->threads_peak = q->nthreads;
	return spawn;
}

int queue_workers_start(struct queue *q, int n)
{
	int started = 0;
	for (; started < n; started++) {
		pthread_t t;
		int rc = pthread_create(&t, &q->worker_attr, worker_main, q);
		if (rc != 0) {
			pthread_mutex_lock(&q->lock);
			q->nthreads -= n - started;
			int have = q->nthreads;
			if (have == 0)
				pthread_cond_broadcast(&q->idle);
			pthread_mutex_unlock(&q->lock);
			log_warn_limited("event=queue_worker_start_failed error=\"%s\" threads=%d wanted=%d",
					 strerror(rc), have, have + n - started);
			break;
		}
	}
	if (started > 0)
		log_debug("event=queue_workers_started count=%d", started);
	return started;
}

static void free_outs(struct qout *o)
{
	while (o) {
		struct qout *next = o->next;
		free(o);
		o = next;
	}
}

void *queue_recorder_main(void *arg)
{
	struct queue *q = arg;
	struct db_session *s = db_session_new(q->p.cfg->database_url);
	db_session_set_feedback(s, dest_db_feedback, &q->dest);
	struct db_outcome *batch = xcalloc(QUEUE_RECORD_MAX, sizeof(*batch));
	struct qout *retry = NULL;
	pthread_mutex_lock(&q->lock);
	for (;;) {
		while (q->outs == NULL && retry == NULL && !q->recorder_exit)
			pthread_cond_wait(&q->rec, &q->lock);
		if (q->outs == NULL && retry == NULL)
			break;  /* exiting with nothing left */
		/* Take up to QUEUE_RECORD_MAX outcomes, oldest retry first. */
		struct qout *take = retry, *tail = NULL;
		int n = 0;
		for (struct qout *o = retry; o; o = o->next)
			tail = o, n++;
		while (q->outs && n < QUEUE_RECORD_MAX) {
			struct qout *o = q->outs;
			q->outs = o->next;
			q->nouts--;
			o->next = NULL;
			if (tail)
				tail->next = o;
			else
				take = o;
			tail = o;
			n++;
		}
		retry = NULL;
		pthread_mutex_unlock(&q->lock);

		int k = 0;
		for (struct qout *o = take; o && k < QUEUE_RECORD_MAX; o = o->next) {
			batch[k++] = o->db;
		}
		int applied = 0;
		char err[512];
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		int rec = db_queue_record(s, batch, k, &applied, err, sizeof(err));
		clock_gettime(CLOCK_MONOTONIC, &t1);
		long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
		if (rec < 0) {
			log_warn_limited("event=queue_record_failed outcomes=%d error=\"%s\" note=\"retrying\"", k, err);
			retry = take;
			/* Give the database a moment; a stop still waits for us. */
			usleep(500000);
		} else {
			if (applied < k)
				log_warn("event=queue_lease_lost outcomes=%d applied=%d note=\"lease expired, or the"
					 " status became final meanwhile; those outcomes dropped\"", k, applied);
			log_debug("event=queue_recorded outcomes=%d applied=%d ms=%ld", k, applied, ms);
			free_outs(take);
			/* Room to claim again; maybe a new earliest next_attempt_at. */
			queue_wake_scheduler(q);
		}
		pthread_mutex_lock(&q->lock);
		if (retry && q->recorder_exit && q->outs == NULL) {
			/* Stopping and the database is gone: the leases expire. */
			static int tries;
			if (++tries > 5) {
				log_warn("event=queue_record_abandoned note=\"leases will expire\"");
				free_outs(retry);
				retry = NULL;
			}
		}
	}
	pthread_mutex_unlock(&q->lock);
	free(batch);
	db_session_free(s);
	return NULL;
}
