/* The libpq connection pool (src/store/pg_pool.c) against a real PostgreSQL (tests/lib/pg.c):
 * bound parameters, the pool size under concurrent threads, reconnecting after a server
 * restart (a read retried, a write not, a transaction re-run exactly once), clear errors for a
 * wrong password, a missing database, a malformed URI, a refused and a silent port, and the
 * statement timeout. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "emu.h"
#include "pg.h"
#include "store/pg_pool.h"

#define THREADS 12
#define POOL_SIZE 3
#define BOUNDED_MS 30000 /* generous: only "it ended" checks */

static struct pg_harness g_pg;

static int group_setup(void **state)
{
    (void)state;
    log_setup(getenv("TV_LOG_DEBUG") != NULL ? LOGL_DEBUG : LOGL_OFF, 2);
    if (pg_start(&g_pg) != 0)
        return -1;
    return pg_admin_exec(&g_pg, "ALTER DATABASE tv SET log_min_messages = 'warning'");
}

static int group_teardown(void **state)
{
    (void)state;
    return pg_stop(&g_pg);
}

static struct pgpool *pool_new(int size, long stmt_ms)
{
    struct pgpool_opts o = {.uri = pg_uri(&g_pg),
                            .size = size,
                            .connect_timeout_ms = 5000,
                            .statement_timeout_ms = stmt_ms};
    struct pgpool *p = NULL;
    char err[PGPOOL_ERR_MAX];

    assert_int_equal(pgpool_new(&o, &p, err, sizeof(err)), 0);
    assert_non_null(p);
    return p;
}

/* One text value of a one-row, one-column query. */
static void query_text(struct pgpool *p, const char *sql, int n, const char *const *vals, int flags,
                       char *out, size_t cap)
{
    PGresult *r = NULL;

    assert_int_equal(pgpool_exec(p, sql, n, vals, NULL, NULL, flags, &r), 0);
    assert_int_equal(PQntuples(r), 1);
    snprintf(out, cap, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
}

static void test_bound_parameters(void **state)
{
    struct pgpool *p = pool_new(1, 5000);
    const char *vals[] = {"it's", "'; DROP TABLE x; --"};
    char out[128];

    (void)state;
    query_text(p, "SELECT $1::text || '|' || $2::text", 2, vals, PGPOOL_RETRY, out, sizeof(out));
    assert_string_equal(out, "it's|'; DROP TABLE x; --");
    /* SQL NULL through a NULL value. */
    const char *nul[] = {NULL};
    query_text(p, "SELECT coalesce($1::text, 'null')", 1, nul, PGPOOL_RETRY, out, sizeof(out));
    assert_string_equal(out, "null");
    pgpool_free(p);
}

struct busy_arg {
    struct pgpool *pool;
    int rc;               /* read after the join only */
    atomic_int *finished; /* what the watcher reads while the threads run */
};

static void *sleeper(void *arg)
{
    struct busy_arg *a = arg;

    a->rc = pgpool_exec(a->pool, "SELECT pg_sleep(0.3)", 0, NULL, NULL, NULL, PGPOOL_RETRY, NULL);
    atomic_fetch_add(a->finished, 1);
    return NULL;
}

/* Backends of the application role, as the server sees them. */
static int app_backends(PGconn *admin)
{
    PGresult *r = PQexec(admin, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'tv_app'");
    int n = -1;

    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        n = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return n;
}

static void test_pool_size_respected(void **state)
{
    struct pgpool *p = pool_new(POOL_SIZE, 5000);
    struct busy_arg args[THREADS];
    pthread_t th[THREADS];
    char conninfo[256];
    int open = 0, max_busy = 0, seen = 0;
    atomic_int finished = 0;
    PGconn *admin;

    (void)state;
    snprintf(conninfo, sizeof(conninfo), "host=%s port=%d user=tvsuper dbname=postgres", g_pg.dir,
             g_pg.port);
    admin = PQconnectdb(conninfo);
    assert_int_equal(PQstatus(admin), CONNECTION_OK);
    for (int i = 0; i < THREADS; i++) {
        args[i] = (struct busy_arg){.pool = p, .rc = -1, .finished = &finished};
        assert_int_equal(pthread_create(&th[i], NULL, sleeper, &args[i]), 0);
    }
    /* Watch the server's side while the threads queue for the connections. */
    while (atomic_load(&finished) < THREADS) {
        int n = app_backends(admin);
        if (n > seen)
            seen = n;
        usleep(20 * 1000);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].rc, 0);
    }
    pgpool_stats(p, &open, &max_busy, NULL);
    assert_true(open <= POOL_SIZE);
    assert_int_equal(max_busy, POOL_SIZE); /* 12 threads of 0.3 s: every connection was used */
    assert_true(seen >= 1 && seen <= POOL_SIZE);
    pgpool_free(p);
    PQfinish(admin);
}

static int insert_marker(struct pgpool_tx *tx, void *arg)
{
    const char *vals[] = {arg};

    return pgpool_tx_exec(tx, "INSERT INTO marks (name) VALUES ($1)", 1, vals, NULL, NULL, NULL);
}

static void count_marks(struct pgpool *p, const char *name, const char *want)
{
    const char *vals[] = {name};
    char out[32];

    query_text(p, "SELECT count(*) FROM marks WHERE name = $1", 1, vals, PGPOOL_RETRY, out,
               sizeof(out));
    assert_string_equal(out, want);
}

static void test_restart_reconnects(void **state)
{
    struct pgpool *p = pool_new(2, 5000);
    const char *vals[] = {"w1"};
    char out[32];
    long reconnects = 0;

    (void)state;
    assert_int_equal(pgpool_exec(p, "CREATE TABLE IF NOT EXISTS marks (name text)", 0, NULL, NULL,
                                 NULL, 0, NULL),
                     0);
    query_text(p, "SELECT 1", 0, NULL, PGPOOL_RETRY, out, sizeof(out));

    /* A read after a restart: the dead connection is replaced and the read repeated. */
    assert_int_equal(pg_restart(&g_pg), 0);
    query_text(p, "SELECT 2", 0, NULL, PGPOOL_RETRY, out, sizeof(out));
    assert_string_equal(out, "2");
    pgpool_stats(p, NULL, NULL, &reconnects);
    assert_true(reconnects >= 1);

    /* A write that is not marked safe to repeat fails clearly; the next call works. */
    assert_int_equal(pg_restart(&g_pg), 0);
    assert_int_equal(
        pgpool_exec(p, "INSERT INTO marks (name) VALUES ($1)", 1, vals, NULL, NULL, 0, NULL),
        TV_ERR_UNAVAILABLE);
    count_marks(p, "w1", "0");

    /* A transaction that never reached COMMIT runs again on a new connection, once. */
    assert_int_equal(pg_restart(&g_pg), 0);
    char t1[] = "t1";

    assert_int_equal(pgpool_tx_run(p, insert_marker, t1), 0);
    count_marks(p, "t1", "1");
    pgpool_free(p);
}

static void test_server_down_then_up(void **state)
{
    struct pgpool *p = pool_new(1, 5000);
    char out[32];

    (void)state;
    assert_int_equal(pg_pause(&g_pg), 0);
    assert_int_equal(pgpool_exec(p, "SELECT 1", 0, NULL, NULL, NULL, PGPOOL_RETRY, NULL),
                     TV_ERR_UNAVAILABLE);
    assert_int_equal(pgpool_exec(p, "SELECT 1", 0, NULL, NULL, NULL, PGPOOL_RETRY, NULL),
                     TV_ERR_UNAVAILABLE);
    assert_int_equal(pg_resume(&g_pg), 0);
    query_text(p, "SELECT 3", 0, NULL, PGPOOL_RETRY, out, sizeof(out));
    assert_string_equal(out, "3");
    pgpool_free(p);
}

static int new_fails(const char *uri, long connect_ms, char *err, size_t cap)
{
    struct pgpool_opts o = {
        .uri = uri, .size = 2, .connect_timeout_ms = connect_ms, .statement_timeout_ms = 1000};
    struct pgpool *p = NULL;
    int rc = pgpool_new(&o, &p, err, cap);

    assert_null(p);
    assert_true(strlen(err) > 0);
    assert_null(strchr(err, '\n'));
    return rc;
}

static void test_wrong_password(void **state)
{
    char uri[PG_URI_MAX], err[PGPOOL_ERR_MAX];

    (void)state;
    assert_int_equal(pg_uri_with(&g_pg, NULL, "Wr0ngPassw0rd", NULL, uri, sizeof(uri)), 0);
    assert_int_equal(new_fails(uri, 5000, err, sizeof(err)), TV_ERR_CONFIG);
    assert_non_null(strstr(err, "refused user \"tv_app\""));
    assert_non_null(strstr(err, "28P01"));
    assert_null(strstr(err, "Wr0ngPassw0rd"));
    /* An unknown role: the same kind of refusal (the server does not tell them apart). */
    assert_int_equal(pg_uri_with(&g_pg, "nobody_here", NULL, NULL, uri, sizeof(uri)), 0);
    assert_int_equal(new_fails(uri, 5000, err, sizeof(err)), TV_ERR_CONFIG);
    assert_non_null(strstr(err, "refused user \"nobody_here\""));
    assert_null(strstr(err, g_pg.pass));
}

static void test_missing_database(void **state)
{
    char uri[PG_URI_MAX], err[PGPOOL_ERR_MAX];

    (void)state;
    assert_int_equal(pg_uri_with(&g_pg, NULL, NULL, "nodb", uri, sizeof(uri)), 0);
    assert_int_equal(new_fails(uri, 5000, err, sizeof(err)), TV_ERR_CONFIG);
    assert_non_null(strstr(err, "no database \"nodb\""));
    assert_non_null(strstr(err, "3D000"));
    assert_null(strstr(err, g_pg.pass));
}

static void test_bad_uri(void **state)
{
    char err[PGPOOL_ERR_MAX];

    (void)state;
    assert_int_equal(
        new_fails("postgresql://u:Sekr1t@127.0.0.1:notaport/db?bogus=1", 5000, err, sizeof(err)),
        TV_ERR_CONFIG);
    assert_non_null(strstr(err, "not a valid PostgreSQL URI"));
    assert_null(strstr(err, "Sekr1t"));
    assert_int_equal(
        new_fails("postgresql://u:Sekr1t@127.0.0.1:notaport/db", 5000, err, sizeof(err)),
        TV_ERR_CONFIG);
    assert_non_null(strstr(err, "the port must be 1..65535"));
    assert_null(strstr(err, "Sekr1t"));
    assert_int_equal(new_fails("postgresql://u:Sekr1t@127.0.0.1:70000/db", 5000, err, sizeof(err)),
                     TV_ERR_CONFIG);
    assert_int_equal(new_fails("mysql://u:Sekr1t@h/db", 5000, err, sizeof(err)), TV_ERR_CONFIG);
    assert_null(strstr(err, "Sekr1t"));
}

static void test_unreachable(void **state)
{
    char uri[PG_URI_MAX], err[PGPOOL_ERR_MAX];
    int port = temu_closed_port();

    (void)state;
    assert_true(port > 0);
    snprintf(uri, sizeof(uri), "postgresql://tv_app:Sekr1t@127.0.0.1:%d/tv", port);
    assert_int_equal(new_fails(uri, 5000, err, sizeof(err)), TV_ERR_UNAVAILABLE);
    assert_non_null(strstr(err, "is unreachable"));
    assert_null(strstr(err, "Sekr1t"));
}

/* A port that accepts TCP connections (the kernel's backlog) but never answers: only our
 * deadline ends the attempt. */
static void test_silent_server_times_out(void **state)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    char uri[PG_URI_MAX], err[PGPOOL_ERR_MAX];
    int64_t start;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    (void)state;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    snprintf(uri, sizeof(uri), "postgresql://tv_app:Sekr1t@127.0.0.1:%d/tv", ntohs(a.sin_port));
    start = clock_mono_ms();
    assert_int_equal(new_fails(uri, 300, err, sizeof(err)), TV_ERR_UNAVAILABLE);
    assert_true(clock_mono_ms() - start < BOUNDED_MS);
    assert_non_null(strstr(err, "did not complete the connection within 300 ms"));
    close(fd);
}

static void test_statement_timeout(void **state)
{
    struct pgpool *p = pool_new(1, 200);
    char out[32];

    (void)state;
    assert_int_equal(pgpool_exec(p, "SELECT pg_sleep(5)", 0, NULL, NULL, NULL, PGPOOL_RETRY, NULL),
                     TV_ERR_UNAVAILABLE);
    /* The connection survives a cancelled statement. */
    query_text(p, "SELECT 4", 0, NULL, PGPOOL_RETRY, out, sizeof(out));
    assert_string_equal(out, "4");
    pgpool_free(p);
}

/* A server notice goes to the debug log, never raw to stderr between the JSON log lines. */
static void test_notices_stay_off_stderr(void **state)
{
    struct pgpool *p = pool_new(1, 5000);
    FILE *tmp = tmpfile();
    int saved = dup(2);

    (void)state;
    assert_non_null(tmp);
    assert_true(saved >= 0);
    fflush(stderr);
    assert_true(dup2(fileno(tmp), 2) >= 0);
    int rc =
        pgpool_exec(p, "DO $$ BEGIN RAISE NOTICE 'a notice'; END $$", 0, NULL, NULL, NULL, 0, NULL);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    assert_int_equal(rc, 0);
    assert_int_equal(fseek(tmp, 0, SEEK_END), 0);
    assert_int_equal(ftell(tmp), 0);
    fclose(tmp);
    pgpool_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bound_parameters),
        cmocka_unit_test(test_pool_size_respected),
        cmocka_unit_test(test_restart_reconnects),
        cmocka_unit_test(test_server_down_then_up),
        cmocka_unit_test(test_wrong_password),
        cmocka_unit_test(test_missing_database),
        cmocka_unit_test(test_bad_uri),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_silent_server_times_out),
        cmocka_unit_test(test_statement_timeout),
        cmocka_unit_test(test_notices_stay_off_stderr),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
