/*
 * health.c - liveness, readiness and metrics endpoints.
 *
 * /healthz answers 200 while the process runs.  /readyz answers 200 only
 * when the database answers and its schema is the one this binary needs,
 * and not while the process shuts down; otherwise 503 problem+json.
 */
#include <stdatomic.h>
#include <stdio.h>

#include "api/api.h"
#include "api/handlers.h"
#include "db/db.h"
#include "util/limits.h"
#include "util/metrics.h"

enum api_result api_get_healthz(struct api_req *req)
{
	api_json(req, 200, json_pack("{s:s}", "status", "ok"));
	return API_DONE;
}

enum api_result api_get_readyz(struct api_req *req)
{
	char err[512];
	if (atomic_load(&req->deps->draining)) {
		api_problem(req, 503, "unavailable", "shutting down");
		return API_DONE;
	}
	if (db_check_ready(req->deps->pool, err, sizeof(err)) < 0) {
		api_problem(req, 503, "unavailable", err);
		return API_DONE;
	}
	api_json(req, 200, json_pack("{s:s, s:i}", "status", "ready", "schema_version", db_schema_latest()));
	return API_DONE;
}

enum api_result api_get_metrics(struct api_req *req)
{
	struct buf out;
	buf_init(&out, MF_METRICS_TEXT_MAX);
	metrics_render(req->deps->metrics, &out);
	api_text(req, 200, "text/plain; version=0.0.4; charset=utf-8", buf_cstr(&out));
	buf_cleanup(&out);
	return API_DONE;
}
