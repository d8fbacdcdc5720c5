/*
 * Integration tests of Idempotency-Key on POST /v1/messages: replay with
 * the same id, conflict on another body, and concurrent identical
 * requests from many threads creating exactly one message.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_helpers.h"
#include "harness.h"

#define BODY "{\"from\":\"a@shop.example\",\"to\":\"b@example.net\",\"subject\":\"once\",\"text\":\"x\"}"

Test(api_idempotency, replay_and_conflict)
{
	struct api_srv s;
	api_srv_start(&s, NULL, NULL);
	struct th_http r;
	cr_assert_eq(api_call(&s, "POST", "/v1/messages", NULL, "order-1001", BODY, &r), 0);
	cr_assert_eq(r.status, 202, "%s", r.body);
	json_t *first = t_json(&r);
	char *first_raw = strdup(r.body);
	th_http_free(&r);
	cr_assert_eq(api_call(&s, "POST", "/v1/messages", NULL, "order-1001", BODY, &r), 0);
	cr_assert_eq(r.status, 202, "%s", r.body);
	json_t *again = t_json(&r);
	cr_assert_str_eq(t_str(again, "id"), t_str(first, "id"));
	/* The replay is the original response, byte for byte. */
	cr_assert_str_eq(r.body, first_raw);
	free(first_raw);
	cr_assert(strstr(r.headers, "Location: /v1/messages/"), "%s", r.headers);
	th_http_free(&r);
	/* Same key, another body: 422, nothing new. */
	cr_assert_eq(api_call(&s, "POST", "/v1/messages", NULL, "order-1001",
			      "{\"from\":\"a@shop.example\",\"to\":\"c@example.net\",\"text\":\"x\"}", &r), 0);
	cr_assert_eq(r.status, 422, "%s", r.body);
	cr_assert(strstr(r.body, "\"code\":\"idempotency_conflict\""), "%s", r.body);
	th_http_free(&r);
	/* Another key is another message. */
	cr_assert_eq(api_call(&s, "POST", "/v1/messages", NULL, "order-1002", BODY, &r), 0);
	cr_assert_eq(r.status, 202, "%s", r.body);
	th_http_free(&r);
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM messages"), 2);
	/* Keys are per API key: another key may reuse the string. */
	char other[160];
	cr_assert_eq(api_make_key(s.db, "send", other, sizeof(other)), 0);
	cr_assert_eq(api_call(&s, "POST", "/v1/messages", other, "order-1001", BODY, &r), 0);
	cr_assert_eq(r.status, 202, "%s", r.body);
	json_t *third = t_json(&r);
	cr_assert_str_neq(t_str(third, "id"), t_str(first, "id"));
	th_http_free(&r);
	/* After 24 hours the key is forgotten. */
	free(th_sql(s.db, "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'order-1002'"));
	cr_assert_eq(api_call(&s, "POST", "/v1/messages", NULL, "order-1002",
			      "{\"from\":\"a@shop.example\",\"to\":\"d@example.net\",\"text\":\"new\"}", &r), 0);
	cr_assert_eq(r.status, 202, "%s", r.body);
	th_http_free(&r);
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM messages"), 4);
	json_decref(first);
	json_decref(again);
	json_decref(third);
	api_srv_stop(&s, 1);
}

#define THREADS 16

struct racer {
	struct api_srv *s;
	const char *api_key; /* NULL: the server's own */
	const char *key;
	pthread_barrier_t *start;
	long status;
	char id[64];
};

static void *race(void *arg)
{
	struct racer *r = arg;
	pthread_barrier_wait(r->start);
	struct th_http h;
	if (api_call(r->s, "POST", "/v1/messages", r->api_key, r->key, BODY, &h) == 0) {
		r->status = h.status;
		json_t *j = json_loads(h.body ? h.body : "", 0, NULL);
		const char *id = json_string_value(json_object_get(j, "id"));
		if (id)
			snprintf(r->id, sizeof(r->id), "%s", id);
		json_decref(j);
	}
	th_http_free(&h);
	return NULL;
}

/*
 * One round: THREADS racers send key at once, spread over the nsrv servers
 * (all with api_key, or each server's own key when NULL).  Every answer is
 * a 202 or a 409, every 202 carries the same id; ok[i] counts the 202s of
 * server i.
 */
static void race_round(struct api_srv *const *srv, int nsrv, const char *api_key, const char *key, int *ok)
{
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, THREADS);
	struct racer rs[THREADS];
	pthread_t th[THREADS];
	for (int i = 0; i < THREADS; i++) {
		rs[i] = (struct racer){ .s = srv[i % nsrv], .api_key = api_key, .key = key, .start = &bar };
		pthread_create(&th[i], NULL, race, &rs[i]);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&bar);
	const char *winner = NULL;
	for (int i = 0; i < nsrv; i++)
		ok[i] = 0;
	for (int i = 0; i < THREADS; i++) {
		cr_assert(rs[i].status == 202 || rs[i].status == 409, "status %ld", rs[i].status);
		if (rs[i].status != 202)
			continue;
		ok[i % nsrv]++;
		cr_assert_eq(strlen(rs[i].id), 36, "202 without an id");
		if (winner)
			cr_assert_str_eq(rs[i].id, winner, "two different ids for one key");
		winner = rs[i].id;
	}
}

Test(api_idempotency, concurrent_identical_requests_make_one_message)
{
	struct api_srv s;
	api_srv_start(&s, NULL, NULL);
	struct api_srv *srv[] = { &s };
	for (int round = 0; round < 3; round++) {
		char key[32];
		int ok;
		snprintf(key, sizeof(key), "round-%d", round);
		race_round(srv, 1, NULL, key, &ok);
		cr_assert_geq(ok, 1);
	}
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM messages"), 3);
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM recipients"), 3);
	/* The requests that lost their key wrote nothing: one accept event
	 * per message, and each key names its message (its answer is built
	 * again on a replay, not stored). */
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM events"), 3);
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM idempotency_keys k JOIN messages m ON m.id = k.message_id"
				   " WHERE k.status_code = 202 AND k.response IS NULL"), 3);
	api_srv_stop(&s, 1);
}

/* Two processes on one database: the later claim waits for the first
 * transaction holding the key and then replays its answer (no 409 across
 * processes: neither knows the other's queue). */
Test(api_idempotency, same_key_on_two_processes_makes_one_message)
{
	struct api_srv a, b;
	api_srv_start(&a, NULL, NULL);
	api_srv_start(&b, a.db, NULL);
	struct api_srv *srv[] = { &a, &b };
	for (int round = 0; round < 3; round++) {
		char key[32];
		int ok[2];
		snprintf(key, sizeof(key), "both-%d", round);
		race_round(srv, 2, a.key, key, ok);
		cr_assert_geq(ok[0], 1, "process a answered no 202");
		cr_assert_geq(ok[1], 1, "process b answered no 202");
	}
	cr_assert_eq(t_count(a.db, "SELECT count(*) FROM messages"), 3);
	cr_assert_eq(t_count(a.db, "SELECT count(*) FROM recipients"), 3);
	cr_assert_eq(t_count(a.db, "SELECT count(*) FROM events"), 3);
	api_srv_stop(&b, 0);
	api_srv_stop(&a, 1);
}

/* Sends body with key and returns the raw answer (status must be want). */
static char *send_keyed(struct api_srv *s, const char *key, const char *body, long want)
{
	struct th_http r;
	cr_assert_eq(api_call(s, "POST", "/v1/messages", NULL, key, body, &r), 0);
	cr_assert_eq(r.status, want, "%s", r.body);
	char *raw = strdup(r.body);
	th_http_free(&r);
	return raw;
}

/* A replay is the original answer byte for byte although nothing of it
 * is stored: after the message was canceled, with a suppressed and a
 * scheduled recipient (statuses only the accept knew), and after the
 * suppression is lifted. */
Test(api_idempotency, replay_rebuilds_the_original_answer_after_changes)
{
	struct api_srv s;
	api_srv_start(&s, NULL, NULL);
	free(th_sql(s.db, "INSERT INTO suppressions (email, reason) VALUES ('gone@example.net', 'manual')"));
	const char *mixed = "{\"from\":\"a@shop.example\",\"to\":[\"B <b@example.net>\",\"Gone@Example.net\"],"
			    "\"cc\":\"c@example.net\",\"subject\":\"later\",\"text\":\"x\",\"send_at\":\"2099-01-01T00:00:00Z\"}";
	char *first = send_keyed(&s, "mixed-1", mixed, 202);
	cr_assert(strstr(first, "\"status\":\"suppressed\"") && strstr(first, "\"status\":\"scheduled\""), "%s", first);
	free(th_sql(s.db, "DELETE FROM suppressions"));
	char *again = send_keyed(&s, "mixed-1", mixed, 202);
	cr_assert_str_eq(again, first);
	free(again);

	char *plain = send_keyed(&s, "plain-1", BODY, 202);
	json_t *j = json_loads(plain, 0, NULL);
	char path[128];
	snprintf(path, sizeof(path), "/v1/messages/%s/cancel", json_string_value(json_object_get(j, "id")));
	json_decref(j);
	struct th_http r;
	cr_assert_eq(api_call(&s, "POST", path, NULL, NULL, "", &r), 0);
	cr_assert_eq(r.status, 200, "%s", r.body);
	th_http_free(&r);
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM recipients WHERE status = 'canceled'"), 1);
	again = send_keyed(&s, "plain-1", BODY, 202);
	cr_assert_str_eq(again, plain, "the replay after the cancel is the accept's answer");
	free(again);
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM messages"), 2);

	/* A key row stored with its answer (as before answers were built
	 * again) replays those bytes. */
	free(th_sql(s.db, "UPDATE idempotency_keys SET response = '{\"stored\":true}' WHERE key = 'plain-1'"));
	again = send_keyed(&s, "plain-1", BODY, 202);
	cr_assert_str_eq(again, "{\"stored\":true}");
	free(again);

	/* Event retention shorter than a key's 24 hours took the accept
	 * events: no answer can be rebuilt, and no second message is made. */
	free(th_sql(s.db, "DELETE FROM events WHERE message_id = (SELECT message_id FROM idempotency_keys"
			  " WHERE key = 'mixed-1')"));
	again = send_keyed(&s, "mixed-1", mixed, 409);
	cr_assert(strstr(again, "idempotency_in_flight"), "%s", again);
	cr_assert(strstr(again, "no longer kept"), "the detail says why: %s", again);
	free(again);
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM messages"), 2);
	free(plain);
	free(first);
	api_srv_stop(&s, 1);
}
