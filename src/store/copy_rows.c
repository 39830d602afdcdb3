/* The tables `tokenvend store copy` moves, rows as generic column values, and their SQLite
 * statements (see copy_rows.h; pg_copy_rows.c is the PostgreSQL sibling). The statements are
 * made once from the descriptions below (table and column names only, never a value), into
 * static buffers whose addresses key the SQLite statement cache like a literal's. */
#include "copy_rows.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/err.h"

#define T COPY_TEXT
#define TN COPY_TEXT_NULL
#define I COPY_INT
#define B COPY_BLOB

/* Each table's columns as both schemas define them (migrations/ and migrations/postgres/).
 * Left out, like the backups leave their rows out: token_cache, acs_budget and session_refresh
 * (refresh tokens of local-account sessions are live credentials; after a copy the users log in
 * again rather than a revoked family coming back on the new store). */
const struct copy_table copy_tables[COPY_TABLES] = {
    {COPY_META, "meta", 2, {"key", "value"}, {T, B}, 1, {0}, 0},
    {COPY_ACCOUNTS,
     "accounts",
     5,
     {"name", "password_hash", "created_ms", "updated_ms", "session_epoch"},
     {T, T, I, I, I},
     1,
     {0},
     0},
    {COPY_API_KEYS,
     "api_keys",
     10,
     {"name", "key_id", "hash", "created_ms", "last_used_ms", "revoked_ms", "prev_key_id",
      "prev_hash", "prev_expires_ms", "prev_last_used_ms"},
     {T, T, B, I, I, I, T, B, I, I},
     2,
     {0, 1},
     0},
    {COPY_MAPPINGS,
     "mappings",
     7,
     {"id", "app_user_id", "acs_id", "resource", "created_ms", "last_issued_ms", "revoked_ms"},
     {I, TN, T, T, I, I, I},
     3,
     {0, 1, 2},
     1},
    {COPY_OUTBOX,
     "outbox",
     10,
     {"id", "acs_id", "resource", "op", "attempts", "next_attempt_ms", "last_error", "created_ms",
      "app_user_id", "leased_by"},
     {I, T, T, T, I, I, T, I, TN, T},
     1,
     {0},
     1},
    {COPY_AUDIT,
     "audit",
     9,
     {"id", "ts_ms", "request_id", "caller", "action", "app_user_id", "acs_id", "outcome",
      "detail"},
     {I, I, T, T, T, T, T, T, T},
     1,
     {0},
     1},
    {COPY_LOGIN_FAILURES, "login_failures", 2, {"name", "tat_ms"}, {T, I}, 1, {0}, 0},
};

#undef T
#undef TN
#undef I
#undef B

void copy_row_clear(struct copy_row *r)
{
    for (int i = 0; i < COPY_COLS_MAX; i++) {
        if (r->v[i].p != NULL) {
            OPENSSL_cleanse(r->v[i].p, r->v[i].len + 1);
            free(r->v[i].p);
        }
    }
    memset(r->v, 0, sizeof(r->v));
}

int copy_row_equal(const struct copy_row *a, const struct copy_row *b)
{
    for (int i = 0; i < a->t->ncols; i++) {
        const struct copy_val *x = &a->v[i], *y = &b->v[i];
        if (x->null != y->null)
            return 0;
        if (x->null)
            continue;
        if (a->t->types[i] == COPY_INT) {
            if (x->i != y->i)
                return 0;
        } else if (x->len != y->len || (x->len > 0 && CRYPTO_memcmp(x->p, y->p, x->len) != 0)) {
            return 0;
        }
    }
    return 1;
}

struct store_param copy_val_param(const struct copy_row *r, int col)
{
    const struct copy_val *v = &r->v[col];
    struct store_param p = STORE_END;

    switch (r->t->types[col]) {
    case COPY_INT:
        p = (struct store_param)STORE_INT64(v->i);
        break;
    case COPY_TEXT:
    case COPY_TEXT_NULL:
        /* STORE_P_TEXT binds a NULL pointer as SQL NULL, "" as "": both kept apart. */
        p = (struct store_param)STORE_TEXT(v->null ? NULL : (const char *)v->p);
        break;
    case COPY_BLOB:
        p = (struct store_param)STORE_BLOB(v->p, v->len);
        break;
    }
    return p;
}

void copy_row_params(const struct copy_row *r, struct store_param *p)
{
    int i;

    for (i = 0; i < r->t->ncols; i++)
        p[i] = copy_val_param(r, i);
    p[i] = (struct store_param)STORE_END;
}

int copy_val_set(struct copy_val *v, const void *src, size_t n)
{
    if (n > COPY_VALUE_MAX)
        return TV_ERR_TOO_LARGE;
    if ((v->p = malloc(n + 1)) == NULL)
        return TV_ERR_NOMEM;
    if (n > 0)
        memcpy(v->p, src, n);
    v->p[n] = '\0';
    v->len = n;
    v->null = 0;
    return 0;
}

void copy_key_describe(const struct copy_row *r, int col, char *out, size_t cap)
{
    const struct copy_val *v = &r->v[col];

    if (r->t->types[col] == COPY_INT)
        snprintf(out, cap, "%s %lld", r->t->cols[col], (long long)v->i);
    else if (r->t->types[col] == COPY_BLOB)
        snprintf(out, cap, "%s (%zu bytes)", r->t->cols[col], v->len);
    else
        snprintf(out, cap, "%s \"%.200s\"", r->t->cols[col], v->null ? "" : (const char *)v->p);
}

/* ---- The statements, made once per dialect. ---- */

#define COPY_SQL_MAX 640

struct copy_sql {
    char page[COPY_SQL_MAX];
    char find[COPY_KEYS_MAX][COPY_SQL_MAX];
    char insert[COPY_SQL_MAX];
    char count[COPY_SQL_MAX];
};

static struct copy_sql g_sql[2][COPY_TABLES]; /* [0] SQLite, [1] PostgreSQL */
static pthread_once_t g_sql_once = PTHREAD_ONCE_INIT;

/* Appends text to a buffer of COPY_SQL_MAX bytes; the descriptions above fit with room to
 * spare. */
static void sql_cat(char *dst, const char *a, const char *b, const char *c)
{
    size_t len = strlen(dst);

    snprintf(dst + len, COPY_SQL_MAX - len, "%s%s%s", a, b, c);
}

/* Appends separator sep and parameter n in the dialect: ?n (SQLite) or $n (PostgreSQL). */
static void sql_param(char *dst, int pg, const char *sep, int n)
{
    size_t len = strlen(dst);

    snprintf(dst + len, COPY_SQL_MAX - len, "%s%c%d", sep, pg ? '$' : '?', n);
}

static void sql_build_one(int pg, const struct copy_table *t, struct copy_sql *q)
{
    const char *key = t->cols[t->keys[0]];
    /* PostgreSQL pages text in byte order whatever the database's collation, as SQLite does. */
    const char *coll = pg && t->types[t->keys[0]] != COPY_INT ? " COLLATE \"C\"" : "";
    char cols[COPY_SQL_MAX] = "";

    for (int i = 0; i < t->ncols; i++)
        sql_cat(cols, i > 0 ? ", " : "", t->cols[i], "");
    sql_cat(q->page, "SELECT ", cols, " FROM ");
    sql_cat(q->page, t->name, " WHERE ", key);
    sql_cat(q->page, coll, " >", "");
    sql_param(q->page, pg, " ", 1);
    sql_cat(q->page, " ORDER BY ", key, coll);
    sql_param(q->page, pg, " LIMIT ", 2);
    for (int k = 0; k < t->nkeys; k++) {
        sql_cat(q->find[k], "SELECT ", cols, " FROM ");
        sql_cat(q->find[k], t->name, " WHERE ", t->cols[t->keys[k]]);
        sql_param(q->find[k], pg, " = ", 1);
    }
    sql_cat(q->insert, "INSERT INTO ", t->name, " (");
    sql_cat(q->insert, cols, ") VALUES (", "");
    for (int i = 0; i < t->ncols; i++)
        sql_param(q->insert, pg, i > 0 ? ", " : "", i + 1);
    /* No conflict target: any unique column (the key, an acs_id, a key_id) skips the row. */
    sql_cat(q->insert, ") ON CONFLICT DO NOTHING", "", "");
    sql_cat(q->count, "SELECT count(*) FROM ", t->name, "");
}

static void sql_build(void)
{
    for (int pg = 0; pg < 2; pg++) {
        for (int i = 0; i < COPY_TABLES; i++)
            sql_build_one(pg, &copy_tables[i], &g_sql[pg][i]);
    }
}

/* The statements of table t in a dialect (pg 0 or 1). */
static const struct copy_sql *sql_for(int pg, const struct copy_table *t)
{
    (void)pthread_once(&g_sql_once, sql_build);
    return &g_sql[pg][t->tab];
}

const char *copy_sql_page(int pg, const struct copy_table *t)
{
    return sql_for(pg, t)->page;
}

const char *copy_sql_find(int pg, const struct copy_table *t, int k)
{
    return sql_for(pg, t)->find[k];
}

const char *copy_sql_insert(int pg, const struct copy_table *t)
{
    return sql_for(pg, t)->insert;
}

const char *copy_sql_count(int pg, const struct copy_table *t)
{
    return sql_for(pg, t)->count;
}

/* ---- SQLite. ---- */

/* A store_row_fn: the statement's row into a struct copy_row whose t is set. */
static int sqlite_row(sqlite3_stmt *st, void *out)
{
    struct copy_row *r = out;
    int rc = 0;

    for (int i = 0; rc == 0 && i < r->t->ncols; i++) {
        struct copy_val *v = &r->v[i];
        if (r->t->types[i] == COPY_INT) {
            v->i = sqlite3_column_int64(st, i);
        } else if (sqlite3_column_type(st, i) == SQLITE_NULL) {
            v->null = 1;
        } else if (r->t->types[i] == COPY_BLOB) {
            rc = copy_val_set(v, sqlite3_column_blob(st, i), (size_t)sqlite3_column_bytes(st, i));
        } else {
            rc = copy_val_set(v, sqlite3_column_text(st, i), (size_t)sqlite3_column_bytes(st, i));
        }
    }
    return rc;
}

static void rows_reset(const struct copy_table *t, struct copy_row *out, int limit)
{
    memset(out, 0, sizeof(*out) * (size_t)limit);
    for (int i = 0; i < limit; i++)
        out[i].t = t;
}

static void rows_clear(struct copy_row *out, int limit)
{
    for (int i = 0; i < limit; i++)
        copy_row_clear(&out[i]);
}

int copy_rows_page(struct store *s, const struct copy_table *t, const struct copy_val *after,
                   int limit, struct copy_row *out, int *n)
{
    struct copy_row cursor = {.t = t};
    struct store_param p[3];
    int rc;

    if (limit < 1 || limit > STORE_LIST_MAX)
        return TV_ERR_INVALID;
    rows_reset(t, out, limit);
    /* Before the first key: every id is >= 1 and every text key at least one byte long. */
    if (after != NULL) {
        cursor.v[t->keys[0]] = *after;
        p[0] = copy_val_param(&cursor, t->keys[0]);
    } else if (t->types[t->keys[0]] == COPY_INT) {
        p[0] = (struct store_param)STORE_INT64(0);
    } else {
        p[0] = (struct store_param)STORE_TEXT("");
    }
    p[1] = (struct store_param)STORE_INT64(limit);
    p[2] = (struct store_param)STORE_END;
    if (s->kind == STORE_PG)
        rc = pgcopy_page(s, t, p, limit, out, n);
    else
        rc = store_list_rows(s, copy_sql_page(0, t), store_bind_params, p, 2, limit, out,
                             sizeof(*out), sqlite_row, n);
    if (rc != 0)
        rows_clear(out, limit);
    return rc;
}

int copy_rows_find(struct store *s, const struct copy_row *src, int k, struct copy_row *out)
{
    struct store_param p[2] = {copy_val_param(src, src->t->keys[k]), STORE_END};
    int rc;

    memset(out, 0, sizeof(*out));
    out->t = src->t;
    if (s->kind == STORE_PG)
        rc = pgcopy_find(s, src, k, out);
    else
        rc = store_read_one(s, copy_sql_find(0, src->t, k), store_bind_params, p, sqlite_row, out);
    if (rc != 0)
        copy_row_clear(out);
    return rc;
}

int copy_rows_count(struct store *s, const struct copy_table *t, int64_t *n)
{
    if (s->kind == STORE_PG)
        return pgcopy_count(s, t, n);
    return store_count(s, copy_sql_count(0, t), n);
}

int copy_rows_write(struct store *s, copy_write_fn fn, void *arg)
{
    struct copy_writer w = {.fn = fn, .arg = arg};
    int rc;

    if (s->kind == STORE_PG)
        return pgcopy_write(s, fn, arg);
    if ((rc = store_write_begin(s, &w.c)) != 0)
        return rc;
    rc = fn(&w, arg);
    return store_write_end(s, w.c, rc);
}

int copy_rows_insert(struct copy_writer *w, const struct copy_row *r, int *inserted)
{
    struct store_param p[COPY_COLS_MAX + 1];
    sqlite3_stmt *st = NULL;
    int rc;

    if (w->tx != NULL)
        return pgcopy_insert(w, r, inserted);
    copy_row_params(r, p);
    if ((rc = store_stmt(w->c, copy_sql_insert(0, r->t), &st)) != 0)
        return rc;
    store_bind_params(st, p);
    rc = store_step_done(w->c, st);
    store_stmt_done(st);
    if (rc == 0)
        *inserted = sqlite3_changes(w->c->db) > 0;
    return rc;
}

int copy_rows_fix_ids(struct copy_writer *w, const struct copy_table *t)
{
    return w->tx != NULL && t->identity ? pgcopy_fix_ids(w, t) : 0;
}
