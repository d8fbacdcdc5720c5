/*
 * suppressions.h - the suppression list (table suppressions, 0001).
 *
 * Addresses are stored in lower case (the whole address: mailferry treats
 * local parts case-insensitively for suppression, as every large mailbox
 * provider does); every function lower-cases what it is given.  Adding
 * and removing write a suppression.created / suppression.removed event
 * (message_id NULL) in the same transaction.  Rows passed to callbacks are
 * borrowed for the call.
 */
#ifndef MF_DB_SUPPRESSIONS_H
#define MF_DB_SUPPRESSIONS_H

#include <stddef.h>

struct db_pool;

struct db_suppression {
	const char *email;
	const char *reason;       /* bounce, manual, complaint, unsubscribe */
	const char *message_id;   /* "" when none */
	const char *diagnostic;   /* "" when none */
	const char *created_at;   /* RFC 3339 UTC */
};

/*
 * Calls fn for up to limit rows in email order, after the address `after`
 * (NULL: from the start), only reason `reason` when not NULL.  Returns the
 * number of rows, or -1.
 */
int db_suppression_list(struct db_pool *pool, const char *reason, const char *after, int limit,
			void (*fn)(const struct db_suppression *s, void *arg), void *arg, char *err, size_t errlen);
/* 1 found (fn called), 0 not listed, -1 error. */
int db_suppression_get(struct db_pool *pool, const char *email,
		       void (*fn)(const struct db_suppression *s, void *arg), void *arg, char *err, size_t errlen);
/* 1 added, 0 already listed (unchanged); fn gets the row either way. */
int db_suppression_add(struct db_pool *pool, const char *email, const char *reason, const char *source,
		       void (*fn)(const struct db_suppression *s, void *arg), void *arg, char *err, size_t errlen);
/* 1 removed, 0 not listed, -1 error.  source ("api", "cli") goes in the event. */
int db_suppression_remove(struct db_pool *pool, const char *email, const char *source, char *err, size_t errlen);

#endif
