/*
 * sink.h - the latency and fault sink behind "mailferry sink" (issue 17):
 * an SMTP server that accepts everything, counts it, and is slow or
 * faulty on purpose, built to carry tens of thousands of sessions so that
 * it is never the limit of a bench.
 *
 * One thread runs an epoll loop over non-blocking sockets (loop.c); each
 * connection is a small state machine (session.c) that keeps no buffer
 * while idle.  Replies wait in a min-heap of timers: the replies to the
 * commands of one read (a pipelined group, RFC 2920) leave together,
 * reply_delay_ms after that read; the reply to the final dot waits
 * data_delay_ms instead (when set).  With data_hold, replies to the final
 * dot are held back until that many sessions have been open at once (then
 * released, each data_delay_ms later): a client's ability to hold many
 * sessions is seen however slowly it ramps up.  Faults come from a struct
 * sink_faults (fault.h).  Messages are counted, not stored (count.h).
 *
 * With a certificate and key the sink offers STARTTLS (RFC 3207): the
 * handshake and every read and write after it go through OpenSSL without
 * blocking (relay/tls.h), one server context for all sessions, so TLS
 * session tickets issued by one session resume in another.
 *
 * sink_new() binds every address of params->listen ("host:port[,...]")
 * and raises RLIMIT_NOFILE to its hard limit; NULL with err set on
 * failure (an address, or the certificate or key).  sink_run() serves until SIGTERM or SIGINT arrives on the
 * signal set (which the caller has blocked in every thread); SIGUSR1
 * prints the counters to stdout; with stats_file they are also written
 * there (atomically, by rename) once a second.  It returns 0, or -1 with
 * err set.  The caller prints the final counters from sink_counts().
 */
#ifndef MF_SINK_SINK_H
#define MF_SINK_SINK_H

#include <signal.h>
#include <stddef.h>

#include "sink/count.h"
#include "sink/fault.h"

struct sink;

struct sink_params {
	const char *listen;                /* "host:port[,host:port...]"; port 0 picks one */
	const char *hostname;              /* banner and EHLO name */
	long reply_delay_ms;               /* per command round trip */
	long data_delay_ms;                /* reply to the final dot; 0: reply_delay_ms */
	unsigned long data_hold;           /* >0: every reply to a final dot waits until this
					    * many sessions have been open at once */
	const struct sink_faults *faults;  /* borrowed; NULL: none */
	size_t max_message_size;           /* SIZE; larger messages get 552 5.3.4 */
	int idle_timeout_ms;               /* <= 0: MF_SMTP_SERVER_IDLE_TIMEOUT_MS */
	const char *stats_file;            /* NULL: none */
	int json;                          /* counters as JSON instead of key=value */
	const char *tls_cert_file;         /* PEM chain and key: STARTTLS offered; */
	const char *tls_key_file;          /* NULL: not */
};

struct sink *sink_new(const struct sink_params *params, char *err, size_t errlen);
/* The port bound for the i-th address of params->listen, or -1. */
int sink_port(const struct sink *sk, size_t i);
size_t sink_listeners(const struct sink *sk);
int sink_run(struct sink *sk, const sigset_t *sigs, char *err, size_t errlen);
const struct sink_count *sink_counts(const struct sink *sk);
/* Closes every session and listener. */
void sink_free(struct sink *sk);

#endif
