/* Local accounts table: name and Argon2id encoded hash (never a password). */
#include <string.h>

#include "core/err.h"
#include "pg_tables.h"
#include "store/accounts.h"
#include "store_int.h"

#define ACCOUNT_COLS "name, password_hash, created_ms, updated_ms, session_epoch"

static const char SQL_EXISTS[] = "SELECT 1 FROM accounts WHERE name = ?1";
/* random() is SQLite's PRNG: the epoch need not be secret (tokens carry it, signed), only new;
 * 64 random bits never repeat in practice. */
static const char SQL_UPSERT[] =
    "INSERT INTO accounts (name, password_hash, created_ms, updated_ms, session_epoch)"
    " VALUES (?1, ?2, ?3, ?4, random())"
    " ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash,"
    " updated_ms = excluded.updated_ms, session_epoch = random()";
static const char SQL_PASSWD[] = "UPDATE accounts SET password_hash = ?2, updated_ms = ?3,"
                                 " session_epoch = random() WHERE name = ?1";
static const char SQL_LOGOUT[] = "UPDATE accounts SET session_epoch = random() WHERE name = ?1";
static const char SQL_REHASH[] =
    "UPDATE accounts SET password_hash = ?3 WHERE name = ?1 AND password_hash = ?2";
static const char SQL_EPOCH[] = "SELECT session_epoch FROM accounts WHERE name = ?1";
static const char SQL_GET[] = "SELECT " ACCOUNT_COLS " FROM accounts WHERE name = ?1";
static const char SQL_DELETE[] = "DELETE FROM accounts WHERE name = ?1";
static const char SQL_LIST[] =
    "SELECT " ACCOUNT_COLS " FROM accounts WHERE name > ?1 ORDER BY name LIMIT ?2";

static int account_from_row(sqlite3_stmt *st, struct store_account *a)
{
    int rc = store_col_text(st, 0, a->name, sizeof(a->name));

    if (rc == 0)
        rc = store_col_text(st, 1, a->password_hash, sizeof(a->password_hash));
    a->created_ms = sqlite3_column_int64(st, 2);
    a->updated_ms = sqlite3_column_int64(st, 3);
    a->session_epoch = sqlite3_column_int64(st, 4);
    return rc;
}

int store_account_upsert(struct store *s, const struct store_account *a, int *created)
{
    struct store_conn *c;
    sqlite3_stmt *st;
    int existed = 0;
    int rc = TV_ERR_INVALID;

    if (a == NULL || store_check_str(a->name, 1, STORE_NAME_MAX) != 0 ||
        store_check_str(a->password_hash, 1, STORE_PASSWORD_HASH_MAX) != 0)
        return rc;
    if (s->kind == STORE_PG)
        return pgstore_account_upsert(s, a, created);
    rc = store_write_begin(s, &c);
    if (rc != 0)
        return rc;
    rc = store_stmt(c, SQL_EXISTS, &st);
    if (rc == 0) {
        store_bind_text(st, 1, a->name);
        rc = store_step(c, st, &existed);
        store_stmt_done(st);
    }
    if (rc == 0)
        rc = store_stmt(c, SQL_UPSERT, &st);
    if (rc == 0) {
        store_bind_text(st, 1, a->name);
        store_bind_text(st, 2, a->password_hash);
        sqlite3_bind_int64(st, 3, a->created_ms);
        sqlite3_bind_int64(st, 4, a->updated_ms);
        rc = store_step_done(c, st);
        store_stmt_done(st);
    }
    rc = store_write_end(s, c, rc);
    if (rc == 0 && created != NULL)
        *created = !existed;
    return rc;
}

/* A store_row_fn for one account. */
static int account_row(sqlite3_stmt *st, void *out)
{
    return account_from_row(st, out);
}

int store_account_get(struct store *s, const char *name, struct store_account *out)
{
    struct store_account a;

    if (s->kind == STORE_PG)
        return pgstore_account_get(s, name, out);
    return store_get_by_key(s, SQL_GET, name, STORE_NAME_MAX, account_row, &a, out, sizeof a);
}

int store_account_passwd(struct store *s, const char *name, const char *password_hash,
                         int64_t updated_ms)
{
    struct store_param p[] = {STORE_TEXT(name), STORE_TEXT(password_hash), STORE_INT64(updated_ms),
                              STORE_END};

    if (store_check_str(name, 1, STORE_NAME_MAX) != 0 ||
        store_check_str(password_hash, 1, STORE_PASSWORD_HASH_MAX) != 0)
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG)
        return pgstore_account_passwd(s, name, password_hash, updated_ms);
    return store_write_one(s, SQL_PASSWD, store_bind_params, p);
}

int store_account_logout(struct store *s, const char *name)
{
    if (store_check_str(name, 1, STORE_NAME_MAX) != 0)
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG)
        return pgstore_account_logout(s, name);
    return store_write_one(s, SQL_LOGOUT, store_bind_key, name);
}

int store_account_rehash(struct store *s, const char *name, const char *old_hash,
                         const char *new_hash)
{
    struct store_param p[] = {STORE_TEXT(name), STORE_TEXT(old_hash), STORE_TEXT(new_hash),
                              STORE_END};
    int rc;

    if (store_check_str(name, 1, STORE_NAME_MAX) != 0 ||
        store_check_str(old_hash, 1, STORE_PASSWORD_HASH_MAX) != 0 ||
        store_check_str(new_hash, 1, STORE_PASSWORD_HASH_MAX) != 0)
        return TV_ERR_INVALID;
    /* No row changed: the name is gone or its hash is no longer old_hash (someone else won). */
    if (s->kind == STORE_PG)
        rc = pgstore_account_rehash(s, name, old_hash, new_hash);
    else
        rc = store_write_one(s, SQL_REHASH, store_bind_params, p);
    return rc == TV_ERR_NOT_FOUND ? TV_ERR_CONFLICT : rc;
}

int store_account_epoch(struct store *s, const char *name, int64_t *epoch)
{
    int64_t v = 0;
    int has = 0;
    int rc;

    if (store_check_str(name, 1, STORE_NAME_MAX) != 0 || epoch == NULL)
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG)
        rc = pgstore_account_epoch(s, name, &v, &has);
    else
        rc = store_query_int64(s, SQL_EPOCH, name, &v, &has);
    if (rc == 0 && !has)
        rc = TV_ERR_NOT_FOUND;
    if (rc == 0)
        *epoch = v;
    return rc;
}

int store_account_delete(struct store *s, const char *name)
{
    int rc = store_check_str(name, 1, STORE_NAME_MAX);

    if (rc != 0)
        return rc;
    if (s->kind == STORE_PG)
        return pgstore_account_delete(s, name);
    return store_write_one(s, SQL_DELETE, store_bind_key, name);
}

int store_account_list(struct store *s, const char *after, int limit, struct store_account *out,
                       int *n)
{
    int rc = store_check_list(limit, out, n);

    if (rc != 0 || (after != NULL && store_check_str(after, 0, STORE_NAME_MAX) != 0))
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG)
        return pgstore_account_list(s, after, limit, out, n);
    return store_list_rows(s, SQL_LIST, store_bind_after, after, 2, limit, out, sizeof(*out),
                           account_row, n);
}
