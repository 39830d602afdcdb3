/* The service's persistent store: one SQLite database in WAL mode behind a backend-neutral
 * interface (no SQL outside src/store/). The table modules live in users.h, outbox.h,
 * apikeys.h, accounts.h, audit.h and meta.h. Every function of every store header is
 * thread-safe: writes go through one mutex-protected writer connection inside BEGIN IMMEDIATE
 * transactions; reads use a small pool of reader connections, so they never queue behind writes.
 * All calls block on the database (a few microseconds, or up to the 5 s busy timeout while
 * another process holds the write lock). */
#ifndef TV_STORE_STORE_H
#define TV_STORE_STORE_H

#include <stdint.h>

struct store;

/* Ceilings shared by the table modules (bytes, without the terminating NUL). */
#define STORE_ID_MAX 256      /* app user ids, ACS ids, resource hosts */
#define STORE_NAME_MAX 64     /* API key and account names */
#define STORE_LIST_MAX 1000   /* most rows one list call returns */
#define STORE_INSTANCE_MAX 32 /* hex characters of store_instance */

/* How store_open treats a schema older than this binary's migrations. */
enum store_migrate_mode {
    STORE_MIGRATE_NO = 0,    /* fail with TV_ERR_CONFIG when a migration is pending */
    STORE_MIGRATE_YES = 1,   /* apply pending migrations before returning */
    STORE_MIGRATE_DEFER = 2, /* open anyway; the caller runs store_migrate (tokenvend migrate) */
};

/* Opens or creates the database file at path (creating its directory, mode 0700, and the file
 * with mode 0600), sets WAL, synchronous=NORMAL, busy_timeout 5000 and foreign keys on.
 * synchronous=NORMAL in WAL mode loses no committed transaction when the PROCESS crashes (the
 * WAL is in the OS page cache); only an OS crash or power loss may drop the last commits, never
 * corrupting the file. migrate is an enum store_migrate_mode (0 and 1 as booleans). Fails with
 * TV_ERR_CONFIG when the database was written by a newer binary (a migration version this
 * binary does not know) or, with STORE_MIGRATE_NO, when the schema is behind; TV_ERR_IO when the
 * file cannot be opened or is not a database. *out (free with store_close) untouched on
 * failure. Blocking. */
int store_open(const char *path, int migrate, struct store **out);

/* Where the store is and, for PostgreSQL, how to reach it. */
struct store_opts {
    const char *db;            /* a SQLite file's path, or a postgresql:// or postgres:// URI */
    int pool_size;             /* PostgreSQL: connections kept (0: 8) */
    long connect_timeout_ms;   /* PostgreSQL: one connection attempt (0: 5000) */
    long statement_timeout_ms; /* PostgreSQL: the server's statement_timeout (0: 5000) */
};

struct config;
/* The store settings of cfg (db, db_pool_size, db_connect_timeout_ms, db_statement_timeout_ms);
 * o->db points into cfg. */
void store_opts_from_config(const struct config *cfg, struct store_opts *o);

/* Opens the store o->db names by its form (core/dburi.h): a URI opens the PostgreSQL store
 * (a pool of libpq connections; the first connection is made here, so a wrong host, password
 * or database shows at once), anything else the SQLite file as store_open does. migrate as for
 * store_open. On failure one line in err (errcap bytes; never a password) and: TV_ERR_CONFIG
 * for what the operator must change (a malformed URI, refused credentials, a missing database,
 * a schema newer than the binary, or pending migrations with STORE_MIGRATE_NO);
 * TV_ERR_UNAVAILABLE when the PostgreSQL server cannot be reached within the connect timeout;
 * another code for a SQLite file that cannot be opened. Blocking. */
int store_open_opts(const struct store_opts *o, int migrate, struct store **out, char *err,
                    size_t errcap);

/* Checks the form of a db setting without opening anything (`config check`, start-up): a
 * PostgreSQL URI must parse and name a valid port. 0, or TV_ERR_CONFIG with one line in err
 * (errcap bytes, never the password). */
int store_db_check(const char *db, char *err, size_t errcap);

/* Whether s is the PostgreSQL store (shared by replicas, reached over the network) rather than
 * a local SQLite file. */
int store_is_pg(const struct store *s);

/* Applies pending migrations in version order, each in its own BEGIN IMMEDIATE transaction,
 * recorded in schema_migrations; safe against a concurrent migrate from another process.
 * *applied (may be NULL) receives how many were applied (0 when up to date). TV_ERR_CONFIG when
 * the database is newer than the binary; TV_ERR_IO when a migration fails (that migration is
 * rolled back, earlier ones stay). */
int store_migrate(struct store *s, int *applied);

/* Current schema version of the database (0 for a new file) and the newest version this
 * binary knows (either pointer may be NULL). current is the version the schema is complete up
 * to: below the highest recorded one when a version is missing under it (store_migrate then
 * applies it), or a version this binary does not know (store_open and store_migrate refuse
 * such a database). A migrate command prints the migrations between the two
 * (include/store/migrations.h lists them). */
int store_schema_version(struct store *s, int *current, int *latest);
/* Whether the database records migration version as applied: *has 1 or 0. 0 or a store
 * error. */
int store_schema_has(struct store *s, int version, int *has);

/* Closes every connection (a no-op for NULL). No other thread may use s any more. The last
 * close of the database checkpoints the WAL into the main file. */
void store_close(struct store *s);

/* Readiness probe: takes the write lock (BEGIN IMMEDIATE), writes a row and rolls it back.
 * 0 when the database is writable, TV_ERR_UNAVAILABLE otherwise (locked past the busy timeout,
 * read-only, disk error). */
int store_ping_write(struct store *s);

/* This opening's name among the processes that share the database: STORE_INSTANCE_MAX random
 * hex characters, fixed until store_close. Rows a process holds for a while (create claims,
 * outbox leases) carry it, so another process can tell them from its own. */
const char *store_instance(const struct store *s);

/* Whether the database file is in WAL mode (for tests and `config check`): *wal = 1 or 0. */
int store_is_wal(struct store *s, int *wal);

#endif
