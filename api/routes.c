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
	{ "GET", "/healthz", API_SCOPE_NONE, BODY_SMALL, api_get_healthz, 0 },
	{ "GET", "/readyz", API_SCOPE_NONE, BODY_SMALL, api_get_readyz, 0 },
	{ "GET", "/metrics", API_SCOPE_NONE, BODY_SMALL, api_get_metrics, 0 },
	{ "POST", "/v1/messages/{id}/retry", API_SCOPE_SEND, BODY_SMALL, api_post_message_retry, 0 },
	{ "POST", "/v1/replays", API_SCOPE_ADMIN, BODY_SMALL, api_post_replays, 0 },
	{ "POST", "/v1/messages", API_SCOPE_SEND, BODY_MESSAGE, api_post_message, 0 },
	{ "GET", "/v1/messages", API_SCOPE_READ, BODY_SMALL, api_list_messages, 0 },
	{ "POST", "/v1/messages/batch", API_SCOPE_SEND, BODY_BATCH, api_post_message_batch, 0 },
	{ "GET", "/v1/messages/{id}", API_SCOPE_READ, BODY_SMALL, api_get_message, 0 },
	{ "POST", "/v1/messages/{id}/cancel", API_SCOPE_SEND, BODY_SMALL, api_cancel_message, 0 },
	{ "POST", "/v1/webhooks", API_SCOPE_ADMIN, BODY_SMALL, api_post_webhooks, 0 },
	{ "GET", "/v1/webhooks", API_SCOPE_ADMIN, BODY_SMALL, api_get_webhooks, 0 },
	{ "GET", "/v1/webhooks/{id}", API_SCOPE_ADMIN, BODY_SMALL, api_get_webhook, 0 },
	{ "PATCH", "/v1/webhooks/{id}", API_SCOPE_ADMIN, BODY_SMALL, api_patch_webhook, 0 },
	{ "DELETE", "/v1/webhooks/{id}", API_SCOPE_ADMIN, BODY_SMALL, api_delete_webhook, 0 },
	{ "POST", "/v1/webhooks/{id}/rotate", API_SCOPE_ADMIN, BODY_SMALL, api_post_webhook_rotate, 0 },
	{ "GET", "/v1/webhooks/{id}/deliveries", API_SCOPE_ADMIN, BODY_SMALL, api_get_webhook_deliveries, 0 },
	{ "POST", "/v1/webhooks/{id}/deliveries/{did}/retry", API_SCOPE_ADMIN, BODY_SMALL,
	  api_post_webhook_delivery_retry, 0 },
	{ "GET", "/v1/events", API_SCOPE_READ, BODY_SMALL, api_get_events, 0 },
	{ "GET", "/v1/suppressions", API_SCOPE_READ, BODY_SMALL, api_get_suppressions, 0 },
	{ "POST", "/v1/suppressions", API_SCOPE_SEND, BODY_SMALL, api_post_suppressions, 0 },
	{ "GET", "/v1/suppressions/{email}", API_SCOPE_READ, BODY_SMALL, api_get_suppression, 0 },
	{ "DELETE", "/v1/suppressions/{email}", API_SCOPE_ADMIN, BODY_SMALL, api_delete_suppression, 0 },
	/* api/domains.c */
	{ "POST", "/v1/domains", API_SCOPE_ADMIN, BODY_SMALL, api_post_domains, 0 },
	{ "GET", "/v1/domains", API_SCOPE_ADMIN, BODY_SMALL, api_get_domains, 0 },
	{ "GET", "/v1/domains/{domain}", API_SCOPE_ADMIN, BODY_SMALL, api_get_domain, 0 },
	{ "DELETE", "/v1/domains/{domain}", API_SCOPE_ADMIN, BODY_SMALL, api_delete_domain, 0 },
	{ "POST", "/v1/domains/{domain}/rotate", API_SCOPE_ADMIN, BODY_SMALL, api_post_domain_rotate, 0 },
	{ "POST", "/v1/domains/{domain}/verify", API_SCOPE_ADMIN, BODY_SMALL, api_post_domain_verify, 0 },
	/* api/bounces.c */
	{ "POST", "/v1/bounces", API_SCOPE_SEND, BODY_MESSAGE, api_post_bounces, 0 },
	/* api/keys.c: any valid key may ask what it is allowed */
	{ "GET", "/v1/keys/self", API_SCOPE_SEND | API_SCOPE_READ | API_SCOPE_ADMIN, BODY_SMALL, api_get_key_self, 0 },
	{ "GET", "/v1/keys", API_SCOPE_ADMIN, BODY_SMALL, api_get_keys, 0 },
	{ "POST", "/v1/keys", API_SCOPE_ADMIN, BODY_SMALL, api_post_keys, 0 },
	{ "DELETE", "/v1/keys/{id}", API_SCOPE_ADMIN, BODY_SMALL, api_delete_key, 0 },
	/* api/stats.c */
	{ "GET", "/v1/stats/overview", API_SCOPE_READ, BODY_SMALL, api_get_stats_overview, 0 },
	{ "GET", "/v1/stats/timeseries", API_SCOPE_READ, BODY_SMALL, api_get_stats_timeseries, 0 },
	/* api/console.c: static, public (the page asks for a key) */
	{ "GET", "/console", API_SCOPE_NONE, BODY_SMALL, api_get_console, ROUTE_CONSOLE },
	{ "GET", "/console/*", API_SCOPE_NONE, BODY_SMALL, api_get_console, ROUTE_CONSOLE },
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

/* Matches one pattern; on success stores the parameters in req. */
static int match(const char *pattern, const char *path, struct api_req *req)
{
	const char *p = pattern, *s = path;
	int n = 0;
	char *params[API_MAX_PARAMS];
	while (*p && *s) {
		if (p[0] == '*' && p[1] == '\0') {
			p++;
			s += strlen(s);
			break;
		}
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
	if (p[0] == '*' && p[1] == '\0' && *s == '\0')
		p++; /* a trailing star matches an empty rest too */
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
		if (req->deps && req->deps->health_only && (routes[i].scope != API_SCOPE_NONE || routes[i].flags & ROUTE_CONSOLE))
			continue;
		if ((routes[i].flags & ROUTE_CONSOLE) && req->deps && req->deps->cfg && !req->deps->cfg->console)
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
