/*
 * listen.h - LISTEN on a PostgreSQL channel with a connection of its own,
 * the wake-up used by every background worker (bounces, webhooks, ...).
 */
#ifndef MF_DB_LISTEN_H
#define MF_DB_LISTEN_H

struct db_listener;

/* Connects lazily, on the first wait.  channel is a plain identifier. */
struct db_listener *db_listener_new(const char *conninfo, const char *channel);
void db_listener_free(struct db_listener *l);
/*
 * Waits up to timeout_ms: 1 notified (or just (re)connected: look at what
 * arrived while nobody listened), 0 timed out, -1 connection trouble (the
 * caller sleeps and calls again; it reconnects).
 */
int db_listener_wait(struct db_listener *l, int timeout_ms);

#endif
