/*
 * committer.c - group commit (see committer.h).
 *
 * Batching is adaptive: the thread takes whatever is queued when it becomes
 * free, so while one transaction commits the next group gathers by itself,
 * and a lone request on an idle server pays no waiting.  (Lingering for
 * more arrivals was measured: 1 ms of it cost a fifth of the throughput at
 * 32 clients, because the group that would arrive is already queued.)
 *
 * MF_COMMIT_THREADS threads, each with its own connection, take groups from
 * the one queue: while one group's transaction writes or waits for its
 * fsync the next group is already being written by another thread, and
 * PostgreSQL's own group commit can flush several of them with one fsync.
 * Only the first thread takes small queues; the others join in when at
 * least MF_COMMIT_SPILL_MSGS messages wait (batch requests).  Measured on
 * 2 cores: a second thread took batches from 12.7k to 16.5k messages/s
 * but cost single requests ~5% (smaller groups), so it stays out of their
 * way.
 * Units with the same idempotency key never run at the same time (submit
 * refuses the second one while the first is queued or in any group).
 *
 * Groups are pipelined (fly_loop): the moment a group's results are in,
 * what queued meanwhile goes out as the next group, and only then are the
 * first group's requests answered, so the server starts the next
 * transaction while this thread answers (one group in flight at a time:
 * each is its own implicit transaction, its Idempotency-Keys claimed
 * inside it; db/accept.c).
 *
 * Failure handling: a group whose transaction fails with the connection
 * still good is rolled back and its units are retried one per transaction,
 * so a unit the database refuses fails alone.  A lost connection answers
 * the group DB_WRITE_UNAVAILABLE; the next group reconnects.  If the
 * connection breaks during the commit the outcome is unknown to us; the units
 * are answered unavailable, and a client that retries with its
 * Idempotency-Key gets the stored answer if the commit did happen.
 */
#include "db/committer.h"

#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/internal.h"
#include "util/limits.h"
#include "util/log.h"
#include "util/xmalloc.h"

struct db_committer;

/* One committer thread and its connection. */
struct committer_worker {
	struct db_committer *c;
	pthread_t thread;
	PGconn *conn;
	struct db_write *active[MF_COMMIT_BATCH_MAX]; /* the units taken, not yet decided */
	int nactive; /* under c->mu */
	struct db_group *g;                        /* the pipelined group in flight, or NULL */
	struct db_write *fly[MF_COMMIT_BATCH_MAX]; /* its units */
	int nfly;
	struct timespec sent;                      /* when it was sent */
	pthread_cond_t cv; /* signalled when this thread has work (under c->mu) */
	int waiting;       /* blocked on cv */
};

struct db_committer {
	pthread_mutex_t mu;
	char *conninfo;
	struct db_write *head, *tail;
	int queued;
	int queued_msgs; /* messages in the queued units */
	int stop;
	struct committer_worker workers[MF_COMMIT_THREADS];
};

static int same_key(const struct db_write *a, const struct db_write *b)
{
	return a->idem_key && b->idem_key && a->api_key_id == b->api_key_id && strcmp(a->idem_key, b->idem_key) == 0;
}

/* May thread k take what is queued?  The first takes any queue, the others
 * only a long one (see the top of the file). */
static int has_work(const struct db_committer *c, int k)
{
	return c->head != NULL && (k == 0 || c->queued_msgs >= MF_COMMIT_SPILL_MSGS);
}

/*
 * Wakes one waiting thread that may take the queue, under c->mu.  A
 * broadcast on every submit woke the idle second thread for nothing once
 * per request (measured: ~1 context switch per request, ~10% of the
 * process's CPU at 32 clients); a busy thread needs no signal, it looks
 * at the queue before it waits.
 */
static void wake_one(struct db_committer *c)
{
	for (int k = 0; k < MF_COMMIT_THREADS; k++)
		if (c->workers[k].waiting && has_work(c, k)) {
			pthread_cond_signal(&c->workers[k].cv);
			return;
		}
}

int db_committer_submit(struct db_committer *c, struct db_write *w)
{
	w->next = NULL;
	w->status = DB_WRITE_OK;
	pthread_mutex_lock(&c->mu);
	if (c->stop) {
		pthread_mutex_unlock(&c->mu);
		w->status = DB_WRITE_UNAVAILABLE;
		return -1;
	}
	if (w->idem_key) {
		int busy = 0;
		for (struct db_write *q = c->head; q && !busy; q = q->next)
			busy = same_key(q, w);
		for (int k = 0; k < MF_COMMIT_THREADS && !busy; k++)
			for (int i = 0; i < c->workers[k].nactive && !busy; i++)
				busy = same_key(c->workers[k].active[i], w);
		if (busy) {
			pthread_mutex_unlock(&c->mu);
			w->status = DB_WRITE_IDEM_IN_FLIGHT;
			return -1;
		}
	}
	if (c->tail)
		c->tail->next = w;
	else
		c->head = w;
	c->tail = w;
	c->queued++;
	c->queued_msgs += w->nmsgs;
	wake_one(c);
	pthread_mutex_unlock(&c->mu);
	return 0;
}

static void set_all(struct db_write **w, int n, enum db_write_status st, const char *err)
{
	for (int i = 0; i < n; i++) {
		w[i]->status = st;
		snprintf(w[i]->err, sizeof(w[i]->err), "%s", err);
	}
}

static int conn_ok(struct committer_worker *c)
{
	return c->conn && PQstatus(c->conn) == CONNECTION_OK;
}

static void conn_drop(struct committer_worker *c)
{
	PQfinish(c->conn);
	c->conn = NULL;
}

/* An idle connection the server closed (e.g. on restart) shows up as a
 * readable socket: notice it before writing, when retrying is still safe. */
static int conn_alive(struct committer_worker *c)
{
	if (!conn_ok(c))
		return 0;
	struct pollfd pfd = { .fd = PQsocket(c->conn), .events = POLLIN };
	int r = poll(&pfd, 1, 0);
	if (r == 0)
		return 1;
	if (r < 0 || (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)))
		return 0;
	return PQconsumeInput(c->conn) && conn_ok(c);
}

/* A connection for the next group: the one in use if the server has not
 * closed it, else a new one with its statements prepared.  0, or -1 with
 * err set. */
static int conn_ready(struct committer_worker *c, char *err, size_t errlen)
{
	if (conn_alive(c))
		return 0;
	conn_drop(c);
	c->conn = db_connect(c->c->conninfo, err, errlen);
	if (c->conn && db_messages_prepare(c->conn, err, errlen) < 0)
		conn_drop(c);
	return c->conn ? 0 : -1;
}

static void answer(struct db_write **w, int n)
{
	/* Outside the lock: done() may free the unit. */
	for (int i = 0; i < n; i++)
		w[i]->done(w[i]);
}

/*
 * Under c->mu: moves the queued units (up to MF_COMMIT_BATCH_MAX) into w
 * and returns how many.  They are listed in wk->active, where submit looks
 * for an Idempotency-Key in flight, until the next group is taken or the
 * list is cleared before they are answered.
 */
static int take_group(struct committer_worker *wk, struct db_write **w)
{
	struct db_committer *c = wk->c;
	int n = 0;
	while (c->head && n < MF_COMMIT_BATCH_MAX) {
		struct db_write *x = c->head;
		c->head = x->next;
		w[n++] = x;
		c->queued--;
		c->queued_msgs -= x->nmsgs;
	}
	if (c->head == NULL)
		c->tail = NULL;
	else
		wake_one(c); /* what this group left may be another's */
	memcpy(wk->active, w, (size_t)n * sizeof(*w));
	wk->nactive = n;
	return n;
}

static void clear_active(struct committer_worker *wk)
{
	pthread_mutex_lock(&wk->c->mu);
	wk->nactive = 0;
	pthread_mutex_unlock(&wk->c->mu);
}

/* Sends w as the group in flight.  -1 when it could not be sent: the
 * units are set unavailable (not answered) and the connection dropped. */
static int fly_send(struct committer_worker *wk, struct db_write **w, int n)
{
	char err[512] = "";
	if (conn_ready(wk, err, sizeof(err)) == 0) {
		wk->g = db_group_send(wk->conn, w, n, err, sizeof(err));
		if (wk->g != NULL) {
			memcpy(wk->fly, w, (size_t)n * sizeof(*w));
			wk->nfly = n;
			clock_gettime(CLOCK_MONOTONIC, &wk->sent);
			return 0;
		}
		conn_drop(wk);
	}
	log_warn_limited("event=commit_unavailable units=%d error=\"%s\"", n, err);
	set_all(w, n, DB_WRITE_UNAVAILABLE, err);
	return -1;
}

/*
 * Reads the outcome of the group in flight; every unit's status is set on
 * return.  The connection lost: unavailable.  Refused by the database (its
 * transaction rolled back): each unit again on its own, so that the one
 * refused fails alone.
 */
static void fly_finish(struct committer_worker *wk)
{
	char err[512] = "";
	int n = wk->nfly;
	int rc = db_group_finish(wk->g, err, sizeof(err));
	db_group_free(wk->g);
	wk->g = NULL;
	if (log_enabled(MF_LOG_DEBUG)) {
		struct timespec t;
		clock_gettime(CLOCK_MONOTONIC, &t);
		log_debug("event=group_commit units=%d ms=%.2f ok=%d", n,
			  (double)(t.tv_sec - wk->sent.tv_sec) * 1e3 + (double)(t.tv_nsec - wk->sent.tv_nsec) / 1e6,
			  rc == 0);
	}
	if (rc == 0)
		return;
	if (rc == -2 || !conn_ok(wk)) {
		log_warn_limited("event=commit_unavailable units=%d error=\"%s\"", n, err);
		set_all(wk->fly, n, DB_WRITE_UNAVAILABLE, err);
		conn_drop(wk);
		return;
	}
	if (n == 1) {
		log_warn("event=commit_refused error=\"%s\"", err);
		set_all(wk->fly, n, DB_WRITE_FAILED, err);
		return;
	}
	log_warn("event=group_commit_failed units=%d error=\"%s\" note=\"retrying one by one\"", n, err);
	struct db_write **w = xcalloc((size_t)n, sizeof(*w));
	memcpy(w, wk->fly, (size_t)n * sizeof(*w));
	for (int i = 0; i < n; i++)
		if (fly_send(wk, &w[i], 1) == 0)
			fly_finish(wk);
	free(w);
}

/*
 * While work keeps coming, one group is always in flight: when a group's
 * results are in, what queued meanwhile is sent as the next group before
 * the first is answered, so the server never waits for the answering
 * (measured at 32 clients: ~80 us a group of 16; docs/benchmarks.md).
 */
static void fly_loop(struct committer_worker *wk, int k)
{
	struct db_committer *c = wk->c;
	struct db_write *next[MF_COMMIT_BATCH_MAX], *done[MF_COMMIT_BATCH_MAX];
	while (wk->g) {
		/* Copied first: a refused group is retried through wk->fly. */
		int ndone = wk->nfly;
		memcpy(done, wk->fly, (size_t)ndone * sizeof(*done));
		fly_finish(wk);
		int n = 0;
		pthread_mutex_lock(&c->mu);
		if (has_work(c, k))
			n = take_group(wk, next);
		else
			wk->nactive = 0;
		pthread_mutex_unlock(&c->mu);
		if (n > 0 && fly_send(wk, next, n) < 0) {
			clear_active(wk);
			answer(done, ndone);
			answer(next, n);
			return;
		}
		answer(done, ndone);
	}
}

static void *committer_main(void *arg)
{
	struct committer_worker *wk = arg;
	struct db_committer *c = wk->c;
	int k = (int)(wk - c->workers);
	struct db_write *w[MF_COMMIT_BATCH_MAX];
	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (!has_work(c, k) && !c->stop) {
			wk->waiting = 1;
			pthread_cond_wait(&wk->cv, &c->mu);
			wk->waiting = 0;
		}
		if (c->head == NULL)
			break;
		int n = take_group(wk, w);
		pthread_mutex_unlock(&c->mu);
		if (fly_send(wk, w, n) == 0) {
			fly_loop(wk, k);
		} else {
			clear_active(wk);
			answer(w, n);
		}
		pthread_mutex_lock(&c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

struct db_committer *db_committer_new(const char *conninfo)
{
	struct db_committer *c = xcalloc(1, sizeof(*c));
	pthread_mutex_init(&c->mu, NULL);
	c->conninfo = xstrdup(conninfo);
	for (int k = 0; k < MF_COMMIT_THREADS; k++) {
		c->workers[k].c = c;
		pthread_cond_init(&c->workers[k].cv, NULL);
	}
	/* Under the lock: no thread may look at a worker not yet set up. */
	pthread_mutex_lock(&c->mu);
	for (int k = 0; k < MF_COMMIT_THREADS; k++) {
		if (pthread_create(&c->workers[k].thread, NULL, committer_main, &c->workers[k]) != 0) {
			log_error("event=committer_thread_failed");
			abort();
		}
	}
	pthread_mutex_unlock(&c->mu);
	return c;
}

void db_committer_free(struct db_committer *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = 1;
	for (int k = 0; k < MF_COMMIT_THREADS; k++)
		pthread_cond_signal(&c->workers[k].cv);
	pthread_mutex_unlock(&c->mu);
	for (int k = 0; k < MF_COMMIT_THREADS; k++) {
		pthread_join(c->workers[k].thread, NULL);
		conn_drop(&c->workers[k]);
		pthread_cond_destroy(&c->workers[k].cv);
	}
	pthread_mutex_destroy(&c->mu);
	free(c->conninfo);
	free(c);
}
