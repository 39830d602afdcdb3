/* Review 10b (adversarial): "N/Ws" is "a burst of N, refilled over W seconds" (README, SPEC
 * section 10). ratelimit_parse takes T = ceil(W/N) in whole milliseconds, so for N > 1000 * W
 * (allowed: N up to 1,000,000, W from 1 s) T is 1 ms and the bucket refills over N ms, not W s:
 * 100000/10s refills over 100 s, a sustained 1,000 requests per second instead of 10,000. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/ratelimit.h"

static void test_refill_over_w_seconds(void **state)
{
    struct ratelimit r;
    char err[160];
    int64_t tat = 0, now = 1000000;

    (void)state;
    assert_int_equal(ratelimit_parse("100000/10s", &r, err, sizeof err), 0);
    for (int i = 0; i < 100000; i++) {
        assert_true(ratelimit_fits(&r, tat, now, NULL));
        tat = ratelimit_take(&r, tat, now);
    }
    /* The whole burst spent at one instant: full again W seconds later (a few ms of rounding
     * at most), not N milliseconds later. */
    assert_true(tat - now <= 10000 + 10);
    /* Half the window later, about half the burst fits again. */
    now += 5000;
    for (int i = 0; i < 40000; i++) {
        assert_true(ratelimit_fits(&r, tat, now, NULL));
        tat = ratelimit_take(&r, tat, now);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refill_over_w_seconds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
