/*
 * bounces.c - bounce submission (handlers.h):
 *
 *   POST /v1/bounces  (message/rfc822 body)   (send) 202
 *
 * The message is stored in bounces_raw (source 'api', db/bounces.h) and
 * processed at once (bounce/bounces.h); the 202 says what matched, or
 * {"id","outcome":"queued"} when the bounce processor will take it later
 * (processing failed, another processor holds it, or it waits for a
 * recipient that is still being delivered).
 * A body that is not message/rfc822 is 415, an empty one 422, one over
 * MF_BOUNCE_SIZE_MAX 413; a database failure 503.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "api/api.h"
#include "api/handlers.h"
#include "bounce/bounces.h"
#include "db/bounces.h"
#include "util/limits.h"
#include "util/log.h"
#include "util/xmalloc.h"

static void db_fail(struct api_req *req, const char *op, const char *err)
{
	log_error_limited("event=db_error op=%s error=%s", op, err);
	api_problem(req, 503, "unavailable", "the database is not available");
}

static json_t *rcpt_result_json(const struct bounce_rcpt_result *x)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:b}", "recipient", x->recipient, "action",
			      dsn_action_name(x->action), "status", x->status, "result", x->result ? x->result : "",
			      "suppressed", x->suppressed);
	json_object_set_new(o, "matched_by", x->matched_by ? json_string(x->matched_by) : json_null());
	json_object_set_new(o, "message_id", x->message_id[0] ? json_string(x->message_id) : json_null());
	json_object_set_new(o, "bounce",
			    x->bounce_type ? json_pack("{s:s, s:s?}", "type", x->bounce_type, "category", x->category)
					   : json_null());
	return o;
}

enum api_result api_post_bounces(struct api_req *req)
{
	const char *ct = api_req_header(req, "Content-Type");
	if (ct == NULL || strncasecmp(ct, "message/rfc822", 14) != 0) {
		api_problem(req, 415, "unsupported_media_type", "the body must be a raw message sent as message/rfc822");
		return API_DONE;
	}
	if (req->body.len == 0) {
		api_problem_errors(req, 422, "validation_failed", "the bounce is empty",
				   json_pack("[o]", api_field_error("body", "required", "send the raw message")));
		return API_DONE;
	}
	if (req->body.len > MF_BOUNCE_SIZE_MAX) {
		char msg[64];
		snprintf(msg, sizeof(msg), "a bounce is at most %u MiB", MF_BOUNCE_SIZE_MAX >> 20);
		api_problem(req, 413, "payload_too_large", msg);
		return API_DONE;
	}
	char err[512];
	int64_t id;
	if (db_bounce_insert(req->deps->pool, "api", NULL, "", req->body.data, req->body.len, &id, err, sizeof(err)) < 0) {
		db_fail(req, "bounce_insert", err);
		return API_DONE;
	}
	struct bounce_result *res = xmalloc(sizeof(*res));
	enum bounce_process_rc rc = bounce_process(req->deps->pool, req->deps->cfg, id, res, err, sizeof(err));
	if (rc == BOUNCE_PROCESS_ERROR) {
		/* Stored: the bounce processor will retry it. */
		log_error("event=bounce_process_failed bounce_id=%" PRId64 " error=%s", id, err);
		api_json(req, 202, json_pack("{s:I, s:s}", "id", (json_int_t)id, "outcome", "queued"));
	} else if (rc == BOUNCE_PROCESS_NONE || rc == BOUNCE_PROCESS_WAITING) {
		/* Another processor took it first, or it waits for a delivery
		 * outcome: the bounce processor applies it later. */
		api_json(req, 202, json_pack("{s:I, s:s}", "id", (json_int_t)id, "outcome", "queued"));
	} else {
		json_t *rcpts = json_array();
		for (int i = 0; i < res->nrcpts; i++)
			json_array_append_new(rcpts, rcpt_result_json(&res->rcpts[i]));
		api_json(req, 202, json_pack("{s:I, s:s, s:s, s:o}", "id", (json_int_t)id, "kind", dsn_kind_name(res->kind),
					     "outcome", res->outcome, "recipients", rcpts));
	}
	free(res);
	return API_DONE;
}
