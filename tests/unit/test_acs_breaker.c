/* Unit tests of src/acs/breaker.c: the circuit breaker's state machine with a clock the test
 * drives: thresholds, what counts, the open period's edges, one probe under concurrency, the
 * probe's outcomes, a lost probe, a clock going backwards, N = 1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "acs/breaker.h"
#include "core/err.h"

#define OPEN_MS 2000
#define PROBE_TIMEOUT_MS 5000

static struct acs_breaker *mk(int64_t n)
{
    struct acs_breaker *b = NULL;

    assert_int_equal(acs_breaker_new(n, OPEN_MS, PROBE_TIMEOUT_MS, &b), 0);
    return b;
}

/* Admits a plain (non-probe) attempt at now and reports its outcome. */
static void attempt(struct acs_breaker *b, int64_t now, enum acs_breaker_outcome o)
{
    int probe = -1;

    assert_int_equal(acs_breaker_admit(b, now, &probe, NULL), 1);
    assert_int_equal(probe, 0);
    acs_breaker_record(b, now, 0, o);
}

static enum acs_breaker_state state_at(struct acs_breaker *b, int64_t now)
{
    struct acs_breaker_stats st;

    acs_breaker_stats_get(b, now, &st);
    return st.state;
}

static void test_new_rejects_bad_arguments(void **state)
{
    struct acs_breaker *b = (struct acs_breaker *)&b; /* must stay untouched */

    (void)state;
    assert_int_equal(acs_breaker_new(0, OPEN_MS, 1, &b), TV_ERR_INVALID);
    assert_int_equal(acs_breaker_new(3, 0, 1, &b), TV_ERR_INVALID);
    assert_int_equal(acs_breaker_new(3, OPEN_MS, 0, &b), TV_ERR_INVALID);
    assert_int_equal(acs_breaker_new(-1, OPEN_MS, 1, &b), TV_ERR_INVALID);
    assert_ptr_equal(b, (struct acs_breaker *)&b);
    acs_breaker_free(NULL);
    assert_string_equal(acs_breaker_state_name(ACS_BREAKER_CLOSED), "closed");
    assert_string_equal(acs_breaker_state_name(ACS_BREAKER_OPEN), "open");
    assert_string_equal(acs_breaker_state_name(ACS_BREAKER_HALF_OPEN), "half_open");
}

/* N-1 failures keep it closed; a success resets the count; neutral outcomes (429, other 4xx)
 * neither count nor reset; the N-th consecutive failure opens it. */
static void test_threshold_counts_consecutive_failures(void **state)
{
    struct acs_breaker *b = mk(3);
    struct acs_breaker_stats st;
    int64_t wait = 0;
    int probe = -1;

    (void)state;
    attempt(b, 10, ACS_BREAKER_FAILURE);
    attempt(b, 11, ACS_BREAKER_FAILURE);
    attempt(b, 12, ACS_BREAKER_SUCCESS); /* reset */
    attempt(b, 13, ACS_BREAKER_FAILURE);
    attempt(b, 14, ACS_BREAKER_NEUTRAL); /* a 429 neither counts nor resets */
    attempt(b, 15, ACS_BREAKER_FAILURE);
    acs_breaker_stats_get(b, 15, &st);
    assert_int_equal(st.state, ACS_BREAKER_CLOSED);
    assert_int_equal(st.failures, 2);
    assert_int_equal(st.opens, 0);
    for (int i = 0; i < 50; i++)
        attempt(b, 16, ACS_BREAKER_NEUTRAL);
    assert_int_equal(state_at(b, 16), ACS_BREAKER_CLOSED);
    attempt(b, 1000, ACS_BREAKER_FAILURE); /* third in a row: opens */
    acs_breaker_stats_get(b, 1000, &st);
    assert_int_equal(st.state, ACS_BREAKER_OPEN);
    assert_int_equal(st.opens, 1);
    assert_int_equal(st.retry_after_s, 2);
    assert_int_equal(acs_breaker_admit(b, 1000, &probe, &wait), 0);
    assert_int_equal(probe, 0);
    assert_int_equal(wait, OPEN_MS);
    acs_breaker_stats_get(b, 1000, &st);
    assert_int_equal(st.rejected, 1);
    acs_breaker_free(b);
}

/* The open period's edges: refused up to open_ms - 1 with the exact rest as the wait, the
 * announced seconds rounded up; at exactly open_ms the next attempt is the probe. */
static void test_open_period_edges(void **state)
{
    struct acs_breaker *b = mk(1);
    struct acs_breaker_stats st;
    int64_t wait = 0;
    int probe = -1;

    (void)state;
    attempt(b, 5000, ACS_BREAKER_FAILURE);
    assert_int_equal(acs_breaker_admit(b, 5001, &probe, &wait), 0);
    assert_int_equal(wait, OPEN_MS - 1);
    acs_breaker_stats_get(b, 5001, &st);
    assert_int_equal(st.retry_after_s, 2); /* 1999 ms: rounded up */
    acs_breaker_stats_get(b, 6000, &st);
    assert_int_equal(st.retry_after_s, 1);
    acs_breaker_stats_get(b, 6999, &st);
    assert_int_equal(st.state, ACS_BREAKER_OPEN);
    assert_int_equal(st.retry_after_s, 1); /* 1 ms left still says 1 s, never 0 */
    assert_int_equal(acs_breaker_admit(b, 6999, &probe, &wait), 0);
    assert_int_equal(wait, 1);
    /* The period is over: the state reads half-open before any probe is admitted. */
    acs_breaker_stats_get(b, 7000, &st);
    assert_int_equal(st.state, ACS_BREAKER_HALF_OPEN);
    assert_int_equal(st.retry_after_s, 0);
    assert_int_equal(acs_breaker_admit(b, 7000, &probe, &wait), 1);
    assert_int_equal(probe, 1);
    acs_breaker_stats_get(b, 7000, &st);
    assert_int_equal(st.rejected, 2);
    acs_breaker_free(b);
}

/* The probe's outcome: a failure opens it again for a whole period (counted as an open); a
 * success closes it with the count at zero; a neutral answer (ACS answered) closes it too. */
static void test_probe_outcomes(void **state)
{
    struct acs_breaker *b = mk(2);
    struct acs_breaker_stats st;
    int64_t wait = 0, t = 100;
    int probe = -1;

    (void)state;
    attempt(b, t, ACS_BREAKER_FAILURE);
    attempt(b, t, ACS_BREAKER_FAILURE);
    t += OPEN_MS;
    assert_int_equal(acs_breaker_admit(b, t, &probe, NULL), 1);
    assert_int_equal(probe, 1);
    acs_breaker_record(b, t + 30, 1, ACS_BREAKER_FAILURE);
    acs_breaker_stats_get(b, t + 30, &st);
    assert_int_equal(st.state, ACS_BREAKER_OPEN);
    assert_int_equal(st.opens, 2);
    /* The new period runs from the probe's failure. */
    assert_int_equal(acs_breaker_admit(b, t + 30 + OPEN_MS - 1, &probe, &wait), 0);
    assert_int_equal(wait, 1);
    t += 30 + OPEN_MS;
    assert_int_equal(acs_breaker_admit(b, t, &probe, NULL), 1);
    assert_int_equal(probe, 1);
    acs_breaker_record(b, t, 1, ACS_BREAKER_SUCCESS);
    acs_breaker_stats_get(b, t, &st);
    assert_int_equal(st.state, ACS_BREAKER_CLOSED);
    assert_int_equal(st.failures, 0);
    /* Closed again: one failure does not reopen a breaker of threshold 2. */
    attempt(b, t + 1, ACS_BREAKER_FAILURE);
    assert_int_equal(state_at(b, t + 1), ACS_BREAKER_CLOSED);
    attempt(b, t + 2, ACS_BREAKER_FAILURE);
    assert_int_equal(state_at(b, t + 2), ACS_BREAKER_OPEN);
    t += 2 + OPEN_MS;
    assert_int_equal(acs_breaker_admit(b, t, &probe, NULL), 1);
    assert_int_equal(probe, 1);
    acs_breaker_record(b, t, 1, ACS_BREAKER_NEUTRAL);
    assert_int_equal(state_at(b, t), ACS_BREAKER_CLOSED);
    acs_breaker_stats_get(b, t, &st);
    assert_int_equal(st.opens, 3);
    acs_breaker_free(b);
}

/* Outcomes of attempts admitted before it opened (no probes) change nothing while it is open
 * or half-open: late failures do not extend the period, a late success does not close it. */
static void test_late_outcomes_ignored(void **state)
{
    struct acs_breaker *b = mk(1);
    struct acs_breaker_stats st;
    int64_t wait = 0;
    int probe = -1;

    (void)state;
    attempt(b, 0, ACS_BREAKER_FAILURE);
    acs_breaker_record(b, 1500, 0, ACS_BREAKER_FAILURE);
    acs_breaker_record(b, 1500, 0, ACS_BREAKER_SUCCESS);
    acs_breaker_stats_get(b, 1500, &st);
    assert_int_equal(st.state, ACS_BREAKER_OPEN);
    assert_int_equal(st.opens, 1);
    assert_int_equal(acs_breaker_admit(b, OPEN_MS, &probe, NULL), 1);
    assert_int_equal(probe, 1);
    acs_breaker_record(b, OPEN_MS, 0, ACS_BREAKER_SUCCESS);
    acs_breaker_record(b, OPEN_MS, 0, ACS_BREAKER_FAILURE);
    assert_int_equal(acs_breaker_admit(b, OPEN_MS + 1, &probe, &wait), 0);
    assert_int_equal(wait, 1000); /* the probe is out */
    assert_int_equal(state_at(b, OPEN_MS + 1), ACS_BREAKER_HALF_OPEN);
    acs_breaker_free(b);
}

/* A probe given up (never started, deadline, shutdown) hands the slot to the next attempt;
 * one whose report never comes is replaced after the probe timeout, and its late report no
 * longer decides once the breaker has moved on. */
static void test_abandoned_and_lost_probe(void **state)
{
    struct acs_breaker *b = mk(1);
    int64_t wait = 0, t = OPEN_MS;
    int probe = -1;

    (void)state;
    attempt(b, 0, ACS_BREAKER_FAILURE);
    assert_int_equal(acs_breaker_admit(b, t, &probe, NULL), 1);
    assert_int_equal(probe, 1);
    assert_int_equal(acs_breaker_admit(b, t, &probe, NULL), 0);
    acs_breaker_abandon(b, t + 5);
    assert_int_equal(state_at(b, t + 5), ACS_BREAKER_HALF_OPEN);
    assert_int_equal(acs_breaker_admit(b, t + 5, &probe, NULL), 1);
    assert_int_equal(probe, 1);
    /* This probe never reports: refused with a 1 s wait until the probe timeout... */
    assert_int_equal(acs_breaker_admit(b, t + 5 + PROBE_TIMEOUT_MS - 1, &probe, &wait), 0);
    assert_int_equal(wait, 1000);
    /* ...then the next attempt is the probe. */
    assert_int_equal(acs_breaker_admit(b, t + 5 + PROBE_TIMEOUT_MS, &probe, NULL), 1);
    assert_int_equal(probe, 1);
    acs_breaker_record(b, t + 5 + PROBE_TIMEOUT_MS, 1, ACS_BREAKER_FAILURE);
    assert_int_equal(state_at(b, t + 6 + PROBE_TIMEOUT_MS), ACS_BREAKER_OPEN);
    /* The lost probe's success arrives late: the breaker is open, not half-open: ignored. */
    acs_breaker_record(b, t + 7 + PROBE_TIMEOUT_MS, 1, ACS_BREAKER_SUCCESS);
    assert_int_equal(state_at(b, t + 7 + PROBE_TIMEOUT_MS), ACS_BREAKER_OPEN);
    /* Abandon outside half-open changes nothing. */
    acs_breaker_abandon(b, t + 8 + PROBE_TIMEOUT_MS);
    assert_int_equal(acs_breaker_admit(b, t + 8 + PROBE_TIMEOUT_MS, &probe, NULL), 0);
    acs_breaker_free(b);
}

/* The check before the budget takes no probe: however many calls pass it once the open
 * period ended, only the admit right before the send makes one probe; it refuses what admit
 * would refuse (open period, a probe out) and counts those as rejected. record() says when an
 * outcome opened the breaker. */
static void test_check_takes_no_probe(void **state)
{
    struct acs_breaker *b = mk(2);
    struct acs_breaker_stats st;
    int64_t wait = 0, t = OPEN_MS + 10;
    int probe = -1;

    (void)state;
    assert_int_equal(acs_breaker_check(b, 0, &wait), 1);
    assert_int_equal(acs_breaker_admit(b, 0, &probe, NULL), 1);
    assert_int_equal(acs_breaker_record(b, 0, 0, ACS_BREAKER_FAILURE), 0);
    assert_int_equal(acs_breaker_admit(b, 10, &probe, NULL), 1);
    assert_int_equal(acs_breaker_record(b, 10, 0, ACS_BREAKER_FAILURE), 1);
    assert_int_equal(acs_breaker_check(b, OPEN_MS + 9, &wait), 0);
    assert_int_equal(wait, 1);
    /* Period over: every check passes and the state stays "open, probe time". */
    for (int i = 0; i < 5; i++)
        assert_int_equal(acs_breaker_check(b, t + i, &wait), 1);
    acs_breaker_stats_get(b, t + 5, &st);
    assert_int_equal(st.state, ACS_BREAKER_HALF_OPEN);
    assert_int_equal(st.rejected, 1);
    /* The probe is admitted at its send, its timer from then on. */
    assert_int_equal(acs_breaker_admit(b, t + 3000, &probe, NULL), 1);
    assert_int_equal(probe, 1);
    assert_int_equal(acs_breaker_check(b, t + 3000 + PROBE_TIMEOUT_MS - 1, &wait), 0);
    assert_int_equal(wait, 1000);
    assert_int_equal(acs_breaker_admit(b, t + 3001, &probe, NULL), 0);
    /* The probe fails: that opens it again, and record says so. */
    assert_int_equal(acs_breaker_record(b, t + 3100, 1, ACS_BREAKER_FAILURE), 1);
    assert_int_equal(acs_breaker_check(b, t + 3100, &wait), 0);
    assert_int_equal(wait, OPEN_MS);
    /* A late report while open opens nothing. */
    assert_int_equal(acs_breaker_record(b, t + 3200, 0, ACS_BREAKER_FAILURE), 0);
    acs_breaker_free(b);
}

/* A clock that goes backwards never makes a wait longer than one open period, and huge clock
 * values do not overflow. */
static void test_clock_edges(void **state)
{
    struct acs_breaker *b = mk(1);
    struct acs_breaker_stats st;
    int64_t wait = 0;
    int probe = -1;

    (void)state;
    attempt(b, 1000000, ACS_BREAKER_FAILURE);
    assert_int_equal(acs_breaker_admit(b, 0, &probe, &wait), 0);
    assert_int_equal(wait, OPEN_MS);
    acs_breaker_stats_get(b, 0, &st);
    assert_int_equal(st.retry_after_s, 2);
    acs_breaker_free(b);

    b = mk(2);
    attempt(b, INT64_MAX - 10, ACS_BREAKER_FAILURE);
    attempt(b, INT64_MAX - 10, ACS_BREAKER_FAILURE);
    assert_int_equal(acs_breaker_admit(b, INT64_MAX - 1, &probe, &wait), 0);
    assert_int_equal(wait, OPEN_MS - 9);
    assert_int_equal(acs_breaker_admit(b, INT64_MAX, &probe, &wait), 0);
    acs_breaker_free(b);

    /* The largest settings: a year's period, a threshold of a million. */
    assert_int_equal(acs_breaker_new(1000000, 31536000000LL, 31536000000LL, &b), 0);
    for (int i = 0; i < 999999; i++)
        acs_breaker_record(b, i, 0, ACS_BREAKER_FAILURE);
    assert_int_equal(state_at(b, 999999), ACS_BREAKER_CLOSED);
    acs_breaker_record(b, 999999, 0, ACS_BREAKER_FAILURE);
    acs_breaker_stats_get(b, 999999, &st);
    assert_int_equal(st.state, ACS_BREAKER_OPEN);
    assert_int_equal(st.retry_after_s, 31536000);
    acs_breaker_free(b);
}

/* N = 1: every single failure opens it. */
static void test_threshold_one(void **state)
{
    struct acs_breaker *b = mk(1);
    int probe = -1;

    (void)state;
    attempt(b, 0, ACS_BREAKER_SUCCESS);
    attempt(b, 1, ACS_BREAKER_NEUTRAL);
    assert_int_equal(state_at(b, 1), ACS_BREAKER_CLOSED);
    attempt(b, 2, ACS_BREAKER_FAILURE);
    assert_int_equal(state_at(b, 2), ACS_BREAKER_OPEN);
    assert_int_equal(acs_breaker_admit(b, 2 + OPEN_MS, &probe, NULL), 1);
    acs_breaker_record(b, 2 + OPEN_MS, probe, ACS_BREAKER_SUCCESS);
    attempt(b, 3 + OPEN_MS, ACS_BREAKER_FAILURE);
    assert_int_equal(state_at(b, 3 + OPEN_MS), ACS_BREAKER_OPEN);
    acs_breaker_free(b);
}

/* Many threads ask at once once the period is over: exactly one is the probe. */
#define RACERS 8
#define ROUNDS 200

struct race {
    struct acs_breaker *b;
    pthread_barrier_t *bar;
    int64_t now;
    int admitted, probes;
};

static void *racer(void *arg)
{
    struct race *r = arg;
    int probe = 0;

    pthread_barrier_wait(r->bar);
    for (int i = 0; i < 4; i++) {
        if (acs_breaker_admit(r->b, r->now, &probe, NULL)) {
            r->admitted++;
            r->probes += probe;
        }
    }
    return NULL;
}

static void test_single_probe_under_concurrency(void **state)
{
    (void)state;
    for (int round = 0; round < ROUNDS; round++) {
        struct acs_breaker *b = mk(1);
        pthread_barrier_t bar;
        pthread_t th[RACERS];
        struct race r[RACERS];
        int admitted = 0, probes = 0;

        attempt(b, 0, ACS_BREAKER_FAILURE);
        assert_int_equal(pthread_barrier_init(&bar, NULL, RACERS), 0);
        for (int i = 0; i < RACERS; i++) {
            r[i] = (struct race){.b = b, .bar = &bar, .now = OPEN_MS + i};
            assert_int_equal(pthread_create(&th[i], NULL, racer, &r[i]), 0);
        }
        for (int i = 0; i < RACERS; i++) {
            pthread_join(th[i], NULL);
            admitted += r[i].admitted;
            probes += r[i].probes;
        }
        pthread_barrier_destroy(&bar);
        assert_int_equal(admitted, 1);
        assert_int_equal(probes, 1);
        acs_breaker_free(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_rejects_bad_arguments),
        cmocka_unit_test(test_threshold_counts_consecutive_failures),
        cmocka_unit_test(test_open_period_edges),
        cmocka_unit_test(test_probe_outcomes),
        cmocka_unit_test(test_late_outcomes_ignored),
        cmocka_unit_test(test_abandoned_and_lost_probe),
        cmocka_unit_test(test_check_takes_no_probe),
        cmocka_unit_test(test_clock_edges),
        cmocka_unit_test(test_threshold_one),
        cmocka_unit_test(test_single_probe_under_concurrency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
