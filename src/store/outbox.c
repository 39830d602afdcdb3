/* Outbox table: upstream operations retried until they succeed, surviving restarts. */
#include <string.h>

#include "core/err.h"
#include "pg_tables.h"
#include "store/outbox.h"
#include "store_int.h"

#define OUTBOX_COLS                                                                                \
    "id, acs_id, resource, op, attempts, next_attempt_ms, last_error, created_ms,"                 \
    " coalesce(app_user_id, '')"

static const char SQL_ADD[] =
    "INSERT INTO outbox (acs_id, resource, op, next_attempt_ms, created_ms)"
    " VALUES (?1, ?2, ?3, ?4, ?4)";
static const char SQL_DUE[] = "SELECT " OUTBOX_COLS " FROM outbox WHERE next_attempt_ms <= ?1"
                              " ORDER BY next_attempt_ms, id LIMIT ?2";
static const char SQL_DONE[] = "DELETE FROM outbox WHERE id = ?1";
static const char SQL_RETRY[] = "UPDATE outbox SET attempts = attempts + 1, next_attempt_ms = ?2,"
                                " last_error = ?3 WHERE id = ?1";
static const char SQL_PENDING[] = "SELECT 1 FROM outbox WHERE acs_id = ?1 LIMIT 1";
static const char SQL_PENDING_USER[] =
    "SELECT acs_id FROM outbox WHERE app_user_id = ?1 AND op = 'delete' ORDER BY id LIMIT 1";
static const char SQL_LEASE[] = "UPDATE outbox SET next_attempt_ms = ?2 WHERE id = ?1";
static const char SQL_COUNT[] = "SELECT count(*) FROM outbox";
static const char SQL_NEXT[] = "SELECT min(next_attempt_ms) FROM outbox";

int store_outbox_add(struct store *s, const char *acs_id, const char *resource, const char *op,
                     int64_t now_ms, int64_t *id)
{
    struct store_param p[] = {STORE_TEXT(acs_id), STORE_TEXT(resource), STORE_TEXT(op),
                              STORE_INT64(now_ms), STORE_END};
    struct store_write_info info;
    int rc;

    if (store_check_str(acs_id, 1, STORE_ID_MAX) != 0 ||
        store_check_str(resource, 1, STORE_ID_MAX) != 0 || op == NULL ||
        (strcmp(op, "delete") != 0 && strcmp(op, "revoke") != 0))
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG)
        return pgstore_outbox_add(s, acs_id, resource, op, now_ms, id);
    rc = store_write_run(s, SQL_ADD, store_bind_params, p, &info);
    if (rc == 0 && id != NULL)
        *id = info.rowid;
    return rc;
}

static int row_from_stmt(sqlite3_stmt *st, struct store_outbox_row *r)
{
    int rc;

    r->id = sqlite3_column_int64(st, 0);
    rc = store_col_text(st, 1, r->acs_id, sizeof(r->acs_id));
    if (rc == 0)
        rc = store_col_text(st, 2, r->resource, sizeof(r->resource));
    if (rc == 0)
        rc = store_col_text(st, 3, r->op, sizeof(r->op));
    r->attempts = sqlite3_column_int(st, 4);
    r->next_attempt_ms = sqlite3_column_int64(st, 5);
    if (rc == 0)
        rc = store_col_text(st, 6, r->last_error, sizeof(r->last_error));
    r->created_ms = sqlite3_column_int64(st, 7);
    if (rc == 0)
        rc = store_col_text(st, 8, r->app_user_id, sizeof(r->app_user_id));
    return rc;
}

/* A store_bind_fn binding an int64_t (a due time, a row id) to ?1. */
static void int64_bind(sqlite3_stmt *st, const void *arg)
{
    sqlite3_bind_int64(st, 1, *(const int64_t *)arg);
}

/* A store_row_fn for store_outbox_due. */
static int outbox_row(sqlite3_stmt *st, void *out)
{
    return row_from_stmt(st, out);
}

int store_outbox_due(struct store *s, int64_t now_ms, int limit, struct store_outbox_row *rows,
                     int *n)
{
    int rc = store_check_list(limit, rows, n);

    if (rc != 0)
        return rc;
    if (s->kind == STORE_PG)
        return pgstore_outbox_due(s, now_ms, limit, rows, n);
    return store_list_rows(s, SQL_DUE, int64_bind, &now_ms, 2, limit, rows, sizeof(*rows),
                           outbox_row, n);
}

int store_outbox_done(struct store *s, int64_t id)
{
    if (s->kind == STORE_PG)
        return pgstore_outbox_done(s, id);
    return store_write_one(s, SQL_DONE, int64_bind, &id);
}

int store_outbox_retry_later(struct store *s, int64_t id, int64_t next_ms, const char *last_error)
{
    struct store_conn *c;
    sqlite3_stmt *st;
    char err[STORE_OUTBOX_ERROR_MAX + 1];
    size_t len = last_error == NULL ? 0 : strnlen(last_error, STORE_OUTBOX_ERROR_MAX);
    int rc;

    /* Truncate rather than fail: losing the tail of a message must not stop the retry. */
    if (len > 0)
        memcpy(err, last_error, len);
    err[len] = '\0';
    if (s->kind == STORE_PG)
        return pgstore_outbox_retry_later(s, id, next_ms, err);
    rc = store_write_begin(s, &c);
    if (rc != 0)
        return rc;
    rc = store_stmt(c, SQL_RETRY, &st);
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, next_ms);
        store_bind_text(st, 3, err);
        rc = store_step_done(c, st);
        store_stmt_done(st);
        if (rc == 0 && sqlite3_changes(c->db) == 0)
            rc = TV_ERR_NOT_FOUND;
    }
    return store_write_end(s, c, rc);
}

int store_outbox_pending_for(struct store *s, const char *acs_id, int *found)
{
    int64_t v = 0;
    int has = 0;
    int rc = store_check_str(acs_id, 1, STORE_ID_MAX);

    if (rc != 0 || found == NULL)
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG)
        return pgstore_outbox_pending_for(s, acs_id, found);
    rc = store_query_int64(s, SQL_PENDING, acs_id, &v, &has);
    if (rc == 0)
        *found = has;
    return rc;
}

int store_outbox_pending_for_user(struct store *s, const char *app_user_id, int *found,
                                  char *acs_id)
{
    struct store_conn *c;
    sqlite3_stmt *st = NULL;
    int row = 0;
    int rc = store_check_str(app_user_id, 1, STORE_ID_MAX);

    if (rc != 0 || found == NULL)
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG)
        return pgstore_outbox_pending_for_user(s, app_user_id, found, acs_id);
    rc = store_read_begin(s, &c);
    if (rc != 0)
        return rc;
    rc = store_stmt(c, SQL_PENDING_USER, &st);
    if (rc == 0) {
        store_bind_text(st, 1, app_user_id);
        rc = store_step(c, st, &row);
        if (rc == 0 && row && acs_id != NULL)
            rc = store_col_text(st, 0, acs_id, STORE_ID_MAX + 1);
        store_stmt_done(st);
    }
    store_read_end(s, c);
    if (rc == 0)
        *found = row;
    return rc;
}

int store_outbox_lease(struct store *s, int64_t id, int64_t until_ms)
{
    struct store_conn *c;
    sqlite3_stmt *st;
    int rc;

    if (s->kind == STORE_PG)
        return pgstore_outbox_lease(s, id, until_ms);
    rc = store_write_begin(s, &c);
    if (rc != 0)
        return rc;
    rc = store_stmt(c, SQL_LEASE, &st);
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, until_ms);
        rc = store_step_done(c, st);
        store_stmt_done(st);
        if (rc == 0 && sqlite3_changes(c->db) == 0)
            rc = TV_ERR_NOT_FOUND;
    }
    return store_write_end(s, c, rc);
}

int store_outbox_count(struct store *s, int64_t *n)
{
    if (s->kind == STORE_PG)
        return n == NULL ? TV_ERR_INVALID : pgstore_outbox_count(s, n);
    return store_count(s, SQL_COUNT, n);
}

int store_outbox_next_due(struct store *s, int64_t *next_ms, int *found)
{
    int64_t v = 0;
    int has = 0;
    int rc;

    if (next_ms == NULL || found == NULL)
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG)
        return pgstore_outbox_next_due(s, next_ms, found);
    rc = store_query_int64(s, SQL_NEXT, NULL, &v, &has);

    if (rc == 0) {
        *found = has;
        if (has)
            *next_ms = v;
    }
    return rc;
}
