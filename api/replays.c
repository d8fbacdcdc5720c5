/*
 * replays.c - POST /v1/messages/{id}/retry and POST /v1/replays.
 *
 * Retry requeues one message's failed, bounced and deferred recipients.  It
 * needs the send scope; a key without admin scope may retry only the
 * messages it sent (others answer 404, as if they did not exist).
 * Replays select recipients across messages by filter and need the admin
 * scope, because they can resend other keys' mail:
 *   {"status":["failed","bounced","deferred"], "created_after", "created_before",
 *    "recipient_domain", "tag", "dry_run"}
 * "status" is required (a blank request must not resend everything).  A dry
 * run answers 200 {"matched","requeued":0,"skipped_suppressed",
 * "skipped_expired","sample":[...]} and changes nothing; a real replay
 * answers 202 with the counts.  Both run in batches (db/replay.h) and are
 * idempotent when posted twice in a row.  The event records
 * requested_by = "api_key:<id>".
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "api/handlers.h"
#include "api/json_in.h"
#include "db/replay.h"
#include "util/limits.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/metrics_names.h"
#include "util/uuid.h"

#define SAMPLE_DEFAULT 10

/* RFC 3339 §5.6 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM). */
static int rfc3339_valid(const char *s)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd";
	size_t i;
	for (i = 0; shape[i]; i++) {
		char c = s[i];
		if (shape[i] == 'd' ? !isdigit((unsigned char)c) :
		    shape[i] == 'T' ? (c != 'T' && c != 't' && c != ' ') : c != shape[i])
			return 0;
	}
	s += i;
	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char)*s))
			return 0;
		while (isdigit((unsigned char)*s))
			s++;
	}
	if ((*s == 'Z' || *s == 'z') && s[1] == '\0')
		return 1;
	return (*s == '+' || *s == '-') && isdigit((unsigned char)s[1]) && isdigit((unsigned char)s[2]) &&
	       s[3] == ':' && isdigit((unsigned char)s[4]) && isdigit((unsigned char)s[5]) && s[6] == '\0';
}

static json_t *result_json(const struct db_replay_result *r)
{
	return json_pack("{s:I, s:I, s:I, s:I}", "matched", (json_int_t)r->matched, "requeued",
			 (json_int_t)r->requeued, "skipped_suppressed", (json_int_t)r->skipped_suppressed,
			 "skipped_expired", (json_int_t)r->skipped_expired);
}

static void add_sample(const struct db_replay_sample *s, void *arg)
{
	json_array_append_new((json_t *)arg, json_pack("{s:s, s:s, s:s, s:s}", "message_id", s->message_id,
						       "recipient", s->recipient, "status", s->status,
						       "created_at", s->created_at));
}

enum api_result api_post_message_retry(struct api_req *req)
{
	char err[512], by[48];
	const char *id = req->nparams > 0 ? req->params[0] : "";
	long long owner = 0;
	int found = uuid_valid(id) ? db_replay_message_owner(req->deps->pool, id, &owner, err, sizeof(err)) : 0;
	if (found < 0) {
		log_warn("event=retry_failed msg_id=%s error=\"%s\"", id, err);
		api_problem(req, 503, "unavailable", "the database is unavailable; try again");
		return API_DONE;
	}
	if (found == 0 || (!(req->scopes & API_SCOPE_ADMIN) && owner != req->api_key_id)) {
		api_problem(req, 404, "not_found", "no such message");
		return API_DONE;
	}
	struct db_replay_filter f = { .statuses = DB_REPLAY_ALL, .message_id = id };
	struct db_replay_result r;
	snprintf(by, sizeof(by), "api_key:%lld", (long long)req->api_key_id);
	if (db_replay_run(req->deps->pool, &f, by, 0, NULL, NULL, &r, err, sizeof(err)) < 0) {
		log_warn("event=retry_failed msg_id=%s error=\"%s\"", id, err);
		api_problem(req, 503, "unavailable", "the database is unavailable; try again");
		return API_DONE;
	}
	log_info("event=message_retry msg_id=%s requested_by=%s matched=%ld requeued=%ld skipped_suppressed=%ld",
		 id, by, r.matched, r.requeued, r.skipped_suppressed);
	if (req->deps->metrics && r.requeued > 0)
		metrics_counter_add(req->deps->metrics, MF_M_REPLAY_REQUEUED, "via=\"api\"", (double)r.requeued);
	json_t *body = result_json(&r);
	json_object_set_new(body, "id", json_string(id));
	api_json(req, 202, body);
	return API_DONE;
}

/* Parses the "status" member into bits; adds field errors to errs. */
static unsigned parse_statuses(json_t *v, json_t *errs)
{
	unsigned bits = 0;
	json_t *arr = json_is_string(v) ? json_pack("[O]", v) : json_incref(v);
	size_t i;
	json_t *it;
	if (!json_is_array(arr) || json_array_size(arr) == 0) {
		json_array_append_new(errs, api_field_error("status", "required",
							    "a list of failed, bounced, deferred"));
		json_decref(arr);
		return 0;
	}
	json_array_foreach(arr, i, it) {
		const char *s = json_string_value(it);
		if (s && strcmp(s, "failed") == 0)
			bits |= DB_REPLAY_FAILED;
		else if (s && strcmp(s, "bounced") == 0)
			bits |= DB_REPLAY_BOUNCED;
		else if (s && strcmp(s, "deferred") == 0)
			bits |= DB_REPLAY_DEFERRED;
		else
			json_array_append_new(errs, api_field_error("status", "invalid",
								    "each status must be failed, bounced or deferred"));
	}
	json_decref(arr);
	return bits;
}

/* A string member or NULL; adds an error when present but not a (valid) string. */
static const char *opt_string(json_t *obj, const char *name, int is_time, json_t *errs)
{
	json_t *v = json_object_get(obj, name);
	if (v == NULL || json_is_null(v))
		return NULL;
	const char *s = json_string_value(v);
	if (s == NULL || *s == '\0' || strlen(s) > MF_DOMAIN_MAX || (is_time && !rfc3339_valid(s))) {
		json_array_append_new(errs, api_field_error(name, "invalid",
							    is_time ? "must be an RFC 3339 date-time" :
								      "must be a non-empty string"));
		return NULL;
	}
	return s;
}

enum api_result api_post_replays(struct api_req *req)
{
	static const char *known[] = { "status", "created_after", "created_before", "recipient_domain", "tag",
				       "dry_run", "sample" };
	json_t *in = json_in_body_object(req);
	if (in == NULL)
		return API_DONE;
	json_t *errs = json_array();
	const char *key;
	json_t *v;
	json_object_foreach(in, key, v) {
		size_t k = 0;
		while (k < sizeof(known) / sizeof(known[0]) && strcmp(known[k], key) != 0)
			k++;
		if (k == sizeof(known) / sizeof(known[0]))
			json_array_append_new(errs, api_field_error(key, "unknown_field", "not a replay filter"));
	}
	struct db_replay_filter f = { 0 };
	f.statuses = parse_statuses(json_object_get(in, "status"), errs);
	f.created_after = opt_string(in, "created_after", 1, errs);
	f.created_before = opt_string(in, "created_before", 1, errs);
	f.domain = opt_string(in, "recipient_domain", 0, errs);
	f.tag = opt_string(in, "tag", 0, errs);
	json_t *dry = json_object_get(in, "dry_run");
	if (dry && !json_is_boolean(dry))
		json_array_append_new(errs, api_field_error("dry_run", "invalid", "must be true or false"));
	json_t *sample = json_object_get(in, "sample");
	if (sample && (!json_is_integer(sample) || json_integer_value(sample) < 0 ||
		       json_integer_value(sample) > MF_REPLAY_SAMPLE_MAX)) {
		char msg[32];
		snprintf(msg, sizeof(msg), "must be 0..%d", MF_REPLAY_SAMPLE_MAX);
		json_array_append_new(errs, api_field_error("sample", "invalid", msg));
	}
	if (json_array_size(errs) > 0) {
		api_problem_errors(req, 422, "validation_failed", "the replay filter is invalid", errs);
		json_decref(in);
		return API_DONE;
	}
	json_decref(errs);

	char err[512], by[48];
	struct db_replay_result r;
	int rc;
	snprintf(by, sizeof(by), "api_key:%lld", (long long)req->api_key_id);
	if (json_is_true(dry)) {
		json_t *arr = json_array();
		int n = sample ? (int)json_integer_value(sample) : SAMPLE_DEFAULT;
		rc = db_replay_count(req->deps->pool, &f, n, add_sample, arr, &r, err, sizeof(err));
		if (rc == 0) {
			json_t *body = result_json(&r);
			json_object_set_new(body, "dry_run", json_true());
			json_object_set_new(body, "would_requeue",
					    json_integer(r.matched - r.skipped_suppressed - r.skipped_expired));
			json_object_set_new(body, "sample", arr);
			api_json(req, 200, body);
		} else {
			json_decref(arr);
		}
	} else {
		rc = db_replay_run(req->deps->pool, &f, by, 0, NULL, NULL, &r, err, sizeof(err));
		if (rc == 0) {
			log_info("event=replay requested_by=%s matched=%ld requeued=%ld skipped_suppressed=%ld batches=%ld",
				 by, r.matched, r.requeued, r.skipped_suppressed, r.batches);
			if (req->deps->metrics && r.requeued > 0)
				metrics_counter_add(req->deps->metrics, MF_M_REPLAY_REQUEUED, "via=\"api\"",
						    (double)r.requeued);
			api_json(req, 202, result_json(&r));
		}
	}
	json_decref(in);
	if (rc < 0) {
		log_warn("event=replay_failed requested_by=%s error=\"%s\"", by, err);
		api_problem(req, 503, "unavailable", "the replay could not run; batches done so far stay done");
	}
	return API_DONE;
}
