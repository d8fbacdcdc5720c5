/*
 * strmap.h - a hash table from strings to pointers (chained, FNV-1a,
 * doubling when the entries outnumber the buckets), for the per-destination
 * structures that must stay O(1) at thousands of destinations: the
 * queue's destination FIFOs, the relay's idle sessions, the TLS session
 * cache.
 *
 * Not thread-safe: the owner locks.  strmap_put() copies the key; values
 * are borrowed pointers that the caller frees (strmap_free() does not).
 * Keys compare exactly (bytewise).
 */
#ifndef MF_UTIL_STRMAP_H
#define MF_UTIL_STRMAP_H

#include <stddef.h>

struct strmap;

struct strmap *strmap_new(void);
void strmap_free(struct strmap *m);
/* The value of key, or NULL. */
void *strmap_get(const struct strmap *m, const char *key);
/* Sets key to val (val != NULL), replacing any value it had. */
void strmap_put(struct strmap *m, const char *key, void *val);
/* Removes key; returns its value, or NULL when absent. */
void *strmap_del(struct strmap *m, const char *key);
size_t strmap_count(const struct strmap *m);
/* Calls fn for every entry, in no order; fn must not change the map. */
void strmap_each(const struct strmap *m, void (*fn)(const char *key, void *val, void *arg), void *arg);

#endif
