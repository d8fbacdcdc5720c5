/*
 * Integration tests of POST /v1/messages, GET /v1/messages/{id} and
 * POST /v1/messages/{id}/cancel against a real PostgreSQL and a running
 * server: acceptance, refusals (nothing queued), auth, suppression,
 * scheduling, size limits.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_helpers.h"
#include "harness.h"

#define SEND_BODY                                                                                                  \
	"{\"from\":\"Shop <orders@shop.example>\",\"to\":[\"a@example.net\",\"B <b@example.org>\"],"              \
	"\"bcc\":\"audit@shop.example\",\"subject\":\"Your order\",\"text\":\"Thanks\",\"html\":\"<p>Thanks</p>\"," \
	"\"tags\":[\"order\"],\"metadata\":{\"order_id\":\"1001\"}}"

Test(api_messages, send_then_get_shows_queued_recipients)
{
	struct api_srv s;
	api_srv_start(&s, NULL, NULL);
	struct th_http r;
	cr_assert_eq(api_call(&s, "POST", "/v1/messages", NULL, NULL, SEND_BODY, &r), 0);
	cr_assert_eq(r.status, 202, "%s", r.body);
	json_t *j = t_json(&r);
	const char *id = t_str(j, "id");
	cr_assert_not_null(id);
	cr_assert_str_eq(t_str(j, "status"), "queued");
	cr_assert_not_null(t_str(j, "created_at"));
	json_t *rc = json_object_get(j, "recipients");
	cr_assert_eq(json_array_size(rc), 3);
	cr_assert_str_eq(t_str(json_array_get(rc, 0), "email"), "a@example.net");
	cr_assert_str_eq(t_str(json_array_get(rc, 2), "kind"), "bcc");
	cr_assert_str_eq(t_str(json_array_get(rc, 1), "status"), "queued");
	char loc[128];
	snprintf(loc, sizeof(loc), "Location: /v1/messages/%s", id);
	cr_assert(strstr(r.headers, loc) != NULL, "%s", r.headers);
	char path[128];
	snprintf(path, sizeof(path), "/v1/messages/%s", id);
	char *idc = strdup(id);
	json_decref(j);
	th_http_free(&r);

	cr_assert_eq(api_call(&s, "GET", path, NULL, NULL, NULL, &r), 0);
	cr_assert_eq(r.status, 200, "%s", r.body);
	j = t_json(&r);
	cr_assert_str_eq(t_str(j, "id"), idc);
	cr_assert_str_eq(t_str(j, "status"), "queued");
	cr_assert_str_eq(t_str(j, "subject"), "Your order");
	cr_assert_str_eq(t_str(json_object_get(j, "metadata"), "order_id"), "1001");
	json_t *rs = json_object_get(j, "recipients");
	cr_assert_eq(json_array_size(rs), 3);
	for (size_t i = 0; i < 3; i++) {
		json_t *x = json_array_get(rs, i);
		cr_assert_str_eq(t_str(x, "status"), "queued");
		cr_assert_eq(json_integer_value(json_object_get(x, "attempts")), 0);
		cr_assert_not_null(t_str(x, "next_attempt_at"));
		cr_assert_not_null(json_object_get(x, "last_response"));
	}
	json_t *ev = json_object_get(j, "events");
	cr_assert_eq(json_array_size(ev), 3);
	cr_assert_str_eq(t_str(json_array_get(ev, 0), "type"), "message.queued");
	cr_assert_str_eq(t_str(json_object_get(json_array_get(ev, 0), "data"), "recipient"), "a@example.net");
	json_decref(j);
	th_http_free(&r);

	/* Stored durably: the composed body, one row per recipient, events,
	 * and the request as accepted, without the bodies (they are in the
	 * composed message). */
	char sql[400];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM messages WHERE id = '%s' AND size > 0 AND length(body) = size"
		 " AND message_id_hdr LIKE '%s@%%' AND request::jsonb->>'subject' = 'Your order'"
		 " AND request::jsonb->'metadata'->>'order_id' = '1001'"
		 " AND NOT request::jsonb ?| '{text,html}'", idc, idc);
	cr_assert_eq(t_count(s.db, sql), 1);
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM recipients WHERE status = 'queued'"), 3);
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM recipients WHERE domain = 'example.org'"), 1);
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM events e WHERE type = 'message.queued'"
				   " AND mf_event_doc(e)->'data'->'metadata'->>'order_id' = '1001'"), 3);
	/* The accept events store no payload; the document built on read is
	 * exactly what mf_event_payload() gives for the rows as accepted. */
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM events e JOIN recipients r ON r.id = e.recipient_id"
				   " JOIN messages m ON m.id = r.message_id WHERE e.payload IS NULL"
				   " AND mf_event_doc(e) - 'timestamp' = mf_event_payload(e.public_id, e.type, r, m) - 'timestamp'"
				   " AND mf_event_doc(e)->>'timestamp' = mf_ts(e.created_at)"), 3);
	/* An attachment is stored in the composed body only: the request
	 * keeps its name and decoded size, not its bytes. */
	char *aid = api_send_ok(&s, "{\"from\":\"orders@shop.example\",\"to\":\"a@example.net\",\"subject\":\"S\","
			       "\"text\":\"T\",\"attachments\":[{\"filename\":\"a.txt\",\"content_type\":\"text/plain\","
			       "\"content\":\"aGVsbG8=\"}]}");
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM messages WHERE id = '%s'"
		 " AND request::jsonb->'attachments'->0->>'filename' = 'a.txt'"
		 " AND request::jsonb->'attachments'->0->>'size' = '5'"
		 " AND NOT request::jsonb->'attachments'->0 ? 'content'", aid);
	cr_assert_eq(t_count(s.db, sql), 1);
	free(aid);
	/* A message larger than the TOAST threshold is stored compressed
	 * with lz4 (migration 0017), not pglz. */
	char big[8192] = "{\"from\":\"orders@shop.example\",\"to\":\"a@example.net\",\"subject\":\"S\",\"text\":\"";
	for (int i = 0; i < 100; i++)
		strcat(big, "Your order ships tomorrow. ");
	strcat(big, "\"}");
	aid = api_send_ok(&s, big);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM messages WHERE id = '%s' AND size > 2700"
		 " AND pg_column_compression(body) = 'lz4'", aid);
	cr_assert_eq(t_count(s.db, sql), 1);
	free(aid);
	free(idc);
	api_srv_stop(&s, 1);
}

Test(api_messages, refusals_queue_nothing)
{
	struct api_srv s;
	api_srv_start(&s, NULL, NULL);
	struct th_http r;
	char url[128];
	/* Wrong media type: 415. */
	snprintf(url, sizeof(url), "%s/v1/messages", s.base);
	char auth[256];
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", s.key);
	const char *h[] = { auth, "Content-Type: text/plain", NULL };
	cr_assert_eq(th_http("POST", url, h, SEND_BODY, &r), 0);
	cr_assert_eq(r.status, 415, "%s", r.body);
	cr_assert(strstr(r.body, "\"code\":\"unsupported_media_type\""), "%s", r.body);
	th_http_free(&r);
	/* Malformed JSON: 400 with the position. */
	cr_assert_eq(api_call(&s, "POST", "/v1/messages", NULL, NULL, "{\"from\":\"a@example.net\",\n \"to\": ]}", &r), 0);
	cr_assert_eq(r.status, 400, "%s", r.body);
	json_t *j = t_json(&r);
	cr_assert_str_eq(t_str(j, "code"), "invalid_json");
	cr_assert_eq(json_integer_value(json_object_get(j, "line")), 2);
	cr_assert_gt(json_integer_value(json_object_get(j, "position")), 10);
	cr_assert(strstr(r.headers, "application/problem+json"), "%s", r.headers);
	json_decref(j);
	th_http_free(&r);
	/* Not UTF-8: 400. */
	cr_assert_eq(api_call(&s, "POST", "/v1/messages", NULL, NULL, "{\"from\":\"\xff\"}", &r), 0);
	cr_assert_eq(r.status, 400, "%s", r.body);
	cr_assert(strstr(r.body, "invalid_utf8"), "%s", r.body);
	th_http_free(&r);
	/* Validation: 422 naming the field. */
	cr_assert_eq(api_call(&s, "POST", "/v1/messages", NULL, NULL,
			      "{\"from\":\"a@example.net\",\"to\":[\"b@example.net\",\"broken\"],\"text\":\"x\"}", &r), 0);
	cr_assert_eq(r.status, 422, "%s", r.body);
	j = t_json(&r);
	cr_assert_str_eq(t_str(j, "code"), "validation_failed");
	json_t *e0 = json_array_get(json_object_get(j, "errors"), 0);
	cr_assert_str_eq(t_str(e0, "field"), "to[1]");
	cr_assert_str_eq(t_str(e0, "code"), "invalid_address");
	json_decref(j);
	th_http_free(&r);
	/* Header injection in the subject and in a custom header. */
	cr_assert_eq(api_call(&s, "POST", "/v1/messages", NULL, NULL,
			      "{\"from\":\"a@example.net\",\"to\":\"b@example.net\",\"text\":\"x\","
			      "\"subject\":\"hi\\r\\nBcc: victim@example.org\",\"headers\":{\"X-A\":\"1\\nBcc: v@example.org\"}}",
			      &r), 0);
	cr_assert_eq(r.status, 422, "%s", r.body);
	cr_assert(strstr(r.body, "\"field\":\"subject\"") && strstr(r.body, "\"field\":\"headers.X-A\""), "%s", r.body);
	cr_assert(strstr(r.body, "header_injection"), "%s", r.body);
	th_http_free(&r);
	cr_assert_eq(api_call(&s, "POST", "/v1/messages", NULL, NULL,
			      "{\"from\":\"a@example.net\",\"to\":\"b@example.net\",\"text\":\"x\",\"headers\":{\"Bcc\":\"v@example.org\"}}",
			      &r), 0);
	cr_assert_eq(r.status, 422, "%s", r.body);
	cr_assert(strstr(r.body, "forbidden_header"), "%s", r.body);
	th_http_free(&r);
	/* Bad Idempotency-Key: 400. */
	char longkey[300];
	memset(longkey, 'k', 257);
	longkey[257] = '\0';
	cr_assert_eq(api_call(&s, "POST", "/v1/messages", NULL, longkey, SEND_BODY, &r), 0);
	cr_assert_eq(r.status, 400, "%s", r.body);
	cr_assert(strstr(r.body, "Idempotency-Key"), "%s", r.body);
	th_http_free(&r);
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM messages"), 0);
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM recipients"), 0);
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM idempotency_keys"), 0);
	api_srv_stop(&s, 1);
}

Test(api_messages, auth_401_403)
{
	struct api_srv s;
	api_srv_start(&s, NULL, NULL);
	char readonly[160], sendonly[160], revoked[160];
	cr_assert_eq(api_make_key(s.db, "read", readonly, sizeof(readonly)), 0);
	cr_assert_eq(api_make_key(s.db, "send", sendonly, sizeof(sendonly)), 0);
	cr_assert_eq(api_make_key(s.db, "send,read", revoked, sizeof(revoked)), 0);
	char *out = NULL;
	cr_assert_eq(th_run(&out, "MAILFERRY_DATABASE_URL='%s' %s keys revoke 4", s.db, th_bin()), 0, "%s", out);
	free(out);
	struct th_http r;
	cr_assert_eq(api_call(&s, "POST", "/v1/messages", "", NULL, SEND_BODY, &r), 0);
	cr_assert_eq(r.status, 401, "%s", r.body);
	th_http_free(&r);
	cr_assert_eq(api_call(&s, "POST", "/v1/messages", "mf_bogus_key", NULL, SEND_BODY, &r), 0);
	cr_assert_eq(r.status, 401, "%s", r.body);
	th_http_free(&r);
	cr_assert_eq(api_call(&s, "POST", "/v1/messages", revoked, NULL, SEND_BODY, &r), 0);
	cr_assert_eq(r.status, 401, "%s", r.body);
	th_http_free(&r);
	cr_assert_eq(api_call(&s, "POST", "/v1/messages", readonly, NULL, SEND_BODY, &r), 0);
	cr_assert_eq(r.status, 403, "%s", r.body);
	cr_assert(strstr(r.body, "\"code\":\"forbidden\""), "%s", r.body);
	th_http_free(&r);
	cr_assert_eq(api_call(&s, "GET", "/v1/messages", sendonly, NULL, NULL, &r), 0);
	cr_assert_eq(r.status, 403, "%s", r.body);
	th_http_free(&r);
	cr_assert_eq(api_call(&s, "GET", "/v1/messages", readonly, NULL, NULL, &r), 0);
	cr_assert_eq(r.status, 200, "%s", r.body);
	th_http_free(&r);
	cr_assert_eq(api_call(&s, "POST", "/v1/messages", sendonly, NULL, SEND_BODY, &r), 0);
	cr_assert_eq(r.status, 202, "%s", r.body);
	th_http_free(&r);
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM messages"), 1);
	api_srv_stop(&s, 1);
}

Test(api_messages, suppressed_scheduled_and_cancel)
{
	struct api_srv s;
	api_srv_start(&s, NULL, NULL);
	free(th_sql(s.db, "INSERT INTO suppressions (email, reason) VALUES ('gone@example.net', 'bounce')"));
	struct th_http r;
	cr_assert_eq(api_call(&s, "POST", "/v1/messages", NULL, NULL,
			      "{\"from\":\"a@shop.example\",\"to\":[\"Gone@Example.NET\",\"ok@example.net\"],\"text\":\"x\"}", &r),
		     0);
	cr_assert_eq(r.status, 202, "%s", r.body);
	json_t *j = t_json(&r);
	json_t *rc = json_object_get(j, "recipients");
	cr_assert_str_eq(t_str(json_array_get(rc, 0), "status"), "suppressed");
	cr_assert_str_eq(t_str(json_array_get(rc, 1), "status"), "queued");
	/* The summary of one suppressed and one queued recipient (INTERFACE.md
	 * "Statuses"), the same in the 202 as in the database. */
	cr_assert_str_eq(t_str(j, "status"), "sending");
	char q[256];
	snprintf(q, sizeof(q), "SELECT count(*) FROM messages WHERE id = '%s' AND status = 'sending'", t_str(j, "id"));
	cr_assert_eq(t_count(s.db, q), 1);
	json_decref(j);
	th_http_free(&r);
	/* With an Idempotency-Key the replay repeats those statuses exactly. */
	const char *mixed = "{\"from\":\"a@shop.example\",\"to\":[\"ok@example.net\",\"gone@example.net\"],\"text\":\"y\"}";
	cr_assert_eq(api_call(&s, "POST", "/v1/messages", NULL, "mixed-1", mixed, &r), 0);
	cr_assert_eq(r.status, 202, "%s", r.body);
	char *raw = strdup(r.body);
	th_http_free(&r);
	cr_assert(strstr(raw, "\"email\":\"gone@example.net\",\"kind\":\"to\",\"status\":\"suppressed\""), "%s", raw);
	cr_assert_eq(api_call(&s, "POST", "/v1/messages", NULL, "mixed-1", mixed, &r), 0);
	cr_assert_str_eq(r.body, raw);
	th_http_free(&r);
	free(raw);
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM events e WHERE type = 'message.suppressed'"
				   " AND mf_event_doc(e)->'data'->>'recipient' = 'Gone@Example.NET'"
				   " AND mf_event_doc(e)->'data'->>'status' = 'suppressed'"), 1);
	/* Every recipient suppressed: the message summary says so. */
	char *id = api_send_ok(&s, "{\"from\":\"a@shop.example\",\"to\":\"gone@example.net\",\"text\":\"x\"}");
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM messages WHERE id = '%s' AND status = 'suppressed'", id);
	cr_assert_eq(t_count(s.db, sql), 1);
	free(id);

	/* send_at in the future: scheduled, due then. */
	cr_assert_eq(api_call(&s, "POST", "/v1/messages", NULL, NULL,
			      "{\"from\":\"a@shop.example\",\"to\":\"later@example.net\",\"text\":\"x\","
			      "\"send_at\":\"2099-01-01T00:00:00Z\"}", &r), 0);
	cr_assert_eq(r.status, 202, "%s", r.body);
	j = t_json(&r);
	cr_assert_str_eq(t_str(j, "status"), "scheduled");
	cr_assert_str_eq(t_str(json_array_get(json_object_get(j, "recipients"), 0), "status"), "scheduled");
	id = strdup(t_str(j, "id"));
	json_decref(j);
	th_http_free(&r);
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM recipients WHERE status = 'scheduled'"
				   " AND next_attempt_at = '2099-01-01T00:00:00Z'"), 1);
	/* Its accept event says 'scheduled', as mf_event_payload() would have. */
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM events e JOIN recipients r ON r.id = e.recipient_id"
				   " JOIN messages m ON m.id = r.message_id WHERE r.status = 'scheduled'"
				   " AND mf_event_doc(e)->'data'->>'status' = 'scheduled'"
				   " AND mf_event_doc(e) - 'timestamp' = mf_event_payload(e.public_id, e.type, r, m) - 'timestamp'"), 1);

	/* Cancel it: 200, canceled, one event. */
	char path[128];
	snprintf(path, sizeof(path), "/v1/messages/%s/cancel", id);
	cr_assert_eq(api_call(&s, "POST", path, NULL, NULL, NULL, &r), 0);
	cr_assert_eq(r.status, 200, "%s", r.body);
	j = t_json(&r);
	cr_assert_str_eq(t_str(j, "status"), "canceled");
	cr_assert_str_eq(t_str(json_array_get(json_object_get(j, "recipients"), 0), "status"), "canceled");
	json_decref(j);
	th_http_free(&r);
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM events WHERE type = 'message.canceled'"), 1);
	/* A second cancel changes nothing. */
	cr_assert_eq(api_call(&s, "POST", path, NULL, NULL, NULL, &r), 0);
	cr_assert_eq(r.status, 200, "%s", r.body);
	th_http_free(&r);
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM events WHERE type = 'message.canceled'"), 1);
	free(id);

	cr_assert_eq(api_call(&s, "GET", "/v1/messages/01900000-0000-7000-8000-000000000000", NULL, NULL, NULL, &r), 0);
	cr_assert_eq(r.status, 404, "%s", r.body);
	th_http_free(&r);
	cr_assert_eq(api_call(&s, "GET", "/v1/messages/not-a-uuid", NULL, NULL, NULL, &r), 0);
	cr_assert_eq(r.status, 404, "%s", r.body);
	th_http_free(&r);
	cr_assert_eq(api_call(&s, "POST", "/v1/messages/01900000-0000-7000-8000-000000000000/cancel", NULL, NULL, NULL, &r), 0);
	cr_assert_eq(r.status, 404, "%s", r.body);
	th_http_free(&r);
	api_srv_stop(&s, 1);
}

Test(api_messages, size_limits_413)
{
	struct api_srv s;
	const char *env[] = { "MAILFERRY_MAX_MESSAGE_SIZE=8KiB", NULL };
	api_srv_start(&s, NULL, env);
	struct th_http r;
	/* Composed size over max_message_size. */
	size_t n = 20000;
	char *body = malloc(n + 200);
	int o = snprintf(body, n + 200, "{\"from\":\"a@shop.example\",\"to\":\"b@example.net\",\"text\":\"");
	memset(body + o, 'x', n);
	snprintf(body + o + n, 200, "\"}");
	cr_assert_eq(api_call(&s, "POST", "/v1/messages", NULL, NULL, body, &r), 0);
	cr_assert_eq(r.status, 413, "%s", r.body);
	cr_assert(strstr(r.body, "\"code\":\"payload_too_large\""), "%s", r.body);
	th_http_free(&r);
	free(body);
	/* A body over the route's cap is refused before it is read. */
	n = 400000;
	body = malloc(n + 200);
	o = snprintf(body, n + 200, "{\"from\":\"a@shop.example\",\"to\":\"b@example.net\",\"text\":\"");
	memset(body + o, 'y', n);
	snprintf(body + o + n, 200, "\"}");
	cr_assert_eq(api_call(&s, "POST", "/v1/messages", NULL, NULL, body, &r), 0);
	cr_assert_eq(r.status, 413, "%s", r.body);
	th_http_free(&r);
	free(body);
	cr_assert_eq(t_count(s.db, "SELECT count(*) FROM messages"), 0);
	char *id = api_send_ok(&s, "{\"from\":\"a@shop.example\",\"to\":\"b@example.net\",\"text\":\"small\"}");
	free(id);
	api_srv_stop(&s, 1);
}

Test(api_messages, composed_once_with_message_id_and_dkim)
{
	char *dir = th_tmpdir("dkim");
	cr_assert_not_null(dir);
	char *out = NULL;
	cr_assert_eq(th_run(&out, "openssl genpkey -algorithm ed25519 -out '%s/k.pem'", dir), 0, "%s", out);
	free(out);
	char kf[512];
	snprintf(kf, sizeof(kf), "MAILFERRY_DKIM_KEY_FILE=%s/k.pem", dir);
	const char *env[] = { "MAILFERRY_DKIM_DOMAIN=shop.example", "MAILFERRY_DKIM_SELECTOR=s1", kf,
			      "MAILFERRY_HELO_NAME=mx.shop.example", NULL };
	struct api_srv s;
	api_srv_start(&s, NULL, env);
	char *id = api_send_ok(&s, SEND_BODY);
	char sql[512];
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM messages WHERE id = '%s' AND message_id_hdr = '%s@mx.shop.example'"
		 " AND position('DKIM-Signature:' in convert_from(body, 'UTF8')) = 1"
		 " AND position('d=shop.example' in convert_from(body, 'UTF8')) > 0"
		 " AND position('Message-ID: <%s@mx.shop.example>' in convert_from(body, 'UTF8')) > 0"
		 " AND position('audit@shop.example' in convert_from(body, 'UTF8')) = 0",
		 id, id, id);
	cr_assert_eq(t_count(s.db, sql), 1, "stored message not signed / wrong Message-ID / Bcc leaked");
	free(id);
	api_srv_stop(&s, 1);
	th_rmrf(dir);
	free(dir);
}
