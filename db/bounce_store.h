/*
 * bounce_store.h - durable storage of received bounces (bounces_raw).
 *
 * The contract with the bounce processor (the dsn work): a stored row has
 * processed_at NULL, and the same transaction sends
 * NOTIFY mailferry_bounces (payload: the first new row's id), so a
 * processor that LISTENs wakes up and handles every row
 * WHERE processed_at IS NULL (one that waits for a recipient still
 * 'sending' later, db/bounces.h).
 */
#ifndef MF_DB_BOUNCE_STORE_H
#define MF_DB_BOUNCE_STORE_H

#include <stddef.h>
#include <stdint.h>

struct db_pool;

/*
 * Stores one raw message, one row per recipient address in rcpts (at least
 * one), all in one transaction with the NOTIFY.  source is 'smtp' or 'api';
 * mail_from may be "" (null sender).  *first_id (may be NULL) gets the first
 * row's id.  Returns 0 once committed, or -1 with err set (nothing stored).
 */
int db_bounce_store(struct db_pool *pool, const char *source, const char *mail_from, const char *const *rcpts,
		    size_t nrcpts, const char *raw, size_t rawlen, int64_t *first_id, char *err, size_t errlen);

#endif
