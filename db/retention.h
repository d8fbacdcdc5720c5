/*
 * retention.h - deleting what mailferry no longer needs (privacy).
 *
 * One call clears or deletes at most `batch` rows of one kind, in its own
 * short transaction, oldest first, skipping rows another process holds
 * (FOR UPDATE SKIP LOCKED), and returns how many it touched (or -1 with
 * err set).  Callers loop until a call returns less than batch.  Mail that
 * is still waiting or in flight is never touched.
 *
 *   DB_RET_BODIES      messages.body and messages.request := NULL after body_retention
 *   DB_RET_EVENTS      events (and their webhook deliveries) after event_retention
 *   DB_RET_MESSAGES    messages (and their recipients) after event_retention
 *   DB_RET_BOUNCES     raw bounces after event_retention
 *   DB_RET_IDEMPOTENCY idempotency keys after 24 h
 *   DB_RET_DESTINATIONS per-destination control rows (migration 0023) idle
 *                      for MF_DESTINATION_IDLE: not paused, no job in
 *                      flight, no feedback nor rate token taken since
 *   DB_RET_STS         MTA-STS policies (migration 0027) age_secs after they expired
 */
#ifndef MF_DB_RETENTION_H
#define MF_DB_RETENTION_H

#include <stddef.h>

struct db_pool;

enum db_retention_kind {
	DB_RET_BODIES,
	DB_RET_EVENTS,
	DB_RET_MESSAGES,
	DB_RET_BOUNCES,
	DB_RET_IDEMPOTENCY,
	DB_RET_DESTINATIONS,
	DB_RET_STS,
};
#define DB_RET_KINDS 7

/* The kind's name for logs and metrics ("bodies", "events", ...). */
const char *db_retention_name(enum db_retention_kind kind);

/* Acts on rows older than age_secs. */
int db_retention_batch(struct db_pool *pool, enum db_retention_kind kind, long age_secs, int batch, char *err,
		       size_t errlen);

#endif
