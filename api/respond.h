/*
 * respond.h - how API handlers answer: the response a handler fills
 * (struct api_resp) and the functions that fill it, implemented in
 * api/respond.c.
 *
 * Nothing here touches libmicrohttpd or a connection: api/server.c hands
 * the finished struct api_resp to libmicrohttpd.  So these functions can be
 * tested on a bare struct (tests/api/test_respond.c).
 *
 * Bodies: api_resp_json() renders a jansson value (taking ownership of it)
 * as application/json; api_resp_problem*() render problem+json (RFC 9457)
 * in the shape of INTERFACE.md: {"type","title","status","code","detail"
 * [,"errors":[{"field","code","message"}]]}.  Each body setter replaces any
 * body set before; headers accumulate (at most API_MAX_HEADERS, later ones
 * dropped).  Every 503 carries Retry-After (RFC 9110 §10.2.3, §15.6.4).
 * The struct owns its body and header strings; api_resp_cleanup() frees
 * them and leaves an empty response.
 *
 * The api_json(req, ...) family does the same on req->resp, for handlers.
 */
#ifndef MF_API_RESPOND_H
#define MF_API_RESPOND_H

#include <jansson.h>
#include <stddef.h>

#define API_MAX_HEADERS 8

struct api_resp {
	int status;                   /* 0: nothing answered yet */
	const char *content_type;     /* static string */
	char *body;                   /* owned */
	size_t body_len;
	int nheaders;
	char *hname[API_MAX_HEADERS]; /* owned */
	char *hvalue[API_MAX_HEADERS];
};

struct api_req;

/* --- on a bare response -------------------------------------------------- */

void api_resp_json(struct api_resp *r, int status, json_t *body);
void api_resp_text(struct api_resp *r, int status, const char *content_type, const char *text);
void api_resp_header(struct api_resp *r, const char *name, const char *value);
/* The value of a header already set (case-insensitive name), or NULL. */
const char *api_resp_header_get(const struct api_resp *r, const char *name);
/* problem+json; errors (owned, may be NULL) becomes "errors". */
void api_resp_problem(struct api_resp *r, int status, const char *code, const char *detail,
		      json_t *errors);
void api_resp_cleanup(struct api_resp *r);

/* The reason phrase used as a problem's "title" (RFC 9110 §15), or "Error". */
const char *api_status_title(int status);
/* One {"field","code","message"} entry for a problem's "errors". */
json_t *api_field_error(const char *field, const char *code, const char *message);

/* --- on the request's response, for handlers ----------------------------- */

void api_json(struct api_req *req, int status, json_t *body);
void api_text(struct api_req *req, int status, const char *content_type, const char *text);
void api_header(struct api_req *req, const char *name, const char *value);
void api_problem(struct api_req *req, int status, const char *code, const char *detail);
void api_problem_errors(struct api_req *req, int status, const char *code, const char *detail,
			json_t *errors);
/* Location: of a created resource (RFC 9110 §10.2.2). */
void api_location(struct api_req *req, const char *path);
/* Retry-After: in seconds (RFC 9110 §10.2.3). */
void api_retry_after(struct api_req *req, const char *seconds);

#endif
