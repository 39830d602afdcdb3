/* Unit tests of the service's delay line (src/service/delayq.c): items reach the job queue in
 * due order, a zero delay runs at the next turn, stopping hands every waiting item over at once
 * and refuses new ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "../../src/service/delayq_int.h"
#include "../../src/service/jobq_int.h"

struct ran {
    pthread_mutex_t mu;
    int order[8];
    int n;
};

static struct ran g_ran = {PTHREAD_MUTEX_INITIALIZER, {0}, 0};

struct tagged {
    struct delay_item it; /* first: the queue hands back &it.job */
    int tag;
};

static void run_tagged(struct jobq_item *job)
{
    struct tagged *t = (struct tagged *)(void *)job;

    pthread_mutex_lock(&g_ran.mu);
    if (g_ran.n < 8)
        g_ran.order[g_ran.n] = t->tag;
    g_ran.n++;
    pthread_mutex_unlock(&g_ran.mu);
}

static int ran_count(void)
{
    pthread_mutex_lock(&g_ran.mu);
    int n = g_ran.n;
    pthread_mutex_unlock(&g_ran.mu);
    return n;
}

/* Generous bound: only stops a hung run. */
static int wait_ran(int n)
{
    int64_t end = clock_mono_ms() + 20000;

    while (ran_count() < n && clock_mono_ms() < end)
        clock_sleep_ms(2);
    return ran_count();
}

static void tagged_init(struct tagged *t, int tag)
{
    memset(t, 0, sizeof *t);
    t->it.job.run = run_tagged;
    t->tag = tag;
}

static int setup(void **state)
{
    (void)state;
    pthread_mutex_lock(&g_ran.mu);
    memset(g_ran.order, 0, sizeof g_ran.order);
    g_ran.n = 0;
    pthread_mutex_unlock(&g_ran.mu);
    return 0;
}

static void test_due_order(void **state)
{
    struct jobq q;
    struct delayq d;
    struct tagged a, b, c, z;

    (void)state;
    jobq_init(&q, 1, 0);
    assert_int_equal(jobq_start(&q), 0);
    assert_int_equal(delayq_init(&d, &q), 0);
    assert_int_equal(delayq_start(&d), 0);
    tagged_init(&a, 3);
    tagged_init(&b, 1);
    tagged_init(&c, 2);
    tagged_init(&z, 0);
    assert_int_equal(delayq_add(&d, &a.it, 300), 0);
    assert_int_equal(delayq_add(&d, &b.it, 100), 0);
    assert_int_equal(delayq_add(&d, &c.it, 200), 0);
    assert_int_equal(delayq_add(&d, &z.it, 0), 0);
    assert_int_equal(wait_ran(4), 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(g_ran.order[i], i);
    delayq_stop(&d);
    jobq_release(&q);
    delayq_release(&d);
}

/* An item is not handed over before its time, while a later-added earlier one is. */
static void test_not_before_due(void **state)
{
    struct jobq q;
    struct delayq d;
    struct tagged far, near;

    (void)state;
    jobq_init(&q, 1, 0);
    assert_int_equal(jobq_start(&q), 0);
    assert_int_equal(delayq_init(&d, &q), 0);
    assert_int_equal(delayq_start(&d), 0);
    tagged_init(&far, 7);
    tagged_init(&near, 1);
    assert_int_equal(delayq_add(&d, &far.it, 600000), 0);
    assert_int_equal(delayq_add(&d, &near.it, 50), 0);
    assert_int_equal(wait_ran(1), 1);
    /* Well after the near one: the far one (ten minutes) is still waiting. */
    clock_sleep_ms(200);
    assert_int_equal(ran_count(), 1);
    assert_int_equal(g_ran.order[0], 1);
    delayq_stop(&d);
    assert_int_equal(wait_ran(2), 2);
    assert_int_equal(g_ran.order[1], 7);
    jobq_release(&q);
    delayq_release(&d);
}

/* Items far in the future are handed over by the stop, and the line then refuses more. */
static void test_stop_flushes(void **state)
{
    struct jobq q;
    struct delayq d;
    struct tagged a, b, late;

    (void)state;
    jobq_init(&q, 1, 0);
    assert_int_equal(jobq_start(&q), 0);
    assert_int_equal(delayq_init(&d, &q), 0);
    assert_int_equal(delayq_start(&d), 0);
    tagged_init(&a, 1);
    tagged_init(&b, 2);
    tagged_init(&late, 9);
    assert_int_equal(delayq_add(&d, &a.it, 600000), 0);
    assert_int_equal(delayq_add(&d, &b.it, 900000), 0);
    delayq_stop(&d);
    assert_int_equal(wait_ran(2), 2);
    assert_int_equal(g_ran.order[0], 1);
    assert_int_equal(g_ran.order[1], 2);
    assert_int_equal(delayq_add(&d, &late.it, 0), TV_ERR_SHUTDOWN);
    delayq_stop(&d); /* idempotent */
    jobq_release(&q);
    delayq_release(&d);
    assert_int_equal(ran_count(), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_due_order, setup),
        cmocka_unit_test_setup(test_not_before_due, setup),
        cmocka_unit_test_setup(test_stop_flushes, setup),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
