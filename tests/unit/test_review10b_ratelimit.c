/* Review 10b (adversarial): "N/Ws" is "a burst of N, refilled over W seconds" (README, SPEC
 * section 10). ratelimit_parse takes T = ceil(W/N) in whole milliseconds, so for N > 1000 * W
 * (allowed: N up to 1,000,000, W from 1 s) T is 1 ms and the bucket refills over N ms, not W s:
 * 100000/10s refills over 100 s, a sustained 1,000 requests per second instead of 10,000. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/ratelimit.h"

/* Whatever N/Ws is accepted refills over W seconds (a few ms of rounding at most), never over
 * N milliseconds; one that could not be (N > 1000 x W) is refused with a reason. */
static void check_refill(const char *text, int64_t n, int64_t w_ms)
{
    struct ratelimit r;
    char err[160];
    int64_t tat = 0, now = 1000000;

    assert_int_equal(ratelimit_parse(text, &r, err, sizeof err), 0);
    for (int64_t i = 0; i < n; i++) {
        assert_true(ratelimit_fits(&r, tat, now, NULL));
        tat = ratelimit_take(&r, tat, now);
    }
    /* The whole burst spent at one instant: full again W seconds later. */
    assert_true(tat - now <= w_ms + 10);
    assert_true(tat - now >= w_ms);
    /* Half the window later, about half the burst fits again. */
    now += w_ms / 2;
    for (int64_t i = 0; i < n * 2 / 5; i++) {
        assert_true(ratelimit_fits(&r, tat, now, NULL));
        tat = ratelimit_take(&r, tat, now);
    }
}

static void test_refill_over_w_seconds(void **state)
{
    struct ratelimit r;
    char err[160] = "";

    (void)state;
    check_refill("10000/10s", 10000, 10000);
    check_refill("3/1s", 3, 1000);
    check_refill("1000000/1000s", 1000000, 1000000);
    /* 100000/10s would refill over 100 s with whole-millisecond steps: refused, saying why. */
    assert_int_not_equal(ratelimit_parse("100000/10s", &r, err, sizeof err), 0);
    assert_non_null(strstr(err, "1000 events a second"));
    assert_non_null(strstr(err, "100000/100s"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refill_over_w_seconds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
