/*
 * Integration tests of POST /v1/messages/batch: strict (any invalid item
 * refuses the batch, nothing queued) and permissive (the valid items are
 * queued, the others listed by index); the 500-item limit.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_helpers.h"
#include "harness.h"

#define GOOD(n) "{\"from\":\"a@shop.example\",\"to\":\"r" #n "@example.net\",\"text\":\"x\"}"
#define BATCH "{\"messages\":[" GOOD(0) "," GOOD(1) ",{\"from\":\"a@shop.example\",\"to\":\"bad\",\"text\":\"x\"}," \
	      GOOD(3) ",{\"from\":\"a@shop.example\",\"to\":\"c@example.net\",\"subject\":\"a\\nb\",\"text\":\"x\"}]}"

Test(api_batch, strict_refuses_all)
{
	struct api_srv s;
	api_srv_start(&s, NULL, NULL);
	struct th_http r;
	cr_assert_eq(api_call(&s, "POST", "/v1/messages/batch", NULL, NULL, BATCH, &r), 0);
	cr_assert_eq(r.status, 422, "%s", r.body);
	json_t *j = t_json(&r);
	cr_assert_str_eq(t_str(j, "code"), "validation_failed");
	json_t *errs = json_object_get(j, "errors");
	cr_assert_eq(json_array_size(errs), 2, "%s", r.body);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(errs, 0), "index")), 2);
	cr_assert_str_eq(t_str(json_array_get(errs, 0), "field"), "to");
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(errs, 1), "index")), 4);
	cr_assert_str_eq(t_str(json_array_get(errs, 1), "code"), "header_injection");
	json_decref(j);
	th_http_free(&r);
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM messages"), 0);

	/* All valid: 202, one id per item, in order. */
	cr_assert_eq(api_call(&s, "POST", "/v1/messages/batch?validation=strict", NULL, NULL,
			      "{\"messages\":[" GOOD(0) "," GOOD(1) "," GOOD(2) "]}", &r), 0);
	cr_assert_eq(r.status, 202, "%s", r.body);
	j = t_json(&r);
	json_t *data = json_object_get(j, "data");
	cr_assert_eq(json_array_size(data), 3);
	for (size_t i = 0; i < 3; i++) {
		cr_assert_eq(json_integer_value(json_object_get(json_array_get(data, i), "index")), (json_int_t)i);
		cr_assert_not_null(t_str(json_array_get(data, i), "id"));
	}
	cr_assert_eq(json_array_size(json_object_get(j, "errors")), 0);
	json_decref(j);
	th_http_free(&r);
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM messages"), 3);
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM recipients WHERE status = 'queued'"), 3);
	api_srv_stop(&s, 1);
}

Test(api_batch, permissive_queues_the_valid_ones)
{
	struct api_srv s;
	api_srv_start(&s, NULL, NULL);
	struct th_http r;
	cr_assert_eq(api_call(&s, "POST", "/v1/messages/batch?validation=permissive", NULL, NULL, BATCH, &r), 0);
	cr_assert_eq(r.status, 202, "%s", r.body);
	json_t *j = t_json(&r);
	json_t *data = json_object_get(j, "data");
	cr_assert_eq(json_array_size(data), 3, "%s", r.body);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(data, 2), "index")), 3);
	json_t *errs = json_object_get(j, "errors");
	cr_assert_eq(json_array_size(errs), 2);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(errs, 0), "index")), 2);
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM recipients WHERE message_id = '%s' AND email = 'r3@example.net'",
		 t_str(json_array_get(data, 2), "id"));
	cr_assert_eq(t_count(s.db, sql), 1);
	json_decref(j);
	th_http_free(&r);
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM messages"), 3);
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM events"), 3);

	/* Nothing valid: 422 even when permissive. */
	cr_assert_eq(api_call(&s, "POST", "/v1/messages/batch?validation=permissive", NULL, NULL,
			      "{\"messages\":[{\"to\":\"x@example.net\"}]}", &r), 0);
	cr_assert_eq(r.status, 422, "%s", r.body);
	th_http_free(&r);
	/* Shape and limits. */
	cr_assert_eq(api_call(&s, "POST", "/v1/messages/batch", NULL, NULL, "{\"messages\":[]}", &r), 0);
	cr_assert_eq(r.status, 422, "%s", r.body);
	th_http_free(&r);
	cr_assert_eq(api_call(&s, "POST", "/v1/messages/batch?validation=lenient", NULL, NULL, BATCH, &r), 0);
	cr_assert_eq(r.status, 400, "%s", r.body);
	th_http_free(&r);
	size_t cap = 501 * (sizeof(GOOD(0)) + 1) + 64;
	char *big = malloc(cap);
	size_t o = (size_t)snprintf(big, cap, "{\"messages\":[");
	for (int i = 0; i < 501; i++)
		o += (size_t)snprintf(big + o, cap - o, "%s" GOOD(0), i ? "," : "");
	snprintf(big + o, cap - o, "]}");
	cr_assert_eq(api_call(&s, "POST", "/v1/messages/batch", NULL, NULL, big, &r), 0);
	cr_assert_eq(r.status, 422, "%s", r.body);
	cr_assert(strstr(r.body, "at most 500"), "%s", r.body);
	th_http_free(&r);
	/* Exactly 500 is fine, committed as one transaction. */
	o = (size_t)snprintf(big, cap, "{\"messages\":[");
	for (int i = 0; i < 500; i++)
		o += (size_t)snprintf(big + o, cap - o, "%s" GOOD(0), i ? "," : "");
	snprintf(big + o, cap - o, "]}");
	cr_assert_eq(api_call(&s, "POST", "/v1/messages/batch", NULL, NULL, big, &r), 0);
	cr_assert_eq(r.status, 202, "%s", r.body);
	th_http_free(&r);
	free(big);
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM messages"), 503);
	cr_assert_eq(t_count(s.db, "SELECT count(DISTINCT xmin::text) FROM messages WHERE created_at ="
				   " (SELECT max(created_at) FROM messages)"), 1);
	api_srv_stop(&s, 1);
}
