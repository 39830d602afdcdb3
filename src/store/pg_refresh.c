/* session_refresh table on PostgreSQL (refresh.c is the SQLite sibling; the public functions
 * there check their arguments and call these). Rotation is one transaction: the conditional
 * UPDATE takes the row's lock, so of two replicas rotating the same token the second waits,
 * then finds used_ms set (READ COMMITTED re-checks the WHERE on the new row) and changes
 * nothing.
 *
 * A row lock is not enough between a rotation and the revocation of its family: a DELETE that
 * waited for the used token's row re-checks only the rows of its own snapshot, so the successor
 * the rotation inserted would survive. Both therefore first take a transaction-scoped advisory
 * lock on the family (SQL_LOCK): a revocation that waited for a rotation starts its DELETE
 * after the rotation committed and sees the successor; a rotation that waited for a revocation
 * finds its token gone (TV_ERR_CONFLICT). SQLite needs no such lock: it has one writer at a
 * time, and each of these is one write transaction there. */
#include <string.h>

#include "core/err.h"
#include "pg_int.h"
#include "pg_tables.h"
#include "store/refresh.h"

#define REFRESH_COLS                                                                               \
    "id, family, account, session_epoch, hash, created_ms, expires_ms, family_expires_ms,"         \
    " coalesce(used_ms, 0)"

/* The family's lock: a 64-bit hash of the family id in a namespace of its own (the seed), so
 * it does not meet the migrations' lock or login_failures'. */
static const char SQL_LOCK[] = "SELECT pg_advisory_xact_lock(hashtextextended($1, 5120))";
static const char SQL_INSERT[] =
    "INSERT INTO session_refresh (id, family, account, session_epoch, hash, created_ms,"
    " expires_ms, family_expires_ms, used_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL)";
static const char SQL_GET[] = "SELECT " REFRESH_COLS " FROM session_refresh WHERE id = $1";
static const char SQL_USE[] = "UPDATE session_refresh SET used_ms = $2 WHERE id = $1"
                              " AND used_ms IS NULL AND expires_ms > $2 AND family_expires_ms > $2";
static const char SQL_REVOKE_FAMILY[] = "DELETE FROM session_refresh WHERE family = $1";
static const char SQL_REVOKE_ACCOUNT[] = "DELETE FROM session_refresh WHERE account = $1";
static const char SQL_PRUNE[] =
    "DELETE FROM session_refresh WHERE expires_ms <= $1 OR family_expires_ms <= $1";
static const char SQL_COUNT[] = "SELECT count(*) FROM session_refresh";

static int refresh_row(const PGresult *r, int row, void *out)
{
    struct store_refresh *t = out;
    size_t len = 0;
    int rc = pgs_col_text(r, row, 0, t->id, sizeof(t->id));

    if (rc == 0)
        rc = pgs_col_text(r, row, 1, t->family, sizeof(t->family));
    if (rc == 0)
        rc = pgs_col_text(r, row, 2, t->account, sizeof(t->account));
    if (rc == 0)
        rc = pgs_col_bytea(r, row, 4, t->hash, sizeof(t->hash), &len);
    if (rc == 0 && len != STORE_REFRESH_HASH_LEN)
        rc = TV_ERR_INTERNAL;
    t->session_epoch = pgs_col_int64(r, row, 3);
    t->created_ms = pgs_col_int64(r, row, 5);
    t->expires_ms = pgs_col_int64(r, row, 6);
    t->family_expires_ms = pgs_col_int64(r, row, 7);
    t->used_ms = pgs_col_int64(r, row, 8);
    return rc;
}

/* The parameters of SQL_INSERT for t, into p (9 entries). */
static void insert_params(const struct store_refresh *t, struct store_param p[9])
{
    struct store_param v[9] = {STORE_TEXT(t->id),
                               STORE_TEXT(t->family),
                               STORE_TEXT(t->account),
                               STORE_INT64(t->session_epoch),
                               STORE_BLOB(t->hash, STORE_REFRESH_HASH_LEN),
                               STORE_INT64(t->created_ms),
                               STORE_INT64(t->expires_ms),
                               STORE_INT64(t->family_expires_ms),
                               STORE_END};

    memcpy(p, v, sizeof v);
}

int pgstore_refresh_insert(struct store *s, const struct store_refresh *r)
{
    struct store_param p[9];

    insert_params(r, p);
    return pgs_write_run(s, SQL_INSERT, p, NULL);
}

int pgstore_refresh_get(struct store *s, const char *id, struct store_refresh *out)
{
    struct store_refresh tmp;

    return pgs_get_by_key(s, SQL_GET, id, STORE_REFRESH_ID_MAX, refresh_row, &tmp, out, sizeof tmp);
}

struct rotate_arg {
    const char *old_id;
    int64_t now_ms;
    const struct store_refresh *next;
};

static int rotate_tx(struct pgpool_tx *tx, void *arg)
{
    struct rotate_arg *a = arg;
    struct store_param use[] = {STORE_TEXT(a->old_id), STORE_INT64(a->now_ms), STORE_END};
    struct store_param lock[] = {STORE_TEXT(a->next->family), STORE_END};
    struct store_param ins[9];
    PGresult *r = NULL;
    int rc = pgs_tx_exec(tx, SQL_LOCK, lock, NULL);

    if (rc == 0)
        rc = pgs_tx_exec(tx, SQL_USE, use, &r);
    if (rc == 0 && pgs_changes(r) != 1)
        rc = TV_ERR_CONFLICT;
    PQclear(r);
    if (rc == 0) {
        insert_params(a->next, ins);
        rc = pgs_tx_exec(tx, SQL_INSERT, ins, NULL);
    }
    return rc;
}

int pgstore_refresh_rotate(struct store *s, const char *old_id, int64_t now_ms,
                           const struct store_refresh *next)
{
    struct rotate_arg a = {.old_id = old_id, .now_ms = now_ms, .next = next};

    return pgpool_tx_run(s->pg, rotate_tx, &a);
}

/* Deletes by one text key with sql; *removed (may be NULL) gets the count. */
static int delete_by(struct store *s, const char *sql, const char *key, int64_t *removed)
{
    struct store_param p[] = {STORE_TEXT(key), STORE_END};
    int64_t n = 0;
    int rc = pgs_write_run(s, sql, p, &n);

    if (rc == 0 && removed != NULL)
        *removed = n;
    return rc;
}

struct revoke_arg {
    const char *family;
    int64_t removed;
};

static int revoke_family_tx(struct pgpool_tx *tx, void *arg)
{
    struct revoke_arg *a = arg;
    struct store_param p[] = {STORE_TEXT(a->family), STORE_END};
    PGresult *r = NULL;
    int rc = pgs_tx_exec(tx, SQL_LOCK, p, NULL);

    if (rc == 0)
        rc = pgs_tx_exec(tx, SQL_REVOKE_FAMILY, p, &r);
    a->removed = rc == 0 ? pgs_changes(r) : 0;
    PQclear(r);
    return rc;
}

int pgstore_refresh_revoke_family(struct store *s, const char *family, int64_t *removed)
{
    struct revoke_arg a = {.family = family, .removed = 0};
    int rc = pgpool_tx_run(s->pg, revoke_family_tx, &a);

    if (rc == 0 && removed != NULL)
        *removed = a.removed;
    return rc;
}

int pgstore_refresh_revoke_account(struct store *s, const char *account, int64_t *removed)
{
    return delete_by(s, SQL_REVOKE_ACCOUNT, account, removed);
}

int pgstore_refresh_prune(struct store *s, int64_t now_ms, int64_t *removed)
{
    struct store_param p[] = {STORE_INT64(now_ms), STORE_END};
    int64_t n = 0;
    int rc = pgs_write_run(s, SQL_PRUNE, p, &n);

    if (rc == 0 && removed != NULL)
        *removed = n;
    return rc;
}

int pgstore_refresh_count(struct store *s, int64_t *n)
{
    return pgs_count(s, SQL_COUNT, n);
}
