/* Choosing the store by the form of the db setting (store.h): a PostgreSQL URI or a SQLite
 * path. The backends themselves are db.c and pg_db.c. */
#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "core/dburi.h"
#include "core/err.h"
#include "core/log.h"
#include "pg_pool.h"
#include "store/store.h"
#include "store_int.h"

#define STORE_DEFAULT_POOL 8
#define STORE_DEFAULT_TIMEOUT_MS 5000

int store_open_opts(const struct store_opts *o, int migrate, struct store **out, char *err,
                    size_t errcap)
{
    struct pgpool_opts po;
    int rc;

    if (err == NULL || errcap == 0)
        return TV_ERR_INVALID;
    err[0] = '\0';
    if (o == NULL || o->db == NULL || o->db[0] == '\0' || out == NULL) {
        snprintf(err, errcap, "no database: set TOKENVEND_DB (or db in the config file)");
        return TV_ERR_CONFIG;
    }
    if (!dburi_is_pg(o->db)) {
        rc = sqlstore_open(o->db, migrate, out);
        if (rc == TV_ERR_CONFIG)
            snprintf(err, errcap,
                     "SQLite database %.300s: its schema does not match this binary (written by a "
                     "newer tokenvend, or migrations pending: run 'tokenvend migrate')",
                     o->db);
        else if (rc != 0)
            snprintf(err, errcap, "cannot open the SQLite database %.300s: %s", o->db,
                     err_message(rc));
        return rc;
    }
    memset(&po, 0, sizeof po);
    po.uri = o->db;
    po.size = o->pool_size > 0 ? o->pool_size : STORE_DEFAULT_POOL;
    po.connect_timeout_ms =
        o->connect_timeout_ms > 0 ? o->connect_timeout_ms : STORE_DEFAULT_TIMEOUT_MS;
    po.statement_timeout_ms =
        o->statement_timeout_ms > 0 ? o->statement_timeout_ms : STORE_DEFAULT_TIMEOUT_MS;
    return store_open_pg(&po, migrate, out, err, errcap);
}

void store_opts_from_config(const struct config *cfg, struct store_opts *o)
{
    memset(o, 0, sizeof *o);
    o->db = cfg->db;
    o->pool_size = (int)cfg->db_pool_size;
    o->connect_timeout_ms = cfg->db_connect_timeout_ms;
    o->statement_timeout_ms = cfg->db_statement_timeout_ms;
}

int store_open(const char *path, int migrate, struct store **out)
{
    struct store_opts o = {.db = path};
    char err[512];
    int rc;

    if (path == NULL || path[0] == '\0')
        return TV_ERR_INVALID;
    rc = store_open_opts(&o, migrate, out, err, sizeof err);

    /* The SQLite store logs its own failures; the PostgreSQL one explains itself in err. */
    if (rc != 0 && dburi_is_pg(path))
        log_msg(LOGL_ERROR, NULL, "store: %s", err);
    return rc;
}

int store_db_check(const char *db, char *err, size_t errcap)
{
    if (err == NULL || errcap == 0)
        return TV_ERR_INVALID;
    err[0] = '\0';
    if (db == NULL || db[0] == '\0') {
        snprintf(err, errcap, "no database: set TOKENVEND_DB (or db in the config file)");
        return TV_ERR_CONFIG;
    }
    return dburi_is_pg(db) ? pgpool_uri_check(db, err, errcap) : 0;
}

int store_is_pg(const struct store *s)
{
    return s != NULL && s->kind == STORE_PG;
}
