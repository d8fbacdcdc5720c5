/*
 * bounce_listener.h - the "bounces" role of mailferry serve: an inbound
 * SMTP server (smtpd/smtp_server.h) that accepts mail only for the bounce
 * domain and stores each message in bounces_raw before answering 250.
 *
 * Never an open relay: RCPT for any other domain gets 550 5.7.1.  When the
 * database cannot take the message the client gets 451 4.3.0 and retries
 * later.  Parsing the bounce is not done here: db_bounce_store() sends
 * NOTIFY mailferry_bounces, and the bounce processor handles every row
 * with processed_at NULL.
 */
#ifndef MF_BOUNCE_BOUNCE_LISTENER_H
#define MF_BOUNCE_BOUNCE_LISTENER_H

#include <stddef.h>

struct db_pool;
struct metrics;
struct bounce_listener;

struct bounce_listener_params {
	const char *listen;         /* bounce_listen, "host:port" */
	const char *domain;         /* bounce_domain */
	const char *hostname;       /* helo_name */
	size_t max_message_size;
	int max_sessions;           /* <= 0: default */
	int idle_timeout_ms;        /* <= 0: default */
	int max_sessions_per_addr;  /* <= 0: default */
	int session_timeout_ms;     /* whole session; <= 0: default */
	const char *tls_cert_file;  /* bounce_tls_cert: STARTTLS when set with the key */
	const char *tls_key_file;   /* bounce_tls_key */
	struct db_pool *pool;       /* borrowed; must outlive the listener */
	struct metrics *metrics;    /* borrowed, may be NULL: counters
	                             * mailferry_bounce_listener_messages_total{result}
	                             * and mailferry_bounce_listener_rcpt_refused_total */
};

/* Returns the running listener, or NULL with err set. */
struct bounce_listener *bounce_listener_new(const struct bounce_listener_params *params, char *err, size_t errlen);
int bounce_listener_port(const struct bounce_listener *bl);
/* Stops accepting, finishes sessions in progress, frees. */
void bounce_listener_free(struct bounce_listener *bl);
/* True when addr's domain is exactly domain (ASCII case-insensitive). */
int bounce_listener_domain_matches(const char *addr, const char *domain);

#endif
