/* Meta table on PostgreSQL (meta.c is the SQLite sibling; the public functions there check
 * their arguments and call these). */
#include <string.h>

#include "core/err.h"
#include "pg_int.h"
#include "pg_tables.h"
#include "store/meta.h"

static const char SQL_GET[] = "SELECT value FROM meta WHERE key = $1";
/* SQLite's INSERT OR REPLACE. */
static const char SQL_PUT[] = "INSERT INTO meta (key, value) VALUES ($1, $2)"
                              " ON CONFLICT (key) DO UPDATE SET value = excluded.value";
static const char SQL_PUT_NEW[] =
    "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING";
static const char SQL_DELETE[] = "DELETE FROM meta WHERE key = $1";

/* Where pgstore_meta_get puts a value. */
struct meta_out {
    void *buf;
    size_t cap;
    size_t *len;
};

static int meta_row(const PGresult *r, int row, void *out)
{
    const struct meta_out *m = out;

    return pgs_col_bytea(r, row, 0, m->buf, m->cap, m->len);
}

int pgstore_meta_get(struct store *s, const char *key, void *buf, size_t cap, size_t *len)
{
    struct meta_out m = {buf, cap, len};
    struct store_param p[] = {STORE_TEXT(key), STORE_END};

    return pgs_read_one(s, SQL_GET, p, meta_row, &m);
}

static int meta_write(struct store *s, const char *sql, const char *key, const void *data,
                      size_t len, int *inserted)
{
    struct store_param p[] = {STORE_TEXT(key), STORE_BLOB(data, len), STORE_END};
    int64_t changes = 0;
    int rc = pgs_write_run(s, sql, p, &changes);

    if (rc == 0 && inserted != NULL)
        *inserted = changes > 0;
    return rc;
}

int pgstore_meta_put(struct store *s, const char *key, const void *data, size_t len)
{
    return meta_write(s, SQL_PUT, key, data, len, NULL);
}

int pgstore_meta_put_if_absent(struct store *s, const char *key, const void *data, size_t len,
                               int *inserted)
{
    return meta_write(s, SQL_PUT_NEW, key, data, len, inserted);
}

int pgstore_meta_delete(struct store *s, const char *key)
{
    struct store_param p[] = {STORE_TEXT(key), STORE_END};

    return pgs_write_one(s, SQL_DELETE, p);
}
