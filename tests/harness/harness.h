/*
 * harness.h - helpers for integration tests: throwaway databases in the
 * cluster tests/run.sh started, private clusters, running mailferry, and
 * HTTP requests with libcurl.  Everything here talks to real processes.
 *
 * Strings returned are owned by the caller (free()).  Functions that can
 * fail in ways a test should report return -1 / NULL; the test asserts.
 */
#ifndef MF_TEST_HARNESS_H
#define MF_TEST_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

/* A new empty database in the test cluster; migrated when migrate != 0. */
char *th_db_create(int migrate);
void th_db_drop(const char *url);
/* Runs SQL and returns the first column of the first row (or NULL). */
char *th_sql(const char *url, const char *sql);
/* Polls sql every 20 ms until it returns want (or timeout_ms passes); 0 or -1.
 * The last value seen is copied into last (may be NULL) for the failure message. */
int th_sql_wait(const char *url, const char *sql, const char *want, int timeout_ms, char *last, size_t n);

/* A private cluster (for tests that stop PostgreSQL). */
char *th_cluster_start(const char *dir); /* returns its mailferry db URL */
int th_cluster_stop(const char *dir);
char *th_tmpdir(const char *prefix);
void th_rmrf(const char *dir);

/* A running "mailferry serve". */
struct th_proc {
	pid_t pid;
	int port;
	char *log;   /* path of its stderr log */
};
/* env: NULL-terminated "KEY=VALUE" list added to the environment. */
struct th_proc *th_serve_start(const char *dburl, const char *const *env);
/* SIGTERM, waits up to timeout_ms; returns the exit status, or -1 on timeout (then SIGKILL). */
int th_proc_stop(struct th_proc *p, int timeout_ms);
void th_proc_free(struct th_proc *p);
int th_free_port(void);
/* 1 when something accepts TCP connections on ip:port (IPv4). */
int th_tcp_open(const char *ip, int port);
/* The tests' MX and MTA-STS hosts listen on fixed ports (25, 443) of
 * addresses written 127.0.18.N in the tests; th_ip() maps such an address to
 * this run's own /24 of 127/8 (MAILFERRY_TEST_NET, set by tests/run.sh from
 * its PID), so that two runs on one machine do not take each other's ports.
 * Other addresses come back unchanged.  The result lives until the 8th
 * following call.  th_ip_text() does the same for every 127.0.18. in a text
 * (a zone file); the caller frees the result. */
const char *th_ip(const char *addr);
char *th_ip_text(const char *text);

/* Runs a shell command; captures stdout+stderr into *out (may be NULL). Returns exit status. */
int th_run(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *th_bin(void);

struct th_http {
	long status;
	char *body;
	char *headers;
	char error[256]; /* curl's message when the transfer failed, else "" */
};
/* headers: NULL-terminated list of "Name: value". */
int th_http(const char *method, const char *url, const char *const *headers, const char *body,
	    struct th_http *out);
void th_http_free(struct th_http *r);
/* Polls url until it answers status (or timeout_ms passes); returns the ms waited or -1. */
int th_http_wait_status(const char *url, long status, int timeout_ms);
long th_now_ms(void);

#endif
