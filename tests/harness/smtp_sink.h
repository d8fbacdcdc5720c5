/*
 * smtp_sink.h - Postfix's smtp-sink (/usr/sbin/smtp-sink) as a real SMTP
 * peer for tests: started on a free loopback port with extra options
 * (e.g. "-f RCPT" to hard-reject RCPT, "-r ." to soft-reject the end of
 * DATA, "-q RCPT" to disconnect), every message dumped into its own file.
 *
 * th_sink_start() returns NULL when smtp-sink cannot be started; the
 * returned struct and strings from th_sink_message() are the caller's.
 */
#ifndef MF_TEST_SMTP_SINK_H
#define MF_TEST_SMTP_SINK_H

#include <sys/types.h>

struct th_sink {
	pid_t pid;
	int port;
	char *dir; /* one file per message */
};

struct th_sink *th_sink_start(const char *options);
/* The same on ip:port (IPv4), e.g. 127.0.18.1:25 for an MX in a test zone
 * (the tests run as root); NULL when it cannot listen there. */
struct th_sink *th_sink_start_at(const char *options, const char *ip, int port);
/* Kills smtp-sink and removes its directory. */
void th_sink_stop(struct th_sink *s);
/* Messages received so far. */
int th_sink_count(const struct th_sink *s);
/* Waits up to timeout_ms for n messages; returns the count seen. */
int th_sink_wait(const struct th_sink *s, int n, int timeout_ms);
/* The i-th message file's content (sorted by name), or NULL. */
char *th_sink_message(const struct th_sink *s, int i);

#endif
