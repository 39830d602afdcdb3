/* Meta table: small named blobs (service secrets such as the session signing key). */
#include <string.h>

#include "core/err.h"
#include "pg_tables.h"
#include "store/meta.h"
#include "store_int.h"

static const char SQL_GET[] = "SELECT value FROM meta WHERE key = ?1";
static const char SQL_PUT[] = "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)";
static const char SQL_PUT_NEW[] =
    "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING";
static const char SQL_DELETE[] = "DELETE FROM meta WHERE key = ?1";

/* Where store_meta_get puts a value. */
struct meta_out {
    void *buf;
    size_t cap;
    size_t *len;
};

static int meta_row(sqlite3_stmt *st, void *out)
{
    const struct meta_out *m = out;
    const void *p = sqlite3_column_blob(st, 0);
    size_t n = (size_t)sqlite3_column_bytes(st, 0);

    *m->len = n;
    if (n > m->cap)
        return TV_ERR_TOO_LARGE;
    if (n > 0)
        memcpy(m->buf, p, n);
    return 0;
}

int store_meta_get(struct store *s, const char *key, void *buf, size_t cap, size_t *len)
{
    struct meta_out m = {buf, cap, len};
    int rc = store_check_str(key, 1, STORE_META_KEY_MAX);

    if (rc != 0 || len == NULL || (buf == NULL && cap > 0))
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG)
        return pgstore_meta_get(s, key, buf, cap, len);
    return store_read_one(s, SQL_GET, store_bind_key, key, meta_row, &m);
}

static int meta_write(struct store *s, const char *sql, const char *key, const void *data,
                      size_t len, int *inserted)
{
    struct store_param p[] = {STORE_TEXT(key), STORE_BLOB(data, len), STORE_END};
    struct store_write_info info;
    int rc = store_check_str(key, 1, STORE_META_KEY_MAX);

    if (rc != 0 || len > STORE_META_VALUE_MAX || (data == NULL && len > 0))
        return TV_ERR_INVALID;
    if (s->kind == STORE_PG)
        return sql == SQL_PUT ? pgstore_meta_put(s, key, data, len)
                              : pgstore_meta_put_if_absent(s, key, data, len, inserted);
    rc = store_write_run(s, sql, store_bind_params, p, &info);
    if (rc == 0 && inserted != NULL)
        *inserted = info.changes > 0;
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
    if (s->kind == STORE_PG)
        return pgstore_meta_delete(s, key);
    return store_write_one(s, SQL_DELETE, store_bind_key, key);
}
