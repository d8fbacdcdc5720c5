/*
 * The operator commands against a real "mailferry serve" and its database:
 * what "send" prints for a refused request, how "list" cuts UTF-8 text and
 * which --status values it takes, that "status --json" is the document the
 * API returns, and that a replay dry run says the same in JSON and text.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_helpers.h"
#include "harness.h"
#include "th_assert.h"

#define ENV "MAILFERRY_LOG_FORMAT=text MAILFERRY_DATABASE_URL"

Test(ops_cli, send_prints_the_field_errors_of_the_api)
{
	struct api_srv s;
	api_srv_start(&s, NULL, NULL);
	char *out = NULL;
	int rc = th_run(&out, "%s send --api %s --key '%s' --from 'not an address' --to b@x.test --to 'also bad'"
			      " --subject s --text t", th_bin(), s.base, s.key);
	cr_assert_eq(rc, 1, "%s", out);
	cr_assert(strstr(out, "422") && strstr(out, "validation_failed"), "%s", out);
	/* One line per field error, as the API returned them. */
	cr_assert(strstr(out, "\n  from: "), "the from error is missing: %s", out);
	cr_assert(strstr(out, "\n  to[1]: ") || strstr(out, "\n  to: "), "the to error is missing: %s", out);
	free(out);
	/* A valid one still prints the id. */
	cr_assert_eq(th_run(&out, "%s send --api %s --key '%s' --from a@src.test --to b@x.test --subject s --text t",
			    th_bin(), s.base, s.key), 0, "%s", out);
	cr_assert(strncmp(out, "queued ", 7) == 0, "%s", out);
	free(out);
	api_srv_stop(&s, 1);
}

Test(ops_cli, list_cuts_utf8_on_characters_and_refuses_unknown_status)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	/* Two- and four-byte characters where the columns cut: cutting at the
	 * column's width in bytes would split one. */
	th_sql_do(url, "INSERT INTO messages (id, mail_from, from_header, subject, message_id_hdr, size, body, status)"
		       " VALUES (gen_random_uuid(), 'a@src.test', repeat('Ö', 30) || ' <o@src.test>',"
		       " repeat('ä', 20) || repeat('😀', 20), 'm1', 4, 'body', 'queued') RETURNING id");
	th_sql_do(url, "INSERT INTO recipients (message_id, position, email, domain, kind, status)"
		       " SELECT id, 1, repeat('ü', 30) || '@bücher.example', 'bücher.example', 'to', 'queued'"
		       " FROM messages RETURNING id");
	char *out = NULL;
	/* Every line is valid UTF-8 and the columns line up (in characters). */
	int rc = th_run(&out, "%s='%s' %s list | python3 -c 'import sys\n"
			      "b = sys.stdin.buffer.read()\n"
			      "lines = b.decode(\"utf-8\").splitlines()\n"
			      "assert len(lines) == 2, lines\n"
			      "assert lines[0].index(\"FROM\") == lines[1].index(\"ÖÖ\"), lines\n"
			      "assert lines[0].index(\"SUBJECT\") == lines[1].index(\"ää\"), lines\n"
			      "assert lines[1].endswith(\"...\"), lines\n"
			      "print(\"ok\")'",
			ENV, url, th_bin());
	cr_assert_eq(rc, 0, "%s", out);
	free(out);
	/* An unknown status is a usage error, as GET /v1/messages?status=bogus is a 422. */
	rc = th_run(&out, "%s='%s' %s list --status bogus", ENV, url, th_bin());
	cr_assert_eq(rc, 2, "%s", out);
	cr_assert(strstr(out, "bogus"), "%s", out);
	free(out);
	cr_assert_eq(th_run(&out, "%s='%s' %s list --status queued --json", ENV, url, th_bin()), 0, "%s", out);
	cr_assert(strstr(out, "\"status\":\"queued\""), "%s", out);
	free(out);
	th_db_drop(url);
	free(url);
}

Test(ops_cli, status_json_is_the_api_document)
{
	struct api_srv s;
	api_srv_start(&s, NULL, NULL);
	char *id = api_send_ok(&s, "{\"from\":\"a@src.test\",\"to\":[\"b@x.test\",\"c@x.test\"],\"subject\":\"s\","
				   "\"text\":\"x\",\"tags\":[\"orders\"]}");
	/* One recipient delivered (a 250 reply), one deferred (a 451). */
	char sql[512];
	snprintf(sql, sizeof(sql),
		 "UPDATE recipients SET status = 'delivered', attempts = 1, last_code = 250, last_enhanced = '2.0.0',"
		 " last_text = 'ok', last_mx = 'mx.x.test' WHERE message_id = '%s' AND email = 'b@x.test' RETURNING 1", id);
	th_sql_do(s.db, sql);
	snprintf(sql, sizeof(sql),
		 "UPDATE recipients SET status = 'deferred', attempts = 1, last_code = 451, last_text = 'later'"
		 " WHERE message_id = '%s' AND email = 'c@x.test' RETURNING 1", id);
	th_sql_do(s.db, sql);

	char *dir = th_tmpdir("status");
	char *out = NULL;
	int rc = th_run(&out, "%s='%s' %s status %s --json > %s/cli.json 2>%s/cli.err && curl -fsS -H 'Authorization: Bearer %s'"
			      " %s/v1/messages/%s > %s/api.json",
			ENV, s.db, th_bin(), id, dir, dir, s.key, s.base, id, dir);
	cr_assert_eq(rc, 0, "%s", out);
	free(out);
	rc = th_run(&out, "python3 -c 'import json, sys\n"
			  "cli = json.load(open(sys.argv[1] + \"/cli.json\"))\n"
			  "api = json.load(open(sys.argv[1] + \"/api.json\"))\n"
			  "r = {x[\"email\"]: x for x in cli[\"recipients\"]}\n"
			  "assert r[\"b@x.test\"][\"last_response\"][\"code\"] == 250, r\n"
			  "assert r[\"b@x.test\"].get(\"next_attempt_at\") is None, r\n"
			  "assert r[\"c@x.test\"][\"next_attempt_at\"], r\n"
			  "assert cli[\"events\"] and all(e[\"id\"].startswith(\"evt_\") for e in cli[\"events\"]), cli\n"
			  "assert cli[\"tags\"] == [\"orders\"], cli\n"
			  "assert cli == api, (cli, api)\n"
			  "print(\"same\")' %s",
		    dir);
	cr_assert_eq(rc, 0, "%s", out);
	free(out);
	th_rmrf(dir);
	free(dir);
	free(id);
	api_srv_stop(&s, 1);
}

Test(ops_cli, replay_dry_run_json_and_text_agree)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	th_sql_do(url, "WITH m AS (INSERT INTO messages (id, mail_from, from_header, subject, message_id_hdr, size, body,"
		       " status) SELECT gen_random_uuid(), 'a@src.test', 'a@src.test', 's', 'r' || g, 4, 'body', 'bounced'"
		       " FROM generate_series(1, 3) g RETURNING id)"
		       " INSERT INTO recipients (message_id, position, email, domain, kind, status, attempts, last_code)"
		       " SELECT id, 1, 'u' || row_number() OVER () || '@x.test', 'x.test', 'to', 'bounced', 1, 550 FROM m"
		       " RETURNING 1");
	char *out = NULL;
	/* One of the three is suppressed: it matches but would not be requeued. */
	cr_assert_eq(th_run(&out, "%s='%s' %s suppressions add u1@x.test", ENV, url, th_bin()), 0, "%s", out);
	free(out);
	cr_assert_eq(th_run(&out, "%s='%s' %s replay --status bounced --dry-run", ENV, url, th_bin()), 0, "%s", out);
	cr_assert(strstr(out, "matched:            3\n"), "%s", out);
	cr_assert(strstr(out, "would requeue:      2\n"), "%s", out);
	free(out);
	cr_assert_eq(th_run(&out, "%s='%s' %s replay --status bounced --dry-run --json", ENV, url, th_bin()), 0, "%s",
		     out);
	cr_assert(strstr(out, "\"matched\":3,\"requeued\":0,\"would_requeue\":2,"), "%s", out);
	free(out);
	char *mid = th_sql(url, "SELECT message_id FROM recipients WHERE email = 'u2@x.test'");
	cr_assert_eq(th_run(&out, "%s='%s' %s replay %s --dry-run --json", ENV, url, th_bin(), mid), 0, "%s", out);
	cr_assert(strstr(out, "\"matched\":1,\"requeued\":0,\"would_requeue\":1,"), "%s", out);
	free(out);
	free(mid);
	th_sql_eq(url, "SELECT count(*) FROM recipients WHERE status = 'bounced'", "3");
	th_db_drop(url);
	free(url);
}
