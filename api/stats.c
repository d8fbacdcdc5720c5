/*
 * stats.c - the aggregates the operations console (and any dashboard)
 * reads:
 *   GET /v1/stats/overview     queue now, outcomes of the last 24 hours,
 *                              top deferral and bounce reasons, destinations
 *                              with deferrals, failing webhook endpoints
 *   GET /v1/stats/timeseries   outcomes per minute or hour (db/stats.c)
 * Shapes are in docs/openapi.yaml.  A database failure answers 503.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "api/handlers.h"
#include "api/http.h"
#include "api/respond.h"
#include "api/validate.h"
#include "db/stats.h"
#include "util/log.h"
#include "util/rfc3339.h"

#define STATS_TOP_MAX 10            /* rows in each "top" list */
#define STATS_RECENT_HOURS 24       /* the overview's window */
#define STATS_SERIES_BUCKETS_MAX 1440 /* a day of minutes, 60 days of hours */

static void unavailable(struct api_req *req, const char *what, const char *err)
{
	log_error_limited("event=db_error op=%s error=%s", what, err);
	api_problem(req, 503, "unavailable", "the database is unavailable; try again");
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* --- GET /v1/stats/overview ----------------------------------------------- */

static long num(const char *s)
{
	return s ? strtol(s, NULL, 10) : 0;
}

static json_t *code_or_null(const char *s)
{
	return s && *s ? json_integer(strtol(s, NULL, 10)) : json_null();
}

static void totals_row(const char *const *c, int n, void *arg)
{
	if (n < 4)
		return;
	json_object_set_new(arg, "delivered", json_integer(num(c[0])));
	json_object_set_new(arg, "deferred", json_integer(num(c[1])));
	json_object_set_new(arg, "bounced", json_integer(num(c[2])));
	json_object_set_new(arg, "failed", json_integer(num(c[3])));
}

static void reason_row(const char *const *c, int n, void *arg)
{
	if (n < 4)
		return;
	json_array_append_new(arg, json_pack("{s:o, s:o, s:s, s:I}", "code", code_or_null(c[0]), "enhanced_code",
					     str_or_null(c[1]), "text", c[2] ? c[2] : "", "count",
					     (json_int_t)num(c[3])));
}

static void domain_row(const char *const *c, int n, void *arg)
{
	if (n < 2)
		return;
	json_array_append_new(arg, json_pack("{s:s, s:I}", "domain", c[0] ? c[0] : "", "deferrals",
					     (json_int_t)num(c[1])));
}

static void webhook_row(const char *const *c, int n, void *arg)
{
	if (n < 6)
		return;
	json_array_append_new(arg, json_pack("{s:s, s:s, s:b, s:o, s:o, s:I}", "id", c[0] ? c[0] : "", "url",
					     c[1] ? c[1] : "", "enabled", c[2] && strcmp(c[2], "true") == 0,
					     "failing_since", str_or_null(c[3]), "disabled_reason",
					     str_or_null(c[4]), "pending_deliveries", (json_int_t)num(c[5])));
}

enum api_result api_get_stats_overview(struct api_req *req)
{
	char err[512];
	struct db_pool *pool = req->deps->pool;
	struct db_queue_stats q;
	if (db_queue_stats(pool, &q, err, sizeof(err)) < 0) {
		unavailable(req, "queue_stats", err);
		return API_DONE;
	}
	json_t *out = json_pack("{s:{s:I, s:I, s:I, s:I, s:f}, s:i}", "queue", "queued", (json_int_t)q.queued,
				"scheduled", (json_int_t)q.scheduled, "deferred", (json_int_t)q.deferred, "sending",
				(json_int_t)q.sending, "oldest_due_seconds", q.oldest_due_seconds, "window_hours",
				STATS_RECENT_HOURS);
	json_t *totals = json_object(), *defr = json_array(), *bncr = json_array(), *doms = json_array();
	json_object_set_new(out, "totals", totals);
	json_object_set_new(out, "top_deferral_reasons", defr);
	json_object_set_new(out, "top_bounce_reasons", bncr);
	json_object_set_new(out, "top_deferred_destinations", doms);
	int rc = db_stats_top(pool, DB_TOP_TOTALS, STATS_RECENT_HOURS, 1, totals_row, totals, err, sizeof(err));
	if (rc == 0)
		rc = db_stats_top(pool, DB_TOP_DEFERRAL_REASONS, STATS_RECENT_HOURS, STATS_TOP_MAX, reason_row, defr,
				  err, sizeof(err));
	if (rc == 0)
		rc = db_stats_top(pool, DB_TOP_BOUNCE_REASONS, STATS_RECENT_HOURS, STATS_TOP_MAX, reason_row, bncr,
				  err, sizeof(err));
	if (rc == 0)
		rc = db_stats_top(pool, DB_TOP_DEFERRED_DOMAINS, STATS_RECENT_HOURS, STATS_TOP_MAX, domain_row, doms,
				  err, sizeof(err));
	/* Webhook endpoints are an admin's business (their URLs included). */
	if (rc == 0 && (req->scopes & API_SCOPE_ADMIN)) {
		json_t *wh = json_array();
		json_object_set_new(out, "failing_webhooks", wh);
		rc = db_stats_top(pool, DB_TOP_FAILING_WEBHOOKS, 0, STATS_TOP_MAX, webhook_row, wh, err, sizeof(err));
	}
	if (rc < 0) {
		json_decref(out);
		unavailable(req, "stats_overview", err);
		return API_DONE;
	}
	api_json(req, 200, out);
	return API_DONE;
}

/* --- GET /v1/stats/timeseries --------------------------------------------- */

static void series_row(const char *const *c, int n, void *arg)
{
	if (n < 5)
		return;
	json_array_append_new(arg, json_pack("{s:s, s:I, s:I, s:I, s:I}", "t", c[0] ? c[0] : "", "delivered",
					     (json_int_t)num(c[1]), "deferred", (json_int_t)num(c[2]), "bounced",
					     (json_int_t)num(c[3]), "failed", (json_int_t)num(c[4])));
}

static void bad_query(struct api_req *req, const char *field, const char *msg)
{
	api_problem_errors(req, 422, "validation_failed", "invalid query parameter",
			   json_pack("[o]", api_field_error(field, "invalid", msg)));
}

enum api_result api_get_stats_timeseries(struct api_req *req)
{
	const char *interval = api_req_query(req, "interval");
	if (interval == NULL || *interval == '\0')
		interval = "minute";
	long step;
	if (strcmp(interval, "minute") == 0)
		step = 60;
	else if (strcmp(interval, "hour") == 0)
		step = 3600;
	else {
		bad_query(req, "interval", "interval must be minute or hour");
		return API_DONE;
	}
	time_t now = time(NULL), since;
	const char *s = api_req_query(req, "since");
	if (s && *s) {
		if (validate_rfc3339(s, &since) < 0) {
			bad_query(req, "since", "since must be an RFC 3339 date-time");
			return API_DONE;
		}
	} else {
		/* The last hour of minutes, or the last week of hours. */
		since = now - (step == 60 ? 3600 : 7 * 24 * 3600) + step;
	}
	if (since > now || (now - since) / step >= STATS_SERIES_BUCKETS_MAX) {
		char msg[128];
		snprintf(msg, sizeof(msg), "since must be in the past, at most %d %ss ago", STATS_SERIES_BUCKETS_MAX - 1,
			 interval);
		bad_query(req, "since", msg);
		return API_DONE;
	}
	char err[512], since_s[40];
	json_t *buckets = json_array();
	if (db_stats_timeseries(req->deps->pool, interval, since, series_row, buckets, err, sizeof(err)) < 0) {
		json_decref(buckets);
		unavailable(req, "stats_timeseries", err);
		return API_DONE;
	}
	if (rfc3339_format(since - since % step, 0, since_s, sizeof(since_s)) < 0)
		since_s[0] = '\0';
	api_json(req, 200, json_pack("{s:s, s:s, s:o}", "interval", interval, "since", since_s, "buckets", buckets));
	return API_DONE;
}
