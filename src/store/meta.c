/* Meta table: small named blobs (service secrets such as the session signing key). */
#include <string.h>

#include "core/err.h"
#include "store/meta.h"
#include "store_int.h"

static const char SQL_GET[] = "SELECT value FROM meta WHERE key = ?1";
static const char SQL_PUT[] = "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)";
static const char SQL_PUT_NEW[] =
    "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING";
static const char SQL_DELETE[] = "DELETE FROM meta WHERE key = ?1";

int store_meta_get(struct store *s, const char *key, void *buf, size_t cap, size_t *len)
{
    struct store_conn *c;
    sqlite3_stmt *st;
    int row = 0;
    int rc = store_check_str(key, 1, STORE_META_KEY_MAX);

    if (rc != 0 || len == NULL || (buf == NULL && cap > 0))
        return TV_ERR_INVALID;
    rc = store_read_begin(s, &c);
    if (rc != 0)
        return rc;
    rc = store_stmt(c, SQL_GET, &st);
    if (rc == 0) {
        store_bind_text(st, 1, key);
        rc = store_step(c, st, &row);
        if (rc == 0 && !row)
            rc = TV_ERR_NOT_FOUND;
        if (rc == 0) {
            const void *p = sqlite3_column_blob(st, 0);
            size_t n = (size_t)sqlite3_column_bytes(st, 0);

            *len = n;
            if (n > cap)
                rc = TV_ERR_TOO_LARGE;
            else if (n > 0)
                memcpy(buf, p, n);
        }
        /* Reset at once: SQLite's copy of a secret value is freed with the row. */
        store_stmt_done(st);
    }
    store_read_end(s, c);
    return rc;
}

static int meta_write(struct store *s, const char *sql, const char *key, const void *data,
                      size_t len, int *inserted)
{
    struct store_conn *c;
    sqlite3_stmt *st;
    int changed = 0;
    int rc = store_check_str(key, 1, STORE_META_KEY_MAX);

    if (rc != 0 || len > STORE_META_VALUE_MAX || (data == NULL && len > 0))
        return TV_ERR_INVALID;
    rc = store_write_begin(s, &c);
    if (rc != 0)
        return rc;
    rc = store_stmt(c, sql, &st);
    if (rc == 0) {
        store_bind_text(st, 1, key);
        /* A zero-length blob, not NULL: the column is NOT NULL and "" is a valid value. */
        sqlite3_bind_blob(st, 2, len > 0 ? data : "", (int)len, SQLITE_STATIC);
        rc = store_step_done(c, st);
        store_stmt_done(st);
        changed = sqlite3_changes(c->db) > 0;
    }
    rc = store_write_end(s, c, rc);
    if (rc == 0 && inserted != NULL)
        *inserted = changed;
    return rc;
}

int store_meta_put(struct store *s, const char *key, const void *data, size_t len)
{
    return meta_write(s, SQL_PUT, key, data, len, NULL);
}

int store_meta_put_if_absent(struct store *s, const char *key, const void *data, size_t len,
                             int *inserted)
{
    return meta_write(s, SQL_PUT_NEW, key, data, len, inserted);
}

int store_meta_delete(struct store *s, const char *key)
{
    int rc = store_check_str(key, 1, STORE_META_KEY_MAX);

    if (rc != 0)
        return rc;
    return store_write_one(s, SQL_DELETE, store_bind_key, key);
}
