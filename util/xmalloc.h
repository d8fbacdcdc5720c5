/*
 * xmalloc.h - allocation that never returns NULL.
 *
 * Out of memory is fatal in mailferry (STYLE.md): every x* function aborts
 * the process with a message instead of returning NULL.  Memory returned is
 * owned by the caller and released with free().
 */
#ifndef MF_XMALLOC_H
#define MF_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Formatted allocation; the result is owned by the caller. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * For threads that allocate little but are many (the delivery workers, up
 * to 20,000): turns off the allocator's per-thread cache for the calling
 * thread.  jemalloc's tcache cost ~58 KiB resident per worker thread
 * (measured with 1,000 sessions); allocations then go to the shared
 * arenas.  A no-op without jemalloc.
 */
void xmalloc_thread_cache_off(void);

#endif
