/*
 * pool.c - a thread-safe pool of libpq connections (see db.h, internal.h).
 *
 * Connections are opened on demand up to the pool size.  A borrower that
 * finds the pool exhausted waits.  An idle connection whose socket became
 * readable (the server closed it, e.g. on restart) is checked with
 * PQconsumeInput before it is handed out, so a database restart costs no
 * failed request; a connection that broke during use is closed on return.
 *
 * Every connection in the process is opened by db_connect(), which also
 * notices an outage: its first failed attempt starts one, the next success
 * ends it with one "event=db_recovered outage_ms=N" line (N counted from
 * that first failure).  The warnings callers log meanwhile are rate-limited
 * at their call sites (log_warn_limited).  Messages libpq would print to
 * stderr itself (notices, and a FATAL the server sends an idle connection
 * when it shuts down) go through the logger instead.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/internal.h"
#include "util/log.h"
#include "util/xmalloc.h"

struct db_pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	char *conninfo;
	int size;
	int open;
	int nidle;
	PGconn **idle;
};

struct db_pool *db_pool_new(const char *conninfo, int size)
{
	struct db_pool *p = xcalloc(1, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->conninfo = xstrdup(conninfo);
	p->size = size > 0 ? size : 1;
	p->idle = xcalloc((size_t)p->size, sizeof(PGconn *));
	return p;
}

void db_pool_free(struct db_pool *p)
{
	if (p == NULL)
		return;
	for (int i = 0; i < p->nidle; i++)
		PQfinish(p->idle[i]);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p->idle);
	free(p->conninfo);
	free(p);
}

void db_pool_stats(struct db_pool *p, int *open, int *busy)
{
	pthread_mutex_lock(&p->lock);
	*open = p->open;
	*busy = p->open - p->nidle;
	pthread_mutex_unlock(&p->lock);
}

void db_set_error(PGconn *conn, const PGresult *res, char *err, size_t errlen)
{
	const char *m = res ? PQresultErrorMessage(res) : NULL;
	if (m == NULL || *m == '\0')
		m = conn ? PQerrorMessage(conn) : "no connection";
	snprintf(err, errlen, "%s", m);
	for (char *s = err; *s; s++)
		if (*s == '\n' || *s == '\r')
			*s = (s[1] ? ' ' : '\0');
}

int db_res_ok(const PGresult *res, ExecStatusType want)
{
	return res != NULL && PQresultStatus(res) == want;
}

int db_res_int64(PGconn *conn, PGresult *res, int64_t *v, char *err, size_t errlen)
{
	int rc = -1;
	if (!db_res_ok(res, PGRES_TUPLES_OK)) {
		db_set_error(conn, res, err, errlen);
	} else if (PQntuples(res) == 0) {
		rc = 0;
	} else {
		*v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		rc = 1;
	}
	PQclear(res);
	return rc;
}

int db_exec(PGconn *conn, const char *sql, char *err, size_t errlen)
{
	PGresult *res = PQexec(conn, sql);
	int ok = db_res_ok(res, PGRES_COMMAND_OK) || db_res_ok(res, PGRES_TUPLES_OK);
	if (!ok)
		db_set_error(conn, res, err, errlen);
	PQclear(res);
	return ok ? 0 : -1;
}

/* Monotonic ms of the first failed connection attempt of the outage under
 * way; 0 while the database answers. */
static _Atomic long outage_since;

static long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L + 1;
}

static void note_connect(int ok)
{
	if (!ok) {
		long none = 0;
		atomic_compare_exchange_strong(&outage_since, &none, mono_ms());
		return;
	}
	if (atomic_load_explicit(&outage_since, memory_order_relaxed) == 0)
		return;
	long since = atomic_exchange(&outage_since, 0);
	if (since != 0)
		log_warn("event=db_recovered outage_ms=%ld", mono_ms() - since);
}

/* libpq's notice receiver: the logger instead of libpq's own fprintf. */
static void on_notice(void *arg, const PGresult *res)
{
	(void)arg;
	const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	char msg[1024];
	db_set_error(NULL, res, msg, sizeof(msg));
	if (sev == NULL)
		sev = "NOTICE";
	if (strcmp(sev, "WARNING") == 0 || strcmp(sev, "ERROR") == 0 || strcmp(sev, "FATAL") == 0 ||
	    strcmp(sev, "PANIC") == 0)
		log_warn_limited("event=db_notice severity=%s message=%s", sev, msg);
	else
		log_debug("event=db_notice severity=%s message=%s", sev, msg);
}

PGconn *db_connect(const char *conninfo, char *err, size_t errlen)
{
	/* A short connect timeout keeps readiness checks and requests from
	 * hanging on an unreachable server; an explicit one in conninfo wins
	 * because libpq uses the last value given.  JIT is off: every query
	 * here is short, and a plan whose estimate crosses jit_above_cost
	 * (e.g. planned on stale statistics) was compiled on each execution,
	 * ~17 ms a time (measured in the group commit). */
	const char *keys[] = { "connect_timeout", "application_name", "options", "dbname", NULL };
	const char *vals[] = { "3", "mailferry", "-c jit=off", conninfo, NULL };
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	if (c == NULL || PQstatus(c) != CONNECTION_OK) {
		db_set_error(c, NULL, err, errlen);
		PQfinish(c);
		note_connect(0);
		return NULL;
	}
	note_connect(1);
	PQsetNoticeReceiver(c, on_notice, NULL);
	return c;
}

/* An idle connection the server has closed shows up as a readable socket. */
static int idle_conn_alive(PGconn *c)
{
	if (PQstatus(c) != CONNECTION_OK)
		return 0;
	struct pollfd pfd = { .fd = PQsocket(c), .events = POLLIN };
	int r = poll(&pfd, 1, 0);
	if (r == 0)
		return 1;
	if (r < 0 || (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)))
		return 0;
	if (!PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK)
		return 0;
	PGnotify *n;
	while ((n = PQnotifies(c)) != NULL)
		PQfreemem(n);
	return 1;
}

PGconn *db_conn_get(struct db_pool *p, char *err, size_t errlen)
{
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (p->nidle > 0) {
			PGconn *c = p->idle[--p->nidle];
			if (idle_conn_alive(c)) {
				pthread_mutex_unlock(&p->lock);
				return c;
			}
			PQfinish(c);
			p->open--;
		}
		if (p->open < p->size)
			break;
		pthread_cond_wait(&p->cond, &p->lock);
	}
	p->open++;
	pthread_mutex_unlock(&p->lock);

	PGconn *c = db_connect(p->conninfo, err, errlen);
	if (c == NULL) {
		pthread_mutex_lock(&p->lock);
		p->open--;
		pthread_cond_signal(&p->cond);
		pthread_mutex_unlock(&p->lock);
	}
	return c;
}

void db_conn_put(struct db_pool *p, PGconn *c)
{
	if (c == NULL)
		return;
	/* A connection left inside a transaction or broken is not reusable. */
	int reusable = PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) == PQTRANS_IDLE;
	pthread_mutex_lock(&p->lock);
	if (reusable) {
		p->idle[p->nidle++] = c;
	} else {
		PQfinish(c);
		p->open--;
	}
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
}
