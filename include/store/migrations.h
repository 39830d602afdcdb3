/* The SQL migrations in migrations/NNNN_name.sql, compiled into the binary by
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

#endif
