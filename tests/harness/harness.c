/*
 * harness.c - integration test helpers (see harness.h).
 */
#include "harness.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "util/buf.h"
#include "util/xmalloc.h"

extern char **environ;

long th_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static const char *env_or(const char *name, const char *def)
{
	const char *v = getenv(name);
	return v && *v ? v : def;
}

const char *th_bin(void)
{
	return env_or("MAILFERRY_BIN", "bin/mailferry");
}

char *th_sql(const char *url, const char *sql)
{
	PGconn *c = PQconnectdb(url);
	char *out = NULL;
	if (PQstatus(c) == CONNECTION_OK) {
		PGresult *r = PQexec(c, sql);
		if ((PQresultStatus(r) == PGRES_TUPLES_OK) && PQntuples(r) > 0)
			out = xstrdup(PQgetvalue(r, 0, 0));
		else if (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK)
			out = xstrdup("");
		else
			fprintf(stderr, "th_sql: %s: %s", sql, PQerrorMessage(c));
		PQclear(r);
	} else {
		fprintf(stderr, "th_sql: connect: %s", PQerrorMessage(c));
	}
	PQfinish(c);
	return out;
}

int th_sql_wait(const char *url, const char *sql, const char *want, int timeout_ms, char *last, size_t n)
{
	long end = th_now_ms() + timeout_ms;
	for (;;) {
		char *got = th_sql(url, sql);
		int ok = got && strcmp(got, want) == 0;
		if (last && n)
			snprintf(last, n, "%s", got ? got : "(error)");
		free(got);
		if (ok)
			return 0;
		if (th_now_ms() > end)
			return -1;
		usleep(20000);
	}
}

/* Replaces the database name in the test cluster URL. */
static char *url_for_db(const char *db)
{
	const char *admin = env_or("MAILFERRY_TEST_PG_URL", "postgresql://postgres@/postgres");
	const char *q = strchr(admin, '?');
	return xasprintf("postgresql://postgres@/%s%s", db, q ? q : "");
}

char *th_db_create(int migrate)
{
	static int counter;
	char name[64];
	unsigned r = (unsigned)rand() ^ (unsigned)th_now_ms();
	snprintf(name, sizeof(name), "t_%d_%d_%u", (int)getpid(), ++counter, r % 100000);
	/* A migrated database is a copy of run.sh's template when there is one
	 * (the migrations ran there once, with this build's mailferry). */
	const char *tmpl = migrate ? getenv("MAILFERRY_TEST_TEMPLATE") : NULL;
	char *sql = tmpl && *tmpl ? xasprintf("CREATE DATABASE %s TEMPLATE %s", name, tmpl)
				  : xasprintf("CREATE DATABASE %s", name);
	char *res = th_sql(env_or("MAILFERRY_TEST_PG_URL", "postgresql://postgres@/postgres"), sql);
	free(sql);
	if (res == NULL)
		return NULL;
	free(res);
	char *url = url_for_db(name);
	if (migrate && !(tmpl && *tmpl) && th_run(NULL, "MAILFERRY_DATABASE_URL='%s' %s migrate", url, th_bin()) != 0) {
		free(url);
		return NULL;
	}
	return url;
}

void th_db_drop(const char *url)
{
	const char *slash = strstr(url, "@/");
	if (slash == NULL)
		return;
	char name[64];
	size_t n = strcspn(slash + 2, "?");
	snprintf(name, sizeof(name), "%.*s", (int)n, slash + 2);
	char *sql = xasprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
	free(th_sql(env_or("MAILFERRY_TEST_PG_URL", "postgresql://postgres@/postgres"), sql));
	free(sql);
}

char *th_tmpdir(const char *prefix)
{
	char *tmpl = xasprintf("%s/%s.XXXXXX", env_or("MAILFERRY_TEST_TMP", "/tmp"), prefix);
	if (mkdtemp(tmpl) == NULL) {
		free(tmpl);
		return NULL;
	}
	chmod(tmpl, 0755);
	return tmpl;
}

void th_rmrf(const char *dir)
{
	if (dir && strlen(dir) > 5)
		th_run(NULL, "rm -rf '%s'", dir);
}

char *th_cluster_start(const char *dir)
{
	char *out = NULL;
	const char *src = env_or("MAILFERRY_TEST_SRCDIR", ".");
	if (th_run(&out, "%s/deploy/pg.sh --dir '%s' start", src, dir) != 0) {
		fprintf(stderr, "cluster start failed: %s\n", out ? out : "");
		free(out);
		return NULL;
	}
	out[strcspn(out, "\n")] = '\0';
	return out;
}

int th_cluster_stop(const char *dir)
{
	const char *src = env_or("MAILFERRY_TEST_SRCDIR", ".");
	return th_run(NULL, "%s/deploy/pg.sh --dir '%s' stop", src, dir);
}

int th_run(char **out, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	struct buf cmd;
	buf_init(&cmd, 1 << 20);
	buf_vprintf(&cmd, fmt, ap);
	va_end(ap);
	buf_puts(&cmd, " 2>&1");
	FILE *f = popen(buf_cstr(&cmd), "r");
	buf_cleanup(&cmd);
	if (f == NULL)
		return -1;
	struct buf o;
	buf_init(&o, 64 << 20);
	char tmp[4096];
	size_t n;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		buf_append(&o, tmp, n);
	int st = pclose(f);
	if (out)
		*out = buf_steal(&o, NULL);
	buf_cleanup(&o);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

#define TH_NET_WRITTEN "127.0.18."

static const char *th_net(void)
{
	const char *n = getenv("MAILFERRY_TEST_NET");
	return n && *n ? n : "127.0.18";
}

const char *th_ip(const char *addr)
{
	static char ring[8][INET_ADDRSTRLEN];
	static unsigned next;
	size_t k = strlen(TH_NET_WRITTEN);
	if (addr == NULL || strncmp(addr, TH_NET_WRITTEN, k) != 0)
		return addr;
	char *out = ring[next++ % 8];
	snprintf(out, sizeof(ring[0]), "%s.%s", th_net(), addr + k);
	return out;
}

char *th_ip_text(const char *text)
{
	size_t k = strlen(TH_NET_WRITTEN);
	struct buf b;
	buf_init(&b, 1 << 20);
	for (const char *p = text, *hit; *p; p = hit + k) {
		hit = strstr(p, TH_NET_WRITTEN);
		if (hit == NULL) {
			buf_puts(&b, p);
			break;
		}
		buf_append(&b, p, (size_t)(hit - p));
		buf_printf(&b, "%s.", th_net());
	}
	char *out = xstrdup(buf_cstr(&b) ? buf_cstr(&b) : "");
	buf_cleanup(&b);
	return out;
}

int th_tcp_open(const char *ip, int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, ip, &sin.sin_addr);
	int ok = connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
	close(fd);
	return ok;
}

int th_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return ntohs(sin.sin_port);
}

struct th_proc *th_serve_start(const char *dburl, const char *const *env)
{
	struct th_proc *p = xcalloc(1, sizeof(*p));
	p->port = th_free_port();
	p->log = xasprintf("%s/serve-%d-%d.log", env_or("MAILFERRY_TEST_TMP", "/tmp"), (int)getpid(), p->port);
	pid_t pid = fork();
	if (pid == 0) {
		char listen[64];
		snprintf(listen, sizeof(listen), "127.0.0.1:%d", p->port);
		setenv("MAILFERRY_DATABASE_URL", dburl, 1);
		setenv("MAILFERRY_HTTP_LISTEN", listen, 1);
		setenv("MAILFERRY_LOG_FORMAT", "text", 0);
		setenv("MAILFERRY_LOG_LEVEL", "debug", 0);
		/* No delivery unless a test asks for it (MAILFERRY_ROLES in env):
		 * API tests look at recipients while they are still queued. */
		setenv("MAILFERRY_ROLES", "api,webhooks,bounces", 0);
		for (const char *const *e = env; e && *e; e++) {
			char *kv = xstrdup(*e);
			char *eq = strchr(kv, '=');
			if (eq) {
				*eq = '\0';
				setenv(kv, eq + 1, 1);
			}
		}
		int fd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0) {
			dup2(fd, 2);
			dup2(fd, 1);
		}
		execl(th_bin(), "mailferry", "serve", (char *)NULL);
		_exit(127);
	}
	p->pid = pid;
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", p->port);
	if (th_http_wait_status(url, 200, 15000) < 0) {
		char *log = NULL;
		th_run(&log, "cat '%s'", p->log);
		fprintf(stderr, "mailferry serve did not come up:\n%s\n", log ? log : "");
		free(log);
		th_proc_stop(p, 1000);
		th_proc_free(p);
		return NULL;
	}
	return p;
}

int th_proc_stop(struct th_proc *p, int timeout_ms)
{
	if (p == NULL || p->pid <= 0)
		return -1;
	kill(p->pid, SIGTERM);
	long start = th_now_ms();
	int st;
	while (th_now_ms() - start < timeout_ms) {
		pid_t r = waitpid(p->pid, &st, WNOHANG);
		if (r == p->pid) {
			p->pid = 0;
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
		usleep(10000);
	}
	kill(p->pid, SIGKILL);
	waitpid(p->pid, &st, 0);
	p->pid = 0;
	return -1;
}

void th_proc_free(struct th_proc *p)
{
	if (p == NULL)
		return;
	if (p->pid > 0)
		th_proc_stop(p, 5000);
	free(p->log);
	free(p);
}

static size_t collect(char *ptr, size_t size, size_t nmemb, void *arg)
{
	buf_append(arg, ptr, size * nmemb);
	return size * nmemb;
}

int th_http(const char *method, const char *url, const char *const *headers, const char *body,
	    struct th_http *out)
{
	CURL *c = curl_easy_init();
	struct buf b, h;
	buf_init(&b, 256 << 20);
	buf_init(&h, 1 << 20);
	struct curl_slist *hl = NULL;
	for (const char *const *p = headers; p && *p; p++)
		hl = curl_slist_append(hl, *p);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	char cerr[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
	CURLcode rc = curl_easy_perform(c);
	out->status = 0;
	/* A transport failure is otherwise anonymous: keep what curl said. */
	snprintf(out->error, sizeof(out->error), "%s", rc == CURLE_OK ? "" : *cerr ? cerr : curl_easy_strerror(rc));
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
	out->body = buf_steal(&b, NULL);
	out->headers = buf_steal(&h, NULL);
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	return rc == CURLE_OK ? 0 : -1;
}

void th_http_free(struct th_http *r)
{
	free(r->body);
	free(r->headers);
	r->body = r->headers = NULL;
}

int th_http_wait_status(const char *url, long status, int timeout_ms)
{
	long start = th_now_ms();
	for (;;) {
		struct th_http r;
		int ok = th_http("GET", url, NULL, NULL, &r) == 0 && r.status == status;
		th_http_free(&r);
		long waited = th_now_ms() - start;
		if (ok)
			return (int)waited;
		if (waited > timeout_ms)
			return -1;
		usleep(50000);
	}
}
