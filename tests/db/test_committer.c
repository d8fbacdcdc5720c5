/*
 * Tests of the group committer (db/committer.c) against a real
 * PostgreSQL: units queued while a group is committing are written
 * together in the next group - one transaction, so their rows carry one
 * transaction id (xmin) - and a unit the database refuses inside such a
 * group fails alone (the group is retried one unit per transaction).
 * A lock held by another connection makes the grouping deterministic: the
 * test waits until the committer's first group is blocked on it (seen in
 * pg_stat_activity) before it queues the others.
 */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db/committer.h"
#include "harness.h"

#define UNITS 8

struct unit {
	struct db_write w;
	struct db_msg_row m;
	struct db_rcpt_row r;
	char subject[32];
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int ndone;

static void done(struct db_write *w)
{
	(void)w;
	pthread_mutex_lock(&mu);
	ndone++;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

static void unit_init(struct unit *u, int i, const char *subject)
{
	memset(u, 0, sizeof(*u));
	snprintf(u->subject, sizeof(u->subject), "%s", subject);
	uuid_v7(u->m.id);
	u->m.mail_from = "a@shop.example";
	u->m.from_header = "a@shop.example";
	u->m.subject = u->subject;
	u->m.message_id_hdr = u->m.id;
	u->m.request_json = "{}";
	u->m.body = "Subject: x\r\n\r\nbody\r\n";
	u->m.body_len = strlen(u->m.body);
	u->r = (struct db_rcpt_row){ "b@example.net", "example.net", "to" };
	u->m.rcpts = &u->r;
	u->m.nrcpts = 1;
	u->w.msgs = &u->m;
	u->w.nmsgs = 1;
	u->w.done = done;
	(void)i;
}

/* Waits until n units are answered, at most 30 s; 0 or -1. */
static int wait_done(int n)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 30;
	pthread_mutex_lock(&mu);
	int rc = 0;
	while (ndone < n && rc == 0)
		rc = pthread_cond_timedwait(&cv, &mu, &until);
	int ok = ndone >= n;
	pthread_mutex_unlock(&mu);
	return ok ? 0 : -1;
}

/* A connection holding an exclusive lock on messages, in an open transaction. */
static PGconn *lock_messages(const char *db)
{
	PGconn *lock = PQconnectdb(db);
	cr_assert_eq(PQstatus(lock), CONNECTION_OK);
	PQclear(PQexec(lock, "BEGIN"));
	PGresult *r = PQexec(lock, "LOCK TABLE messages IN ACCESS EXCLUSIVE MODE");
	cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(lock));
	PQclear(r);
	return lock;
}

/* Waits until the committer's group is blocked on that lock. */
static void wait_blocked(const char *db)
{
	char last[64];
	int rc = th_sql_wait(db, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
				 " AND datname = current_database()", "1", 30000, last, sizeof(last));
	cr_assert_eq(rc, 0, "the committer never blocked on the lock: %s waiting", last);
}

static void unlock_messages(PGconn *lock)
{
	PGresult *r = PQexec(lock, "COMMIT");
	cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(lock));
	PQclear(r);
	PQfinish(lock);
}

/*
 * Units queued while a group is in flight go out together as the next
 * group: the database shows it, all their messages and recipients were
 * inserted by one transaction (one xmin), not the first unit's.
 */
Test(committer, queued_units_are_written_by_one_transaction)
{
	char *db = th_db_create(1);
	cr_assert_not_null(db);
	PGconn *lock = lock_messages(db);
	struct db_committer *c = db_committer_new(db);
	struct unit *u = calloc(UNITS, sizeof(*u));
	ndone = 0;
	unit_init(&u[0], 0, "first");
	cr_assert_eq(db_committer_submit(c, &u[0].w), 0);
	wait_blocked(db);
	for (int i = 1; i < UNITS; i++) {
		unit_init(&u[i], i, "queued");
		cr_assert_eq(db_committer_submit(c, &u[i].w), 0);
	}
	unlock_messages(lock);
	cr_assert_eq(wait_done(UNITS), 0, "only %d of %d units answered in 30 s", ndone, UNITS);
	for (int i = 0; i < UNITS; i++)
		cr_assert_eq(u[i].w.status, DB_WRITE_OK, "unit %d: %d %s", i, u[i].w.status, u[i].w.err);
	char *n = th_sql(db, "SELECT count(*) || ' rows, ' || count(DISTINCT x) || ' transaction(s)' FROM"
			     " (SELECT m.xmin::text x FROM messages m WHERE m.subject = 'queued'"
			     "  UNION ALL SELECT r.xmin::text FROM recipients r JOIN messages m ON m.id = r.message_id"
			     "  WHERE m.subject = 'queued') t");
	cr_assert_str_eq(n, "14 rows, 1 transaction(s)", "the queued units were not written as one group");
	free(n);
	n = th_sql(db, "SELECT count(*) FROM messages a, messages b"
		       " WHERE a.subject = 'first' AND b.subject = 'queued' AND a.xmin::text = b.xmin::text");
	cr_assert_str_eq(n, "0", "the blocked first unit shares a transaction with the queued ones");
	free(n);
	db_committer_free(c);
	for (int i = 0; i < UNITS; i++)
		db_write_cleanup(&u[i].w);
	free(u);
	th_db_drop(db);
	free(db);
}

Test(committer, queued_units_share_a_group_and_a_refused_one_fails_alone)
{
	char *db = th_db_create(1);
	cr_assert_not_null(db);
	free(th_sql(db, "CREATE FUNCTION t_poison() RETURNS trigger LANGUAGE plpgsql AS $$"
			" BEGIN IF NEW.subject = 'poison' THEN RAISE EXCEPTION 'poisoned message'; END IF;"
			" RETURN NEW; END $$"));
	free(th_sql(db, "CREATE TRIGGER t_poison BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION t_poison()"));
	PGconn *lock = lock_messages(db);

	struct db_committer *c = db_committer_new(db);
	struct unit *u = calloc(UNITS, sizeof(*u));
	ndone = 0;
	/* The first unit blocks on the lock; the others queue behind it. */
	unit_init(&u[0], 0, "first");
	cr_assert_eq(db_committer_submit(c, &u[0].w), 0);
	wait_blocked(db);
	for (int i = 1; i < UNITS; i++) {
		unit_init(&u[i], i, i == 3 ? "poison" : "fine");
		cr_assert_eq(db_committer_submit(c, &u[i].w), 0);
	}
	unlock_messages(lock);
	cr_assert_eq(wait_done(UNITS), 0, "only %d of %d units answered in 30 s", ndone, UNITS);

	for (int i = 0; i < UNITS; i++) {
		if (i == 3) {
			cr_assert_eq(u[i].w.status, DB_WRITE_FAILED);
			cr_assert(strstr(u[i].w.err, "poisoned") != NULL, "%s", u[i].w.err);
		} else {
			cr_assert_eq(u[i].w.status, DB_WRITE_OK, "unit %d: %d %s", i, u[i].w.status, u[i].w.err);
			cr_assert(u[i].m.accepted.created_at[0] != '\0', "unit %d: no created_at", i);
		}
	}
	char *n = th_sql(db, "SELECT count(*) FROM messages");
	cr_assert_str_eq(n, "7");
	free(n);
	n = th_sql(db, "SELECT count(*) FROM events WHERE type = 'message.queued'");
	cr_assert_str_eq(n, "7");
	free(n);
	/* Same idempotency key twice while the first is queued: 409 at once. */
	struct unit k1, k2;
	unit_init(&k1, 0, "k");
	unit_init(&k2, 0, "k");
	free(th_sql(db, "INSERT INTO api_keys (name, public_id, salt, hash, scopes)"
			" VALUES ('t', 'p', '\\x00', '\\x00', '{send}')"));
	k1.w.api_key_id = k2.w.api_key_id = 1;
	k1.w.idem_key = k2.w.idem_key = "same";
	PGconn *lock2 = PQconnectdb(db);
	PQclear(PQexec(lock2, "BEGIN"));
	PQclear(PQexec(lock2, "LOCK TABLE messages IN ACCESS EXCLUSIVE MODE"));
	cr_assert_eq(db_committer_submit(c, &k1.w), 0);
	cr_assert_eq(db_committer_submit(c, &k2.w), -1);
	cr_assert_eq(k2.w.status, DB_WRITE_IDEM_IN_FLIGHT);
	PQclear(PQexec(lock2, "COMMIT"));
	PQfinish(lock2);
	db_committer_free(c); /* answers what is queued first */
	cr_assert_eq(ndone, UNITS + 1);
	cr_assert_eq(k1.w.status, DB_WRITE_OK, "%s", k1.w.err);
	for (int i = 0; i < UNITS; i++)
		db_write_cleanup(&u[i].w);
	db_write_cleanup(&k1.w);
	free(u);
	th_db_drop(db);
	free(db);
}

/* The plan of a prepared statement of the committer's session, as text. */
static char *plan_of(PGconn *c, const char *execute)
{
	char sql[1024];
	snprintf(sql, sizeof(sql), "EXPLAIN (COSTS OFF) EXECUTE %s", execute);
	PGresult *res = PQexec(c, sql);
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s: %s", execute, PQerrorMessage(c));
	size_t len = 1;
	for (int i = 0; i < PQntuples(res); i++)
		len += strlen(PQgetvalue(res, i, 0)) + 1;
	char *out = calloc(1, len);
	for (int i = 0; i < PQntuples(res); i++) {
		strcat(out, PQgetvalue(res, i, 0));
		strcat(out, "\n");
	}
	PQclear(res);
	return out;
}

/*
 * db_messages_prepare() forces generic plans (one plan per statement,
 * never replanned), made here on an empty, never-analysed database - a
 * fresh installation, the worst statistics they can be made from.  Every
 * lookup must still be a probe by key: no sequential scan, no hash or
 * merge join, and the suppression probe on the primary key (an
 * index-only walk of suppressions_reason_idx is what such statistics
 * picked before).
 */
Test(committer, generic_plans_on_an_empty_database_probe_by_key)
{
	char *db = th_db_create(1);
	cr_assert_not_null(db);
	PGconn *c = PQconnectdb(db);
	cr_assert_eq(PQstatus(c), CONNECTION_OK);
	char err[256];
	cr_assert_eq(db_messages_prepare(c, err, sizeof(err)), 0, "%s", err);
	PGresult *res = PQexec(c, "SHOW plan_cache_mode");
	cr_assert_str_eq(PQgetvalue(res, 0, 0), "force_generic_plan");
	PQclear(res);

	const char *mid = "'{018f0000-0000-7000-8000-000000000001}'";
	char accept[512], keyed[512], claim[256];
	snprintf(accept, sizeof(accept), "mf_accept(%s, '{0}', '{a@example.net}', '{example.net}', '{to}', '{NULL}')",
		 mid);
	snprintf(keyed, sizeof(keyed),
		 "mf_accept_keyed(%s, '{0}', '{a@example.net}', '{example.net}', '{to}', '{NULL}', %s, '{1}', '{k}')",
		 mid, mid);
	snprintf(claim, sizeof(claim), "%%s('{1}', '{k}', '{00}', %s)", mid);
	char claim_x[256], losers_x[256];
	snprintf(claim_x, sizeof(claim_x), claim, "mf_claim");
	snprintf(losers_x, sizeof(losers_x), claim, "mf_losers");
	const char *stmts[] = { accept, keyed, claim_x, losers_x };
	for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
		char *plan = plan_of(c, stmts[i]);
		cr_assert_null(strstr(plan, "Seq Scan"), "%s", plan);
		cr_assert_null(strstr(plan, "Hash Join"), "%s", plan);
		cr_assert_null(strstr(plan, "Merge Join"), "%s", plan);
		cr_assert_null(strstr(plan, "Index Only Scan"), "%s", plan);
		if (i < 2) {
			cr_assert_not_null(strstr(plan, "Index Scan using suppressions_pkey"), "%s", plan);
			cr_assert_not_null(strstr(plan, "Index Scan using messages_pkey"), "%s", plan);
		} else {
			cr_assert_not_null(strstr(plan, "idempotency_keys_pkey"), "%s", plan);
		}
		if (i == 3) { /* a replay's answer, built again from its message */
			cr_assert_not_null(strstr(plan, "using messages_pkey"), "%s", plan);
			cr_assert_not_null(strstr(plan, "using recipients_message_id_position_key"), "%s", plan);
			cr_assert_not_null(strstr(plan, "on events_message_idx"), "%s", plan);
		}
		free(plan);
	}
	PQfinish(c);
	th_db_drop(db);
	free(db);
}
