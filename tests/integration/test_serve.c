/*
 * Integration tests for "mailferry serve": health, readiness across a
 * database restart, clean shutdown; and the CLI's config check.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

Test(serve, readiness_follows_database_restart)
{
	char *dir = th_tmpdir("pgrestart");
	cr_assert_not_null(dir);
	char *url = th_cluster_start(dir);
	cr_assert_not_null(url);
	char *out = NULL;
	cr_assert_eq(th_run(&out, "MAILFERRY_DATABASE_URL='%s' %s migrate", url, th_bin()), 0, "%s", out);
	free(out);
	cr_assert_eq(th_run(&out, "MAILFERRY_DATABASE_URL='%s' %s migrate", url, th_bin()), 0, "%s", out);
	cr_assert(strstr(out, "applied") == NULL, "second migrate applied something: %s", out);
	free(out);

	struct th_proc *p = th_serve_start(url, NULL);
	cr_assert_not_null(p);
	char ready[128], health[128];
	snprintf(ready, sizeof(ready), "http://127.0.0.1:%d/readyz", p->port);
	snprintf(health, sizeof(health), "http://127.0.0.1:%d/healthz", p->port);
	cr_assert_geq(th_http_wait_status(ready, 200, 5000), 0, "readyz never 200");

	cr_assert_eq(th_cluster_stop(dir), 0);
	int waited = th_http_wait_status(ready, 503, 5000);
	cr_assert_geq(waited, 0, "readyz did not turn 503 within 5 s of stopping PostgreSQL");
	struct th_http r;
	cr_assert_eq(th_http("GET", ready, NULL, NULL, &r), 0);
	cr_assert_eq(r.status, 503);
	cr_assert(strstr(r.headers, "application/problem+json") != NULL, "%s", r.headers);
	cr_assert(strstr(r.body, "\"code\":\"unavailable\"") != NULL, "%s", r.body);
	th_http_free(&r);
	cr_assert_geq(th_http_wait_status(health, 200, 1000), 0, "healthz must stay 200 without the database");

	char *again = th_cluster_start(dir);
	cr_assert_not_null(again);
	free(again);
	cr_assert_geq(th_http_wait_status(ready, 200, 10000), 0, "readyz did not come back after restart");

	/* Exit 0: its own watchdog exits 1 past shutdown_grace; 30 s bound
	 * the wait for a process that hangs. */
	int rc = th_proc_stop(p, 30000);
	cr_assert_eq(rc, 0, "serve did not exit 0 after SIGTERM (rc %d)", rc);
	th_proc_free(p);
	th_cluster_stop(dir);
	th_rmrf(dir);
	free(dir);
	free(url);
}

Test(serve, unknown_path_and_method)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	struct th_proc *p = th_serve_start(url, NULL);
	cr_assert_not_null(p);
	char u[128];
	struct th_http r;
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/nope", p->port);
	cr_assert_eq(th_http("GET", u, NULL, NULL, &r), 0);
	cr_assert_eq(r.status, 404);
	cr_assert(strstr(r.body, "\"code\":\"not_found\"") != NULL, "%s", r.body);
	th_http_free(&r);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/healthz", p->port);
	cr_assert_eq(th_http("DELETE", u, NULL, NULL, &r), 0);
	cr_assert_eq(r.status, 405);
	th_http_free(&r);
	cr_assert_eq(th_proc_stop(p, 5000), 0);
	th_proc_free(p);
	th_db_drop(url);
	free(url);
}

Test(cli, config_check_names_bad_key)
{
	char *out = NULL;
	int rc = th_run(&out, "MAILFERRY_WORKERS=abc %s config check", th_bin());
	cr_assert_eq(rc, 2, "exit %d: %s", rc, out);
	cr_assert(strstr(out, "workers") != NULL, "%s", out);
	free(out);
	rc = th_run(&out, "MAILFERRY_SMARTHOST_PASSWORD=topsecret %s config check", th_bin());
	cr_assert_eq(rc, 0, "%s", out);
	cr_assert(strstr(out, "topsecret") == NULL, "secret printed: %s", out);
	cr_assert(strstr(out, "workers = 1000") != NULL, "%s", out);
	free(out);
}

Test(cli, help_and_version)
{
	static const char *cmds[] = { "--help", "serve --help", "migrate --help", "keys --help",
				      "config --help", "version --help" };
	char *out = NULL;
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		cr_assert_eq(th_run(&out, "%s %s", th_bin(), cmds[i]), 0, "%s: %s", cmds[i], out);
		cr_assert(strstr(out, "usage: mailferry") != NULL, "%s: %s", cmds[i], out);
		free(out);
	}
	cr_assert_eq(th_run(&out, "%s version", th_bin()), 0);
	cr_assert(strncmp(out, "mailferry ", 10) == 0, "%s", out);
	free(out);
	cr_assert_eq(th_run(&out, "%s frobnicate", th_bin()), 2);
	free(out);
}

Test(cli, keys_create_list_revoke_and_auth)
{
	char *url = th_db_create(1);
	cr_assert_not_null(url);
	char *out = NULL;
	cr_assert_eq(th_run(&out, "MAILFERRY_DATABASE_URL='%s' %s keys create --name ci --scopes read --json", url,
			    th_bin()), 0, "%s", out);
	char key[128] = "";
	char *k = strstr(out, "\"key\":\"");
	cr_assert_not_null(k, "%s", out);
	sscanf(k + 7, "%127[^\"]", key);
	cr_assert(strncmp(key, "mf_", 3) == 0);
	free(out);
	char *stored = th_sql(url, "SELECT count(*) FROM api_keys WHERE hash IS NOT NULL AND position(public_id in 'x') = 0");
	cr_assert_str_eq(stored, "1");
	free(stored);
	cr_assert_eq(th_run(&out, "MAILFERRY_DATABASE_URL='%s' %s keys list", url, th_bin()), 0, "%s", out);
	cr_assert(strstr(out, "ci") != NULL && strstr(out, "read") != NULL, "%s", out);
	cr_assert(strstr(out, key + 16) == NULL, "list must not show the secret");
	free(out);
	cr_assert_eq(th_run(&out, "MAILFERRY_DATABASE_URL='%s' %s keys revoke 1", url, th_bin()), 0, "%s", out);
	free(out);
	cr_assert_eq(th_run(&out, "MAILFERRY_DATABASE_URL='%s' %s keys revoke 1", url, th_bin()), 1, "%s", out);
	free(out);
	cr_assert_eq(th_run(&out, "MAILFERRY_DATABASE_URL='%s' %s keys create --scopes bogus --name x", url, th_bin()), 2);
	free(out);
	th_db_drop(url);
	free(url);
}
