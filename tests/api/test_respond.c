/*
 * Tests of api/respond.c: the response builders fill a bare struct
 * api_resp (no server, no connection), so the problem+json shape of
 * INTERFACE.md, JSON bodies, headers and their limits are checked here
 * directly.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "api/http.h"
#include "api/respond.h"
#include "util/limits.h"

/* The body of r as JSON (the caller decrefs), failing the test if it is not. */
static json_t *body_json(const struct api_resp *r)
{
	json_error_t je;
	json_t *j = json_loadb(r->body, r->body_len, 0, &je);
	cr_assert_not_null(j, "not JSON: %.*s (%s)", (int)r->body_len, r->body, je.text);
	return j;
}

static const char *str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

Test(respond, json_body_replaces_the_one_before)
{
	struct api_resp r = { 0 };
	api_resp_text(&r, 200, "text/plain", "first");
	api_resp_json(&r, 201, json_pack("{s:s, s:i}", "id", "abc", "n", 3));
	cr_assert_eq(r.status, 201);
	cr_assert_str_eq(r.content_type, "application/json");
	cr_assert_eq(r.body_len, strlen(r.body));
	cr_assert_str_eq(r.body, "{\"id\":\"abc\",\"n\":3}");
	api_resp_cleanup(&r);
	cr_assert_eq(r.status, 0);
	cr_assert_null(r.body);
	cr_assert_eq(r.nheaders, 0);
}

Test(respond, text_body_is_copied)
{
	struct api_resp r = { 0 };
	char text[] = "hello";
	api_resp_text(&r, 204, NULL, text);
	text[0] = 'j';
	cr_assert_eq(r.status, 204);
	cr_assert_null(r.content_type);
	cr_assert_str_eq(r.body, "hello");
	cr_assert_eq(r.body_len, 5);
	api_resp_cleanup(&r);
}

Test(respond, problem_has_the_interface_shape)
{
	struct api_resp r = { 0 };
	api_resp_problem(&r, 404, "not_found", "no such message", NULL);
	cr_assert_eq(r.status, 404);
	cr_assert_str_eq(r.content_type, "application/problem+json");
	json_t *j = body_json(&r);
	cr_assert_str_eq(str(j, "type"), "https://mailferry.dev/problems/not_found");
	cr_assert_str_eq(str(j, "title"), "Not Found");
	cr_assert_eq(json_integer_value(json_object_get(j, "status")), 404);
	cr_assert_str_eq(str(j, "code"), "not_found");
	cr_assert_str_eq(str(j, "detail"), "no such message");
	cr_assert_null(json_object_get(j, "errors"));
	cr_assert_eq(json_object_size(j), 5);
	cr_assert_eq(r.nheaders, 0, "only a 503 gets Retry-After");
	json_decref(j);
	api_resp_cleanup(&r);
}

Test(respond, problem_with_field_errors_and_no_detail)
{
	struct api_resp r = { 0 };
	json_t *errors = json_pack("[o, o]", api_field_error("to", "required", "to is required"),
				   api_field_error("subject", "too_long", "at most 998 octets"));
	api_resp_problem(&r, 422, "validation_failed", NULL, errors);
	json_t *j = body_json(&r);
	cr_assert_str_eq(str(j, "title"), "Unprocessable Content");
	cr_assert_str_eq(str(j, "detail"), "");
	json_t *e = json_object_get(j, "errors");
	cr_assert_eq(json_array_size(e), 2);
	cr_assert_str_eq(str(json_array_get(e, 0), "field"), "to");
	cr_assert_str_eq(str(json_array_get(e, 0), "code"), "required");
	cr_assert_str_eq(str(json_array_get(e, 1), "message"), "at most 998 octets");
	cr_assert_eq(json_object_size(json_array_get(e, 1)), 3);
	json_decref(j);
	api_resp_cleanup(&r);
}

Test(respond, every_503_says_when_to_come_back_once)
{
	struct api_resp r = { 0 };
	api_resp_problem(&r, 503, "unavailable", "the database is unavailable", NULL);
	cr_assert_eq(r.status, 503);
	cr_assert_eq(r.nheaders, 1);
	cr_assert_str_eq(api_resp_header_get(&r, "retry-after"), MF_UNAVAILABLE_RETRY_AFTER);
	api_resp_cleanup(&r);

	/* A Retry-After set by the handler is kept, not doubled. */
	api_resp_header(&r, "Retry-After", "30");
	api_resp_problem(&r, 503, "unavailable", "draining", NULL);
	cr_assert_eq(r.nheaders, 1);
	cr_assert_str_eq(api_resp_header_get(&r, "Retry-After"), "30");
	api_resp_cleanup(&r);
}

Test(respond, titles_follow_rfc_9110)
{
	cr_assert_str_eq(api_status_title(400), "Bad Request");
	cr_assert_str_eq(api_status_title(401), "Unauthorized");
	cr_assert_str_eq(api_status_title(403), "Forbidden");
	cr_assert_str_eq(api_status_title(405), "Method Not Allowed");
	cr_assert_str_eq(api_status_title(409), "Conflict");
	cr_assert_str_eq(api_status_title(413), "Payload Too Large");
	cr_assert_str_eq(api_status_title(415), "Unsupported Media Type");
	cr_assert_str_eq(api_status_title(429), "Too Many Requests");
	cr_assert_str_eq(api_status_title(500), "Internal Server Error");
	cr_assert_str_eq(api_status_title(418), "Error");
}

Test(respond, headers_are_copied_and_bounded)
{
	struct api_resp r = { 0 };
	char name[32], value[32];
	for (int i = 0; i < API_MAX_HEADERS + 3; i++) {
		snprintf(name, sizeof(name), "X-H%d", i);
		snprintf(value, sizeof(value), "v%d", i);
		api_resp_header(&r, name, value);
	}
	cr_assert_eq(r.nheaders, API_MAX_HEADERS);
	cr_assert_str_eq(api_resp_header_get(&r, "x-h0"), "v0");
	cr_assert_str_eq(api_resp_header_get(&r, "X-H7"), "v7");
	cr_assert_null(api_resp_header_get(&r, "X-H8"));
	cr_assert_null(api_resp_header_get(&r, "Location"));
	api_resp_cleanup(&r);
}

Test(respond, request_helpers_fill_req_resp)
{
	struct api_req req = { 0 };
	api_location(&req, "/v1/messages/0190abcd");
	api_retry_after(&req, "1");
	api_header(&req, "Idempotent-Replayed", "true");
	api_problem(&req, 503, "unavailable", "try again");
	cr_assert_eq(req.resp.status, 503);
	cr_assert_eq(req.resp.nheaders, 3, "the Retry-After given is not doubled");
	cr_assert_str_eq(api_resp_header_get(&req.resp, "Location"), "/v1/messages/0190abcd");
	cr_assert_str_eq(api_resp_header_get(&req.resp, "Retry-After"), "1");
	api_json(&req, 202, json_pack("{s:s}", "status", "queued"));
	cr_assert_eq(req.resp.status, 202);
	cr_assert_str_eq(req.resp.content_type, "application/json");
	cr_assert_str_eq(req.resp.body, "{\"status\":\"queued\"}");
	api_problem_errors(&req, 400, "invalid_json", "bad", json_array());
	json_t *j = body_json(&req.resp);
	cr_assert(json_is_array(json_object_get(j, "errors")));
	json_decref(j);
	api_text(&req, 200, "text/plain", "ok");
	cr_assert_str_eq(req.resp.body, "ok");
	api_resp_cleanup(&req.resp);
}
