/* API keys table: name, public key id, SHA-256 of the secret; never the key itself. */
#include <string.h>

#include "core/err.h"
#include "pg_tables.h"
#include "store/apikeys.h"
#include "store_int.h"

/* last_used_ms is written at most this often per key, so authenticated reads stay reads. */
#define TOUCH_GRANULARITY_MS 60000

/* Every read gives the same ten columns: a name's current key, expires_ms (0), and its
 * previous key's id, end and last use; or, looked up by a previous key's id, that key in the
 * first seven and no previous key. */
#define KEY_COLS                                                                                   \
    "name, key_id, hash, created_ms, last_used_ms, revoked_ms, 0, prev_key_id, prev_expires_ms,"   \
    " prev_last_used_ms"
#define PREV_COLS                                                                                  \
    "name, prev_key_id, prev_hash, created_ms, prev_last_used_ms, revoked_ms, prev_expires_ms,"    \
    " '', 0, 0"

static const char SQL_INSERT[] =
    "INSERT INTO api_keys (name, key_id, hash, created_ms, last_used_ms, revoked_ms)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
static const char SQL_BY_KEY_ID[] =
    "SELECT " KEY_COLS " FROM api_keys WHERE key_id = ?1"
    " UNION ALL SELECT " PREV_COLS " FROM api_keys WHERE prev_key_id = ?1";
static const char SQL_BY_NAME[] = "SELECT " KEY_COLS " FROM api_keys WHERE name = ?1";
static const char SQL_LIST[] =
    "SELECT " KEY_COLS " FROM api_keys WHERE name > ?1 ORDER BY name LIMIT ?2";
static const char SQL_REVOKE[] = "UPDATE api_keys SET revoked_ms ="
                                 " CASE WHEN revoked_ms = 0 THEN ?2 ELSE revoked_ms END"
                                 " WHERE name = ?1";
static const char SQL_LAST_USED[] = "SELECT last_used_ms FROM api_keys WHERE key_id = ?1"
                                    " UNION ALL SELECT prev_last_used_ms FROM api_keys"
                                    " WHERE prev_key_id = ?1";
static const char SQL_TOUCH[] =
    "UPDATE api_keys SET"
    " last_used_ms = CASE WHEN key_id = ?1 THEN max(last_used_ms, ?2) ELSE last_used_ms END,"
    " prev_last_used_ms = CASE WHEN prev_key_id = ?1 THEN max(prev_last_used_ms, ?2)"
    " ELSE prev_last_used_ms END"
    " WHERE key_id = ?1 OR prev_key_id = ?1";
/* SET reads the row as it was: the current key moves to prev_* as the new one takes its place. */
static const char SQL_ROTATE[] =
    "UPDATE api_keys SET prev_key_id = key_id, prev_hash = hash, prev_expires_ms = ?5,"
    " prev_last_used_ms = last_used_ms, key_id = ?2, hash = ?3, created_ms = ?4,"
    " last_used_ms = 0 WHERE name = ?1 AND revoked_ms = 0 AND key_id = ?6";

static int key_from_row(sqlite3_stmt *st, struct store_apikey *k)
{
    const void *hash = sqlite3_column_blob(st, 2);
    int rc = store_col_text(st, 0, k->name, sizeof(k->name));

    if (rc == 0)
        rc = store_col_text(st, 1, k->key_id, sizeof(k->key_id));
    if (rc == 0 && (hash == NULL || sqlite3_column_bytes(st, 2) != STORE_KEY_HASH_LEN))
        rc = TV_ERR_INTERNAL;
    if (rc == 0)
        memcpy(k->hash, hash, STORE_KEY_HASH_LEN);
    k->created_ms = sqlite3_column_int64(st, 3);
    k->last_used_ms = sqlite3_column_int64(st, 4);
    k->revoked_ms = sqlite3_column_int64(st, 5);
    k->expires_ms = sqlite3_column_int64(st, 6);
    if (rc == 0)
        rc = store_col_text(st, 7, k->prev_key_id, sizeof(k->prev_key_id));
    k->prev_expires_ms = sqlite3_column_int64(st, 8);
    k->prev_last_used_ms = sqlite3_column_int64(st, 9);
    return rc;
}

int store_apikey_insert(struct store *s, const struct store_apikey *k)
{
    if (k == NULL || store_check_str(k->name, 1, STORE_NAME_MAX) != 0 ||
        store_check_str(k->key_id, 1, STORE_KEY_ID_MAX) != 0)
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG)
        return pgstore_apikey_insert(s, k);
    struct store_param p[] = {STORE_TEXT(k->name),
                              STORE_TEXT(k->key_id),
                              STORE_BLOB(k->hash, STORE_KEY_HASH_LEN),
                              STORE_INT64(k->created_ms),
                              STORE_INT64(k->last_used_ms),
                              STORE_INT64(k->revoked_ms),
                              STORE_END};
    return store_write_run(s, SQL_INSERT, store_bind_params, p, NULL);
}

/* A store_row_fn for one key. */
static int key_row(sqlite3_stmt *st, void *out)
{
    return key_from_row(st, out);
}

static int key_get_one(struct store *s, const char *sql, const char *arg, size_t max,
                       struct store_apikey *out)
{
    struct store_apikey k;

    return store_get_by_key(s, sql, arg, max, key_row, &k, out, sizeof k);
}

int store_apikey_get_by_key_id(struct store *s, const char *key_id, struct store_apikey *out)
{
    if (s->kind == STORE_PG)
        return pgstore_apikey_get_by_key_id(s, key_id, out);
    return key_get_one(s, SQL_BY_KEY_ID, key_id, STORE_KEY_ID_MAX, out);
}

int store_apikey_get(struct store *s, const char *name, struct store_apikey *out)
{
    if (s->kind == STORE_PG)
        return pgstore_apikey_get(s, name, out);
    return key_get_one(s, SQL_BY_NAME, name, STORE_NAME_MAX, out);
}

int store_apikey_list(struct store *s, const char *after, int limit, struct store_apikey *out,
                      int *n)
{
    int rc = store_check_list(limit, out, n);

    if (rc != 0 || (after != NULL && store_check_str(after, 0, STORE_NAME_MAX) != 0))
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG)
        return pgstore_apikey_list(s, after, limit, out, n);
    return store_list_rows(s, SQL_LIST, store_bind_after, after, 2, limit, out, sizeof(*out),
                           key_row, n);
}

/* An UPDATE of one key by a text column; TV_ERR_NOT_FOUND when no row matched. */
static int key_update(struct store *s, const char *sql, const char *arg, int64_t ms)
{
    struct store_key_ms k = {arg, ms};

    return store_write_one(s, sql, store_bind_key_ms, &k);
}

int store_apikey_revoke(struct store *s, const char *name, int64_t ms)
{
    if (store_check_str(name, 1, STORE_NAME_MAX) != 0)
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG)
        return pgstore_apikey_revoke(s, name, ms);
    return key_update(s, SQL_REVOKE, name, ms);
}

int store_apikey_rotate(struct store *s, const char *name, const char *cur_key_id,
                        const struct store_apikey *next, int64_t prev_expires_ms)
{
    struct store_apikey now;
    int rc;

    if (next == NULL || store_check_str(name, 1, STORE_NAME_MAX) != 0 ||
        store_check_str(cur_key_id, 1, STORE_KEY_ID_MAX) != 0 ||
        store_check_str(next->key_id, 1, STORE_KEY_ID_MAX) != 0)
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG) {
        rc = pgstore_apikey_rotate(s, name, cur_key_id, next, prev_expires_ms);
    } else {
        struct store_param p[] = {STORE_TEXT(name),
                                  STORE_TEXT(next->key_id),
                                  STORE_BLOB(next->hash, STORE_KEY_HASH_LEN),
                                  STORE_INT64(next->created_ms),
                                  STORE_INT64(prev_expires_ms),
                                  STORE_TEXT(cur_key_id),
                                  STORE_END};
        rc = store_write_one(s, SQL_ROTATE, store_bind_params, p);
    }
    /* No row changed: gone or revoked (not found), or another rotation came first. */
    if (rc == TV_ERR_NOT_FOUND && store_apikey_get(s, name, &now) == 0 && now.revoked_ms == 0 &&
        strcmp(now.key_id, cur_key_id) != 0)
        rc = TV_ERR_CONFLICT;
    return rc;
}

int store_apikey_touch_used(struct store *s, const char *key_id, int64_t ms)
{
    int64_t last = 0;
    int has = 0;
    int rc = store_check_str(key_id, 1, STORE_KEY_ID_MAX);

    if (rc != 0)
        return rc;
    if (s->kind == STORE_PG)
        rc = pgstore_apikey_last_used(s, key_id, &last, &has);
    else
        rc = store_query_int64(s, SQL_LAST_USED, key_id, &last, &has);
    if (rc == 0 && !has)
        rc = TV_ERR_NOT_FOUND;
    if (rc == 0 && ms - last >= TOUCH_GRANULARITY_MS)
        rc = s->kind == STORE_PG ? pgstore_apikey_touch(s, key_id, ms)
                                 : key_update(s, SQL_TOUCH, key_id, ms);
    return rc;
}
