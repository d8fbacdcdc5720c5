/*
 * committer.h - group commit for the send API (DESIGN.md "committer").
 *
 * MF_COMMIT_THREADS threads, each with its own connection, take the pending
 * struct db_write units from one queue; a thread takes a group (whatever
 * is queued, up to MF_COMMIT_BATCH_MAX), runs it in one transaction,
 * commits once, then calls each unit's
 * done() with its own result.  A unit the database refuses is
 * retried alone so that it cannot fail the others.  If the database is
 * unreachable, every unit of the group is answered DB_WRITE_UNAVAILABLE
 * and nothing is written.
 */
#ifndef MF_DB_COMMITTER_H
#define MF_DB_COMMITTER_H

#include "db/accept.h"

struct db_committer;

struct db_committer *db_committer_new(const char *conninfo);
/* Stops the thread after the queued units have been answered. */
void db_committer_free(struct db_committer *c);

/*
 * Queues w; w->done(w) will be called exactly once from the committer
 * thread.  When another unit with the same (api_key_id, idem_key) is still
 * queued or being committed, returns -1 at once with w->status =
 * DB_WRITE_IDEM_IN_FLIGHT and does not call done(); after
 * db_committer_free() has begun, -1 with DB_WRITE_UNAVAILABLE.  Otherwise 0.
 */
int db_committer_submit(struct db_committer *c, struct db_write *w);

#endif
