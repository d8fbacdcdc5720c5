/*
 * queue.c - the delivery engine's lifecycle, the scheduler thread and the
 * housekeeper thread (see queue.h for the strategy; worker.c has the
 * delivery workers and the recorder).
 *
 * The scheduler owns one database session (LISTEN mailferry_queue, the
 * claims, the next-due lookup).  Each claim gets its own lease owner,
 * "<process owner>:<sequence>", so a lease is exact: after a reap and a
 * reclaim (even by this same process), an outcome from the earlier attempt
 * matches no row.
 */
#include "queue/queue.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "db/settings.h"
#include "queue/internal.h"
#include "util/config.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/xmalloc.h"

const char *queue_owner(const struct queue *q)
{
	return q->owner;
}

void queue_deadline(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

void queue_wake_scheduler(struct queue *q)
{
	uint64_t one = 1;
	ssize_t r = write(q->wake_fd, &one, sizeof(one));
	(void)r; /* the counter saturating still leaves it readable */
}

static void msg_unref(struct queue *q, struct qmsg *m)
{
	if (m == NULL)
		return;
	pthread_mutex_lock(&q->lock);
	int last = --m->refs == 0;
	pthread_mutex_unlock(&q->lock);
	if (!last)
		return;
	free(m->id);
	free(m->mail_from);
	free(m->body);
	free(m);
}

void queue_job_free(struct queue *q, struct qjob *j)
{
	if (j == NULL)
		return;
	for (int i = 0; i < j->n; i++)
		free(j->r[i].email);
	msg_unref(q, j->msg);
	free(j);
}

/* The claim's rows, turned into jobs (rows arrive grouped by message, then
 * domain; see db_queue_claim). */
struct claim_ctx {
	struct queue *q;
	const char *owner;
	struct qmsg *msg;
	struct qjob *first, *last;
	int njobs;
};

static void claim_row(const struct db_claim_row *row, void *arg)
{
	struct claim_ctx *c = arg;
	struct queue *q = c->q;
	if (c->msg == NULL || strcmp(c->msg->id, row->message_id) != 0) {
		struct qmsg *m = xcalloc(1, sizeof(*m));
		m->id = xstrdup(row->message_id);
		m->mail_from = xstrdup(row->mail_from);
		m->has_body = row->has_body && row->body != NULL;
		if (m->has_body) {
			m->body = xmalloc(row->body_len + 1);
			memcpy(m->body, row->body, row->body_len);
			m->body[row->body_len] = '\0';
			m->len = row->body_len;
		}
		c->msg = m;
	}
	struct qjob *j = c->last;
	/* With VERP each recipient has its own MAIL FROM, so its own job. */
	int same = j && !q->verp && j->msg == c->msg && strcmp(j->domain, row->domain) == 0 &&
		   j->n < MF_RECIPIENTS_MAX;
	if (!same) {
		j = xcalloc(1, sizeof(*j));
		j->msg = c->msg;
		pthread_mutex_lock(&q->lock);
		c->msg->refs++;
		pthread_mutex_unlock(&q->lock);
		snprintf(j->domain, sizeof(j->domain), "%s", row->domain);
		snprintf(j->owner, sizeof(j->owner), "%s", c->owner);
		if (c->last)
			c->last->next = j;
		else
			c->first = j;
		c->last = j;
		c->njobs++;
	}
	struct qrcpt *r = &j->r[j->n++];
	r->id = row->id;
	r->email = xstrdup(row->email);
	r->attempts = row->attempts;
	r->age_secs = row->age_secs;
}

/* The destination control every claim and next-due lookup applies
 * (queue/destination.h; VERP may be switched on after the start). */
static struct db_claim_opts claim_opts(const struct queue *q)
{
	return (struct db_claim_opts){ .verp = q->verp, .initial = q->dest.initial, .max = q->dest.max,
				       .rates_json = q->dest_rates };
}

/* Claims up to limit recipients and queues their jobs; the row count or -1. */
static int claim(struct queue *q, struct db_session *s, int limit)
{
	char owner[QUEUE_OWNER_MAX], err[512];
	snprintf(owner, sizeof(owner), "%.95s:%ld", q->owner, ++q->claim_seq);
	struct claim_ctx c = { .q = q, .owner = owner };
	struct db_claim_opts o = claim_opts(q);
	int n = db_queue_claim(s, owner, q->lease_secs, limit, &o, claim_row, &c, err, sizeof(err));
	if (n < 0) {
		log_warn_limited("event=queue_claim_failed error=\"%s\"", err);
		return -1;
	}
	if (n == 0)
		return 0;
	pthread_mutex_lock(&q->lock);
	int before = sched_startable(q->sched);
	for (struct qjob *j = c.first, *next; j; j = next) {
		next = j->next;
		sched_push(q->sched, j);
	}
	q->pending += c.njobs;
	int spawn = queue_workers_kick(q, sched_startable(q->sched) - before);
	pthread_mutex_unlock(&q->lock);
	queue_workers_start(q, spawn);
	log_debug("event=queue_claimed owner=%s recipients=%d jobs=%d", owner, n, c.njobs);
	if (q->p.metrics)
		metrics_counter_add(q->p.metrics, "mailferry_queue_claimed_total",
				    "Recipients claimed for delivery.", "", n);
	return n;
}

static void drain_wake(struct queue *q)
{
	uint64_t v;
	ssize_t r = read(q->wake_fd, &v, sizeof(v));
	(void)r;
}

/* VERP needs the shared key; until it can be read, wait (no claims). */
static int load_verp_key(struct queue *q)
{
	char err[256];
	if (db_settings_secret(q->p.pool, DB_SETTING_VERP_KEY, q->verp_key, VERP_KEY_LEN, err, sizeof(err)) < 0) {
		log_warn_limited("event=verp_key_unavailable error=\"%s\"", err);
		return -1;
	}
	q->verp = 1;
	return 0;
}

static void *scheduler_main(void *arg)
{
	struct queue *q = arg;
	struct db_session *s = db_session_new(q->p.cfg->database_url);
	char err[512];
	int listening = 0;
	int need_verp = q->p.cfg->bounce_domain != NULL && *q->p.cfg->bounce_domain;
	for (;;) {
		pthread_mutex_lock(&q->lock);
		int stop = q->stopping;
		/* Outcomes not yet recorded count too: they bound the work a
		 * crash would deliver twice, and hold back claims when the
		 * database is slower than the SMTP peers. */
		int room = 2 * q->nworkers - q->pending - q->inflight - q->nouts;
		/* Claim in batches: while the workers still have jobs waiting,
		 * let room grow to half the workers before the next claim
		 * (one claim per finished job cost a round trip per message);
		 * with nothing waiting, claim at once (latency). */
		int batch_ok = q->pending == 0 || room >= (q->nworkers + 1) / 2;
		pthread_mutex_unlock(&q->lock);
		if (stop)
			break;
		long wait_ms = QUEUE_IDLE_WAIT_MS;
		if (!listening) {
			/* LISTEN before claiming: nothing inserted after the
			 * first claim can go unnoticed. */
			if (db_session_listen(s, "mailferry_queue", err, sizeof(err)) == 0)
				listening = 1;
			else
				log_warn_limited("event=queue_listen_failed error=\"%s\"", err);
		}
		if (!listening || (need_verp && !q->verp && load_verp_key(q) < 0)) {
			wait_ms = 1000;
		} else if (room > 0 && batch_ok) {
			struct db_claim_opts o = claim_opts(q);
			int limit = room < QUEUE_CLAIM_MAX ? room : QUEUE_CLAIM_MAX;
			int n = claim(q, s, limit);
			if (n == limit)
				continue;  /* more may be due */
			long due = -1;
			if (n < 0) {
				wait_ms = 1000;
				listening = 0;
			} else if (db_queue_next_due(s, &o, &due, err, sizeof(err)) < 0) {
				log_warn_limited("event=queue_next_due_failed error=\"%s\"", err);
				wait_ms = 1000;
			} else if (due >= 0) {
				/* Due rows we did not get are locked by another
				 * claimer: look again shortly, do not spin. */
				wait_ms = due < 20 ? 20 : due < QUEUE_IDLE_WAIT_MS ? due : QUEUE_IDLE_WAIT_MS;
			}
		}
		int r = db_session_wait(s, q->wake_fd, wait_ms);
		if (r == 1) /* tests wait for this line: new mail woke the scheduler */
			log_debug("event=queue_woken reason=notify");
		if (r == 2)
			drain_wake(q);
		else if (r < 0)
			listening = 0;
	}
	db_session_free(s);
	return NULL;
}

static long mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* The lease heartbeat: while this process holds claimed rows (pending,
 * in flight or waiting to be recorded), their leases are extended every
 * lease_time/3, so a session that outlasts lease_time is not reaped and
 * delivered a second time by another worker. */
static void renew_leases(struct queue *q)
{
	pthread_mutex_lock(&q->lock);
	int held = q->pending + q->inflight + q->nouts;
	pthread_mutex_unlock(&q->lock);
	if (held == 0)
		return;
	char err[512];
	int n = db_queue_renew(q->p.pool, q->owner, q->lease_secs, err, sizeof(err));
	if (n < 0)
		log_warn("event=lease_renew_failed error=\"%s\"", err);
	else
		log_debug("event=leases_renewed count=%d", n);
}

/* One reaper round: expired leases and leases of gone owners (queue.h). */
static void reap(struct queue *q, struct db_session *s)
{
	char err[512];
	int n = db_queue_reap(s, QUEUE_OWNER_GRACE_S, 1000, err, sizeof(err));
	if (n < 0)
		log_warn_limited("event=lease_reap_failed error=\"%s\"", err);
	else if (n > 0) {
		log_info("event=leases_reaped count=%d", n);
		queue_wake_scheduler(q);
	}
}

/*
 * The housekeeper keeps one connection for the process's whole life: it
 * stands for the process's liveness (db_session_register: the advisory
 * lock that other reapers test), re-registered after every reconnect.  It
 * reaps at once at start, so that a restarted process frees the leases of
 * the one it replaces, then every QUEUE_REAP_EVERY_MS (or sooner with a
 * short lease_time), and renews this process's leases.
 */
static void *housekeeper_main(void *arg)
{
	struct queue *q = arg;
	struct db_session *s = db_session_new(q->p.cfg->database_url);
	char err[512];
	if (db_session_register(s, q->owner, err, sizeof(err)) < 0)
		log_warn_limited("event=queue_owner_register_failed owner=%s error=\"%s\" note=\"retried at the next round\"",
				 q->owner, err);
	reap(q, s);
	long every = q->lease_secs * 1000 / 2;
	if (every > QUEUE_REAP_EVERY_MS)
		every = QUEUE_REAP_EVERY_MS;
	if (every < 200)
		every = 200;
	long renew_every = q->lease_secs * 1000 / 3;
	if (renew_every < 200)
		renew_every = 200;
	if (every > renew_every)
		every = renew_every;
	long renewed_at = mono_ms();
	pthread_mutex_lock(&q->lock);
	while (!q->housekeeper_exit) {
		struct timespec ts;
		queue_deadline(&ts, every);
		pthread_cond_timedwait(&q->hk, &q->lock, &ts);
		if (q->housekeeper_exit)
			break;
		pthread_mutex_unlock(&q->lock);
		if (mono_ms() - renewed_at >= renew_every) {
			renewed_at = mono_ms();
			renew_leases(q);
		}
		reap(q, s);
		pthread_mutex_lock(&q->lock);
	}
	pthread_mutex_unlock(&q->lock);
	/* A graceful stop: every lease was recorded or given back. */
	if (db_session_unregister(s, err, sizeof(err)) < 0)
		log_warn("event=queue_owner_unregister_failed owner=%s error=\"%s\"", q->owner, err);
	db_session_free(s);
	return NULL;
}

static void make_owner(char *out, size_t n)
{
	char host[64] = "localhost";
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	unsigned r = 0;
	FILE *f = fopen("/dev/urandom", "rb");
	if (f == NULL || fread(&r, sizeof(r), 1, f) != 1)
		r = (unsigned)time(NULL) ^ (unsigned)getpid();
	if (f)
		fclose(f);
	snprintf(out, n, "%s:%d:%08x", host, (int)getpid(), r);
}

struct queue *queue_new(const struct queue_params *p, char *err, size_t errlen)
{
	struct queue *q = xcalloc(1, sizeof(*q));
	q->p = *p;
	const struct config *cfg = p->cfg;
	q->policy.retry = &cfg->retry_schedule;
	q->policy.max_lifetime = cfg->max_queue_lifetime;
	q->policy.jitter_pct = QUEUE_JITTER_PCT;
	q->nworkers = cfg->workers > 0 ? cfg->workers : 1;
	q->domain_limit = cfg->destination_concurrency > 0 ? cfg->destination_concurrency : q->nworkers;
	q->lease_secs = cfg->lease_time > 0 ? cfg->lease_time : 1;
	dest_params_init(&q->dest, q->domain_limit);
	q->dest_rates = dest_rates_json(cfg->destination_rate);
	if (q->dest_rates == NULL)
		q->dest_rates = xstrdup("{}");  /* config_load() checked it */
	make_owner(q->owner, sizeof(q->owner));
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->work, NULL);
	pthread_cond_init(&q->rec, NULL);
	pthread_cond_init(&q->idle, NULL);
	pthread_cond_init(&q->hk, NULL);
	q->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->wake_fd < 0) {
		snprintf(err, errlen, "queue: eventfd: %s", strerror(errno));
		free(q);
		return NULL;
	}
	q->sched = sched_new(q->domain_limit);
	pthread_attr_init(&q->worker_attr);
	pthread_attr_setdetachstate(&q->worker_attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&q->worker_attr, QUEUE_WORKER_STACK);
	if (pthread_create(&q->recorder, NULL, queue_recorder_main, q) != 0) {
		snprintf(err, errlen, "queue: cannot start the recorder thread");
		return NULL;
	}
	/* The floor of idle workers; the rest start when jobs need them. */
	int floor = q->nworkers < QUEUE_WORKERS_FLOOR ? q->nworkers : QUEUE_WORKERS_FLOOR;
	pthread_mutex_lock(&q->lock);
	q->nthreads = q->threads_peak = floor;
	pthread_mutex_unlock(&q->lock);
	if (queue_workers_start(q, floor) < floor) {
		snprintf(err, errlen, "queue: cannot start worker threads");
		return NULL;
	}
	if (pthread_create(&q->housekeeper, NULL, housekeeper_main, q) != 0 ||
	    pthread_create(&q->scheduler, NULL, scheduler_main, q) != 0) {
		snprintf(err, errlen, "queue: cannot start the scheduler");
		return NULL;
	}
	log_info("event=queue_started owner=%s workers=%d destination_concurrency=%d lease_time=%ld"
		 " worker_stack_kib=%d", q->owner, q->nworkers, q->domain_limit, q->lease_secs,
		 QUEUE_WORKER_STACK / 1024);
	return q;
}

/* Gives back the leases of jobs no worker started. */
static void release_pending(struct queue *q)
{
	pthread_mutex_lock(&q->lock);
	struct qjob *list = sched_drain(q->sched);
	q->pending = 0;
	pthread_mutex_unlock(&q->lock);
	int n = 0;
	for (struct qjob *j = list; j; j = j->next)
		n += j->n;
	if (n == 0)
		return;
	int64_t *ids = xcalloc((size_t)n, sizeof(*ids));
	const char **owners = xcalloc((size_t)n, sizeof(*owners));
	int k = 0;
	for (struct qjob *j = list; j; j = j->next)
		for (int i = 0; i < j->n; i++) {
			ids[k] = j->r[i].id;
			owners[k++] = j->owner;
		}
	char err[512];
	int rel = db_queue_release(q->p.pool, ids, owners, n, err, sizeof(err));
	if (rel < 0)
		log_warn("event=queue_release_failed recipients=%d error=\"%s\" note=\"their leases will expire\"", n, err);
	else
		log_info("event=queue_released recipients=%d", rel);
	free(ids);
	free(owners);
	while (list) {
		struct qjob *next = list->next;
		queue_job_free(q, list);
		list = next;
	}
}

int queue_free(struct queue *q)
{
	if (q == NULL)
		return 0;
	pthread_mutex_lock(&q->lock);
	q->stopping = 1;
	pthread_mutex_unlock(&q->lock);
	queue_wake_scheduler(q);
	pthread_join(q->scheduler, NULL);
	release_pending(q);

	/* Jobs in flight get shutdown_grace to finish. */
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += q->p.cfg->shutdown_grace;
	pthread_mutex_lock(&q->lock);
	q->workers_exit = 1;
	pthread_cond_broadcast(&q->work);
	while (q->inflight > 0)
		if (pthread_cond_timedwait(&q->idle, &q->lock, &until) == ETIMEDOUT)
			break;
	int left = q->inflight;
	pthread_mutex_unlock(&q->lock);
	if (left > 0) {
		log_warn("event=queue_stop_timeout inflight=%d note=\"leases will expire; another process retries\"", left);
		return -1;
	}
	/* The workers are detached: wait until the last one has left. */
	pthread_mutex_lock(&q->lock);
	while (q->nthreads > 0)
		pthread_cond_wait(&q->idle, &q->lock);
	int peak = q->threads_peak;
	q->recorder_exit = 1;
	pthread_cond_broadcast(&q->rec);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->recorder, NULL);
	/* The housekeeper renewed the leases of the jobs that were finishing;
	 * everything is recorded now. */
	pthread_mutex_lock(&q->lock);
	q->housekeeper_exit = 1;
	pthread_cond_broadcast(&q->hk);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->housekeeper, NULL);

	close(q->wake_fd);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->work);
	pthread_cond_destroy(&q->rec);
	pthread_cond_destroy(&q->idle);
	pthread_cond_destroy(&q->hk);
	free(q->dest_rates);
	pthread_attr_destroy(&q->worker_attr);
	sched_free(q->sched);
	log_info("event=queue_stopped owner=%s worker_threads_peak=%d", q->owner, peak);
	free(q);
	return 0;
}
