/*
 * metrics_names.h - the names of mailferry's Prometheus metrics, in one
 * place, so that every module counts under the same names (documented in
 * docs/operations.md "Metrics").  Each macro expands to  "name", "help"
 * for the metrics_* calls, e.g.
 *
 *     metrics_counter_add(m, MF_M_MESSAGES_ACCEPTED, NULL, 1);
 *     metrics_counter_add(m, MF_M_DELIVERIES,
 *                         "outcome=\"delivered\",destination=\"mx\"", 1);
 *
 * Label values are fixed small sets (listed here) - never addresses,
 * domains, message ids or free text, which would explode the series count.
 * metrics_declare_known() (util/metrics.c) creates each known series at 0
 * when serve starts: a new label value goes into its table there too.
 */
#ifndef MF_METRICS_NAMES_H
#define MF_METRICS_NAMES_H

/* API (api/): counters. */
#define MF_M_MESSAGES_ACCEPTED "mailferry_messages_accepted_total", "Messages accepted (the send API answered 202, or SMTP submission 250)."
#define MF_M_RECIPIENTS_ACCEPTED "mailferry_recipients_accepted_total", "Recipients of the messages accepted by the API."
/* Set by api/server.c: labels method, route (the pattern), status. */
#define MF_M_HTTP_REQUESTS "mailferry_http_requests_total", "HTTP API requests."
#define MF_M_HTTP_DURATION "mailferry_http_request_duration_seconds", "HTTP API request latency."

/* Delivery (queue/worker.c): status = the recipient's resulting status
 * (delivered|deferred|bounced|failed|...), destination = the domain's
 * class (google|microsoft|yahoo|apple|other), never the domain itself. */
#define MF_M_DELIVERIES "mailferry_delivery_outcomes_total", "Delivery attempts by resulting recipient status."
#define MF_M_CLAIMED "mailferry_queue_claimed_total", "Recipients claimed for delivery."
/* Histogram, label destination: one SMTP session, connect to QUIT. */
#define MF_M_SMTP_SESSION "mailferry_smtp_session_duration_seconds", "SMTP client session duration."
/* tls: none|TLSv1.2|TLSv1.3; verified: yes|no. */
#define MF_M_SMTP_TLS "mailferry_smtp_sessions_total", "SMTP client sessions by TLS use."
/* relay/relay.c, per TLS handshake of a new session that resumed the last
 * session with that host and port (relay/tls.c's cache); no labels. */
#define MF_M_SMTP_TLS_RESUMED "mailferry_smtp_tls_resumed_total", "SMTP client TLS handshakes that resumed an earlier session."

/* Bounces: type permanent|transient, category as classified, source smtp
 * (synchronous rejection, queue/worker.c).
 * The bounce listener also counts mailferry_bounce_listener_messages_total
 * and mailferry_bounce_listener_rcpt_refused_total. */
#define MF_M_BOUNCES "mailferry_bounces_total", "Bounces recorded by type and category."

/* SMTP submission (submit/submit.c, docs/submission.md).  Sessions
 * started; sessions open now (a gauge); connections refused before a
 * session, reason max_sessions|max_sessions_per_addr|pregreet; AUTH
 * attempts, result ok|failed|throttled|unavailable; messages at the end
 * of DATA, result accepted|replayed|invalid (554 5.6.x)|too_big (552
 * 5.3.4)|sender_policy (550 5.7.1)|deferred (451/454: the database,
 * signing, a Message-ID in flight). */
#define MF_M_SUBMIT_SESSIONS "mailferry_submission_sessions_total", "SMTP submission sessions started."
#define MF_M_SUBMIT_ACTIVE "mailferry_submission_sessions_active", "SMTP submission sessions open now."
#define MF_M_SUBMIT_REFUSED "mailferry_submission_connections_refused_total", "SMTP submission connections refused before a session, by reason."
#define MF_M_SUBMIT_AUTH "mailferry_submission_auth_total", "SMTP submission AUTH attempts by result."
#define MF_M_SUBMIT_MESSAGES "mailferry_submission_messages_total", "SMTP submission messages at the end of DATA, by result."

/* Webhooks (hooks/webhook_dispatch.c): outcome as decided by the retry
 * policy (the dispatcher's dec.status).  The dispatcher's own collector
 * sets the gauge mailferry_webhook_deliveries{status="pending|sending"}. */
#define MF_M_WEBHOOK_ATTEMPTS "mailferry_webhook_attempts_total", "Webhook delivery attempts."
#define MF_M_WEBHOOK_BACKLOG "mailferry_webhook_deliveries", "Webhook deliveries by status."

/* Operations (this file's own users). */
#define MF_M_REPLAY_REQUEUED "mailferry_replay_requeued_total", "Recipients requeued by retry or replay, by channel (api)."
#define MF_M_RETENTION "mailferry_retention_rows_total", "Rows cleared or deleted by retention, by kind."

/* Gauges set by collectors at every scrape (queue/gauges.c). */
#define MF_M_QUEUE_DEPTH "mailferry_queue_recipients", "Recipients waiting or in flight, by status (from the database)."
#define MF_M_QUEUE_OLDEST "mailferry_queue_oldest_due_seconds", "Age of the oldest due recipient not yet claimed (from the database)."
/* Per destination (recipient domain) active in the last DEST_ACTIVE_SECS,
 * from the destinations table (queue/destination.h); label domain. */
#define MF_M_DEST_SESSIONS "mailferry_destination_sessions", "Delivery jobs (SMTP transactions) in flight to the destination, all processes (from the database)."
#define MF_M_DEST_LIMIT "mailferry_destination_limit", "The destination's current concurrency window (slow start and throttle feedback)."
#define MF_M_DEST_PAUSED "mailferry_destination_paused", "1 while the destination is paused after throttling, else 0."
#define MF_M_DEST_BACKOFF "mailferry_destination_backoff_seconds", "The pause the destination's last throttle gave (0 after a success); the next throttle doubles it."
#define MF_M_DB_UP "mailferry_database_up", "1 when the last database query of the metrics collector succeeded."
#define MF_M_DB_POOL "mailferry_db_pool_connections", "Database pool connections by state (open, busy, max)."
#define MF_M_BUILD "mailferry_build_info", "Build information (always 1)."
#define MF_M_START "mailferry_process_start_time_seconds", "Start time of the process since the Unix epoch."

#endif
