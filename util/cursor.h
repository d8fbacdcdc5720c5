/*
 * cursor.h - opaque pagination cursors, one format for every list the API
 * pages through (GET /v1/messages, GET /v1/events,
 * GET /v1/webhooks/{id}/deliveries).
 *
 * A cursor is base64url without padding (RFC 4648 §5, util/base64) of the
 * text  tag ":" position : "m1:<uuid>" for messages, "d:<id>" for webhook
 * deliveries, "e:<txid>.<id>" for the event feed.  These are the bytes
 * clients already hold, so cursors handed out before stay valid.  The tag
 * keeps one list's cursor out of another.
 *
 * Functions return 0, or -1 when the output does not fit or the cursor is
 * not one of ours (bad base64, another tag, a NUL, numbers out of range).
 * Nothing is allocated.
 */
#ifndef MF_UTIL_CURSOR_H
#define MF_UTIL_CURSOR_H

#include <stddef.h>
#include <stdint.h>

/* The longest position a cursor carries, in characters. */
#define CURSOR_POS_MAX 96
/* Room for any cursor and its NUL. */
#define CURSOR_LEN (4 * (CURSOR_POS_MAX + 8) / 3 + 4)

/* Writes the cursor for tag and position pos into out[outsz]. */
int cursor_encode(const char *tag, const char *pos, char *out, size_t outsz);

/* Reads cursor s of tag: its position (NUL-terminated) into pos[possz]. */
int cursor_decode(const char *s, const char *tag, char *pos, size_t possz);

/* A position of n whole numbers joined by '.' ("12.345"), each in
 * [0, INT64_MAX]. */
int cursor_encode_nums(const char *tag, const int64_t *v, size_t n, char *out, size_t outsz);
int cursor_decode_nums(const char *s, const char *tag, int64_t *v, size_t n);

#endif
