/* The SQL migrations in migrations/NNNN_name.sql (SQLite), compiled into the binary by
 * scripts/embed-sql.sh. Read-only data, thread-safe. */
#ifndef TV_STORE_MIGRATIONS_H
#define TV_STORE_MIGRATIONS_H

#include <stddef.h>

struct store_migration {
    int version;      /* NNNN */
    const char *name; /* "0001_init" */
    const char *sql;  /* the whole file */
};

extern const struct store_migration store_migrations[];
extern const size_t store_migrations_count;
/* The same migrations in PostgreSQL's dialect, from migrations/postgres/NNNN_name.sql: the same
 * versions and names (tests/unit/test_pg_migrations.c holds the two lists equal). */
extern const struct store_migration store_pg_migrations[];
extern const size_t store_pg_migrations_count;

#endif
