/*
 * keys.c - API keys over the API, as "mailferry keys" does on the command
 * line (api/auth.c makes and checks them, db/keys.c stores them):
 *   GET    /v1/keys/self   the calling key: id, name, scopes (any valid key;
 *                          the console hides what the scopes do not allow)
 *   GET    /v1/keys        every key, oldest first, without secrets (admin)
 *   POST   /v1/keys        {"name","scopes":[...]}: the secret is in this
 *                          answer only (admin)
 *   DELETE /v1/keys/{id}   revoke (admin); a key cannot revoke itself
 * A revoked key may still be accepted for the few seconds api/auth.c
 * caches a key's verdict.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/auth.h"
#include "api/handlers.h"
#include "api/http.h"
#include "api/json_in.h"
#include "api/respond.h"
#include "db/keys.h"
#include "util/log.h"

#define KEY_NAME_MAX 100

static void unavailable(struct api_req *req, const char *what, const char *err)
{
	log_error_limited("event=db_error op=%s error=%s", what, err);
	api_problem(req, 503, "unavailable", "the database is unavailable; try again");
}

static json_t *scopes_json(unsigned scopes)
{
	json_t *a = json_array();
	if (scopes & API_SCOPE_SEND)
		json_array_append_new(a, json_string("send"));
	if (scopes & API_SCOPE_READ)
		json_array_append_new(a, json_string("read"));
	if (scopes & API_SCOPE_ADMIN)
		json_array_append_new(a, json_string("admin"));
	return a;
}

static json_t *opt_str(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

static json_t *key_json(const struct db_key_row *r)
{
	unsigned scopes = 0;
	if (api_scopes_parse(r->scopes, &scopes) < 0)
		scopes = 0;
	return json_pack("{s:I, s:s, s:s, s:o, s:o, s:o, s:o}", "id", (json_int_t)r->id, "name", r->name ? r->name : "",
			 "public_id", r->public_id ? r->public_id : "", "scopes", scopes_json(scopes), "created_at",
			 opt_str(r->created_at), "last_used_at", opt_str(r->last_used_at), "revoked_at",
			 opt_str(r->revoked_at));
}

struct key_find {
	int64_t id;     /* 0: every key */
	json_t *found;  /* the one key, or the array of all */
};

static void key_row(const struct db_key_row *row, void *arg)
{
	struct key_find *f = arg;
	if (f->id == 0)
		json_array_append_new(f->found, key_json(row));
	else if (row->id == f->id && f->found == NULL)
		f->found = key_json(row);
}

enum api_result api_get_key_self(struct api_req *req)
{
	char err[512];
	struct key_find f = { .id = req->api_key_id };
	if (db_key_list(req->deps->pool, key_row, &f, err, sizeof(err)) < 0) {
		unavailable(req, "key_list", err);
		return API_DONE;
	}
	if (f.found == NULL) {
		api_problem(req, 404, "not_found", "this key is not in the key list");
		return API_DONE;
	}
	/* The scopes the request was authenticated with. */
	json_object_set_new(f.found, "scopes", scopes_json(req->scopes));
	api_json(req, 200, f.found);
	return API_DONE;
}

enum api_result api_get_keys(struct api_req *req)
{
	char err[512];
	struct key_find f = { .found = json_array() };
	if (db_key_list(req->deps->pool, key_row, &f, err, sizeof(err)) < 0) {
		json_decref(f.found);
		unavailable(req, "key_list", err);
		return API_DONE;
	}
	api_json(req, 200, json_pack("{s:o}", "data", f.found));
	return API_DONE;
}

static void invalid(struct api_req *req, const char *field, const char *msg)
{
	api_problem_errors(req, 422, "validation_failed", "the key cannot be created",
			   json_pack("[o]", api_field_error(field, "invalid", msg)));
}

enum api_result api_post_keys(struct api_req *req)
{
	json_t *in = json_in_body_object(req);
	if (in == NULL)
		return API_DONE;
	const char *name = json_string_value(json_object_get(in, "name"));
	json_t *sc = json_object_get(in, "scopes");
	unsigned scopes = 0;
	size_t i;
	json_t *v;
	if (name == NULL || *name == '\0' || strlen(name) > KEY_NAME_MAX) {
		invalid(req, "name", "name must be a string of 1 to 100 characters");
		json_decref(in);
		return API_DONE;
	}
	if (!json_is_array(sc) || json_array_size(sc) == 0) {
		invalid(req, "scopes", "scopes must be a non-empty array of send, read, admin");
		json_decref(in);
		return API_DONE;
	}
	json_array_foreach(sc, i, v) {
		unsigned one;
		if (!json_is_string(v) || strchr(json_string_value(v), ',') ||
		    api_scopes_parse(json_string_value(v), &one) < 0) {
			invalid(req, "scopes", "scopes must be a non-empty array of send, read, admin");
			json_decref(in);
			return API_DONE;
		}
		scopes |= one;
	}
	char key[128], err[512];
	int64_t id;
	if (api_key_create(req->deps->pool, name, scopes, key, sizeof(key), &id, err, sizeof(err)) < 0) {
		json_decref(in);
		unavailable(req, "key_create", err);
		return API_DONE;
	}
	log_info("event=api_key_created key_id=%" PRId64 " by_key_id=%" PRId64, id, req->api_key_id);
	char loc[64];
	snprintf(loc, sizeof(loc), "/v1/keys/%" PRId64, id);
	api_location(req, loc);
	api_json(req, 201, json_pack("{s:I, s:s, s:o, s:s}", "id", (json_int_t)id, "name", name, "scopes",
				     scopes_json(scopes), "key", key));
	json_decref(in);
	return API_DONE;
}

enum api_result api_delete_key(struct api_req *req)
{
	char *end;
	long long id = strtoll(req->params[0], &end, 10);
	if (*end != '\0' || id <= 0) {
		api_problem(req, 404, "not_found", "no such key");
		return API_DONE;
	}
	if (id == req->api_key_id) {
		api_problem_errors(req, 422, "validation_failed", "a key cannot revoke itself",
				   json_pack("[o]", api_field_error("id", "self", "sign in with another admin key to revoke this one")));
		return API_DONE;
	}
	char err[512];
	int rc = db_key_revoke(req->deps->pool, id, err, sizeof(err));
	if (rc < 0) {
		unavailable(req, "key_revoke", err);
		return API_DONE;
	}
	if (rc == 0) {
		api_problem(req, 404, "not_found", "no such key, or it is revoked already");
		return API_DONE;
	}
	log_info("event=api_key_revoked key_id=%lld by_key_id=%" PRId64, id, req->api_key_id);
	api_text(req, 204, NULL, "");
	return API_DONE;
}
