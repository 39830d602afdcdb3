/* Private to src/store: schema migrations of the PostgreSQL store. The compiled-in
 * store_pg_migrations (migrations/postgres/) are applied in version order, each in one
 * transaction that first takes a transaction-scoped advisory lock, so any number of replicas
 * starting together apply each exactly once; every version the database lacks is applied, as
 * the SQLite runner does. Thread-safe (the lock serialises runners in any process). */
#ifndef TV_STORE_PG_MIGRATE_H
#define TV_STORE_PG_MIGRATE_H

#include <stddef.h>

#include "pg_pool.h"

/* The advisory lock key of schema changes: the bytes "tokenven" as a big-endian int64. */
#define PGMIG_LOCK_KEY "8390042714203645294"

/* The schema version of the database: the highest version of a gap-free run from the first
 * compiled-in migration, or a version this binary does not know when there is one (then the
 * highest such). 0 for an empty database. Only reads (no lock, creates nothing), so a role
 * with row privileges alone may call it. TV_ERR_CONFIG (logged) when the role may not read
 * schema_migrations, else a code of the pool on failure. */
int pgmig_version(struct pgpool *p, int *current);

/* *has: whether migration version is recorded (0 when there is no bookkeeping table yet).
 * Only reads. A code of the pool on failure, *has then untouched. */
int pgmig_has(struct pgpool *p, int version, int *has);

/* Applies what the database lacks. *applied (may be NULL) counts the migrations this call
 * applied. A database holding a version this binary does not know (made by a newer tokenvend)
 * is refused with TV_ERR_CONFIG and one line in err (errcap bytes), and nothing is applied;
 * a role that may not create tables in its schema, when something needs applying, gets
 * TV_ERR_CONFIG and a line saying so; other failures give the pool's code and a line in err. */
int pgmig_run(struct pgpool *p, int *applied, char *err, size_t errcap);

#endif
