/*
 * mta_sts.c - MTA-STS policy discovery, fetch and cache (see mta_sts.h).
 *
 * §3.1: of the TXT records at _mta-sts.<domain>, those not starting with
 * "v=STSv1" are discarded; unless exactly one remains and it parses,
 * the domain has no (new) policy.  §3.3: the policy is fetched over HTTPS
 * with a verified certificate for mta-sts.<domain>; a non-200 answer, a
 * redirect, a body over 64 KiB or one that does not parse is a failed
 * fetch.  The host is resolved through the relay's resolver and pinned
 * (CURLOPT_RESOLVE), so that dns_servers decides here as for MX.
 */
#include "relay/mta_sts.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "db/sts_cache.h"
#include "dns/dns.h"
#include "util/strmap.h"
#include "util/xmalloc.h"

struct sts_entry {
	char id[STS_ID_MAX + 1];
	struct sts_policy policy;
	time_t expires;
};

struct sts {
	const struct dns_resolver *dns;
	struct db_pool *pool; /* NULL: the memory front only */
	char *ca_file;
	pthread_mutex_t lock;
	struct strmap *cache; /* domain -> struct sts_entry, at most STS_FRONT_MAX */
	struct strmap *absent; /* domain -> time_t: PostgreSQL had no row, until then */
	struct strmap *inflight; /* domain -> struct flight: a fetch under way */
};

/* One policy fetch under way: the workers that need the same domain's
 * policy meanwhile wait for it instead of fetching it again (a policy
 * server, like the MX it guards, sees one request, not one per worker). */
struct flight {
	pthread_cond_t done_cv;
	int done;
	int waiters;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct sts *sts_new(const struct dns_resolver *dns, const char *ca_file)
{
	pthread_once(&curl_once, curl_init);
	struct sts *s = xcalloc(1, sizeof(*s));
	s->dns = dns;
	s->ca_file = ca_file ? xstrdup(ca_file) : NULL;
	pthread_mutex_init(&s->lock, NULL);
	s->cache = strmap_new();
	s->absent = strmap_new();
	s->inflight = strmap_new();
	return s;
}

static void free_value(const char *key, void *val, void *arg)
{
	(void)key;
	(void)arg;
	free(val);
}

/* Under s->lock (or alone): empties the memory front. */
static void front_clear(struct sts *s)
{
	strmap_each(s->cache, free_value, NULL);
	strmap_free(s->cache);
	s->cache = strmap_new();
}

/* Under s->lock (or alone): forgets every domain known to have no row. */
static void absent_clear(struct sts *s)
{
	strmap_each(s->absent, free_value, NULL);
	strmap_free(s->absent);
	s->absent = strmap_new();
}

void sts_set_store(struct sts *s, struct db_pool *pool)
{
	s->pool = pool;
}

void sts_free(struct sts *s)
{
	if (!s)
		return;
	front_clear(s);
	strmap_free(s->cache);
	absent_clear(s);
	strmap_free(s->absent);
	strmap_free(s->inflight); /* empty: no fetch outlives its caller */
	pthread_mutex_destroy(&s->lock);
	free(s->ca_file);
	free(s);
}

/* §3.1: 0 with the id of the one STS record, -1 when there is none. */
static int txt_id(struct sts *s, const char *domain, char *id, char *why, size_t whylen)
{
	char name[DNS_NAME_MAX + 16];
	snprintf(name, sizeof(name), "_mta-sts.%s", domain);
	struct dns_txt_result *t = xmalloc(sizeof(*t));
	char err[256];
	enum dns_status st = dns_lookup_txt(s->dns, name, t, err, sizeof(err));
	int found = 0, bad = 0;
	if (st == DNS_OK) {
		for (int i = 0; i < t->n; i++) {
			char one[STS_ID_MAX + 1];
			int rc = sts_txt_parse(t->rec[i], one);
			if (rc == 1)
				continue;
			found++;
			if (rc < 0)
				bad = 1;
			else
				memcpy(id, one, sizeof(one));
		}
	}
	free(t);
	if (st != DNS_OK) {
		snprintf(why, whylen, "no _mta-sts record (%s)", dns_status_name(st));
		return -1;
	}
	if (found != 1 || bad) {
		snprintf(why, whylen, found ? "invalid _mta-sts record" : "no v=STSv1 record");
		return -1;
	}
	return 0;
}

struct body {
	char *buf;
	size_t len;
	int too_big;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct body *b = arg;
	size_t n = size * nmemb;
	if (b->len + n > (size_t)STS_POLICY_SIZE_MAX) {
		b->too_big = 1;
		return 0; /* aborts the transfer */
	}
	b->buf = xrealloc(b->buf, b->len + n + 1);
	memcpy(b->buf + b->len, ptr, n);
	b->len += n;
	b->buf[b->len] = '\0';
	return n;
}

/* §3.3: fetches and parses the policy; 0 or -1 with why. */
static int fetch(struct sts *s, const char *domain, struct sts_policy *p, char *why, size_t whylen)
{
	char host[DNS_NAME_MAX + 16];
	snprintf(host, sizeof(host), "mta-sts.%s", domain);
	struct dns_addr_result ad;
	char err[256];
	enum dns_status st = dns_lookup_addr(s->dns, host, AF_UNSPEC, &ad, err, sizeof(err));
	if (st != DNS_OK) {
		snprintf(why, whylen, "policy host: %.200s", err);
		return -1;
	}
	/* "host:443:addr,addr" (IPv6 in brackets) */
	char pin[DNS_NAME_MAX + 16 + DNS_ADDR_MAX * 50];
	size_t o = (size_t)snprintf(pin, sizeof(pin), "%s:443:", host);
	for (int i = 0; i < ad.n && o < sizeof(pin); i++)
		o += (size_t)snprintf(pin + o, sizeof(pin) - o, ad.addr[i].family == AF_INET6 ? "%s[%s]" : "%s%s",
				      i ? "," : "", ad.addr[i].text);
	if (o >= sizeof(pin)) {
		snprintf(why, whylen, "policy host has too many addresses");
		return -1;
	}
	char url[DNS_NAME_MAX + 64];
	snprintf(url, sizeof(url), "https://%s/.well-known/mta-sts.txt", host);
	CURL *c = curl_easy_init();
	if (!c) {
		snprintf(why, whylen, "curl_easy_init failed");
		return -1;
	}
	struct curl_slist *resolve = curl_slist_append(NULL, pin);
	struct body b = { 0 };
	char cerr[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_RESOLVE, resolve);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L); /* §3.3: redirects are not followed */
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (s->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, s->ca_file);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, STS_FETCH_TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE, STS_POLICY_SIZE_MAX);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "mailferry/" MF_VERSION);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
	CURLcode rc = curl_easy_perform(c);
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	char *ctype = NULL;
	curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ctype);
	int ok = -1;
	if (b.too_big || rc == CURLE_FILESIZE_EXCEEDED)
		snprintf(why, whylen, "policy larger than %ld bytes", STS_POLICY_SIZE_MAX);
	else if (rc != CURLE_OK)
		snprintf(why, whylen, "fetching %.200s: %.180s", url, cerr[0] ? cerr : curl_easy_strerror(rc));
	else if (status != 200)
		snprintf(why, whylen, "fetching %.200s: HTTP %ld%s", url, status,
			 status >= 300 && status < 400 ? " (redirects are refused, RFC 8461 3.3)" : "");
	else if (!ctype || strncasecmp(ctype, "text/plain", 10) != 0)
		snprintf(why, whylen, "policy media type is not text/plain (RFC 8461 3.2)");
	else if (sts_policy_parse(b.buf ? b.buf : "", b.len, p, err, sizeof(err)) < 0)
		snprintf(why, whylen, "policy: %.200s", err);
	else
		ok = 0;
	curl_easy_cleanup(c);
	curl_slist_free_all(resolve);
	free(b.buf);
	return ok;
}

/* ---- the cache: PostgreSQL (db/sts_cache.h) behind a memory front ---- */

/* Under s->lock: the memory front's entry for domain when not expired. */
static const struct sts_entry *front_get(struct sts *s, const char *domain, time_t now)
{
	const struct sts_entry *e = strmap_get(s->cache, domain);
	return e && e->expires > now ? e : NULL;
}

/* The memory front's copy of domain's policy into *out; 1, or 0 when none. */
static int front_copy(struct sts *s, const char *domain, time_t now, struct sts_entry *out)
{
	pthread_mutex_lock(&s->lock);
	const struct sts_entry *e = front_get(s, domain, now);
	if (e)
		*out = *e;
	pthread_mutex_unlock(&s->lock);
	return e != NULL;
}

/* Sets (expires > 0) or drops (expires 0) the memory front's entry. */
static void front_set(struct sts *s, const char *domain, const char *id, const struct sts_policy *p, time_t expires)
{
	pthread_mutex_lock(&s->lock);
	struct sts_entry *w = strmap_get(s->cache, domain);
	if (!w && expires > 0) {
		if (strmap_count(s->cache) >= STS_FRONT_MAX)
			front_clear(s); /* the bound: start over rather than grow */
		w = xcalloc(1, sizeof(*w));
		strmap_put(s->cache, domain, w);
	}
	if (w) {
		snprintf(w->id, sizeof(w->id), "%s", id);
		w->policy = *p;
		w->expires = expires;
	}
	pthread_mutex_unlock(&s->lock);
}

/* 1 when PostgreSQL was found to have no row for domain less than
 * STS_ABSENT_TTL_S ago. */
static int absent_known(struct sts *s, const char *domain, time_t now)
{
	pthread_mutex_lock(&s->lock);
	const time_t *until = strmap_get(s->absent, domain);
	int known = until && *until > now;
	pthread_mutex_unlock(&s->lock);
	return known;
}

/* Remembers (until > 0) or forgets (0) that domain has no row. */
static void absent_set(struct sts *s, const char *domain, time_t until)
{
	pthread_mutex_lock(&s->lock);
	free(strmap_del(s->absent, domain));
	if (until > 0) {
		if (strmap_count(s->absent) >= STS_ABSENT_MAX)
			absent_clear(s); /* the bound: start over rather than grow */
		time_t *t = xmalloc(sizeof(*t));
		*t = until;
		strmap_put(s->absent, domain, t);
	}
	pthread_mutex_unlock(&s->lock);
}

struct stored {
	struct sts_entry *out;
	time_t now;
	int ok;
	char why[256];
};

/* A row of mta_sts_policies back into a policy: written out as the
 * policy text it came from and parsed again, so that a row edited by
 * hand is held to the same rules as a fetched policy. */
static void on_row(const struct db_sts_row *row, void *arg)
{
	struct stored *st = arg;
	char text[STS_MX_MAX * 300 + 128];
	size_t o = (size_t)snprintf(text, sizeof(text), "version: STSv1\nmode: %s\nmax_age: %ld\n", row->mode,
				    row->max_age);
	for (const char *m = row->mx; *m && o < sizeof(text);) {
		size_t n = strcspn(m, "\n");
		o += (size_t)snprintf(text + o, sizeof(text) - o, "mx: %.*s\n", (int)n, m);
		m += n + (m[n] == '\n');
	}
	char err[200], txt[STS_ID_MAX + 32];
	int tl = snprintf(txt, sizeof(txt), "v=STSv1; id=%s;", row->policy_id);
	if (o >= sizeof(text)) {
		snprintf(st->why, sizeof(st->why), "stored policy too long");
	} else if (tl < 0 || (size_t)tl >= sizeof(txt) || sts_txt_parse(txt, st->out->id) != 0) {
		snprintf(st->why, sizeof(st->why), "stored policy id is not valid");
	} else if (sts_policy_parse(text, o, &st->out->policy, err, sizeof(err)) < 0) {
		snprintf(st->why, sizeof(st->why), "stored policy: %.200s", err);
	} else {
		st->out->expires = st->now + row->ttl;
		st->ok = 1;
	}
}

/* PostgreSQL's unexpired policy for domain: 1 (*out set), 0 none, -1
 * (the database away or the row unusable, why set). */
static int store_get(struct sts *s, const char *domain, time_t now, struct sts_entry *out, char *why, size_t whylen)
{
	struct stored st = { .out = out, .now = now };
	char err[256];
	int rc = db_sts_get(s->pool, domain, on_row, &st, err, sizeof(err));
	if (rc < 0) {
		snprintf(why, whylen, "policy cache: %.200s", err);
		return -1;
	}
	if (rc == 1 && !st.ok) {
		snprintf(why, whylen, "policy cache: %.200s", st.why);
		return 0;
	}
	return rc;
}

/* Writes a policy just fetched to PostgreSQL; 0 or -1 with why. */
static int store_put(struct sts *s, const char *domain, const char *id, const struct sts_policy *p, char *why,
		     size_t whylen)
{
	char mx[STS_MX_MAX * 257 + 1] = "";
	size_t o = 0;
	for (int i = 0; i < p->nmx; i++)
		o += (size_t)snprintf(mx + o, sizeof(mx) - o, "%s%s", i ? "\n" : "", p->mx[i]);
	struct db_sts_row row = { .policy_id = id, .mode = sts_mode_name(p->mode), .max_age = p->max_age, .mx = mx };
	char err[256];
	if (db_sts_put(s->pool, domain, &row, err, sizeof(err)) < 0) {
		snprintf(why, whylen, "policy cache: %.200s", err);
		return -1;
	}
	return 0;
}

/*
 * The cached policy for domain into *c: the memory front when it holds
 * one under the TXT id (or the TXT record is gone), else PostgreSQL's
 * row, which also refreshes the front.  1 found (still to be compared
 * with the TXT id by the caller), 0 none.  dberr gets a database
 * failure, which leaves the front's answer standing.
 */
static int cached(struct sts *s, const char *domain, const char *id, int have_txt, time_t now, struct sts_entry *c,
		  const char **where, char *dberr, size_t dberrlen)
{
	int have = front_copy(s, domain, now, c);
	*where = "cached";
	if (!s->pool || (have && (!have_txt || strcmp(c->id, id) == 0)))
		return have;
	/* Most domains publish no policy: without a TXT record, a recent
	 * "no row" spares PostgreSQL a query per delivery.  (With one, the
	 * row is read: another process may have just fetched it.) */
	if (!have && !have_txt && absent_known(s, domain, now))
		return 0;
	struct sts_entry row;
	int rc = store_get(s, domain, now, &row, dberr, dberrlen);
	if (rc < 0)
		return have;
	*where = "stored";
	if (rc == 0) {
		/* PostgreSQL is the truth: what it no longer has is gone. */
		if (have)
			front_set(s, domain, c->id, &c->policy, 0);
		absent_set(s, domain, now + STS_ABSENT_TTL_S);
		return 0;
	}
	*c = row;
	front_set(s, domain, row.id, &row.policy, row.expires);
	return 1;
}

/* 0: no fetch of domain's policy is under way, and this caller's is now
 * (it fetches, then calls flight_end()).  1: another caller's was, and
 * has ended: its result is in the front (or it failed). */
static int flight_join(struct sts *s, const char *domain)
{
	pthread_mutex_lock(&s->lock);
	struct flight *f = strmap_get(s->inflight, domain);
	if (f == NULL) {
		f = xcalloc(1, sizeof(*f));
		pthread_cond_init(&f->done_cv, NULL);
		strmap_put(s->inflight, domain, f);
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	f->waiters++;
	while (!f->done)
		pthread_cond_wait(&f->done_cv, &s->lock);
	if (--f->waiters == 0) {
		pthread_cond_destroy(&f->done_cv);
		free(f);
	}
	pthread_mutex_unlock(&s->lock);
	return 1;
}

/* Ends this caller's fetch of domain's policy and wakes those waiting
 * for it (the last of them frees the flight). */
static void flight_end(struct sts *s, const char *domain)
{
	pthread_mutex_lock(&s->lock);
	struct flight *f = strmap_del(s->inflight, domain);
	f->done = 1;
	if (f->waiters == 0) {
		pthread_cond_destroy(&f->done_cv);
		free(f);
	} else {
		pthread_cond_broadcast(&f->done_cv);
	}
	pthread_mutex_unlock(&s->lock);
}

enum sts_mode sts_policy_for(struct sts *s, const char *domain, struct sts_policy *p, char *note,
			     size_t notelen)
{
	char why[512] = "", id[STS_ID_MAX + 1] = "", dberr[300] = "";
	char scratch[2];
	if (!note) {
		note = scratch;
		notelen = sizeof(scratch);
	}
	memset(p, 0, sizeof(*p));
	time_t now = time(NULL);
	int have_txt = txt_id(s, domain, id, why, sizeof(why)) == 0;
	struct sts_entry c;
	const char *where;
	int have = cached(s, domain, id, have_txt, now, &c, &where, dberr, sizeof(dberr));
	const char *sep = dberr[0] ? "; " : "";
	if (have && (!have_txt || strcmp(c.id, id) == 0)) {
		/* §5.1: the cached policy stands while the id is unchanged, and
		 * until it expires when the TXT record is gone. */
		*p = c.policy;
		snprintf(note, notelen, "%s policy id %s%s%.300s", where, c.id, sep, dberr);
		return p->mode;
	}
	if (!have_txt) {
		snprintf(note, notelen, "%.400s%s%.300s", why, sep, dberr);
		return STS_MODE_NONE;
	}
	if (flight_join(s, domain)) {
		/* Another worker fetched it meanwhile: its policy, if it got one. */
		struct sts_entry f;
		if (front_copy(s, domain, time(NULL), &f) && strcmp(f.id, id) == 0) {
			*p = f.policy;
			snprintf(note, notelen, "policy id %s fetched by another worker", f.id);
			return p->mode;
		}
		if (have)
			*p = c.policy;
		snprintf(note, notelen, "the policy fetch of another worker failed%s",
			 have ? "; the cached policy stays" : "");
		return p->mode;
	}
	struct sts_policy fresh;
	int fetched = fetch(s, domain, &fresh, why, sizeof(why));
	if (fetched == 0) {
		front_set(s, domain, id, &fresh, now + fresh.max_age);
		absent_set(s, domain, 0);
	}
	flight_end(s, domain);
	if (fetched < 0) {
		/* §5.1: a failed fetch keeps a still valid cached policy. */
		if (have)
			*p = c.policy;
		snprintf(note, notelen, "%.400s%s%s%.300s", why, have ? "; the cached policy stays" : "", sep, dberr);
		return p->mode;
	}
	*p = fresh;
	if (s->pool)
		store_put(s, domain, id, &fresh, dberr, sizeof(dberr));
	sep = dberr[0] ? "; " : "";
	snprintf(note, notelen, "policy id %s fetched%s%.300s", id, sep, dberr);
	return p->mode;
}
