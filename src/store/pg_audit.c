/* Audit table on PostgreSQL (audit.c is the SQLite sibling; the public functions there check
 * their arguments, including that every text field is NUL-terminated within its array, and
 * call these). */
#include <string.h>

#include "core/err.h"
#include "pg_int.h"
#include "pg_tables.h"
#include "store/audit.h"

static const char SQL_ADD[] =
    "INSERT INTO audit (ts_ms, request_id, caller, action, app_user_id, acs_id, outcome, detail)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
/* NULL parameters match everything, so one statement serves every filter; the casts give the
 * parameters a type where `IS NULL` alone would leave it open. */
static const char SQL_LIST[] =
    "SELECT id, ts_ms, request_id, caller, action, app_user_id, acs_id, outcome, detail"
    " FROM audit WHERE ($1::bigint = 0 OR id < $1::bigint)"
    " AND ($2::text IS NULL OR app_user_id = $2::text)"
    " AND ($3::text IS NULL OR acs_id = $3::text) AND ($4::text IS NULL OR action = $4::text)"
    " ORDER BY id DESC LIMIT $5";
/* The subquery walks the ts_ms index from the oldest row and stops after $2 rows. */
static const char SQL_PRUNE[] = "DELETE FROM audit WHERE id IN"
                                " (SELECT id FROM audit WHERE ts_ms < $1 ORDER BY ts_ms LIMIT $2)";

int pgstore_audit_add(struct store *s, const struct store_audit *a)
{
    struct store_param p[] = {
        STORE_INT64(a->ts_ms),  STORE_TEXT(a->request_id),  STORE_TEXT(a->caller),
        STORE_TEXT(a->action),  STORE_TEXT(a->app_user_id), STORE_TEXT(a->acs_id),
        STORE_TEXT(a->outcome), STORE_TEXT(a->detail),      STORE_END};

    return pgs_write_run(s, SQL_ADD, p, NULL);
}

static int audit_row(const PGresult *r, int row, void *out)
{
    struct store_audit *a = out;
    int rc;

    a->id = pgs_col_int64(r, row, 0);
    a->ts_ms = pgs_col_int64(r, row, 1);
    rc = pgs_col_text(r, row, 2, a->request_id, sizeof(a->request_id));
    if (rc == 0)
        rc = pgs_col_text(r, row, 3, a->caller, sizeof(a->caller));
    if (rc == 0)
        rc = pgs_col_text(r, row, 4, a->action, sizeof(a->action));
    if (rc == 0)
        rc = pgs_col_text(r, row, 5, a->app_user_id, sizeof(a->app_user_id));
    if (rc == 0)
        rc = pgs_col_text(r, row, 6, a->acs_id, sizeof(a->acs_id));
    if (rc == 0)
        rc = pgs_col_text(r, row, 7, a->outcome, sizeof(a->outcome));
    if (rc == 0)
        rc = pgs_col_text(r, row, 8, a->detail, sizeof(a->detail));
    return rc;
}

int pgstore_audit_list(struct store *s, const struct store_audit_filter *f, int limit,
                       struct store_audit *out, int *n)
{
    struct store_param p[] = {STORE_INT64(f->before_id), STORE_TEXT(f->app_user_id),
                              STORE_TEXT(f->acs_id),     STORE_TEXT(f->action),
                              STORE_INT64(limit),        STORE_END};

    return pgs_list_rows(s, SQL_LIST, p, limit, out, sizeof(*out), audit_row, n);
}

int pgstore_audit_prune(struct store *s, int64_t before_ms, int limit, int64_t *deleted)
{
    struct store_param p[] = {STORE_INT64(before_ms), STORE_INT64(limit), STORE_END};

    return pgs_write_run(s, SQL_PRUNE, p, deleted);
}
