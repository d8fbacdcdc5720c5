/*
 * queue.c - the delivery queue's SQL (see queue.h): dedicated sessions with
 * LISTEN and the owner registration, the claim under a lease, the outcome
 * recorder, the lease reaper and the release of unstarted work.
 * Parameterised queries only.
 *
 * Batches of outcomes travel as one jsonb parameter expanded with
 * jsonb_to_recordset(), so a batch of any size is one UPDATE.  Free text
 * (SMTP replies) is reduced to printable ASCII before it is stored: it
 * comes from remote servers and must not make a batch fail on bad UTF-8.
 */
#include "db/queue.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db/internal.h"
#include "util/buf.h"
#include "util/json_escape.h"
#include "util/log.h"
#include "util/rand.h"
#include "util/xmalloc.h"

/* Record batches are bounded by the caller; this caps their JSON. */
#define QUEUE_JSON_MAX (64u * 1024u * 1024u)

struct db_session {
	char *conninfo;
	char *channel;  /* NULL: not listening */
	char *owner;    /* NULL: not registered (db_session_register) */
	int64_t lock_key;  /* the advisory lock this connection holds for owner */
	int attempts;      /* connection attempts so far */
	long connected_ms; /* monotonic time of the last connection made */
	PGconn *conn;
	db_dest_feedback_fn fb;
	void *fb_arg;
};

static long mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

void db_session_set_feedback(struct db_session *s, db_dest_feedback_fn fn, void *arg)
{
	s->fb = fn;
	s->fb_arg = arg;
}

struct db_session *db_session_new(const char *conninfo)
{
	struct db_session *s = xcalloc(1, sizeof(*s));
	s->conninfo = xstrdup(conninfo);
	return s;
}

void db_session_free(struct db_session *s)
{
	if (s == NULL)
		return;
	PQfinish(s->conn);
	free(s->conninfo);
	free(s->channel);
	free(s->owner);
	free(s);
}

static int do_listen(struct db_session *s, char *err, size_t errlen)
{
	char *id = PQescapeIdentifier(s->conn, s->channel, strlen(s->channel));
	if (id == NULL) {
		db_set_error(s->conn, NULL, err, errlen);
		return -1;
	}
	char *sql = xasprintf("LISTEN %s", id);
	PQfreemem(id);
	int rc = db_exec(s->conn, sql, err, errlen);
	free(sql);
	return rc;
}

/* Runs sql with text params, expecting no rows or some; 0 or -1 (err set).
 * With out, the first value of the first row is copied there. */
static int exec_params(PGconn *c, const char *sql, int n, const char *const *params, char *out, size_t outlen,
		       char *err, size_t errlen)
{
	PGresult *res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
	int ok = db_res_ok(res, PGRES_TUPLES_OK) || db_res_ok(res, PGRES_COMMAND_OK);
	if (!ok)
		db_set_error(c, res, err, errlen);
	else if (out != NULL)
		snprintf(out, outlen, "%s", PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "");
	PQclear(res);
	return ok ? 0 : -1;
}

/* The registry row of s->owner, pointing to this connection's lock: written
 * at registration and refreshed (seen_at) by every reaper round; written
 * again if a reaper deleted it meanwhile. */
static int owner_upsert(struct db_session *s, char *err, size_t errlen)
{
	char key[32];
	snprintf(key, sizeof(key), "%" PRId64, s->lock_key);
	const char *params[] = { s->owner, key };
	return exec_params(s->conn,
		"INSERT INTO queue_owners (owner, lock_key, backend_pid) VALUES ($1, $2::bigint, pg_backend_pid())"
		" ON CONFLICT (owner) DO UPDATE SET lock_key = EXCLUDED.lock_key, backend_pid = EXCLUDED.backend_pid,"
		"   seen_at = now(), registered_at = CASE WHEN queue_owners.lock_key = EXCLUDED.lock_key"
		"                                         THEN queue_owners.registered_at ELSE now() END",
		2, params, NULL, 0, err, errlen);
}

/* On a new connection: takes a session-level advisory lock on a fresh
 * random key (held until this connection ends), then registers it. */
static int do_register(struct db_session *s, char *err, size_t errlen)
{
	for (int i = 0; i < 3; i++) {
		int64_t k;
		rand_id_bytes(&k, sizeof(k));
		char key[32], got[8];
		snprintf(key, sizeof(key), "%" PRId64, k);
		const char *params[] = { key };
		if (exec_params(s->conn, "SELECT pg_try_advisory_lock($1::bigint)", 1, params, got, sizeof(got), err,
				errlen) < 0)
			return -1;
		if (strcmp(got, "t") == 0) {
			s->lock_key = k;
			return owner_upsert(s, err, errlen);
		}
	}
	snprintf(err, errlen, "no free advisory lock key for the owner registration");
	return -1;
}

/* The live connection, re-made (re-LISTENed, re-registered) when it broke. */
static PGconn *session_conn(struct db_session *s, char *err, size_t errlen)
{
	if (s->conn != NULL && PQstatus(s->conn) == CONNECTION_OK)
		return s->conn;
	PQfinish(s->conn);
	s->attempts++;
	s->conn = db_connect(s->conninfo, err, errlen);
	if (s->conn == NULL)
		return NULL;
	if ((s->channel != NULL && do_listen(s, err, errlen) < 0) ||
	    (s->owner != NULL && do_register(s, err, errlen) < 0)) {
		PQfinish(s->conn);
		s->conn = NULL;
		return NULL;
	}
	s->connected_ms = mono_ms();
	return s->conn;
}

/* After a failed statement: drop the connection when it is broken, else
 * leave any aborted transaction. */
static void session_after_error(struct db_session *s)
{
	if (s->conn == NULL)
		return;
	if (PQstatus(s->conn) != CONNECTION_OK) {
		PQfinish(s->conn);
		s->conn = NULL;
	} else if (PQtransactionStatus(s->conn) != PQTRANS_IDLE) {
		PQclear(PQexec(s->conn, "ROLLBACK"));
	}
}

int db_session_listen(struct db_session *s, const char *channel, char *err, size_t errlen)
{
	free(s->channel);
	s->channel = xstrdup(channel);
	if (s->conn != NULL && PQstatus(s->conn) == CONNECTION_OK)
		return do_listen(s, err, errlen);
	return session_conn(s, err, errlen) ? 0 : -1;
}

int db_session_register(struct db_session *s, const char *owner, char *err, size_t errlen)
{
	free(s->owner);
	s->owner = xstrdup(owner);
	if (s->conn != NULL && PQstatus(s->conn) == CONNECTION_OK)
		return do_register(s, err, errlen);
	return session_conn(s, err, errlen) ? 0 : -1;
}

int db_session_unregister(struct db_session *s, char *err, size_t errlen)
{
	if (s->owner == NULL)
		return 0;
	int rc = -1;
	PGconn *c = session_conn(s, err, errlen);
	if (c != NULL) {
		char key[32];
		snprintf(key, sizeof(key), "%" PRId64, s->lock_key);
		const char *params[] = { s->owner, key };
		rc = exec_params(c,
			"WITH d AS (DELETE FROM queue_owners WHERE owner = $1 AND lock_key = $2::bigint)"
			" SELECT pg_advisory_unlock($2::bigint)",
			2, params, NULL, 0, err, errlen);
	}
	free(s->owner);
	s->owner = NULL;
	return rc;
}

static int drain_notifies(PGconn *c)
{
	int n = 0;
	PGnotify *nf;
	while ((nf = PQnotifies(c)) != NULL) {
		PQfreemem(nf);
		n++;
	}
	return n;
}

int db_session_wait(struct db_session *s, int wake_fd, long timeout_ms)
{
	char err[256];
	PGconn *c = session_conn(s, err, sizeof(err));
	if (c == NULL) {
		log_warn_limited("event=db_session_down error=\"%s\"", err);
		struct pollfd w = { .fd = wake_fd, .events = POLLIN };
		int r = poll(&w, wake_fd >= 0 ? 1 : 0, (int)(timeout_ms < 1000 ? timeout_ms : 1000));
		return r > 0 ? 2 : -1;
	}
	/* Notifications may have arrived with the results of earlier queries. */
	if (!PQconsumeInput(c)) {
		session_after_error(s);
		return -1;
	}
	if (drain_notifies(c) > 0)
		return 1;
	struct pollfd p[2] = { { .fd = PQsocket(c), .events = POLLIN }, { .fd = wake_fd, .events = POLLIN } };
	int r = poll(p, wake_fd >= 0 ? 2 : 1, (int)(timeout_ms < 0 ? 0 : timeout_ms));
	if (r < 0)
		return errno == EINTR ? 0 : -1;
	if (r == 0)
		return 0;
	if (p[0].revents) {
		if (!PQconsumeInput(c)) {
			session_after_error(s);
			return -1;
		}
		if (drain_notifies(c) > 0)
			return 1;
	}
	if (wake_fd >= 0 && p[1].revents)
		return 2;
	return 0;
}

int db_queue_claim(struct db_session *s, const char *owner, long lease_secs, int limit,
		   const struct db_claim_opts *opts, void (*fn)(const struct db_claim_row *row, void *arg),
		   void *arg, char *err, size_t errlen)
{
	PGconn *c = session_conn(s, err, errlen);
	if (c == NULL)
		return -1;
	char lease[32], lim[32], initial[16], max[16];
	snprintf(lease, sizeof(lease), "%ld", lease_secs);
	snprintf(lim, sizeof(lim), "%d", limit);
	snprintf(initial, sizeof(initial), "%d", opts ? opts->initial : 0);
	snprintf(max, sizeof(max), "%d", opts ? opts->max : 0);
	const char *params[] = { owner, lease, lim, opts && opts->verp ? "t" : "f", initial, max,
				 opts && opts->rates_json ? opts->rates_json : "{}" };
	/* DESIGN.md "The claim": mf_queue_claim (db/functions.sql) walks the
	 * partial index recipients_due_idx, skips rows another claimer holds
	 * and destinations without room, so two claimers never get the same
	 * row nor together more than a destination's room; it also joins the
	 * messages, in its own snapshot (see there).  Results are binary
	 * (text columns arrive as raw bytes, the body as raw bytea); the body
	 * is sent once per message. */
	PGresult *res = PQexecParams(c,
		"SELECT c.id::text, c.message_id::text, c.email, c.domain, c.attempts::text, c.age_secs::text,"
		"       c.mail_from, c.body, c.has_body::text"
		"  FROM mf_queue_claim($1, $2::bigint, $3::int, $4::boolean, $5::int, $6::int, $7::jsonb) c"
		" ORDER BY c.message_id, c.domain, c.id",
		7, NULL, params, NULL, NULL, 1);
	if (!db_res_ok(res, PGRES_TUPLES_OK)) {
		db_set_error(c, res, err, errlen);
		PQclear(res);
		session_after_error(s);
		return -1;
	}
	int n = PQntuples(res);
	for (int i = 0; i < n; i++) {
		struct db_claim_row row = {
			.id = strtoll(PQgetvalue(res, i, 0), NULL, 10),
			.message_id = PQgetvalue(res, i, 1),
			.email = PQgetvalue(res, i, 2),
			.domain = PQgetvalue(res, i, 3),
			.attempts = (int)strtol(PQgetvalue(res, i, 4), NULL, 10),
			.age_secs = strtol(PQgetvalue(res, i, 5), NULL, 10),
			.mail_from = PQgetvalue(res, i, 6),
			.body = PQgetisnull(res, i, 7) ? NULL : PQgetvalue(res, i, 7),
			.body_len = PQgetisnull(res, i, 7) ? 0 : (size_t)PQgetlength(res, i, 7),
			.has_body = PQgetvalue(res, i, 8)[0] == 't',
		};
		fn(&row, arg);
	}
	PQclear(res);
	return n;
}

int db_queue_next_due(struct db_session *s, const struct db_claim_opts *opts, long *ms, char *err,
		      size_t errlen)
{
	PGconn *c = session_conn(s, err, errlen);
	if (c == NULL)
		return -1;
	char initial[16], max[16], poll[16];
	snprintf(initial, sizeof(initial), "%d", opts ? opts->initial : 0);
	snprintf(max, sizeof(max), "%d", opts ? opts->max : 0);
	snprintf(poll, sizeof(poll), "%d", DB_QUEUE_POLL_MS);
	const char *params[] = { opts && opts->verp ? "t" : "f", initial, max,
				 opts && opts->rates_json ? opts->rates_json : "{}", poll };
	PGresult *res = PQexecParams(c, "SELECT mf_queue_next_due($1::boolean, $2::int, $3::int, $4::jsonb, $5::int)",
				     5, NULL, params, NULL, NULL, 0);
	if (!db_res_ok(res, PGRES_TUPLES_OK)) {
		db_set_error(c, res, err, errlen);
		PQclear(res);
		session_after_error(s);
		return -1;
	}
	*ms = PQgetisnull(res, 0, 0) ? -1 : strtol(PQgetvalue(res, 0, 0), NULL, 10);
	if (*ms < -1 || (*ms == -1 && !PQgetisnull(res, 0, 0)))
		*ms = 0;  /* overdue */
	PQclear(res);
	return 0;
}

/* Appends s as a JSON string (printable ASCII only; see the header): tabs
 * become spaces and other bytes outside printable ASCII '?'. */
static void json_str(struct buf *b, const char *s)
{
	if (s == NULL || *s == '\0') {
		buf_puts(b, "null");
		return;
	}
	char *t = xstrdup(s);
	for (unsigned char *p = (unsigned char *)t; *p; p++)
		if (*p < 0x20 || *p >= 0x7f)
			*p = *p == '\t' ? ' ' : '?';
	json_escape(b, t, strlen(t), 0);
	free(t);
}

static void outcomes_json(struct buf *b, const struct db_outcome *o, int n)
{
	buf_putc(b, '[');
	for (int i = 0; i < n; i++) {
		const struct db_outcome *x = &o[i];
		buf_printf(b, "%s{\"i\":%" PRId64 ",\"o\":", i ? "," : "", x->id);
		json_str(b, x->lease_owner);
		buf_puts(b, ",\"s\":");
		json_str(b, x->status);
		buf_printf(b, ",\"d\":%ld,\"c\":", x->delay_ms);
		if (x->code > 0)
			buf_printf(b, "%d", x->code);
		else
			buf_puts(b, "null");
		buf_puts(b, ",\"e\":");
		json_str(b, x->enhanced);
		buf_puts(b, ",\"t\":");
		json_str(b, x->text);
		buf_puts(b, ",\"x\":");
		json_str(b, x->mx);
		buf_puts(b, ",\"tv\":");
		json_str(b, x->tls_version);
		buf_puts(b, ",\"tc\":");
		json_str(b, x->tls_cipher);
		buf_puts(b, ",\"ms\":");
		json_str(b, x->mta_sts);
		buf_puts(b, ",\"mf\":");
		json_str(b, x->mta_sts_failure);
		buf_printf(b, ",\"tf\":%s,\"bt\":", x->tls_verified < 0 ? "null" : x->tls_verified ? "true" : "false");
		json_str(b, x->bounce_type);
		buf_puts(b, ",\"bc\":");
		json_str(b, x->bounce_category);
		buf_printf(b, ",\"sp\":%s}", x->suppress ? "true" : "false");
	}
	buf_putc(b, ']');
}

/* Appends s to a PostgreSQL array literal element, quoted. */
static void array_elem(struct buf *b, int first, const char *s)
{
	if (!first)
		buf_putc(b, ',');
	buf_putc(b, '"');
	for (const char *p = s; *p; p++) {
		if (*p == '"' || *p == '\\')
			buf_putc(b, '\\');
		buf_putc(b, *p);
	}
	buf_putc(b, '"');
}

/* Runs a statement with one text parameter; 0 or -1 (err set). */
static int exec1(PGconn *c, const char *sql, const char *p1, char *err, size_t errlen)
{
	const char *params[] = { p1 };
	PGresult *res = PQexecParams(c, sql, 1, NULL, params, NULL, NULL, 0);
	int ok = db_res_ok(res, PGRES_TUPLES_OK) || db_res_ok(res, PGRES_COMMAND_OK);
	if (!ok)
		db_set_error(c, res, err, errlen);
	PQclear(res);
	return ok ? 0 : -1;
}

/* The message status summary for every message id in res column col,
 * in id order so that concurrent writers lock messages alike. */
static int refresh_messages(PGconn *c, PGresult *res, int col, char *err, size_t errlen)
{
	int n = PQntuples(res);
	if (n == 0)
		return 0;
	struct buf a;
	buf_init(&a, QUEUE_JSON_MAX);
	buf_putc(&a, '{');
	for (int i = 0; i < n; i++)
		array_elem(&a, i == 0, PQgetvalue(res, i, col));
	buf_putc(&a, '}');
	/* One UPDATE for the batch (db/functions.sql). */
	int rc = exec1(c, "SELECT mf_refresh_message_statuses($1::uuid[])", buf_cstr(&a), err, errlen);
	buf_cleanup(&a);
	return rc;
}

static int feedback_cmp(const void *a, const void *b)
{
	return strcmp(((const struct db_dest_feedback *)a)->domain, ((const struct db_dest_feedback *)b)->domain);
}

/*
 * The destination feedback of a batch, in the recording transaction
 * (db_session_set_feedback): per domain, the jobs that went well and those
 * throttled; the rows locked in domain order (two recorders lock alike),
 * the session's rule applied, the new state written back.  0 or -1.
 */
static int record_feedback(struct db_session *s, PGconn *c, const struct db_outcome *o, int n, char *err,
			   size_t errlen)
{
	struct db_dest_feedback *f = NULL;
	int nf = 0;
	for (int i = 0; i < n; i++) {
		if (o[i].domain == NULL || o[i].feedback == 0)
			continue;
		int j = 0;
		while (j < nf && strcmp(f[j].domain, o[i].domain) != 0)
			j++;
		if (j == nf) {
			f = xrealloc(f, (size_t)(nf + 1) * sizeof(*f));
			memset(&f[nf], 0, sizeof(*f));
			f[nf++].domain = o[i].domain;
		}
		if (o[i].feedback > 0) {
			f[j].ok++;
		} else {
			f[j].throttled++;
			f[j].last_code = o[i].code;
		}
	}
	if (nf == 0)
		return 0;
	qsort(f, (size_t)nf, sizeof(*f), feedback_cmp);
	struct buf a, js;
	buf_init(&a, QUEUE_JSON_MAX);
	buf_init(&js, QUEUE_JSON_MAX);
	buf_putc(&a, '{');
	for (int j = 0; j < nf; j++)
		array_elem(&a, j == 0, f[j].domain);
	buf_putc(&a, '}');
	const char *p1[] = { buf_cstr(&a) };
	int rc = -1;
	PGresult *res = PQexecParams(c,
		"SELECT domain, lim, backoff_secs, coalesce(paused_until > now(), false)::text, coalesce(ssthresh, 0)"
		" FROM destinations"
		" WHERE domain = ANY($1::text[]) ORDER BY domain FOR UPDATE",
		1, NULL, p1, NULL, NULL, 0);
	if (!db_res_ok(res, PGRES_TUPLES_OK)) {
		db_set_error(c, res, err, errlen);
		goto out;
	}
	for (int i = 0; i < PQntuples(res); i++)
		for (int j = 0; j < nf; j++)
			if (strcmp(f[j].domain, PQgetvalue(res, i, 0)) == 0) {
				f[j].known = 1;
				f[j].limit = strtod(PQgetvalue(res, i, 1), NULL);
				f[j].backoff_secs = strtol(PQgetvalue(res, i, 2), NULL, 10);
				f[j].paused = PQgetvalue(res, i, 3)[0] == 't';
				f[j].ssthresh = strtod(PQgetvalue(res, i, 4), NULL);
			}
	buf_putc(&js, '[');
	for (int j = 0; j < nf; j++) {
		s->fb(&f[j], s->fb_arg);
		buf_printf(&js, "%s{\"d\":", j ? "," : "");
		json_str(&js, f[j].domain);
		buf_printf(&js, ",\"l\":%.6f,\"s\":%.6f,\"b\":%ld,\"p\":%ld,\"c\":", f[j].limit,
			   f[j].ssthresh, f[j].backoff_secs, f[j].pause_secs);
		if (f[j].last_code > 0)
			buf_printf(&js, "%d}", f[j].last_code);
		else
			buf_puts(&js, "null}");
	}
	buf_putc(&js, ']');
	PQclear(res);
	const char *p2[] = { buf_cstr(&js) };
	res = PQexecParams(c,
		"INSERT INTO destinations AS d (domain, lim, ssthresh, backoff_secs, paused_until, last_code, updated_at)"
		" SELECT x.d, x.l, nullif(x.s, 0), x.b, CASE WHEN x.p > 0 THEN now() + x.p * interval '1 second' END, x.c, now()"
		"   FROM jsonb_to_recordset($1::jsonb) AS x(d text, l double precision, s double precision, b int, p bigint, c int)"
		"  ORDER BY x.d"
		" ON CONFLICT (domain) DO UPDATE SET lim = excluded.lim, ssthresh = excluded.ssthresh,"
		"    backoff_secs = excluded.backoff_secs,"
		"    paused_until = coalesce(excluded.paused_until, d.paused_until),"
		"    last_code = coalesce(excluded.last_code, d.last_code), updated_at = now()",
		1, NULL, p2, NULL, NULL, 0);
	if (!db_res_ok(res, PGRES_COMMAND_OK)) {
		db_set_error(c, res, err, errlen);
		goto out;
	}
	rc = 0;
out:
	PQclear(res);
	buf_cleanup(&a);
	buf_cleanup(&js);
	free(f);
	return rc;
}

int db_queue_record(struct db_session *s, const struct db_outcome *o, int n, int *applied,
		    char *err, size_t errlen)
{
	*applied = 0;
	if (n == 0)
		return 0;
	PGconn *c = session_conn(s, err, errlen);
	if (c == NULL)
		return -1;
	struct buf js;
	buf_init(&js, QUEUE_JSON_MAX);
	outcomes_json(&js, o, n);
	PGresult *res = NULL;
	int rc = -1;
	if (db_exec(c, "BEGIN", err, errlen) < 0)
		goto out;
	const char *params[] = { buf_cstr(&js) };
	/* Only rows still leased to the writer: after a reclaim the owner
	 * differs and a late outcome changes nothing (DESIGN.md), with one
	 * exception: a delivery the server accepted is recorded even when its
	 * lease moved on (reaped, or reclaimed by another attempt), over any
	 * state that is not final - the mail was delivered, and leaving the
	 * row to another attempt would only deliver it again.  The other
	 * attempt's own outcome then finds its lease gone.  The events are
	 * inserted by the same statement, set-based: the payload is
	 * mf_event_payload() over the updated row (RETURNING r, the new row
	 * version) and its message, as mf_record_event() builds it, but
	 * without a plpgsql call and two lookups per row (measured: see the
	 * commit that introduced it).  A bounce the policy marked `sp`
	 * (queue/policy.h: a permanently bad mailbox or domain, answered to
	 * RCPT) adds the address to the suppression list with its
	 * suppression.created event, as the DSN path does (db/bounces.c), in
	 * this same transaction. */
	res = PQexecParams(c,
		"WITH u AS ("
		"  UPDATE recipients r SET status = o.s, last_code = o.c, last_enhanced = o.e,"
		"       last_text = o.t, last_mx = o.x, tls_version = o.tv, tls_cipher = o.tc,"
		"       tls_verified = o.tf, mta_sts = o.ms, mta_sts_failure = o.mf,"
		"       bounce_type = o.bt, bounce_category = o.bc,"
		"       next_attempt_at = CASE WHEN o.s = 'deferred'"
		"                              THEN now() + o.d * interval '1 millisecond'"
		"                              ELSE r.next_attempt_at END,"
		"       lease_owner = NULL, lease_expires_at = NULL, updated_at = now()"
		"  FROM jsonb_to_recordset($1::jsonb) AS o(i bigint, o text, s text, d bigint, c int,"
		"       e text, t text, x text, tv text, tc text, ms text, mf text, tf boolean, bt text, bc text,"
		"       sp boolean)"
		" WHERE r.id = o.i AND ((r.lease_owner = o.o AND r.status = 'sending')"
		"                    OR (o.s = 'delivered' AND NOT mf_status_terminal(r.status)))"
		" RETURNING r.id, r.message_id, r.status, r.email, r.last_text, o.sp, r AS row),"
		" v AS (SELECT nextval('events_id_seq') AS eid, mf_uuidv7() AS pid, 'message.' || u.status AS type, u.*"
		"         FROM (SELECT * FROM u ORDER BY id) u),"
		" e AS (INSERT INTO events (id, public_id, message_id, recipient_id, type, payload)"
		"       SELECT v.eid, v.pid, v.message_id, v.id, v.type, mf_event_payload(v.pid, v.type, v.row, m)"
		"         FROM v JOIN messages m ON m.id = v.message_id ORDER BY v.eid),"
		" si AS (INSERT INTO suppressions (email, reason, message_id, diagnostic)"
		"        SELECT DISTINCT ON (lower(u.email)) lower(u.email), 'bounce', u.message_id, u.last_text"
		"          FROM u WHERE u.sp AND u.status = 'bounced' ORDER BY lower(u.email), u.id"
		"        ON CONFLICT (email) DO NOTHING RETURNING email, reason, message_id, diagnostic),"
		" sv AS (SELECT mf_uuidv7() AS pid, si.* FROM si),"
		" se AS (INSERT INTO events (public_id, type, payload)"
		"        SELECT pid, 'suppression.created', jsonb_build_object('id', mf_event_id(pid),"
		"          'type', 'suppression.created',"
		"          'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
		"          'data', jsonb_build_object('email', email, 'reason', reason, 'message_id', message_id,"
		"                                     'diagnostic', diagnostic))"
		"          FROM sv)"
		" SELECT id, message_id::text, status FROM u",
		1, NULL, params, NULL, NULL, 0);
	if (!db_res_ok(res, PGRES_TUPLES_OK)) {
		db_set_error(c, res, err, errlen);
		goto out;
	}
	int m = PQntuples(res);
	if (m > 0 && refresh_messages(c, res, 1, err, errlen) < 0)
		goto out;
	if (s->fb != NULL && record_feedback(s, c, o, n, err, errlen) < 0)
		goto out;
	if (db_exec(c, "COMMIT", err, errlen) < 0)
		goto out;
	*applied = m;
	rc = 0;
out:
	PQclear(res);
	buf_cleanup(&js);
	if (rc < 0)
		session_after_error(s);
	return rc;
}

/*
 * In one transaction: sql (an UPDATE of recipients RETURNING their
 * message_id) with params, then the messages' statuses refreshed.  The
 * count of recipients updated, or -1 with err set (rolled back).
 */
static int update_and_refresh(PGconn *c, const char *sql, int nparams, const char *const *params, char *err,
			      size_t errlen)
{
	int rc = -1;
	PGresult *res = NULL;
	if (db_exec(c, "BEGIN", err, errlen) < 0)
		goto out;
	res = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
	if (!db_res_ok(res, PGRES_TUPLES_OK)) {
		db_set_error(c, res, err, errlen);
		goto out;
	}
	if (refresh_messages(c, res, 0, err, errlen) < 0 || db_exec(c, "COMMIT", err, errlen) < 0)
		goto out;
	rc = PQntuples(res);
out:
	PQclear(res);
	if (rc < 0 && PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE)
		PQclear(PQexec(c, "ROLLBACK"));
	return rc;
}

int db_queue_reap(struct db_session *s, long owner_grace_secs, int limit, char *err, size_t errlen)
{
	PGconn *c = session_conn(s, err, errlen);
	if (c == NULL)
		return -1;
	/* The heartbeat of this session's own registration first.  When it
	 * finds the connection broken (a database restart, a terminated
	 * backend), the connection is made again and registered at once,
	 * not a round later: the grace others give this owner is running. */
	if (s->owner != NULL && owner_upsert(s, err, errlen) < 0) {
		session_after_error(s);
		if (s->conn != NULL || (c = session_conn(s, err, errlen)) == NULL)
			return -1;
	}
	/* Owners are judged unless this session has just reconnected, or
	 * connected after failing to: then the server probably restarted (or
	 * was unreachable), and the other processes are reconnecting too and
	 * have owner_grace_secs to register again.  A first connection that
	 * succeeded at once judges at once: a restarted process frees its
	 * predecessor's leases without waiting. */
	int judge = s->attempts <= 1 || mono_ms() - s->connected_ms >= owner_grace_secs * 1000;
	char lim[32], grace[32];
	snprintf(lim, sizeof(lim), "%d", limit);
	snprintf(grace, sizeof(grace), "%ld", owner_grace_secs);
	const char *params[] = { lim, judge ? "t" : "f", grace };
	/* An owner is gone when no session holds its lock and it has not been
	 * seen for the grace (queue/queue.h).  Its 'sending' rows are reaped
	 * whatever their lease_expires_at; its registry row is deleted once
	 * none remains (the DELETE sees the rows as they were before this
	 * UPDATE, so that is the next round).  The attempt counts: it was
	 * made (the worker may even have delivered; its 250 is still
	 * recorded, see db_queue_record), so the next one is the next
	 * attempt, not the same one again.  FOR UPDATE rechecks the condition
	 * on a row that changed meanwhile (recorded, or reclaimed by a live
	 * owner), which is then left alone. */
	int rc = update_and_refresh(c,
		"WITH gone AS MATERIALIZED ("
		"  SELECT o.owner || ':' AS prefix FROM queue_owners o"
		"   WHERE $2::boolean AND o.seen_at < now() - $3::bigint * interval '1 second'"
		"     AND NOT mf_advisory_lock_held(o.lock_key)),"
		" forget AS ("
		"  DELETE FROM queue_owners o"
		"   WHERE $2::boolean AND o.seen_at < now() - $3::bigint * interval '1 second'"
		"     AND NOT mf_advisory_lock_held(o.lock_key)"
		"     AND NOT EXISTS (SELECT 1 FROM recipients r"
		"                      WHERE r.status = 'sending' AND starts_with(r.lease_owner, o.owner || ':')))"
		" UPDATE recipients SET status = 'deferred',"
		"       lease_owner = NULL, lease_expires_at = NULL, next_attempt_at = now(), updated_at = now()"
		" WHERE id IN (SELECT r.id FROM recipients r"
		"               WHERE r.status = 'sending'"
		"                 AND (r.lease_expires_at < now()"
		"                      OR EXISTS (SELECT 1 FROM gone g WHERE starts_with(r.lease_owner, g.prefix)))"
		"               ORDER BY r.lease_expires_at LIMIT $1::int FOR UPDATE OF r SKIP LOCKED)"
		" RETURNING message_id::text",
		3, params, err, errlen);
	if (rc < 0)
		session_after_error(s);
	return rc;
}

int db_queue_renew(struct db_pool *pool, const char *owner_prefix, long lease_secs, char *err,
		   size_t errlen)
{
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	char lease[32];
	snprintf(lease, sizeof(lease), "%ld", lease_secs);
	const char *params[] = { owner_prefix, lease };
	/* The partial index recipients_lease_idx holds only 'sending' rows:
	 * the few in flight, whatever the size of the table. */
	PGresult *res = PQexecParams(c,
		"UPDATE recipients SET lease_expires_at = now() + $2::bigint * interval '1 second'"
		" WHERE status = 'sending' AND starts_with(lease_owner, $1 || ':')",
		2, NULL, params, NULL, NULL, 0);
	int rc = -1;
	if (db_res_ok(res, PGRES_COMMAND_OK))
		rc = (int)strtol(PQcmdTuples(res), NULL, 10);
	else
		db_set_error(c, res, err, errlen);
	PQclear(res);
	db_conn_put(pool, c);
	return rc;
}

int db_queue_release(struct db_pool *pool, const int64_t *ids, const char *const *owners, int n,
		     char *err, size_t errlen)
{
	if (n == 0)
		return 0;
	PGconn *c = db_conn_get(pool, err, errlen);
	if (c == NULL)
		return -1;
	struct buf ia, oa;
	buf_init(&ia, QUEUE_JSON_MAX);
	buf_init(&oa, QUEUE_JSON_MAX);
	buf_putc(&ia, '{');
	buf_putc(&oa, '{');
	for (int i = 0; i < n; i++) {
		buf_printf(&ia, "%s%" PRId64, i ? "," : "", ids[i]);
		array_elem(&oa, i == 0, owners[i]);
	}
	buf_putc(&ia, '}');
	buf_putc(&oa, '}');
	const char *params[] = { buf_cstr(&ia), buf_cstr(&oa) };
	int rc = update_and_refresh(c,
		"UPDATE recipients r SET status = CASE WHEN r.attempts <= 1 THEN 'queued' ELSE 'deferred' END,"
		"       first_attempt_at = CASE WHEN r.attempts <= 1 THEN NULL ELSE r.first_attempt_at END,"
		"       attempts = greatest(r.attempts - 1, 0), lease_owner = NULL, lease_expires_at = NULL,"
		"       next_attempt_at = now(), updated_at = now()"
		"  FROM unnest($1::bigint[], $2::text[]) AS x(id, owner)"
		" WHERE r.id = x.id AND r.lease_owner = x.owner AND r.status = 'sending'"
		" RETURNING r.message_id::text",
		2, params, err, errlen);
	buf_cleanup(&ia);
	buf_cleanup(&oa);
	db_conn_put(pool, c);
	return rc;
}
