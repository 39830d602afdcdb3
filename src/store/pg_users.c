/* Mappings table on PostgreSQL (users.c is the SQLite sibling; the public functions there
 * check their arguments and call these). */
#include <string.h>

#include "core/err.h"
#include "pg_int.h"
#include "pg_tables.h"
#include "store/users.h"

#define USER_COLS                                                                                  \
    "coalesce(app_user_id, ''), acs_id, resource, created_ms, last_issued_ms, revoked_ms"

static const char SQL_GET[] = "SELECT " USER_COLS " FROM mappings WHERE app_user_id = $1";
static const char SQL_GET_BY_ACS[] = "SELECT " USER_COLS " FROM mappings WHERE acs_id = $1";
static const char SQL_INSERT[] =
    "INSERT INTO mappings (app_user_id, acs_id, resource, created_ms, last_issued_ms, revoked_ms)"
    " VALUES ($1, $2, $3, $4, $5, $6)";
/* GREATEST keeps the times monotonic when two requests finish out of order (SQLite's max). */
static const char SQL_TOUCH[] = "UPDATE mappings SET last_issued_ms ="
                                " GREATEST(last_issued_ms, $2::bigint) WHERE acs_id = $1";
/* The notification every replica's watch turns into a cache invalidation (pg_listen.c reads
 * it: "u:<seq>:<length of the ACS id>:<ACS id><app user id>"), and the counter it checks after
 * a reconnect, both in the statement that changes the mapping: delivered on commit only. */
#define NOTIFY_MAPPING(acs, app)                                                                   \
    "pg_notify('tokenvend_invalidate', 'u:' || nextval('invalidation_seq') || ':' ||"              \
    " octet_length(" acs ") || ':' || " acs " || coalesce(" app ", ''))"
static const char SQL_REVOKED[] =
    "WITH u AS (UPDATE mappings SET revoked_ms = GREATEST(revoked_ms, $2::bigint)"
    " WHERE acs_id = $1 RETURNING acs_id, app_user_id)"
    " SELECT " NOTIFY_MAPPING("u.acs_id", "u.app_user_id") " FROM u";
/* Tells every replica to drop what it caches for a mapping without changing it (a revoke whose
 * ACS outcome is unknown, or whose write failed). */
static const char SQL_INVALIDATE[] =
    "SELECT " NOTIFY_MAPPING("acs_id", "app_user_id") " FROM mappings WHERE acs_id = $1";
/* COLLATE "C": byte order, as SQLite's BINARY collation, whatever the database's locale, so
 * pages and cursors mean the same on both backends. */
static const char SQL_LIST[] = "SELECT " USER_COLS " FROM mappings"
                               " WHERE app_user_id IS NOT NULL AND app_user_id COLLATE \"C\" > $1"
                               " ORDER BY app_user_id COLLATE \"C\" LIMIT $2";
static const char SQL_COUNT[] = "SELECT count(*) FROM mappings";
/* Delete and queue (and notify) in one statement: atomic without a transaction of our own, and
 * no request can see the mapping gone without the outbox row. */
static const char SQL_DELETE_QUEUE[] =
    "WITH d AS (DELETE FROM mappings WHERE acs_id = $1 RETURNING acs_id, resource, app_user_id),"
    " o AS (INSERT INTO outbox (acs_id, resource, op, next_attempt_ms, created_ms, app_user_id)"
    " SELECT acs_id, resource, 'delete', $3, $2, app_user_id FROM d"
    " RETURNING id, acs_id, app_user_id)"
    " SELECT o.id, " NOTIFY_MAPPING("o.acs_id", "o.app_user_id") " FROM o";

static int user_row(const PGresult *r, int row, void *out)
{
    struct store_user *u = out;
    int rc = pgs_col_text(r, row, 0, u->app_user_id, sizeof(u->app_user_id));

    if (rc == 0)
        rc = pgs_col_text(r, row, 1, u->acs_id, sizeof(u->acs_id));
    if (rc == 0)
        rc = pgs_col_text(r, row, 2, u->resource, sizeof(u->resource));
    u->created_ms = pgs_col_int64(r, row, 3);
    u->last_issued_ms = pgs_col_int64(r, row, 4);
    u->revoked_ms = pgs_col_int64(r, row, 5);
    return rc;
}

static int user_get_one(struct store *s, const char *sql, const char *key, struct store_user *out)
{
    struct store_user u;

    return pgs_get_by_key(s, sql, key, STORE_ID_MAX, user_row, &u, out, sizeof u);
}

int pgstore_user_get(struct store *s, const char *app_user_id, struct store_user *out)
{
    return user_get_one(s, SQL_GET, app_user_id, out);
}

int pgstore_user_get_by_acs(struct store *s, const char *acs_id, struct store_user *out)
{
    return user_get_one(s, SQL_GET_BY_ACS, acs_id, out);
}

int pgstore_user_insert(struct store *s, const struct store_user *u)
{
    struct store_param p[] = {STORE_TEXT_OR_NULL(u->app_user_id),
                              STORE_TEXT(u->acs_id),
                              STORE_TEXT(u->resource),
                              STORE_INT64(u->created_ms),
                              STORE_INT64(u->last_issued_ms),
                              STORE_INT64(u->revoked_ms),
                              STORE_END};

    return pgs_write_run(s, SQL_INSERT, p, NULL);
}

static int user_update_ms(struct store *s, const char *sql, const char *acs_id, int64_t ms)
{
    struct store_param p[] = {STORE_TEXT(acs_id), STORE_INT64(ms), STORE_END};

    return pgs_write_one(s, sql, p);
}

int pgstore_user_touch_issued(struct store *s, const char *acs_id, int64_t ms)
{
    return user_update_ms(s, SQL_TOUCH, acs_id, ms);
}

int pgstore_user_set_revoked(struct store *s, const char *acs_id, int64_t ms)
{
    return user_update_ms(s, SQL_REVOKED, acs_id, ms);
}

int pgstore_user_invalidate(struct store *s, const char *acs_id)
{
    struct store_param p[] = {STORE_TEXT(acs_id), STORE_END};

    return pgs_write_run(s, SQL_INVALIDATE, p, NULL);
}

int pgstore_user_list(struct store *s, const char *after, int limit, struct store_user *out, int *n)
{
    struct store_param p[] = {STORE_TEXT(after != NULL ? after : ""), STORE_INT64(limit),
                              STORE_END};

    return pgs_list_rows(s, SQL_LIST, p, limit, out, sizeof(*out), user_row, n);
}

int pgstore_user_count(struct store *s, int64_t *n)
{
    return pgs_count(s, SQL_COUNT, n);
}

int pgstore_user_delete_begin_due(struct store *s, const char *acs_id, int64_t now_ms,
                                  int64_t due_ms, int64_t *outbox_id)
{
    struct store_param p[] = {STORE_TEXT(acs_id), STORE_INT64(now_ms), STORE_INT64(due_ms),
                              STORE_END};
    PGresult *r = NULL;
    int rc = pgs_exec(s, SQL_DELETE_QUEUE, p, 0, &r);

    if (rc == 0 && PQntuples(r) == 0)
        rc = TV_ERR_NOT_FOUND;
    if (rc == 0 && outbox_id != NULL)
        *outbox_id = pgs_col_int64(r, 0, 0);
    PQclear(r);
    return rc;
}
