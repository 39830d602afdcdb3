/* Private to src/store: the PostgreSQL twins of store_int.h's helpers, so a pg_<table>.c
 * function is as short as its SQLite sibling. Parameters come as the same struct store_param
 * lists (STORE_TEXT, STORE_INT64, STORE_BLOB...): text and numbers are sent as text, blobs in
 * binary format (BYTEA), never formatted into the SQL. Results are read in text format. */
#ifndef TV_STORE_PG_INT_H
#define TV_STORE_PG_INT_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "pg_pool.h"
#include "store_int.h"

#define PGS_PARAMS_MAX 12 /* the most parameters one statement of the store binds */

/* A parameter list in PQexecParams' form; the numbers' text lives in num. */
struct pgs_args {
    int n;
    const char *vals[PGS_PARAMS_MAX];
    int lens[PGS_PARAMS_MAX];
    int fmts[PGS_PARAMS_MAX];
    char num[PGS_PARAMS_MAX][24];
};
/* Fills a from p (ending in STORE_END; NULL for none). TV_ERR_INTERNAL for too many. The
 * strings and bytes p points to must outlive the statement. */
int pgs_args_from(struct pgs_args *a, const struct store_param *p);

/* Converts row `row` of r into *out: 0 or a TV_ERR_* code. */
typedef int (*pgs_row_fn)(const PGresult *r, int row, void *out);

/* One statement with the parameters p through the pool (flags: PGPOOL_RETRY for reads and
 * idempotent writes). *res as pgpool_exec. */
int pgs_exec(struct store *s, const char *sql, const struct store_param *p, int flags,
             PGresult **res);
/* The same inside a transaction body. */
int pgs_tx_exec(struct pgpool_tx *tx, const char *sql, const struct store_param *p, PGresult **res);

/* store_read_one: conv on the first row; TV_ERR_NOT_FOUND when there is none. Retried once
 * on a broken connection (a read). */
int pgs_read_one(struct store *s, const char *sql, const struct store_param *p, pgs_row_fn conv,
                 void *out);
/* store_get_by_key: a lookup by one text key of 1..max bytes ($1); the row goes to tmp, then to
 * out on success only; tmp is wiped after. */
int pgs_get_by_key(struct store *s, const char *sql, const char *key, size_t max, pgs_row_fn conv,
                   void *tmp, void *out, size_t size);
/* store_query_int64: one value of a query with at most one text parameter (arg NULL: none).
 * *has_value (may be NULL) = 0 when there was no row or the value was NULL. */
int pgs_query_int64(struct store *s, const char *sql, const char *arg, int64_t *value,
                    int *has_value);
/* store_count. */
int pgs_count(struct store *s, const char *sql, int64_t *n);
/* store_list_rows: the parameters p include the limit; up to limit rows converted into the
 * array out (elements of size bytes); *n set on success only. */
int pgs_list_rows(struct store *s, const char *sql, const struct store_param *p, int limit,
                  void *out, size_t size, pgs_row_fn conv, int *n);
/* store_write_run: one statement that changes rows; *changes (may be NULL) is PQcmdTuples'
 * count. Not repeated on a broken connection (it may have taken effect). */
int pgs_write_run(struct store *s, const char *sql, const struct store_param *p, int64_t *changes);
/* store_write_one: TV_ERR_NOT_FOUND when no row changed. */
int pgs_write_one(struct store *s, const char *sql, const struct store_param *p);

/* Row changes of a command's result (PQcmdTuples), 0 when it reports none. */
int64_t pgs_changes(PGresult *r);
/* Column col of row `row` as text into dst (cap bytes with the NUL); SQL NULL gives "".
 * TV_ERR_INTERNAL when it does not fit. */
int pgs_col_text(const PGresult *r, int row, int col, char *dst, size_t cap);
/* Column col as an int64 (SQL NULL gives 0). */
int64_t pgs_col_int64(const PGresult *r, int row, int col);
/* Column col, a BYTEA in text format, decoded into dst (cap bytes); *len its length.
 * TV_ERR_TOO_LARGE when it does not fit (*len still set), TV_ERR_INTERNAL for NULL or a value
 * libpq cannot decode. The decoded copy libpq makes and the value's text in r are wiped
 * (values may be secrets), so a column is read once. */
int pgs_col_bytea(const PGresult *r, int row, int col, void *dst, size_t cap, size_t *len);

#endif
