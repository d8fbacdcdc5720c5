/*
 * http.h - the request type that API handlers see, and its accessors.
 *
 * api/server.c owns the libmicrohttpd side: it turns each HTTP request into
 * a struct api_req, implements the accessors below, and sends req->resp.
 * A handler (api/handlers.h, listed in api/routes.c) answers by filling
 * req->resp with the builders of api/respond.h.  Handlers never see
 * libmicrohttpd.
 *
 * Asynchronous handlers (e.g. waiting for the group commit) return
 * API_SUSPEND after handing req to another thread, which fills req->resp and
 * calls api_req_complete(req) exactly once.
 */
#ifndef MF_API_HTTP_H
#define MF_API_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "api/respond.h"
#include "util/buf.h"

struct api_deps;

enum api_scope { API_SCOPE_NONE = 0, API_SCOPE_SEND = 1, API_SCOPE_READ = 2, API_SCOPE_ADMIN = 4 };

#define API_MAX_PARAMS 4

enum api_result { API_DONE = 0, API_SUSPEND = 1 };

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
	struct api_resp resp;         /* the answer (api/respond.h) */
	void *conn;                   /* the server's connection state */
};

/* Request accessors (api/server.c); returned strings are borrowed for the
 * request's life, NULL when absent. */
const char *api_req_header(struct api_req *req, const char *name);
const char *api_req_query(struct api_req *req, const char *name);

/* Completes a request a handler returned API_SUSPEND for (any thread). */
void api_req_complete(struct api_req *req);

#endif
