/*
 * webhook_dispatch.c - the webhook dispatcher and its retry policy (see
 * webhook_dispatch.h).
 *
 * Threads: one listener turns NOTIFY mailferry_webhooks into a generation
 * bump on a condition variable; the senders claim when woken, and at least
 * once a second anyway (retries fall due without a NOTIFY).  Senders never
 * hold a lock while they talk to the database or the network.
 */
#include "hooks/webhook_dispatch.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db/webhooks.h"
#include "db/listen.h"
#include "hooks/webhook_http.h"
#include "hooks/webhook_sign.h"
#include "util/config.h"
#include "util/limits.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/xmalloc.h"

#define JITTER_FRACTION 0.1

double webhook_retry_delay(const struct schedule *s, int failures, long retry_after, double jitter)
{
	if (failures < 1 || failures > s->n)
		return -1;
	if (jitter < -1)
		jitter = -1;
	if (jitter > 1)
		jitter = 1;
	double d = (double)s->secs[failures - 1] * (1.0 + JITTER_FRACTION * jitter);
	if (retry_after >= 0) {
		/* RFC 9110 §10.2.3: the client ought to wait at least this long. */
		double ra = (double)(retry_after < MF_WEBHOOK_RETRY_AFTER_MAX ? retry_after : MF_WEBHOOK_RETRY_AFTER_MAX);
		if (ra > d)
			d = ra;
	}
	return d;
}

void webhook_decide(const struct schedule *s, int attempts_before, const struct webhook_http_result *r,
		    double jitter, struct webhook_decision *d)
{
	memset(d, 0, sizeof(*d));
	if (r->kind == WEBHOOK_HTTP_RESPONSE && r->status >= 200 && r->status <= 299) {
		d->status = "succeeded";
		return;
	}
	if (r->kind == WEBHOOK_HTTP_RESPONSE && r->status == 410) {
		d->status = "failed";
		d->gone = 1;
		return;
	}
	double delay = webhook_retry_delay(s, attempts_before + 1, r->retry_after, jitter);
	if (delay < 0) {
		d->status = "failed";
		return;
	}
	d->status = "pending";
	d->delay = delay;
}

struct webhook_dispatcher {
	const struct config *cfg;
	struct db_pool *pool;
	struct metrics *metrics;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	unsigned long gen;
	atomic_int stop; /* set by webhook_dispatcher_free; read unlocked by every thread */
	pthread_t listener;
	pthread_t senders[MF_WEBHOOK_SENDERS];
	int nsenders;
	int listener_started;
};

struct sender {
	struct webhook_dispatcher *d;
	char owner[128];
	unsigned seed;
};

static void wake_all(struct webhook_dispatcher *d)
{
	pthread_mutex_lock(&d->mu);
	d->gen++;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->mu);
}

static void *listener_main(void *arg)
{
	struct webhook_dispatcher *d = arg;
	struct db_listener *l = db_listener_new(d->cfg->database_url, "mailferry_webhooks");
	int down = 0;
	while (!d->stop) {
		int r = db_listener_wait(l, 500);
		if (r < 0) {
			if (!down)
				log_warn_limited("event=webhook_listen_failed note=\"polling every second until it is back\"");
			down = 1;
			for (int i = 0; i < 10 && !d->stop; i++)
				usleep(100000);
			continue;
		}
		down = 0;
		if (r > 0)
			wake_all(d);
	}
	db_listener_free(l);
	return NULL;
}

/* Waits until woken (gen changes), stopped, or 1 s passes. */
static void wait_for_work(struct webhook_dispatcher *d, unsigned long seen)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 1;
	pthread_mutex_lock(&d->mu);
	while (!d->stop && d->gen == seen)
		if (pthread_cond_timedwait(&d->cond, &d->mu, &ts) != 0)
			break;
	pthread_mutex_unlock(&d->mu);
}

static const char *kind_name(enum webhook_http_kind k)
{
	switch (k) {
	case WEBHOOK_HTTP_RESPONSE: return "response";
	case WEBHOOK_HTTP_REFUSED: return "refused";
	case WEBHOOK_HTTP_CONNECT: return "connect";
	case WEBHOOK_HTTP_TIMEOUT: return "timeout";
	case WEBHOOK_HTTP_TLS: return "tls";
	case WEBHOOK_HTTP_ABORTED: return "aborted";
	case WEBHOOK_HTTP_ERROR: return "error";
	}
	return "error";
}

static void send_one(struct sender *s, struct db_webhook_job *job)
{
	struct webhook_dispatcher *d = s->d;
	char sig[2 * WEBHOOK_SIG_LEN + 2], err[512];
	struct webhook_http_result res;
	long ts = (long)time(NULL);
	if (webhook_signature_header(job->secret, job->old_secret, job->msg_id, ts, job->body, job->bodylen, sig,
				     sizeof(sig)) < 0) {
		memset(&res, 0, sizeof(res));
		res.kind = WEBHOOK_HTTP_ERROR;
		res.retry_after = -1;
		snprintf(res.error, sizeof(res.error), "the endpoint's secret does not decode");
	} else {
		struct webhook_http_req req = {
			.url = job->url,
			.msg_id = job->msg_id,
			.timestamp = ts,
			.signature = sig,
			.body = job->body,
			.bodylen = job->bodylen,
			.timeout = d->cfg->webhook_timeout,
			.allow_private = d->cfg->webhook_allow_private,
			.stop = &d->stop,
		};
		webhook_http_post(&req, &res);
	}
	if (res.kind == WEBHOOK_HTTP_ABORTED) {
		if (db_webhook_release(d->pool, job->delivery_id, s->owner, err, sizeof(err)) < 0)
			log_warn("event=webhook_release_failed delivery=%" PRId64 " error=%s", job->delivery_id,
				 err);
		return;
	}
	double jitter = (double)rand_r(&s->seed) / RAND_MAX * 2.0 - 1.0;
	struct webhook_decision dec;
	webhook_decide(&d->cfg->webhook_retry_schedule, job->attempts, &res, jitter, &dec);
	int rc = db_webhook_finish(d->pool, job->delivery_id, s->owner, dec.status, res.status,
				   res.error[0] ? res.error : NULL, dec.delay, dec.gone,
				   (double)MF_WEBHOOK_DISABLE_AFTER, err, sizeof(err));
	if (rc < 0)
		log_warn("event=webhook_finish_failed delivery=%" PRId64 " error=%s note=\"the lease will expire and"
			 " the delivery be sent again\"", job->delivery_id, err);
	else if (rc == 0)
		log_warn("event=webhook_lease_lost delivery=%" PRId64, job->delivery_id);
	log_info("event=webhook_attempt webhook_id=%s delivery=%" PRId64 " endpoint=%" PRId64
		 " attempt=%d result=%s http_status=%d outcome=%s next_in=%.0f error=%s",
		 job->msg_id, job->delivery_id, job->webhook_id, job->attempts + 1, kind_name(res.kind), res.status,
		 dec.status, dec.delay, res.error[0] ? res.error : "-");
	if (d->metrics) {
		char labels[64];
		snprintf(labels, sizeof(labels), "outcome=\"%s\"", dec.status);
		metrics_counter_add(d->metrics, "mailferry_webhook_attempts_total", "Webhook delivery attempts.",
				    labels, 1);
	}
}

static void *sender_main(void *arg)
{
	struct sender *s = arg;
	struct webhook_dispatcher *d = s->d;
	/* Leases outlive the request (connect + total timeout) with margin
	 * for DNS; a late finish after a reclaim changes nothing. */
	long lease = d->cfg->webhook_timeout + 5;
	char err[512];
	int down = 0;
	while (!d->stop) {
		pthread_mutex_lock(&d->mu);
		unsigned long seen = d->gen;
		pthread_mutex_unlock(&d->mu);
		struct db_webhook_job job = { 0 };
		int n = db_webhook_claim(d->pool, s->owner, lease, 1, &job, err, sizeof(err));
		if (n < 0) {
			if (!down)
				log_warn_limited("event=webhook_claim_failed error=%s", err);
			down = 1;
			wait_for_work(d, seen);
			continue;
		}
		down = 0;
		if (n == 0) {
			wait_for_work(d, seen);
			continue;
		}
		send_one(s, &job);
		db_webhook_job_cleanup(&job);
	}
	free(s);
	return NULL;
}

/* Metrics collector: the outbox backlog, read at every /metrics render. */
static void collect_backlog(struct metrics *m, void *arg)
{
	struct webhook_dispatcher *d = arg;
	long pending, sending;
	char err[256];
	if (db_webhook_backlog(d->pool, &pending, &sending, err, sizeof(err)) < 0)
		return;
	metrics_gauge_set(m, "mailferry_webhook_deliveries", "Webhook deliveries by status.", "status=\"pending\"",
			  (double)pending);
	metrics_gauge_set(m, "mailferry_webhook_deliveries", "Webhook deliveries by status.", "status=\"sending\"",
			  (double)sending);
}

struct webhook_dispatcher *webhook_dispatcher_new(const struct config *cfg, struct db_pool *pool,
						  struct metrics *metrics)
{
	webhook_http_global_init();
	struct webhook_dispatcher *d = xcalloc(1, sizeof(*d));
	d->cfg = cfg;
	d->pool = pool;
	d->metrics = metrics;
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cond, NULL);
	char host[64] = "localhost";
	gethostname(host, sizeof(host) - 1);
	if (pthread_create(&d->listener, NULL, listener_main, d) == 0)
		d->listener_started = 1;
	for (int i = 0; i < MF_WEBHOOK_SENDERS; i++) {
		struct sender *s = xcalloc(1, sizeof(*s));
		s->d = d;
		snprintf(s->owner, sizeof(s->owner), "%s:%d:wh%d", host, (int)getpid(), i);
		s->seed = (unsigned)time(NULL) ^ (unsigned)getpid() ^ (unsigned)(i * 2654435761u);
		if (pthread_create(&d->senders[d->nsenders], NULL, sender_main, s) != 0) {
			free(s);
			break;
		}
		d->nsenders++;
	}
	if (metrics)
		metrics_add_collector(metrics, collect_backlog, d);
	log_info("event=webhooks_started senders=%d timeout=%ld allow_private=%s", d->nsenders,
		 cfg->webhook_timeout, cfg->webhook_allow_private ? "yes" : "no");
	return d;
}

void webhook_dispatcher_free(struct webhook_dispatcher *d)
{
	if (d == NULL)
		return;
	pthread_mutex_lock(&d->mu);
	d->stop = 1;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->mu);
	for (int i = 0; i < d->nsenders; i++)
		pthread_join(d->senders[i], NULL);
	if (d->listener_started)
		pthread_join(d->listener, NULL);
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->mu);
	free(d);
}
