/*
 * http.h - the request and response types that API handlers see.
 *
 * api/server.c owns the libmicrohttpd side and turns each HTTP request into
 * a struct api_req; a handler (api/routes.c lists them) fills a struct
 * api_resp.  Handlers never see libmicrohttpd.  JSON bodies are jansson
 * values: api_json() and api_problem*() take ownership of the json_t given.
 *
 * Asynchronous handlers (e.g. waiting for the group commit) return
 * API_SUSPEND after handing req to another thread, which fills req->resp and
 * calls api_req_complete(req) exactly once.
 */
#ifndef MF_API_HTTP_H
#define MF_API_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

struct api_deps;

enum api_scope { API_SCOPE_NONE = 0, API_SCOPE_SEND = 1, API_SCOPE_READ = 2, API_SCOPE_ADMIN = 4 };

#define API_MAX_PARAMS 4
#define API_MAX_HEADERS 8

enum api_result { API_DONE = 0, API_SUSPEND = 1 };

struct api_resp {
	int status;
	const char *content_type;     /* static string */
	char *body;                   /* owned */
	size_t body_len;
	int nheaders;
	char *hname[API_MAX_HEADERS]; /* owned */
	char *hvalue[API_MAX_HEADERS];
};

struct api_req {
	struct api_deps *deps;
	const char *method;
	const char *path;
	const char *route;            /* the route pattern matched, for metrics */
	char *params[API_MAX_PARAMS]; /* path parameters, {id} etc., owned */
	int nparams;
	struct buf body;
	int64_t api_key_id;           /* 0 when unauthenticated */
	unsigned scopes;
	struct api_resp resp;
	void *conn;                   /* the server's connection state */
};

/* Request accessors; returned strings are borrowed for the request's life. */
const char *api_req_header(struct api_req *req, const char *name);
const char *api_req_query(struct api_req *req, const char *name);

/* Response builders.  Each replaces any body set before. */
void api_json(struct api_req *req, int status, json_t *body);
void api_text(struct api_req *req, int status, const char *content_type, const char *text);
void api_header(struct api_req *req, const char *name, const char *value);
/* problem+json: {"type","title","status","code","detail"[,"errors"]}. */
void api_problem(struct api_req *req, int status, const char *code, const char *detail);
void api_problem_errors(struct api_req *req, int status, const char *code, const char *detail,
			json_t *errors);
/* One {"field","code","message"} entry for api_problem_errors(). */
json_t *api_field_error(const char *field, const char *code, const char *message);

/* Completes a request a handler returned API_SUSPEND for (any thread). */
void api_req_complete(struct api_req *req);

#endif
