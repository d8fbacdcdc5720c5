/*
 * console.c - GET /console/ and its files: the operations console, static
 * HTML, CSS and JavaScript compiled into the binary (api/console_assets.h).
 * The pages call the public /v1 API with a key the operator pastes; this
 * file serves files and nothing else, so it needs no authentication.
 *
 * Every answer carries a strict Content-Security-Policy (only our own
 * scripts, styles and API; no inline script or style, no framing), nosniff
 * and no-referrer.  Files are revalidated on every use (Cache-Control:
 * no-cache) against a strong ETag, so a new binary's console is picked up
 * at once and an unchanged file costs a 304 (RFC 9110 §13.1.2).
 */
#include <string.h>

#include "api/console_assets.h"
#include "api/handlers.h"
#include "api/http.h"
#include "api/respond.h"
#include "util/xmalloc.h"

#define CONSOLE_PREFIX "/console/"

static const char console_csp[] =
	"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
	"font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

static void security_headers(struct api_req *req)
{
	api_header(req, "Content-Security-Policy", console_csp);
	api_header(req, "X-Content-Type-Options", "nosniff");
	api_header(req, "Referrer-Policy", "no-referrer");
	api_header(req, "X-Frame-Options", "DENY");
}

/* 1 when an If-None-Match list (RFC 9110 §13.1.2) names etag or is "*". */
static int etag_matches(const char *inm, const char *etag)
{
	size_t elen = strlen(etag);
	const char *p = inm;
	while (p && *p) {
		p += strspn(p, " \t,");
		if (*p == '*')
			return 1;
		if (strncmp(p, "W/", 2) == 0)
			p += 2; /* weak comparison, as If-None-Match asks */
		size_t n = strcspn(p, ",");
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n == elen && memcmp(p, etag, n) == 0)
			return 1;
		p = strchr(p, ',');
	}
	return 0;
}

static const struct console_asset *asset_find(const char *name)
{
	for (int i = 0; i < console_assets_count; i++)
		if (strcmp(console_assets[i].path, name) == 0)
			return &console_assets[i];
	return NULL;
}

enum api_result api_get_console(struct api_req *req)
{
	security_headers(req);
	if (strncmp(req->path, CONSOLE_PREFIX, strlen(CONSOLE_PREFIX)) != 0) {
		/* "/console": the pages' relative links need the slash. */
		api_header(req, "Location", CONSOLE_PREFIX);
		api_text(req, 308, "text/plain; charset=utf-8", "see /console/\n");
		return API_DONE;
	}
	const char *name = req->path + strlen(CONSOLE_PREFIX);
	if (*name == '\0')
		name = "index.html";
	const struct console_asset *a = asset_find(name);
	if (a == NULL) {
		api_problem(req, 404, "not_found", "no such console page or file");
		return API_DONE;
	}
	api_header(req, "ETag", a->etag);
	api_header(req, "Cache-Control", "no-cache");
	const char *inm = api_req_header(req, "If-None-Match");
	if (inm && etag_matches(inm, a->etag)) {
		req->resp.status = 304;
		return API_DONE;
	}
	/* By length, not strlen: a file may hold any bytes. */
	char *body = xmalloc(a->len + 1);
	memcpy(body, a->data, a->len + 1);
	req->resp.status = 200;
	req->resp.content_type = a->content_type;
	req->resp.body = body;
	req->resp.body_len = a->len;
	return API_DONE;
}
