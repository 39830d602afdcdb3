/* Review 12a reproducers for the session refresh token table (store/refresh.h, issue 12).
 *
 * PostgreSQL only (TV_TEST_STORE=pg): revoking a family while another replica is in the middle
 * of rotating one of its tokens. The other replica's transaction is run here by hand with the
 * very statements pgstore_refresh_rotate runs (the conditional UPDATE, then the INSERT of the
 * successor), held open until the revocation's DELETE is seen waiting for its row lock, then
 * committed. Under READ COMMITTED the DELETE re-checks only the rows of its own snapshot, so
 * the successor inserted by the other transaction is not deleted: the family that logout or
 * reuse detection "revoked" lives on through that token. On SQLite (one writer at a time) the
 * suite has nothing to show and skips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <unistd.h>

#include "core/err.h"
#include "store/refresh.h"
#include "store/store.h"
#include "store_fx.h"

static struct store_refresh tok(const char *id, const char *family, int64_t now)
{
    struct store_refresh r;

    memset(&r, 0, sizeof r);
    snprintf(r.id, sizeof r.id, "%s", id);
    snprintf(r.family, sizeof r.family, "%s", family);
    snprintf(r.account, sizeof r.account, "erin");
    r.session_epoch = 42;
    memset(r.hash, 0x5a, sizeof r.hash);
    r.created_ms = now;
    r.expires_ms = now + 100000;
    r.family_expires_ms = now + 1000000;
    return r;
}

struct revoker {
    struct store *s;
    int64_t removed;
    int rc;
};

static void *revoke_main(void *arg)
{
    struct revoker *r = arg;

    r->rc = store_refresh_revoke_family(r->s, "fam-x", &r->removed);
    return NULL;
}

static int exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;

    if (!ok)
        fprintf(stderr, "%s: %s\n", sql, PQerrorMessage(c));
    PQclear(r);
    return ok;
}

/* The number of sessions of this database waiting for a lock. */
static long lock_waiters(PGconn *c)
{
    PGresult *r = PQexec(c, "SELECT count(*) FROM pg_stat_activity WHERE datname ="
                            " current_database() AND wait_event_type = 'Lock'");
    long n = -1;

    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        n = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return n;
}

static void test_revoke_family_during_rotation(void **state)
{
    struct store_fx_tmp *f = *state;
    struct store_refresh t1 = tok("t1", "fam-x", 1000), got;
    struct revoker rv = {.s = f->s, .rc = -1};
    PGconn *other, *watch;
    pthread_t th;
    int waited = 0;

    if (!store_fx_is_pg())
        skip();
    assert_int_equal(store_refresh_insert(f->s, &t1), 0);
    other = PQconnectdb(f->sx.uri);
    watch = PQconnectdb(f->sx.uri);
    assert_int_equal(PQstatus(other), CONNECTION_OK);
    assert_int_equal(PQstatus(watch), CONNECTION_OK);
    /* Replica B rotates t1 into t2: pgstore_refresh_rotate's transaction, not committed yet. */
    assert_true(exec_ok(other, "BEGIN"));
    /* fix12a: the rotation first takes its family's advisory lock (pg_refresh.c SQL_LOCK). */
    assert_true(exec_ok(other, "SELECT pg_advisory_xact_lock(hashtextextended('fam-x', 5120))"));
    assert_true(exec_ok(other, "UPDATE session_refresh SET used_ms = 2000 WHERE id = 't1'"
                               " AND used_ms IS NULL AND expires_ms > 2000"
                               " AND family_expires_ms > 2000"));
    assert_true(exec_ok(other, "INSERT INTO session_refresh (id, family, account, session_epoch,"
                               " hash, created_ms, expires_ms, family_expires_ms, used_ms)"
                               " VALUES ('t2', 'fam-x', 'erin', 42, decode(repeat('5a', 32),"
                               " 'hex'), 2000, 102000, 1001000, NULL)"));
    /* Replica A revokes the family (a logout, or a reuse it detected) meanwhile. */
    assert_int_equal(pthread_create(&th, NULL, revoke_main, &rv), 0);
    while (lock_waiters(watch) < 1 && waited < 30000) {
        usleep(1000);
        waited++;
    }
    assert_true(lock_waiters(watch) >= 1); /* the revocation waits (family lock or t1's row) */
    assert_true(exec_ok(other, "COMMIT"));
    pthread_join(th, NULL);
    PQfinish(other);
    PQfinish(watch);
    assert_int_equal(rv.rc, 0);
    /* The family was revoked: no token of it may still be usable. */
    assert_int_equal(store_refresh_get(f->s, "t1", &got), TV_ERR_NOT_FOUND);
    assert_int_equal(store_refresh_get(f->s, "t2", &got), TV_ERR_NOT_FOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_revoke_family_during_rotation, store_fx_tmp_setup,
                                        store_fx_tmp_teardown),
    };

    return cmocka_run_group_tests(tests, store_fx_group_setup, store_fx_group_teardown);
}
