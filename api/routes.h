/*
 * routes.h - the API's route table (api/routes.c): method, path pattern,
 * scope, body limit, handler (api/handlers.h).  api/server.c matches each
 * request against it.
 *
 * Patterns are literal segments and "{name}" parameters; a pattern that
 * ends in "*" matches any rest of the path (the console's static files).  api_route_match()
 * fills req->params in order and returns the route, or NULL; *path_known is
 * set when some route has the path with another method (405 instead of 404).
 */
#ifndef MF_API_ROUTES_H
#define MF_API_ROUTES_H

#include <stddef.h>

#include "api/http.h"

struct config;

enum api_body_limit { BODY_SMALL, BODY_MESSAGE, BODY_BATCH };

struct api_route {
	const char *method;
	const char *pattern;
	unsigned scope;           /* API_SCOPE_*: required scope, NONE = public */
	enum api_body_limit body;
	enum api_result (*handler)(struct api_req *req);
	unsigned flags;           /* ROUTE_* */
};

/* The operations console (api/console.c): served only when cfg->console,
 * only on http_listen, and only by a process with the api role. */
#define ROUTE_CONSOLE 1u

const struct api_route *api_route_match(const char *method, const char *path, struct api_req *req,
					int *path_known);
/* The largest request body r accepts (r NULL: the small limit). */
size_t api_route_body_max(const struct api_route *r, const struct config *cfg);

#endif
