/* Private to src/store: connections, the per-connection prepared-statement cache, the
 * writer/reader split and small SQLite helpers shared by the table files. */
#ifndef TV_STORE_STORE_INT_H
#define TV_STORE_STORE_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "pg_pool.h"
#include "store/store.h"

#define STORE_STMT_CACHE 64 /* statements one connection keeps prepared */
#define STORE_READERS_MAX 4 /* reader connections opened on demand */
#define STORE_BUSY_TIMEOUT_MS 5000

/* One SQLite connection, used by one thread at a time (the store's locks guarantee it). */
struct store_conn {
    sqlite3 *db;
    /* Keyed by the address of the SQL text: every statement is a static string, so a pointer
     * compare finds it without hashing the text. */
    struct {
        const char *sql;
        sqlite3_stmt *st;
    } stmts[STORE_STMT_CACHE];
    size_t nstmts;
    struct store_conn *next_free; /* reader pool link */
};

/* Which backend a store runs on: chosen once at open, never changed. */
enum store_kind { STORE_SQLITE = 0, STORE_PG = 1 };

struct store {
    enum store_kind kind;
    struct pgpool *pg; /* STORE_PG: every statement goes through the pool; NULL otherwise */
    /* This process's name among those sharing the database (store_instance): random hex. */
    char instance[STORE_INSTANCE_MAX + 1];
    /* STORE_SQLITE only (zero for STORE_PG): */
    char *path;
    pthread_mutex_t wlock; /* serialises the writer connection */
    struct store_conn *writer;
    pthread_mutex_t rlock; /* guards the reader pool */
    pthread_cond_t rcond;  /* signalled when a reader is returned */
    struct store_conn *rfree;
    struct store_conn *readers[STORE_READERS_MAX];
    int nreaders;
};

/* Gives s a fresh random instance name. 0 or TV_ERR_INTERNAL (no randomness). */
int store_instance_init(struct store *s);

/* Maps a failed SQLite result code to a TV_ERR_* code (never 0), logging unexpected failures
 * once with sqlite3_errmsg (messages name constraints, never values). c must not be NULL. */
int store_err(struct store_conn *c, int src, const char *what);

/* The cached prepared statement for sql (a string literal; its address is the cache key). */
int store_stmt(struct store_conn *c, const char *sql, sqlite3_stmt **out);
/* Ends a statement's use: reset (which also ends a reader's implicit read transaction) and
 * clear its bindings so no pointer into caller memory stays behind. */
void store_stmt_done(sqlite3_stmt *st);
/* Steps st: 0 with *row = 1 (a row is ready) or 0 (done), or a mapped error. */
int store_step(struct store_conn *c, sqlite3_stmt *st, int *row);
/* Runs a statement that returns no rows to the end. */
int store_step_done(struct store_conn *c, sqlite3_stmt *st);

/* Binds text (NULL binds SQL NULL); the string must outlive the step. */
int store_bind_text(sqlite3_stmt *st, int idx, const char *s);
/* Binds "" as SQL NULL, anything else as text. */
int store_bind_text_or_null(sqlite3_stmt *st, int idx, const char *s);
/* Copies column i's text into dst (cap bytes incl. NUL); NULL gives "". TV_ERR_INTERNAL when it
 * does not fit (the CHECK constraints make that impossible for rows this code wrote). */
int store_col_text(sqlite3_stmt *st, int i, char *dst, size_t cap);

/* 0 when s is a string of min..max bytes, else TV_ERR_INVALID. */
int store_check_str(const char *s, size_t min, size_t max);
/* 0 when limit is 1..STORE_LIST_MAX and the pointers are set, else TV_ERR_INVALID. */
int store_check_list(int limit, const void *out, const int *n);

/* Runs a one-number query without parameters ("SELECT count(*) ...") into *n (0 when NULL).
 * TV_ERR_INVALID when n is NULL. */
int store_count(struct store *s, const char *sql, int64_t *n);

/* Binds a list query's parameters other than its limit; arg is the caller's. */
typedef void (*store_bind_fn)(sqlite3_stmt *st, const void *arg);
/* Converts the statement's current row into *out: 0 or a TV_ERR_* code. */
typedef int (*store_row_fn)(sqlite3_stmt *st, void *out);

/* Runs a one-row query on a reader: bind(st, arg) (bind NULL: no parameters), then conv(st, out)
 * on the first row. TV_ERR_NOT_FOUND when there is no row; otherwise conv's result. */
int store_read_one(struct store *s, const char *sql, store_bind_fn bind, const void *arg,
                   store_row_fn conv, void *out);
/* store_read_one for a lookup by one text key of 1..max bytes, bound to ?1: the row goes to
 * tmp (size bytes), then to out on success only; tmp is wiped after (rows may hold hashes).
 * TV_ERR_INVALID for a bad key or NULL out, TV_ERR_NOT_FOUND, or conv's or the store's error. */
int store_get_by_key(struct store *s, const char *sql, const char *key, size_t max,
                     store_row_fn conv, void *tmp, void *out, size_t size);
/* Runs a one-value query (sql with at most one text parameter, arg NULL for none) on a reader.
 * *has_value = 0 when there was no row or the value was NULL. */
int store_query_int64(struct store *s, const char *sql, const char *arg, int64_t *value,
                      int *has_value);

/* Runs a list query on a reader: bind(st, arg), limit bound as parameter limit_idx, then up to
 * limit rows converted by conv into the array out (elements of size bytes). Sets *n to the rows
 * converted on success only. The caller has checked limit, out and n (store_check_list). */
int store_list_rows(struct store *s, const char *sql, store_bind_fn bind, const void *arg,
                    int limit_idx, int limit, void *out, size_t size, store_row_fn conv, int *n);
/* A store_bind_fn for keyset pagination: binds arg, the cursor (a const char *; NULL means from
 * the start, bound as ""), to ?1. */
void store_bind_after(sqlite3_stmt *st, const void *arg);

/* What one write did: rows changed, and the rowid of the last row inserted on the connection. */
struct store_write_info {
    int64_t changes;
    int64_t rowid;
};
/* Runs sql, a statement that changes rows and returns none, on the writer in a transaction of
 * its own, after bind(st, arg); fills *info (when not NULL) on success only. */
int store_write_run(struct store *s, const char *sql, store_bind_fn bind, const void *arg,
                    struct store_write_info *info);
/* store_write_run, but TV_ERR_NOT_FOUND when it changed no row. */
int store_write_one(struct store *s, const char *sql, store_bind_fn bind, const void *arg);
/* One statement parameter, for store_bind_params: a list of them replaces a bind function. */
enum store_param_type {
    STORE_P_END,
    STORE_P_TEXT,
    STORE_P_TEXT_OR_NULL,
    STORE_P_INT64,
    STORE_P_BLOB
};
struct store_param {
    enum store_param_type type;
    const void *p; /* TEXT (NULL binds SQL NULL), TEXT_OR_NULL: a string; BLOB: the bytes */
    int64_t n;     /* INT64: the value; BLOB: the length (0 binds a zero-length blob) */
};
#define STORE_TEXT(s)                                                                              \
    {                                                                                              \
        STORE_P_TEXT, (s), 0                                                                       \
    }
#define STORE_TEXT_OR_NULL(s)                                                                      \
    {                                                                                              \
        STORE_P_TEXT_OR_NULL, (s), 0                                                               \
    }
#define STORE_INT64(v)                                                                             \
    {                                                                                              \
        STORE_P_INT64, NULL, (v)                                                                   \
    }
#define STORE_BLOB(b, len)                                                                         \
    {                                                                                              \
        STORE_P_BLOB, (b), (int64_t)(len)                                                          \
    }
#define STORE_END                                                                                  \
    {                                                                                              \
        STORE_P_END, NULL, 0                                                                       \
    }
/* A store_bind_fn binding arg, an array of struct store_param ending in STORE_END, to ?1, ?2...
 * Strings and bytes must outlive the step. */
void store_bind_params(sqlite3_stmt *st, const void *arg);
/* A store_bind_fn binding arg (a const char *) to ?1 as text. */
void store_bind_key(sqlite3_stmt *st, const void *arg);
/* A text key and a time: store_bind_key_ms binds them to ?1 and ?2. */
struct store_key_ms {
    const char *key;
    int64_t ms;
};
void store_bind_key_ms(sqlite3_stmt *st, const void *arg);

/* Takes the writer (mutex + BEGIN IMMEDIATE). On failure nothing is held. */
int store_write_begin(struct store *s, struct store_conn **c);
/* Commits when rc == 0, else rolls back; releases the writer. Returns rc, or the commit's
 * error when the commit fails. */
int store_write_end(struct store *s, struct store_conn *c, int rc);

/* Takes a reader connection from the pool (opening one if below the maximum, else waiting). */
int store_read_begin(struct store *s, struct store_conn **c);
void store_read_end(struct store *s, struct store_conn *c);

/* Migrations (migrate.c), called with the writer NOT held. */
int store_migrate_prepare(struct store *s);
/* The version the schema is complete up to: the last compiled-in migration recorded before the
 * first one missing (0 when the first is missing), so a database holding 1, 2 and 4 is at 2 and
 * gets 3; or, when the database records a version this binary does not know, the highest such
 * one (callers refuse the database then). */
int store_version_get(struct store_conn *c, int *version);
int store_version_latest(void);
/* 1 when the binary has a migration numbered v, else 0. */
int store_version_known(int v);

/* The SQLite store (db.c): store_open for a path, logging its own failures. */
int sqlstore_open(const char *path, int migrate, struct store **out);
/* The PostgreSQL store (pg_db.c), chosen by store_open_opts for a URI.
 * Opens the pool (o), checks the schema version and applies migrations as store_open does for
 * migrate (an enum store_migrate_mode). TV_ERR_CONFIG for a malformed URI, refused credentials,
 * a missing database, a schema newer than the binary or (STORE_MIGRATE_NO) one that is behind;
 * TV_ERR_UNAVAILABLE for an unreachable server. One line in err (errcap bytes, never the
 * password). *out untouched on failure. */
int store_open_pg(const struct pgpool_opts *o, int migrate, struct store **out, char *err,
                  size_t errcap);
/* The PostgreSQL halves of store_schema_version, store_schema_has, store_migrate, store_close,
 * store_ping_write (pg_db.c); the public functions switch on s->kind. */
int pgstore_schema_version(struct store *s, int *current);
int pgstore_schema_has(struct store *s, int version, int *has);
int pgstore_migrate(struct store *s, int *applied);
void pgstore_close(struct store *s);
int pgstore_ping_write(struct store *s);

#endif
