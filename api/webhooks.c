/*
 * webhooks.c - the webhook endpoints and the event pull feed
 * (INTERFACE.md "Events and webhooks"; docs/openapi.yaml).
 *
 *   POST   /v1/webhooks                       create; the secret is shown here only
 *   GET    /v1/webhooks                       list
 *   GET    /v1/webhooks/{id}                  one endpoint
 *   PATCH  /v1/webhooks/{id}                  url, events, description, enabled
 *   DELETE /v1/webhooks/{id}                  204
 *   POST   /v1/webhooks/{id}/rotate           new secret; the old one signs for 24 h more
 *   GET    /v1/webhooks/{id}/deliveries       the delivery log, newest first, cursor
 *   POST   /v1/webhooks/{id}/deliveries/{did}/retry   202
 *   GET    /v1/events?after=CURSOR&limit=N    the feed, in commit order
 *
 * Request JSON becomes plain C values here; SQL lives in db/webhooks.c.
 * Cursors are opaque to clients (util/cursor.h): base64url of the keyset
 * position.
 */
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/handlers.h"
#include "api/json_in.h"
#include "db/webhooks.h"
#include "hooks/webhook_http.h"
#include "hooks/webhook_sign.h"
#include "util/buf.h"
#include "util/config.h"
#include "util/cursor.h"
#include "util/limits.h"
#include "util/log.h"

/* The event types an endpoint may subscribe to (INTERFACE.md). */
static const char *const event_types[] = {
	"message.queued",  "message.delivered",  "message.deferred", "message.bounced",
	"message.failed",  "message.suppressed", "message.canceled", "webhook.disabled",
	"suppression.created", "suppression.removed",
	"message.requeued", /* replay and retry (api/replays.c) */
	"domain.verified", "domain.verification_failed", /* sending domains (docs/domains.md) */
};
#define NEVENT_TYPES (sizeof(event_types) / sizeof(event_types[0]))

#define PUBLIC_ID_RANDOM 20
#define DELIVERY_PREFIX "dlv_"

/* --- helpers ------------------------------------------------------------- */

/* Parses a whole decimal number in [lo, hi]; -1 otherwise. */
static int parse_int64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
	if (s == NULL || *s == '\0' || strlen(s) > 20)
		return -1;
	for (const char *p = s; *p; p++)
		if (*p < '0' || *p > '9')
			return -1;
	char *end;
	long long v = strtoll(s, &end, 10);
	if (*end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* Reads ?limit (default def, 1..max); -1 with a 422 already answered. */
static int query_limit(struct api_req *req, int def, int max, int *out)
{
	const char *s = api_req_query(req, "limit");
	int64_t v = def;
	if (s && parse_int64(s, 1, max, &v) < 0) {
		char msg[96];
		snprintf(msg, sizeof(msg), "limit must be a whole number from 1 to %d", max);
		api_problem_errors(req, 422, "validation_failed", "invalid query parameter",
				   json_pack("[o]", api_field_error("limit", "invalid", msg)));
		return -1;
	}
	*out = (int)v;
	return 0;
}

static void db_error(struct api_req *req, const char *what, const char *err)
{
	log_error_limited("event=db_error op=%s error=%s", what, err);
	api_problem(req, 503, "unavailable", "the database is not available");
}

static json_t *nullable_str(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *webhook_json(const struct db_webhook_row *r)
{
	json_t *events = json_array();
	const char *p = r->events_csv;
	while (*p) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		json_array_append_new(events, json_stringn(p, n));
		p += n + (e ? 1 : 0);
	}
	return json_pack("{s:s, s:s, s:o, s:s, s:b, s:o, s:o, s:s, s:s}", "id", r->public_id, "url", r->url,
			 "events", events, "description", r->description, "enabled", r->enabled,
			 "disabled_reason", nullable_str(r->disabled_reason), "previous_secret_expires_at",
			 nullable_str(r->rotation_expires_at), "created_at", r->created_at, "updated_at",
			 r->updated_at);
}

static void collect_one(const struct db_webhook_row *row, void *arg)
{
	json_t **out = arg;
	json_decref(*out);
	*out = webhook_json(row);
}

static void collect_many(const struct db_webhook_row *row, void *arg)
{
	json_array_append_new(arg, webhook_json(row));
}

/* Index of an event type in event_types, or -1. */
static int event_type_index(const char *s)
{
	for (size_t i = 0; i < NEVENT_TYPES; i++)
		if (strcmp(s, event_types[i]) == 0)
			return (int)i;
	return -1;
}

/* Parsed and validated create/update fields.  Strings borrowed from the JSON. */
struct wh_input {
	const char *url, *description;
	struct buf events; /* csv; has_events when given */
	int has_events;
	int enabled;       /* -1 absent */
};

/*
 * Validates the body; on failure answers 400/422 and returns -1.  need_url:
 * create (url required).  The returned json_t owns the strings in in.
 */
static json_t *parse_input(struct api_req *req, int need_url, struct wh_input *in)
{
	memset(in, 0, sizeof(*in));
	in->enabled = -1;
	buf_init(&in->events, 64 * NEVENT_TYPES);
	json_t *body = json_in_body_object(req);
	if (body == NULL)
		return NULL;
	json_t *errors = json_array();
	const char *key;
	json_t *v;
	json_object_foreach(body, key, v) {
		if (strcmp(key, "url") == 0) {
			char why[256];
			if (!json_is_string(v)) {
				json_array_append_new(errors, api_field_error("url", "invalid", "must be a string"));
			} else if (webhook_url_check(json_string_value(v), req->deps->cfg->webhook_allow_private, why,
						     sizeof(why)) < 0) {
				json_array_append_new(errors, api_field_error("url", "invalid", why));
			} else {
				in->url = json_string_value(v);
			}
		} else if (strcmp(key, "description") == 0) {
			if (!json_is_string(v) || strlen(json_string_value(v)) > MF_WEBHOOK_DESCRIPTION_MAX) {
				char msg[64];
				snprintf(msg, sizeof(msg), "must be a string of at most %d bytes",
					 MF_WEBHOOK_DESCRIPTION_MAX);
				json_array_append_new(errors, api_field_error("description", "invalid", msg));
			}
			else
				in->description = json_string_value(v);
		} else if (strcmp(key, "enabled") == 0) {
			if (!json_is_boolean(v))
				json_array_append_new(errors, api_field_error("enabled", "invalid", "must be true or false"));
			else
				in->enabled = json_is_true(v);
		} else if (strcmp(key, "events") == 0) {
			size_t i;
			json_t *e;
			int seen[NEVENT_TYPES] = { 0 };
			in->has_events = 1;
			if (!json_is_array(v) || json_array_size(v) > NEVENT_TYPES * 2) {
				json_array_append_new(errors, api_field_error("events", "invalid",
									       "must be an array of event types"));
				continue;
			}
			json_array_foreach(v, i, e) {
				const char *t = json_string_value(e);
				int k = t ? event_type_index(t) : -1;
				if (k < 0) {
					char field[32];
					snprintf(field, sizeof(field), "events[%zu]", i);
					json_array_append_new(errors, api_field_error(field, "unknown_event_type",
										       "not an event type mailferry sends"));
					continue;
				}
				if (!seen[k]++) /* each type once */
					buf_printf(&in->events, "%s%s", in->events.len ? "," : "", t);
			}
		} else {
			json_array_append_new(errors, api_field_error(key, "unknown_field", "not a webhook field"));
		}
	}
	if (need_url && in->url == NULL && !json_object_get(body, "url"))
		json_array_append_new(errors, api_field_error("url", "required", "the endpoint URL is required"));
	if (json_array_size(errors) > 0) {
		api_problem_errors(req, 422, "validation_failed", "the webhook is not valid", errors);
		json_decref(body);
		buf_cleanup(&in->events);
		return NULL;
	}
	json_decref(errors);
	return body;
}

/* --- endpoints ----------------------------------------------------------- */

enum api_result api_post_webhooks(struct api_req *req)
{
	struct wh_input in;
	json_t *body = parse_input(req, 1, &in);
	if (body == NULL)
		return API_DONE;
	unsigned char rnd[PUBLIC_ID_RANDOM];
	char public_id[4 + PUBLIC_ID_RANDOM], secret[WEBHOOK_SECRET_LEN], err[512];
	static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	if (RAND_bytes(rnd, sizeof(rnd)) != 1 || webhook_secret_new(secret, sizeof(secret)) < 0) {
		api_problem(req, 500, "internal", "no randomness available");
		goto out;
	}
	memcpy(public_id, "wh_", 3);
	for (int i = 0; i < PUBLIC_ID_RANDOM; i++)
		public_id[3 + i] = alnum[rnd[i] % 36];
	public_id[3 + PUBLIC_ID_RANDOM] = '\0';
	json_t *out = NULL;
	if (db_webhook_insert(req->deps->pool, public_id, in.url, buf_cstr(&in.events),
			      in.description ? in.description : "", in.enabled != 0, secret, collect_one, &out, err,
			      sizeof(err)) < 0 || out == NULL) {
		json_decref(out);
		db_error(req, "webhook_insert", err);
		goto out;
	}
	json_object_set_new(out, "secret", json_string(secret));
	OPENSSL_cleanse(secret, sizeof(secret));
	char loc[64];
	snprintf(loc, sizeof(loc), "/v1/webhooks/%s", public_id);
	api_location(req, loc);
	log_info("event=webhook_created webhook=%s", public_id);
	api_json(req, 201, out);
out:
	buf_cleanup(&in.events);
	json_decref(body);
	return API_DONE;
}

enum api_result api_get_webhooks(struct api_req *req)
{
	char err[512];
	json_t *data = json_array();
	if (db_webhook_list(req->deps->pool, collect_many, data, err, sizeof(err)) < 0) {
		json_decref(data);
		db_error(req, "webhook_list", err);
		return API_DONE;
	}
	api_json(req, 200, json_pack("{s:o, s:b, s:n}", "data", data, "has_more", 0, "next_cursor"));
	return API_DONE;
}

enum api_result api_get_webhook(struct api_req *req)
{
	char err[512];
	json_t *out = NULL;
	int rc = db_webhook_get(req->deps->pool, req->params[0], collect_one, &out, err, sizeof(err));
	if (rc < 0)
		db_error(req, "webhook_get", err);
	else if (rc == 0)
		api_problem(req, 404, "not_found", "no such webhook");
	else
		api_json(req, 200, out), out = NULL;
	json_decref(out);
	return API_DONE;
}

enum api_result api_patch_webhook(struct api_req *req)
{
	struct wh_input in;
	json_t *body = parse_input(req, 0, &in);
	if (body == NULL)
		return API_DONE;
	char err[512];
	struct db_webhook_patch p = {
		.url = in.url,
		.events_csv = in.has_events ? buf_cstr(&in.events) : NULL,
		.description = in.description,
		.enabled = in.enabled,
	};
	json_t *out = NULL;
	int rc = db_webhook_update(req->deps->pool, req->params[0], &p, collect_one, &out, err, sizeof(err));
	if (rc < 0)
		db_error(req, "webhook_update", err);
	else if (rc == 0)
		api_problem(req, 404, "not_found", "no such webhook");
	else
		api_json(req, 200, out), out = NULL;
	json_decref(out);
	buf_cleanup(&in.events);
	json_decref(body);
	return API_DONE;
}

enum api_result api_delete_webhook(struct api_req *req)
{
	char err[512];
	int rc = db_webhook_delete(req->deps->pool, req->params[0], err, sizeof(err));
	if (rc < 0) {
		db_error(req, "webhook_delete", err);
	} else if (rc == 0) {
		api_problem(req, 404, "not_found", "no such webhook");
	} else {
		log_info("event=webhook_deleted webhook=%s", req->params[0]);
		api_text(req, 204, NULL, "");
	}
	return API_DONE;
}

enum api_result api_post_webhook_rotate(struct api_req *req)
{
	char secret[WEBHOOK_SECRET_LEN], err[512];
	if (webhook_secret_new(secret, sizeof(secret)) < 0) {
		api_problem(req, 500, "internal", "no randomness available");
		return API_DONE;
	}
	json_t *out = NULL;
	int rc = db_webhook_rotate(req->deps->pool, req->params[0], secret, MF_WEBHOOK_ROTATION_GRACE, collect_one,
				   &out, err, sizeof(err));
	if (rc < 0) {
		db_error(req, "webhook_rotate", err);
	} else if (rc == 0) {
		api_problem(req, 404, "not_found", "no such webhook");
	} else {
		json_object_set_new(out, "secret", json_string(secret));
		log_info("event=webhook_secret_rotated webhook=%s", req->params[0]);
		api_json(req, 200, out);
		out = NULL;
	}
	OPENSSL_cleanse(secret, sizeof(secret));
	json_decref(out);
	return API_DONE;
}

struct delivery_page {
	json_t *data;
	int64_t last_id;
};

static void collect_delivery(const struct db_delivery_row *r, void *arg)
{
	struct delivery_page *pg = arg;
	char id[32];
	snprintf(id, sizeof(id), DELIVERY_PREFIX "%" PRId64, r->id);
	json_array_append_new(pg->data,
		json_pack("{s:s, s:s, s:s, s:s, s:i, s:o, s:o, s:o, s:o, s:s, s:s}", "id", id, "event_id",
			  r->event_id, "event_type", r->event_type, "status", r->status, "attempts", r->attempts,
			  "last_http_status", r->last_http_status ? json_integer(r->last_http_status) : json_null(),
			  "last_error", nullable_str(r->last_error), "next_attempt_at",
			  nullable_str(r->next_attempt_at), "last_attempt_at", nullable_str(r->last_attempt_at),
			  "created_at", r->created_at, "updated_at", r->updated_at));
	pg->last_id = r->id;
}

enum api_result api_get_webhook_deliveries(struct api_req *req)
{
	char err[512];
	int limit;
	int64_t before = 0;
	if (query_limit(req, 50, MF_DELIVERIES_PAGE_MAX, &limit) < 0)
		return API_DONE;
	const char *after = api_req_query(req, "after");
	if (after && *after) {
		if (cursor_decode_nums(after, "d", &before, 1) < 0 || before < 1) {
			api_problem_errors(req, 422, "validation_failed", "invalid query parameter",
					   json_pack("[o]", api_field_error("after", "invalid", "not a cursor from this API")));
			return API_DONE;
		}
	}
	int rc = db_webhook_get(req->deps->pool, req->params[0], NULL, NULL, err, sizeof(err));
	if (rc <= 0) {
		if (rc < 0)
			db_error(req, "webhook_get", err);
		else
			api_problem(req, 404, "not_found", "no such webhook");
		return API_DONE;
	}
	struct delivery_page pg = { .data = json_array() };
	rc = db_webhook_deliveries(req->deps->pool, req->params[0], before, limit + 1, collect_delivery, &pg, err,
				   sizeof(err));
	if (rc < 0) {
		json_decref(pg.data);
		db_error(req, "webhook_deliveries", err);
		return API_DONE;
	}
	int has_more = rc > limit;
	json_t *next = json_null();
	if (has_more) {
		json_array_remove(pg.data, (size_t)limit);
		json_t *last = json_array_get(pg.data, (size_t)limit - 1);
		const char *lid = json_string_value(json_object_get(last, "id"));
		char enc[CURSOR_LEN];
		if (cursor_encode("d", lid + strlen(DELIVERY_PREFIX), enc, sizeof(enc)) == 0) {
			json_decref(next);
			next = json_string(enc);
		}
	}
	api_json(req, 200, json_pack("{s:o, s:b, s:o}", "data", pg.data, "has_more", has_more, "next_cursor", next));
	return API_DONE;
}

enum api_result api_post_webhook_delivery_retry(struct api_req *req)
{
	char err[512];
	const char *did = req->params[1];
	int64_t id;
	if (strncmp(did, DELIVERY_PREFIX, strlen(DELIVERY_PREFIX)) == 0)
		did += strlen(DELIVERY_PREFIX);
	if (parse_int64(did, 1, INT64_MAX, &id) < 0) {
		api_problem(req, 404, "not_found", "no such delivery");
		return API_DONE;
	}
	int rc = db_webhook_delivery_retry(req->deps->pool, req->params[0], id, err, sizeof(err));
	if (rc < 0) {
		db_error(req, "webhook_delivery_retry", err);
	} else if (rc == 0) {
		api_problem(req, 404, "not_found", "no such delivery");
	} else {
		log_info("event=webhook_delivery_requeued webhook=%s delivery=%" PRId64, req->params[0], id);
		api_json(req, 202, json_pack("{s:s, s:s}", "id", req->params[1], "status", "pending"));
	}
	return API_DONE;
}

struct feed_page {
	json_t *data;
	char last_txid[32];
	int64_t last_id;
	int n, limit;
};

static void collect_event(const struct db_event_row *r, void *arg)
{
	struct feed_page *pg = arg;
	if (pg->n++ >= pg->limit)
		return;
	json_error_t jerr;
	json_t *ev = json_loads(r->payload, 0, &jerr);
	json_array_append_new(pg->data, ev ? ev : json_null());
	snprintf(pg->last_txid, sizeof(pg->last_txid), "%s", r->txid);
	pg->last_id = r->id;
}

enum api_result api_get_events(struct api_req *req)
{
	char err[512], txid[32] = "0";
	int64_t after_id = 0;
	int limit;
	if (query_limit(req, 100, MF_EVENTS_PAGE_MAX, &limit) < 0)
		return API_DONE;
	const char *after = api_req_query(req, "after");
	if (after && *after) {
		int64_t pos[2];
		if (cursor_decode_nums(after, "e", pos, 2) < 0) {
			api_problem_errors(req, 422, "validation_failed", "invalid query parameter",
					   json_pack("[o]", api_field_error("after", "invalid", "not a cursor from this API")));
			return API_DONE;
		}
		snprintf(txid, sizeof(txid), "%" PRId64, pos[0]);
		after_id = pos[1];
	}
	struct feed_page pg = { .data = json_array(), .limit = limit };
	int rc = db_events_feed(req->deps->pool, txid, after_id, limit + 1, collect_event, &pg, err, sizeof(err));
	if (rc < 0) {
		json_decref(pg.data);
		db_error(req, "events_feed", err);
		return API_DONE;
	}
	/* The cursor after the last event returned; with nothing new, the
	 * one the client sent, so polling with next_cursor always works. */
	json_t *next;
	if (pg.n > 0) {
		char pos[80], enc[CURSOR_LEN];
		snprintf(pos, sizeof(pos), "%s.%" PRId64, pg.last_txid, pg.last_id);
		next = cursor_encode("e", pos, enc, sizeof(enc)) == 0 ? json_string(enc) : json_null();
	} else {
		next = after && *after ? json_string(after) : json_null();
	}
	api_json(req, 200, json_pack("{s:o, s:b, s:o}", "data", pg.data, "has_more", rc > limit, "next_cursor", next));
	return API_DONE;
}
