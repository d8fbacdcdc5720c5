/*
 * domain_cache.c - the per-process cache of sending domains and their
 * signers (see domain_cache.h).
 *
 * A snapshot is a strmap from domain to struct entry, reference counted;
 * the cache points to the current one under a mutex.  A reload builds the
 * next snapshot outside the lock (one query, then one AES-GCM open and one
 * key parse per active key), swaps it in and drops the cache's reference
 * to the old one, which is freed when its last request lets go.
 */
#include "api/domain_cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/domains.h"
#include "mail/dkim.h"
#include "util/base64.h"
#include "util/log.h"
#include "util/strmap.h"
#include "util/xmalloc.h"

struct entry {
	char status[16];
	struct dkim_signer *signers[2];
	int n;
};

struct domain_snapshot {
	atomic_int refs;
	struct strmap *map;
};

struct domain_cache {
	struct db_pool *pool;
	unsigned char key[DKIM_MASTER_KEY_LEN];
	int has_key;
	pthread_mutex_t mu;
	struct domain_snapshot *snap; /* NULL until loaded */
	time_t loaded_at;             /* monotonic seconds */
	int stale;
	pthread_mutex_t reload_mu;    /* one reload at a time */
};

static time_t mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void entry_free(const char *k, void *v, void *arg)
{
	(void)k, (void)arg;
	struct entry *e = v;
	for (int i = 0; i < e->n; i++)
		dkim_signer_free(e->signers[i]);
	free(e);
}

static void snap_unref(struct domain_snapshot *s)
{
	if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	strmap_each(s->map, entry_free, NULL);
	strmap_free(s->map);
	free(s);
}

struct domain_cache *domain_cache_new(struct db_pool *pool, const unsigned char *master_key)
{
	struct domain_cache *c = xcalloc(1, sizeof(*c));
	c->pool = pool;
	if (master_key) {
		memcpy(c->key, master_key, DKIM_MASTER_KEY_LEN);
		c->has_key = 1;
	}
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->reload_mu, NULL);
	c->stale = 1;
	return c;
}

void domain_cache_free(struct domain_cache *c)
{
	if (c == NULL)
		return;
	snap_unref(c->snap);
	memset(c->key, 0, sizeof(c->key));
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->reload_mu);
	free(c);
}

const unsigned char *domain_cache_master_key(const struct domain_cache *c)
{
	return c && c->has_key ? c->key : NULL;
}

void domain_cache_invalidate(struct domain_cache *c)
{
	pthread_mutex_lock(&c->mu);
	c->stale = 1;
	pthread_mutex_unlock(&c->mu);
}

struct load {
	struct domain_cache *c;
	struct strmap *map;
};

/* Opens one sealed key and makes its signer; NULL (logged) when it fails:
 * the domain then signs with its other key, or falls back. */
static struct dkim_signer *open_signer(struct domain_cache *c, const char *domain, const char *selector,
				       const char *sealed_b64)
{
	size_t n = strlen(sealed_b64);
	unsigned char *sealed = xmalloc(n + 1);
	long sl = base64_decode(sealed_b64, n, sealed, n + 1, B64_SKIP_SPACE);
	struct buf der;
	buf_init(&der, 16384);
	char aad[512], err[256] = "";
	snprintf(aad, sizeof(aad), "%s/%s", domain, selector);
	struct dkim_signer *s = NULL;
	if (sl < 0)
		snprintf(err, sizeof(err), "stored key is not base64");
	else if (dkim_key_open(c->key, aad, sealed, (size_t)sl, &der, err, sizeof(err)) == 0)
		s = dkim_signer_new_der(domain, selector, der.data, der.len, err, sizeof(err));
	if (s == NULL)
		log_warn_limited("event=domain_key_unusable domain=%s selector=%s error=%s", domain, selector, err);
	memset(der.data, 0, der.len);
	buf_cleanup(&der);
	free(sealed);
	return s;
}

static void load_row(const char *domain, const char *status, const char *selector, const char *algorithm,
		     const char *sealed_b64, void *arg)
{
	(void)algorithm;
	struct load *l = arg;
	struct entry *e = strmap_get(l->map, domain);
	if (e == NULL) {
		e = xcalloc(1, sizeof(*e));
		snprintf(e->status, sizeof(e->status), "%s", status);
		strmap_put(l->map, domain, e);
	}
	if (selector == NULL || !l->c->has_key || e->n == 2)
		return;
	struct dkim_signer *s = open_signer(l->c, domain, selector, sealed_b64);
	if (s)
		e->signers[e->n++] = s;
}

/* Builds a fresh snapshot; NULL with err set when the database fails. */
static struct domain_snapshot *load(struct domain_cache *c, char *err, size_t errlen)
{
	struct load l = { c, strmap_new() };
	if (db_domain_signing_keys(c->pool, load_row, &l, err, errlen) < 0) {
		strmap_each(l.map, entry_free, NULL);
		strmap_free(l.map);
		return NULL;
	}
	struct domain_snapshot *s = xcalloc(1, sizeof(*s));
	atomic_init(&s->refs, 1);
	s->map = l.map;
	return s;
}

/* The current snapshot with a reference taken, reloaded when stale. */
static struct domain_snapshot *acquire(struct domain_cache *c, char *err, size_t errlen)
{
	pthread_mutex_lock(&c->mu);
	int fresh = c->snap && !c->stale && mono_now() - c->loaded_at < DOMAIN_CACHE_TTL;
	struct domain_snapshot *s = c->snap;
	if (fresh)
		atomic_fetch_add(&s->refs, 1);
	pthread_mutex_unlock(&c->mu);
	if (fresh)
		return s;

	pthread_mutex_lock(&c->reload_mu);
	/* Another thread may have reloaded while this one waited. */
	pthread_mutex_lock(&c->mu);
	fresh = c->snap && !c->stale && mono_now() - c->loaded_at < DOMAIN_CACHE_TTL;
	if (!fresh)
		c->stale = 0; /* an invalidation from now on asks for another load */
	pthread_mutex_unlock(&c->mu);
	struct domain_snapshot *next = fresh ? NULL : load(c, err, errlen);
	pthread_mutex_lock(&c->mu);
	if (next) {
		snap_unref(c->snap);
		c->snap = next;
		c->loaded_at = mono_now();
	} else if (!fresh) {
		c->stale = 1;
		if (c->snap)
			log_warn_limited("event=domain_cache_reload_failed error=%s", err);
	}
	s = c->snap;
	if (s)
		atomic_fetch_add(&s->refs, 1);
	pthread_mutex_unlock(&c->mu);
	pthread_mutex_unlock(&c->reload_mu);
	return s;
}

int domain_cache_lookup(struct domain_cache *c, const char *from_domain, struct domain_match *m, char *err,
			size_t errlen)
{
	memset(m, 0, sizeof(*m));
	struct domain_snapshot *s = acquire(c, err, errlen);
	if (s == NULL)
		return -1;
	m->snap = s;
	/* The domain itself, then each parent (a.b.example, b.example, example). */
	for (const char *d = from_domain; d && *d; d = strchr(d, '.') ? strchr(d, '.') + 1 : NULL) {
		struct entry *e = strmap_get(s->map, d);
		if (e == NULL)
			continue;
		m->domain = d;
		m->status = e->status;
		for (int i = 0; i < e->n; i++)
			m->signers[i] = e->signers[i];
		break;
	}
	return 0;
}

void domain_match_release(struct domain_match *m)
{
	snap_unref(m->snap);
	memset(m, 0, sizeof(*m));
}

enum domain_sender domain_cache_sender(struct domain_cache *c, enum sender_policy policy, const char *from_domain,
				       struct domain_match *m, char *err, size_t errlen)
{
	if (domain_cache_lookup(c, from_domain, m, err, errlen) < 0)
		return DOMAIN_SENDER_UNAVAILABLE;
	enum domain_sender r = DOMAIN_SENDER_OK;
	if (policy == SENDER_POLICY_KNOWN && m->domain == NULL)
		r = DOMAIN_SENDER_NOT_REGISTERED;
	else if (policy == SENDER_POLICY_VERIFIED && (m->domain == NULL || strcmp(m->status, "verified") != 0))
		r = DOMAIN_SENDER_NOT_VERIFIED;
	if (r != DOMAIN_SENDER_OK)
		domain_match_release(m);
	return r;
}
