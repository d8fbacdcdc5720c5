/*
 * Integration tests for the operator commands: replay, status, list (real
 * PostgreSQL) and send (against a scripted HTTP server in a thread, which
 * records the request so the test can check what the CLI sent).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

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

/* A one-shot HTTP server: records the request, answers a canned response. */
struct fake_api {
	int fd, port;
	char request[1 << 20];
	const char *status; /* "202 Accepted" */
	const char *answer; /* the body */
};

static void *fake_api_run(void *arg)
{
	struct fake_api *f = arg;
	int c = accept(f->fd, NULL, NULL);
	if (c < 0)
		return NULL;
	size_t n = 0;
	for (;;) {
		ssize_t r = read(c, f->request + n, sizeof(f->request) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		f->request[n] = '\0';
		char *body = strstr(f->request, "\r\n\r\n");
		char *cl = strcasestr(f->request, "Content-Length:");
		if (body && cl && n - (size_t)(body + 4 - f->request) >= strtoul(cl + 15, NULL, 10))
			break;
	}
	char head[256];
	int hl = snprintf(head, sizeof(head), "HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
			  "Connection: close\r\nContent-Length: %zu\r\n\r\n", f->status, strlen(f->answer));
	if (write(c, head, (size_t)hl) < 0 || write(c, f->answer, strlen(f->answer)) < 0)
		perror("fake_api write");
	close(c);
	return NULL;
}

static void fake_api_start(struct fake_api *f, pthread_t *t)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	f->fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(bind(f->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(f->fd, 4), 0);
	getsockname(f->fd, (struct sockaddr *)&a, &al);
	f->port = ntohs(a.sin_port);
	pthread_create(t, NULL, fake_api_run, f);
}

Test(ops_cli, send_posts_json_with_attachment)
{
	static struct fake_api f;
	pthread_t t;
	f.status = "202 Accepted";
	f.answer = "{\"id\":\"0190aaaa-0000-7000-8000-000000000001\",\"status\":\"queued\"}\n";
	fake_api_start(&f, &t);
	char *dir = th_tmpdir("send");
	char *out = NULL;
	cr_assert_eq(th_run(&out, "printf 'hello\\n' > %s/note.txt", dir), 0);
	free(out);
	int rc = th_run(&out, "MAILFERRY_API_KEY=mf_test_key %s send --api http://127.0.0.1:%d/ --from 'Shop <a@src.test>'"
			      " --to b@x.test --to c@x.test --subject 'Say \"hi\"' --text 'line1' --attach %s/note.txt",
			th_bin(), f.port, dir);
	pthread_join(t, NULL);
	close(f.fd);
	cr_assert_eq(rc, 0, "%s", out);
	cr_assert(strstr(out, "queued 0190aaaa-0000-7000-8000-000000000001"), "%s", out);
	free(out);
	cr_assert(strstr(f.request, "POST /v1/messages HTTP/1.1"), "%s", f.request);
	cr_assert(strcasestr(f.request, "Authorization: Bearer mf_test_key"), "%s", f.request);
	cr_assert(strcasestr(f.request, "Content-Type: application/json"), "%s", f.request);
	cr_assert(strstr(f.request, "\"to\":[\"b@x.test\",\"c@x.test\"]"), "%s", f.request);
	cr_assert(strstr(f.request, "\"subject\":\"Say \\\"hi\\\"\""), "%s", f.request);
	/* base64("hello\n") = aGVsbG8K (RFC 4648). */
	cr_assert(strstr(f.request, "{\"filename\":\"note.txt\",\"content_type\":\"text/plain\",\"content\":\"aGVsbG8K\"}"),
		  "%s", f.request);

	/* A problem answer: exit 1, code and detail on stderr. */
	f.status = "422 Unprocessable Content";
	f.answer = "{\"code\":\"validation_failed\",\"detail\":\"bad from address\"}";
	fake_api_start(&f, &t);
	rc = th_run(&out, "%s send --api http://127.0.0.1:%d --key k --from x --to b@x.test --subject s --html '<p>x</p>'",
		    th_bin(), f.port);
	pthread_join(t, NULL);
	close(f.fd);
	cr_assert_eq(rc, 1, "%s", out);
	cr_assert(strstr(out, "422") && strstr(out, "validation_failed") && strstr(out, "bad from address"), "%s", out);
	free(out);

	/* Usage: no key, no body. */
	cr_assert_eq(th_run(&out, "env -u MAILFERRY_API_KEY %s send --from a@b --to c@d --subject s --text t", th_bin()), 2);
	free(out);
	cr_assert_eq(th_run(&out, "%s send --key k --from a@b --to c@d --subject s", th_bin()), 2);
	free(out);
	th_rmrf(dir);
	free(dir);
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
