/* The store suites' backend switch (see store_fx.h). */
#include "store_fx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "core/log.h"
#include "store/pg_pool.h"
#include "store/store_int.h"

static struct pg_harness g_pg;
static int g_next_db;

int store_fx_is_pg(void)
{
    const char *v = getenv("TV_TEST_STORE");

    return v != NULL && strcmp(v, "pg") == 0;
}

int store_fx_group_setup(void **state)
{
    (void)state;
    if (!store_fx_is_pg())
        return 0;
    log_setup(getenv("TV_LOG_DEBUG") != NULL ? LOGL_DEBUG : LOGL_OFF, 2);
    if (pg_start(&g_pg) != 0)
        return -1;
    fprintf(stderr, "store suite on PostgreSQL (port %d)\n", g_pg.port);
    return 0;
}

int store_fx_group_teardown(void **state)
{
    (void)state;
    return store_fx_is_pg() ? pg_stop(&g_pg) : 0;
}

int store_fx_new(struct store_fx *fx, const char *path)
{
    char sql[256];

    memset(fx, 0, sizeof(*fx));
    snprintf(fx->path, sizeof(fx->path), "%s", path);
    if (!store_fx_is_pg())
        return 0;
    /* A database per store: CREATE DATABASE copies template0 in a few milliseconds, cheaper
     * and more thorough than emptying every table between tests. Its collation is ICU's en-US,
     * not the cluster's C: production databases sort text by a language's rules, and the store
     * must still page in byte order (as SQLite does) there. */
    snprintf(fx->db, sizeof(fx->db), "t%d", ++g_next_db);
    snprintf(sql, sizeof(sql),
             "CREATE DATABASE %s OWNER %s TEMPLATE template0 ENCODING 'UTF8'"
             " LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'",
             fx->db, g_pg.user);
    if (pg_admin_exec(&g_pg, sql) != 0)
        return -1;
    return pg_uri_with(&g_pg, "", "", fx->db, fx->uri, sizeof(fx->uri));
}

int store_fx_open(const struct store_fx *fx, int migrate, struct store **out)
{
    struct pgpool_opts o = {
        .uri = fx->uri, .size = 4, .connect_timeout_ms = 10000, .statement_timeout_ms = 30000};
    char err[PGPOOL_ERR_MAX];
    int rc;

    if (!store_fx_is_pg())
        return store_open(fx->path, migrate, out);
    rc = store_open_pg(&o, migrate, out, err, sizeof(err));
    if (rc != 0 && getenv("TV_LOG_DEBUG") != NULL)
        fprintf(stderr, "store_open_pg: %s\n", err);
    return rc;
}

void store_fx_drop(struct store_fx *fx)
{
    char sql[96];

    if (!store_fx_is_pg() || fx->db[0] == '\0')
        return;
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", fx->db);
    (void)pg_admin_exec(&g_pg, sql);
    fx->db[0] = '\0';
}

int store_fx_admin_exec(const struct store_fx *fx, const char *sql)
{
    char uri[PG_URI_MAX];
    PGconn *c;
    PGresult *r;
    int rc = -1;

    if (!store_fx_is_pg() || pg_uri_with(&g_pg, "", "", fx->db, uri, sizeof(uri)) != 0)
        return -1;
    /* The role owns its database, so it may change any table in it. */
    c = PQconnectdb(uri);
    if (PQstatus(c) == CONNECTION_OK) {
        r = PQexec(c, sql);
        rc = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK ? 0 : -1;
        if (rc != 0)
            fprintf(stderr, "store_fx: %s: %s", sql, PQerrorMessage(c));
        PQclear(r);
    }
    PQfinish(c);
    return rc;
}

int store_fx_pause(void)
{
    return store_fx_is_pg() ? pg_pause(&g_pg) : -1;
}

int store_fx_resume(void)
{
    return store_fx_is_pg() ? pg_resume(&g_pg) : -1;
}

int store_fx_tmp_setup(void **state)
{
    struct store_fx_tmp *f = calloc(1, sizeof(*f));
    int rc = -1;

    if (f == NULL)
        goto out;
    snprintf(f->dir, sizeof(f->dir), "/tmp/tv-store-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        f->dir[0] = '\0';
        goto out;
    }
    snprintf(f->path, sizeof(f->path), "%s/tv.db", f->dir);
    if (store_fx_new(&f->sx, f->path) != 0 || store_fx_open(&f->sx, 1, &f->s) != 0)
        goto out;
    *state = f;
    f = NULL;
    rc = 0;
out:
    if (f != NULL) {
        /* A failed setup gets no teardown from cmocka: undo here what was made. */
        *state = f;
        (void)store_fx_tmp_teardown(state);
        *state = NULL;
    }
    return rc;
}

int store_fx_tmp_teardown(void **state)
{
    struct store_fx_tmp *f = *state;
    char p[sizeof(f->path) + 8];

    if (f == NULL)
        return 0;
    store_close(f->s);
    store_fx_drop(&f->sx);
    if (f->dir[0] != '\0') {
        /* SQLite leaves its write-ahead log and shared memory beside the file. */
        unlink(f->path);
        snprintf(p, sizeof(p), "%s-wal", f->path);
        unlink(p);
        snprintf(p, sizeof(p), "%s-shm", f->path);
        unlink(p);
        rmdir(f->dir);
    }
    free(f);
    *state = NULL;
    return 0;
}
