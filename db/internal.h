/*
 * internal.h - what the db .c files share: borrowing pooled connections and
 * small libpq helpers.  Not to be included outside db/.
 */
#ifndef MF_DB_INTERNAL_H
#define MF_DB_INTERNAL_H

#include <libpq-fe.h>
#include <stddef.h>

#include "db/db.h"

/*
 * Borrows a live connection; NULL (err set) when the database cannot be
 * reached.  Give it back with db_conn_put(), which closes it when it broke.
 */
PGconn *db_conn_get(struct db_pool *pool, char *err, size_t errlen);
void db_conn_put(struct db_pool *pool, PGconn *conn);

/* Runs a command with no result rows; 0 or -1 (err set from libpq). */
int db_exec(PGconn *conn, const char *sql, char *err, size_t errlen);
/* Copies libpq's error for res (or conn) into err, one line. */
void db_set_error(PGconn *conn, const PGresult *res, char *err, size_t errlen);
/* True when res is a result of the given status; clears nothing. */
int db_res_ok(const PGresult *res, ExecStatusType want);
/* The first column of res's first row as a number: 1 with *v set, 0 when
 * res has no rows, -1 with err set when the query failed.  Clears res. */
int db_res_int64(PGconn *conn, PGresult *res, int64_t *v, char *err, size_t errlen);
/* Connects with a short timeout; NULL with err set on failure. */
PGconn *db_connect(const char *conninfo, char *err, size_t errlen);

#endif
