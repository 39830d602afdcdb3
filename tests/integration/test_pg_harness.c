/* The PostgreSQL test harness itself (tests/lib/pg.c): a cluster starts, answers SELECT 1 over
 * TCP with the role's password (and refuses a wrong one), and after pg_stop nothing answers on
 * its port and its directory is gone; a test process killed with SIGKILL leaves no server and
 * no directory behind (the guardian). */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "core/clock.h"
#include "pg.h"

#define GONE_WAIT_MS 60000 /* generous: the guardian's pg_ctl stop on a loaded machine */

static void select_one(const char *uri)
{
    PGconn *c = PQconnectdb(uri);
    PGresult *r;

    assert_int_equal(PQstatus(c), CONNECTION_OK);
    r = PQexecParams(c, "SELECT $1::int + 0", 1, NULL, (const char *const[]){"1"}, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 1);
    assert_string_equal(PQgetvalue(r, 0, 0), "1");
    PQclear(r);
    PQfinish(c);
}

static void test_start_select_stop(void **state)
{
    struct pg_harness h;
    char dir[PG_DIR_MAX], uri[PG_URI_MAX], bad[PG_URI_MAX];
    PGconn *c;

    (void)state;
    assert_int_equal(pg_start(&h), 0);
    assert_true(strncmp(pg_uri(&h), "postgresql://tv_app:", 20) == 0);
    select_one(pg_uri(&h));
    /* Password authentication, not trust: a wrong password is refused. */
    assert_int_equal(pg_uri_with(&h, NULL, "wrong", NULL, bad, sizeof(bad)), 0);
    c = PQconnectdb(bad);
    assert_int_not_equal(PQstatus(c), CONNECTION_OK);
    assert_non_null(strstr(PQerrorMessage(c), "password authentication failed"));
    PQfinish(c);

    snprintf(dir, sizeof(dir), "%s", h.dir);
    snprintf(uri, sizeof(uri), "%s", pg_uri(&h));
    assert_int_equal(pg_stop(&h), 0);
    assert_int_equal(access(dir, F_OK), -1);
    assert_int_equal(PQping(uri), PQPING_NO_RESPONSE);
    assert_int_equal(pg_stop(&h), 0); /* twice is harmless */
}

static void test_restart_keeps_port(void **state)
{
    struct pg_harness h;

    (void)state;
    assert_int_equal(pg_start(&h), 0);
    assert_int_equal(pg_restart(&h), 0);
    select_one(pg_uri(&h));
    assert_int_equal(pg_pause(&h), 0);
    assert_int_equal(PQping(pg_uri(&h)), PQPING_NO_RESPONSE);
    assert_int_equal(pg_resume(&h), 0);
    select_one(pg_uri(&h));
    assert_int_equal(pg_stop(&h), 0);
}

/* A test process that dies by SIGKILL runs no atexit handler: the guardian must clean up. */
static void test_killed_process_leaves_nothing(void **state)
{
    char dir[PG_DIR_MAX] = "", uri[PG_URI_MAX] = "";
    int fds[2], status = 0;
    int64_t end;
    pid_t pid;

    (void)state;
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct pg_harness h;
        close(fds[0]);
        if (pg_start(&h) != 0)
            _exit(1);
        if (write(fds[1], h.dir, sizeof(h.dir)) != (ssize_t)sizeof(h.dir) ||
            write(fds[1], h.uri, sizeof(h.uri)) != (ssize_t)sizeof(h.uri))
            _exit(1);
        raise(SIGKILL);
        _exit(2);
    }
    close(fds[1]);
    assert_int_equal(read(fds[0], dir, sizeof(dir)), (ssize_t)sizeof(dir));
    assert_int_equal(read(fds[0], uri, sizeof(uri)), (ssize_t)sizeof(uri));
    close(fds[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    end = clock_mono_ms() + GONE_WAIT_MS;
    while ((access(dir, F_OK) == 0 || PQping(uri) != PQPING_NO_RESPONSE) && clock_mono_ms() < end)
        usleep(100 * 1000);
    assert_int_equal(access(dir, F_OK), -1);
    assert_int_equal(PQping(uri), PQPING_NO_RESPONSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_select_stop),
        cmocka_unit_test(test_restart_keeps_port),
        cmocka_unit_test(test_killed_process_leaves_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
