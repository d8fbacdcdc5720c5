/*
 * Integration tests for "mailferry config check" and serve's start-up
 * checks, run as real processes: a MAILFERRY_ variable that names no key is
 * an error (exit 2, naming it), and every file a key names is opened (and
 * the DKIM key and CA file loaded) so a bad path fails here, naming the key.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

/* Runs "env VARS mailferry ARGS" with a bound on its run time (a serve
 * that starts after all is killed and fails the test, exit 124). */
static int run_mf(char **out, const char *vars, const char *args)
{
	return th_run(out, "cd /tmp && env %s timeout 20 %s %s", vars, th_bin(), args);
}

Test(config_check, unknown_mailferry_variable_exits_2)
{
	char *out = NULL;
	int rc = run_mf(&out, "MAILFERRY_WROKERS=3", "config check");
	cr_assert_eq(rc, 2, "exit %d: %s", rc, out);
	cr_assert(strstr(out, "MAILFERRY_WROKERS"), "the variable is not named: %s", out);
	free(out);
}

Test(config_check, serve_refuses_unknown_variable)
{
	char vars[256], *out = NULL;
	snprintf(vars, sizeof(vars), "MAILFERRY_WROKERS=3 MAILFERRY_HTTP_LISTEN=127.0.0.1:%d", th_free_port());
	int rc = run_mf(&out, vars, "serve");
	cr_assert_eq(rc, 2, "exit %d: %s", rc, out);
	cr_assert(strstr(out, "MAILFERRY_WROKERS"), "%s", out);
	free(out);
}

Test(config_check, variables_read_on_purpose_pass)
{
	char *out = NULL;
	int rc = run_mf(&out, "MAILFERRY_API_KEY=mf_x MAILFERRY_TEST_ANYTHING=1 MAILFERRY_BIN=x MAILFERRY_WORKERS=3",
			"config check");
	cr_assert_eq(rc, 0, "exit %d: %s", rc, out);
	cr_assert(strstr(out, "workers = 3"), "%s", out);
	free(out);
}

#define DKIM "MAILFERRY_DKIM_DOMAIN=example.com MAILFERRY_DKIM_SELECTOR=s1 "

Test(config_check, missing_dkim_key_file_exits_2)
{
	char *out = NULL;
	int rc = run_mf(&out, DKIM "MAILFERRY_DKIM_KEY_FILE=/nonexistent/dkim.pem", "config check");
	cr_assert_eq(rc, 2, "exit %d: %s", rc, out);
	cr_assert(strstr(out, "dkim_key_file: /nonexistent/dkim.pem: No such file or directory"), "%s", out);
	free(out);
}

Test(config_check, dkim_key_that_does_not_parse_exits_2)
{
	char *dir = th_tmpdir("cfgcheck");
	cr_assert_not_null(dir);
	char path[512], vars[1024], *out = NULL;
	snprintf(path, sizeof(path), "%s/key.pem", dir);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n", f);
	fclose(f);
	snprintf(vars, sizeof(vars), DKIM "MAILFERRY_DKIM_KEY_FILE=%s", path);
	int rc = run_mf(&out, vars, "config check");
	cr_assert_eq(rc, 2, "exit %d: %s", rc, out);
	char want[600];
	snprintf(want, sizeof(want), "dkim_key_file: %s:", path);
	cr_assert(strstr(out, want), "%s", out);
	free(out);

	/* The same file as a CA bundle: no certificate in it. */
	snprintf(vars, sizeof(vars), "MAILFERRY_TLS_CA_FILE=%s", path);
	rc = run_mf(&out, vars, "config check");
	cr_assert_eq(rc, 2, "exit %d: %s", rc, out);
	snprintf(want, sizeof(want), "tls_ca_file: %s:", path);
	cr_assert(strstr(out, want), "%s", out);
	free(out);
	th_rmrf(dir);
	free(dir);
}

Test(config_check, missing_tls_files_exit_2)
{
	char *out = NULL;
	int rc = run_mf(&out, "MAILFERRY_TLS_CA_FILE=/nonexistent/ca.pem", "config check");
	cr_assert_eq(rc, 2, "exit %d: %s", rc, out);
	cr_assert(strstr(out, "tls_ca_file: /nonexistent/ca.pem: No such file or directory"), "%s", out);
	free(out);
	rc = run_mf(&out, "MAILFERRY_BOUNCE_TLS_CERT=/etc/passwd MAILFERRY_BOUNCE_TLS_KEY=/nonexistent/key.pem",
		    "config check");
	cr_assert_eq(rc, 2, "exit %d: %s", rc, out);
	cr_assert(strstr(out, "bounce_tls_key: /nonexistent/key.pem: No such file or directory"), "%s", out);
	free(out);
}

/* The submission keys (docs/interface.md): a listener needs TLS unless
 * plaintext AUTH for loopback clients is allowed; files are opened. */
Test(config_check, submission_keys)
{
	static const struct {
		const char *vars, *want;
		int rc;
	} cases[] = {
		{ "MAILFERRY_SUBMISSION_LISTEN=127.0.0.1:2587", "submission_listen needs submission_tls_cert_file", 2 },
		{ "MAILFERRY_SUBMISSION_LISTEN=127.0.0.1:2587 MAILFERRY_SUBMISSION_TLS=tls "
		  "MAILFERRY_SUBMISSION_ALLOW_PLAINTEXT_AUTH=yes", "with submission_tls = tls", 2 },
		{ "MAILFERRY_SUBMISSION_TLS=none", "submission_tls: want starttls or tls", 2 },
		{ "MAILFERRY_SUBMISSION_TLS=ssl", "submission_tls", 2 },
		{ "MAILFERRY_SUBMISSION_TLS_CERT_FILE=/x.pem", "must be set together", 2 },
		{ "MAILFERRY_SUBMISSION_TLS_CERT_FILE=/nonexistent/c.pem MAILFERRY_SUBMISSION_TLS_KEY_FILE=/nonexistent/k.pem",
		  "submission_tls_cert_file: /nonexistent/c.pem", 2 },
		{ "MAILFERRY_SUBMISSION_ALLOW_PLAINTEXT_AUTH=maybe", "submission_allow_plaintext_auth", 2 },
		{ "MAILFERRY_SUBMISSION_LISTEN=127.0.0.1:2587 MAILFERRY_SUBMISSION_ALLOW_PLAINTEXT_AUTH=yes",
		  "submission_listen = 127.0.0.1:2587", 0 },
		{ "MAILFERRY_SUBMISSION_COMMAND_TIMEOUT=0", "submission_command_timeout must be between 1s and 1h", 2 },
		{ "MAILFERRY_SUBMISSION_COMMAND_TIMEOUT=soon", "submission_command_timeout", 2 },
		{ "MAILFERRY_SUBMISSION_GREET_WAIT=2m", "submission_greet_wait must be at most 60s", 2 },
		{ "MAILFERRY_SUBMISSION_GREET_WAIT=2s MAILFERRY_SUBMISSION_COMMAND_TIMEOUT=5m",
		  "submission_command_timeout = 300s", 0 },
		{ "", "submission_greet_wait = 0s", 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out = NULL;
		int rc = run_mf(&out, cases[i].vars, "config check");
		cr_expect_eq(rc, cases[i].rc, "%s: exit %d: %s", cases[i].vars, rc, out);
		cr_expect(out && strstr(out, cases[i].want), "%s: %s", cases[i].vars, out);
		free(out);
	}
}
