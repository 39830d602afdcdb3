/* Outbox table: upstream operations retried until they succeed, surviving restarts, worked on
 * under leases (outbox.h). On SQLite every write runs in the single writer's BEGIN IMMEDIATE,
 * which serialises the processes sharing the file, so a take (one UPDATE ... RETURNING) is
 * atomic against every other taker. */
#include <string.h>

#include "core/err.h"
#include "pg_tables.h"
#include "store/outbox.h"
#include "store_int.h"

#define OUTBOX_COLS                                                                                \
    "id, acs_id, resource, op, attempts, next_attempt_ms, last_error, created_ms,"                 \
    " coalesce(app_user_id, ''), leased_by"

static const char SQL_ADD[] =
    "INSERT INTO outbox (acs_id, resource, op, next_attempt_ms, created_ms)"
    " VALUES (?1, ?2, ?3, ?4, ?4)";
static const char SQL_DUE[] = "SELECT " OUTBOX_COLS " FROM outbox WHERE next_attempt_ms <= ?1"
                              " ORDER BY next_attempt_ms, id LIMIT ?2";
/* The lease rule of outbox.h: a row is this process's (?me) to change when it holds the lease
 * or nobody does. */
#define OURS(me) " AND leased_by IN ('', " me ")"
static const char SQL_TAKE[] = "UPDATE outbox SET next_attempt_ms = ?2, leased_by = ?3"
                               " WHERE id IN (SELECT id FROM outbox WHERE next_attempt_ms <= ?1"
                               " ORDER BY next_attempt_ms, id LIMIT ?4) RETURNING " OUTBOX_COLS;
static const char SQL_DONE[] = "DELETE FROM outbox WHERE id = ?1" OURS("?2");
static const char SQL_RETRY[] = "UPDATE outbox SET attempts = attempts + 1, next_attempt_ms = ?2,"
                                " last_error = ?3, leased_by = '' WHERE id = ?1" OURS("?4");
static const char SQL_PENDING[] = "SELECT 1 FROM outbox WHERE acs_id = ?1 LIMIT 1";
static const char SQL_PENDING_USER[] =
    "SELECT acs_id FROM outbox WHERE app_user_id = ?1 AND op = 'delete' ORDER BY id LIMIT 1";
static const char SQL_LEASE[] =
    "UPDATE outbox SET next_attempt_ms = ?2, leased_by = ?3 WHERE id = ?1" OURS("?3");
static const char SQL_RELEASE[] =
    "UPDATE outbox SET next_attempt_ms = ?2, leased_by = '' WHERE id = ?1" OURS("?3");
static const char SQL_COUNT[] = "SELECT count(*) FROM outbox";
static const char SQL_NEXT[] = "SELECT min(next_attempt_ms) FROM outbox";
static const char SQL_GET[] = "SELECT " OUTBOX_COLS " FROM outbox WHERE id = ?1";
/* ?1 = 0: every row. A lease is current while its row is not due (outbox.h). */
#define RETRY_WHERE " WHERE (?1 = 0 OR id = ?1)"
static const char SQL_RETRY_COUNT[] =
    "SELECT count(*), coalesce(sum(leased_by <> '' AND next_attempt_ms > ?2), 0)"
    " FROM outbox" RETRY_WHERE;
static const char SQL_RETRY_NOW[] = "UPDATE outbox SET next_attempt_ms = ?2" RETRY_WHERE
                                    " AND leased_by = '' AND next_attempt_ms > ?2";

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
    if (rc == 0)
        rc = store_col_text(st, 9, r->leased_by, sizeof(r->leased_by));
    return rc;
}

/* A store_bind_fn binding an int64_t (a due time) to ?1. */
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

int store_outbox_take(struct store *s, int64_t now_ms, int64_t lease_ms, int limit,
                      struct store_outbox_row *rows, int *n)
{
    struct store_conn *c;
    sqlite3_stmt *st;
    int count = 0, row = 0;
    int rc = store_check_list(limit, rows, n);

    if (rc != 0 || lease_ms < 1 || now_ms > INT64_MAX - lease_ms)
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG)
        return pgstore_outbox_take(s, now_ms, now_ms + lease_ms, limit, rows, n);
    rc = store_write_begin(s, &c);
    if (rc != 0)
        return rc;
    rc = store_stmt(c, SQL_TAKE, &st);
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, now_ms);
        sqlite3_bind_int64(st, 2, now_ms + lease_ms);
        store_bind_text(st, 3, store_instance(s));
        sqlite3_bind_int64(st, 4, limit);
        /* SQLite makes every change at the first step and hands out the rows after; all are
         * read (the subquery's LIMIT bounds them) so the statement is done before the commit. */
        while ((rc = store_step(c, st, &row)) == 0 && row && count < limit) {
            rc = row_from_stmt(st, &rows[count]);
            if (rc != 0)
                break;
            count++;
        }
        store_stmt_done(st);
    }
    /* A row that cannot be read is not handed out, so nothing is leased: roll back. */
    rc = store_write_end(s, c, rc);
    if (rc == 0)
        *n = count;
    return rc;
}

int store_outbox_done(struct store *s, int64_t id)
{
    struct store_param p[] = {STORE_INT64(id), STORE_TEXT(store_instance(s)), STORE_END};

    if (s->kind == STORE_PG)
        return pgstore_outbox_done(s, id);
    return store_write_one(s, SQL_DONE, store_bind_params, p);
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
        store_bind_text(st, 4, store_instance(s));
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
    struct store_param p[] = {STORE_INT64(id), STORE_INT64(until_ms), STORE_TEXT(store_instance(s)),
                              STORE_END};

    if (s->kind == STORE_PG)
        return pgstore_outbox_lease(s, id, until_ms);
    return store_write_one(s, SQL_LEASE, store_bind_params, p);
}

int store_outbox_release(struct store *s, int64_t id, int64_t due_ms)
{
    struct store_param p[] = {STORE_INT64(id), STORE_INT64(due_ms), STORE_TEXT(store_instance(s)),
                              STORE_END};

    if (s->kind == STORE_PG)
        return pgstore_outbox_release(s, id, due_ms);
    return store_write_one(s, SQL_RELEASE, store_bind_params, p);
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

int store_outbox_get(struct store *s, int64_t id, struct store_outbox_row *out)
{
    if (id < 1 || out == NULL)
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG)
        return pgstore_outbox_get(s, id, out);
    return store_read_one(s, SQL_GET, int64_bind, &id, outbox_row, out);
}

int store_outbox_retry_now(struct store *s, int64_t id, int64_t now_ms,
                           struct store_outbox_retry *out)
{
    struct store_outbox_retry r = {0, 0, 0};
    struct store_conn *c;
    sqlite3_stmt *st;
    int row = 0;
    int rc;

    if (id < 0 || out == NULL)
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG)
        return pgstore_outbox_retry_now(s, id, now_ms, out);
    /* The count and the change in one write transaction, so the numbers describe the change. */
    if ((rc = store_write_begin(s, &c)) != 0)
        return rc;
    rc = store_stmt(c, SQL_RETRY_COUNT, &st);
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, now_ms);
        rc = store_step(c, st, &row);
        if (rc == 0 && row) {
            r.matched = sqlite3_column_int64(st, 0);
            r.leased = sqlite3_column_int64(st, 1);
        }
        store_stmt_done(st);
    }
    if (rc == 0 && (rc = store_stmt(c, SQL_RETRY_NOW, &st)) == 0) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, now_ms);
        rc = store_step_done(c, st);
        if (rc == 0)
            r.made_due = sqlite3_changes(c->db);
        store_stmt_done(st);
    }
    rc = store_write_end(s, c, rc);
    if (rc == 0)
        *out = r;
    return rc;
}
