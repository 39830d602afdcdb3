/* Unit tests of src/core/ratelimit.c: the "N/Ws" parser and the GCRA arithmetic at window
 * edges, clock jumps and overflow, table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "core/ratelimit.h"

static void test_parse_table(void **state)
{
    static const struct {
        const char *in;
        int ok;
        int off;
        int64_t burst, window_ms, interval_ms;
    } cases[] = {
        {"10/300s", 1, 0, 10, 300000, 30000},
        {"1/1s", 1, 0, 1, 1000, 1000},
        {"3/1s", 1, 0, 3, 1000, 334}, /* ceil: the window is never shorter than W */
        {"1000000/31536000s", 1, 0, 1000000, 31536000000, 31536},
        {"1000/1s", 1, 0, 1000, 1000, 1},
        {"1000000/1000s", 1, 0, 1000000, 1000000, 1},
        {"1001/1s", 0, 0, 0, 0, 0}, /* over 1000 a second: could not refill over W */
        {"1000000/1s", 0, 0, 0, 0, 0},
        {"off", 1, 1, 0, 0, 0},
        {"", 0, 0, 0, 0, 0},
        {"OFF", 0, 0, 0, 0, 0},
        {"10/300", 0, 0, 0, 0, 0},
        {"10/300m", 0, 0, 0, 0, 0},
        {"0/300s", 0, 0, 0, 0, 0},
        {"10/0s", 0, 0, 0, 0, 0},
        {"-1/300s", 0, 0, 0, 0, 0},
        {"10 /300s", 0, 0, 0, 0, 0},
        {"10/300s ", 0, 0, 0, 0, 0},
        {"1000001/1s", 0, 0, 0, 0, 0},
        {"1/31536001s", 0, 0, 0, 0, 0},
        {"99999999999999999999/1s", 0, 0, 0, 0, 0},
        {"/1s", 0, 0, 0, 0, 0},
        {"1/s", 0, 0, 0, 0, 0},
        {"+1/1s", 0, 0, 0, 0, 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ratelimit r = {.burst = -7};
        char err[160] = "";
        int rc = ratelimit_parse(cases[i].in, &r, err, sizeof err);
        if (!cases[i].ok) {
            assert_int_equal(rc, TV_ERR_INVALID);
            assert_int_equal(r.burst, -7); /* untouched */
            assert_non_null(strstr(err, "N/Ws"));
            continue;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(r.off, cases[i].off);
        assert_int_equal(r.burst, cases[i].burst);
        assert_int_equal(r.window_ms, cases[i].window_ms);
        assert_int_equal(r.interval_ms, cases[i].interval_ms);
    }
    assert_int_equal(ratelimit_parse(NULL, &(struct ratelimit){0}, NULL, 0), TV_ERR_INVALID);
}

/* Events at given times against 3/3s (T = 1000 ms, tau = 2000 ms): what fits, what waits. */
static void test_gcra_sequence(void **state)
{
    static const struct {
        int64_t at;    /* ms */
        int fits;      /* expected */
        int64_t retry; /* expected wait when it does not fit */
    } steps[] = {
        {10000, 1, 0},    {10000, 1, 0}, {10000, 1, 0}, /* the burst */
        {10000, 0, 1000},                               /* the 4th waits one interval */
        {10999, 0, 1},                                  /* one ms before the edge */
        {11000, 1, 0},                                  /* at the edge: one refilled */
        {11000, 0, 1000}, {13000, 1, 0}, {13000, 1, 0},
        {13000, 0, 1000}, {20000, 1, 0}, /* long idle: full again */
    };
    struct ratelimit r;
    int64_t tat = 0;

    (void)state;
    assert_int_equal(ratelimit_parse("3/3s", &r, NULL, 0), 0);
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        int64_t wait = -1;
        int fits = ratelimit_fits(&r, tat, steps[i].at, &wait);
        assert_int_equal(fits, steps[i].fits);
        if (fits)
            tat = ratelimit_take(&r, tat, steps[i].at);
        else
            assert_int_equal(wait, steps[i].retry);
    }
    /* Idle exactly when the bucket is full again. */
    assert_int_equal(ratelimit_idle(tat, 20999), 0);
    assert_int_equal(ratelimit_idle(tat, 21000), 1);
    assert_int_equal(ratelimit_idle(0, 0), 1);
}

static void test_gcra_burst_one(void **state)
{
    struct ratelimit r;
    int64_t tat, wait = 0;

    (void)state;
    assert_int_equal(ratelimit_parse("1/60s", &r, NULL, 0), 0);
    assert_true(ratelimit_fits(&r, 0, 5000, NULL));
    tat = ratelimit_take(&r, 0, 5000);
    assert_int_equal(tat, 65000);
    assert_false(ratelimit_fits(&r, tat, 5000, &wait));
    assert_int_equal(wait, 60000);
    assert_false(ratelimit_fits(&r, tat, 64999, &wait));
    assert_int_equal(wait, 1);
    assert_true(ratelimit_fits(&r, tat, 65000, NULL));
}

/* The wall clock going backwards: the key is never locked for longer than one window. */
static void test_gcra_clock_backwards(void **state)
{
    struct ratelimit r;
    int64_t tat = 0, wait = 0;

    (void)state;
    assert_int_equal(ratelimit_parse("2/10s", &r, NULL, 0), 0);
    tat = ratelimit_take(&r, tat, 1000000);
    tat = ratelimit_take(&r, tat, 1000000); /* locked until 1010000 */
    /* The clock jumps back one hour: the state is a window ahead at most, and the caller
     * keeps the normalized state. */
    assert_false(ratelimit_fits(&r, tat, 1000000 - 3600000, &wait));
    assert_int_equal(wait, 5000); /* N*T - tau = T, not an hour */
    tat = ratelimit_normalize(&r, tat, 1000000 - 3600000);
    assert_int_equal(tat, 1000000 - 3600000 + 10000);
    assert_int_equal(ratelimit_normalize(&r, tat, 1000000 - 3600000 + 1), tat); /* stable */
    assert_false(ratelimit_fits(&r, tat, 1000000 - 3600000 + 4999, NULL));
    assert_true(ratelimit_fits(&r, tat, 1000000 - 3600000 + 5000, NULL));
    /* And a take after the jump stays within one window of the new now. */
    tat = ratelimit_take(&r, tat, 1000000 - 3600000 + 5000);
    assert_true(tat <= 1000000 - 3600000 + 5000 + 10000);
    /* A jump forward simply finds a full bucket. */
    assert_true(ratelimit_fits(&r, tat, 1000000 + 3600000, NULL));
}

/* Extreme times and limits never overflow. */
static void test_gcra_overflow(void **state)
{
    struct ratelimit r;
    int64_t tat, wait = 0;

    (void)state;
    assert_int_equal(ratelimit_parse("1000000/31536000s", &r, NULL, 0), 0);
    tat = ratelimit_take(&r, 0, INT64_MAX - 5);
    assert_int_equal(tat, INT64_MAX);
    assert_true(ratelimit_fits(&r, tat, INT64_MAX - 5, NULL));
    assert_int_equal(ratelimit_parse("1/31536000s", &r, NULL, 0), 0);
    tat = ratelimit_take(&r, INT64_MAX, INT64_MAX - 1);
    assert_int_equal(tat, INT64_MAX);
    assert_false(ratelimit_fits(&r, tat, INT64_MAX - 1, &wait));
    assert_int_equal(wait, 1);
}

static void test_off_and_retry_after(void **state)
{
    struct ratelimit r;

    (void)state;
    assert_int_equal(ratelimit_parse("off", &r, NULL, 0), 0);
    for (int i = 0; i < 100; i++)
        assert_true(ratelimit_fits(&r, ratelimit_take(&r, 0, i), i, NULL));
    assert_int_equal(ratelimit_retry_after_s(0), 1);
    assert_int_equal(ratelimit_retry_after_s(1), 1);
    assert_int_equal(ratelimit_retry_after_s(1000), 1);
    assert_int_equal(ratelimit_retry_after_s(1001), 2);
    assert_int_equal(ratelimit_retry_after_s(300000), 300);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),    cmocka_unit_test(test_gcra_sequence),
        cmocka_unit_test(test_gcra_burst_one), cmocka_unit_test(test_gcra_clock_backwards),
        cmocka_unit_test(test_gcra_overflow),  cmocka_unit_test(test_off_and_retry_after),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
