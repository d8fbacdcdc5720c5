/*
 * webhook_http.c - webhook POSTs with libcurl (see webhook_http.h).
 *
 * Headers per Standard Webhooks 1.0: webhook-id, webhook-timestamp,
 * webhook-signature, plus Content-Type: application/json and
 * User-Agent: mailferry/VERSION.  Redirects are not followed (a 3xx is a
 * failed attempt): following one would let an endpoint point us at an
 * internal address the guard never saw.  Proxies from the environment are
 * ignored for the same reason.
 */
#include "hooks/webhook_http.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util/buf.h"
#include "util/limits.h"
#include "util/netaddr.h"
#include "util/version.h"

/* Room for the addresses a host resolves to, comma-separated. */
#define PIN_MAX 1024

static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

void webhook_http_global_init(void)
{
	pthread_once(&global_once, global_init);
}

/* The URL's scheme, host (brackets stripped) and port. */
struct url_parts {
	char scheme[16];
	char host[256];
	int port;
};

static int url_split(const char *url, struct url_parts *p, char *err, size_t errlen)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL;
	int rc = -1;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
		snprintf(err, errlen, "not a valid URL");
	} else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
		   curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
		   curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
		snprintf(err, errlen, "the URL needs a scheme and a host");
	} else {
		size_t n = strlen(host);
		const char *h = host;
		if (n >= 2 && h[0] == '[' && h[n - 1] == ']')
			h++, n -= 2;
		if (n == 0 || n >= sizeof(p->host) || strlen(scheme) >= sizeof(p->scheme)) {
			snprintf(err, errlen, "the URL's host is empty or too long");
		} else {
			snprintf(p->scheme, sizeof(p->scheme), "%s", scheme);
			memcpy(p->host, h, n);
			p->host[n] = '\0';
			p->port = (int)strtol(port, NULL, 10);
			rc = 0;
		}
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return rc;
}

int webhook_url_check(const char *url, int allow_private, char *err, size_t errlen)
{
	struct url_parts p;
	if (strlen(url) > MF_WEBHOOK_URL_MAX) {
		snprintf(err, errlen, "the URL is longer than %d characters", MF_WEBHOOK_URL_MAX);
		return -1;
	}
	webhook_http_global_init();
	if (url_split(url, &p, err, errlen) < 0)
		return -1;
	struct sockaddr_storage ss;
	int literal = netaddr_parse_literal(p.host, &ss);
	if (strcasecmp(p.scheme, "https") == 0) {
		if (literal && !netaddr_allowed(netaddr_classify((struct sockaddr *)&ss), allow_private)) {
			snprintf(err, errlen, "the host is an internal address (webhook_allow_private = no)");
			return -1;
		}
		/* A name that resolves to an internal address is refused now;
		 * one that does not resolve yet is accepted (DNS may come later;
		 * the dispatcher checks again before every request). */
		char addrs[PIN_MAX], why[256];
		if (!literal && netaddr_resolve_checked(p.host, allow_private, addrs, sizeof(addrs), why, sizeof(why)) == -2) {
			snprintf(err, errlen, "%s (webhook_allow_private = %s)", why, allow_private ? "yes" : "no");
			return -1;
		}
		return 0;
	}
	if (strcasecmp(p.scheme, "http") != 0) {
		snprintf(err, errlen, "the URL must use https");
		return -1;
	}
	if (!allow_private) {
		snprintf(err, errlen, "the URL must use https (http is allowed only for loopback or private"
				      " hosts when webhook_allow_private = yes)");
		return -1;
	}
	/* http: only for hosts whose every address is internal. */
	char addrs[PIN_MAX];
	if (netaddr_resolve_checked(p.host, 1, addrs, sizeof(addrs), err, errlen) < 0)
		return -1;
	for (const char *a = addrs; *a;) {
		char one[64];
		size_t l = strcspn(a, ",");
		snprintf(one, sizeof(one), "%.*s", (int)l, a);
		if (netaddr_parse_literal(one, &ss) && netaddr_classify((struct sockaddr *)&ss) == NETADDR_PUBLIC) {
			snprintf(err, errlen, "http is allowed only for loopback or private hosts; use https");
			return -1;
		}
		a += l + (a[l] == ',');
	}
	return 0;
}

struct xfer {
	struct buf body;
	const atomic_int *stop;
};

/* Keeps the first MF_WEBHOOK_RESPONSE_MAX bytes; beyond that, stops. */
static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nmemb;
	if (buf_append(&x->body, ptr, n) < 0)
		return 0; /* CURLE_WRITE_ERROR: we have read all we care about */
	return n;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	struct xfer *x = arg;
	return x->stop && atomic_load(x->stop) ? 1 : 0;
}

static enum webhook_http_kind classify_curl(CURLcode rc)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return WEBHOOK_HTTP_TIMEOUT;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
		return WEBHOOK_HTTP_CONNECT;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
		return WEBHOOK_HTTP_TLS;
	case CURLE_ABORTED_BY_CALLBACK:
		return WEBHOOK_HTTP_ABORTED;
	default:
		return WEBHOOK_HTTP_ERROR;
	}
}

int webhook_http_post(const struct webhook_http_req *req, struct webhook_http_result *res)
{
	struct url_parts p;
	memset(res, 0, sizeof(*res));
	res->retry_after = -1;
	webhook_http_global_init();
	if (url_split(req->url, &p, res->error, sizeof(res->error)) < 0) {
		res->kind = WEBHOOK_HTTP_REFUSED;
		return -1;
	}
	if (strcasecmp(p.scheme, "https") != 0 && strcasecmp(p.scheme, "http") != 0) {
		res->kind = WEBHOOK_HTTP_REFUSED;
		snprintf(res->error, sizeof(res->error), "scheme %s is not allowed", p.scheme);
		return -1;
	}
	char addrs[PIN_MAX], h_id[300], h_ts[64], h_sig[256];
	if (netaddr_resolve_checked(p.host, req->allow_private, addrs, sizeof(addrs), res->error,
				    sizeof(res->error)) < 0) {
		res->kind = WEBHOOK_HTTP_REFUSED;
		return -1;
	}
	/* HOST:PORT:ADDR[,ADDR]..., IPv6 addresses in brackets: every checked
	 * address and nothing else, so curl may fall back between them but
	 * never asks DNS again.  For an IP literal host curl connects to the
	 * literal itself, which we just checked. */
	struct buf pin;
	buf_init(&pin, 2 * PIN_MAX + 512);
	buf_printf(&pin, "%s:%d:", p.host, p.port);
	for (const char *a = addrs; *a;) {
		size_t l = strcspn(a, ",");
		int v6 = memchr(a, ':', l) != NULL;
		buf_printf(&pin, "%s%s%.*s%s", a == addrs ? "" : ",", v6 ? "[" : "", (int)l, a, v6 ? "]" : "");
		a += l + (a[l] == ',');
	}
	snprintf(h_id, sizeof(h_id), "webhook-id: %s", req->msg_id);
	snprintf(h_ts, sizeof(h_ts), "webhook-timestamp: %ld", req->timestamp);
	snprintf(h_sig, sizeof(h_sig), "webhook-signature: %s", req->signature);

	struct curl_slist *resolve = curl_slist_append(NULL, buf_cstr(&pin));
	buf_cleanup(&pin);
	struct curl_slist *hdr = NULL;
	hdr = curl_slist_append(hdr, "Content-Type: application/json");
	hdr = curl_slist_append(hdr, h_id);
	hdr = curl_slist_append(hdr, h_ts);
	hdr = curl_slist_append(hdr, h_sig);
	hdr = curl_slist_append(hdr, "Expect:");
	struct xfer x = { .stop = req->stop };
	buf_init(&x.body, MF_WEBHOOK_RESPONSE_MAX);

	CURL *c = curl_easy_init();
	curl_easy_setopt(c, CURLOPT_URL, req->url);
	curl_easy_setopt(c, CURLOPT_RESOLVE, resolve);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, req->timeout);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, req->timeout);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "mailferry/" MF_VERSION);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->bodylen);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, &x);

	CURLcode rc = curl_easy_perform(c);
	long code = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_off_t ra = -1;
	if (curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
		res->retry_after = (long)ra;
	/* A body over the cap ends the transfer early, but the status is in. */
	if (code > 0 && (rc == CURLE_OK || rc == CURLE_WRITE_ERROR)) {
		res->kind = WEBHOOK_HTTP_RESPONSE;
		res->status = (int)code;
		if (code < 200 || code > 299) {
			/* The start of the answer helps whoever reads the log. */
			char snippet[160];
			size_t n = x.body.len < sizeof(snippet) - 1 ? x.body.len : sizeof(snippet) - 1;
			for (size_t i = 0; i < n; i++) {
				unsigned char ch = (unsigned char)x.body.data[i];
				snippet[i] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
			}
			snippet[n] = '\0';
			snprintf(res->error, sizeof(res->error), "HTTP %ld%s%s", code, n ? ": " : "", snippet);
		}
	} else {
		res->kind = classify_curl(rc);
		snprintf(res->error, sizeof(res->error), "%s", curl_easy_strerror(rc));
	}
	curl_easy_cleanup(c);
	curl_slist_free_all(hdr);
	curl_slist_free_all(resolve);
	buf_cleanup(&x.body);
	return res->kind == WEBHOOK_HTTP_RESPONSE ? 0 : -1;
}
