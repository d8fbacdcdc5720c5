/*
 * bounce_listener.c - inbound SMTP for bounce_domain (see
 * bounce_listener.h).  The policy lives in two callbacks: on_rcpt (only
 * our domain) and on_message (store durably, then 250).
 */
#include "bounce/bounce_listener.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "db/bounce_store.h"
#include "smtpd/smtp_server.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/xmalloc.h"

struct bounce_listener {
	char *domain;
	struct db_pool *pool;
	struct metrics *metrics;
	struct smtp_server *srv;
};

int bounce_listener_domain_matches(const char *addr, const char *domain)
{
	const char *at = strrchr(addr, '@');
	return at != NULL && at != addr && domain != NULL && *domain != '\0' && strcasecmp(at + 1, domain) == 0;
}

static void on_rcpt(void *arg, const struct smtp_server_envelope *env, const char *rcpt,
		    struct smtp_server_reply *reply)
{
	struct bounce_listener *bl = arg;
	(void)env;
	/* Never an open relay: only the bounce domain is ours. */
	if (!bounce_listener_domain_matches(rcpt, bl->domain)) {
		smtp_server_reply_set(reply, 550, "5.7.1 <%s>: Relay access denied", rcpt);
		if (bl->metrics)
			metrics_counter_add(bl->metrics, "mailferry_bounce_listener_rcpt_refused_total",
					    "Recipients refused by the bounce listener (not bounce_domain).", "", 1);
	}
}

static void count_message(struct bounce_listener *bl, const char *result)
{
	char labels[64];
	snprintf(labels, sizeof(labels), "result=\"%s\"", result);
	if (bl->metrics)
		metrics_counter_add(bl->metrics, "mailferry_bounce_listener_messages_total",
				    "Messages received by the bounce listener, by result (stored, failed).", labels, 1);
}

static void on_message(void *arg, const struct smtp_server_envelope *env, const char *data, size_t len,
		       struct smtp_server_reply *reply)
{
	struct bounce_listener *bl = arg;
	char err[512];
	int64_t id = 0;
	if (db_bounce_store(bl->pool, "smtp", env->mail_from, env->rcpts, env->nrcpts, data, len, &id, err,
			    sizeof(err)) != 0) {
		log_error("event=bounce_store_failed session=%s error=%s", env->session, err);
		/* The sender keeps the message and retries (RFC 5321 §4.2.5). */
		smtp_server_reply_set(reply, 451, "4.3.0 Temporary failure storing the message, try again later");
		count_message(bl, "failed");
		return;
	}
	log_info("event=bounce_received session=%s bounce_id=%" PRId64 " rcpts=%zu size=%zu", env->session, id,
		 env->nrcpts, len);
	smtp_server_reply_set(reply, 250, "2.0.0 Ok: stored as bounce %" PRId64, id);
	count_message(bl, "stored");
}

struct bounce_listener *bounce_listener_new(const struct bounce_listener_params *params, char *err, size_t errlen)
{
	if (params->domain == NULL || *params->domain == '\0') {
		snprintf(err, errlen, "bounce listener needs bounce_domain");
		return NULL;
	}
	struct bounce_listener *bl = xcalloc(1, sizeof(*bl));
	bl->domain = xstrdup(params->domain);
	bl->pool = params->pool;
	bl->metrics = params->metrics;
	struct smtp_server_params sp = {
		.listen = params->listen,
		.hostname = params->hostname,
		.max_message_size = params->max_message_size,
		.max_sessions = params->max_sessions,
		.idle_timeout_ms = params->idle_timeout_ms,
		.max_sessions_per_addr = params->max_sessions_per_addr,
		.session_timeout_ms = params->session_timeout_ms,
		.tls_cert_file = params->tls_cert_file,
		.tls_key_file = params->tls_key_file,
		.arg = bl,
		.on_rcpt = on_rcpt,
		.on_message = on_message,
	};
	bl->srv = smtp_server_new(&sp, err, errlen);
	if (bl->srv == NULL) {
		bounce_listener_free(bl);
		return NULL;
	}
	return bl;
}

int bounce_listener_port(const struct bounce_listener *bl)
{
	return smtp_server_port(bl->srv);
}

void bounce_listener_free(struct bounce_listener *bl)
{
	if (bl == NULL)
		return;
	smtp_server_free(bl->srv);
	free(bl->domain);
	free(bl);
}
