/*
 * test_queue.c - the queue's SQL (db/queue.c) against a real PostgreSQL:
 * the claim and its grouping, leases, the outcome recorder with events and
 * message status, the late writer after a reclaim (a late 250 still
 * recorded), the reaper (expired leases, and at once those of an owner
 * whose registered connection is gone), the owner registration across a
 * reconnect, the lease heartbeat, suppression of bad mailboxes by the
 * recorder, the release, LISTEN/NOTIFY, and concurrent claimers getting
 * disjoint rows; per-destination control: the claim within each domain's
 * window, paused domains skipped, two claimers serialised so that together
 * they stay within a window, VERP jobs, the rate bucket, and the
 * recorder's feedback cutting and pausing a throttled domain.
 */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/db.h"
#include "db/queue.h"
#include "harness.h"
#include "queue/destination.h"
#include "util/xmalloc.h"

static char *sqlf(const char *url, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *sqlf(const char *url, const char *fmt, ...)
{
	char q[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(q, sizeof(q), fmt, ap);
	va_end(ap);
	char *r = th_sql(url, q);
	cr_assert_not_null(r, "%s", q);
	return r;
}

static long sql_long(const char *url, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static long sql_long(const char *url, const char *fmt, ...)
{
	char q[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(q, sizeof(q), fmt, ap);
	va_end(ap);
	char *r = th_sql(url, q);
	cr_assert_not_null(r, "%s", q);
	long v = strtol(r, NULL, 10);
	free(r);
	return v;
}

/* n messages, each with the given recipients "a@x.test,b@y.test". */
static void insert_messages(const char *url, int n, const char *rcpts)
{
	free(sqlf(url,
		"WITH m AS (INSERT INTO messages (id, mail_from, from_header, message_id_hdr, size, body)"
		"  SELECT gen_random_uuid(), 'sender@app.test', 'sender@app.test', 'x@app.test', 20,"
		"         convert_to('Subject: t' || chr(13) || chr(10) || chr(13) || chr(10) || 'body ' || g, 'UTF8')"
		"    FROM generate_series(1, %d) g RETURNING id)"
		" INSERT INTO recipients (message_id, position, email, domain, kind, status)"
		" SELECT m.id, r.ord, r.e, split_part(r.e, '@', 2), 'to', 'queued'"
		"   FROM m, unnest(string_to_array('%s', ',')) WITH ORDINALITY AS r(e, ord)",
		n, rcpts));
}

struct rows {
	int n;
	int64_t ids[20000];
	char domain[64][32];
	int body_rows;
	int attempts;
	long age;
};

static void collect(const struct db_claim_row *row, void *arg)
{
	struct rows *r = arg;
	if (r->n < 64)
		snprintf(r->domain[r->n], sizeof(r->domain[0]), "%s", row->domain);
	if (row->body != NULL) {
		r->body_rows++;
		cr_assert(memmem(row->body, row->body_len, "Subject: t\r\n", 12) != NULL);
	}
	cr_assert(row->has_body);
	cr_assert_str_eq(row->mail_from, "sender@app.test");
	r->attempts = row->attempts;
	r->age = row->age_secs;
	r->ids[r->n++] = row->id;
}

Test(db_queue, claim_groups_and_leases)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	insert_messages(url, 2, "a@y.test,b@x.test,c@y.test");
	struct db_session *s = db_session_new(url);
	char err[256];
	struct rows *r = xcalloc(1, sizeof(*r));
	int n = db_queue_claim(s, "me:1", 60, 100, NULL, collect, r, err, sizeof(err));
	cr_assert_eq(n, 6, "claim: %d %s", n, err);
	cr_assert_eq(r->body_rows, 2, "the body once per message");
	cr_assert_eq(r->attempts, 1);
	cr_assert_eq(r->age, 0);
	/* Grouped by message then domain: x, y, y for each message. */
	cr_assert_str_eq(r->domain[0], "x.test");
	cr_assert_str_eq(r->domain[1], "y.test");
	cr_assert_str_eq(r->domain[2], "y.test");
	cr_assert_str_eq(r->domain[3], "x.test");
	cr_assert_eq(sql_long(url, "SELECT count(*) FROM recipients WHERE status = 'sending' AND lease_owner = 'me:1'"
				   " AND lease_expires_at > now() + interval '50 s' AND first_attempt_at IS NOT NULL"), 6);
	/* Nothing left to claim. */
	r->n = 0;
	cr_assert_eq(db_queue_claim(s, "me:2", 60, 100, NULL, collect, r, err, sizeof(err)), 0);
	free(r);
	db_session_free(s);
	th_db_drop(url);
	free(url);
}

Test(db_queue, claim_only_due_claimable_rows)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	insert_messages(url, 4, "a@x.test");
	free(sqlf(url, "UPDATE recipients SET next_attempt_at = now() + interval '1 hour' WHERE id = 1"));
	free(sqlf(url, "UPDATE recipients SET status = 'delivered' WHERE id = 2"));
	free(sqlf(url, "UPDATE recipients SET status = 'scheduled' WHERE id = 3"));
	struct db_session *s = db_session_new(url);
	char err[256];
	struct rows *r = xcalloc(1, sizeof(*r));
	cr_assert_eq(db_queue_claim(s, "me:1", 60, 100, NULL, collect, r, err, sizeof(err)), 2, "%s", err);
	cr_assert(r->ids[0] + r->ids[1] == 3 + 4);
	long ms = -2;
	cr_assert_eq(db_queue_next_due(s, NULL, &ms, err, sizeof(err)), 0, "%s", err);
	cr_assert(ms > 3500 * 1000 && ms <= 3600 * 1000, "next due in %ld ms", ms);
	free(sqlf(url, "UPDATE recipients SET status = 'delivered' WHERE id = 1"));
	cr_assert_eq(db_queue_next_due(s, NULL, &ms, err, sizeof(err)), 0);
	cr_assert_eq(ms, -1);
	free(r);
	db_session_free(s);
	th_db_drop(url);
	free(url);
}

static struct db_outcome ok_outcome(int64_t id, const char *owner)
{
	struct db_outcome o = { .id = id, .lease_owner = owner, .status = "delivered", .code = 250,
				.enhanced = "2.0.0", .text = "Ok: queued as 1 \"q\" \xff", .mx = "127.0.0.1",
				.tls_version = "TLSv1.3", .tls_cipher = "TLS_AES_256_GCM_SHA384", .tls_verified = 1 };
	return o;
}

Test(db_queue, record_writes_status_event_and_summary)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	insert_messages(url, 1, "a@x.test,b@x.test,c@x.test");
	struct db_session *s = db_session_new(url);
	char err[256];
	struct rows *r = xcalloc(1, sizeof(*r));
	cr_assert_eq(db_queue_claim(s, "me:1", 60, 100, NULL, collect, r, err, sizeof(err)), 3);
	struct db_outcome o[3] = { ok_outcome(1, "me:1"), ok_outcome(2, "me:1"), ok_outcome(3, "me:1") };
	o[1].status = "bounced";
	o[1].code = 550;
	o[1].enhanced = "5.1.1";
	o[1].text = "User unknown";
	o[1].bounce_type = "permanent";
	o[1].bounce_category = "bad_mailbox";
	o[1].tls_version = o[1].tls_cipher = NULL;
	o[1].tls_verified = -1;
	o[2].status = "deferred";
	o[2].code = 451;
	o[2].enhanced = "4.3.0";
	o[2].delay_ms = 60000;
	int applied = -1;
	cr_assert_eq(db_queue_record(s, o, 3, &applied, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(applied, 3);
	char *v = sqlf(url, "SELECT status || ' ' || last_code || ' ' || last_enhanced || ' ' || tls_version || ' '"
			    " || tls_verified || ' ' || last_text FROM recipients WHERE id = 1");
	cr_assert_str_eq(v, "delivered 250 2.0.0 TLSv1.3 true Ok: queued as 1 \"q\" ?");
	free(v);
	v = sqlf(url, "SELECT status || ' ' || last_code || ' ' || bounce_type || ' ' || bounce_category"
		      " || ' ' || (tls_version IS NULL) FROM recipients WHERE id = 2");
	cr_assert_str_eq(v, "bounced 550 permanent bad_mailbox true");
	free(v);
	cr_assert_eq(sql_long(url, "SELECT count(*) FROM recipients WHERE id = 3 AND status = 'deferred'"
				   " AND next_attempt_at BETWEEN now() + interval '55 s' AND now() + interval '65 s'"
				   " AND lease_owner IS NULL AND bounce_type IS NULL"), 1);
	cr_assert_eq(sql_long(url, "SELECT count(*) FROM events WHERE type IN ('message.delivered',"
				   " 'message.bounced', 'message.deferred')"), 3);
	v = sqlf(url, "SELECT payload->'data'->'smtp'->>'enhanced_code' || ' ' || (payload->'data'->'bounce'->>'category')"
		      " || ' ' || (payload->'data'->>'attempt') FROM events WHERE type = 'message.bounced'");
	cr_assert_str_eq(v, "5.1.1 bad_mailbox 1");
	free(v);
	/* The set-based insert builds exactly mf_record_event()'s payload:
	 * mf_event_payload() over the recipient row as updated. */
	cr_assert_eq(sql_long(url, "SELECT count(*) FROM events e JOIN recipients r ON r.id = e.recipient_id"
				   " JOIN messages m ON m.id = e.message_id"
				   " WHERE e.payload - 'timestamp' = mf_event_payload(e.public_id, e.type, r, m) - 'timestamp'"
				   " AND e.payload->>'id' = mf_event_id(e.public_id)"), 3);
	v = sqlf(url, "SELECT status FROM messages");
	cr_assert_str_eq(v, "sending", "one recipient still deferred: %s", v);
	free(v);
	free(r);
	db_session_free(s);
	th_db_drop(url);
	free(url);
}

Test(db_queue, late_writer_after_reclaim_changes_nothing)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	insert_messages(url, 1, "a@x.test");
	struct db_session *s = db_session_new(url);
	struct db_pool *pool = db_pool_new(url, 2);
	char err[256];
	struct rows *r = xcalloc(1, sizeof(*r));
	/* A lease of 0 s expires at once: the owner "died". */
	cr_assert_eq(db_queue_claim(s, "dead:1", 0, 10, NULL, collect, r, err, sizeof(err)), 1);
	char last[32];
	cr_assert_eq(th_sql_wait(url, "SELECT bool_and(lease_expires_at < clock_timestamp()) FROM recipients"
				      " WHERE status = 'sending'", "t", 30000, last, sizeof(last)), 0, "%s", last);
	cr_assert_eq(db_queue_reap(s, 5, 100, err, sizeof(err)), 1, "%s", err);
	char *v = sqlf(url, "SELECT status || ' ' || attempts || ' ' || (lease_owner IS NULL) FROM recipients");
	cr_assert_str_eq(v, "deferred 1 true", "the reaped attempt counts: %s", v);
	free(v);
	cr_assert_eq(db_queue_reap(s, 5, 100, err, sizeof(err)), 0);
	r->n = 0;
	cr_assert_eq(db_queue_claim(s, "live:2", 60, 10, NULL, collect, r, err, sizeof(err)), 1);
	cr_assert_eq(r->attempts, 2);
	/* The dead owner's late outcome is ignored. */
	struct db_outcome late = ok_outcome(1, "dead:1");
	late.status = "bounced";
	int applied = -1;
	cr_assert_eq(db_queue_record(s, &late, 1, &applied, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(applied, 0);
	v = sqlf(url, "SELECT status || ' ' || lease_owner FROM recipients");
	cr_assert_str_eq(v, "sending live:2");
	free(v);
	cr_assert_eq(sql_long(url, "SELECT count(*) FROM events"), 0);
	struct db_outcome ok = ok_outcome(1, "live:2");
	cr_assert_eq(db_queue_record(s, &ok, 1, &applied, err, sizeof(err)), 0);
	cr_assert_eq(applied, 1);
	/* A second write of the same outcome (lease already released) is ignored too. */
	cr_assert_eq(db_queue_record(s, &ok, 1, &applied, err, sizeof(err)), 0);
	cr_assert_eq(applied, 0);
	v = sqlf(url, "SELECT m.status || ' ' || (SELECT count(*) FROM events) FROM messages m");
	cr_assert_str_eq(v, "delivered 1");
	free(v);
	free(r);
	db_pool_free(pool);
	db_session_free(s);
	th_db_drop(url);
	free(url);
}

Test(db_queue, release_gives_back_unstarted_rows)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	insert_messages(url, 3, "a@x.test");
	free(sqlf(url, "UPDATE recipients SET status = 'deferred', attempts = 2 WHERE id = 3"));
	struct db_session *s = db_session_new(url);
	struct db_pool *pool = db_pool_new(url, 2);
	char err[256];
	struct rows *r = xcalloc(1, sizeof(*r));
	cr_assert_eq(db_queue_claim(s, "me:1", 60, 10, NULL, collect, r, err, sizeof(err)), 3);
	int64_t ids[] = { 1, 2, 3 };
	const char *owners[] = { "me:1", "other:9", "me:1" };
	cr_assert_eq(db_queue_release(pool, ids, owners, 3, err, sizeof(err)), 2, "%s", err);
	char *v = sqlf(url, "SELECT string_agg(status || ':' || attempts || ':' || (first_attempt_at IS NULL), ','"
			    " ORDER BY id) FROM recipients");
	cr_assert_str_eq(v, "queued:0:true,sending:1:false,deferred:2:false");
	free(v);
	free(r);
	db_pool_free(pool);
	db_session_free(s);
	th_db_drop(url);
	free(url);
}

Test(db_queue, listen_wakes_on_insert)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	struct db_session *s = db_session_new(url);
	char err[256];
	cr_assert_eq(db_session_listen(s, "mailferry_queue", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(db_session_wait(s, -1, 50), 0, "no notification yet");
	insert_messages(url, 1, "a@x.test");
	/* 1 is a notification (0 would be the timeout); 30 s bound a hang. */
	long t0 = th_now_ms();
	int rc;
	while ((rc = db_session_wait(s, -1, 2000)) == 0 && th_now_ms() - t0 < 30000)
		;
	cr_assert_eq(rc, 1, "no notification: %d", rc);
	/* The wake fd wins when written. */
	int p[2];
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(write(p[1], "x", 1), 1);
	cr_assert_eq(db_session_wait(s, p[0], 2000), 2);
	close(p[0]);
	close(p[1]);
	db_session_free(s);
	th_db_drop(url);
	free(url);
}

struct claimer {
	const char *url;
	char owner[32];
	struct rows *r;
	int rc;
};

static void collect_ids(const struct db_claim_row *row, void *arg)
{
	struct rows *r = arg;
	r->ids[r->n++] = row->id;
}

static void *claim_all(void *arg)
{
	struct claimer *c = arg;
	struct db_session *s = db_session_new(c->url);
	char err[256];
	for (;;) {
		int n = db_queue_claim(s, c->owner, 60, 25, NULL, collect_ids, c->r, err, sizeof(err));
		if (n < 0) {
			c->rc = -1;
			break;
		}
		if (n == 0)
			break;
	}
	db_session_free(s);
	return NULL;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

Test(db_queue, concurrent_claimers_get_disjoint_rows)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	insert_messages(url, 2000, "a@x.test");
	enum { NC = 4 };
	struct claimer c[NC];
	pthread_t t[NC];
	for (int i = 0; i < NC; i++) {
		c[i].url = url;
		snprintf(c[i].owner, sizeof(c[i].owner), "claimer:%d", i);
		c[i].r = xcalloc(1, sizeof(struct rows));
		c[i].rc = 0;
		pthread_create(&t[i], NULL, claim_all, &c[i]);
	}
	int64_t *all = xcalloc(4000, sizeof(int64_t));
	int total = 0, busy = 0;
	for (int i = 0; i < NC; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(c[i].rc, 0);
		busy += c[i].r->n > 0;
		memcpy(all + total, c[i].r->ids, (size_t)c[i].r->n * sizeof(int64_t));
		total += c[i].r->n;
		free(c[i].r);
	}
	cr_assert_eq(total, 2000, "every row claimed exactly once in all: %d", total);
	qsort(all, (size_t)total, sizeof(int64_t), cmp64);
	for (int i = 1; i < total; i++)
		cr_assert_neq(all[i], all[i - 1], "row %" PRId64 " claimed twice", all[i]);
	cr_assert_geq(busy, 2, "the claimers should have shared the work");
	cr_assert_eq(sql_long(url, "SELECT count(DISTINCT lease_owner) FROM recipients"), busy);
	free(all);
	th_db_drop(url);
	free(url);
}

/* A 250 whose lease was reaped and reclaimed meanwhile is still recorded:
 * the mail was delivered; the reclaimer's own outcome then finds no lease.
 * The reclaimed attempt counts. */
Test(db_queue, late_delivery_is_recorded_after_reclaim)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	insert_messages(url, 3, "a@x.test");
	struct db_session *s = db_session_new(url);
	struct db_pool *pool = db_pool_new(url, 2);
	char err[256];
	struct rows *r = xcalloc(1, sizeof(*r));
	/* Lease 0 s: expired at once, as when a session outlasts lease_time. */
	cr_assert_eq(db_queue_claim(s, "slow:1", 0, 10, NULL, collect, r, err, sizeof(err)), 3);
	usleep(20000);
	cr_assert_eq(db_queue_reap(s, 5, 100, err, sizeof(err)), 3, "%s", err);
	/* Rows 1 and 2 are reclaimed by another worker; row 3 waits, deferred. */
	free(sqlf(url, "UPDATE recipients SET next_attempt_at = now() + interval '1 h' WHERE id = 3"));
	r->n = 0;
	cr_assert_eq(db_queue_claim(s, "other:2", 60, 10, NULL, collect, r, err, sizeof(err)), 2);
	cr_assert_eq(r->attempts, 2, "the reaped attempt counts");
	/* Row 2 gets a permanent failure from the other attempt first. */
	struct db_outcome b = ok_outcome(2, "other:2");
	b.status = "bounced";
	b.code = 550;
	b.enhanced = "5.1.1";
	b.bounce_type = "permanent";
	b.bounce_category = "bad_mailbox";
	int applied = -1;
	cr_assert_eq(db_queue_record(s, &b, 1, &applied, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(applied, 1);
	/* The first worker's 250s arrive late: recorded over 'sending' (other
	 * owner) and 'deferred', not over the final 'bounced'. */
	struct db_outcome late[3] = { ok_outcome(1, "slow:1"), ok_outcome(2, "slow:1"), ok_outcome(3, "slow:1") };
	cr_assert_eq(db_queue_record(s, late, 3, &applied, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(applied, 2);
	char *v = sqlf(url, "SELECT string_agg(status || ':' || attempts || ':' || (lease_owner IS NULL), ','"
			    " ORDER BY id) FROM recipients");
	cr_assert_str_eq(v, "delivered:2:true,bounced:2:true,delivered:1:true");
	free(v);
	/* A non-delivery from a lost lease still changes nothing, and the
	 * reclaimer's outcome finds its lease gone. */
	struct db_outcome d = ok_outcome(1, "other:2");
	d.status = "deferred";
	d.code = 451;
	cr_assert_eq(db_queue_record(s, &d, 1, &applied, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(applied, 0);
	struct db_outcome again = ok_outcome(1, "other:2");
	cr_assert_eq(db_queue_record(s, &again, 1, &applied, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(applied, 0, "a second 250 over 'delivered' writes nothing");
	v = sqlf(url, "SELECT string_agg(type || ':' || (payload->'data'->>'attempt'), ',' ORDER BY recipient_id, id)"
		      " FROM events");
	cr_assert_str_eq(v, "message.delivered:2,message.bounced:2,message.delivered:1");
	free(v);
	free(r);
	db_pool_free(pool);
	db_session_free(s);
	th_db_drop(url);
	free(url);
}

/* The heartbeat extends the leases of this process's claims only. */
Test(db_queue, renew_extends_own_leases_only)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	insert_messages(url, 4, "a@x.test");
	struct db_session *s = db_session_new(url);
	struct db_pool *pool = db_pool_new(url, 2);
	char err[256];
	struct rows *r = xcalloc(1, sizeof(*r));
	cr_assert_eq(db_queue_claim(s, "h:1:ab:1", 5, 1, NULL, collect, r, err, sizeof(err)), 1);
	cr_assert_eq(db_queue_claim(s, "h:1:ab:2", 5, 1, NULL, collect, r, err, sizeof(err)), 1);
	cr_assert_eq(db_queue_claim(s, "h:1:abc:1", 5, 1, NULL, collect, r, err, sizeof(err)), 1);
	cr_assert_eq(db_queue_claim(s, "h:2:ab:1", 5, 1, NULL, collect, r, err, sizeof(err)), 1);
	cr_assert_eq(db_queue_renew(pool, "h:1:ab", 3600, err, sizeof(err)), 2, "%s", err);
	char *v = sqlf(url, "SELECT string_agg(lease_owner || '=' || (lease_expires_at > now() + interval '1 h'"
			    " - interval '1 min'), ',' ORDER BY id) FROM recipients");
	cr_assert_str_eq(v, "h:1:ab:1=true,h:1:ab:2=true,h:1:abc:1=false,h:2:ab:1=false");
	free(v);
	/* A reaped row is not revived. */
	free(sqlf(url, "UPDATE recipients SET status = 'deferred', lease_owner = NULL WHERE id = 1"));
	cr_assert_eq(db_queue_renew(pool, "h:1:ab", 3600, err, sizeof(err)), 1, "%s", err);
	free(r);
	db_pool_free(pool);
	db_session_free(s);
	th_db_drop(url);
	free(url);
}

/* A bounce marked suppress puts the address on the suppression list with
 * its suppression.created event, in the recorder's transaction; one not
 * marked (e.g. a 5.7.1 policy rejection) does not. */
Test(db_queue, record_suppresses_marked_bounces)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	insert_messages(url, 1, "Gone@x.test,blocked@x.test,gone@X.test");
	struct db_session *s = db_session_new(url);
	char err[256];
	struct rows *r = xcalloc(1, sizeof(*r));
	cr_assert_eq(db_queue_claim(s, "me:1", 60, 10, NULL, collect, r, err, sizeof(err)), 3);
	struct db_outcome o[3] = { ok_outcome(1, "me:1"), ok_outcome(2, "me:1"), ok_outcome(3, "me:1") };
	for (int i = 0; i < 3; i++) {
		o[i].status = "bounced";
		o[i].code = 550;
		o[i].enhanced = "5.1.1";
		o[i].text = "5.1.1 user unknown";
		o[i].bounce_type = "permanent";
		o[i].bounce_category = "bad_mailbox";
		o[i].suppress = 1;
	}
	o[1].enhanced = "5.7.1";
	o[1].text = "5.7.1 rejected by policy";
	o[1].bounce_category = "policy";
	o[1].suppress = 0;
	int applied = -1;
	cr_assert_eq(db_queue_record(s, o, 3, &applied, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(applied, 3);
	/* Two recipients, one address (case differs): one suppression. */
	char *v = sqlf(url, "SELECT string_agg(s.email || ' ' || s.reason || ' ' || (s.message_id = m.id) || ' '"
			    " || s.diagnostic, ',') FROM suppressions s, messages m");
	cr_assert_str_eq(v, "gone@x.test bounce true 5.1.1 user unknown");
	free(v);
	v = sqlf(url, "SELECT string_agg(payload->'data'->>'email' || ' ' || (payload->'data'->>'reason'), ',')"
		      " FROM events WHERE type = 'suppression.created' AND message_id IS NULL");
	cr_assert_str_eq(v, "gone@x.test bounce");
	free(v);
	free(r);
	db_session_free(s);
	th_db_drop(url);
	free(url);
}

/* Waits until the advisory lock of owner's registration is held (want "t")
 * or gone ("f"): a closed connection's backend exits a moment later. */
static void wait_owner_lock(const char *url, const char *owner, const char *want)
{
	char sql[256], last[32];
	snprintf(sql, sizeof(sql), "SELECT mf_advisory_lock_held(lock_key) FROM queue_owners WHERE owner = '%s'", owner);
	cr_assert_eq(th_sql_wait(url, sql, want, 30000, last, sizeof(last)), 0, "%s: lock held %s, want %s", owner,
		     last, want);
}

/* Issue 17 point 4: the leases of an owner whose registered connection
 * is gone are reaped at once, whatever lease_expires_at says; those of a
 * live owner, and of an owner that never registered, are not.  The gone
 * owner's registry row is deleted once it holds no lease. */
Test(db_queue, reap_frees_gone_owner_at_once)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	insert_messages(url, 3, "a@x.test");
	char err[256];
	struct db_session *alive = db_session_new(url), *dead = db_session_new(url), *reaper = db_session_new(url);
	cr_assert_eq(db_session_register(alive, "h:1:aa", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(db_session_register(dead, "h:2:bb", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(db_session_register(reaper, "h:3:cc", err, sizeof(err)), 0, "%s", err);
	struct rows *r = xcalloc(1, sizeof(*r));
	/* Hour-long leases: only the owner's liveness can free them. */
	cr_assert_eq(db_queue_claim(alive, "h:1:aa:1", 3600, 1, NULL, collect, r, err, sizeof(err)), 1, "%s", err);
	cr_assert_eq(db_queue_claim(dead, "h:2:bb:1", 3600, 1, NULL, collect, r, err, sizeof(err)), 1, "%s", err);
	cr_assert_eq(db_queue_claim(alive, "unregistered:1", 3600, 1, NULL, collect, r, err, sizeof(err)), 1, "%s", err);
	wait_owner_lock(url, "h:2:bb", "t");
	cr_assert_eq(db_queue_reap(reaper, 0, 100, err, sizeof(err)), 0, "every owner is alive: %s", err);
	/* The owner dies: its connection closes, its backend exits, the lock goes. */
	db_session_free(dead);
	wait_owner_lock(url, "h:2:bb", "f");
	cr_assert_eq(db_queue_reap(reaper, 0, 100, err, sizeof(err)), 1, "%s", err);
	char *v = sqlf(url, "SELECT string_agg(status || ':' || attempts || ':' || coalesce(lease_owner, '-'), ','"
			    " ORDER BY id) FROM recipients");
	cr_assert_str_eq(v, "sending:1:h:1:aa:1,deferred:1:-,sending:1:unregistered:1", "%s", v);
	free(v);
	/* The next round forgets the gone owner; the live ones stay. */
	cr_assert_eq(db_queue_reap(reaper, 0, 100, err, sizeof(err)), 0, "%s", err);
	v = sqlf(url, "SELECT string_agg(owner, ',' ORDER BY owner) FROM queue_owners");
	cr_assert_str_eq(v, "h:1:aa,h:3:cc");
	free(v);
	/* The row is claimable again, as the next attempt. */
	r->n = 0;
	cr_assert_eq(db_queue_claim(reaper, "h:3:cc:1", 60, 10, NULL, collect, r, err, sizeof(err)), 1, "%s", err);
	cr_assert_eq(r->attempts, 2);
	free(r);
	db_session_free(alive);
	db_session_free(reaper);
	th_db_drop(url);
	free(url);
}

/* A live owner whose connection drops has the grace to reconnect and
 * register again (seen_at): its leases are not taken meanwhile, and after
 * the reconnect its new lock protects them.  A gone owner is reaped once
 * the grace has passed, and expiry still reaps a live owner's rows. */
Test(db_queue, reap_spares_owner_within_grace_and_after_reconnect)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	insert_messages(url, 3, "a@x.test");
	char err[256];
	struct db_session *owner = db_session_new(url), *reaper = db_session_new(url);
	cr_assert_eq(db_session_register(owner, "h:1:aa", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(db_session_register(reaper, "h:3:cc", err, sizeof(err)), 0, "%s", err);
	struct rows *r = xcalloc(1, sizeof(*r));
	cr_assert_eq(db_queue_claim(owner, "h:1:aa:1", 3600, 2, NULL, collect, r, err, sizeof(err)), 2, "%s", err);
	/* The owner's backend is terminated (as by a database restart): the
	 * lock is gone, but the owner was seen a moment ago. */
	char *old = sqlf(url, "SELECT backend_pid FROM queue_owners WHERE owner = 'h:1:aa'");
	free(sqlf(url, "SELECT pg_terminate_backend(%s)", old));
	wait_owner_lock(url, "h:1:aa", "f");
	cr_assert_eq(db_queue_reap(reaper, 60, 100, err, sizeof(err)), 0, "within the grace: %s", err);
	/* The owner's next round finds the connection broken, reconnects and
	 * registers on a new lock at once. */
	cr_assert_eq(db_queue_reap(owner, 60, 100, err, sizeof(err)), 0, "%s", err);
	wait_owner_lock(url, "h:1:aa", "t");
	char *now = sqlf(url, "SELECT backend_pid FROM queue_owners WHERE owner = 'h:1:aa'");
	cr_assert_str_neq(now, old, "registered again from the new connection");
	free(now);
	free(old);
	/* Even long unseen, a live owner's leases stay. */
	free(sqlf(url, "UPDATE queue_owners SET seen_at = now() - interval '1 hour'"));
	cr_assert_eq(db_queue_reap(reaper, 60, 100, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(sql_long(url, "SELECT count(*) FROM recipients WHERE status = 'sending'"), 2);
	/* Expiry still applies to a live owner (a wedged process). */
	free(sqlf(url, "UPDATE recipients SET lease_expires_at = now() - interval '1 s' WHERE id = 1"));
	cr_assert_eq(db_queue_reap(reaper, 60, 100, err, sizeof(err)), 1, "%s", err);
	/* Gone for longer than the grace: reaped. */
	db_session_free(owner);
	wait_owner_lock(url, "h:1:aa", "f");
	cr_assert_eq(db_queue_reap(reaper, 60, 100, err, sizeof(err)), 1, "%s", err);
	cr_assert_eq(sql_long(url, "SELECT count(*) FROM recipients WHERE status = 'sending'"), 0);
	/* A graceful stop deletes the registration. */
	cr_assert_eq(db_session_unregister(reaper, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(db_queue_reap(reaper, 60, 100, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(sql_long(url, "SELECT count(*) FROM queue_owners WHERE owner = 'h:3:cc'"), 0);
	free(r);
	db_session_free(reaper);
	th_db_drop(url);
	free(url);
}

/* ---- per-destination control (queue/destination.h) ---- */

static const struct db_claim_opts win2 = { .verp = 0, .initial = 2, .max = 20, .rates_json = "{}" };

/* Distinct messages 'sending' for domain (jobs in flight). */
static long jobs_in_flight(const char *url, const char *domain)
{
	return sql_long(url, "SELECT count(DISTINCT message_id) FROM recipients WHERE status = 'sending'"
			     " AND domain = '%s'", domain);
}

Test(db_queue, claim_stays_within_each_destination_window)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	insert_messages(url, 10, "a@lim.test,b@lim.test");
	insert_messages(url, 3, "c@other.test");
	struct db_session *s = db_session_new(url);
	char err[256];
	struct rows *r = xcalloc(1, sizeof(*r));
	/* Window 2 for both (no rows yet): 2 jobs of lim.test (4 recipients,
	 * a job is one message's recipients in one domain) and 2 of other. */
	cr_assert_eq(db_queue_claim(s, "me:1", 60, 100, &win2, collect, r, err, sizeof(err)), 6, "%s", err);
	cr_assert_eq(jobs_in_flight(url, "lim.test"), 2);
	cr_assert_eq(jobs_in_flight(url, "other.test"), 2);
	/* Both full: nothing more, and the next due time is a poll, not 0. */
	cr_assert_eq(db_queue_claim(s, "me:2", 60, 100, &win2, collect, r, err, sizeof(err)), 0, "%s", err);
	long ms = -2;
	cr_assert_eq(db_queue_next_due(s, &win2, &ms, err, sizeof(err)), 0, "%s", err);
	cr_assert(ms > 0 && ms <= DB_QUEUE_POLL_MS, "next due in %ld ms", ms);
	/* A wider window for lim.test, from the destinations table. */
	free(sqlf(url, "INSERT INTO destinations (domain, lim) VALUES ('lim.test', 5.5)"));
	cr_assert_eq(db_queue_claim(s, "me:3", 60, 100, &win2, collect, r, err, sizeof(err)), 6, "%s", err);
	cr_assert_eq(jobs_in_flight(url, "lim.test"), 5);
	/* Without destination control (opts NULL) everything due is claimed. */
	cr_assert_eq(db_queue_claim(s, "me:4", 60, 100, NULL, collect, r, err, sizeof(err)), 11, "%s", err);
	free(r);
	db_session_free(s);
	th_db_drop(url);
	free(url);
}

Test(db_queue, claim_skips_paused_destination)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	insert_messages(url, 3, "a@paused.test");
	insert_messages(url, 1, "b@open.test");
	free(sqlf(url, "INSERT INTO destinations (domain, lim, backoff_secs, paused_until)"
		       " VALUES ('paused.test', 5, 30, now() + interval '1 hour')"));
	struct db_session *s = db_session_new(url);
	char err[256];
	struct rows *r = xcalloc(1, sizeof(*r));
	cr_assert_eq(db_queue_claim(s, "me:1", 60, 100, &win2, collect, r, err, sizeof(err)), 1, "%s", err);
	cr_assert_str_eq(r->domain[0], "open.test");
	/* Only the paused domain's rows are due: next due at the pause's end. */
	long ms = -2;
	cr_assert_eq(db_queue_next_due(s, &win2, &ms, err, sizeof(err)), 0, "%s", err);
	cr_assert(ms > 3500 * 1000 && ms <= 3600 * 1000, "next due in %ld ms", ms);
	free(sqlf(url, "UPDATE destinations SET paused_until = now() - interval '1 second'"));
	cr_assert_eq(db_queue_claim(s, "me:2", 60, 100, &win2, collect, r, err, sizeof(err)), 3, "%s", err);
	free(r);
	db_session_free(s);
	th_db_drop(url);
	free(url);
}

struct blocked_claim {
	const char *url;
	int n;
	char err[256];
};

static void *claim_once(void *arg)
{
	struct blocked_claim *b = arg;
	struct db_session *s = db_session_new(b->url);
	struct rows *r = xcalloc(1, sizeof(*r));
	b->n = db_queue_claim(s, "second:1", 60, 100, &win2, collect, r, b->err, sizeof(b->err));
	free(r);
	db_session_free(s);
	return NULL;
}

/* A claim whose transaction is still open holds the claim lock: a second
 * process's claim waits for it and then sees its 'sending' rows, so the
 * two together stay within the window.  (Without the lock the second
 * would see none of them - uncommitted - and fill the window again.) */
Test(db_queue, concurrent_claims_share_one_window)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	insert_messages(url, 10, "a@shared.test");
	PGconn *first = PQconnectdb(url);
	cr_assert_eq(PQstatus(first), CONNECTION_OK);
	PQclear(PQexec(first, "BEGIN"));
	PGresult *res = PQexec(first, "SELECT count(*) FROM mf_queue_claim('first:1', 60, 1, false, 2, 20, '{}')");
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQerrorMessage(first));
	cr_assert_str_eq(PQgetvalue(res, 0, 0), "1");
	PQclear(res);
	struct blocked_claim b = { .url = url, .n = -2 };
	pthread_t t;
	pthread_create(&t, NULL, claim_once, &b);
	/* The second claim is waiting on the lock (bounded wait for it to get there). */
	char last[64] = "";
	cr_assert_eq(th_sql_wait(url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted", "1",
				 10000, last, sizeof(last)), 0, "the second claim does not wait: %s", last);
	res = PQexec(first, "COMMIT");
	cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
	pthread_join(t, NULL);
	cr_assert_eq(b.n, 1, "the second claim took %d jobs (%s); the window is 2 and 1 was taken", b.n, b.err);
	cr_assert_eq(jobs_in_flight(url, "shared.test"), 2);
	PQfinish(first);
	th_db_drop(url);
	free(url);
}

/* A claim that waited for the claim lock sees what was committed while it
 * waited - the recipients and their messages alike: every row it set to
 * 'sending' is handed to the caller (a row claimed but not returned would
 * sit leased to nobody until lease_time). */
Test(db_queue, claim_returns_all_it_claims_after_waiting)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	PGconn *holder = PQconnectdb(url);
	cr_assert_eq(PQstatus(holder), CONNECTION_OK);
	PQclear(PQexec(holder, "BEGIN"));
	PGresult *res = PQexec(holder, "SELECT pg_advisory_xact_lock(hashtext('mailferry.queue_claim'))");
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQerrorMessage(holder));
	PQclear(res);
	struct blocked_claim b = { .url = url, .n = -2 };
	pthread_t t;
	pthread_create(&t, NULL, claim_once, &b);
	char last[64] = "";
	cr_assert_eq(th_sql_wait(url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted", "1",
				 10000, last, sizeof(last)), 0, "the claim does not wait: %s", last);
	insert_messages(url, 1, "late@w.test");
	res = PQexec(holder, "COMMIT");
	PQclear(res);
	pthread_join(t, NULL);
	cr_assert_eq(b.n, 1, "claimed %d (%s)", b.n, b.err);
	cr_assert_eq(sql_long(url, "SELECT count(*) FROM recipients WHERE status = 'sending'"), 1);
	PQfinish(holder);
	th_db_drop(url);
	free(url);
}

Test(db_queue, verp_jobs_are_recipients)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	insert_messages(url, 1, "a@v.test,b@v.test,c@v.test");
	struct db_session *s = db_session_new(url);
	char err[256];
	struct rows *r = xcalloc(1, sizeof(*r));
	struct db_claim_opts o = win2;
	o.verp = 1;
	cr_assert_eq(db_queue_claim(s, "me:1", 60, 100, &o, collect, r, err, sizeof(err)), 2, "%s", err);
	cr_assert_eq(db_queue_claim(s, "me:2", 60, 100, &o, collect, r, err, sizeof(err)), 0, "%s", err);
	free(r);
	db_session_free(s);
	th_db_drop(url);
	free(url);
}

Test(db_queue, rate_bucket_limits_claims)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	insert_messages(url, 5, "a@rate.test");
	insert_messages(url, 5, "b@free.test");
	struct db_session *s = db_session_new(url);
	char err[256];
	struct rows *r = xcalloc(1, sizeof(*r));
	/* 60/min: a bucket of one job, one more a second. */
	struct db_claim_opts o = { .initial = 20, .max = 20, .rates_json = "{\"rate.test\": 60, \"*\": 0}" };
	cr_assert_eq(db_queue_claim(s, "me:1", 60, 100, &o, collect, r, err, sizeof(err)), 6, "%s", err);
	cr_assert_eq(jobs_in_flight(url, "rate.test"), 1);
	cr_assert_eq(db_queue_claim(s, "me:2", 60, 100, &o, collect, r, err, sizeof(err)), 0, "%s", err);
	cr_assert(sql_long(url, "SELECT count(*) FROM destinations WHERE domain = 'rate.test' AND tokens < 1") == 1);
	long ms = -2;
	cr_assert_eq(db_queue_next_due(s, &o, &ms, err, sizeof(err)), 0, "%s", err);
	cr_assert(ms > 0 && ms <= 1000, "the next token in %ld ms", ms);
	/* A token later (bounded wait), one more job. */
	long t0 = th_now_ms();
	int n = 0;
	while (n == 0 && th_now_ms() - t0 < 10000) {
		n = db_queue_claim(s, "me:3", 60, 100, &o, collect, r, err, sizeof(err));
		cr_assert_geq(n, 0, "%s", err);
		usleep(100000);
	}
	cr_assert_eq(n, 1);
	cr_assert_eq(jobs_in_flight(url, "rate.test"), 2);
	free(r);
	db_session_free(s);
	th_db_drop(url);
	free(url);
}

Test(db_queue, recorder_feedback_cuts_and_pauses_a_throttled_domain)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	insert_messages(url, 4, "a@slow.test");
	insert_messages(url, 2, "b@fine.test");
	struct db_session *s = db_session_new(url);
	struct dest_params dp;
	dest_params_init(&dp, 20);
	db_session_set_feedback(s, dest_db_feedback, &dp);
	struct db_claim_opts o = { .initial = dp.initial, .max = dp.max, .rates_json = "{}" };
	char err[256];
	struct rows *r = xcalloc(1, sizeof(*r));
	cr_assert_eq(db_queue_claim(s, "me:1", 60, 100, &o, collect, r, err, sizeof(err)), 6, "%s", err);
	/* Two throttled jobs and two successes to slow.test (alternating, by
	 * the order of slow.test's jobs, whatever the claim's order of the
	 * two domains), two successes to fine.test. */
	struct db_outcome out[6];
	memset(out, 0, sizeof(out));
	int nslow = 0;
	for (int i = 0; i < 6; i++) {
		out[i].id = r->ids[i];
		out[i].lease_owner = "me:1";
		out[i].domain = r->domain[i];
		int slow = strcmp(r->domain[i], "slow.test") == 0;
		int throttled = slow && nslow++ % 2 == 1;
		out[i].status = throttled ? "deferred" : "delivered";
		out[i].delay_ms = 60000;
		out[i].code = throttled ? 421 : 250;
		out[i].enhanced = throttled ? "4.7.0" : "2.0.0";
		out[i].text = "x";
		out[i].tls_verified = -1;
		out[i].feedback = throttled ? -1 : 1;
	}
	cr_assert_eq(nslow, 4, "the claim took slow.test's four jobs");
	int applied = 0;
	cr_assert_eq(db_queue_record(s, out, 6, &applied, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(applied, 6);
	/* Slow start: fine.test 5 + 2; slow.test 5 + 2, then halved to 3,
	 * which becomes its slow-start threshold. */
	char *v = sqlf(url, "SELECT string_agg(domain || ' ' || floor(lim) || ' ' || coalesce(ssthresh::text, '-')"
			    " || ' ' || backoff_secs || ' '"
			    " || coalesce(paused_until > now() + interval '20 seconds', false) || ' '"
			    " || coalesce(last_code::text, '-'), ',' ORDER BY domain) FROM destinations");
	cr_assert_str_eq(v, "fine.test 7 - 0 false -,slow.test 3 3 30 true 421");
	free(v);
	/* A slow.test message still queued is not claimed while paused; new
	 * fine.test mail is. */
	insert_messages(url, 1, "c@slow.test");
	insert_messages(url, 1, "d@fine.test");
	memset(r, 0, sizeof(*r));
	cr_assert_eq(db_queue_claim(s, "me:2", 60, 100, &o, collect, r, err, sizeof(err)), 1, "%s", err);
	cr_assert_str_eq(r->domain[0], "fine.test");
	free(r);
	db_session_free(s);
	th_db_drop(url);
	free(url);
}
