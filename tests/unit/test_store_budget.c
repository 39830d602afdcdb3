/* Store tests of the upstream budget's slots (store/acs_budget.h): window edges, backward
 * clock jumps, a larger N, and several handles on one database (as several processes or
 * replicas) taking at once, which together never take more than N in one window. On SQLite, or
 * with TV_TEST_STORE=pg on a database of a throw-away PostgreSQL cluster (tests/lib/store_fx.h). */
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
#include <sqlite3.h>

#include "core/budget.h"
#include "core/err.h"
#include "store/acs_budget.h"
#include "core/clock.h"
#include "store/store.h"
#include "store_fx.h"

#define HANDLES 4
#define THREADS_PER_HANDLE 3
#define T0 1800000000000LL

struct fx {
    char dir[64];
    char path[128];
    struct store_fx sx;
    struct store *s[HANDLES];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/tv-budget-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/tv.db", f->dir);
    if (store_fx_new(&f->sx, f->path) != 0 || store_fx_open(&f->sx, 1, &f->s[0]) != 0)
        return -1;
    for (int i = 1; i < HANDLES; i++) {
        if (store_fx_open(&f->sx, 0, &f->s[i]) != 0)
            return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char p[256];

    for (int i = 0; i < HANDLES; i++)
        store_close(f->s[i]);
    store_fx_drop(&f->sx);
    unlink(f->path);
    snprintf(p, sizeof(p), "%s-wal", f->path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", f->path);
    unlink(p);
    rmdir(f->dir);
    free(f);
    return 0;
}

static int64_t fixed_clock(void *arg)
{
    return *(const int64_t *)arg;
}

/* One take of want slots of "create" (N, W 1000 ms, hold 100 ms) at *now. */
static struct store_budget_take take(struct store *s, int64_t n, int64_t want, int64_t *now)
{
    struct store_budget_take t = {.op = "create",
                                  .slots = n,
                                  .window_ms = 1000,
                                  .hold_ms = 100,
                                  .want = want,
                                  .ensure = 1,
                                  .clock = fixed_clock,
                                  .fake_clock = 1,
                                  .clock_arg = now};

    assert_int_equal(store_acs_budget_take(s, &t), 0);
    assert_int_equal(t.now_ms, *now);
    return t;
}

static void test_window_edges(void **state)
{
    struct fx *f = *state;
    int64_t now = T0;
    struct store_budget_take t;

    t = take(f->s[0], 3, 2, &now);
    assert_int_equal(t.got, 2);
    assert_int_equal(t.in_use, 2);
    t = take(f->s[0], 3, 5, &now);
    assert_int_equal(t.got, 1);
    assert_int_equal(t.in_use, 3);
    /* All taken: the oldest frees at its stamp (now + hold) + W. */
    assert_int_equal(t.next_free_ms, T0 + 100 + 1000);
    now = T0 + 1099;
    t = take(f->s[0], 3, 1, &now);
    assert_int_equal(t.got, 0);
    assert_int_equal(t.next_free_ms, T0 + 1100);
    now = T0 + 1100;
    t = take(f->s[0], 3, 5, &now);
    assert_int_equal(t.got, 3);
    /* A read-only look (want 0) counts without taking. */
    t = take(f->s[1], 3, 0, &now);
    assert_int_equal(t.got, 0);
    assert_int_equal(t.in_use, 3);
    /* Other operations have slots of their own. */
    {
        struct store_budget_take o = {.op = "issue",
                                      .slots = 3,
                                      .window_ms = 1000,
                                      .want = 3,
                                      .ensure = 1,
                                      .clock = fixed_clock,
                                      .fake_clock = 1,
                                      .clock_arg = &now};
        assert_int_equal(store_acs_budget_take(f->s[2], &o), 0);
        assert_int_equal(o.got, 3);
    }
}

static void test_backward_clock_jump(void **state)
{
    struct fx *f = *state;
    int64_t now = T0;
    struct store_budget_take t;

    t = take(f->s[0], 2, 2, &now);
    assert_int_equal(t.got, 2);
    /* The wall clock goes back an hour: the stamps, far in the future, count as "just used",
     * so the slots free after W + hold, not after an hour. */
    now = T0 - 3600000;
    t = take(f->s[0], 2, 1, &now);
    assert_int_equal(t.got, 0);
    assert_int_equal(t.next_free_ms, now + 100 + 1000);
    now += 1100;
    t = take(f->s[0], 2, 2, &now);
    assert_int_equal(t.got, 2);
    /* A small step back (within hold + skew, as replicas' clocks differ) changes nothing. */
    now -= 500;
    t = take(f->s[1], 2, 1, &now);
    assert_int_equal(t.got, 0);
    assert_int_equal(t.next_free_ms, now + 500 + 100 + 1000);
}

static void test_larger_n_adds_slots(void **state)
{
    struct fx *f = *state;
    int64_t now = T0;
    struct store_budget_take t;

    t = take(f->s[0], 2, 5, &now);
    assert_int_equal(t.got, 2);
    /* A process configured with N = 5 makes the missing slots and uses all five; one with
     * N = 2 still sees only its two, both taken. */
    t = take(f->s[1], 5, 5, &now);
    assert_int_equal(t.got, 3);
    assert_int_equal(t.in_use, 5);
    t = take(f->s[0], 2, 1, &now);
    assert_int_equal(t.got, 0);
    assert_int_equal(t.in_use, 2);
}

static void test_invalid(void **state)
{
    struct fx *f = *state;
    struct store_budget_take ok = {.op = "create", .slots = 1, .window_ms = 1, .want = 1};
    struct store_budget_take t;

    t = ok;
    t.op = "";
    assert_int_equal(store_acs_budget_take(f->s[0], &t), TV_ERR_INVALID);
    t = ok;
    t.slots = 0;
    assert_int_equal(store_acs_budget_take(f->s[0], &t), TV_ERR_INVALID);
    t = ok;
    t.slots = STORE_BUDGET_SLOTS_MAX + 1;
    assert_int_equal(store_acs_budget_take(f->s[0], &t), TV_ERR_INVALID);
    t = ok;
    t.window_ms = 0;
    assert_int_equal(store_acs_budget_take(f->s[0], &t), TV_ERR_INVALID);
    t = ok;
    t.want = STORE_BUDGET_TAKE_MAX + 1;
    assert_int_equal(store_acs_budget_take(f->s[0], &t), TV_ERR_INVALID);
    assert_int_equal(store_acs_budget_take(f->s[0], NULL), TV_ERR_INVALID);
    /* The real clock by default. */
    t = ok;
    t.ensure = 1;
    assert_int_equal(store_acs_budget_take(f->s[0], &t), 0);
    assert_int_equal(t.got, 1);
    assert_true(t.now_ms > T0 - 200000000000LL);
}

/* ---- several handles at once: one window, N slots, many takers ---- */

struct racer {
    struct store *s;
    pthread_barrier_t *bar;
    int64_t *now;
    int64_t got;
    int errors;
};

static void *race(void *arg)
{
    struct racer *r = arg;

    pthread_barrier_wait(r->bar);
    for (int i = 0; i < 40; i++) {
        struct store_budget_take t = {.op = "issue",
                                      .slots = 25,
                                      .window_ms = 60000,
                                      .hold_ms = 100,
                                      .want = 1 + i % 3,
                                      .ensure = i == 0,
                                      .clock = fixed_clock,
                                      .fake_clock = 1,
                                      .clock_arg = r->now};
        if (store_acs_budget_take(r->s, &t) != 0)
            r->errors++;
        else
            r->got += t.got;
    }
    return NULL;
}

static void test_handles_share_n(void **state)
{
    struct fx *f = *state;
    struct racer rs[HANDLES * THREADS_PER_HANDLE];
    pthread_t th[HANDLES * THREADS_PER_HANDLE];
    pthread_barrier_t bar;
    int64_t now = T0, total = 0;
    int errors = 0;
    const int n = HANDLES * THREADS_PER_HANDLE;

    pthread_barrier_init(&bar, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        rs[i] = (struct racer){.s = f->s[i % HANDLES], .bar = &bar, .now = &now};
        assert_int_equal(pthread_create(&th[i], NULL, race, &rs[i]), 0);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        total += rs[i].got;
        errors += rs[i].errors;
    }
    pthread_barrier_destroy(&bar);
    assert_int_equal(errors, 0);
    /* 480 takes asked for far more than 25 within one window: exactly 25 were granted. */
    assert_int_equal(total, 25);
}

/* Runs sql on the fixture's database as an operator would (not through the store). */
static void operator_exec(struct fx *f, const char *sql)
{
    sqlite3 *db = NULL;

    if (store_fx_is_pg()) {
        assert_int_equal(store_fx_admin_exec(&f->sx, sql), 0);
        return;
    }
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* The slot rows go while the process runs (an operator empties the transient table, a
 * restore): the next take makes them again, without being told to (ensure = 0), rather than
 * finding no slot for ever. */
static void test_lost_rows_remade(void **state)
{
    struct fx *f = *state;
    int64_t now = T0;
    struct store_budget_take t = take(f->s[0], 3, 1, &now);

    assert_int_equal(t.got, 1);
    operator_exec(f, "DELETE FROM acs_budget");
    now += 10;
    t = (struct store_budget_take){.op = "create",
                                   .slots = 3,
                                   .window_ms = 1000,
                                   .hold_ms = 100,
                                   .want = 3,
                                   .clock = fixed_clock,
                                   .clock_arg = &now,
                                   .fake_clock = 1};
    assert_int_equal(store_acs_budget_take(f->s[1], &t), 0);
    assert_int_equal(t.got, 3);
    /* Fewer rows than N (a part removed) are completed too. */
    operator_exec(f, "DELETE FROM acs_budget WHERE slot = 2");
    now += 2000;
    t.want = 3;
    assert_int_equal(store_acs_budget_take(f->s[2], &t), 0);
    assert_int_equal(t.got, 3);
}

/* Handles whose own clocks differ (replicas on hosts whose clocks disagree) stamp with the
 * store's clock, not theirs: one whose clock runs 20 s ahead cannot reuse, within W = 10 s,
 * the only slot another has just used. */
static int64_t skewed_clock(void *arg)
{
    return clock_wall_ms() + *(const int64_t *)arg;
}

static void test_process_clocks_do_not_matter(void **state)
{
    struct fx *f = *state;
    int64_t skew_a = 0, skew_b = 20000;
    struct store_budget_take t = {.op = "issue",
                                  .slots = 1,
                                  .window_ms = 10000,
                                  .hold_ms = 100,
                                  .want = 1,
                                  .ensure = 1,
                                  .clock = skewed_clock,
                                  .clock_arg = &skew_a};

    assert_int_equal(store_acs_budget_take(f->s[0], &t), 0);
    assert_int_equal(t.got, 1);
    t.clock_arg = &skew_b;
    assert_int_equal(store_acs_budget_take(f->s[1], &t), 0);
    assert_int_equal(t.got, 0);
    /* And it is told when the slot frees on the store's clock: about W from now. */
    assert_true(t.next_free_ms - t.now_ms > 9000);
    assert_true(t.next_free_ms - t.now_ms <= 10100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_window_edges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backward_clock_jump, setup, teardown),
        cmocka_unit_test_setup_teardown(test_larger_n_adds_slots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handles_share_n, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_rows_remade, setup, teardown),
        cmocka_unit_test_setup_teardown(test_process_clocks_do_not_matter, setup, teardown),
    };

    return cmocka_run_group_tests(tests, store_fx_group_setup, store_fx_group_teardown);
}
