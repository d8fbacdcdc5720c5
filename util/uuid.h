/*
 * uuid.h - UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then randomness.
 * Time ordered, so keyset pagination on the id follows creation order.
 */
#ifndef MF_UUID_H
#define MF_UUID_H

#define UUID_STR_LEN 37 /* 36 chars + NUL */

/* Writes a new UUIDv7 in canonical lower-case form into out[UUID_STR_LEN]. */
void uuid_v7(char out[UUID_STR_LEN]);
/* 1 when s is a canonical UUID string, else 0. */
int uuid_valid(const char *s);

#endif
