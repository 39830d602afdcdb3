/* API keys table on PostgreSQL (apikeys.c is the SQLite sibling; the public functions there
 * check their arguments and call these). */
#include <string.h>

#include "core/err.h"
#include "pg_int.h"
#include "pg_tables.h"
#include "store/apikeys.h"

/* The ten columns of apikeys.c's reads (its KEY_COLS, PREV_COLS). */
#define KEY_COLS                                                                                   \
    "name, key_id, hash, created_ms, last_used_ms, revoked_ms, 0::bigint, prev_key_id,"            \
    " prev_expires_ms, prev_last_used_ms"
#define PREV_COLS                                                                                  \
    "name, prev_key_id, prev_hash, created_ms, prev_last_used_ms, revoked_ms, prev_expires_ms,"    \
    " ''::text, 0::bigint, 0::bigint"

static const char SQL_INSERT[] =
    "INSERT INTO api_keys (name, key_id, hash, created_ms, last_used_ms, revoked_ms)"
    " VALUES ($1, $2, $3, $4, $5, $6)";
static const char SQL_BY_KEY_ID[] =
    "SELECT " KEY_COLS " FROM api_keys WHERE key_id = $1"
    " UNION ALL SELECT " PREV_COLS " FROM api_keys WHERE prev_key_id = $1";
static const char SQL_BY_NAME[] = "SELECT " KEY_COLS " FROM api_keys WHERE name = $1";
/* Byte order, as on SQLite (see pg_users.c). */
static const char SQL_LIST[] = "SELECT " KEY_COLS " FROM api_keys WHERE name COLLATE \"C\" > $1"
                               " ORDER BY name COLLATE \"C\" LIMIT $2";
static const char SQL_REVOKE[] = "UPDATE api_keys SET revoked_ms ="
                                 " CASE WHEN revoked_ms = 0 THEN $2::bigint ELSE revoked_ms END"
                                 " WHERE name = $1";
static const char SQL_LAST_USED[] = "SELECT last_used_ms FROM api_keys WHERE key_id = $1"
                                    " UNION ALL SELECT prev_last_used_ms FROM api_keys"
                                    " WHERE prev_key_id = $1";
static const char SQL_TOUCH[] =
    "UPDATE api_keys SET last_used_ms = CASE WHEN key_id = $1"
    " THEN GREATEST(last_used_ms, $2::bigint) ELSE last_used_ms END,"
    " prev_last_used_ms = CASE WHEN prev_key_id = $1"
    " THEN GREATEST(prev_last_used_ms, $2::bigint) ELSE prev_last_used_ms END"
    " WHERE key_id = $1 OR prev_key_id = $1";
/* SET reads the row as it was: the current key moves to prev_* as the new one takes its place. */
static const char SQL_ROTATE[] =
    "UPDATE api_keys SET prev_key_id = key_id, prev_hash = hash, prev_expires_ms = $5::bigint,"
    " prev_last_used_ms = last_used_ms, key_id = $2, hash = $3, created_ms = $4::bigint,"
    " last_used_ms = 0 WHERE name = $1 AND revoked_ms = 0 AND key_id = $6";

static int key_row(const PGresult *r, int row, void *out)
{
    struct store_apikey *k = out;
    size_t len = 0;
    int rc = pgs_col_text(r, row, 0, k->name, sizeof(k->name));

    if (rc == 0)
        rc = pgs_col_text(r, row, 1, k->key_id, sizeof(k->key_id));
    if (rc == 0)
        rc = pgs_col_bytea(r, row, 2, k->hash, sizeof(k->hash), &len);
    if (rc == 0 && len != STORE_KEY_HASH_LEN)
        rc = TV_ERR_INTERNAL;
    if (rc == TV_ERR_TOO_LARGE)
        rc = TV_ERR_INTERNAL;
    k->created_ms = pgs_col_int64(r, row, 3);
    k->last_used_ms = pgs_col_int64(r, row, 4);
    k->revoked_ms = pgs_col_int64(r, row, 5);
    k->expires_ms = pgs_col_int64(r, row, 6);
    if (rc == 0)
        rc = pgs_col_text(r, row, 7, k->prev_key_id, sizeof(k->prev_key_id));
    k->prev_expires_ms = pgs_col_int64(r, row, 8);
    k->prev_last_used_ms = pgs_col_int64(r, row, 9);
    return rc;
}

int pgstore_apikey_insert(struct store *s, const struct store_apikey *k)
{
    struct store_param p[] = {STORE_TEXT(k->name),
                              STORE_TEXT(k->key_id),
                              STORE_BLOB(k->hash, STORE_KEY_HASH_LEN),
                              STORE_INT64(k->created_ms),
                              STORE_INT64(k->last_used_ms),
                              STORE_INT64(k->revoked_ms),
                              STORE_END};

    return pgs_write_run(s, SQL_INSERT, p, NULL);
}

int pgstore_apikey_get_by_key_id(struct store *s, const char *key_id, struct store_apikey *out)
{
    struct store_apikey k;

    return pgs_get_by_key(s, SQL_BY_KEY_ID, key_id, STORE_KEY_ID_MAX, key_row, &k, out, sizeof k);
}

int pgstore_apikey_get(struct store *s, const char *name, struct store_apikey *out)
{
    struct store_apikey k;

    return pgs_get_by_key(s, SQL_BY_NAME, name, STORE_NAME_MAX, key_row, &k, out, sizeof k);
}

int pgstore_apikey_list(struct store *s, const char *after, int limit, struct store_apikey *out,
                        int *n)
{
    struct store_param p[] = {STORE_TEXT(after != NULL ? after : ""), STORE_INT64(limit),
                              STORE_END};

    return pgs_list_rows(s, SQL_LIST, p, limit, out, sizeof(*out), key_row, n);
}

int pgstore_apikey_revoke(struct store *s, const char *name, int64_t ms)
{
    struct store_param p[] = {STORE_TEXT(name), STORE_INT64(ms), STORE_END};

    return pgs_write_one(s, SQL_REVOKE, p);
}

int pgstore_apikey_last_used(struct store *s, const char *key_id, int64_t *last, int *has)
{
    return pgs_query_int64(s, SQL_LAST_USED, key_id, last, has);
}

int pgstore_apikey_touch(struct store *s, const char *key_id, int64_t ms)
{
    struct store_param p[] = {STORE_TEXT(key_id), STORE_INT64(ms), STORE_END};

    return pgs_write_one(s, SQL_TOUCH, p);
}

int pgstore_apikey_rotate(struct store *s, const char *name, const char *cur_key_id,
                          const struct store_apikey *next, int64_t prev_expires_ms)
{
    struct store_param p[] = {STORE_TEXT(name),
                              STORE_TEXT(next->key_id),
                              STORE_BLOB(next->hash, STORE_KEY_HASH_LEN),
                              STORE_INT64(next->created_ms),
                              STORE_INT64(prev_expires_ms),
                              STORE_TEXT(cur_key_id),
                              STORE_END};

    return pgs_write_one(s, SQL_ROTATE, p);
}
