/*
 * Integration tests of GET /v1/messages: filters (status, recipient, tag,
 * created_after/before), limit, and cursor paging that returns every row
 * exactly once while another thread keeps inserting.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_helpers.h"
#include "harness.h"

static json_t *list(struct api_srv *s, const char *query, long want_status)
{
	struct th_http r;
	char path[512];
	snprintf(path, sizeof(path), "/v1/messages%s", query);
	cr_assert_eq(api_call(s, "GET", path, NULL, NULL, NULL, &r), 0);
	cr_assert_eq(r.status, want_status, "%s: %s", path, r.body);
	json_t *j = t_json(&r);
	th_http_free(&r);
	return j;
}

Test(api_list, filters)
{
	struct api_srv s;
	api_srv_start(&s, NULL, NULL);
	for (int i = 0; i < 6; i++) {
		char body[256];
		snprintf(body, sizeof(body),
			 "{\"from\":\"a@shop.example\",\"to\":\"%s@example.net\",\"text\":\"x\",\"tags\":[\"%s\"]}",
			 i % 2 ? "odd" : "even", i < 3 ? "first" : "second");
		free(api_send_ok(&s, body));
	}
	free(th_sql(s.db, "INSERT INTO suppressions (email, reason) VALUES ('sup@example.net', 'manual')"));
	free(api_send_ok(&s, "{\"from\":\"a@shop.example\",\"to\":\"sup@example.net\",\"text\":\"x\"}"));

	json_t *j = list(&s, "", 200);
	cr_assert_eq(json_array_size(json_object_get(j, "data")), 7);
	cr_assert(json_is_false(json_object_get(j, "has_more")));
	cr_assert(json_is_null(json_object_get(j, "next_cursor")));
	/* Newest first. */
	cr_assert_str_eq(t_str(json_array_get(json_object_get(j, "data"), 0), "status"), "suppressed");
	json_decref(j);
	j = list(&s, "?status=suppressed", 200);
	cr_assert_eq(json_array_size(json_object_get(j, "data")), 1);
	json_decref(j);
	j = list(&s, "?status=queued&tag=second", 200);
	cr_assert_eq(json_array_size(json_object_get(j, "data")), 3);
	json_decref(j);
	j = list(&s, "?recipient=ODD@example.net", 200);
	cr_assert_eq(json_array_size(json_object_get(j, "data")), 3);
	json_decref(j);
	j = list(&s, "?recipient=odd@example.net&tag=first", 200);
	cr_assert_eq(json_array_size(json_object_get(j, "data")), 1);
	json_decref(j);
	j = list(&s, "?created_after=2000-01-01T00:00:00Z&created_before=2999-01-01T00:00:00Z", 200);
	cr_assert_eq(json_array_size(json_object_get(j, "data")), 7);
	json_decref(j);
	j = list(&s, "?created_after=2999-01-01T00:00:00Z", 200);
	cr_assert_eq(json_array_size(json_object_get(j, "data")), 0);
	json_decref(j);
	j = list(&s, "?limit=2", 200);
	cr_assert_eq(json_array_size(json_object_get(j, "data")), 2);
	cr_assert(json_is_true(json_object_get(j, "has_more")));
	cr_assert_not_null(t_str(j, "next_cursor"));
	json_decref(j);
	j = list(&s, "?limit=101", 400);
	cr_assert_str_eq(t_str(json_array_get(json_object_get(j, "errors"), 0), "field"), "limit");
	json_decref(j);
	j = list(&s, "?status=nope", 400);
	json_decref(j);
	j = list(&s, "?after=garbage", 400);
	cr_assert_str_eq(t_str(json_array_get(json_object_get(j, "errors"), 0), "field"), "after");
	json_decref(j);
	j = list(&s, "?created_after=yesterday", 400);
	json_decref(j);
	api_srv_stop(&s, 1);
}

struct inserter {
	struct api_srv *s;
	volatile int stop;
	int n;
};

static void *insert_loop(void *arg)
{
	struct inserter *in = arg;
	while (!in->stop) {
		struct th_http r;
		if (api_call(in->s, "POST", "/v1/messages", NULL, NULL,
			     "{\"from\":\"a@shop.example\",\"to\":\"new@example.net\",\"text\":\"x\",\"tags\":[\"new\"]}",
			     &r) == 0 && r.status == 202)
			in->n++;
		th_http_free(&r);
	}
	return NULL;
}

Test(api_list, cursor_paging_exactly_once_under_inserts)
{
	struct api_srv s;
	api_srv_start(&s, NULL, NULL);
	/* 120 messages to page through, made in one batch. */
	size_t cap = 120 * 96 + 64;
	char *batch = malloc(cap);
	size_t o = (size_t)snprintf(batch, cap, "{\"messages\":[");
	for (int i = 0; i < 120; i++)
		o += (size_t)snprintf(batch + o, cap - o, "%s{\"from\":\"a@shop.example\",\"to\":\"p%d@example.net\",\"text\":\"x\"}",
				      i ? "," : "", i);
	snprintf(batch + o, cap - o, "]}");
	struct th_http r;
	cr_assert_eq(api_call(&s, "POST", "/v1/messages/batch", NULL, NULL, batch, &r), 0);
	cr_assert_eq(r.status, 202, "%s", r.body);
	th_http_free(&r);
	free(batch);
	/* Another message so the batch is not at the head of the list. */
	free(api_send_ok(&s, "{\"from\":\"a@shop.example\",\"to\":\"head@example.net\",\"text\":\"x\"}"));

	struct inserter in = { .s = &s };
	pthread_t th;
	pthread_create(&th, NULL, insert_loop, &in);
	char seen[400][40];
	int nseen = 0, pages = 0;
	char cursor[256] = "";
	for (;;) {
		char q[400];
		snprintf(q, sizeof(q), "?limit=7%s%s", cursor[0] ? "&after=" : "", cursor);
		json_t *j = list(&s, q, 200);
		json_t *data = json_object_get(j, "data");
		cr_assert_leq(json_array_size(data), 7);
		size_t i;
		json_t *m;
		json_array_foreach(data, i, m) {
			const char *id = t_str(m, "id");
			for (int k = 0; k < nseen; k++)
				cr_assert_str_neq(seen[k], id, "id %s returned twice", id);
			cr_assert_lt(nseen, 400);
			snprintf(seen[nseen++], sizeof(seen[0]), "%s", id);
		}
		pages++;
		int more = json_is_true(json_object_get(j, "has_more"));
		if (more)
			snprintf(cursor, sizeof(cursor), "%s", t_str(j, "next_cursor"));
		json_decref(j);
		usleep(20000);
		if (!more)
			break;
	}
	in.stop = 1;
	pthread_join(th, NULL);
	cr_assert_gt(in.n, 0, "the inserter made no messages");
	/* Every message that existed before paging started was seen exactly
	 * once (no duplicates was checked above). */
	for (int i = 0; i < 120; i++) {
		char sql2[200];
		snprintf(sql2, sizeof(sql2), "SELECT message_id::text FROM recipients WHERE email = 'p%d@example.net'", i);
		char *mid = th_sql(s.db, sql2);
		cr_assert_not_null(mid);
		int found = 0;
		for (int k = 0; k < nseen && !found; k++)
			found = strcmp(seen[k], mid) == 0;
		cr_assert(found, "message %s (p%d) never listed", mid, i);
		free(mid);
	}
	cr_assert_geq(pages, 18);
	api_srv_stop(&s, 1);
}
