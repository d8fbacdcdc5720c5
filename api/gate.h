/*
 * gate.h - admission in front of libmicrohttpd: accepts connections on one
 * listening socket, holds each one until its first request head is
 * complete, and only then hands it to the HTTP server.
 *
 * libmicrohttpd 0.9.75 has a per-IP limit but no deadline for a request
 * head (its timeout is an idle timeout that every byte resets), answers no
 * 400 to a request line without a space or starting with a NUL, and waits
 * a whole idle timeout for bytes that never contain a line feed.  The gate
 * does those three things before libmicrohttpd sees the connection:
 *   - per client address at most per_addr_max connections (429), in all
 *     at most total_max (503), counted until the server reports the
 *     connection closed (api_gate_release());
 *   - the head (request line and headers, RFC 9112 §2.1) must be complete
 *     within head_timeout_ms of the accept and within MF_API_HEAD_PEEKS
 *     arrivals, else 408;
 *   - the request line must look like one (RFC 9112 §3: method token, SP,
 *     target, SP, HTTP/d.d) from its first byte on, else 400 at once; a
 *     head over MF_API_HEAD_MAX octets gets 431.
 * The gate only peeks (MSG_PEEK): the server reads the head itself.  One
 * thread per gate, edge-triggered epoll; later requests on a kept-alive
 * connection are the server's (its idle timeout), still under the limits.
 *
 * api_gate_new() takes ownership of lfd (listening, any family); handoff()
 * owns the fd it is given whatever it returns (-1: the gate releases the
 * address's count).  api_gate_release() may be called from any thread.
 * api_gate_free() stops accepting and closes connections not handed off.
 */
#ifndef MF_API_GATE_H
#define MF_API_GATE_H

#include <stddef.h>
#include <sys/socket.h>

struct metrics;
struct api_gate;

struct api_gate_params {
	const char *name;        /* "http" or "admin", for logs and metrics */
	int per_addr_max;        /* connections per client address */
	int total_max;           /* connections in all */
	int head_timeout_ms;     /* from accept to a complete first head */
	struct metrics *metrics; /* may be NULL */
	int (*handoff)(void *arg, int fd, const struct sockaddr *sa, socklen_t salen);
	void *arg;
	/* When set, api_gate_new() stores the gate here before its thread
	 * starts: whoever receives a handoff (another thread) may then read
	 * *publish to call api_gate_release() without a race.  NULL again
	 * when api_gate_new() fails. */
	struct api_gate **publish;
};

/* Returns the running gate, or NULL with err set (lfd is closed then). */
struct api_gate *api_gate_new(const struct api_gate_params *p, int lfd, char *err, size_t errlen);
/* A connection handed off earlier is closed: its address's count drops. */
void api_gate_release(struct api_gate *g, const struct sockaddr *sa);
void api_gate_stop(struct api_gate *g);
void api_gate_free(struct api_gate *g);

/*
 * Logs one line of the HTTP server (libmicrohttpd's own messages, refused
 * connections) at warn, as log_msg() does, but at most MF_API_NETLOG_BURST
 * lines per MF_API_NETLOG_WINDOW_MS in all; the lines left out are counted
 * and reported as event=http_server_messages_suppressed count=N.
 */
void api_netlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
