/*
 * Integration test of the group committer's failure isolation: a unit the
 * database refuses (here: a trigger that rejects one subject) must fail
 * alone while the requests committed in the same group succeed.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_helpers.h"
#include "harness.h"

#define CLIENTS 12

struct client {
	struct api_srv *s;
	pthread_barrier_t *start;
	int poison;
	long status;
	char body[512];
};

static void *client(void *arg)
{
	struct client *c = arg;
	char body[256];
	snprintf(body, sizeof(body), "{\"from\":\"a@shop.example\",\"to\":\"b@example.net\",\"subject\":\"%s\",\"text\":\"x\"}",
		 c->poison ? "poison" : "fine");
	pthread_barrier_wait(c->start);
	struct th_http r;
	if (api_call(c->s, "POST", "/v1/messages", NULL, NULL, body, &r) == 0) {
		c->status = r.status;
		snprintf(c->body, sizeof(c->body), "%s", r.body);
	}
	th_http_free(&r);
	return NULL;
}

Test(api_committer, refused_unit_fails_alone)
{
	struct api_srv s;
	api_srv_start(&s, NULL, NULL);
	free(th_sql(s.db, "CREATE FUNCTION t_poison() RETURNS trigger LANGUAGE plpgsql AS $$"
			  " BEGIN IF NEW.subject = 'poison' THEN RAISE EXCEPTION 'poisoned message'; END IF;"
			  " RETURN NEW; END $$"));
	free(th_sql(s.db, "CREATE TRIGGER t_poison BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION t_poison()"));
	int fine = 0;
	for (int round = 0; round < 4; round++) {
		pthread_barrier_t b;
		pthread_barrier_init(&b, NULL, CLIENTS);
		struct client cs[CLIENTS];
		pthread_t th[CLIENTS];
		for (int i = 0; i < CLIENTS; i++) {
			cs[i] = (struct client){ .s = &s, .start = &b, .poison = i == round };
			pthread_create(&th[i], NULL, client, &cs[i]);
		}
		for (int i = 0; i < CLIENTS; i++)
			pthread_join(th[i], NULL);
		pthread_barrier_destroy(&b);
		for (int i = 0; i < CLIENTS; i++) {
			if (cs[i].poison) {
				cr_assert_eq(cs[i].status, 500, "%ld %s", cs[i].status, cs[i].body);
				cr_assert(strstr(cs[i].body, "\"code\":\"internal\""), "%s", cs[i].body);
			} else {
				cr_assert_eq(cs[i].status, 202, "%ld %s", cs[i].status, cs[i].body);
				fine++;
			}
		}
	}
	char sql[128];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM messages WHERE subject = 'fine'");
	cr_assert_eq(t_count(s.db, sql), fine);
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM messages WHERE subject = 'poison'"), 0);
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM recipients"), fine);
	api_srv_stop(&s, 1);
}

struct batcher {
	struct api_srv *s;
	pthread_barrier_t *start;
	int batch; /* 0: one single message */
	long status;
};

static void *batcher(void *arg)
{
	struct batcher *c = arg;
	char *body = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&body, &len);
	if (c->batch == 0) {
		fputs("{\"from\":\"a@shop.example\",\"to\":\"single@example.net\",\"subject\":\"spill\",\"text\":\"x\"}", f);
	} else {
		fputs("{\"messages\":[", f);
		for (int i = 0; i < c->batch; i++)
			fprintf(f, "%s{\"from\":\"a@shop.example\",\"to\":\"r%d@example.net\",\"subject\":\"spill\",\"text\":\"x\"}",
				i ? "," : "", i);
		fputs("]}", f);
	}
	fclose(f);
	pthread_barrier_wait(c->start);
	struct th_http r;
	if (api_call(c->s, "POST", c->batch ? "/v1/messages/batch" : "/v1/messages", NULL, NULL, body, &r) == 0)
		c->status = r.status;
	th_http_free(&r);
	free(body);
	return NULL;
}

/* Batches queue more than MF_COMMIT_SPILL_MSGS messages, so the second
 * committer thread joins the first: with both writing groups at once
 * (and single messages in between), every message is stored exactly once. */
Test(api_committer, batches_spill_to_a_second_committer)
{
	struct api_srv s;
	api_srv_start(&s, NULL, NULL);
	enum { N = 12, BATCH = 100, ROUNDS = 3 };
	int singles = 0, batched = 0;
	for (int round = 0; round < ROUNDS; round++) {
		pthread_barrier_t b;
		pthread_barrier_init(&b, NULL, N);
		struct batcher cs[N];
		pthread_t th[N];
		for (int i = 0; i < N; i++) {
			cs[i] = (struct batcher){ .s = &s, .start = &b, .batch = i % 3 == 2 ? 0 : BATCH };
			pthread_create(&th[i], NULL, batcher, &cs[i]);
		}
		for (int i = 0; i < N; i++)
			pthread_join(th[i], NULL);
		pthread_barrier_destroy(&b);
		for (int i = 0; i < N; i++) {
			cr_assert_eq(cs[i].status, 202, "client %d: %ld", i, cs[i].status);
			if (cs[i].batch)
				batched += cs[i].batch;
			else
				singles++;
		}
	}
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM messages WHERE subject = 'spill'"), singles + batched);
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM recipients"), singles + batched);
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM events WHERE type = 'message.queued'"), singles + batched);
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM (SELECT message_id FROM recipients GROUP BY 1 HAVING count(*) > 1) x"), 0);
	api_srv_stop(&s, 1);
}
