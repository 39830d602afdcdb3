/* Outbox table on PostgreSQL (outbox.c is the SQLite sibling; the public functions there check
 * their arguments and call these). */
#include <string.h>

#include "core/err.h"
#include "pg_int.h"
#include "pg_tables.h"
#include "store/outbox.h"

#define OUTBOX_COLS                                                                                \
    "id, acs_id, resource, op, attempts, next_attempt_ms, last_error, created_ms,"                 \
    " coalesce(app_user_id, '')"

/* RETURNING id replaces SQLite's last_insert_rowid. */
static const char SQL_ADD[] =
    "INSERT INTO outbox (acs_id, resource, op, next_attempt_ms, created_ms)"
    " VALUES ($1, $2, $3, $4, $4) RETURNING id";
static const char SQL_DUE[] = "SELECT " OUTBOX_COLS " FROM outbox WHERE next_attempt_ms <= $1"
                              " ORDER BY next_attempt_ms, id LIMIT $2";
static const char SQL_DONE[] = "DELETE FROM outbox WHERE id = $1";
static const char SQL_RETRY[] = "UPDATE outbox SET attempts = attempts + 1, next_attempt_ms = $2,"
                                " last_error = $3 WHERE id = $1";
static const char SQL_PENDING[] = "SELECT 1 FROM outbox WHERE acs_id = $1 LIMIT 1";
static const char SQL_PENDING_USER[] =
    "SELECT acs_id FROM outbox WHERE app_user_id = $1 AND op = 'delete' ORDER BY id LIMIT 1";
static const char SQL_LEASE[] = "UPDATE outbox SET next_attempt_ms = $2 WHERE id = $1";
static const char SQL_COUNT[] = "SELECT count(*) FROM outbox";
static const char SQL_NEXT[] = "SELECT min(next_attempt_ms) FROM outbox";

int pgstore_outbox_add(struct store *s, const char *acs_id, const char *resource, const char *op,
                       int64_t now_ms, int64_t *id)
{
    struct store_param p[] = {STORE_TEXT(acs_id), STORE_TEXT(resource), STORE_TEXT(op),
                              STORE_INT64(now_ms), STORE_END};
    PGresult *r = NULL;
    int rc = pgs_exec(s, SQL_ADD, p, 0, &r);

    if (rc == 0 && PQntuples(r) != 1)
        rc = TV_ERR_INTERNAL;
    if (rc == 0 && id != NULL)
        *id = pgs_col_int64(r, 0, 0);
    PQclear(r);
    return rc;
}

static int outbox_row(const PGresult *r, int row, void *out)
{
    struct store_outbox_row *o = out;
    int rc;

    o->id = pgs_col_int64(r, row, 0);
    rc = pgs_col_text(r, row, 1, o->acs_id, sizeof(o->acs_id));
    if (rc == 0)
        rc = pgs_col_text(r, row, 2, o->resource, sizeof(o->resource));
    if (rc == 0)
        rc = pgs_col_text(r, row, 3, o->op, sizeof(o->op));
    o->attempts = (int)pgs_col_int64(r, row, 4);
    o->next_attempt_ms = pgs_col_int64(r, row, 5);
    if (rc == 0)
        rc = pgs_col_text(r, row, 6, o->last_error, sizeof(o->last_error));
    o->created_ms = pgs_col_int64(r, row, 7);
    if (rc == 0)
        rc = pgs_col_text(r, row, 8, o->app_user_id, sizeof(o->app_user_id));
    return rc;
}

int pgstore_outbox_due(struct store *s, int64_t now_ms, int limit, struct store_outbox_row *rows,
                       int *n)
{
    struct store_param p[] = {STORE_INT64(now_ms), STORE_INT64(limit), STORE_END};

    return pgs_list_rows(s, SQL_DUE, p, limit, rows, sizeof(*rows), outbox_row, n);
}

int pgstore_outbox_done(struct store *s, int64_t id)
{
    struct store_param p[] = {STORE_INT64(id), STORE_END};

    return pgs_write_one(s, SQL_DONE, p);
}

int pgstore_outbox_retry_later(struct store *s, int64_t id, int64_t next_ms, const char *err)
{
    struct store_param p[] = {STORE_INT64(id), STORE_INT64(next_ms), STORE_TEXT(err), STORE_END};

    return pgs_write_one(s, SQL_RETRY, p);
}

int pgstore_outbox_pending_for(struct store *s, const char *acs_id, int *found)
{
    int64_t v = 0;

    return pgs_query_int64(s, SQL_PENDING, acs_id, &v, found);
}

/* What pgstore_outbox_pending_for_user reads: the ACS id, when the caller wants it. */
static int pending_row(const PGresult *r, int row, void *out)
{
    return out == NULL ? 0 : pgs_col_text(r, row, 0, out, STORE_ID_MAX + 1);
}

int pgstore_outbox_pending_for_user(struct store *s, const char *app_user_id, int *found,
                                    char *acs_id)
{
    struct store_param p[] = {STORE_TEXT(app_user_id), STORE_END};
    int rc = pgs_read_one(s, SQL_PENDING_USER, p, pending_row, acs_id);

    if (rc == 0 || rc == TV_ERR_NOT_FOUND) {
        *found = rc == 0;
        rc = 0;
    }
    return rc;
}

int pgstore_outbox_lease(struct store *s, int64_t id, int64_t until_ms)
{
    struct store_param p[] = {STORE_INT64(id), STORE_INT64(until_ms), STORE_END};

    return pgs_write_one(s, SQL_LEASE, p);
}

int pgstore_outbox_count(struct store *s, int64_t *n)
{
    return pgs_count(s, SQL_COUNT, n);
}

int pgstore_outbox_next_due(struct store *s, int64_t *next_ms, int *found)
{
    int64_t v = 0;
    int has = 0;
    int rc = pgs_query_int64(s, SQL_NEXT, NULL, &v, &has);

    if (rc == 0) {
        *found = has;
        if (has)
            *next_ms = v;
    }
    return rc;
}
