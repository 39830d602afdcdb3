/* store_peek: a read-only look at an existing SQLite database (config check). A connection of
 * its own, opened read-only and query_only, so nothing in the file can change; the schema
 * version comes from store_version_get, the function every open uses. */
#include "store/peek.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "core/err.h"
#include "store_int.h"

static const char SQL_HAS_TABLE[] =
    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1";
static const char SQL_META[] = "SELECT value FROM meta WHERE key = ?1";

/* Whether table name exists: 0 with *has, or a mapped error. */
static int peek_has_table(struct store_conn *c, const char *name, int *has)
{
    sqlite3_stmt *st;
    int row = 0, rc = store_stmt(c, SQL_HAS_TABLE, &st);

    if (rc != 0)
        return rc;
    if ((rc = store_bind_text(st, 1, name)) == 0 && (rc = store_step(c, st, &row)) == 0)
        *has = row && sqlite3_column_int(st, 0) > 0;
    store_stmt_done(st);
    return rc;
}

/* The meta value of key into buf[cap]: 0 (out->has_meta says whether there is one). */
static int peek_meta(struct store_conn *c, const char *key, void *buf, size_t cap,
                     struct store_peek *out)
{
    sqlite3_stmt *st;
    int row = 0, rc = store_stmt(c, SQL_META, &st);

    if (rc != 0)
        return rc;
    if ((rc = store_bind_text(st, 1, key)) == 0 && (rc = store_step(c, st, &row)) == 0 && row) {
        const void *p = sqlite3_column_blob(st, 0);
        size_t n = (size_t)sqlite3_column_bytes(st, 0);
        if (n > cap) {
            rc = TV_ERR_TOO_LARGE;
        } else {
            if (n > 0)
                memcpy(buf, p, n);
            out->len = n;
            out->has_meta = 1;
        }
    }
    store_stmt_done(st);
    return rc;
}

/* The URI that opens path read-only. A read-only connection cannot remove the -wal and -shm
 * files it makes, so where there is no -wal (no process has the database open, and the last one
 * checkpointed everything into the file) the file is opened immutable, which makes none; with a
 * -wal (serve running, or stopped by a crash) the WAL must be read, and its files exist already.
 * '%', '?' and '#' in the path are escaped. 0 or TV_ERR_TOO_LARGE. */
static int peek_uri(const char *path, char *uri, size_t cap)
{
    char wal[PATH_MAX];
    struct stat sb;
    size_t at = 0;
    int n;

    if (snprintf(wal, sizeof wal, "%s-wal", path) >= (int)sizeof wal)
        return TV_ERR_TOO_LARGE;
    n = snprintf(uri, cap, "file:");
    at = (size_t)n;
    for (const char *p = path; *p != '\0'; p++) {
        if (at + 4 >= cap)
            return TV_ERR_TOO_LARGE;
        if (*p == '%' || *p == '?' || *p == '#')
            at += (size_t)snprintf(uri + at, cap - at, "%%%02X", (unsigned)(unsigned char)*p);
        else
            uri[at++] = *p;
    }
    n = snprintf(uri + at, cap - at, "?mode=ro%s", stat(wal, &sb) == 0 ? "" : "&immutable=1");
    return n > 0 && (size_t)n < cap - at ? 0 : TV_ERR_TOO_LARGE;
}

int store_peek(const char *path, const char *meta_key, void *buf, size_t cap,
               struct store_peek *out, char *err, size_t errcap)
{
    static char uri[2 * PATH_MAX]; /* config check runs this once, from one thread */
    struct store_conn c = {0};
    struct stat sb;
    int rc, src, has = 0;

    memset(out, 0, sizeof *out);
    out->latest = store_version_latest();
    if (errcap > 0)
        err[0] = '\0';
    /* Nothing there, or nothing this user may reach: nothing to look into. Whether the file can
     * be created or opened is serve's store open to say, after its listeners are bound. */
    if (stat(path, &sb) != 0)
        return TV_ERR_NOT_FOUND;
    if ((rc = peek_uri(path, uri, sizeof uri)) != 0) {
        if (errcap > 0)
            snprintf(err, errcap, "the path is too long to open read-only");
        return rc;
    }
    /* READONLY without CREATE: the file is never made. */
    src = sqlite3_open_v2(uri, &c.db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX,
                          NULL);
    if (src != SQLITE_OK) {
        if (errcap > 0)
            snprintf(err, errcap, "cannot open %s read-only: %s", path,
                     c.db != NULL ? sqlite3_errmsg(c.db) : sqlite3_errstr(src));
        rc = TV_ERR_IO;
        goto done;
    }
    sqlite3_extended_result_codes(c.db, 1);
    sqlite3_busy_timeout(c.db, STORE_BUSY_TIMEOUT_MS);
    if ((rc = peek_has_table(&c, "schema_migrations", &has)) == 0 && has)
        rc = store_version_get(&c, &out->version);
    out->foreign = rc == 0 && out->version != 0 && !store_version_known(out->version);
    if (rc == 0 && meta_key != NULL && (rc = peek_has_table(&c, "meta", &has)) == 0 && has)
        rc = peek_meta(&c, meta_key, buf, cap, out);
    if (rc != 0 && rc != TV_ERR_TOO_LARGE && errcap > 0)
        snprintf(err, errcap, "cannot read %s: %s", path, sqlite3_errmsg(c.db));
done:
    for (size_t i = 0; i < c.nstmts; i++)
        sqlite3_finalize(c.stmts[i].st);
    sqlite3_close(c.db);
    return rc;
}
