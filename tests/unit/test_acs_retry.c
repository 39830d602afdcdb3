/* Unit tests for the ACS client's retry policy: the classification table (statuses, transport
 * errors and the create rules), retry-after header parsing, and the backoff bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "../../src/acs/retry_int.h"
#include "core/clock.h"
#include "core/err.h"

struct classify_case {
    enum acs_op op;
    int curl_code;
    long status;
    int sent;
    int want_rc;
    int want_retry;
};

#define SAFE_OPS_CASES(op)                                                                         \
    {op, 0, 200, 1, 0, 0}, {op, 0, 201, 1, 0, 0}, {op, 0, 204, 1, 0, 0},                           \
        {op, 0, 400, 1, TV_ERR_ACS_BAD_REQUEST, 0}, {op, 0, 401, 1, TV_ERR_ACS_DENIED, 0},         \
        {op, 0, 403, 1, TV_ERR_ACS_DENIED, 0}, {op, 0, 404, 1, TV_ERR_ACS_NOT_FOUND, 0},           \
        {op, 0, 409, 1, TV_ERR_ACS_STATUS, 0}, {op, 0, 302, 1, TV_ERR_ACS_STATUS, 0},              \
        {op, 0, 408, 1, TV_ERR_UPSTREAM_TIMEOUT, 1}, {op, 0, 429, 1, TV_ERR_ACS_THROTTLED, 1},     \
        {op, 0, 500, 1, TV_ERR_ACS_UNAVAILABLE, 1}, {op, 0, 501, 1, TV_ERR_ACS_UNAVAILABLE, 0},    \
        {op, 0, 502, 1, TV_ERR_ACS_UNAVAILABLE, 1}, {op, 0, 503, 1, TV_ERR_ACS_UNAVAILABLE, 1},    \
        {op, 0, 504, 1, TV_ERR_ACS_UNAVAILABLE, 1},                                                \
        {op, CURLE_COULDNT_CONNECT, 0, 0, TV_ERR_UPSTREAM_NETWORK, 1},                             \
        {op, CURLE_COULDNT_RESOLVE_HOST, 0, 0, TV_ERR_UPSTREAM_NETWORK, 1},                        \
        {op, CURLE_GOT_NOTHING, 0, 1, TV_ERR_UPSTREAM_NETWORK, 1},                                 \
        {op, CURLE_RECV_ERROR, 0, 1, TV_ERR_UPSTREAM_NETWORK, 1},                                  \
        {op, CURLE_SEND_ERROR, 0, 1, TV_ERR_UPSTREAM_NETWORK, 1},                                  \
        {op, CURLE_OPERATION_TIMEDOUT, 0, 1, TV_ERR_UPSTREAM_TIMEOUT, 1},                          \
        {op, CURLE_OPERATION_TIMEDOUT, 0, 0, TV_ERR_UPSTREAM_TIMEOUT, 1},                          \
        {op, CURLE_WRITE_ERROR, 0, 1, TV_ERR_UPSTREAM_PROTOCOL, 0},                                \
        {op, CURLE_WEIRD_SERVER_REPLY, 0, 1, TV_ERR_UPSTREAM_PROTOCOL, 0},                         \
        {op, CURLE_PEER_FAILED_VERIFICATION, 0, 0, TV_ERR_UPSTREAM_NETWORK, 0},                    \
    {                                                                                              \
        op, CURLE_URL_MALFORMAT, 0, 0, TV_ERR_UPSTREAM_NETWORK, 0                                  \
    }

static const struct classify_case classify_cases[] = {
    SAFE_OPS_CASES(ACS_OP_ISSUE),
    SAFE_OPS_CASES(ACS_OP_REVOKE),
    SAFE_OPS_CASES(ACS_OP_DELETE),
    SAFE_OPS_CASES(ACS_OP_TEAMS_EXCHANGE),
    /* Create: retried only when the request provably did not take effect. */
    {ACS_OP_CREATE, 0, 201, 1, 0, 0},
    {ACS_OP_CREATE, 0, 400, 1, TV_ERR_ACS_BAD_REQUEST, 0},
    {ACS_OP_CREATE, 0, 401, 1, TV_ERR_ACS_DENIED, 0},
    {ACS_OP_CREATE, 0, 408, 1, TV_ERR_UPSTREAM_TIMEOUT, 1},
    {ACS_OP_CREATE, 0, 429, 1, TV_ERR_ACS_THROTTLED, 1},
    {ACS_OP_CREATE, 0, 503, 1, TV_ERR_ACS_UNAVAILABLE, 1},
    {ACS_OP_CREATE, 0, 500, 1, TV_ERR_UPSTREAM_UNKNOWN, 0},
    {ACS_OP_CREATE, 0, 502, 1, TV_ERR_UPSTREAM_UNKNOWN, 0},
    {ACS_OP_CREATE, 0, 504, 1, TV_ERR_UPSTREAM_UNKNOWN, 0},
    {ACS_OP_CREATE, CURLE_COULDNT_CONNECT, 0, 0, TV_ERR_UPSTREAM_NETWORK, 1},
    {ACS_OP_CREATE, CURLE_COULDNT_RESOLVE_HOST, 0, 0, TV_ERR_UPSTREAM_NETWORK, 1},
    /* Even if something claims bytes went out, a refused connect cannot have created anything. */
    {ACS_OP_CREATE, CURLE_COULDNT_CONNECT, 0, 1, TV_ERR_UPSTREAM_NETWORK, 1},
    {ACS_OP_CREATE, CURLE_GOT_NOTHING, 0, 1, TV_ERR_UPSTREAM_UNKNOWN, 0},
    {ACS_OP_CREATE, CURLE_RECV_ERROR, 0, 1, TV_ERR_UPSTREAM_UNKNOWN, 0},
    /* Sent to an ACS that never answered (a black hole): a timeout, 504, not repeated;
     * acs_retry_outcome_unknown says its effect is unknown. */
    {ACS_OP_CREATE, CURLE_OPERATION_TIMEDOUT, 0, 1, TV_ERR_UPSTREAM_TIMEOUT, 0},
    /* A timeout before anything was sent (still connecting) is safe to repeat. */
    {ACS_OP_CREATE, CURLE_OPERATION_TIMEDOUT, 0, 0, TV_ERR_UPSTREAM_TIMEOUT, 1},
    {ACS_OP_CREATE, CURLE_SEND_ERROR, 0, 0, TV_ERR_UPSTREAM_NETWORK, 1},
};

static void test_classify_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(classify_cases) / sizeof(classify_cases[0]); i++) {
        const struct classify_case *k = &classify_cases[i];
        struct acs_attempt a = {k->curl_code, k->status, k->sent, 0};
        int retry = -1;
        int rc = acs_retry_classify(k->op, &a, &retry);
        if (rc != k->want_rc || retry != k->want_retry)
            fail_msg("case %zu (%s curl=%d status=%ld sent=%d): rc %s retry %d, want %s %d", i,
                     acs_op_name(k->op), k->curl_code, k->status, k->sent, err_name(rc), retry,
                     err_name(k->want_rc), k->want_retry);
    }
}

/* A create that carries a customId is idempotent: the outcomes that end a plain create in
 * TV_ERR_UPSTREAM_UNKNOWN are retried as for the other operations. */
static void test_classify_idempotent_create(void **state)
{
    static const struct classify_case cases[] = {
        {ACS_OP_CREATE, 0, 200, 1, 0, 0},
        {ACS_OP_CREATE, 0, 400, 1, TV_ERR_ACS_BAD_REQUEST, 0},
        {ACS_OP_CREATE, 0, 500, 1, TV_ERR_ACS_UNAVAILABLE, 1},
        {ACS_OP_CREATE, 0, 502, 1, TV_ERR_ACS_UNAVAILABLE, 1},
        {ACS_OP_CREATE, 0, 504, 1, TV_ERR_ACS_UNAVAILABLE, 1},
        {ACS_OP_CREATE, CURLE_GOT_NOTHING, 0, 1, TV_ERR_UPSTREAM_NETWORK, 1},
        {ACS_OP_CREATE, CURLE_RECV_ERROR, 0, 1, TV_ERR_UPSTREAM_NETWORK, 1},
        {ACS_OP_CREATE, CURLE_OPERATION_TIMEDOUT, 0, 1, TV_ERR_UPSTREAM_TIMEOUT, 1},
        {ACS_OP_CREATE, CURLE_WEIRD_SERVER_REPLY, 0, 1, TV_ERR_UPSTREAM_PROTOCOL, 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct classify_case *k = &cases[i];
        struct acs_attempt a = {k->curl_code, k->status, k->sent, 1};
        int retry = -1;
        int rc = acs_retry_classify(k->op, &a, &retry);
        if (rc != k->want_rc || retry != k->want_retry)
            fail_msg("case %zu (curl=%d status=%ld): rc %s retry %d, want %s %d", i, k->curl_code,
                     k->status, err_name(rc), retry, err_name(k->want_rc), k->want_retry);
    }
}

/* Which failed attempts leave a create's effect unknown: sent and not answered, or answered
 * 500/502/504; never an attempt that cannot have reached ACS, never another op. */
static void test_outcome_unknown(void **state)
{
    static const struct {
        enum acs_op op;
        int curl_code;
        long status;
        int sent;
        int want;
    } cases[] = {
        {ACS_OP_CREATE, CURLE_OPERATION_TIMEDOUT, 0, 1, 1},
        {ACS_OP_CREATE, CURLE_OPERATION_TIMEDOUT, 0, 0, 0},
        {ACS_OP_CREATE, CURLE_GOT_NOTHING, 0, 1, 1},
        {ACS_OP_CREATE, CURLE_RECV_ERROR, 0, 1, 1},
        {ACS_OP_CREATE, CURLE_WEIRD_SERVER_REPLY, 0, 1, 1},
        {ACS_OP_CREATE, CURLE_COULDNT_CONNECT, 0, 1, 0},
        {ACS_OP_CREATE, CURLE_COULDNT_RESOLVE_HOST, 0, 0, 0},
        {ACS_OP_CREATE, 0, 500, 1, 1},
        {ACS_OP_CREATE, 0, 502, 1, 1},
        {ACS_OP_CREATE, 0, 504, 1, 1},
        {ACS_OP_CREATE, 0, 503, 1, 0},
        {ACS_OP_CREATE, 0, 429, 1, 0},
        {ACS_OP_CREATE, 0, 201, 1, 0},
        {ACS_OP_ISSUE, CURLE_OPERATION_TIMEDOUT, 0, 1, 0},
        {ACS_OP_DELETE, 0, 500, 1, 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int idem = 0; idem <= 1; idem++) {
            struct acs_attempt a = {cases[i].curl_code, cases[i].status, cases[i].sent, idem};
            if (acs_retry_outcome_unknown(cases[i].op, &a) != cases[i].want)
                fail_msg("case %zu (idempotent %d): want %d", i, idem, cases[i].want);
        }
    }
}

struct ms_case {
    const char *in;
    int ok;
    int64_t want;
};

static const struct ms_case ms_cases[] = {
    {"0", 1, 0},
    {"1000", 1, 1000},
    {" 250 ", 1, 250},
    {"\t42\r\n", 1, 42},
    {"99999999999999999999999", 1, ACS_RETRY_AFTER_MAX_MS},
    {"86400001", 1, ACS_RETRY_AFTER_MAX_MS},
    {"", 0, 0},
    {"   ", 0, 0},
    {"-5", 0, 0},
    {"+5", 0, 0},
    {"1.5", 0, 0},
    {"12abc", 0, 0},
    {"abc", 0, 0},
    {"1 2", 0, 0},
    {"0x10", 0, 0},
};

static void test_parse_ms(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(ms_cases) / sizeof(ms_cases[0]); i++) {
        int64_t v = -7;
        int rc = acs_retry_parse_ms(ms_cases[i].in, &v);
        if (ms_cases[i].ok) {
            if (rc != 0 || v != ms_cases[i].want)
                fail_msg("'%s': rc %d v %lld", ms_cases[i].in, rc, (long long)v);
        } else if (rc == 0 || v != -7) {
            fail_msg("'%s' accepted (%lld)", ms_cases[i].in, (long long)v);
        }
    }
    assert_int_not_equal(acs_retry_parse_ms(NULL, &(int64_t){0}), 0);
}

static void test_parse_retry_after(void **state)
{
    /* 2026-11-27 09:44:01 GMT */
    const int64_t now = 1795772641000LL;
    char date[CLOCK_HTTP_DATE_LEN];
    int64_t v;
    struct {
        const char *in;
        int ok;
        int64_t want;
    } cases[] = {
        {"1", 1, 1000},
        {"0", 1, 0},
        {" 120 ", 1, 120000},
        {"999999999", 1, ACS_RETRY_AFTER_MAX_MS},
        {"Fri, 27 Nov 2026 09:44:11 GMT", 1, 10000},
        {"Fri, 27 Nov 2026 09:44:01 GMT", 1, 0},
        {"Fri, 27 Nov 2026 09:40:00 GMT", 1, 0}, /* in the past */
        {"Sat, 27 Nov 2027 09:44:01 GMT", 1, ACS_RETRY_AFTER_MAX_MS},
        {"", 0, 0},
        {"-1", 0, 0},
        {"1.5", 0, 0},
        {"soon", 0, 0},
        {"Fri, 27 Nov 2026 09:44:11", 0, 0},
        {"Fri, 32 Nov 2026 09:44:11 GMT", 0, 0},
        {"2026-11-27T09:44:11Z", 0, 0},
    };

    (void)state;
    /* The fixed "now" must be what the table assumes. */
    clock_http_date((time_t)(now / 1000), date);
    assert_string_equal(date, "Fri, 27 Nov 2026 09:44:01 GMT");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        v = -7;
        int rc = acs_retry_parse_retry_after(cases[i].in, now, &v);
        if (cases[i].ok) {
            if (rc != 0 || v != cases[i].want)
                fail_msg("'%s': rc %d v %lld want %lld", cases[i].in, rc, (long long)v,
                         (long long)cases[i].want);
        } else if (rc == 0) {
            fail_msg("'%s' accepted (%lld)", cases[i].in, (long long)v);
        }
    }
}

static void test_backoff_bounds(void **state)
{
    uint64_t x = 0x9E3779B97F4A7C15ULL;

    (void)state;
    for (int retry = 0; retry < 70; retry++) {
        int64_t cap = 200;
        for (int i = 0; i < retry && cap < 5000; i++)
            cap *= 2;
        if (cap > 5000)
            cap = 5000;
        int64_t lo = INT64_MAX, hi = -1;
        for (int k = 0; k < 2000; k++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            int64_t b = acs_retry_backoff_ms(retry, 200, 5000, x);
            assert_true(b >= 0 && b <= cap);
            lo = b < lo ? b : lo;
            hi = b > hi ? b : hi;
        }
        /* Full jitter: the whole range gets used. */
        assert_true(lo <= cap / 10);
        assert_true(hi >= cap - cap / 10);
    }
    /* Extremes of rnd hit the ends exactly. */
    assert_int_equal(acs_retry_backoff_ms(0, 200, 5000, 0), 0);
    assert_int_equal(acs_retry_backoff_ms(0, 200, 5000, 200), 200);
    assert_int_equal(acs_retry_backoff_ms(3, 200, 5000, 1600), 1600);
    assert_int_equal(acs_retry_backoff_ms(3, 200, 5000, 1601), 0);
    assert_int_equal(acs_retry_backoff_ms(1000, 200, 5000, UINT64_MAX) <= 5000, 1);
    assert_int_equal(acs_retry_backoff_ms(5, 0, 5000, 12345), 0);
    assert_int_equal(acs_retry_backoff_ms(5, 200, 0, 12345), 0);
}

static void test_wait_combines_server_hint(void **state)
{
    (void)state;
    /* No hint: the backoff itself. */
    assert_int_equal(acs_retry_wait_ms(150, -1), 150);
    /* A hint is a floor... */
    assert_int_equal(acs_retry_wait_ms(150, 1000), 1000);
    assert_int_equal(acs_retry_wait_ms(3000, 1000), 3000);
    /* ...honoured in full, even past the backoff cap: retrying earlier than the server asked
     * only earns another 429. The deadline, not this function, bounds the wait. */
    assert_int_equal(acs_retry_wait_ms(150, 60000), 60000);
    assert_int_equal(acs_retry_wait_ms(0, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify_table),
        cmocka_unit_test(test_classify_idempotent_create),
        cmocka_unit_test(test_outcome_unknown),
        cmocka_unit_test(test_parse_ms),
        cmocka_unit_test(test_parse_retry_after),
        cmocka_unit_test(test_backoff_bounds),
        cmocka_unit_test(test_wait_combines_server_hint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
