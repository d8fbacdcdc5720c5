/*
 * wh_receiver.c - the test webhook receiver (see wh_receiver.h).
 *
 * Verification follows the Standard Webhooks 1.0 receiver rules: the
 * signed content is id "." timestamp "." body, the key the base64 part of
 * the secret after "whsec_", and the header may carry several
 * space-separated "v1,<base64>" signatures of which one must match.
 */
#include "wh_receiver.h"

#include <microhttpd.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "harness.h"
#include "util/buf.h"
#include "util/xmalloc.h"

#define MAX_IDS 4096

struct seen {
	char *id;
	int count;
	int ok;
};

struct th_receiver {
	struct MHD_Daemon *d;
	int port;
	pthread_mutex_t mu;
	char *secrets[2];
	int script[16];
	int nscript;
	int delay_ms;
	int hold; /* answer nothing until released (th_receiver_hold) */
	int held; /* requests waiting for the hold to end */
	int retry_after;
	int requests, bad;
	struct seen ids[MAX_IDS];
	int nids;
	char *last_headers, *last_body;
};

struct req_state {
	struct buf body;
};

static void parse_script(struct th_receiver *r, const char *s)
{
	r->nscript = 0;
	while (s && *s && r->nscript < 16) {
		r->script[r->nscript++] = (int)strtol(s, (char **)&s, 10);
		if (*s == ',')
			s++;
	}
	if (r->nscript == 0)
		r->script[r->nscript++] = 200;
}

/* Decodes standard base64 with OpenSSL, minus the padding bytes. */
static int b64dec(const char *in, unsigned char *out)
{
	size_t n = strlen(in);
	if (n % 4 != 0) {
		/* Pad to a multiple of 4 as EVP_DecodeBlock wants it. */
		char tmp[256];
		if (n + 4 >= sizeof(tmp))
			return -1;
		memcpy(tmp, in, n);
		while (n % 4)
			tmp[n++] = '=';
		tmp[n] = '\0';
		return b64dec(tmp, out);
	}
	int len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
	if (len < 0)
		return -1;
	if (n >= 1 && in[n - 1] == '=')
		len--;
	if (n >= 2 && in[n - 2] == '=')
		len--;
	return len;
}

static int verify_with(const char *secret, const char *id, const char *ts, const char *body, size_t blen,
		       const char *header)
{
	unsigned char key[128], mac[32];
	unsigned int maclen = 0;
	const char *k = strncmp(secret, "whsec_", 6) == 0 ? secret + 6 : secret;
	int klen = b64dec(k, key);
	if (klen <= 0)
		return 0;
	struct buf msg;
	buf_init(&msg, 1 << 24);
	buf_printf(&msg, "%s.%s.", id, ts);
	buf_append(&msg, body, blen);
	HMAC(EVP_sha256(), key, klen, (const unsigned char *)msg.data, msg.len, mac, &maclen);
	buf_cleanup(&msg);
	char expect[64];
	EVP_EncodeBlock((unsigned char *)expect, mac, (int)maclen);
	/* Any of the space-separated signatures may match. */
	size_t elen = strlen(expect);
	for (const char *p = header; *p;) {
		size_t n = strcspn(p, " ");
		if (n == 3 + elen && strncmp(p, "v1,", 3) == 0 && strncmp(p + 3, expect, elen) == 0)
			return 1;
		p += n;
		while (*p == ' ')
			p++;
	}
	return 0;
}

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	(void)kind;
	buf_printf(cls, "%s: %s\n", key, value);
	return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
				  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	(void)url, (void)version, (void)method;
	struct th_receiver *r = cls;
	struct req_state *st = *con_cls;
	if (st == NULL) {
		st = xcalloc(1, sizeof(*st));
		buf_init(&st->body, 1 << 24);
		*con_cls = st;
		return MHD_YES;
	}
	if (*upload_size) {
		buf_append(&st->body, upload, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	const char *id = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "webhook-id");
	const char *ts = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "webhook-timestamp");
	const char *sig = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "webhook-signature");
	struct buf hdrs;
	buf_init(&hdrs, 1 << 16);
	MHD_get_connection_values(c, MHD_HEADER_KIND, collect_header, &hdrs);

	/* Wait out the delay, and any hold, in short steps. */
	int counted = 0;
	for (long waited = 0;; waited += 10) {
		pthread_mutex_lock(&r->mu);
		int wait = r->hold || waited < r->delay_ms;
		if (r->hold && !counted) {
			r->held++;
			counted = 1;
		}
		if (!wait && counted)
			r->held--;
		pthread_mutex_unlock(&r->mu);
		if (!wait)
			break;
		usleep(10000);
	}
	pthread_mutex_lock(&r->mu);
	int verified = 0;
	if (id && ts && sig) {
		long age = labs((long)time(NULL) - strtol(ts, NULL, 10));
		for (int i = 0; i < 2 && !verified; i++)
			if (r->secrets[i])
				verified = verify_with(r->secrets[i], id, ts, buf_cstr(&st->body), st->body.len, sig);
		if (age > 300) /* the standard's replay window */
			verified = 0;
	}
	r->requests++;
	if (!verified)
		r->bad++;
	struct seen *s = NULL;
	for (int i = 0; id && i < r->nids; i++)
		if (strcmp(r->ids[i].id, id) == 0)
			s = &r->ids[i];
	if (s == NULL && id && r->nids < MAX_IDS) {
		s = &r->ids[r->nids++];
		s->id = xstrdup(id);
	}
	int status = 200;
	if (s) {
		status = r->script[s->count < r->nscript ? s->count : r->nscript - 1];
		s->count++;
		if (status >= 200 && status <= 299)
			s->ok = 1;
	}
	free(r->last_headers);
	free(r->last_body);
	r->last_headers = buf_steal(&hdrs, NULL);
	r->last_body = xstrdup(buf_cstr(&st->body));
	pthread_mutex_unlock(&r->mu);
	buf_cleanup(&hdrs);

	int retry_after = r->retry_after;
	static const char answer[] = "{\"received\":true}";
	struct MHD_Response *resp = MHD_create_response_from_buffer(sizeof(answer) - 1, (void *)answer,
								    MHD_RESPMEM_PERSISTENT);
	if (status >= 300 && retry_after > 0) {
		char ra[16];
		snprintf(ra, sizeof(ra), "%d", retry_after);
		MHD_add_response_header(resp, "Retry-After", ra);
	}
	if (status >= 300 && status < 400) {
		char loc[64];
		snprintf(loc, sizeof(loc), "http://127.0.0.1:%d/redirected", r->port);
		MHD_add_response_header(resp, "Location", loc);
	}
	enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	(void)cls, (void)c, (void)toe;
	struct req_state *st = *con_cls;
	if (st) {
		buf_cleanup(&st->body);
		free(st);
	}
	*con_cls = NULL;
}

/* On ip (NULL: 127.0.0.1) and port (0: a free one, five tries). */
static struct th_receiver *start(const char *script, const char *key_pem, const char *cert_pem, const char *ip,
				 int port)
{
	struct th_receiver *r = xcalloc(1, sizeof(*r));
	pthread_mutex_init(&r->mu, NULL);
	parse_script(r, script);
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION;
	struct in_addr ia = { .s_addr = htonl(INADDR_LOOPBACK) };
	if (ip && inet_pton(AF_INET, ip, &ia) != 1) {
		pthread_mutex_destroy(&r->mu);
		free(r);
		return NULL;
	}
	for (int attempt = 0; attempt < (port ? 1 : 5) && r->d == NULL; attempt++) {
		r->port = port ? port : th_free_port();
		struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)r->port), .sin_addr = ia };
		if (key_pem)
			r->d = MHD_start_daemon(flags | MHD_USE_TLS, 0, NULL, NULL, on_request, r, MHD_OPTION_SOCK_ADDR,
						(struct sockaddr *)&sin, MHD_OPTION_NOTIFY_COMPLETED, on_completed, r,
						MHD_OPTION_HTTPS_MEM_KEY, key_pem, MHD_OPTION_HTTPS_MEM_CERT, cert_pem,
						MHD_OPTION_END);
		else
			r->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, r, MHD_OPTION_SOCK_ADDR,
						(struct sockaddr *)&sin, MHD_OPTION_NOTIFY_COMPLETED, on_completed, r,
						MHD_OPTION_END);
	}
	if (r->d == NULL) {
		pthread_mutex_destroy(&r->mu);
		free(r);
		return NULL;
	}
	return r;
}

struct th_receiver *th_receiver_start(const char *script)
{
	return start(script, NULL, NULL, NULL, 0);
}

struct th_receiver *th_receiver_start_at(const char *script, const char *ip, int port)
{
	return start(script, NULL, NULL, ip, port);
}

struct th_receiver *th_receiver_start_tls(const char *script, const char *key_pem, const char *cert_pem)
{
	return start(script, key_pem, cert_pem, NULL, 0);
}

void th_receiver_free(struct th_receiver *r)
{
	if (r == NULL)
		return;
	MHD_stop_daemon(r->d);
	for (int i = 0; i < r->nids; i++)
		free(r->ids[i].id);
	free(r->secrets[0]);
	free(r->secrets[1]);
	free(r->last_headers);
	free(r->last_body);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

int th_receiver_port(struct th_receiver *r)
{
	return r->port;
}

void th_receiver_set_secrets(struct th_receiver *r, const char *secret, const char *other)
{
	pthread_mutex_lock(&r->mu);
	free(r->secrets[0]);
	free(r->secrets[1]);
	r->secrets[0] = secret ? xstrdup(secret) : NULL;
	r->secrets[1] = other ? xstrdup(other) : NULL;
	pthread_mutex_unlock(&r->mu);
}

void th_receiver_set_script(struct th_receiver *r, const char *script)
{
	pthread_mutex_lock(&r->mu);
	parse_script(r, script);
	pthread_mutex_unlock(&r->mu);
}

void th_receiver_hold(struct th_receiver *r, int on)
{
	pthread_mutex_lock(&r->mu);
	r->hold = on;
	pthread_mutex_unlock(&r->mu);
}

int th_receiver_held(struct th_receiver *r)
{
	pthread_mutex_lock(&r->mu);
	int n = r->held;
	pthread_mutex_unlock(&r->mu);
	return n;
}

void th_receiver_set_delay_ms(struct th_receiver *r, int ms)
{
	pthread_mutex_lock(&r->mu);
	r->delay_ms = ms;
	pthread_mutex_unlock(&r->mu);
}

#define LOCKED_INT(expr)                    \
	do {                                \
		pthread_mutex_lock(&r->mu); \
		int v_ = (expr);            \
		pthread_mutex_unlock(&r->mu); \
		return v_;                  \
	} while (0)

void th_receiver_set_retry_after(struct th_receiver *r, int secs)
{
	pthread_mutex_lock(&r->mu);
	r->retry_after = secs;
	pthread_mutex_unlock(&r->mu);
}

int th_receiver_requests(struct th_receiver *r)
{
	LOCKED_INT(r->requests);
}

int th_receiver_bad(struct th_receiver *r)
{
	LOCKED_INT(r->bad);
}

int th_receiver_count_id(struct th_receiver *r, const char *id)
{
	pthread_mutex_lock(&r->mu);
	int n = 0;
	for (int i = 0; i < r->nids; i++)
		if (strcmp(r->ids[i].id, id) == 0)
			n = r->ids[i].count;
	pthread_mutex_unlock(&r->mu);
	return n;
}

int th_receiver_distinct_ok(struct th_receiver *r)
{
	pthread_mutex_lock(&r->mu);
	int n = 0;
	for (int i = 0; i < r->nids; i++)
		n += r->ids[i].ok;
	pthread_mutex_unlock(&r->mu);
	return n;
}

int th_receiver_max_per_id(struct th_receiver *r)
{
	pthread_mutex_lock(&r->mu);
	int n = 0;
	for (int i = 0; i < r->nids; i++)
		if (r->ids[i].count > n)
			n = r->ids[i].count;
	pthread_mutex_unlock(&r->mu);
	return n;
}

char *th_receiver_last_headers(struct th_receiver *r)
{
	pthread_mutex_lock(&r->mu);
	char *s = xstrdup(r->last_headers ? r->last_headers : "");
	pthread_mutex_unlock(&r->mu);
	return s;
}

char *th_receiver_last_body(struct th_receiver *r)
{
	pthread_mutex_lock(&r->mu);
	char *s = xstrdup(r->last_body ? r->last_body : "");
	pthread_mutex_unlock(&r->mu);
	return s;
}

int th_receiver_wait_ok(struct th_receiver *r, int n, int timeout_ms)
{
	long start = th_now_ms();
	for (;;) {
		if (th_receiver_distinct_ok(r) >= n)
			return (int)(th_now_ms() - start);
		if (th_now_ms() - start > timeout_ms)
			return -1;
		usleep(20000);
	}
}
