/*
 * migrations.h - the schema migrations compiled into the binary
 * (generated from db/migrations/NNNN_name.sql by db/embed_migrations.sh).
 */
#ifndef MF_DB_MIGRATIONS_H
#define MF_DB_MIGRATIONS_H

struct db_migration {
	int version;
	const char *name;
	const char *sql;
};

extern const struct db_migration db_migrations[];
extern const int db_migrations_count;

#endif
