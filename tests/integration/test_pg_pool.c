/* The libpq connection pool (src/store/pg_pool.c) against a real PostgreSQL (tests/lib/pg.c):
 * bound parameters, the pool size under concurrent threads, reconnecting after a server
 * restart (a read retried, a write not, a transaction re-run exactly once), clear errors for a
 * wrong password, a missing database, a malformed URI, a refused and a silent port, the
 * statement timeout, a frozen server (SIGSTOP: only the client-side deadline ends the wait), the
 * URI's own options kept, and a deadlocked transaction run again. */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
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

/* The cluster's processes: the postmaster (data/postmaster.pid) and its children, the backends
 * among them. At most cap; returns how many. */
static int cluster_pids(pid_t *pids, int cap)
{
    char path[PG_DIR_MAX + 32];
    FILE *f;
    DIR *d;
    struct dirent *e;
    long master = 0;
    int n = 0;

    snprintf(path, sizeof(path), "%s/data/postmaster.pid", g_pg.dir);
    f = fopen(path, "r");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%ld", &master), 1);
    fclose(f);
    pids[n++] = (pid_t)master;
    d = opendir("/proc");
    assert_non_null(d);
    while ((e = readdir(d)) != NULL && n < cap) {
        char stat[512], proc[300], *close_paren;
        long ppid = 0;
        FILE *sf;
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(proc, sizeof(proc), "/proc/%s/stat", e->d_name);
        if ((sf = fopen(proc, "r")) == NULL)
            continue; /* gone meanwhile */
        if (fgets(stat, sizeof(stat), sf) != NULL && (close_paren = strrchr(stat, ')')) != NULL &&
            sscanf(close_paren + 2, "%*c %ld", &ppid) == 1 && ppid == master)
            pids[n++] = (pid_t)strtol(e->d_name, NULL, 10);
        fclose(sf);
    }
    closedir(d);
    return n;
}

#define FROZEN_MAX 64

/* The cluster stopped with SIGSTOP, and a watchdog that lets it go on after BOUNDED_MS in any
 * case: a statement that waits without end then ends, and the test fails instead of hanging. */
struct freeze {
    pid_t pids[FROZEN_MAX];
    int n;
    atomic_int done;
    atomic_int rescued; /* the watchdog had to resume the server */
    pthread_t watchdog;
};

static void signal_all(struct freeze *fz, int sig)
{
    for (int i = 0; i < fz->n; i++)
        kill(fz->pids[i], sig);
}

static void *watchdog(void *arg)
{
    struct freeze *fz = arg;
    int64_t until = clock_mono_ms() + BOUNDED_MS;

    while (!atomic_load(&fz->done) && clock_mono_ms() < until)
        usleep(50 * 1000);
    if (!atomic_load(&fz->done)) {
        atomic_store(&fz->rescued, 1);
        signal_all(fz, SIGCONT);
    }
    return NULL;
}

static void freeze_start(struct freeze *fz)
{
    fz->n = cluster_pids(fz->pids, FROZEN_MAX);
    atomic_store(&fz->done, 0);
    atomic_store(&fz->rescued, 0);
    signal_all(fz, SIGSTOP);
    assert_int_equal(pthread_create(&fz->watchdog, NULL, watchdog, fz), 0);
}

static void freeze_end(struct freeze *fz)
{
    atomic_store(&fz->done, 1);
    pthread_join(fz->watchdog, NULL);
    signal_all(fz, SIGCONT);
}

static int select_one(struct pgpool_tx *tx, void *arg)
{
    (void)arg;
    return pgpool_tx_exec(tx, "SELECT 1", 0, NULL, NULL, NULL, NULL);
}

/* statement_timeout is the server's: a frozen server (or a partition) enforces nothing, and
 * only the pool's own deadline ends a statement, or a transaction, that waits for it. */
static void test_frozen_server_bounded(void **state)
{
    struct pgpool_opts o = {
        .uri = pg_uri(&g_pg), .size = 1, .connect_timeout_ms = 500, .statement_timeout_ms = 1000};
    struct pgpool *p = NULL;
    struct freeze fz;
    char err[PGPOOL_ERR_MAX], out[32];
    int rc;

    (void)state;
    assert_int_equal(pgpool_new(&o, &p, err, sizeof(err)), 0);
    query_text(p, "SELECT 1", 0, NULL, PGPOOL_RETRY, out, sizeof(out));

    freeze_start(&fz);
    rc = pgpool_exec(p, "SELECT 1", 0, NULL, NULL, NULL, PGPOOL_RETRY, NULL);
    freeze_end(&fz);
    assert_false(atomic_load(&fz.rescued));
    assert_int_equal(rc, TV_ERR_UNAVAILABLE);

    /* A transaction on a connection that worked a moment ago. */
    query_text(p, "SELECT 5", 0, NULL, PGPOOL_RETRY, out, sizeof(out));
    assert_string_equal(out, "5");
    freeze_start(&fz);
    rc = pgpool_tx_run(p, select_one, NULL);
    freeze_end(&fz);
    assert_false(atomic_load(&fz.rescued));
    assert_int_equal(rc, TV_ERR_UNAVAILABLE);

    /* Once the server answers again, so does the pool. */
    query_text(p, "SELECT 6", 0, NULL, PGPOOL_RETRY, out, sizeof(out));
    assert_string_equal(out, "6");
    pgpool_free(p);
}

/* The URI's options (a search_path) and application_name are the URI's; the pool only adds its
 * statement_timeout, and names itself when the URI does not. */
static void test_uri_options_kept(void **state)
{
    struct pgpool_opts o = {.size = 1, .connect_timeout_ms = 5000, .statement_timeout_ms = 1500};
    struct pgpool *p = NULL;
    char uri[PG_URI_MAX + 128], err[PGPOOL_ERR_MAX], out[128];
    const char *show = "SELECT current_setting('search_path') || '|' || "
                       "current_setting('application_name') || '|' || "
                       "current_setting('statement_timeout')";

    (void)state;
    snprintf(uri, sizeof(uri), "%s?options=-c%%20search_path%%3Dtenant1&application_name=mine",
             pg_uri(&g_pg));
    o.uri = uri;
    assert_int_equal(pgpool_new(&o, &p, err, sizeof(err)), 0);
    query_text(p, show, 0, NULL, PGPOOL_RETRY, out, sizeof(out));
    assert_string_equal(out, "tenant1|mine|1500ms");
    pgpool_free(p);

    p = pool_new(1, 1500);
    query_text(p, show, 0, NULL, PGPOOL_RETRY, out, sizeof(out));
    assert_string_equal(out, "\"$user\", public|tokenvend|1500ms");
    pgpool_free(p);
}

struct crossing {
    struct pgpool *pool;
    const char *first, *second; /* the rows locked, in this order */
    pthread_barrier_t *both;    /* both hold their first row: the second update deadlocks */
    int runs;
    int rc;
};

static int update_crossing(struct pgpool_tx *tx, void *arg)
{
    struct crossing *c = arg;
    const char *v1[] = {c->first}, *v2[] = {c->second};
    int rc;

    c->runs++;
    rc = pgpool_tx_exec(tx, "UPDATE crossing SET v = v + 1 WHERE id = $1::int", 1, v1, NULL, NULL,
                        NULL);
    if (rc == 0 && c->runs == 1)
        pthread_barrier_wait(c->both);
    if (rc == 0)
        rc = pgpool_tx_exec(tx, "UPDATE crossing SET v = v + 1 WHERE id = $1::int", 1, v2, NULL,
                            NULL, NULL);
    return rc;
}

static void *run_crossing(void *arg)
{
    struct crossing *c = arg;

    c->rc = pgpool_tx_run(c->pool, update_crossing, c);
    return NULL;
}

/* Two transactions that lock two rows in opposite orders: the server ends one with a deadlock
 * (40P01) and rolls it back; the pool runs it again, and both commit. */
static void test_deadlock_runs_again(void **state)
{
    struct pgpool *p = pool_new(2, 10000);
    pthread_barrier_t both;
    struct crossing a = {.first = "1", .second = "2", .both = &both, .rc = -1};
    struct crossing b = {.first = "2", .second = "1", .both = &both, .rc = -1};
    pthread_t ta, tb;
    char out[32];

    (void)state;
    assert_int_equal(pgpool_exec(p, "CREATE TABLE crossing (id int PRIMARY KEY, v int)", 0, NULL,
                                 NULL, NULL, 0, NULL),
                     0);
    assert_int_equal(
        pgpool_exec(p, "INSERT INTO crossing VALUES (1, 0), (2, 0)", 0, NULL, NULL, NULL, 0, NULL),
        0);
    a.pool = b.pool = p;
    assert_int_equal(pthread_barrier_init(&both, NULL, 2), 0);
    assert_int_equal(pthread_create(&ta, NULL, run_crossing, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, run_crossing, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_barrier_destroy(&both);
    assert_int_equal(a.rc, 0);
    assert_int_equal(b.rc, 0);
    assert_int_equal(a.runs + b.runs, 3); /* one of them twice */
    query_text(p, "SELECT string_agg(v::text, ',' ORDER BY id) FROM crossing", 0, NULL,
               PGPOOL_RETRY, out, sizeof(out));
    assert_string_equal(out, "2,2");
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
        cmocka_unit_test(test_frozen_server_bounded),
        cmocka_unit_test(test_uri_options_kept),
        cmocka_unit_test(test_deadlock_runs_again),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
