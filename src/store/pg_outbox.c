/* Outbox table on PostgreSQL (outbox.c is the SQLite sibling; the public functions there check
 * their arguments and call these). A take locks the due rows it picks with FOR UPDATE SKIP
 * LOCKED, so concurrent takers (other replicas) pass over each other's rows instead of waiting
 * for them or taking them twice. */
#include <string.h>

#include "core/err.h"
#include "pg_int.h"
#include "pg_tables.h"
#include "store/outbox.h"

#define OUTBOX_COLS                                                                                \
    "id, acs_id, resource, op, attempts, next_attempt_ms, last_error, created_ms,"                 \
    " coalesce(app_user_id, ''), leased_by"

/* RETURNING id replaces SQLite's last_insert_rowid. */
static const char SQL_ADD[] =
    "INSERT INTO outbox (acs_id, resource, op, next_attempt_ms, created_ms)"
    " VALUES ($1, $2, $3, $4, $4) RETURNING id";
static const char SQL_DUE[] = "SELECT " OUTBOX_COLS " FROM outbox WHERE next_attempt_ms <= $1"
                              " ORDER BY next_attempt_ms, id LIMIT $2";
/* MATERIALIZED: the locked pick runs exactly once, so the UPDATE cannot see a second,
 * different set of rows (an IN (subquery) may be planned as a re-scanned semi-join). A row a
 * concurrent taker committed meanwhile is re-checked against next_attempt_ms <= $1 under READ
 * COMMITTED before it is locked, so a freshly leased row is passed over. */
static const char SQL_TAKE[] =
    "WITH pick AS MATERIALIZED (SELECT id FROM outbox WHERE next_attempt_ms <= $1"
    " ORDER BY next_attempt_ms, id LIMIT $4 FOR UPDATE SKIP LOCKED)"
    " UPDATE outbox o SET next_attempt_ms = $2, leased_by = $3 FROM pick WHERE o.id = pick.id"
    " RETURNING o.id, o.acs_id, o.resource, o.op, o.attempts, o.next_attempt_ms, o.last_error,"
    " o.created_ms, coalesce(o.app_user_id, ''), o.leased_by";
/* The lease rule of outbox.h: a row is this process's ($me) to change when it holds the lease
 * or nobody does. */
#define OURS(me) " AND leased_by IN ('', " me ")"
static const char SQL_DONE[] = "DELETE FROM outbox WHERE id = $1" OURS("$2");
static const char SQL_RETRY[] = "UPDATE outbox SET attempts = attempts + 1, next_attempt_ms = $2,"
                                " last_error = $3, leased_by = '' WHERE id = $1" OURS("$4");
static const char SQL_PENDING[] = "SELECT 1 FROM outbox WHERE acs_id = $1 LIMIT 1";
static const char SQL_PENDING_USER[] =
    "SELECT acs_id FROM outbox WHERE app_user_id = $1 AND op = 'delete' ORDER BY id LIMIT 1";
static const char SQL_LEASE[] =
    "UPDATE outbox SET next_attempt_ms = $2, leased_by = $3 WHERE id = $1" OURS("$3");
static const char SQL_RELEASE[] =
    "UPDATE outbox SET next_attempt_ms = $2, leased_by = '' WHERE id = $1" OURS("$3");
static const char SQL_COUNT[] = "SELECT count(*) FROM outbox";
static const char SQL_NEXT[] = "SELECT min(next_attempt_ms) FROM outbox";
static const char SQL_GET[] = "SELECT " OUTBOX_COLS " FROM outbox WHERE id = $1";
/* $1 = 0: every row. One statement: the counts read the snapshot before the UPDATE, which
 * changes no leased row, so they describe the change. */
#define RETRY_WHERE " WHERE ($1::bigint = 0 OR id = $1::bigint)"
static const char SQL_RETRY_NOW[] =
    "WITH upd AS (UPDATE outbox SET next_attempt_ms = $2::bigint" RETRY_WHERE
    " AND leased_by = '' AND next_attempt_ms > $2::bigint RETURNING id)"
    " SELECT (SELECT count(*) FROM outbox" RETRY_WHERE "),"
    " (SELECT count(*) FROM upd),"
    " (SELECT count(*) FROM outbox" RETRY_WHERE
    " AND leased_by <> '' AND next_attempt_ms > $2::bigint)";

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
    if (rc == 0)
        rc = pgs_col_text(r, row, 9, o->leased_by, sizeof(o->leased_by));
    return rc;
}

int pgstore_outbox_due(struct store *s, int64_t now_ms, int limit, struct store_outbox_row *rows,
                       int *n)
{
    struct store_param p[] = {STORE_INT64(now_ms), STORE_INT64(limit), STORE_END};

    return pgs_list_rows(s, SQL_DUE, p, limit, rows, sizeof(*rows), outbox_row, n);
}

int pgstore_outbox_take(struct store *s, int64_t now_ms, int64_t until_ms, int limit,
                        struct store_outbox_row *rows, int *n)
{
    struct store_param p[] = {STORE_INT64(now_ms), STORE_INT64(until_ms),
                              STORE_TEXT(store_instance(s)), STORE_INT64(limit), STORE_END};
    PGresult *r = NULL;
    int count = 0;
    /* Not repeated on a broken connection: the take may have committed, and its rows then wait
     * out their lease (the operations are idempotent; nothing is lost). */
    int rc = pgs_exec(s, SQL_TAKE, p, 0, &r);

    for (int i = 0; rc == 0 && i < PQntuples(r) && count < limit; i++) {
        rc = outbox_row(r, i, &rows[count]);
        if (rc == 0)
            count++;
    }
    PQclear(r);
    if (rc == 0)
        *n = count;
    return rc;
}

int pgstore_outbox_done(struct store *s, int64_t id)
{
    struct store_param p[] = {STORE_INT64(id), STORE_TEXT(store_instance(s)), STORE_END};

    return pgs_write_one(s, SQL_DONE, p);
}

int pgstore_outbox_retry_later(struct store *s, int64_t id, int64_t next_ms, const char *err)
{
    struct store_param p[] = {STORE_INT64(id), STORE_INT64(next_ms), STORE_TEXT(err),
                              STORE_TEXT(store_instance(s)), STORE_END};

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
    struct store_param p[] = {STORE_INT64(id), STORE_INT64(until_ms), STORE_TEXT(store_instance(s)),
                              STORE_END};

    return pgs_write_one(s, SQL_LEASE, p);
}

int pgstore_outbox_release(struct store *s, int64_t id, int64_t due_ms)
{
    struct store_param p[] = {STORE_INT64(id), STORE_INT64(due_ms), STORE_TEXT(store_instance(s)),
                              STORE_END};

    return pgs_write_one(s, SQL_RELEASE, p);
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

int pgstore_outbox_get(struct store *s, int64_t id, struct store_outbox_row *out)
{
    struct store_param p[] = {STORE_INT64(id), STORE_END};

    return pgs_read_one(s, SQL_GET, p, outbox_row, out);
}

int pgstore_outbox_retry_now(struct store *s, int64_t id, int64_t now_ms,
                             struct store_outbox_retry *out)
{
    struct store_param p[] = {STORE_INT64(id), STORE_INT64(now_ms), STORE_END};
    PGresult *r = NULL;
    /* Repeating it after a broken connection is harmless: the same rows become due. */
    int rc = pgs_exec(s, SQL_RETRY_NOW, p, 0, &r);

    if (rc == 0 && PQntuples(r) != 1)
        rc = TV_ERR_INTERNAL;
    if (rc == 0) {
        out->matched = pgs_col_int64(r, 0, 0);
        out->made_due = pgs_col_int64(r, 0, 1);
        out->leased = pgs_col_int64(r, 0, 2);
    }
    PQclear(r);
    return rc;
}
