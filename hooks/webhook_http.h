/*
 * webhook_http.h - one webhook POST over HTTP(S) with libcurl, behind the
 * SSRF guard.
 *
 * webhook_url_check() is the rule for endpoint URLs (the API uses it on
 * create/update): https, or http only when webhook_allow_private is on and
 * the host is loopback or private.  webhook_http_post() resolves the host
 * itself, refuses internal addresses (util/netaddr.h) unless allowed, pins
 * the checked address for the request (CURLOPT_RESOLVE, so a second DNS
 * answer cannot redirect it), follows no redirects, verifies TLS, and reads
 * at most MF_WEBHOOK_RESPONSE_MAX bytes of the answer.  It reports what
 * happened; the retry policy lives in hooks/webhook_dispatch.c.
 */
#ifndef MF_WEBHOOK_HTTP_H
#define MF_WEBHOOK_HTTP_H

#include <stdatomic.h>
#include <stddef.h>

struct webhook_http_req {
	const char *url;
	const char *msg_id;     /* webhook-id */
	long timestamp;         /* webhook-timestamp */
	const char *signature;  /* webhook-signature */
	const char *body;
	size_t bodylen;
	long timeout;           /* seconds, connect and total */
	int allow_private;
	const atomic_int *stop; /* non-zero aborts the transfer (shutdown; set by another thread) */
};

enum webhook_http_kind {
	WEBHOOK_HTTP_RESPONSE, /* an HTTP status arrived (any) */
	WEBHOOK_HTTP_REFUSED,  /* bad URL, or the SSRF guard said no */
	WEBHOOK_HTTP_CONNECT,  /* DNS, connection refused/reset */
	WEBHOOK_HTTP_TIMEOUT,
	WEBHOOK_HTTP_TLS,
	WEBHOOK_HTTP_ABORTED,  /* *stop was set */
	WEBHOOK_HTTP_ERROR,    /* anything else */
};

struct webhook_http_result {
	enum webhook_http_kind kind;
	int status;        /* HTTP status, 0 when none */
	long retry_after;  /* seconds from Retry-After, -1 when absent */
	char error[256];   /* human-readable, for the delivery log */
};

/* Call once before threads start (curl_global_init). */
void webhook_http_global_init(void);
/* 0 when url is acceptable for an endpoint, else -1 with err set. */
int webhook_url_check(const char *url, int allow_private, char *err, size_t errlen);
/* Always fills res; returns 0 when an HTTP response arrived, else -1. */
int webhook_http_post(const struct webhook_http_req *req, struct webhook_http_result *res);

#endif
