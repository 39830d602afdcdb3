/* PostgreSQL migrations (src/store/pg_migrate.c) against a real server (tests/lib/pg.c): five
 * runners migrating one empty database at once apply each migration exactly once without an
 * error; a second run applies nothing; a missing version is applied alone; the schema keeps
 * the SQLite constraints; a schema newer than the binary is refused with one clear line. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "core/err.h"
#include "core/log.h"
#include "pg.h"
#include "store/migrations.h"
#include "store/pg_migrate.h"
#include "store/pg_pool.h"

#define RUNNERS 5

static struct pg_harness g_pg;
static int g_dbs; /* databases made so far: each test gets an empty one */

static int group_setup(void **state)
{
    (void)state;
    log_setup(getenv("TV_LOG_DEBUG") != NULL ? LOGL_DEBUG : LOGL_OFF, 2);
    return pg_start(&g_pg);
}

static int group_teardown(void **state)
{
    (void)state;
    return pg_stop(&g_pg);
}

/* A new empty database owned by the application role; its URI goes to uri. */
static void fresh_db(char *uri, size_t cap)
{
    char name[32], sql[96];

    snprintf(name, sizeof(name), "mig%d", ++g_dbs);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s OWNER tv_app", name);
    assert_int_equal(pg_admin_exec(&g_pg, sql), 0);
    assert_int_equal(pg_uri_with(&g_pg, NULL, NULL, name, uri, cap), 0);
}

static struct pgpool *pool_on(const char *uri)
{
    struct pgpool_opts o = {
        .uri = uri, .size = 2, .connect_timeout_ms = 5000, .statement_timeout_ms = 5000};
    struct pgpool *p = NULL;
    char err[PGPOOL_ERR_MAX];

    assert_int_equal(pgpool_new(&o, &p, err, sizeof(err)), 0);
    return p;
}

static long count_of(struct pgpool *p, const char *sql)
{
    PGresult *r = NULL;
    long n;

    assert_int_equal(pgpool_exec(p, sql, 0, NULL, NULL, NULL, PGPOOL_RETRY, &r), 0);
    n = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return n;
}

struct runner {
    const char *uri;
    pthread_barrier_t *start;
    int rc;
    int applied;
    char err[PGPOOL_ERR_MAX];
};

/* One replica starting: its own pool, then the migration, released with the others at once. */
static void *run_one(void *arg)
{
    struct runner *r = arg;
    struct pgpool_opts o = {
        .uri = r->uri, .size = 1, .connect_timeout_ms = 5000, .statement_timeout_ms = 5000};
    struct pgpool *p = NULL;

    r->rc = pgpool_new(&o, &p, r->err, sizeof(r->err));
    pthread_barrier_wait(r->start);
    if (r->rc == 0)
        r->rc = pgmig_run(p, &r->applied, r->err, sizeof(r->err));
    pgpool_free(p);
    return NULL;
}

static void test_concurrent_runners_apply_once(void **state)
{
    char uri[PG_URI_MAX];
    struct runner rs[RUNNERS];
    pthread_t th[RUNNERS];
    pthread_barrier_t start;
    struct pgpool *p;
    int total = 0, v = 0;

    (void)state;
    fresh_db(uri, sizeof(uri));
    pthread_barrier_init(&start, NULL, RUNNERS);
    for (int i = 0; i < RUNNERS; i++) {
        rs[i] = (struct runner){.uri = uri, .start = &start, .rc = -1};
        assert_int_equal(pthread_create(&th[i], NULL, run_one, &rs[i]), 0);
    }
    for (int i = 0; i < RUNNERS; i++) {
        pthread_join(th[i], NULL);
        if (rs[i].rc != 0)
            fprintf(stderr, "runner %d: %s\n", i, rs[i].err);
        assert_int_equal(rs[i].rc, 0);
        total += rs[i].applied;
    }
    pthread_barrier_destroy(&start);
    assert_int_equal(total, (int)store_pg_migrations_count);
    p = pool_on(uri);
    assert_int_equal(count_of(p, "SELECT count(*) FROM schema_migrations"),
                     (long)store_pg_migrations_count);
    assert_int_equal(count_of(p, "SELECT count(DISTINCT version) FROM schema_migrations"),
                     (long)store_pg_migrations_count);
    assert_int_equal(pgmig_version(p, &v), 0);
    assert_int_equal(v, store_pg_migrations[store_pg_migrations_count - 1].version);
    pgpool_free(p);
}

static void test_rerun_and_gap(void **state)
{
    char uri[PG_URI_MAX], err[PGPOOL_ERR_MAX];
    struct pgpool *p;
    int applied = -1;

    (void)state;
    fresh_db(uri, sizeof(uri));
    p = pool_on(uri);
    assert_int_equal(pgmig_run(p, &applied, err, sizeof(err)), 0);
    assert_int_equal(applied, (int)store_pg_migrations_count);
    assert_int_equal(pgmig_run(p, &applied, err, sizeof(err)), 0);
    assert_int_equal(applied, 0);
    /* A database missing version 5 alone (restored by hand) gets it, and only it. */
    assert_int_equal(pgpool_exec(p, "DROP INDEX audit_by_ts", 0, NULL, NULL, NULL, 0, NULL), 0);
    assert_int_equal(pgpool_exec(p, "DELETE FROM schema_migrations WHERE version = 5", 0, NULL,
                                 NULL, NULL, 0, NULL),
                     0);
    assert_int_equal(pgmig_run(p, &applied, err, sizeof(err)), 0);
    assert_int_equal(applied, 1);
    assert_int_equal(count_of(p, "SELECT count(*) FROM pg_indexes WHERE indexname = 'audit_by_ts'"),
                     1);
    pgpool_free(p);
}

static void test_schema_constraints(void **state)
{
    char uri[PG_URI_MAX], err[PGPOOL_ERR_MAX];
    const char *map[] = {"alice", "8:acs:1", "res"};
    const char *map2[] = {"alice", "8:acs:2", "res"};
    const char *key[] = {"k1", "id1", "short"};
    const int lens[] = {0, 0, 5}, fmts[] = {0, 0, 1};
    const char *ins_map = "INSERT INTO mappings (app_user_id, acs_id, resource, created_ms) "
                          "VALUES ($1, $2, $3, 1)";
    struct pgpool *p;

    (void)state;
    fresh_db(uri, sizeof(uri));
    p = pool_on(uri);
    assert_int_equal(pgmig_run(p, NULL, err, sizeof(err)), 0);
    assert_int_equal(pgpool_exec(p, ins_map, 3, map, NULL, NULL, 0, NULL), 0);
    /* The UNIQUE backstop of concurrent first requests. */
    assert_int_equal(pgpool_exec(p, ins_map, 3, map2, NULL, NULL, 0, NULL), TV_ERR_CONFLICT);
    /* API key hashes are 32 bytes. */
    assert_int_equal(pgpool_exec(p,
                                 "INSERT INTO api_keys (name, key_id, hash, created_ms) "
                                 "VALUES ($1, $2, $3, 1)",
                                 3, key, lens, fmts, 0, NULL),
                     TV_ERR_INVALID);
    assert_int_equal(count_of(p, "SELECT count(*) FROM mappings"), 1);
    pgpool_free(p);
}

static void test_newer_schema_refused(void **state)
{
    char uri[PG_URI_MAX], err[PGPOOL_ERR_MAX];
    struct pgpool *p;
    int applied = -1;

    (void)state;
    fresh_db(uri, sizeof(uri));
    p = pool_on(uri);
    assert_int_equal(pgmig_run(p, NULL, err, sizeof(err)), 0);
    assert_int_equal(pgpool_exec(p, "INSERT INTO schema_migrations VALUES (9999, '9999_future', 1)",
                                 0, NULL, NULL, NULL, 0, NULL),
                     0);
    assert_int_equal(pgmig_run(p, &applied, err, sizeof(err)), TV_ERR_CONFIG);
    assert_int_equal(applied, 0);
    assert_non_null(strstr(err, "database schema version 9999 is not one this binary knows"));
    assert_null(strchr(err, '\n'));
    pgpool_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_runners_apply_once),
        cmocka_unit_test(test_rerun_and_gap),
        cmocka_unit_test(test_schema_constraints),
        cmocka_unit_test(test_newer_schema_refused),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
