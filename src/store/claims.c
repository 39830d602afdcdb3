/* Create claims (include/store/claims.h) on SQLite; pg_claims.c is the PostgreSQL sibling. The
 * take is one upsert whose update only fires for an expired claim or our own, run on the
 * writer with the read of the holder's expiry, so both see one state of the row. */
#include <string.h>

#include "core/err.h"
#include "pg_claims.h"
#include "store/claims.h"
#include "store_int.h"

/* RETURNING gives a row only when the insert or the update happened: that is the win. */
static const char SQL_TAKE[] =
    "INSERT INTO create_claims (app_user_id, owner, expires_ms) VALUES (?1, ?2, ?3)"
    " ON CONFLICT (app_user_id) DO UPDATE SET owner = excluded.owner,"
    " expires_ms = excluded.expires_ms"
    " WHERE create_claims.expires_ms < ?4 OR create_claims.owner = excluded.owner"
    " RETURNING expires_ms";
static const char SQL_HOLDER[] = "SELECT expires_ms FROM create_claims WHERE app_user_id = ?1";
static const char SQL_RELEASE[] = "DELETE FROM create_claims WHERE app_user_id = ?1 AND owner = ?2";
static const char SQL_INSERT[] =
    "INSERT INTO mappings (app_user_id, acs_id, resource, created_ms, last_issued_ms, revoked_ms)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/* Runs st (bound) to its end; *row = 1 and *value = column 0 when it gave a row. */
static int step_first_int64(struct store_conn *c, sqlite3_stmt *st, int *row, int64_t *value)
{
    int more = 0;
    int rc = store_step(c, st, row);

    if (rc == 0 && *row) {
        *value = sqlite3_column_int64(st, 0);
        /* RETURNING: the statement finishes on the next step. */
        rc = store_step(c, st, &more);
    }
    store_stmt_done(st);
    return rc;
}

static int take_locked(struct store *s, struct store_conn *c, const char *app_user_id,
                       int64_t now_ms, int64_t expires_ms, struct store_claim *out)
{
    struct store_param p[] = {STORE_TEXT(app_user_id), STORE_TEXT(store_instance(s)),
                              STORE_INT64(expires_ms), STORE_INT64(now_ms), STORE_END};
    sqlite3_stmt *st = NULL;
    int64_t exp = 0;
    int row = 0;
    int rc = store_stmt(c, SQL_TAKE, &st);

    if (rc != 0)
        return rc;
    store_bind_params(st, p);
    if ((rc = step_first_int64(c, st, &row, &exp)) != 0)
        return rc;
    if (row) {
        out->won = 1;
        out->expires_ms = exp;
        return 0;
    }
    /* Lost: the holder's row is there (the upsert saw it, and the write lock is still ours). */
    if ((rc = store_stmt(c, SQL_HOLDER, &st)) != 0)
        return rc;
    store_bind_text(st, 1, app_user_id);
    if ((rc = step_first_int64(c, st, &row, &exp)) != 0)
        return rc;
    out->won = 0;
    out->expires_ms = row ? exp : 0;
    return 0;
}

int store_claim_take(struct store *s, const char *app_user_id, int64_t now_ms, int64_t expires_ms,
                     struct store_claim *out)
{
    struct store_claim got = {0, 0};
    struct store_conn *c;
    int rc;

    if (out == NULL || store_check_str(app_user_id, 1, STORE_ID_MAX) != 0 || expires_ms <= now_ms)
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG) {
        rc = pgstore_claim_take(s, app_user_id, now_ms, expires_ms, &got);
        goto done;
    }
    if ((rc = store_write_begin(s, &c)) != 0)
        return rc;
    rc = take_locked(s, c, app_user_id, now_ms, expires_ms, &got);
    rc = store_write_end(s, c, rc);
done:
    if (rc == 0)
        *out = got;
    return rc;
}

int store_claim_release(struct store *s, const char *app_user_id)
{
    struct store_param p[] = {STORE_TEXT(app_user_id), STORE_TEXT(store_instance(s)), STORE_END};

    if (store_check_str(app_user_id, 1, STORE_ID_MAX) != 0)
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG)
        return pgstore_claim_release(s, app_user_id);
    return store_write_run(s, SQL_RELEASE, store_bind_params, p, NULL);
}

/* The mapping insert and the claim's removal under one write lock. */
static int commit_locked(struct store *s, struct store_conn *c, const struct store_user *u)
{
    struct store_param ins[] = {STORE_TEXT(u->app_user_id),
                                STORE_TEXT(u->acs_id),
                                STORE_TEXT(u->resource),
                                STORE_INT64(u->created_ms),
                                STORE_INT64(u->last_issued_ms),
                                STORE_INT64(u->revoked_ms),
                                STORE_END};
    struct store_param del[] = {STORE_TEXT(u->app_user_id), STORE_TEXT(store_instance(s)),
                                STORE_END};
    sqlite3_stmt *st = NULL;
    int rc = store_stmt(c, SQL_INSERT, &st);

    if (rc != 0)
        return rc;
    store_bind_params(st, ins);
    rc = store_step_done(c, st);
    store_stmt_done(st);
    if (rc != 0 || (rc = store_stmt(c, SQL_RELEASE, &st)) != 0)
        return rc;
    store_bind_params(st, del);
    rc = store_step_done(c, st);
    store_stmt_done(st);
    return rc;
}

int store_claim_commit(struct store *s, const struct store_user *u)
{
    struct store_conn *c;
    int rc;

    /* A claimed create is always for an app user: never a standalone identity. */
    if (u == NULL || store_check_str(u->app_user_id, 1, STORE_ID_MAX) != 0 ||
        store_check_str(u->acs_id, 1, STORE_ID_MAX) != 0 ||
        store_check_str(u->resource, 1, STORE_ID_MAX) != 0)
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG)
        return pgstore_claim_commit(s, u);
    if ((rc = store_write_begin(s, &c)) != 0)
        return rc;
    rc = commit_locked(s, c, u);
    return store_write_end(s, c, rc);
}
