/*
 * db.h - mailferry's database layer (PostgreSQL through libpq).
 *
 * db/ is the only code that includes libpq-fe.h; the rest of mailferry talks
 * to the database through the functions declared in the db headers.  A struct
 * db_pool is a thread-safe set of connections that reconnects by itself
 * after the server restarts.  Functions return 0 on success and -1 on
 * failure with a message in the caller's err buffer, unless they say
 * otherwise.
 */
#ifndef MF_DB_H
#define MF_DB_H

#include <stddef.h>
#include <stdio.h>

struct db_pool;

/* Opens nothing yet: connections are made on demand, up to size. */
struct db_pool *db_pool_new(const char *conninfo, int size);
void db_pool_free(struct db_pool *pool);
/* Connections currently open / in use, for metrics. */
void db_pool_stats(struct db_pool *pool, int *open, int *busy);

/* The schema version this binary needs (the last embedded migration). */
int db_schema_latest(void);
/*
 * Checks that the database answers and that its schema is exactly the one
 * this binary needs.  Returns 0; -1 when the database cannot be reached
 * or queried; -2 when its schema is missing, older or newer.  err says why.
 */
int db_check_ready(struct db_pool *pool, char *err, size_t errlen);
/* Applies pending migrations in order, each in its own transaction;
 * reports each applied one on progress (may be NULL). */
int db_migrate(const char *conninfo, FILE *progress, char *err, size_t errlen);

#endif
