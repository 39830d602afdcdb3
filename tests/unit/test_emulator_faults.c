/* Unit tests of the emulator's fault decisions and rate limits: rate 0 never fires, rate 1
 * always does, count limits the affected requests, ops filter them, a middle rate lands near its
 * expectation; the fault-set JSON parser; the fixed rate-limit window. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "core/err.h"
#include "emulator/faults.h"

#define TRIALS 10000

static struct emu_faults *faults_with(const struct emu_fault_set *fs)
{
    struct emu_faults *f = NULL;

    assert_int_equal(emu_faults_new(fs, &f), 0);
    return f;
}

static void test_rate_zero_never(void **state)
{
    struct emu_fault_set fs;
    struct emu_faults *f;
    struct emu_fault_decision d;

    (void)state;
    emu_fault_set_clear(&fs);
    f = faults_with(&fs);
    for (int i = 0; i < TRIALS; i++) {
        assert_int_equal(emu_faults_decide(f, (enum emu_op)(i % EMU_OP__COUNT), &d), 0);
        assert_int_equal(d.kind, EMU_FAULT_NONE);
        assert_int_equal(d.latency_ms, 0);
    }
    emu_faults_free(f);
}

static void test_rate_one_always(void **state)
{
    struct emu_fault_set fs;
    struct emu_faults *f;
    struct emu_fault_decision d;

    (void)state;
    emu_fault_set_clear(&fs);
    fs.throttle_rate = 1.0;
    fs.retry_after_ms = 250;
    f = faults_with(&fs);
    for (int i = 0; i < TRIALS; i++) {
        assert_int_equal(emu_faults_decide(f, EMU_OP_ISSUE, &d), 1);
        assert_int_equal(d.kind, EMU_FAULT_THROTTLE);
        assert_int_equal(d.status, 429);
        assert_int_equal(d.retry_after_ms, 250);
    }
    /* Drop is rolled first, then throttle, then error. */
    fs.drop_rate = 1.0;
    fs.error_rate = 1.0;
    emu_faults_set(f, &fs);
    assert_int_equal(emu_faults_decide(f, EMU_OP_ISSUE, &d), 1);
    assert_int_equal(d.kind, EMU_FAULT_DROP);
    fs.drop_rate = 0;
    fs.throttle_rate = 0;
    fs.error_status = 502;
    snprintf(fs.error_message, sizeof fs.error_message, "%s", "the words of ACS");
    emu_faults_set(f, &fs);
    assert_int_equal(emu_faults_decide(f, EMU_OP_ISSUE, &d), 1);
    assert_int_equal(d.kind, EMU_FAULT_ERROR);
    assert_int_equal(d.status, 502);
    assert_string_equal(d.message, "the words of ACS");
    emu_faults_free(f);
}

static void test_count_and_ops(void **state)
{
    struct emu_fault_set fs, now;
    struct emu_faults *f;
    struct emu_fault_decision d;
    int hits = 0;

    (void)state;
    emu_fault_set_clear(&fs);
    fs.error_rate = 1.0;
    fs.count = 3;
    fs.ops = 1u << EMU_OP_REVOKE;
    f = faults_with(&fs);
    for (int i = 0; i < 10; i++) {
        /* Other operations neither fire nor use up the count. */
        assert_int_equal(emu_faults_decide(f, EMU_OP_CREATE, &d), 0);
        hits += emu_faults_decide(f, EMU_OP_REVOKE, &d);
    }
    assert_int_equal(hits, 3);
    emu_faults_get(f, &now);
    assert_int_equal(now.count, 0);
    /* Latency alone is a fault too, for the next matching request only. */
    emu_fault_set_clear(&fs);
    fs.latency_ms = 40;
    fs.count = 1;
    emu_faults_set(f, &fs);
    assert_int_equal(emu_faults_decide(f, EMU_OP_DELETE, &d), 1);
    assert_int_equal(d.latency_ms, 40);
    assert_int_equal(d.kind, EMU_FAULT_NONE);
    assert_int_equal(emu_faults_decide(f, EMU_OP_DELETE, &d), 0);
    emu_faults_free(f);
}

static void test_middle_rate(void **state)
{
    struct emu_fault_set fs;
    struct emu_faults *f;
    struct emu_fault_decision d;
    int hits = 0;

    (void)state;
    emu_fault_set_clear(&fs);
    fs.drop_rate = 0.3;
    f = faults_with(&fs);
    for (int i = 0; i < TRIALS; i++)
        hits += emu_faults_decide(f, EMU_OP_CREATE, &d);
    /* Binomial(10000, 0.3): sd ~46; +-10 sd never fails by chance. */
    assert_true(hits > 2540 && hits < 3460);
    emu_faults_free(f);
}

static void test_parse(void **state)
{
    struct emu_fault_set fs;
    char why[160];
    char *js = NULL;
    const char *ok = "{\"latency_ms\":200,\"throttle_rate\":0.5,\"retry_after_ms\":300,"
                     "\"error_rate\":1,\"error_status\":500,\"drop_rate\":0,"
                     "\"ops\":[\"create\",\"teams_exchange\"],\"count\":7}";
    static const char *const bad[] = {
        "{\"latency_ms\":\"1\"}",
        "{\"latency_ms\":-1}",
        "{\"throttle_rate\":1.5}",
        "{\"throttle_rate\":\"0\"}",
        "{\"error_status\":404}",
        "{\"ops\":[\"create\",\"x\"]}",
        "{\"ops\":\"create\"}",
        "{\"count\":-2}",
        "{\"count\":1.5}",
        "{\"bogus\":1}",
        "[]",
        "{",
        "{\"count\":1,\"count\":2}",
        "{\"error_message\":\"a\\nb\"}",
        "{\"error_message\":\"q\\\"uote\"}",
        "{\"error_message\":7}",
    };

    (void)state;
    assert_int_equal(emu_fault_set_parse(ok, strlen(ok), &fs, why, sizeof(why)), 0);
    assert_int_equal(fs.latency_ms, 200);
    assert_true(fs.throttle_rate == 0.5);
    assert_int_equal(fs.retry_after_ms, 300);
    assert_true(fs.error_rate == 1.0);
    assert_int_equal(fs.error_status, 500);
    assert_int_equal(fs.ops, (1u << EMU_OP_CREATE) | (1u << EMU_OP_TEAMS_EXCHANGE));
    assert_int_equal(fs.count, 7);
    assert_int_equal(emu_fault_set_json(&fs, &js), 0);
    assert_non_null(strstr(js, "\"ops\":[\"create\",\"teams_exchange\"]"));
    assert_non_null(strstr(js, "\"count\":7"));
    assert_non_null(strstr(js, "\"error_message\":\"\""));
    free(js);
    /* A message of the test's choosing, echoed back by GET. */
    assert_int_equal(
        emu_fault_set_parse("{\"error_message\":\"MARK 1\"}", 26, &fs, why, sizeof(why)), 0);
    assert_string_equal(fs.error_message, "MARK 1");
    assert_int_equal(emu_fault_set_json(&fs, &js), 0);
    assert_non_null(strstr(js, "\"error_message\":\"MARK 1\""));
    free(js);
    /* Defaults, and an unlimited count shown as null and accepted back. */
    assert_int_equal(emu_fault_set_parse("{}", 2, &fs, why, sizeof(why)), 0);
    assert_int_equal(fs.retry_after_ms, 1000);
    assert_int_equal(fs.error_status, 503);
    assert_int_equal(fs.ops, EMU_FAULT_OPS_ALL);
    assert_int_equal(fs.count, -1);
    assert_int_equal(emu_fault_set_json(&fs, &js), 0);
    assert_non_null(strstr(js, "\"count\":null"));
    assert_int_equal(emu_fault_set_parse(js, strlen(js), &fs, why, sizeof(why)), 0);
    assert_int_equal(fs.count, -1);
    free(js);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = '\0';
        if (emu_fault_set_parse(bad[i], strlen(bad[i]), &fs, why, sizeof(why)) != TV_ERR_INVALID)
            fail_msg("accepted %s", bad[i]);
        assert_true(why[0] != '\0');
    }
}

static void test_ratelimit_window(void **state)
{
    int64_t limits[EMU_OP__COUNT] = {3, 0, 1, 1, 1};
    struct emu_ratelimit *rl = NULL;
    int64_t retry = 0;

    (void)state;
    assert_int_equal(emu_ratelimit_new(limits, 1000, &rl), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(emu_ratelimit_take(rl, EMU_OP_CREATE, 5000 + i, &retry), 0);
    assert_int_equal(emu_ratelimit_take(rl, EMU_OP_CREATE, 5400, &retry), TV_ERR_RATE_LIMITED);
    assert_int_equal(retry, 600);
    assert_int_equal(emu_ratelimit_take(rl, EMU_OP_CREATE, 5999, &retry), TV_ERR_RATE_LIMITED);
    assert_int_equal(retry, 1);
    /* Other operations have their own budget; 0 means unlimited. */
    assert_int_equal(emu_ratelimit_take(rl, EMU_OP_REVOKE, 5400, &retry), 0);
    assert_int_equal(emu_ratelimit_take(rl, EMU_OP_REVOKE, 5401, &retry), TV_ERR_RATE_LIMITED);
    for (int i = 0; i < 100; i++)
        assert_int_equal(emu_ratelimit_take(rl, EMU_OP_ISSUE, 5400, &retry), 0);
    /* The window frees. */
    assert_int_equal(emu_ratelimit_take(rl, EMU_OP_CREATE, 6000, &retry), 0);
    assert_int_equal(emu_ratelimit_take(rl, EMU_OP_CREATE, 6001, &retry), 0);
    assert_int_equal(emu_ratelimit_take(rl, EMU_OP_CREATE, 6002, &retry), 0);
    assert_int_equal(emu_ratelimit_take(rl, EMU_OP_CREATE, 6003, &retry), TV_ERR_RATE_LIMITED);
    emu_ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_zero_never), cmocka_unit_test(test_rate_one_always),
        cmocka_unit_test(test_count_and_ops),   cmocka_unit_test(test_middle_rate),
        cmocka_unit_test(test_parse),           cmocka_unit_test(test_ratelimit_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
