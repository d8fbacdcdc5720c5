/*
 * handlers.h - the API's request handlers, one per route; api/routes.c
 * puts them in the route table, each is defined in the file named above
 * its group below.  A handler reads its request (api/http.h), answers
 * with api/respond.h's builders into req->resp and returns API_DONE, or
 * returns API_SUSPEND and completes later (api/http.h).  Authentication
 * has already been done by api/server.c when the route needs a scope.
 */
#ifndef MF_API_HANDLERS_H
#define MF_API_HANDLERS_H

#include "api/http.h"

/* api/health.c */
enum api_result api_get_healthz(struct api_req *req);
enum api_result api_get_readyz(struct api_req *req);
enum api_result api_get_metrics(struct api_req *req);

/* api/replays.c */
enum api_result api_post_message_retry(struct api_req *req);
enum api_result api_post_replays(struct api_req *req);
/* api/messages.c */
enum api_result api_post_message(struct api_req *req);
enum api_result api_post_message_batch(struct api_req *req);
enum api_result api_get_message(struct api_req *req);
enum api_result api_list_messages(struct api_req *req);
enum api_result api_cancel_message(struct api_req *req);

/* api/webhooks.c */
enum api_result api_post_webhooks(struct api_req *req);
enum api_result api_get_webhooks(struct api_req *req);
enum api_result api_get_webhook(struct api_req *req);
enum api_result api_patch_webhook(struct api_req *req);
enum api_result api_delete_webhook(struct api_req *req);
enum api_result api_post_webhook_rotate(struct api_req *req);
enum api_result api_get_webhook_deliveries(struct api_req *req);
enum api_result api_post_webhook_delivery_retry(struct api_req *req);
enum api_result api_get_events(struct api_req *req);

/* api/suppressions.c */
enum api_result api_get_suppressions(struct api_req *req);
enum api_result api_post_suppressions(struct api_req *req);
enum api_result api_get_suppression(struct api_req *req);
enum api_result api_delete_suppression(struct api_req *req);

/* api/domains.c */
enum api_result api_post_domains(struct api_req *req);
enum api_result api_get_domains(struct api_req *req);
enum api_result api_get_domain(struct api_req *req);
enum api_result api_delete_domain(struct api_req *req);
enum api_result api_post_domain_rotate(struct api_req *req);
enum api_result api_post_domain_verify(struct api_req *req);

/* api/bounces.c */
enum api_result api_post_bounces(struct api_req *req);

/* api/keys.c */
enum api_result api_get_key_self(struct api_req *req);
enum api_result api_get_keys(struct api_req *req);
enum api_result api_post_keys(struct api_req *req);
enum api_result api_delete_key(struct api_req *req);

/* api/stats.c: the console's aggregates */
enum api_result api_get_stats_overview(struct api_req *req);
enum api_result api_get_stats_timeseries(struct api_req *req);

/* api/console.c: the operations console's static files */
enum api_result api_get_console(struct api_req *req);

#endif
