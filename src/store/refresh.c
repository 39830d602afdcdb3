/* session_refresh table: refresh tokens of local-account sessions, by id, hash of the secret
 * only (store/refresh.h). pg_refresh.c is the PostgreSQL sibling. */
#include "store/refresh.h"

#include <string.h>

#include <openssl/crypto.h>

#include "core/err.h"
#include "pg_tables.h"
#include "store_int.h"

#define REFRESH_COLS                                                                               \
    "id, family, account, session_epoch, hash, created_ms, expires_ms, family_expires_ms,"         \
    " used_ms"

static const char SQL_INSERT[] =
    "INSERT INTO session_refresh (" REFRESH_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL)";
static const char SQL_GET[] = "SELECT " REFRESH_COLS " FROM session_refresh WHERE id = ?1";
/* The one conditional update rotation rests on: only an unused, unexpired row is taken. */
static const char SQL_USE[] = "UPDATE session_refresh SET used_ms = ?2 WHERE id = ?1"
                              " AND used_ms IS NULL AND expires_ms > ?2 AND family_expires_ms > ?2";
static const char SQL_REVOKE_FAMILY[] = "DELETE FROM session_refresh WHERE family = ?1";
static const char SQL_REVOKE_ACCOUNT[] = "DELETE FROM session_refresh WHERE account = ?1";
static const char SQL_PRUNE[] =
    "DELETE FROM session_refresh WHERE expires_ms <= ?1 OR family_expires_ms <= ?1";
static const char SQL_COUNT[] = "SELECT count(*) FROM session_refresh";

/* 0 when r's strings are fit to store. */
static int refresh_check(const struct store_refresh *r)
{
    if (r == NULL || store_check_str(r->id, 1, STORE_REFRESH_ID_MAX) != 0 ||
        store_check_str(r->family, 1, STORE_REFRESH_ID_MAX) != 0 ||
        store_check_str(r->account, 1, STORE_NAME_MAX) != 0)
        return TV_ERR_INVALID;
    return 0;
}

static int refresh_from_row(sqlite3_stmt *st, void *out)
{
    struct store_refresh *r = out;
    const void *hash = sqlite3_column_blob(st, 4);
    int rc = store_col_text(st, 0, r->id, sizeof(r->id));

    if (rc == 0)
        rc = store_col_text(st, 1, r->family, sizeof(r->family));
    if (rc == 0)
        rc = store_col_text(st, 2, r->account, sizeof(r->account));
    if (rc == 0 && (hash == NULL || sqlite3_column_bytes(st, 4) != STORE_REFRESH_HASH_LEN))
        rc = TV_ERR_INTERNAL;
    if (rc == 0)
        memcpy(r->hash, hash, STORE_REFRESH_HASH_LEN);
    r->session_epoch = sqlite3_column_int64(st, 3);
    r->created_ms = sqlite3_column_int64(st, 5);
    r->expires_ms = sqlite3_column_int64(st, 6);
    r->family_expires_ms = sqlite3_column_int64(st, 7);
    r->used_ms = sqlite3_column_int64(st, 8);
    return rc;
}

/* Runs SQL_INSERT for r on the writer connection c (inside the caller's transaction). */
static int insert_on(struct store_conn *c, const struct store_refresh *r)
{
    sqlite3_stmt *st;
    int rc = store_stmt(c, SQL_INSERT, &st);

    if (rc != 0)
        return rc;
    store_bind_text(st, 1, r->id);
    store_bind_text(st, 2, r->family);
    store_bind_text(st, 3, r->account);
    sqlite3_bind_int64(st, 4, r->session_epoch);
    sqlite3_bind_blob(st, 5, r->hash, STORE_REFRESH_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, r->created_ms);
    sqlite3_bind_int64(st, 7, r->expires_ms);
    sqlite3_bind_int64(st, 8, r->family_expires_ms);
    rc = store_step_done(c, st);
    store_stmt_done(st);
    return rc;
}

int store_refresh_insert(struct store *s, const struct store_refresh *r)
{
    struct store_conn *c;
    int rc = refresh_check(r);

    if (rc != 0)
        return rc;
    if (s->kind == STORE_PG)
        return pgstore_refresh_insert(s, r);
    if ((rc = store_write_begin(s, &c)) != 0)
        return rc;
    rc = insert_on(c, r);
    return store_write_end(s, c, rc);
}

int store_refresh_get(struct store *s, const char *id, struct store_refresh *out)
{
    struct store_refresh tmp;

    if (s->kind == STORE_PG)
        return pgstore_refresh_get(s, id, out);
    return store_get_by_key(s, SQL_GET, id, STORE_REFRESH_ID_MAX, refresh_from_row, &tmp, out,
                            sizeof tmp);
}

int store_refresh_rotate(struct store *s, const char *old_id, int64_t now_ms,
                         const struct store_refresh *next)
{
    struct store_conn *c;
    sqlite3_stmt *st;
    int rc = refresh_check(next);

    if (rc != 0 || store_check_str(old_id, 1, STORE_REFRESH_ID_MAX) != 0)
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG)
        return pgstore_refresh_rotate(s, old_id, now_ms, next);
    if ((rc = store_write_begin(s, &c)) != 0)
        return rc;
    if ((rc = store_stmt(c, SQL_USE, &st)) == 0) {
        store_bind_text(st, 1, old_id);
        sqlite3_bind_int64(st, 2, now_ms);
        rc = store_step_done(c, st);
        /* No row taken: another rotation (or an expiry, or a revoke) came first. */
        if (rc == 0 && sqlite3_changes(c->db) != 1)
            rc = TV_ERR_CONFLICT;
        store_stmt_done(st);
    }
    if (rc == 0)
        rc = insert_on(c, next);
    return store_write_end(s, c, rc);
}

/* Deletes by one key (family or account) with sql; *removed gets the count. */
static int delete_by(struct store *s, const char *sql, const char *key, int64_t *removed)
{
    struct store_write_info info = {0};
    int rc = store_write_run(s, sql, store_bind_key, key, &info);

    if (rc == 0 && removed != NULL)
        *removed = info.changes;
    return rc;
}

int store_refresh_revoke_family(struct store *s, const char *family, int64_t *removed)
{
    if (store_check_str(family, 1, STORE_REFRESH_ID_MAX) != 0)
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG)
        return pgstore_refresh_revoke_family(s, family, removed);
    return delete_by(s, SQL_REVOKE_FAMILY, family, removed);
}

int store_refresh_revoke_account(struct store *s, const char *account, int64_t *removed)
{
    if (store_check_str(account, 1, STORE_NAME_MAX) != 0)
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG)
        return pgstore_refresh_revoke_account(s, account, removed);
    return delete_by(s, SQL_REVOKE_ACCOUNT, account, removed);
}

int store_refresh_prune(struct store *s, int64_t now_ms, int64_t *removed)
{
    struct store_param p[] = {STORE_INT64(now_ms), STORE_END};
    struct store_write_info info = {0};
    int rc;

    if (s->kind == STORE_PG)
        return pgstore_refresh_prune(s, now_ms, removed);
    rc = store_write_run(s, SQL_PRUNE, store_bind_params, p, &info);
    if (rc == 0 && removed != NULL)
        *removed = info.changes;
    return rc;
}

int store_refresh_count(struct store *s, int64_t *n)
{
    if (n == NULL)
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG)
        return pgstore_refresh_count(s, n);
    return store_count(s, SQL_COUNT, n);
}
