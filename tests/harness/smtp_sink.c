/*
 * smtp_sink.c - running Postfix's smtp-sink for tests (see smtp_sink.h).
 */
#include "smtp_sink.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "util/xmalloc.h"

struct th_sink *th_sink_start(const char *options)
{
	return th_sink_start_at(options, "127.0.0.1", th_free_port());
}

struct th_sink *th_sink_start_at(const char *options, const char *ip, int port)
{
	struct th_sink *s = xcalloc(1, sizeof(*s));
	s->dir = th_tmpdir("sink");
	if (!s->dir) {
		free(s);
		return NULL;
	}
	chmod(s->dir, 0777); /* smtp-sink writes as nobody */
	s->port = port;
	ip = th_ip(ip); /* this run's addresses (harness.h) */
	char *cmd = xasprintf("exec timeout 60 /usr/sbin/smtp-sink %s -h sink.test -d '%s/m.' %s %s:%d 50",
			      geteuid() == 0 ? "-u nobody" : "", s->dir, options ? options : "", ip,
			      s->port);
	pid_t pid = fork();
	if (pid == 0) {
		/* smtp-sink must not hold the test runner's output open, and must not
		 * outlive a crashed test: timeout(1) ends it after a minute. */
		int devnull = open("/dev/null", O_WRONLY);
		dup2(devnull, 1);
		dup2(devnull, 2);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	free(cmd);
	s->pid = pid;
	for (int i = 0; i < 100; i++) {
		if (th_tcp_open(ip, s->port))
			return s;
		struct timespec ts = { 0, 20 * 1000000L };
		nanosleep(&ts, NULL);
	}
	th_sink_stop(s);
	return NULL;
}

void th_sink_stop(struct th_sink *s)
{
	if (!s)
		return;
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		waitpid(s->pid, NULL, 0);
	}
	th_rmrf(s->dir);
	free(s->dir);
	free(s);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Message file names, sorted; returns the count. */
static int list(const struct th_sink *s, char ***out)
{
	DIR *d = opendir(s->dir);
	int n = 0;
	char **v = NULL;
	struct dirent *e;
	while (d && (e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, "m.", 2) != 0)
			continue;
		v = xrealloc(v, sizeof(*v) * (size_t)(n + 1));
		v[n++] = xstrdup(e->d_name);
	}
	if (d)
		closedir(d);
	if (n > 1)
		qsort(v, (size_t)n, sizeof(*v), name_cmp);
	*out = v;
	return n;
}

static void list_free(char **v, int n)
{
	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

int th_sink_count(const struct th_sink *s)
{
	char **v;
	int n = list(s, &v);
	list_free(v, n);
	return n;
}

int th_sink_wait(const struct th_sink *s, int n, int timeout_ms)
{
	long end = th_now_ms() + timeout_ms;
	int got;
	while ((got = th_sink_count(s)) < n && th_now_ms() < end) {
		struct timespec ts = { 0, 20 * 1000000L };
		nanosleep(&ts, NULL);
	}
	return got;
}

char *th_sink_message(const struct th_sink *s, int i)
{
	char **v;
	int n = list(s, &v);
	char *out = NULL;
	if (i < n) {
		char *path = xasprintf("%s/%s", s->dir, v[i]);
		FILE *f = fopen(path, "r");
		if (f) {
			size_t cap = 1 << 16, len = 0;
			out = xmalloc(cap);
			size_t r;
			while ((r = fread(out + len, 1, cap - len - 1, f)) > 0) {
				len += r;
				if (cap - len < 2)
					out = xrealloc(out, cap *= 2);
			}
			out[len] = '\0';
			fclose(f);
		}
		free(path);
	}
	list_free(v, n);
	return out;
}
