/* Create claims on PostgreSQL (claims.c is the SQLite sibling). Each function is one statement,
 * so none needs a transaction of its own. */
#include "pg_claims.h"

#include "core/err.h"
#include "pg_int.h"

/* The upsert and, when it did not fire, the holder's expiry, in one round trip. The second
 * SELECT reads the statement's snapshot: a claim inserted by a transaction that committed after
 * it began is not seen there, which reports a loss with expiry 0 (the caller looks again soon). */
static const char SQL_TAKE[] =
    "WITH t AS (INSERT INTO create_claims (app_user_id, owner, expires_ms) VALUES ($1, $2, $3)"
    " ON CONFLICT (app_user_id) DO UPDATE SET owner = EXCLUDED.owner,"
    " expires_ms = EXCLUDED.expires_ms"
    " WHERE create_claims.expires_ms < $4 OR create_claims.owner = EXCLUDED.owner"
    " RETURNING expires_ms)"
    " SELECT 1, expires_ms FROM t"
    " UNION ALL SELECT 0, expires_ms FROM create_claims"
    " WHERE app_user_id = $1 AND NOT EXISTS (SELECT 1 FROM t)";
static const char SQL_RELEASE[] = "DELETE FROM create_claims WHERE app_user_id = $1 AND owner = $2";
/* The claim goes with the insert in one statement: both or neither (a unique violation of the
 * insert undoes the delete). */
static const char SQL_COMMIT[] =
    "WITH c AS (DELETE FROM create_claims WHERE app_user_id = $1 AND owner = $7)"
    " INSERT INTO mappings (app_user_id, acs_id, resource, created_ms, last_issued_ms, revoked_ms)"
    " VALUES ($1, $2, $3, $4, $5, $6)";

int pgstore_claim_take(struct store *s, const char *app_user_id, int64_t now_ms, int64_t expires_ms,
                       struct store_claim *out)
{
    struct store_param p[] = {STORE_TEXT(app_user_id), STORE_TEXT(store_instance(s)),
                              STORE_INT64(expires_ms), STORE_INT64(now_ms), STORE_END};
    PGresult *r = NULL;
    /* Safe to repeat on a new connection: a second run finds our own claim and renews it. */
    int rc = pgs_exec(s, SQL_TAKE, p, PGPOOL_RETRY, &r);

    if (rc == 0) {
        out->won = PQntuples(r) > 0 && pgs_col_int64(r, 0, 0) == 1;
        out->expires_ms = PQntuples(r) > 0 ? pgs_col_int64(r, 0, 1) : 0;
    }
    PQclear(r);
    return rc;
}

int pgstore_claim_release(struct store *s, const char *app_user_id)
{
    struct store_param p[] = {STORE_TEXT(app_user_id), STORE_TEXT(store_instance(s)), STORE_END};
    PGresult *r = NULL;
    int rc = pgs_exec(s, SQL_RELEASE, p, PGPOOL_RETRY, &r);

    PQclear(r);
    return rc;
}

int pgstore_claim_commit(struct store *s, const struct store_user *u)
{
    struct store_param p[] = {STORE_TEXT(u->app_user_id),     STORE_TEXT(u->acs_id),
                              STORE_TEXT(u->resource),        STORE_INT64(u->created_ms),
                              STORE_INT64(u->last_issued_ms), STORE_INT64(u->revoked_ms),
                              STORE_TEXT(store_instance(s)),  STORE_END};

    return pgs_write_run(s, SQL_COMMIT, p, NULL);
}
