/* Mappings table: app user (or standalone identity) -> ACS identity, bound to its resource. */
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "pg_tables.h"
#include "store/users.h"
#include "store_int.h"

#define USER_COLS                                                                                  \
    "coalesce(app_user_id, ''), acs_id, resource, created_ms, last_issued_ms, revoked_ms"

static const char SQL_GET[] = "SELECT " USER_COLS " FROM mappings WHERE app_user_id = ?1";
static const char SQL_GET_BY_ACS[] = "SELECT " USER_COLS " FROM mappings WHERE acs_id = ?1";
static const char SQL_INSERT[] =
    "INSERT INTO mappings (app_user_id, acs_id, resource, created_ms, last_issued_ms, revoked_ms)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
/* max() keeps the times monotonic when two requests finish out of order. */
static const char SQL_TOUCH[] =
    "UPDATE mappings SET last_issued_ms = max(last_issued_ms, ?2) WHERE acs_id = ?1";
static const char SQL_REVOKED[] =
    "UPDATE mappings SET revoked_ms = max(revoked_ms, ?2) WHERE acs_id = ?1";
static const char SQL_LIST[] = "SELECT " USER_COLS " FROM mappings"
                               " WHERE app_user_id IS NOT NULL AND app_user_id > ?1"
                               " ORDER BY app_user_id LIMIT ?2";
static const char SQL_COUNT[] = "SELECT count(*) FROM mappings";
static const char SQL_RESOURCE[] = "SELECT resource, app_user_id FROM mappings WHERE acs_id = ?1";
static const char SQL_DELETE[] = "DELETE FROM mappings WHERE acs_id = ?1";
static const char SQL_OUTBOX_ADD[] =
    "INSERT INTO outbox (acs_id, resource, op, next_attempt_ms, created_ms, app_user_id)"
    " VALUES (?1, ?2, 'delete', ?4, ?3, ?5)";

static int user_from_row(sqlite3_stmt *st, struct store_user *u)
{
    int rc = store_col_text(st, 0, u->app_user_id, sizeof(u->app_user_id));

    if (rc == 0)
        rc = store_col_text(st, 1, u->acs_id, sizeof(u->acs_id));
    if (rc == 0)
        rc = store_col_text(st, 2, u->resource, sizeof(u->resource));
    u->created_ms = sqlite3_column_int64(st, 3);
    u->last_issued_ms = sqlite3_column_int64(st, 4);
    u->revoked_ms = sqlite3_column_int64(st, 5);
    return rc;
}

/* A store_row_fn for one user. */
static int user_row(sqlite3_stmt *st, void *out)
{
    return user_from_row(st, out);
}

/* One-row lookup by a text key on a reader connection. */
static int user_get_one(struct store *s, const char *sql, const char *key, struct store_user *out)
{
    struct store_user u;

    return store_get_by_key(s, sql, key, STORE_ID_MAX, user_row, &u, out, sizeof u);
}

int store_user_get(struct store *s, const char *app_user_id, struct store_user *out)
{
    if (s->kind == STORE_PG)
        return pgstore_user_get(s, app_user_id, out);
    return user_get_one(s, SQL_GET, app_user_id, out);
}

int store_user_get_by_acs(struct store *s, const char *acs_id, struct store_user *out)
{
    if (s->kind == STORE_PG)
        return pgstore_user_get_by_acs(s, acs_id, out);
    return user_get_one(s, SQL_GET_BY_ACS, acs_id, out);
}

int store_user_insert(struct store *s, const struct store_user *u)
{
    if (u == NULL || store_check_str(u->app_user_id, 0, STORE_ID_MAX) != 0 ||
        store_check_str(u->acs_id, 1, STORE_ID_MAX) != 0 ||
        store_check_str(u->resource, 1, STORE_ID_MAX) != 0)
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG)
        return pgstore_user_insert(s, u);
    struct store_param p[] = {STORE_TEXT_OR_NULL(u->app_user_id),
                              STORE_TEXT(u->acs_id),
                              STORE_TEXT(u->resource),
                              STORE_INT64(u->created_ms),
                              STORE_INT64(u->last_issued_ms),
                              STORE_INT64(u->revoked_ms),
                              STORE_END};
    return store_write_run(s, SQL_INSERT, store_bind_params, p, NULL);
}

/* An UPDATE of one mapping by ACS id; TV_ERR_NOT_FOUND when no row matched. */
static int user_update_ms(struct store *s, const char *sql, const char *acs_id, int64_t ms)
{
    struct store_key_ms k = {acs_id, ms};
    int rc = store_check_str(acs_id, 1, STORE_ID_MAX);

    if (rc != 0)
        return rc;
    return store_write_one(s, sql, store_bind_key_ms, &k);
}

int store_user_touch_issued(struct store *s, const char *acs_id, int64_t ms)
{
    if (s->kind == STORE_PG && store_check_str(acs_id, 1, STORE_ID_MAX) == 0)
        return pgstore_user_touch_issued(s, acs_id, ms);
    return user_update_ms(s, SQL_TOUCH, acs_id, ms);
}

int store_user_set_revoked(struct store *s, const char *acs_id, int64_t ms)
{
    if (s->kind == STORE_PG && store_check_str(acs_id, 1, STORE_ID_MAX) == 0)
        return pgstore_user_set_revoked(s, acs_id, ms);
    return user_update_ms(s, SQL_REVOKED, acs_id, ms);
}

int store_user_invalidate(struct store *s, const char *acs_id)
{
    if (store_check_str(acs_id, 1, STORE_ID_MAX) != 0)
        return TV_ERR_INVALID;
    return s->kind == STORE_PG ? pgstore_user_invalidate(s, acs_id) : 0;
}

int store_user_list(struct store *s, const char *after, int limit, struct store_user *out, int *n)
{
    int rc = store_check_list(limit, out, n);

    if (rc != 0 || (after != NULL && store_check_str(after, 0, STORE_ID_MAX) != 0))
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG)
        return pgstore_user_list(s, after, limit, out, n);
    return store_list_rows(s, SQL_LIST, store_bind_after, after, 2, limit, out, sizeof(*out),
                           user_row, n);
}

int store_user_list_kept(struct store *s, const char *after, int limit, store_user_keep_fn keep,
                         void *ctx, struct store_user *out, int *n)
{
    struct store_user *scratch;
    char cursor[STORE_ID_MAX + 1];
    int have = 0, got = 0, need;
    int rc = store_check_list(limit, out, n);

    if (rc != 0 || keep == NULL || (after != NULL && store_check_str(after, 0, STORE_ID_MAX) != 0))
        return TV_ERR_INVALID;
    if ((scratch = calloc((size_t)limit, sizeof *scratch)) == NULL)
        return TV_ERR_NOMEM;
    /* The cursor inside the loop may be a passed-over row's id: the caller never sees it. */
    (void)buf_copy_str(cursor, sizeof cursor, after);
    do {
        need = limit - have;
        rc = store_user_list(s, cursor, need, scratch, &got);
        if (rc != 0)
            break;
        for (int i = 0; i < got; i++) {
            if (keep(&scratch[i], ctx))
                out[have++] = scratch[i];
        }
        if (got > 0)
            (void)buf_copy_str(cursor, sizeof cursor, scratch[got - 1].app_user_id);
    } while (have < limit && got == need);
    free(scratch);
    if (rc == 0)
        *n = have;
    return rc;
}

int store_user_count(struct store *s, int64_t *n)
{
    if (s->kind == STORE_PG)
        return n == NULL ? TV_ERR_INVALID : pgstore_user_count(s, n);
    return store_count(s, SQL_COUNT, n);
}

int store_user_delete_begin(struct store *s, const char *acs_id, int64_t now_ms, int64_t *outbox_id)
{
    return store_user_delete_begin_due(s, acs_id, now_ms, now_ms, outbox_id);
}

int store_user_delete_begin_due(struct store *s, const char *acs_id, int64_t now_ms, int64_t due_ms,
                                int64_t *outbox_id)
{
    struct store_conn *c;
    sqlite3_stmt *st = NULL;
    char resource[STORE_ID_MAX + 1];
    char app_user[STORE_ID_MAX + 1];
    int64_t id = 0;
    int row = 0;
    int rc = store_check_str(acs_id, 1, STORE_ID_MAX);

    if (rc != 0)
        return rc;
    if (s->kind == STORE_PG)
        return pgstore_user_delete_begin_due(s, acs_id, now_ms, due_ms, outbox_id);
    rc = store_write_begin(s, &c);
    if (rc != 0)
        return rc;
    /* Read, delete and queue under one write lock: no request can see the mapping gone
     * without the outbox row, and a crash leaves either both changes or neither. */
    rc = store_stmt(c, SQL_RESOURCE, &st);
    if (rc != 0)
        goto end;
    store_bind_text(st, 1, acs_id);
    rc = store_step(c, st, &row);
    if (rc == 0 && !row)
        rc = TV_ERR_NOT_FOUND;
    if (rc == 0)
        rc = store_col_text(st, 0, resource, sizeof(resource));
    app_user[0] = '\0';
    if (rc == 0 && sqlite3_column_type(st, 1) != SQLITE_NULL)
        rc = store_col_text(st, 1, app_user, sizeof(app_user));
    store_stmt_done(st);
    if (rc != 0)
        goto end;
    rc = store_stmt(c, SQL_DELETE, &st);
    if (rc != 0)
        goto end;
    store_bind_text(st, 1, acs_id);
    rc = store_step_done(c, st);
    store_stmt_done(st);
    if (rc != 0)
        goto end;
    rc = store_stmt(c, SQL_OUTBOX_ADD, &st);
    if (rc != 0)
        goto end;
    store_bind_text(st, 1, acs_id);
    store_bind_text(st, 2, resource);
    sqlite3_bind_int64(st, 3, now_ms);
    sqlite3_bind_int64(st, 4, due_ms);
    if (app_user[0] != '\0')
        store_bind_text(st, 5, app_user);
    else
        sqlite3_bind_null(st, 5);
    rc = store_step_done(c, st);
    store_stmt_done(st);
    id = sqlite3_last_insert_rowid(c->db);
end:
    rc = store_write_end(s, c, rc);
    if (rc == 0 && outbox_id != NULL)
        *outbox_id = id;
    return rc;
}
