/*
 * routes.c - the table of API routes (see routes.h).  Adding an endpoint is
 * one line here plus its handler; docs/openapi.yaml must list it too (a
 * test checks that every documented path answers).
 */
#include "api/routes.h"

#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/handlers.h"
#include "util/config.h"
#include "util/limits.h"
#include "util/xmalloc.h"

static const struct api_route routes[] = {
	{ "GET", "/healthz", API_SCOPE_NONE, BODY_SMALL, api_get_healthz },
	{ "GET", "/readyz", API_SCOPE_NONE, BODY_SMALL, api_get_readyz },
	{ "GET", "/metrics", API_SCOPE_NONE, BODY_SMALL, api_get_metrics },
	{ "POST", "/v1/messages/{id}/retry", API_SCOPE_SEND, BODY_SMALL, api_post_message_retry },
	{ "POST", "/v1/replays", API_SCOPE_ADMIN, BODY_SMALL, api_post_replays },
	{ "POST", "/v1/messages", API_SCOPE_SEND, BODY_MESSAGE, api_post_message },
	{ "GET", "/v1/messages", API_SCOPE_READ, BODY_SMALL, api_list_messages },
	{ "POST", "/v1/messages/batch", API_SCOPE_SEND, BODY_BATCH, api_post_message_batch },
	{ "GET", "/v1/messages/{id}", API_SCOPE_READ, BODY_SMALL, api_get_message },
	{ "POST", "/v1/messages/{id}/cancel", API_SCOPE_SEND, BODY_SMALL, api_cancel_message },
	{ "POST", "/v1/webhooks", API_SCOPE_ADMIN, BODY_SMALL, api_post_webhooks },
	{ "GET", "/v1/webhooks", API_SCOPE_ADMIN, BODY_SMALL, api_get_webhooks },
	{ "GET", "/v1/webhooks/{id}", API_SCOPE_ADMIN, BODY_SMALL, api_get_webhook },
	{ "PATCH", "/v1/webhooks/{id}", API_SCOPE_ADMIN, BODY_SMALL, api_patch_webhook },
	{ "DELETE", "/v1/webhooks/{id}", API_SCOPE_ADMIN, BODY_SMALL, api_delete_webhook },
	{ "POST", "/v1/webhooks/{id}/rotate", API_SCOPE_ADMIN, BODY_SMALL, api_post_webhook_rotate },
	{ "GET", "/v1/webhooks/{id}/deliveries", API_SCOPE_ADMIN, BODY_SMALL, api_get_webhook_deliveries },
	{ "POST", "/v1/webhooks/{id}/deliveries/{did}/retry", API_SCOPE_ADMIN, BODY_SMALL,
	  api_post_webhook_delivery_retry },
	{ "GET", "/v1/events", API_SCOPE_READ, BODY_SMALL, api_get_events },
	{ "GET", "/v1/suppressions", API_SCOPE_READ, BODY_SMALL, api_get_suppressions },
	{ "POST", "/v1/suppressions", API_SCOPE_SEND, BODY_SMALL, api_post_suppressions },
	{ "GET", "/v1/suppressions/{email}", API_SCOPE_READ, BODY_SMALL, api_get_suppression },
	{ "DELETE", "/v1/suppressions/{email}", API_SCOPE_ADMIN, BODY_SMALL, api_delete_suppression },
	/* api/domains.c */
	{ "POST", "/v1/domains", API_SCOPE_ADMIN, BODY_SMALL, api_post_domains },
	{ "GET", "/v1/domains", API_SCOPE_ADMIN, BODY_SMALL, api_get_domains },
	{ "GET", "/v1/domains/{domain}", API_SCOPE_ADMIN, BODY_SMALL, api_get_domain },
	{ "DELETE", "/v1/domains/{domain}", API_SCOPE_ADMIN, BODY_SMALL, api_delete_domain },
	{ "POST", "/v1/domains/{domain}/rotate", API_SCOPE_ADMIN, BODY_SMALL, api_post_domain_rotate },
	{ "POST", "/v1/domains/{domain}/verify", API_SCOPE_ADMIN, BODY_SMALL, api_post_domain_verify },
	/* api/bounces.c */
	{ "POST", "/v1/bounces", API_SCOPE_SEND, BODY_MESSAGE, api_post_bounces },
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

/* Matches one pattern; on success stores the parameters in req. */
static int match(const char *pattern, const char *path, struct api_req *req)
{
	const char *p = pattern, *s = path;
	int n = 0;
	char *params[API_MAX_PARAMS];
	while (*p && *s) {
		if (*p == '{') {
			const char *pe = strchr(p, '}');
			const char *se = strchr(s, '/');
			size_t len = se ? (size_t)(se - s) : strlen(s);
			if (len == 0 || n == API_MAX_PARAMS)
				break;
			params[n++] = xstrndup(s, len);
			p = pe + 1;
			s += len;
			continue;
		}
		if (*p != *s)
			break;
		p++, s++;
	}
	if (*p || *s) {
		for (int i = 0; i < n; i++)
			free(params[i]);
		return 0;
	}
	for (int i = 0; i < n; i++)
		req->params[i] = params[i];
	req->nparams = n;
	return 1;
}

const struct api_route *api_route_match(const char *method, const char *path, struct api_req *req,
					int *path_known)
{
	*path_known = 0;
	for (size_t i = 0; i < NROUTES; i++) {
		struct api_req probe = { 0 };
		/* A process without the api role serves only health and metrics. */
		if (req->deps && req->deps->health_only && routes[i].scope != API_SCOPE_NONE)
			continue;
		if (!match(routes[i].pattern, path, &probe))
			continue;
		if (strcmp(routes[i].method, method) == 0) {
			for (int k = 0; k < probe.nparams; k++)
				req->params[k] = probe.params[k];
			req->nparams = probe.nparams;
			return &routes[i];
		}
		for (int k = 0; k < probe.nparams; k++)
			free(probe.params[k]);
		*path_known = 1;
	}
	return NULL;
}

size_t api_route_body_max(const struct api_route *r, const struct config *cfg)
{
	switch (r ? r->body : BODY_SMALL) {
	case BODY_MESSAGE:
		/* base64 inflates attachments by 4/3; leave room for the JSON. */
		return (size_t)cfg->max_message_size / 3 * 4 + 256 * 1024;
	case BODY_BATCH:
		return MF_API_BATCH_BODY_MAX;
	case BODY_SMALL:
	default:
		return 1024 * 1024;
	}
}
