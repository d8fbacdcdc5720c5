/*
 * buf.h - a growable byte buffer with a hard maximum size.
 *
 * A struct buf is embedded by its owner (buf_init/buf_cleanup) or allocated
 * (buf_new/buf_free).  The data is always NUL-terminated, so buf_cstr() can
 * be used as a C string when the content is text.  Appends that would grow
 * the buffer beyond its maximum fail with -1 and leave it unchanged;
 * everything else returns 0.  Out of memory aborts (xmalloc).
 */
#ifndef MF_BUF_H
#define MF_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max;
};

void buf_init(struct buf *b, size_t max);
void buf_cleanup(struct buf *b);
struct buf *buf_new(size_t max);
void buf_free(struct buf *b);

/* Makes room for n more bytes at once (one allocation instead of the
 * doublings appends would make); -1 when they would pass the maximum. */
int buf_reserve(struct buf *b, size_t n);
int buf_append(struct buf *b, const void *p, size_t n);
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap);
void buf_reset(struct buf *b);
/* Drops the first n bytes. */
void buf_consume(struct buf *b, size_t n);
const char *buf_cstr(const struct buf *b);
/* Hands the data to the caller (free() it) and resets the buffer. */
char *buf_steal(struct buf *b, size_t *len);

#endif
