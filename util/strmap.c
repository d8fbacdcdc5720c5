/*
 * strmap.c - string-keyed hash table (see strmap.h).
 *
 * Separate chaining over a power-of-two bucket array; the table doubles
 * when the entry count exceeds the bucket count, so chains stay about one
 * entry long and every operation is O(1) on average.  It never shrinks:
 * its users' key sets (destinations, MX hosts) are bounded by their own
 * limits.
 */
#include "util/strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

struct strmap_entry {
	struct strmap_entry *next;
	uint64_t hash;
	void *val;
	char key[];
};

struct strmap {
	struct strmap_entry **b;
	size_t nb;   /* buckets, a power of two */
	size_t n;    /* entries */
};

#define STRMAP_INITIAL 16

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

struct strmap *strmap_new(void)
{
	struct strmap *m = xcalloc(1, sizeof(*m));
	m->nb = STRMAP_INITIAL;
	m->b = xcalloc(m->nb, sizeof(*m->b));
	return m;
}

void strmap_free(struct strmap *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nb; i++)
		for (struct strmap_entry *e = m->b[i], *next; e; e = next) {
			next = e->next;
			free(e);
		}
	free(m->b);
	free(m);
}

/* The link that points at key's entry (or the chain's terminating NULL). */
static struct strmap_entry **find(const struct strmap *m, const char *key, uint64_t h)
{
	struct strmap_entry **p = &m->b[h & (m->nb - 1)];
	while (*p && ((*p)->hash != h || strcmp((*p)->key, key) != 0))
		p = &(*p)->next;
	return p;
}

void *strmap_get(const struct strmap *m, const char *key)
{
	struct strmap_entry *e = *find(m, key, fnv1a(key));
	return e ? e->val : NULL;
}

static void grow(struct strmap *m)
{
	size_t nb = m->nb * 2;
	struct strmap_entry **b = xcalloc(nb, sizeof(*b));
	for (size_t i = 0; i < m->nb; i++)
		for (struct strmap_entry *e = m->b[i], *next; e; e = next) {
			next = e->next;
			e->next = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
		}
	free(m->b);
	m->b = b;
	m->nb = nb;
}

void strmap_put(struct strmap *m, const char *key, void *val)
{
	uint64_t h = fnv1a(key);
	struct strmap_entry **p = find(m, key, h);
	if (*p) {
		(*p)->val = val;
		return;
	}
	size_t len = strlen(key);
	struct strmap_entry *e = xmalloc(sizeof(*e) + len + 1);
	memcpy(e->key, key, len + 1);
	e->hash = h;
	e->val = val;
	e->next = NULL;
	*p = e;
	if (++m->n > m->nb)
		grow(m);
}

void *strmap_del(struct strmap *m, const char *key)
{
	struct strmap_entry **p = find(m, key, fnv1a(key));
	struct strmap_entry *e = *p;
	if (e == NULL)
		return NULL;
	*p = e->next;
	void *val = e->val;
	free(e);
	m->n--;
	return val;
}

size_t strmap_count(const struct strmap *m)
{
	return m->n;
}

void strmap_each(const struct strmap *m, void (*fn)(const char *key, void *val, void *arg), void *arg)
{
	for (size_t i = 0; i < m->nb; i++)
		for (struct strmap_entry *e = m->b[i]; e; e = e->next)
			fn(e->key, e->val, arg);
}
