/*
 * Integration tests for the operator commands: replay, status, list (real
 * PostgreSQL) and send (against a real "mailferry serve"; the test reads
 * what the API stored).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_helpers.h"
#include "harness.h"
#include "th_assert.h"

static void seed(const char *url, int n, const char *domain, const char *st)
{
	char sql[1536];
	snprintf(sql, sizeof(sql),
		 "WITH m AS (INSERT INTO messages (id, mail_from, from_header, subject, message_id_hdr, size, body, status, tags)"
		 " SELECT gen_random_uuid(), 'a@src.test', 'Shop <a@src.test>', 'Order ' || g, 'mid' || g, 4, 'body', '%s',"
		 " '{orders}' FROM generate_series(1, %d) g RETURNING id)"
		 " INSERT INTO recipients (message_id, position, email, domain, kind, status, attempts, last_code, last_text)"
		 " SELECT m.id, 1, 'u.' || substr(m.id::text, 1, 8) || '@%s', '%s', 'to', '%s', 2, 550, 'mailbox unknown' FROM m",
		 st, n, domain, domain, st);
	char *r = th_sql(url, sql);
	cr_assert_not_null(r);
	free(r);
}

Test(ops_cli, replay_status_list)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	seed(url, 30, "x.test", "bounced");
	seed(url, 5, "y.test", "bounced");
	seed(url, 4, "x.test", "failed");
	char *out = NULL;
	const char *env = "MAILFERRY_LOG_FORMAT=text MAILFERRY_DATABASE_URL";

	/* Usage errors exit 2 before touching anything. */
	cr_assert_eq(th_run(&out, "%s='%s' %s replay", env, url, th_bin()), 2, "%s", out);
	free(out);
	cr_assert_eq(th_run(&out, "%s='%s' %s replay --status delivered", env, url, th_bin()), 2, "%s", out);
	free(out);
	cr_assert_eq(th_run(&out, "%s='%s' %s replay --status bounced --since yesterday", env, url, th_bin()), 2);
	free(out);
	cr_assert_eq(th_run(&out, "%s='%s' %s replay not-a-uuid", env, url, th_bin()), 2);
	free(out);

	/* Dry run reports and changes nothing. */
	cr_assert_eq(th_run(&out, "%s='%s' %s replay --status bounced --domain x.test --since 1d --dry-run", env, url,
			    th_bin()), 0, "%s", out);
	cr_assert(strstr(out, "matched:            30"), "%s", out);
	cr_assert(strstr(out, "@x.test") && !strstr(out, "@y.test"), "sample: %s", out);
	free(out);
	th_sql_eq(url, "SELECT count(*) FROM recipients WHERE status = 'queued'", "0");
	cr_assert_eq(th_run(&out, "%s='%s' %s replay --status bounced,failed --domain x.test --dry-run --json", env,
			    url, th_bin()), 0, "%s", out);
	cr_assert(strstr(out, "\"matched\":34") && strstr(out, "\"dry_run\":true"), "%s", out);
	free(out);

	/* The replay, then again: idempotent. */
	cr_assert_eq(th_run(&out, "%s='%s' %s replay --status bounced --domain x.test --json", env, url, th_bin()), 0,
		     "%s", out);
	cr_assert(strstr(out, "\"requeued\":30"), "%s", out);
	free(out);
	cr_assert_eq(th_run(&out, "%s='%s' %s replay --status bounced --domain x.test", env, url, th_bin()), 0, "%s",
		     out);
	cr_assert(strstr(out, "requeued:           0"), "%s", out);
	free(out);
	th_sql_eq(url, "SELECT count(*) FROM events WHERE type = 'message.requeued'"
		    " AND payload->'data'->>'requested_by' = 'cli'", "30");

	/* By message id. */
	char *mid = th_sql(url, "SELECT message_id FROM recipients WHERE status = 'failed' ORDER BY id LIMIT 1");
	cr_assert_eq(th_run(&out, "%s='%s' %s replay %s", env, url, th_bin(), mid), 0, "%s", out);
	cr_assert(strstr(out, "requeued:           1"), "%s", out);
	free(out);
	cr_assert_eq(th_run(&out, "%s='%s' %s replay 00000000-0000-7000-8000-000000000000", env, url, th_bin()), 1);
	free(out);

	/* Status shows the recipient and the requeue in the timeline. */
	cr_assert_eq(th_run(&out, "%s='%s' %s status %s", env, url, th_bin(), mid), 0, "%s", out);
	cr_assert(strstr(out, "status:   queued") && strstr(out, "message.requeued") &&
		  strstr(out, "requested_by=cli") && strstr(out, "@x.test"), "%s", out);
	free(out);
	cr_assert_eq(th_run(&out, "%s='%s' %s status %s --json", env, url, th_bin(), mid), 0, "%s", out);
	/* The API's document (GET /v1/messages/{id}), as PostgreSQL writes jsonb. */
	cr_assert(strstr(out, "\"recipients\": [{") && strstr(out, "\"events\": [{"), "%s", out);
	cr_assert(strstr(out, "\"attempts\": 2"), "attempts continue: %s", out);
	cr_assert(strstr(out, "\"tags\": [\"orders\"]"), "%s", out);
	free(out);
	/* Every --json output is valid JSON (one document, or one per line for list). */
	cr_assert_eq(th_run(&out, "%s='%s' %s status %s --json | python3 -m json.tool", env, url, th_bin(), mid), 0,
		     "%s", out);
	free(out);
	cr_assert_eq(th_run(&out, "%s='%s' %s list --json | python3 -c 'import json,sys; [json.loads(l) for l in sys.stdin]'",
			    env, url, th_bin()), 0, "%s", out);
	free(out);
	cr_assert_eq(th_run(&out, "%s='%s' %s replay --status failed --dry-run --json | python3 -m json.tool", env, url,
			    th_bin()), 0, "%s", out);
	free(out);
	cr_assert_eq(th_run(&out, "%s='%s' %s status 00000000-0000-7000-8000-000000000000", env, url, th_bin()), 1);
	free(out);

	/* List with filters. */
	cr_assert_eq(th_run(&out, "%s='%s' %s list --status queued --limit 100 --json", env, url, th_bin()), 0,
		     "%s", out);
	int lines = 0;
	for (char *p = out; (p = strchr(p, '\n')) != NULL; p++)
		lines++;
	cr_assert_eq(lines, 31, "30 replayed + 1 retried: %s", out);
	free(out);
	char *rcpt = th_sql(url, "SELECT email FROM recipients WHERE domain = 'y.test' LIMIT 1");
	cr_assert_eq(th_run(&out, "%s='%s' %s list --recipient '%s' --since 2000-01-01", env, url, th_bin(), rcpt), 0,
		     "%s", out);
	cr_assert(strstr(out, "ID") && strstr(out, rcpt) && strstr(out, "bounced"), "%s", out);
	free(out);
	free(rcpt);
	cr_assert_eq(th_run(&out, "%s='%s' %s list --limit 0", env, url, th_bin()), 2);
	free(out);
	free(mid);
	th_db_drop(url);
	free(url);
}

/* The CLI against a real "mailferry serve" (no delivery role: the message
 * stays queued where the test can read what the API stored). */
Test(ops_cli, send_posts_json_with_attachment)
{
	struct api_srv s;
	api_srv_start(&s, NULL, NULL);
	char *dir = th_tmpdir("send");
	char *out = NULL;
	cr_assert_eq(th_run(&out, "printf 'hello\\n' > %s/note.txt", dir), 0);
	free(out);
	int rc = th_run(&out, "MAILFERRY_API_KEY='%s' %s send --api %s/ --from 'Shop <a@src.test>'"
			      " --to b@x.test --to c@x.test --subject 'Say \"hi\"' --text 'line1' --attach %s/note.txt",
			s.key, th_bin(), s.base, dir);
	cr_assert_eq(rc, 0, "%s", out);
	const char *q = strstr(out, "queued ");
	cr_assert_not_null(q, "%s", out);
	char id[64];
	snprintf(id, sizeof(id), "%.*s", (int)strcspn(q + 7, " \r\n"), q + 7);
	free(out);

	/* What the API accepted, as GET /v1/messages/{id} shows it. */
	struct th_http r;
	char path[128];
	snprintf(path, sizeof(path), "/v1/messages/%s", id);
	cr_assert_eq(api_call(&s, "GET", path, NULL, NULL, NULL, &r), 0);
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	json_t *j = t_json(&r);
	cr_expect_str_eq(t_str(j, "subject"), "Say \"hi\"", "%s", r.body);
	json_t *rcpts = json_object_get(j, "recipients");
	cr_assert_eq(json_array_size(rcpts), 2, "%s", r.body);
	cr_expect_str_eq(t_str(json_array_get(rcpts, 0), "email"), "b@x.test");
	cr_expect_str_eq(t_str(json_array_get(rcpts, 1), "email"), "c@x.test");
	cr_expect_str_eq(t_str(json_array_get(rcpts, 0), "status"), "queued");
	json_decref(j);
	th_http_free(&r);

	/* The stored request names the attachment (its bytes and the bodies
	 * are not kept there), and the composed message carries them: base64("hello\n") =
	 * aGVsbG8K (RFC 4648), in a text/plain part named note.txt. */
	char sql[512];
	snprintf(sql, sizeof(sql),
		 "SELECT concat_ws('|', r->'attachments'->0->>'filename', r->'attachments'->0->>'content_type',"
		 " r->>'from', r->>'to') FROM (SELECT request::jsonb AS r FROM messages WHERE id = '%s') m", id);
	th_sql_eq(s.db, sql, "note.txt|text/plain|Shop <a@src.test>|[\"b@x.test\", \"c@x.test\"]");
	snprintf(sql, sizeof(sql),
		 "SELECT (b ~ 'Content-Type: multipart/mixed') AND (b ~ 'Content-Type: text/plain[^\\r]*\\r\\n')"
		 " AND (b ~ 'filename=\"?note\\.txt\"?') AND (b ~ '\\r\\naGVsbG8K\\r\\n') AND (b ~ '\\r\\nline1\\r\\n')"
		 " FROM (SELECT convert_from(body, 'UTF8') AS b FROM messages WHERE id = '%s') m", id);
	char *v = th_sql(s.db, sql);
	if (v == NULL || strcmp(v, "t") != 0) {
		snprintf(sql, sizeof(sql), "SELECT convert_from(body, 'UTF8') FROM messages WHERE id = '%s'", id);
		char *body = th_sql(s.db, sql);
		cr_log_error("composed message:\n%s", body ? body : "NULL");
		free(body);
	}
	cr_expect_str_eq(v, "t");
	free(v);

	/* A problem answer: exit 1, code and detail on stderr. */
	rc = th_run(&out, "%s send --api %s --key '%s' --from x --to b@x.test --subject s --html '<p>x</p>'", th_bin(),
		    s.base, s.key);
	cr_assert_eq(rc, 1, "%s", out);
	cr_assert(strstr(out, "422") && strstr(out, "validation_failed"), "%s", out);
	free(out);
	/* A key the server does not know: 401. */
	rc = th_run(&out, "%s send --api %s --key mf_not_a_key --from a@src.test --to b@x.test --subject s --text t",
		    th_bin(), s.base);
	cr_assert_eq(rc, 1, "%s", out);
	cr_assert(strstr(out, "401") && strstr(out, "unauthorized"), "%s", out);
	free(out);
	th_sql_eq(s.db, "SELECT count(*) FROM messages", "1");

	/* Usage: no key, no body. */
	cr_assert_eq(th_run(&out, "env -u MAILFERRY_API_KEY %s send --from a@b --to c@d --subject s --text t", th_bin()), 2);
	free(out);
	cr_assert_eq(th_run(&out, "%s send --key k --from a@b --to c@d --subject s", th_bin()), 2);
	free(out);
	th_rmrf(dir);
	free(dir);
	api_srv_stop(&s, 1);
}

Test(ops_cli, help_for_every_operator_command)
{
	static const char *cmds[] = { "send", "status", "list", "replay" };
	char *out = NULL;
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		cr_assert_eq(th_run(&out, "%s %s --help", th_bin(), cmds[i]), 0, "%s: %s", cmds[i], out);
		cr_assert(strstr(out, "usage: mailferry ") != NULL, "%s: %s", cmds[i], out);
		free(out);
	}
	cr_assert_eq(th_run(&out, "%s --help", th_bin()), 0);
	cr_assert(strstr(out, "replay") && strstr(out, "status") && strstr(out, "list") && strstr(out, "send"), "%s", out);
	free(out);
}
