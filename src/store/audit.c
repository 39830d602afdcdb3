/* Audit table: append-only record of who did what to which identity, with the outcome. */
#include <string.h>

#include "core/err.h"
#include "pg_tables.h"
#include "store/audit.h"
#include "store_int.h"

static const char SQL_ADD[] =
    "INSERT INTO audit (ts_ms, request_id, caller, action, app_user_id, acs_id, outcome, detail)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
/* NULL parameters match everything, so one cached statement serves every filter. */
static const char SQL_LIST[] =
    "SELECT id, ts_ms, request_id, caller, action, app_user_id, acs_id, outcome, detail"
    " FROM audit WHERE (?1 = 0 OR id < ?1) AND (?2 IS NULL OR app_user_id = ?2)"
    " AND (?3 IS NULL OR acs_id = ?3) AND (?4 IS NULL OR action = ?4)"
    " ORDER BY id DESC LIMIT ?5";
/* The subquery walks the ts_ms index (migration 0005) from the oldest row and stops after
 * ?2 rows, so a batch never scans the table. */
static const char SQL_PRUNE[] = "DELETE FROM audit WHERE id IN"
                                " (SELECT id FROM audit WHERE ts_ms < ?1 ORDER BY ts_ms LIMIT ?2)";

/* The struct's arrays are NUL-terminated by contract; strnlen guards against one that is not
 * rather than reading past it. */
static int bind_field(sqlite3_stmt *st, int idx, const char *field, size_t size)
{
    size_t n = strnlen(field, size);

    if (n == size)
        return TV_ERR_INVALID;
    return sqlite3_bind_text(st, idx, field, (int)n, SQLITE_STATIC) == SQLITE_OK ? 0
                                                                                 : TV_ERR_INTERNAL;
}

/* Whether every text field of a ends within its array (the backends' shared check). */
static int audit_fields_ok(const struct store_audit *a)
{
    return strnlen(a->request_id, sizeof(a->request_id)) < sizeof(a->request_id) &&
           strnlen(a->caller, sizeof(a->caller)) < sizeof(a->caller) &&
           strnlen(a->action, sizeof(a->action)) < sizeof(a->action) &&
           strnlen(a->app_user_id, sizeof(a->app_user_id)) < sizeof(a->app_user_id) &&
           strnlen(a->acs_id, sizeof(a->acs_id)) < sizeof(a->acs_id) &&
           strnlen(a->outcome, sizeof(a->outcome)) < sizeof(a->outcome) &&
           strnlen(a->detail, sizeof(a->detail)) < sizeof(a->detail);
}

int store_audit_add(struct store *s, const struct store_audit *a)
{
    struct store_conn *c;
    sqlite3_stmt *st;
    int rc = TV_ERR_INVALID;

    if (a == NULL || a->action[0] == '\0' || a->outcome[0] == '\0' || !audit_fields_ok(a))
        return rc;
    if (s->kind == STORE_PG)
        return pgstore_audit_add(s, a);
    rc = store_write_begin(s, &c);
    if (rc != 0)
        return rc;
    rc = store_stmt(c, SQL_ADD, &st);
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, a->ts_ms);
        rc = bind_field(st, 2, a->request_id, sizeof(a->request_id));
        if (rc == 0)
            rc = bind_field(st, 3, a->caller, sizeof(a->caller));
        if (rc == 0)
            rc = bind_field(st, 4, a->action, sizeof(a->action));
        if (rc == 0)
            rc = bind_field(st, 5, a->app_user_id, sizeof(a->app_user_id));
        if (rc == 0)
            rc = bind_field(st, 6, a->acs_id, sizeof(a->acs_id));
        if (rc == 0)
            rc = bind_field(st, 7, a->outcome, sizeof(a->outcome));
        if (rc == 0)
            rc = bind_field(st, 8, a->detail, sizeof(a->detail));
        if (rc == 0)
            rc = store_step_done(c, st);
        store_stmt_done(st);
    }
    return store_write_end(s, c, rc);
}

static int audit_from_row(sqlite3_stmt *st, struct store_audit *a)
{
    int rc;

    a->id = sqlite3_column_int64(st, 0);
    a->ts_ms = sqlite3_column_int64(st, 1);
    rc = store_col_text(st, 2, a->request_id, sizeof(a->request_id));
    if (rc == 0)
        rc = store_col_text(st, 3, a->caller, sizeof(a->caller));
    if (rc == 0)
        rc = store_col_text(st, 4, a->action, sizeof(a->action));
    if (rc == 0)
        rc = store_col_text(st, 5, a->app_user_id, sizeof(a->app_user_id));
    if (rc == 0)
        rc = store_col_text(st, 6, a->acs_id, sizeof(a->acs_id));
    if (rc == 0)
        rc = store_col_text(st, 7, a->outcome, sizeof(a->outcome));
    if (rc == 0)
        rc = store_col_text(st, 8, a->detail, sizeof(a->detail));
    return rc;
}

/* A store_row_fn for the list. */
static int audit_row(sqlite3_stmt *st, void *out)
{
    return audit_from_row(st, out);
}

int store_audit_list(struct store *s, const struct store_audit_filter *f, int limit,
                     struct store_audit *out, int *n)
{
    static const struct store_audit_filter all = {0, NULL, NULL, NULL};
    int rc = store_check_list(limit, out, n);

    if (rc != 0)
        return rc;
    if (f == NULL)
        f = &all;
    if (s->kind == STORE_PG)
        return pgstore_audit_list(s, f, limit, out, n);
    struct store_param p[] = {STORE_INT64(f->before_id), STORE_TEXT(f->app_user_id),
                              STORE_TEXT(f->acs_id), STORE_TEXT(f->action), STORE_END};
    return store_list_rows(s, SQL_LIST, store_bind_params, p, 5, limit, out, sizeof(*out),
                           audit_row, n);
}

int store_audit_prune(struct store *s, int64_t before_ms, int limit, int64_t *deleted)
{
    struct store_param p[] = {STORE_INT64(before_ms), STORE_INT64(limit), STORE_END};
    struct store_write_info info;
    int rc;

    if (limit < 1 || limit > STORE_PRUNE_MAX)
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG)
        return pgstore_audit_prune(s, before_ms, limit, deleted);
    rc = store_write_run(s, SQL_PRUNE, store_bind_params, p, &info);
    if (rc == 0 && deleted != NULL)
        *deleted = info.changes;
    return rc;
}
