/* Integration tests of the ACS client's circuit breaker against a real acs-emulator child
 * process: every attempt passes it (a retry of a call admitted before it opened fails fast, with
 * a Retry-After hint and no request to ACS), 429s do not count, the probe after the open period
 * closes it when ACS answers, and no breaker at all when it is off. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "acs/client.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "emu.h"

#define OPEN_MS 1000
#define WAIT_MAX_MS 10000 /* bound on waiting for the open period to end (a loaded machine) */

static struct temu g_emu;

static int group_setup(void **state)
{
    const char *args[] = {"--no-rate-limits", NULL};

    (void)state;
    log_setup(getenv("TV_LOG_DEBUG") != NULL ? LOGL_DEBUG : LOGL_ERROR, 2);
    if (!temu_available()) {
        fprintf(stderr, "acs-emulator not built at %s\n", temu_binary());
        return -1;
    }
    return temu_start(&g_emu, args);
}

static int group_teardown(void **state)
{
    (void)state;
    return temu_stop(&g_emu) == 0 ? 0 : -1;
}

static int test_setup(void **state)
{
    (void)state;
    if (temu_faults_clear(&g_emu) != 0 || temu_stats_reset(&g_emu) != 0)
        return -1;
    return 0;
}

static struct acs_client *client_new(long threshold, int retries)
{
    struct acs_client_opts o = {
        .connection_string = g_emu.connstr,
        .connect_timeout_ms = 1000,
        .attempt_timeout_ms = 5000,
        .deadline_ms = 15000,
        .max_retries = retries,
        .backoff_base_ms = 20,
        .backoff_max_ms = 100,
        .breaker_threshold = threshold,
        .breaker_open_ms = threshold > 0 ? OPEN_MS : 0,
    };
    struct acs_client *c = NULL;

    assert_int_equal(acs_client_new(&o, &c), 0);
    return c;
}

static void create_identity(struct acs_client *c, char out[ACS_ID_MAX])
{
    struct acs_request req = {.op = ACS_OP_CREATE};
    struct acs_result res;

    assert_int_equal(acs_client_call_sync(c, &req, &res), 0);
    memcpy(out, res.identity_id, ACS_ID_MAX);
    acs_result_release(&res);
}

static struct acs_breaker_stats breaker(struct acs_client *c)
{
    struct acs_breaker_stats st;

    memset(&st, 0, sizeof st);
    assert_int_equal(acs_client_breaker_get(c, &st), 1);
    return st;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Threshold 2, three retries: the call's second failed attempt opens the breaker, so its
 * next retry is refused without reaching ACS: the call ends TV_ERR_UNAVAILABLE, paused, with
 * a Retry-After; so does a new call. After the open period the probe goes to ACS, which
 * answers again: the breaker closes. */
static void test_retry_fails_fast_then_probe_closes(void **state)
{
    struct acs_client *c = client_new(2, 3);
    struct acs_breaker_stats st;
    struct acs_result res;
    char id[ACS_ID_MAX];
    int64_t t0;

    (void)state;
    create_identity(c, id);
    assert_int_equal(temu_faults_set(&g_emu, "{\"error_rate\":1,\"error_status\":503}"), 0);
    struct acs_request is = {
        .op = ACS_OP_ISSUE, .identity_id = id, .scopes = {"chat"}, .nscopes = 1};
    assert_int_equal(acs_client_call_sync(c, &is, &res), TV_ERR_UNAVAILABLE);
    assert_int_equal(res.attempts, 2);
    assert_true(res.paused);
    assert_int_equal(res.retry_after_s, 1);
    assert_non_null(strstr(res.message, "circuit breaker"));
    acs_result_release(&res);
    assert_int_equal(temu_stats_get(&g_emu, "requests", "issue"), 2);
    st = breaker(c);
    assert_int_equal(st.state, ACS_BREAKER_OPEN);
    assert_int_equal(st.opens, 1);
    assert_int_equal(st.rejected, 1);

    /* A new call: no attempt at all. */
    assert_int_equal(acs_client_call_sync(c, &is, &res), TV_ERR_UNAVAILABLE);
    assert_int_equal(res.attempts, 0);
    assert_true(res.paused);
    assert_true(res.retry_after_s >= 1);
    acs_result_release(&res);
    assert_int_equal(temu_stats_get(&g_emu, "requests", "issue"), 2);
    assert_int_equal(breaker(c).rejected, 2);

    /* ACS is back; once the period is over the probe closes the breaker. */
    assert_int_equal(temu_faults_clear(&g_emu), 0);
    t0 = clock_mono_ms();
    while (breaker(c).state == ACS_BREAKER_OPEN && clock_mono_ms() - t0 < WAIT_MAX_MS)
        sleep_ms(50);
    assert_int_equal(breaker(c).state, ACS_BREAKER_HALF_OPEN);
    assert_int_equal(acs_client_call_sync(c, &is, &res), 0);
    assert_int_equal(res.attempts, 1);
    assert_false(res.paused);
    acs_result_release(&res);
    st = breaker(c);
    assert_int_equal(st.state, ACS_BREAKER_CLOSED);
    assert_int_equal(st.failures, 0);
    acs_client_free(c);
}

/* 429s are ACS answering: any number of them leaves a threshold-1 breaker closed; one network
 * error (nothing listens) opens it. */
static void test_throttling_does_not_count(void **state)
{
    struct acs_client *c = client_new(1, 0);
    struct acs_result res;
    char id[ACS_ID_MAX];

    (void)state;
    create_identity(c, id);
    assert_int_equal(temu_faults_set(&g_emu, "{\"throttle_rate\":1,\"retry_after_ms\":10}"), 0);
    struct acs_request is = {
        .op = ACS_OP_ISSUE, .identity_id = id, .scopes = {"chat"}, .nscopes = 1};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(acs_client_call_sync(c, &is, &res), TV_ERR_ACS_THROTTLED);
        assert_int_equal(res.http_status, 429);
        acs_result_release(&res);
    }
    assert_int_equal(breaker(c).state, ACS_BREAKER_CLOSED);
    assert_int_equal(breaker(c).failures, 0);
    acs_client_free(c);
}

static void test_network_error_counts(void **state)
{
    char connstr[256];
    struct acs_client_opts o = {
        .connection_string = connstr,
        .connect_timeout_ms = 1000,
        .attempt_timeout_ms = 2000,
        .deadline_ms = 5000,
        .max_retries = 0,
        .breaker_threshold = 1,
        .breaker_open_ms = 60000,
    };
    struct acs_client *c = NULL;
    struct acs_request cr = {.op = ACS_OP_CREATE};
    struct acs_result res;
    int port = temu_closed_port();

    (void)state;
    assert_true(port > 0);
    snprintf(connstr, sizeof connstr, "endpoint=http://127.0.0.1:%d/;accesskey=%s", port,
             strstr(g_emu.connstr, "accesskey=") + strlen("accesskey="));
    assert_int_equal(acs_client_new(&o, &c), 0);
    assert_int_not_equal(acs_client_call_sync(c, &cr, &res), 0);
    assert_false(res.paused);
    acs_result_release(&res);
    assert_int_equal(breaker(c).state, ACS_BREAKER_OPEN);
    assert_int_equal(acs_client_call_sync(c, &cr, &res), TV_ERR_UNAVAILABLE);
    assert_true(res.paused);
    assert_int_equal(res.retry_after_s, 60);
    acs_result_release(&res);
    acs_client_free(c);
}

/* Off: no breaker, and any number of failures go to ACS. */
static void test_off(void **state)
{
    struct acs_client *c = client_new(0, 0);
    struct acs_breaker_stats st;
    struct acs_request cr = {.op = ACS_OP_CREATE};
    struct acs_result res;

    (void)state;
    assert_int_equal(acs_client_breaker_get(c, &st), 0);
    assert_int_equal(temu_faults_set(&g_emu, "{\"error_rate\":1,\"error_status\":503}"), 0);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(acs_client_call_sync(c, &cr, &res), TV_ERR_ACS_UNAVAILABLE);
        acs_result_release(&res);
    }
    assert_int_equal(temu_stats_get(&g_emu, "requests", "create"), 8);
    acs_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_retry_fails_fast_then_probe_closes, test_setup),
        cmocka_unit_test_setup(test_throttling_does_not_count, test_setup),
        cmocka_unit_test_setup(test_network_error_counts, test_setup),
        cmocka_unit_test_setup(test_off, test_setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
