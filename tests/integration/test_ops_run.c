/*
 * "make run" (deploy/run.sh) for real, in a temporary VAR_DIR on free
 * ports: it refuses to start when the API or the sink port is taken
 * (another relay answering /readyz there must not count as ready); the
 * README's shell examples (the API on 8025, SMTP submission on 2587) run
 * as written against the relay it starts (only the addresses 127.0.0.1:8025
 * and 127.0.0.1:2587 are replaced by the test's ports); and
 * "make stop" stops its private PostgreSQL.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "harness.h"

static const char *srcdir(void)
{
	const char *s = getenv("MAILFERRY_TEST_SRCDIR");
	return s && *s ? s : ".";
}

/* Starts deploy/run.sh in its own process group, output to log. */
static pid_t run_sh(const char *var, int api_port, int sink_port, int sub_port, const char *log)
{
	pid_t pid = fork();
	if (pid == 0) {
		setsid();
		/* As from a terminal: a shell started in the background by a
		 * non-interactive one (CI runners, nohup, "cmd &") inherits
		 * SIGINT ignored, and bash cannot trap a signal ignored on
		 * entry - the Ctrl-C below would then never arrive. */
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		char v[64];
		setenv("VAR_DIR", var, 1);
		snprintf(v, sizeof(v), "127.0.0.1:%d", api_port);
		setenv("MAILFERRY_HTTP_LISTEN", v, 1);
		snprintf(v, sizeof(v), "127.0.0.1:%d", sink_port);
		setenv("SINK_LISTEN", v, 1);
		/* Not the default 127.0.0.1:2587: tests run side by side. */
		snprintf(v, sizeof(v), "127.0.0.1:%d", sub_port ? sub_port : th_free_port());
		setenv("MAILFERRY_SUBMISSION_LISTEN", v, 1);
		setenv("MAILFERRY_BIN", th_bin(), 1);
		unsetenv("MAILFERRY_DATABASE_URL");
		FILE *f = freopen(log, "w", stdout);
		f = freopen(log, "a", stderr);
		(void)f;
		char path[1024];
		snprintf(path, sizeof(path), "%s/deploy/run.sh", srcdir());
		execl(path, "run.sh", (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* Waits up to timeout_ms for pid to exit; its exit status, or -1. */
static int wait_exit(pid_t pid, int timeout_ms)
{
	long t0 = th_now_ms();
	int st;
	while (th_now_ms() - t0 < timeout_ms) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		usleep(50 * 1000);
	}
	return -1;
}

static char *slurp(const char *path)
{
	char *out = NULL;
	th_run(&out, "cat '%s'", path);
	return out;
}

/* Waits for needle in the log while pid runs; 1 found, 0 not. */
static int wait_log(const char *log, const char *needle, pid_t pid, int timeout_ms)
{
	long t0 = th_now_ms();
	while (th_now_ms() - t0 < timeout_ms) {
		char *t = slurp(log);
		int found = t && strstr(t, needle);
		free(t);
		if (found)
			return 1;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return 0;
		usleep(100 * 1000);
	}
	return 0;
}

/* A stand-in "other relay": answers 200 to every GET, on port. */
static pid_t other_relay(int port, const char *dir)
{
	char *out = NULL;
	cr_assert_eq(th_run(&out, "printf '%%s\\n' 'import http.server, sys'"
				  " 'class H(http.server.BaseHTTPRequestHandler):'"
				  " '    def do_GET(self):'"
				  " '        self.send_response(200); self.end_headers(); self.wfile.write(b\"{}\")'"
				  " '    def log_message(self, *a): pass'"
				  " 'http.server.HTTPServer((\"127.0.0.1\", int(sys.argv[1])), H).serve_forever()'"
				  " > %s/other.py", dir), 0, "%s", out);
	free(out);
	pid_t pid = fork();
	if (pid == 0) {
		char p[16], script[512];
		snprintf(p, sizeof(p), "%d", port);
		snprintf(script, sizeof(script), "%s/other.py", dir);
		/* Bounded, and off the test's output, even if the test fails before stopping it. */
		FILE *f = freopen("/dev/null", "w", stdout);
		f = freopen("/dev/null", "w", stderr);
		(void)f;
		execlp("timeout", "timeout", "300", "python3", script, p, (char *)NULL);
		_exit(127);
	}
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/readyz", port);
	cr_assert_geq(th_http_wait_status(url, 200, 15000), 0, "the stand-in relay did not start");
	return pid;
}

Test(ops_run, taken_ports_stop_it_with_a_clear_message)
{
	char *dir = th_tmpdir("runports");
	char var[512], log[512];
	snprintf(var, sizeof(var), "%s/var", dir);
	snprintf(log, sizeof(log), "%s/run.log", dir);
	int api = th_free_port(), sink = th_free_port();
	pid_t other = other_relay(api, dir);
	pid_t pid = run_sh(var, api, sink, 0, log);
	int rc = wait_exit(pid, 120000);
	if (rc < 0)
		kill(-pid, SIGKILL);
	char *t = slurp(log);
	cr_assert_gt(rc, 0, "run.sh went on with its API port taken (rc %d):\n%s", rc, t);
	cr_assert(strstr(t, "is already in use"), "%s", t);
	char want[64];
	snprintf(want, sizeof(want), "127.0.0.1:%d", api);
	cr_assert(strstr(t, want), "%s", t);
	cr_assert_null(strstr(t, "is ready"), "%s", t);
	free(t);
	kill(other, SIGTERM);
	waitpid(other, NULL, 0);

	/* The sink's port. */
	other = other_relay(sink, dir);
	pid = run_sh(var, api, sink, 0, log);
	rc = wait_exit(pid, 120000);
	if (rc < 0)
		kill(-pid, SIGKILL);
	t = slurp(log);
	cr_assert_gt(rc, 0, "run.sh went on with its sink port taken (rc %d):\n%s", rc, t);
	snprintf(want, sizeof(want), "127.0.0.1:%d (the capture sink) is already in use", sink);
	cr_assert(strstr(t, want), "%s", t);
	free(t);
	kill(other, SIGTERM);
	waitpid(other, NULL, 0);
	th_run(NULL, "%s/deploy/pg.sh --dir %s stop", srcdir(), var);
	th_rmrf(dir);
	free(dir);
}

/* The README's ```sh blocks that talk to the relay, as one bash script. */
static const char extract[] =
	"import re, sys\n"
	"src, port, subport, out = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]\n"
	"text = open(src + '/README.md').read()\n"
	"blocks = re.findall(r'```sh\\n(.*?)```', text, re.S)\n"
	"script = ['set -euo pipefail']\n"
	"n = 0\n"
	"for b in blocks:\n"
	"    if 'make ' in b or '8025' not in b and 'bin/mailferry' not in b and '2587' not in b:\n"
	"        continue\n"
	"    n += 1\n"
	"    lines, shown = [], False\n"
	"    for l in b.split('\\n'):\n"
	"        if l.startswith('$ '):  # a command shown with its error: it must fail\n"
	"            l = 'if ' + l[2:] + '; then echo \"README: expected a failure\" >&2; exit 1; fi'\n"
	"            shown = True\n"
	"        elif shown and l and not l.startswith('#'):\n"
	"            continue  # the output shown\n"
	"        else:\n"
	"            shown = False\n"
	"        lines.append(l)\n"
	"    script.append('\\n'.join(lines).replace('127.0.0.1:8025', '127.0.0.1:' + port)\n"
	"                  .replace('127.0.0.1:2587', '127.0.0.1:' + subport))\n"
	"open(out, 'w').write('\\n'.join(script) + '\\n')\n"
	"print(n)\n";

Test(ops_run, readme_examples_run_against_make_run)
{
	char *dir = th_tmpdir("runreadme");
	char var[512], log[512], path[600];
	snprintf(var, sizeof(var), "%s/var", dir);
	snprintf(log, sizeof(log), "%s/run.log", dir);
	int api = th_free_port(), sink = th_free_port();
	int sub = th_free_port();
	pid_t pid = run_sh(var, api, sink, sub, log);
	int ready = wait_log(log, "==> mailferry is ready", pid, 180000);
	char *t = slurp(log);
	if (!ready)
		kill(-pid, SIGKILL);
	cr_assert(ready, "run.sh did not get ready:\n%s", t);
	cr_assert(strstr(t, "webhook_allow_private = yes"), "%s", t);
	cr_assert(strstr(t, "==> development API key"), "%s", t);
	free(t);

	/* The examples, run from a directory whose var/ is run.sh's, with
	 * bin/mailferry the binary under test. */
	snprintf(path, sizeof(path), "%s/extract.py", dir);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(extract, f);
	fclose(f);
	char *out = NULL;
	int rc = th_run(&out, "python3 %s/extract.py %s %d %d %s/readme.sh", dir, srcdir(), api, sub, dir);
	cr_assert_eq(rc, 0, "%s", out);
	cr_assert_geq(strtol(out, NULL, 10), 4, "too few README examples found: %s", out);
	free(out);
	rc = th_run(&out, "mkdir -p %s/bin && ln -sf %s %s/bin/mailferry && cd %s && bash readme.sh", dir, th_bin(), dir,
		    dir);
	char *script = slurp(path);
	cr_assert_eq(rc, 0, "README examples failed (%d):\n%s\n--- script:\n%s", rc, out, script);
	free(script);
	/* The list shows the message the example just sent. */
	const char *id = strstr(out, "\"id\":\"");
	cr_assert_not_null(id, "%s", out);
	char want[64];
	snprintf(want, sizeof(want), "%.36s", id + 6);
	cr_assert(strstr(strstr(out, want) + 36, want), "the list lacks %s:\n%s", want, out);
	cr_assert_null(strstr(out, "https://mailferry.dev/problems/"), "an example got a problem answer:\n%s", out);
	free(out);

	/* Ctrl-C stops the relay; make stop the private PostgreSQL. */
	kill(pid, SIGINT);
	/* serve drains for up to shutdown_grace (10 s); a busy machine adds. */
	rc = wait_exit(pid, 60000);
	if (rc < 0)
		kill(-pid, SIGKILL);
	cr_assert_geq(rc, 0, "run.sh did not stop on SIGINT");
	cr_assert_eq(th_run(&out, "%s/deploy/pg.sh --dir %s status", srcdir(), var), 0, "%s", out);
	free(out);
	cr_assert_eq(th_run(&out, "make -s -C %s stop VAR_DIR=%s", srcdir(), var), 0, "%s", out);
	free(out);
	cr_assert_neq(th_run(&out, "%s/deploy/pg.sh --dir %s status", srcdir(), var), 0, "still running: %s", out);
	free(out);
	kill(-pid, SIGKILL);
	th_rmrf(dir);
	free(dir);
}
