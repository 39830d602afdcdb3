/* Unit tests of src/core/budget.c: the TOKENVEND_ACS_BUDGET parser and the slot arithmetic at
 * window edges, clock jumps both ways and overflow, plus a model of the store's slot table
 * (the same rules the SQL runs) checked against ACS's view: no W-long interval of real time
 * ever sees more than N arrivals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "acs/client.h"
#include "core/budget.h"
#include "core/err.h"

static void test_parse_default_and_off(void **state)
{
    struct budget_cfg c;
    char err[200];

    (void)state;
    assert_int_equal(budget_parse(BUDGET_DEFAULT, &c, err, sizeof err), 0);
    assert_int_equal(c.off, 0);
    assert_int_equal(c.op[ACS_OP_CREATE].burst, 1000);
    assert_int_equal(c.op[ACS_OP_CREATE].window_ms, 30000);
    assert_int_equal(c.op[ACS_OP_ISSUE].burst, 1000);
    assert_int_equal(c.op[ACS_OP_REVOKE].burst, 500);
    assert_int_equal(c.op[ACS_OP_DELETE].burst, 500);
    assert_int_equal(c.op[ACS_OP_TEAMS_EXCHANGE].burst, 500);
    assert_int_equal(budget_parse("off", &c, err, sizeof err), 0);
    assert_int_equal(c.off, 1);
    for (int i = 0; i < ACS_OP_COUNT; i++)
        assert_int_equal(c.op[i].off, 1);
    assert_string_equal(budget_op_name(ACS_OP_TEAMS_EXCHANGE), "teams");
    assert_string_equal(budget_op_name(ACS_OP_COUNT), "?");
}

static void test_parse_partial_keeps_default(void **state)
{
    struct budget_cfg c;
    char err[200];

    (void)state;
    assert_int_equal(budget_parse("create=20/2s,issue=off", &c, err, sizeof err), 0);
    assert_int_equal(c.off, 0);
    assert_int_equal(c.op[ACS_OP_CREATE].burst, 20);
    assert_int_equal(c.op[ACS_OP_CREATE].window_ms, 2000);
    assert_int_equal(c.op[ACS_OP_ISSUE].off, 1);
    /* Not named: ACS's documented limit, never none. */
    assert_int_equal(c.op[ACS_OP_REVOKE].burst, 500);
    assert_int_equal(c.op[ACS_OP_REVOKE].window_ms, 30000);
    assert_int_equal(budget_parse("teams_exchange=7/1s", &c, err, sizeof err), 0);
    assert_int_equal(c.op[ACS_OP_TEAMS_EXCHANGE].burst, 7);
    assert_int_equal(budget_parse("delete=1000000/31536000s", &c, err, sizeof err), 0);
    assert_int_equal(c.op[ACS_OP_DELETE].window_ms, 31536000000LL);
}

static void test_parse_errors_name_the_part(void **state)
{
    static const struct {
        const char *in, *want;
    } bad[] = {
        {"", "must not be empty"},
        {"create=20/2s,", "part ''"},
        {",create=20/2s", "part ''"},
        {"create=20/2s,,issue=1/1s", "part ''"},
        {"create=20/2", "part 'create=20/2'"},
        {"create=0/2s", "part 'create=0/2s'"},
        {"create=1000001/2s", "part 'create=1000001/2s'"},
        {"create=1/31536001s", "part 'create=1/31536001s'"},
        {"make=20/2s", "part 'make=20/2s'"},
        {"create", "part 'create'"},
        {"=20/2s", "part '=20/2s'"},
        {"create=20/2s,create=1/1s", "named twice"},
        {"teams=1/1s,teams_exchange=1/1s", "named twice"},
        {"OFF", "part 'OFF'"},
        {"create=-1/2s", "part 'create=-1/2s'"},
        {"create= 20/2s", "part 'create= 20/2s'"},
        {"create=99999999999999999999/2s", "create=99999999999999999999/2s"},
    };
    struct budget_cfg c;

    (void)state;
    memset(&c, 0x5a, sizeof c);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[300] = "";
        struct budget_cfg before = c;
        if (budget_parse(bad[i].in, &c, err, sizeof err) != TV_ERR_INVALID ||
            strstr(err, bad[i].want) == NULL)
            fail_msg("'%s': got '%s', want '%s'", bad[i].in, err, bad[i].want);
        assert_memory_equal(&c, &before, sizeof c); /* untouched on failure */
    }
    assert_int_equal(budget_parse(NULL, &c, NULL, 0), TV_ERR_INVALID);
}

static void test_slot_edges(void **state)
{
    (void)state;
    /* A slot stamped at t is free exactly W after t, not a millisecond before. */
    assert_false(budget_slot_free(10000, 11999, 2000));
    assert_true(budget_slot_free(10000, 12000, 2000));
    assert_true(budget_slot_free(0, 2000, 2000)); /* a new slot */
    assert_int_equal(budget_slot_stamp(10000, BUDGET_HOLD_MS), 10000 + BUDGET_HOLD_MS);
    assert_int_equal(budget_next_free(10500, 2000), 12500);
}

static void test_clock_jumps(void **state)
{
    int64_t now = 1800000000000LL, hold = BUDGET_HOLD_MS;

    (void)state;
    /* Within now + hold + skew: a stamp of this or another replica, kept. */
    assert_int_equal(budget_slot_normalize(now + hold, now, hold), now + hold);
    assert_int_equal(budget_slot_normalize(now + hold + BUDGET_SKEW_MS, now, hold),
                     now + hold + BUDGET_SKEW_MS);
    /* Beyond it: the clock went back; the slot counts as used just now, no longer. */
    assert_int_equal(budget_slot_normalize(now + hold + BUDGET_SKEW_MS + 1, now, hold), now + hold);
    assert_int_equal(budget_slot_normalize(now + 3600000, now, hold), now + hold);
    /* Backwards to the epoch and back: still bounded, never negative wrap. */
    assert_int_equal(budget_slot_normalize(INT64_MAX, 0, hold), hold);
    /* Forwards: old stamps are simply free. */
    assert_true(budget_slot_free(now, now + 86400000LL, 30000));
    assert_int_equal(budget_slot_normalize(now - 86400000LL, now, hold), now - 86400000LL);
}

static void test_overflow_saturates(void **state)
{
    struct ratelimit rl;

    (void)state;
    assert_int_equal(budget_add(INT64_MAX, 1), INT64_MAX);
    assert_int_equal(budget_add(INT64_MIN, -1), INT64_MIN);
    assert_int_equal(budget_add(INT64_MAX - 5, 5), INT64_MAX);
    assert_int_equal(budget_slot_stamp(INT64_MAX - 1, BUDGET_HOLD_MS), INT64_MAX);
    assert_int_equal(budget_next_free(INT64_MAX - 10, 31536000000LL), INT64_MAX);
    /* now - W near the bottom does not wrap to a huge value that frees everything. */
    assert_false(budget_slot_free(0, INT64_MIN + 5, 31536000000LL));
    assert_true(budget_slot_free(INT64_MIN, INT64_MIN + 5, 31536000000LL));
    assert_int_equal(ratelimit_parse("1/31536000s", &rl, NULL, 0), 0);
    assert_int_equal(budget_fit_at(0, 0, INT64_MAX, &rl, BUDGET_HOLD_MS), INT64_MAX);
    assert_int_equal(budget_fit_at(INT64_MAX, 0, 5, &rl, BUDGET_HOLD_MS), INT64_MAX);
}

static void test_fit_at(void **state)
{
    struct ratelimit rl;

    (void)state;
    assert_int_equal(ratelimit_parse("20/2s", &rl, NULL, 0), 0);
    /* A slot free now and fewer than N ahead: now. */
    assert_int_equal(budget_fit_at(500, 1000, 0, &rl, 500), 1000);
    assert_int_equal(budget_fit_at(500, 1000, 19, &rl, 500), 1000);
    /* N ahead: one more period of W + hold. */
    assert_int_equal(budget_fit_at(500, 1000, 20, &rl, 500), 3500);
    assert_int_equal(budget_fit_at(4000, 1000, 45, &rl, 500), 4000 + 2 * 2500);
    assert_int_equal(ratelimit_parse("off", &rl, NULL, 0), 0);
    assert_int_equal(budget_fit_at(4000, 1000, 1000, &rl, 500), 4000);
}

/* ---- a model of the slot table: what store/acs_budget.c does in one transaction ---- */

#define MODEL_N 5
#define MODEL_W 2000

/* Takes one slot at wall time now if one is free (oldest first), after normalising. */
static int model_take(int64_t *slots, int64_t now)
{
    int best = -1;

    for (int i = 0; i < MODEL_N; i++)
        slots[i] = budget_slot_normalize(slots[i], now, BUDGET_HOLD_MS);
    for (int i = 0; i < MODEL_N; i++)
        if (budget_slot_free(slots[i], now, MODEL_W) && (best < 0 || slots[i] < slots[best]))
            best = i;
    if (best < 0)
        return 0;
    slots[best] = budget_slot_stamp(now, BUDGET_HOLD_MS);
    return 1;
}

/* Real time runs on; the wall clock jumps by `offset` at given moments; every grant reaches
 * ACS within the hold (here: the worst case, just under it). ACS counts real time. */
static void test_model_never_exceeds_at_acs(void **state)
{
    int64_t slots[MODEL_N] = {0};
    int64_t arrivals[4096];
    size_t n = 0;
    int64_t offset = 1800000000000LL;

    (void)state;
    for (int64_t real = 0; real < 60000 && n < 4096; real += 37) {
        if (real == 15000)
            offset -= 7000; /* the wall clock goes back 7 s */
        if (real == 30000)
            offset += 120000; /* and forward 2 min */
        if (real == 45000)
            offset -= 3600000; /* back an hour */
        for (int k = 0; k < 3; k++)
            if (model_take(slots, real + offset))
                arrivals[n++] = real + (k == 0 ? BUDGET_HOLD_MS - 1 : 0);
    }
    assert_true(n > 50);
    /* Sort, then check every window of W real ms. A forward wall-clock jump frees slots early
     * (ACS's clock does not jump), which no local rule can see; skip windows that straddle it
     * (README: a forward jump may let one extra window through). */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && arrivals[j - 1] > arrivals[j]; j--) {
            int64_t t = arrivals[j];
            arrivals[j] = arrivals[j - 1];
            arrivals[j - 1] = t;
        }
    for (size_t i = 0; i < n; i++) {
        size_t in = 0;
        if (arrivals[i] >= 30000 - MODEL_W && arrivals[i] < 30000 + MODEL_W)
            continue;
        for (size_t j = i; j < n && arrivals[j] < arrivals[i] + MODEL_W; j++)
            in++;
        if (in > MODEL_N)
            fail_msg("%zu arrivals within %d ms from %lld", in, MODEL_W, (long long)arrivals[i]);
    }
}

/* After the hour-long backward jump the slots are usable again within W + hold + skew, not
 * an hour later. */
static void test_model_backward_jump_recovers(void **state)
{
    int64_t slots[MODEL_N] = {0};
    int64_t t = 1800000000000LL;
    int got = 0;

    (void)state;
    for (int i = 0; i < MODEL_N; i++)
        assert_true(model_take(slots, t));
    assert_false(model_take(slots, t + 1));
    t -= 3600000;
    assert_false(model_take(slots, t)); /* normalised to t + hold: taken just now */
    for (int64_t d = 0; d <= MODEL_W + BUDGET_HOLD_MS && !got; d += 10)
        got = model_take(slots, t + d);
    assert_true(got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_default_and_off),
        cmocka_unit_test(test_parse_partial_keeps_default),
        cmocka_unit_test(test_parse_errors_name_the_part),
        cmocka_unit_test(test_slot_edges),
        cmocka_unit_test(test_clock_jumps),
        cmocka_unit_test(test_overflow_saturates),
        cmocka_unit_test(test_fit_at),
        cmocka_unit_test(test_model_never_exceeds_at_acs),
        cmocka_unit_test(test_model_backward_jump_recovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
