/* The store's change notifications (include/store/watch.h, src/store/pg_listen.c) on a real
 * PostgreSQL (tests/lib/store_fx.c): revokes, deletes and account changes committed through one
 * store handle reach a watch on another; a watch whose server restarted is not current while
 * it is down and current again after, resetting nothing when nothing was missed; a change
 * committed while its LISTEN connection was away makes it reset; on SQLite the watch is a
 * no-op that is always current. Always runs on PostgreSQL (TV_TEST_STORE is set here). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/clock.h"
#include "core/err.h"
#include "store/accounts.h"
#include "store/store.h"
#include "store/users.h"
#include "store/watch.h"
#include "store_fx.h"

#define WAIT_MS 15000 /* generous: only "it happened" checks */
#define EV_MAX 32

/* What the callbacks saw. */
struct seen {
    pthread_mutex_t mu;
    int n;
    enum store_watch_kind kind[EV_MAX];
    char id[EV_MAX][STORE_ID_MAX + 1];
    char app[EV_MAX][STORE_ID_MAX + 1];
    int resets;
};

static void on_event(void *arg, const struct store_watch_event *ev)
{
    struct seen *s = arg;

    pthread_mutex_lock(&s->mu);
    if (s->n < EV_MAX) {
        s->kind[s->n] = ev->kind;
        snprintf(s->id[s->n], sizeof s->id[0], "%s", ev->id);
        snprintf(s->app[s->n], sizeof s->app[0], "%s", ev->app_user_id);
        s->n++;
    }
    pthread_mutex_unlock(&s->mu);
}

static void on_reset(void *arg)
{
    struct seen *s = arg;

    pthread_mutex_lock(&s->mu);
    s->resets++;
    pthread_mutex_unlock(&s->mu);
}

static int seen_n(struct seen *s, int resets)
{
    int n;

    pthread_mutex_lock(&s->mu);
    n = resets ? s->resets : s->n;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Waits until the count (events or resets) reaches want. */
static int wait_seen(struct seen *s, int resets, int want)
{
    int64_t end = clock_mono_ms() + WAIT_MS;

    while (seen_n(s, resets) < want && clock_mono_ms() < end)
        usleep(5000);
    return seen_n(s, resets) >= want ? 0 : -1;
}

static int wait_current(struct store_watch *w, int want)
{
    int64_t end = clock_mono_ms() + WAIT_MS;

    while (store_watch_current(w) != want && clock_mono_ms() < end)
        usleep(5000);
    return store_watch_current(w) == want ? 0 : -1;
}

struct fx {
    struct store_fx where, other; /* other: a database to run admin commands from */
    struct store *a, *b;          /* two handles on one database: two replicas */
    struct store_watch *w;        /* on b */
    struct seen seen;
};

static int setup(void **state)
{
    struct fx *x = calloc(1, sizeof *x);
    struct store_watch_cb cb;

    if (x == NULL || store_fx_new(&x->where, "") != 0 || store_fx_new(&x->other, "") != 0 ||
        store_fx_open(&x->where, STORE_MIGRATE_YES, &x->a) != 0 ||
        store_fx_open(&x->where, STORE_MIGRATE_NO, &x->b) != 0)
        return -1;
    pthread_mutex_init(&x->seen.mu, NULL);
    cb = (struct store_watch_cb){on_event, on_reset, &x->seen};
    if (store_watch_start(x->b, &cb, &x->w) != 0 || wait_current(x->w, 1) != 0)
        return -1;
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    struct fx *x = *state;

    store_watch_stop(x->w);
    store_close(x->a);
    store_close(x->b);
    store_fx_drop(&x->where);
    store_fx_drop(&x->other);
    pthread_mutex_destroy(&x->seen.mu);
    free(x);
    return 0;
}

static void add_user(struct store *s, const char *app, const char *acs)
{
    struct store_user u;

    memset(&u, 0, sizeof u);
    snprintf(u.app_user_id, sizeof u.app_user_id, "%s", app);
    snprintf(u.acs_id, sizeof u.acs_id, "%s", acs);
    snprintf(u.resource, sizeof u.resource, "acs.example");
    u.created_ms = clock_wall_ms();
    assert_int_equal(store_user_insert(s, &u), 0);
}

static void test_changes_reach_other_handle(void **state)
{
    struct fx *x = *state;
    struct store_account acct;
    struct store_watch_stats st;
    int64_t ob = 0;

    /* The first sync reset (whatever was cached before is unproven), nothing else yet. */
    assert_int_equal(seen_n(&x->seen, 1), 1);
    add_user(x->a, "alice", "8:acs:one");
    add_user(x->a, "", "8:acs:standalone");

    assert_int_equal(store_user_set_revoked(x->a, "8:acs:one", clock_wall_ms()), 0);
    assert_int_equal(wait_seen(&x->seen, 0, 1), 0);
    assert_int_equal(x->seen.kind[0], STORE_WATCH_MAPPING);
    assert_string_equal(x->seen.id[0], "8:acs:one");
    assert_string_equal(x->seen.app[0], "alice");

    assert_int_equal(store_user_delete_begin(x->a, "8:acs:one", clock_wall_ms(), &ob), 0);
    assert_true(ob > 0);
    assert_int_equal(wait_seen(&x->seen, 0, 2), 0);
    assert_int_equal(x->seen.kind[1], STORE_WATCH_MAPPING);
    assert_string_equal(x->seen.id[1], "8:acs:one");
    assert_string_equal(x->seen.app[1], "alice");

    assert_int_equal(store_user_set_revoked(x->a, "8:acs:standalone", clock_wall_ms()), 0);
    assert_int_equal(wait_seen(&x->seen, 0, 3), 0);
    assert_string_equal(x->seen.id[2], "8:acs:standalone");
    assert_string_equal(x->seen.app[2], "");

    /* Nothing changed, nothing sent: the mapping is gone. */
    assert_int_equal(store_user_set_revoked(x->a, "8:acs:one", clock_wall_ms()), TV_ERR_NOT_FOUND);

    memset(&acct, 0, sizeof acct);
    snprintf(acct.name, sizeof acct.name, "bob");
    snprintf(acct.password_hash, sizeof acct.password_hash, "$argon2id$v=19$m=8,t=1,p=1$x$y");
    acct.created_ms = acct.updated_ms = clock_wall_ms();
    assert_int_equal(store_account_upsert(x->a, &acct, NULL), 0); /* new: no session to end */
    assert_int_equal(store_account_passwd(x->a, "bob", acct.password_hash, clock_wall_ms()), 0);
    assert_int_equal(wait_seen(&x->seen, 0, 4), 0);
    assert_int_equal(x->seen.kind[3], STORE_WATCH_ACCOUNT);
    assert_string_equal(x->seen.id[3], "bob");
    assert_int_equal(store_account_delete(x->a, "bob"), 0);
    assert_int_equal(wait_seen(&x->seen, 0, 5), 0);
    assert_int_equal(x->seen.kind[4], STORE_WATCH_ACCOUNT);

    /* A transaction's own notifications only: a failed revoke above sent nothing. */
    usleep(200000);
    assert_int_equal(seen_n(&x->seen, 0), 5);
    assert_int_equal(seen_n(&x->seen, 1), 1);
    store_watch_stats_get(x->w, &st);
    assert_int_equal(st.events, 5);
    assert_int_equal(st.reconnects, 0);
}

static void test_restart_not_current_then_current(void **state)
{
    struct fx *x = *state;
    struct store_watch_stats st;
    struct store_user u;

    add_user(x->a, "carol", "8:acs:carol");
    assert_int_equal(store_fx_pause(), 0);
    assert_int_equal(wait_current(x->w, 0), 0);
    assert_int_equal(store_fx_resume(), 0);
    assert_int_equal(wait_current(x->w, 1), 0);
    store_watch_stats_get(x->w, &st);
    assert_true(st.reconnects >= 1);
    /* Nothing was committed while it was away: no reason to drop anything. */
    assert_int_equal(seen_n(&x->seen, 1), 1);
    /* And it listens again (a read first: a's pool finds its connections ended by the restart,
     * and only reads are repeated on a new one). */
    assert_int_equal(store_user_get(x->a, "carol", &u), 0);
    assert_int_equal(store_user_set_revoked(x->a, "8:acs:carol", clock_wall_ms()), 0);
    assert_int_equal(wait_seen(&x->seen, 0, 1), 0);
    assert_string_equal(x->seen.app[0], "carol");
}

/* Runs sql from the other database, as the databases' owner. */
static void admin(struct fx *x, const char *sql)
{
    assert_int_equal(store_fx_admin_exec(&x->other, sql), 0);
}

static void test_missed_change_resets(void **state)
{
    struct fx *x = *state;
    char sql[256];

    add_user(x->a, "dave", "8:acs:dave");
    /* The watch's connection goes, and cannot come back while the revoke commits through a's
     * pool (its connection stays: ALLOW_CONNECTIONS only refuses new ones). */
    snprintf(sql, sizeof sql, "ALTER DATABASE %s ALLOW_CONNECTIONS false", x->where.db);
    admin(x, sql);
    snprintf(sql, sizeof sql,
             "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s'"
             " AND application_name = '" STORE_WATCH_APP_NAME "'",
             x->where.db);
    admin(x, sql);
    assert_int_equal(wait_current(x->w, 0), 0);
    assert_int_equal(store_user_set_revoked(x->a, "8:acs:dave", clock_wall_ms()), 0);
    snprintf(sql, sizeof sql, "ALTER DATABASE %s ALLOW_CONNECTIONS true", x->where.db);
    admin(x, sql);
    /* Back, and it knows it missed one: everything dropped before it reports current. */
    assert_int_equal(wait_seen(&x->seen, 1, 2), 0);
    assert_int_equal(wait_current(x->w, 1), 0);
    assert_int_equal(seen_n(&x->seen, 0), 0);
}

static void test_sqlite_always_current(void **state)
{
    struct store *s = NULL;
    struct store_watch *w = NULL;
    struct seen seen = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct store_watch_cb cb = {on_event, on_reset, &seen};
    char path[] = "/tmp/tv-watch-XXXXXX";
    char db[64];

    (void)state;
    assert_non_null(mkdtemp(path));
    snprintf(db, sizeof db, "%s/tv.db", path);
    assert_int_equal(store_open(db, STORE_MIGRATE_YES, &s), 0);
    assert_int_equal(store_watch_start(s, &cb, &w), 0);
    assert_int_equal(store_watch_current(w), 1);
    assert_int_equal(store_watch_pushes(w), 0);
    add_user(s, "erin", "8:acs:erin");
    assert_int_equal(store_user_set_revoked(s, "8:acs:erin", clock_wall_ms()), 0);
    assert_int_equal(seen.n + seen.resets, 0);
    store_watch_stop(w);
    store_close(s);
    unlink(db);
    snprintf(db, sizeof db, "%s/tv.db-wal", path);
    unlink(db);
    snprintf(db, sizeof db, "%s/tv.db-shm", path);
    unlink(db);
    rmdir(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_changes_reach_other_handle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_not_current_then_current, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missed_change_resets, setup, teardown),
        cmocka_unit_test(test_sqlite_always_current),
    };

    setenv("TV_TEST_STORE", "pg", 1);
    return cmocka_run_group_tests(tests, store_fx_group_setup, store_fx_group_teardown);
}
