/* Private to src/store: the tables `tokenvend store copy` moves (store/copy.h), described once,
 * and rows read and written column by column, as they are, on either backend: ids, times,
 * hashes and blobs unchanged. copy_rows.c holds the descriptions, the row helpers and the
 * SQLite statements; pg_copy_rows.c the PostgreSQL ones. Thread-safe as the rest of the store. */
#ifndef TV_STORE_COPY_ROWS_H
#define TV_STORE_COPY_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "store_int.h"

#define COPY_COLS_MAX 10           /* columns of the widest tables (outbox, api_keys) */
#define COPY_KEYS_MAX 3            /* the primary key and up to two other unique columns */
#define COPY_VALUE_MAX (64 * 1024) /* longest text or blob a copied column may hold */

/* The tables in copy order. create_claims and schema_migrations are not copied (copy.h says
 * why). */
enum copy_tab {
    COPY_META,
    COPY_ACCOUNTS,
    COPY_API_KEYS,
    COPY_MAPPINGS,
    COPY_OUTBOX,
    COPY_AUDIT,
    COPY_LOGIN_FAILURES,
    COPY_TABLES
};

enum copy_type { COPY_INT, COPY_TEXT, COPY_TEXT_NULL, COPY_BLOB };

struct copy_table {
    enum copy_tab tab;
    const char *name;
    int ncols;
    const char *cols[COPY_COLS_MAX];
    enum copy_type types[COPY_COLS_MAX];
    int nkeys;
    int keys[COPY_KEYS_MAX]; /* column indexes: keys[0] is the primary key (the paging order) */
    int identity;            /* the primary key is an id that PostgreSQL draws from a sequence */
};

/* One column's value. p (text, NUL-terminated, or blob) is malloc'd and wiped when freed:
 * rows hold password hashes and encrypted keys. */
struct copy_val {
    int null;
    int64_t i;
    unsigned char *p;
    size_t len;
};

/* One row of table t. Zero it and set t before a read fills it. */
struct copy_row {
    const struct copy_table *t;
    struct copy_val v[COPY_COLS_MAX];
};

extern const struct copy_table copy_tables[COPY_TABLES];

/* Wipes and frees r's values (t stays). */
void copy_row_clear(struct copy_row *r);
/* Whether a and b (of one table) hold the same values, NULL and "" told apart. */
int copy_row_equal(const struct copy_row *a, const struct copy_row *b);
/* r's values as statement parameters (p: COPY_COLS_MAX + 1 entries, ending in STORE_END). */
void copy_row_params(const struct copy_row *r, struct store_param *p);
/* Column col's value as one parameter. */
struct store_param copy_val_param(const struct copy_row *r, int col);
/* Stores n bytes at src into v (a copy, NUL-terminated). TV_ERR_TOO_LARGE past COPY_VALUE_MAX,
 * TV_ERR_NOMEM. */
int copy_val_set(struct copy_val *v, const void *src, size_t n);
/* Describes column col of r for a message: "name \"alice\"", "id 42" (never a blob's bytes). */
void copy_key_describe(const struct copy_row *r, int col, char *out, size_t cap);

/* Up to limit rows of t from s in primary-key order after *after (a key value of r's type;
 * NULL: from the start) into out (limit rows, zeroed, t set); *n the count. On failure the rows
 * are cleared. Blocking. */
int copy_rows_page(struct store *s, const struct copy_table *t, const struct copy_val *after,
                   int limit, struct copy_row *out, int *n);
/* The row of s whose column keys[k] equals src's into out (zeroed, t set): 0 or
 * TV_ERR_NOT_FOUND. */
int copy_rows_find(struct store *s, const struct copy_row *src, int k, struct copy_row *out);
/* Rows in t. */
int copy_rows_count(struct store *s, const struct copy_table *t, int64_t *n);

/* The destination's writer for the copy: one transaction for every insert. */
struct copy_writer;
/* Runs fn(w, arg) inside one transaction on s (SQLite: the writer under BEGIN IMMEDIATE;
 * PostgreSQL: pgpool_tx_run, which may run fn twice when the connection broke before COMMIT).
 * Commits when fn returns 0, else rolls back and returns fn's code. */
typedef int (*copy_write_fn)(struct copy_writer *w, void *arg);
int copy_rows_write(struct store *s, copy_write_fn fn, void *arg);
/* Inserts r unless a row with one of its unique keys exists: *inserted 1 or 0. */
int copy_rows_insert(struct copy_writer *w, const struct copy_row *r, int *inserted);
/* After inserting ids into t: moves t's PostgreSQL id sequence past max(id), never backwards
 * (SQLite needs nothing: the next rowid is max + 1, and AUTOINCREMENT's counter follows
 * inserted ids). */
int copy_rows_fix_ids(struct copy_writer *w, const struct copy_table *t);

/* Table t's statements in a dialect (pg 0: SQLite, 1: PostgreSQL), made once: a page in key
 * order (parameters: the cursor, the limit), a lookup by its k-th unique column, an insert that
 * skips a row whose unique columns are taken, a count. */
const char *copy_sql_page(int pg, const struct copy_table *t);
const char *copy_sql_find(int pg, const struct copy_table *t, int k);
const char *copy_sql_insert(int pg, const struct copy_table *t);
const char *copy_sql_count(int pg, const struct copy_table *t);

/* The PostgreSQL halves (pg_copy_rows.c). */
int pgcopy_page(struct store *s, const struct copy_table *t, const struct store_param *p, int limit,
                struct copy_row *out, int *n);
int pgcopy_find(struct store *s, const struct copy_row *src, int k, struct copy_row *out);
int pgcopy_count(struct store *s, const struct copy_table *t, int64_t *n);
int pgcopy_write(struct store *s, copy_write_fn fn, void *arg);
int pgcopy_insert(struct copy_writer *w, const struct copy_row *r, int *inserted);
int pgcopy_fix_ids(struct copy_writer *w, const struct copy_table *t);

/* What both backends' writers share (the PostgreSQL one sets tx, the SQLite one c). */
struct pgpool_tx;
struct copy_writer {
    struct store_conn *c;
    struct pgpool_tx *tx;
    copy_write_fn fn;
    void *arg;
};

#endif
