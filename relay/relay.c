/*
 * relay.c - relay_deliver() (relay/relay.h): route the job's domain,
 * take an idle session to one of its hosts or open a new one (next host on
 * failure, RFC 5321 §5.1), run one transaction for all the job's
 * recipients, and classify what happened into their outcomes.
 *
 * The job's timeout_ms bounds the whole delivery: every wait of every
 * session it uses ends by then (smtp_params.deadline_ms).
 *
 * Idle sessions are cached per destination (route, host, port) for
 * idle_ms and reused (with RSET, pipelined with the next envelope when
 * the server offers PIPELINING) by whichever worker thread delivers next
 * there.  The cache holds up to `workers` sessions (each worker leaves at
 * most one behind per job): a hash table of destinations (util/strmap.h),
 * each with its sessions newest first, and one list of all of them
 * oldest first, which is also their expiry order (idle_ms is one value).
 * Taking, putting and reaping the expired are O(1) per session under one
 * mutex.  The newest session of a destination is taken (the one least
 * likely to have been closed by the server); when the cache is full the
 * oldest of all is closed.  A session is only ever used by the thread
 * that took it out, and closed (QUIT) outside the lock.
 */
#include "relay/relay.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns.h"
#include "relay/mta_sts.h"
#include "relay/route.h"
#include "relay/smtp_client.h"
#include "relay/tls.h"
#include "util/config.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/metrics_names.h"
#include "util/strmap.h"
#include "util/xmalloc.h"

struct idle_dest;

struct idle_session {
	struct idle_dest *dest;
	struct smtp_client *c;
	long expires;
	struct idle_session *dprev, *dnext; /* its destination's, newest first */
	struct idle_session *gprev, *gnext; /* all, oldest first */
};

/* One destination's idle sessions; freed when the last one goes. */
struct idle_dest {
	struct idle_session *newest;
	char key[];
};

struct relay {
	char *helo_name;
	char *auth_user;
	char *auth_password;
	enum tls_mode smarthost_tls;
	enum tls_policy tls_policy;
	int tls_verify;
	struct router *router;
	struct tls_ctx *tls;
	double timeout_scale;
	long idle_ms;
	pthread_mutex_t lock;
	struct strmap *idle_dests;         /* key -> struct idle_dest */
	struct idle_session *oldest, *newest;
	int nidle, idle_max;
	atomic_long session_seq;
	struct metrics *metrics;    /* may be NULL */
	struct sts *sts;            /* NULL: mta_sts = no */
};

static struct idle_session *cache_unlink_expired(struct relay *r, long now);
static void close_sessions(struct idle_session *s);

struct relay *relay_new(const struct config *cfg, char *err, size_t errlen)
{
	struct router *rt = router_new(cfg->routes, cfg->smarthost, err, errlen);
	if (!rt)
		return NULL;
	if (cfg->dns_servers) {
		struct dns_resolver *res = dns_resolver_new(cfg->dns_servers, err, errlen);
		if (!res) {
			router_free(rt);
			return NULL;
		}
		router_set_resolver(rt, res);
	}
	struct tls_ctx *tls = tls_ctx_new(cfg->tls_ca_file, err, errlen);
	if (!tls) {
		router_free(rt);
		return NULL;
	}
	struct relay *r = xcalloc(1, sizeof(*r));
	r->helo_name = xstrdup(cfg->helo_name ? cfg->helo_name : "localhost");
	r->auth_user = cfg->smarthost_user ? xstrdup(cfg->smarthost_user) : NULL;
	r->auth_password = xstrdup(cfg->smarthost_password ? cfg->smarthost_password : "");
	r->smarthost_tls = cfg->smarthost_tls;
	r->tls_policy = cfg->tls_policy;
	r->tls_verify = cfg->tls_verify;
	r->router = rt;
	r->tls = tls;
	r->timeout_scale = 1.0;
	r->idle_ms = RELAY_IDLE_MS;
	r->idle_max = cfg->workers > RELAY_IDLE_MIN ? cfg->workers : RELAY_IDLE_MIN;
	r->idle_dests = strmap_new();
	pthread_mutex_init(&r->lock, NULL);
	if (cfg->mta_sts)
		r->sts = sts_new(router_resolver(rt), cfg->tls_ca_file);
	return r;
}

void relay_free(struct relay *r)
{
	if (!r)
		return;
	struct idle_session *all = cache_unlink_expired(r, -1);
	close_sessions(all);
	strmap_free(r->idle_dests);
	pthread_mutex_destroy(&r->lock);
	sts_free(r->sts);
	router_free(r->router);
	tls_ctx_free(r->tls);
	free(r->helo_name);
	free(r->auth_user);
	free(r->auth_password);
	free(r);
}

void relay_set_pool(struct relay *r, struct db_pool *pool)
{
	if (r->sts)
		sts_set_store(r->sts, pool);
}

void relay_set_timeout_scale(struct relay *r, double scale)
{
	r->timeout_scale = scale;
}

void relay_set_idle_ms(struct relay *r, long ms)
{
	r->idle_ms = ms;
}

void relay_set_metrics(struct relay *r, struct metrics *m)
{
	r->metrics = m;
}

void relay_set_mx_lookup(struct relay *r, route_mx_fn fn, void *arg)
{
	router_set_mx_lookup(r->router, fn, arg);
}

void relay_set_nameserver(struct relay *r, const char *ip, int port)
{
	router_set_nameserver(r->router, ip, port);
}

int relay_idle_sessions(struct relay *r)
{
	pthread_mutex_lock(&r->lock);
	int n = r->nidle;
	pthread_mutex_unlock(&r->lock);
	return n;
}

/* ---- the idle-session cache -------------------------------------------- */

/* Under r->lock: unlinks s from both lists (and frees an emptied destination). */
static void cache_unlink(struct relay *r, struct idle_session *s)
{
	struct idle_dest *d = s->dest;
	if (s->dprev)
		s->dprev->dnext = s->dnext;
	else
		d->newest = s->dnext;
	if (s->dnext)
		s->dnext->dprev = s->dprev;
	if (d->newest == NULL) {
		strmap_del(r->idle_dests, d->key);
		free(d);
	}
	if (s->gprev)
		s->gprev->gnext = s->gnext;
	else
		r->oldest = s->gnext;
	if (s->gnext)
		s->gnext->gprev = s->gprev;
	else
		r->newest = s->gprev;
	s->gprev = s->gnext = s->dprev = s->dnext = NULL;
	s->dest = NULL;
	r->nidle--;
}

/* Under r->lock: unlinks the sessions expired by now (all when now < 0)
 * and returns them as a list (gnext) for close_sessions(). */
static struct idle_session *cache_unlink_expired(struct relay *r, long now)
{
	struct idle_session *out = NULL;
	while (r->oldest && (now < 0 || r->oldest->expires <= now)) {
		struct idle_session *s = r->oldest;
		cache_unlink(r, s);
		s->gnext = out;
		out = s;
	}
	return out;
}

/* Says QUIT to and frees a list from cache_unlink_expired(); no lock held.
 * The QUIT's reply is not awaited: a worker reaping expired sessions, or
 * relay_free() closing thousands, would otherwise wait a round trip for
 * each. */
static void close_sessions(struct idle_session *s)
{
	while (s) {
		struct idle_session *next = s->gnext;
		smtp_client_quit_nowait(s->c);
		smtp_client_free(s->c);
		free(s);
		s = next;
	}
}

/* Takes the newest idle session for key, or NULL; closes expired ones. */
static struct smtp_client *cache_take(struct relay *r, const char *key)
{
	struct smtp_client *found = NULL;
	pthread_mutex_lock(&r->lock);
	struct idle_session *expired = cache_unlink_expired(r, tls_now_ms());
	struct idle_dest *d = key ? strmap_get(r->idle_dests, key) : NULL;
	struct idle_session *s = d ? d->newest : NULL;
	if (s) {
		cache_unlink(r, s);
		found = s->c;
		free(s);
	}
	pthread_mutex_unlock(&r->lock);
	close_sessions(expired);
	return found;
}

/* Keeps c for reuse under key; when the cache is full, the oldest idle
 * session is closed to make room. */
static void cache_put(struct relay *r, const char *key, struct smtp_client *c)
{
	struct idle_session *s = xcalloc(1, sizeof(*s));
	s->c = c;
	pthread_mutex_lock(&r->lock);
	struct idle_session *evict = NULL;
	if (r->nidle >= r->idle_max && r->oldest) {
		evict = r->oldest;
		cache_unlink(r, evict);
	}
	struct idle_dest *d = strmap_get(r->idle_dests, key);
	if (d == NULL) {
		size_t len = strlen(key);
		d = xcalloc(1, sizeof(*d) + len + 1);
		memcpy(d->key, key, len + 1);
		strmap_put(r->idle_dests, d->key, d);
	}
	s->dest = d;
	s->expires = tls_now_ms() + r->idle_ms;
	s->dnext = d->newest;
	if (d->newest)
		d->newest->dprev = s;
	d->newest = s;
	s->gprev = r->newest;
	if (r->newest)
		r->newest->gnext = s;
	else
		r->oldest = s;
	r->newest = s;
	r->nidle++;
	pthread_mutex_unlock(&r->lock);
	close_sessions(evict);
}

/* ---- one delivery ------------------------------------------------------ */

/* The client parameters for a hop reached via `via`. */
static void hop_params(struct relay *r, enum route_via via, const struct route_hop *h,
		       enum sts_mode sts, struct smtp_params *p)
{
	memset(p, 0, sizeof(*p));
	p->helo_name = r->helo_name;
	p->host = h->host;
	p->addr = h->addr[0] ? h->addr : NULL;
	p->port = h->port;
	p->tls_ctx = r->tls;
	p->tls_verify = r->tls_verify;
	p->timeout_scale = r->timeout_scale;
	enum smtp_tls_use policy = r->tls_policy == TLS_POLICY_REQUIRED ? SMTP_TLS_REQUIRED
				   : r->tls_policy == TLS_POLICY_NONE   ? SMTP_TLS_NONE
									: SMTP_TLS_OPPORTUNISTIC;
	p->tls = policy;
	if (sts == STS_MODE_ENFORCE) {
		/* RFC 8461 §4.2: TLS with a certificate valid for the MX name. */
		p->tls = SMTP_TLS_REQUIRED;
		p->tls_verify = 1;
	}
	if (via != ROUTE_VIA_SMARTHOST)
		return;
	p->auth_user = r->auth_user;
	p->auth_password = r->auth_password;
	switch (r->smarthost_tls) {
	case TLS_MODE_IMPLICIT:
		p->tls = SMTP_TLS_IMPLICIT;
		break;
	case TLS_MODE_NONE:
		/* Chosen explicitly: plaintext, AUTH allowed over it. */
		p->tls = SMTP_TLS_NONE;
		p->auth_plaintext_ok = 1;
		break;
	case TLS_MODE_STARTTLS:
		/* Credentials never travel in the clear. */
		if (r->auth_user)
			p->tls = SMTP_TLS_REQUIRED;
		break;
	}
}

/* Sessions opened under an enforced MTA-STS policy (verified TLS) are
 * kept apart from the others. */
static void session_key(char *key, size_t n, enum route_via via, const struct route_hop *h,
			enum sts_mode sts)
{
	snprintf(key, n, "%d|%.255s|%.45s|%d|%d", (int)via, h->host, h->addr, h->port,
		 sts == STS_MODE_ENFORCE);
}

/* Opens a session to h; on failure fills fail and returns NULL.  An
 * opportunistic TLS handshake that fails is retried once in plaintext
 * (RFC 7435 §4: opportunistic security never does worse than cleartext). */
static struct smtp_client *open_hop(struct relay *r, enum route_via via, const struct route_hop *h,
				    enum sts_mode sts, const char *log_id, long deadline,
				    struct smtp_outcome *fail)
{
	struct smtp_params p;
	hop_params(r, via, h, sts, &p);
	p.deadline_ms = deadline;
	char sid[64];
	snprintf(sid, sizeof(sid), "%s.%ld", log_id ? log_id : "-",
		 atomic_fetch_add(&r->session_seq, 1) + 1);
	p.session_id = sid;
	struct smtp_client *c = smtp_client_new(&p);
	if (smtp_client_open(c, fail) == 0) {
		if (smtp_client_tls_resumed(c) && r->metrics)
			metrics_counter_add(r->metrics, MF_M_SMTP_TLS_RESUMED, "", 1);
		return c;
	}
	smtp_client_free(c);
	if (p.tls == SMTP_TLS_OPPORTUNISTIC && fail->kind == KIND_TLS) {
		log_info("event=smtp_tls_fallback session=%s host=%s", sid, h->host);
		p.tls = SMTP_TLS_NONE;
		c = smtp_client_new(&p);
		if (smtp_client_open(c, fail) == 0)
			return c;
		smtp_client_free(c);
	}
	return NULL;
}

/* ---- MTA-STS (RFC 8461 §4, relay/mta_sts.h) ----------------------------- */

/*
 * Keeps the hops whose host the policy names (§4.1) when it is enforced;
 * in testing mode keeps them all but says in why what enforce would have
 * refused.  Returns the hops left.
 */
static int sts_filter(const struct sts_policy *pol, enum sts_mode sts, struct route_hop *hops, int n,
		      char *why, size_t whylen)
{
	if (sts == STS_MODE_NONE)
		return n;
	int kept = 0, listed = 0;
	const char *first_bad = NULL;
	for (int i = 0; i < n; i++) {
		int ok = sts_mx_match(pol, hops[i].host);
		listed += ok;
		if (!ok && !first_bad)
			first_bad = hops[i].host;
		if (ok || sts != STS_MODE_ENFORCE)
			hops[kept++] = hops[i];
	}
	if (listed == 0)
		snprintf(why, whylen, "no MX host (%.100s first) is named by the policy (RFC 8461 4.1)",
			 first_bad ? first_bad : "-");
	else if (first_bad && sts == STS_MODE_TESTING)
		snprintf(why, whylen, "MX %.100s is not named by the policy (RFC 8461 4.1)",
			 first_bad ? first_bad : "-");
	return kept;
}

/* The reason an enforced policy refused a hop's TLS (§4.2). */
static void sts_prefix(struct smtp_outcome *f)
{
	char t[sizeof(f->text)];
	snprintf(t, sizeof(t), "%s", f->text);
	snprintf(f->text, sizeof(f->text), "MTA-STS enforce: %.480s", t);
	if (!f->enhanced[0])
		snprintf(f->enhanced, sizeof(f->enhanced), "4.7.5");
}

/* Testing mode (§5): delivered as usual; what enforce would have refused
 * is recorded on the outcome. */
static void sts_testing_note(struct smtp_outcome *o, const char *mx_note, int done)
{
	if (mx_note[0])
		snprintf(o->sts_failure, sizeof(o->sts_failure), "%.199s", mx_note);
	else if (done && (!o->tls_version[0] || !o->tls_verified))
		snprintf(o->sts_failure, sizeof(o->sts_failure), "MX %.100s: %s (RFC 8461 4.2)", o->mx,
			 o->tls_version[0] ? "certificate not verified" : "no TLS");
}

static void log_outcomes(const struct delivery_job *job)
{
	for (int i = 0; i < job->nrcpts; i++) {
		const struct smtp_outcome *o = &job->rcpts[i].out;
		static const char *cls[] = { "2xx", "4xx", "5xx", "local" };
		static const char *scope[] = { "session", "message", "recipient" };
		log_info("event=smtp_outcome msg_id=%s " LOG_RCPT_FMT " mx=%s class=%s scope=%s code=%d "
			 "enhanced=%s tls=%s tls_resumed=%d mta_sts=%s sts_failure=%s text=%s",
			 job->log_id ? job->log_id : "-", LOG_RCPT(MF_LOG_INFO, job->rcpts[i].addr),
			 o->mx[0] ? o->mx : "-", cls[o->cls], scope[o->scope], o->code,
			 o->enhanced[0] ? o->enhanced : "-", o->tls_version[0] ? o->tls_version : "-",
			 o->tls_resumed, o->mta_sts[0] ? o->mta_sts : "-",
			 o->sts_failure[0] ? o->sts_failure : "-", o->text);
	}
}

void relay_deliver(struct relay *r, struct delivery_job *job)
{
	struct route_hop hops[ROUTE_HOPS_MAX];
	enum route_via via = ROUTE_VIA_MX;
	struct smtp_outcome fail;
	memset(&fail, 0, sizeof(fail));
	if (job->nrcpts <= 0)
		return;
	int n = router_resolve(r->router, job->domain, hops, ROUTE_HOPS_MAX, &via, &fail);
	if (n < 0) {
		for (int i = 0; i < job->nrcpts; i++)
			job->rcpts[i].out = fail;
		log_outcomes(job);
		return;
	}
	struct sts_policy pol;
	enum sts_mode sts = STS_MODE_NONE;
	char sts_fail[200] = "";
	if (r->sts && via == ROUTE_VIA_MX) {
		char note[300];
		sts = sts_policy_for(r->sts, job->domain, &pol, note, sizeof(note));
		log_info("event=mta_sts msg_id=%s domain=%s mode=%s note=%s", job->log_id ? job->log_id : "-",
			 job->domain, sts_mode_name(sts), note);
		n = sts_filter(&pol, sts, hops, n, sts_fail, sizeof(sts_fail));
		if (n == 0) {
			/* RFC 8461 §4.1: no MX the policy names; defer, the MX
			 * records or the policy may change. */
			memset(&fail, 0, sizeof(fail));
			fail.scope = SCOPE_SESSION;
			fail.cls = OUT_LOCAL;
			fail.kind = KIND_TLS;
			snprintf(fail.enhanced, sizeof(fail.enhanced), "4.7.5");
			snprintf(fail.text, sizeof(fail.text), "MTA-STS enforce: %s", sts_fail);
			snprintf(fail.mta_sts, sizeof(fail.mta_sts), "%s", sts_mode_name(sts));
			for (int i = 0; i < job->nrcpts; i++)
				job->rcpts[i].out = fail;
			log_outcomes(job);
			return;
		}
	}
	const char **addrs = xcalloc((size_t)job->nrcpts + 1, sizeof(*addrs));
	struct smtp_outcome *outs = xcalloc((size_t)job->nrcpts + 1, sizeof(*outs));
	for (int i = 0; i < job->nrcpts; i++)
		addrs[i] = job->rcpts[i].addr;
	struct smtp_txn t = { .mail_from = job->mail_from ? job->mail_from : "", .msg = job->msg,
			      .len = job->len, .rcpts = addrs, .outs = outs, .n = job->nrcpts };
	struct smtp_client *c = NULL;
	char key[340] = "";
	int done = 0;
	/* The whole delivery, every host tried, ends by this (queue's
	 * delivery_timeout): a slow peer cannot hold a worker indefinitely. */
	long deadline = job->timeout_ms > 0 ? tls_now_ms() + job->timeout_ms : 0;
	for (int h = 0; h < n && !done; h++) {
		if (deadline > 0 && tls_now_ms() >= deadline) {
			memset(&fail, 0, sizeof(fail));
			fail.scope = SCOPE_SESSION;
			fail.cls = OUT_LOCAL;
			fail.kind = KIND_TIMEOUT;
			snprintf(fail.mx, sizeof(fail.mx), "%s", hops[h].host);
			snprintf(fail.text, sizeof(fail.text), "delivery_timeout reached before trying %s", hops[h].host);
			break;
		}
		session_key(key, sizeof(key), via, &hops[h], sts);
		/* A cached session first; one that went stale is dropped quietly. */
		while (!done && (c = cache_take(r, key)) != NULL) {
			smtp_client_set_deadline(c, deadline);
			if (smtp_client_alive(c) && smtp_client_send(c, &t) == SMTP_SEND_DONE) {
				done = 1;
				break;
			}
			smtp_client_free(c);
			c = NULL;
		}
		if (done)
			break;
		c = open_hop(r, via, &hops[h], sts, job->log_id, deadline, &fail);
		if (!c && sts == STS_MODE_ENFORCE && fail.kind == KIND_TLS)
			sts_prefix(&fail);
		if (!c)
			continue; /* RFC 5321 §5.1: try the next host */
		smtp_client_send(c, &t);
		done = 1;
	}
	for (int i = 0; i < job->nrcpts; i++) {
		struct smtp_outcome *o = &job->rcpts[i].out;
		*o = done ? outs[i] : fail;
		if (r->sts && via == ROUTE_VIA_MX)
			snprintf(o->mta_sts, sizeof(o->mta_sts), "%s", sts_mode_name(sts));
		if (sts == STS_MODE_TESTING)
			sts_testing_note(o, sts_fail, done);
	}
	if (c) {
		smtp_client_set_deadline(c, 0); /* the next job sets its own */
		cache_take(r, NULL); /* reap expired sessions */
		if (smtp_client_ready(c) && smtp_client_txns(c) < RELAY_SESSION_TXNS_MAX && r->idle_ms > 0)
			cache_put(r, key, c);
		else {
			smtp_client_quit(c);
			smtp_client_free(c);
		}
	}
	log_outcomes(job);
	free(addrs);
	free(outs);
}
