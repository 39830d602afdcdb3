/* review10a: reproducer: the budget's slots are stamped with each replica's own wall clock
 * (store/acs_budget.c, pg_acs_budget.c: t->clock, clock_wall_ms), and the only allowance for
 * replicas whose clocks differ is the 500 ms hold. A replica whose clock runs 900 ms ahead of
 * another's (below BUDGET_SKEW_MS, so nothing is normalised; NTP failures, a VM resumed)
 * reuses the other's slots 400 ms before W has passed in real time: ACS sees the N slots used
 * twice within less than W. The database's own clock (now() on PostgreSQL; one host's clock on
 * SQLite) would give every replica the same time. The README (Upstream budget, "Clock
 * jumps") does not state how closely the replicas' clocks must agree.
 *
 * fix10-budget: the store now stamps with its own clock (SQLite: the host's; PostgreSQL: the
 * database server's clock_timestamp()) and uses a take's clock only with fake_clock set, so the
 * two process clocks below (left as the reviewer wrote them) no longer decide anything: B's take
 * comes right after A's on the store's clock and finds the slot used. The test now runs on both
 * backends (store_fx); test_store_budget.c test_process_clocks_do_not_matter is its sibling.
 *
 * Real time is modelled: replica A (true clock) takes the only slot of create=1/10s at real
 * t = 100 s; replica B (clock +900 ms) asks at real t = 109.8 s, less than W after A's call
 * reached ACS (at most t = 100.5 s, the hold) — B must get nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/budget.h"
#include "store/acs_budget.h"
#include "store/store.h"
#include "store_fx.h"

static int64_t clock_of(void *arg)
{
    return *(const int64_t *)arg;
}

static void test_replica_clock_ahead_reuses_slot_early(void **state)
{
    char dir[64], path[128], p[256];
    struct store_fx fx;
    struct store *a = NULL, *b = NULL;
    int64_t real_ms, a_clock, b_clock;
    struct store_budget_take t;

    (void)state;
    snprintf(dir, sizeof dir, "/tmp/tv-r10a-skew-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/tv.db", dir);
    /* fix10-budget: on both backends (TV_TEST_STORE=pg: two handles on one database). */
    assert_int_equal(store_fx_new(&fx, path), 0);
    assert_int_equal(store_fx_open(&fx, STORE_MIGRATE_YES, &a), 0);
    assert_int_equal(store_fx_open(&fx, STORE_MIGRATE_YES, &b), 0);

    real_ms = 100000;
    a_clock = real_ms;
    t = (struct store_budget_take){.op = "create",
                                   .slots = 1,
                                   .window_ms = 10000,
                                   .hold_ms = BUDGET_HOLD_MS,
                                   .want = 1,
                                   .ensure = 1,
                                   .clock = clock_of,
                                   .clock_arg = &a_clock};
    assert_int_equal(store_acs_budget_take(a, &t), 0);
    assert_int_equal(t.got, 1); /* A's call reaches ACS by real t = 100.5 s */

    real_ms = 109800; /* 9.3 s after A's call reached ACS at the latest */
    b_clock = real_ms + 900;
    t = (struct store_budget_take){.op = "create",
                                   .slots = 1,
                                   .window_ms = 10000,
                                   .hold_ms = BUDGET_HOLD_MS,
                                   .want = 1,
                                   .ensure = 1,
                                   .clock = clock_of,
                                   .clock_arg = &b_clock};
    assert_int_equal(store_acs_budget_take(b, &t), 0);
    fprintf(stderr, "replica B (clock +900 ms) got %lld slot(s) 9.3 s after A's call (W = 10 s)\n",
            (long long)t.got);
    store_close(b);
    store_close(a);
    store_fx_drop(&fx);
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
    rmdir(dir);
    assert_int_equal(t.got, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replica_clock_ahead_reuses_slot_early),
    };
    return cmocka_run_group_tests(tests, store_fx_group_setup, store_fx_group_teardown);
}
