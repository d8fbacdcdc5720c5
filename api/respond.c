/*
 * respond.c - the response builders of respond.h: JSON and problem+json
 * bodies and response headers, written into a struct api_resp.
 *
 * No libmicrohttpd here (api/server.c sends the struct); out of memory is
 * fatal (util/xmalloc.h), so none of these fail.  jansson allocates with
 * malloc by default, so the rendered body is freed with free().
 */
#include "api/respond.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/http.h"
#include "util/limits.h"
#include "util/xmalloc.h"

static void set_body(struct api_resp *r, int status, const char *ctype, char *body, size_t len)
{
	free(r->body);
	r->status = status;
	r->content_type = ctype;
	r->body = body;
	r->body_len = len;
}

void api_resp_json(struct api_resp *r, int status, json_t *body)
{
	char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (s == NULL)
		s = xstrdup("{}");
	set_body(r, status, "application/json", s, strlen(s));
}

void api_resp_text(struct api_resp *r, int status, const char *content_type, const char *text)
{
	set_body(r, status, content_type, xstrdup(text), strlen(text));
}

void api_resp_header(struct api_resp *r, const char *name, const char *value)
{
	if (r->nheaders == API_MAX_HEADERS)
		return;
	r->hname[r->nheaders] = xstrdup(name);
	r->hvalue[r->nheaders] = xstrdup(value);
	r->nheaders++;
}

const char *api_resp_header_get(const struct api_resp *r, const char *name)
{
	for (int i = 0; i < r->nheaders; i++)
		if (strcasecmp(r->hname[i], name) == 0)
			return r->hvalue[i];
	return NULL;
}

const char *api_status_title(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Error";
	}
}

json_t *api_field_error(const char *field, const char *code, const char *message)
{
	return json_pack("{s:s, s:s, s:s}", "field", field, "code", code, "message", message);
}

void api_resp_problem(struct api_resp *r, int status, const char *code, const char *detail,
		      json_t *errors)
{
	char type[128];
	snprintf(type, sizeof(type), "https://mailferry.dev/problems/%s", code);
	json_t *p = json_pack("{s:s, s:s, s:i, s:s, s:s}", "type", type, "title", api_status_title(status),
			      "status", status, "code", code, "detail", detail ? detail : "");
	if (errors)
		json_object_set_new(p, "errors", errors);
	api_resp_json(r, status, p);
	r->content_type = "application/problem+json";
	/* Every 503 says when to come back (RFC 9110 §10.2.3, §15.6.4). */
	if (status == 503 && api_resp_header_get(r, "Retry-After") == NULL)
		api_resp_header(r, "Retry-After", MF_UNAVAILABLE_RETRY_AFTER);
}

void api_resp_cleanup(struct api_resp *r)
{
	free(r->body);
	for (int i = 0; i < r->nheaders; i++) {
		free(r->hname[i]);
		free(r->hvalue[i]);
	}
	memset(r, 0, sizeof(*r));
}

void api_json(struct api_req *req, int status, json_t *body)
{
	api_resp_json(&req->resp, status, body);
}

void api_text(struct api_req *req, int status, const char *content_type, const char *text)
{
	api_resp_text(&req->resp, status, content_type, text);
}

void api_header(struct api_req *req, const char *name, const char *value)
{
	api_resp_header(&req->resp, name, value);
}

void api_problem(struct api_req *req, int status, const char *code, const char *detail)
{
	api_resp_problem(&req->resp, status, code, detail, NULL);
}

void api_problem_errors(struct api_req *req, int status, const char *code, const char *detail,
			json_t *errors)
{
	api_resp_problem(&req->resp, status, code, detail, errors);
}

void api_location(struct api_req *req, const char *path)
{
	api_resp_header(&req->resp, "Location", path);
}

void api_retry_after(struct api_req *req, const char *seconds)
{
	api_resp_header(&req->resp, "Retry-After", seconds);
}
