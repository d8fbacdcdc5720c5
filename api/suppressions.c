/*
 * suppressions.c - the suppression list endpoints (handlers.h):
 *
 *   GET    /v1/suppressions?reason=R&limit=N&after=CURSOR   (read)
 *   POST   /v1/suppressions {"email","reason"?}              (send) 201 / 200
 *   GET    /v1/suppressions/{email}                          (read)
 *   DELETE /v1/suppressions/{email}                          (admin) 204
 *
 * Addresses are compared in lower case (db/suppressions.h).  Adding an
 * address already listed answers 200 with the existing entry (idempotent).
 * Bounce submission, POST /v1/bounces, is api/bounces.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/handlers.h"
#include "api/json_in.h"
#include "db/suppressions.h"
#include "util/limits.h"
#include "util/log.h"
#include "util/xmalloc.h"

static void db_fail(struct api_req *req, const char *op, const char *err)
{
	log_error_limited("event=db_error op=%s error=%s", op, err);
	api_problem(req, 503, "unavailable", "the database is not available");
}

static json_t *suppression_json(const struct db_suppression *s)
{
	return json_pack("{s:s, s:s, s:s?, s:s?, s:s}", "email", s->email, "reason", s->reason, "message_id",
			 *s->message_id ? s->message_id : NULL, "diagnostic", *s->diagnostic ? s->diagnostic : NULL,
			 "created_at", s->created_at);
}

static void collect(const struct db_suppression *s, void *arg)
{
	json_array_append_new((json_t *)arg, suppression_json(s));
}

static void keep_one(const struct db_suppression *s, void *arg)
{
	json_t **out = arg;
	json_decref(*out);
	*out = suppression_json(s);
}

static int valid_reason(const char *r)
{
	return strcmp(r, "manual") == 0 || strcmp(r, "bounce") == 0 || strcmp(r, "complaint") == 0 ||
	       strcmp(r, "unsubscribe") == 0;
}

/* An addr-spec we can store: local@domain, RFC 5321 §4.5.3.1 lengths, no
 * white space, controls or address syntax characters. */
static int valid_email(const char *s)
{
	size_t n = strlen(s);
	const char *at = strrchr(s, '@');
	if (n == 0 || n > MF_ADDRESS_MAX || at == NULL || at == s || at[1] == '\0')
		return 0;
	if ((size_t)(at - s) > MF_LOCAL_PART_MAX || strlen(at + 1) > MF_DOMAIN_MAX)
		return 0;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= 32 || *p == 127 || strchr("<>()[],;:\\\"", *p) || (*p == '@' && p != at))
			return 0;
	return 1;
}

enum api_result api_get_suppressions(struct api_req *req)
{
	const char *reason = api_req_query(req, "reason");
	const char *after = api_req_query(req, "after");
	const char *ls = api_req_query(req, "limit");
	long limit = MF_SUPPRESSIONS_PAGE_DEFAULT;
	if (ls) {
		char *end = NULL;
		limit = strtol(ls, &end, 10);
		if (*ls == '\0' || *end || limit < 1 || limit > MF_SUPPRESSIONS_PAGE_MAX) {
			char msg[64];
			snprintf(msg, sizeof(msg), "limit must be a whole number from 1 to %d", MF_SUPPRESSIONS_PAGE_MAX);
			api_problem_errors(req, 422, "validation_failed", "invalid query parameter",
					   json_pack("[o]", api_field_error("limit", "invalid", msg)));
			return API_DONE;
		}
	}
	if (reason && !valid_reason(reason)) {
		api_problem_errors(req, 422, "validation_failed", "invalid query parameter",
				   json_pack("[o]", api_field_error("reason", "invalid",
								    "reason must be bounce, manual, complaint or unsubscribe")));
		return API_DONE;
	}
	json_t *data = json_array();
	char err[512];
	int n = db_suppression_list(req->deps->pool, reason, after, (int)limit + 1, collect, data, err, sizeof(err));
	if (n < 0) {
		json_decref(data);
		db_fail(req, "suppression_list", err);
		return API_DONE;
	}
	int has_more = n > limit;
	if (has_more)
		json_array_remove(data, (size_t)limit);
	json_t *last = json_array_get(data, json_array_size(data) - 1);
	json_t *cursor = has_more && last ? json_incref(json_object_get(last, "email")) : json_null();
	api_json(req, 200, json_pack("{s:o, s:b, s:o}", "data", data, "has_more", has_more, "next_cursor", cursor));
	return API_DONE;
}

enum api_result api_post_suppressions(struct api_req *req)
{
	json_t *body = json_in_body_object(req);
	if (body == NULL)
		return API_DONE;
	json_t *errors = json_array();
	const char *email = NULL, *reason = "manual", *key;
	json_t *v;
	json_object_foreach(body, key, v) {
		if (strcmp(key, "email") == 0) {
			email = json_string_value(v);
			if (email == NULL || !valid_email(email))
				json_array_append_new(errors, api_field_error("email", "invalid", "must be an address local@domain"));
		} else if (strcmp(key, "reason") == 0) {
			reason = json_string_value(v);
			if (reason == NULL || !valid_reason(reason))
				json_array_append_new(errors, api_field_error("reason", "invalid",
									      "must be manual, bounce, complaint or unsubscribe"));
		} else {
			json_array_append_new(errors, api_field_error(key, "unknown_field", "unknown field"));
		}
	}
	if (email == NULL && json_array_size(errors) == 0)
		json_array_append_new(errors, api_field_error("email", "required", "email is required"));
	if (json_array_size(errors) > 0) {
		api_problem_errors(req, 422, "validation_failed", "the suppression is not valid", errors);
		json_decref(body);
		return API_DONE;
	}
	json_decref(errors);
	json_t *row = NULL;
	char err[512];
	int added = db_suppression_add(req->deps->pool, email, reason, "api", keep_one, &row, err, sizeof(err));
	json_decref(body);
	if (added < 0 || row == NULL) {
		json_decref(row);
		db_fail(req, "suppression_add", err);
		return API_DONE;
	}
	if (added) {
		char loc[MF_ADDRESS_MAX + 32];
		snprintf(loc, sizeof(loc), "/v1/suppressions/%s", json_string_value(json_object_get(row, "email")));
		api_location(req, loc);
	}
	api_json(req, added ? 201 : 200, row);
	return API_DONE;
}

enum api_result api_get_suppression(struct api_req *req)
{
	json_t *row = NULL;
	char err[512];
	int rc = db_suppression_get(req->deps->pool, req->params[0], keep_one, &row, err, sizeof(err));
	if (rc < 0)
		db_fail(req, "suppression_get", err);
	else if (rc == 0)
		api_problem(req, 404, "not_found", "this address is not on the suppression list");
	else
		api_json(req, 200, row), row = NULL;
	json_decref(row);
	return API_DONE;
}

enum api_result api_delete_suppression(struct api_req *req)
{
	char err[512];
	int rc = db_suppression_remove(req->deps->pool, req->params[0], "api", err, sizeof(err));
	if (rc < 0) {
		db_fail(req, "suppression_remove", err);
	} else if (rc == 0) {
		api_problem(req, 404, "not_found", "this address is not on the suppression list");
	} else {
		log_info("event=suppression_removed " LOG_RCPT_FMT " source=api key_id=%" PRId64,
			 LOG_RCPT(MF_LOG_INFO, req->params[0]), req->api_key_id);
		api_text(req, 204, NULL, "");
	}
	return API_DONE;
}
