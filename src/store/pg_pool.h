/* Private to src/store: a pool of libpq connections to one PostgreSQL database, the
 * foundation of the PostgreSQL store (not selectable yet). Connections are made with a deadline
 * of our own, carry a statement_timeout, and are replaced when the server dropped them (a
 * restart): a statement that is safe to repeat, or a transaction that never reached COMMIT, is
 * then run once more on a new connection. Parameters are always bound ($1, $2...), never
 * written into the SQL. Connection failures get distinct one-line messages that never carry
 * the password. Thread-safe: any thread may run statements; a connection is used by one thread
 * at a time. */
#ifndef TV_STORE_PG_POOL_H
#define TV_STORE_PG_POOL_H

#include <libpq-fe.h>
#include <stddef.h>

#define PGPOOL_ERR_MAX 512     /* a comfortable size for pgpool_new's message */
#define PGPOOL_SIZE_MAX 256    /* the bound of db_pool_size */
#define PGPOOL_URI_REDACTED 16 /* what dburi_redact puts where a password was: "***" */

struct pgpool;
struct pgpool_tx;

struct pgpool_opts {
    const char *uri;           /* postgresql://user:pass@host:port/db[?...] (a secret) */
    int size;                  /* 1..PGPOOL_SIZE_MAX connections at most */
    long connect_timeout_ms;   /* one connection attempt, TCP and authentication */
    long statement_timeout_ms; /* the server's statement_timeout on every connection */
};

/* Checks uri as pgpool_new does, without connecting: 0, or TV_ERR_CONFIG with one line in err
 * (errcap bytes, never the password). */
int pgpool_uri_check(const char *uri, char *err, size_t errcap);

/* Checks the URI, then makes the first connection so that a wrong host, credentials or
 * database show at once. On success *out is the pool (pgpool_free). On failure a code and one
 * line in err (errcap bytes; never the password): TV_ERR_CONFIG for a malformed URI, refused
 * credentials (SQLSTATE 28P01, 28000) or a missing database (3D000); TV_ERR_UNAVAILABLE for an
 * unreachable server, one that did not answer within connect_timeout_ms, or one that cannot
 * accept connections yet; TV_ERR_INVALID for bad options. Blocks up to the connect timeout. */
int pgpool_new(const struct pgpool_opts *o, struct pgpool **out, char *err, size_t errcap);
/* Closes every connection; no statement may be running. NULL is a no-op. */
void pgpool_free(struct pgpool *p);

/* pgpool_exec flags. */
#define PGPOOL_RETRY                                                                               \
    1 /* safe to run twice (a read, or idempotent): retried on a new connection                    \
       */

/* Runs one statement with n text parameters (values[i] NULL binds SQL NULL; lengths and
 * formats as in PQexecParams, both may be NULL for text). On success *res (when not NULL) is
 * the result, which the caller PQclear()s. Errors: TV_ERR_UNAVAILABLE (server unreachable, the
 * connection broke and the statement could not be retried, or statement_timeout), TV_ERR_CONFLICT
 * (a unique violation), TV_ERR_INVALID (another constraint), TV_ERR_IO (anything else), each
 * logged once with the server's primary message (never parameter values). Blocks while every
 * connection is in use, at most the connect plus statement timeouts; waits for the answer at most
 * the statement plus connect timeouts, whatever the server does (frozen, partitioned): then the
 * connection is closed and the statement not repeated (TV_ERR_UNAVAILABLE). */
int pgpool_exec(struct pgpool *p, const char *sql, int n, const char *const *values,
                const int *lengths, const int *formats, int flags, PGresult **res);

/* A transaction body: runs statements with pgpool_tx_exec, returns 0 to commit or a code to
 * roll back (returned by pgpool_tx_run). It may run twice: when the connection broke before
 * COMMIT was sent, the server rolled everything back and pgpool_tx_run starts again on a new
 * connection, so the body must leave no trace outside the database before it returns. */
typedef int (*pgpool_tx_fn)(struct pgpool_tx *tx, void *arg);

/* BEGIN, fn(tx, arg), COMMIT (or ROLLBACK when fn failed), on one connection. A COMMIT whose
 * answer was lost is not retried (it may have taken effect): TV_ERR_UNAVAILABLE. A transaction
 * the server rolled back for a deadlock (SQLSTATE 40P01) or a serialization failure (40001)
 * runs again, a few times at most. Each statement has the deadline of pgpool_exec. */
int pgpool_tx_run(struct pgpool *p, pgpool_tx_fn fn, void *arg);
/* pgpool_exec inside a transaction (no flags: the whole transaction is what is retried). */
int pgpool_tx_exec(struct pgpool_tx *tx, const char *sql, int n, const char *const *values,
                   const int *lengths, const int *formats, PGresult **res);

/* SET LOCAL statement_timeout = ms for the rest of the transaction, and the client-side deadline
 * of its statements with it (a migration that may wait for another's lock). Codes as
 * pgpool_exec. */
int pgpool_tx_set_timeout(struct pgpool_tx *tx, long ms);

/* Runs sql, several statements without parameters (a migration file), with PQexec's simple
 * protocol inside the transaction. Codes as pgpool_exec. */
int pgpool_tx_exec_script(struct pgpool_tx *tx, const char *sql);

/* Starts (PQconnectStartParams) one connection with the pool's URI and options but outside the
 * pool, for a caller that drives PQconnectPoll itself and keeps the connection for its own use
 * (the LISTEN connection of pg_listen.c, which must not hold a pool slot and must be able to
 * give up when asked to stop). *connect_timeout_ms (may be NULL) receives the pool's connect
 * deadline. The caller PQfinish()es the result; NULL when out of memory. */
PGconn *pgpool_conn_start(struct pgpool *p, long *connect_timeout_ms);

/* Statements and transactions begun through the pool so far (for tests: a cache hit must add
 * none). */
long pgpool_statements(struct pgpool *p);

/* Counters for tests and metrics: connections open now, the most in use at once so far, and
 * connections made after the first (reconnects). Any pointer may be NULL. */
void pgpool_stats(struct pgpool *p, int *open, int *max_busy, long *reconnects);

#endif
