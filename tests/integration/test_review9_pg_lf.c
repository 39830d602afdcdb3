/* Reproducer from the review of issue 9 (review9): failed-login counting on PostgreSQL under
 * concurrency. Every store_login_failure_add prunes the whole table (DELETE ... WHERE tat_ms <=
 * now) inside the transaction that has just updated its own name's row. Two adds for two names
 * whose rows have both expired each lock their own row, then each DELETE waits for the other's
 * row: a deadlock that PostgreSQL breaks by failing one of them (SQLSTATE 40P01), so a failed
 * login is not counted and its caller gets an error. The prune now runs after the name's
 * transaction and skips rows other transactions hold. Always runs on PostgreSQL. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "core/log.h"
#include "core/ratelimit.h"
#include "store/login_failures.h"
#include "store/store.h"
#include "store_fx.h"

#define THREADS 8
#define ROUNDS 40
#define ROUND_MS 100000 /* far more than the window: every row of the previous round expired */

struct shared {
    struct store *st;
    struct ratelimit rl;
    pthread_barrier_t bar;
    int failures; /* adds that neither counted nor refused (rate limited) */
    int first_rc;
    pthread_mutex_t mu;
};

struct worker {
    struct shared *sh;
    int idx;
};

static void *run(void *arg)
{
    struct worker *w = arg;
    char name[32];

    snprintf(name, sizeof name, "user-%d", w->idx);
    for (int k = 0; k < ROUNDS; k++) {
        int64_t tat = 0;
        int rc;
        pthread_barrier_wait(&w->sh->bar);
        rc = store_login_failure_add(w->sh->st, name, &w->sh->rl, 1000000 + (int64_t)k * ROUND_MS,
                                     &tat);
        if (rc != 0 && rc != TV_ERR_RATE_LIMITED) {
            pthread_mutex_lock(&w->sh->mu);
            if (w->sh->failures++ == 0)
                w->sh->first_rc = rc;
            pthread_mutex_unlock(&w->sh->mu);
        }
    }
    return NULL;
}

static void test_concurrent_adds_for_expired_names_all_count(void **state)
{
    struct store_fx fx;
    struct shared sh = {0};
    struct worker ws[THREADS];
    pthread_t th[THREADS];
    char err[64];

    (void)state;
    log_setup(LOGL_ERROR, 2); /* the store's own lines say which SQLSTATE failed */
    assert_int_equal(store_fx_new(&fx, "unused"), 0);
    assert_int_equal(store_fx_open(&fx, STORE_MIGRATE_YES, &sh.st), 0);
    assert_int_equal(ratelimit_parse("5/10s", &sh.rl, err, sizeof err), 0);
    pthread_mutex_init(&sh.mu, NULL);
    pthread_barrier_init(&sh.bar, NULL, THREADS);
    for (int i = 0; i < THREADS; i++) {
        ws[i] = (struct worker){.sh = &sh, .idx = i};
        assert_int_equal(pthread_create(&th[i], NULL, run, &ws[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    if (sh.failures != 0)
        fprintf(stderr, "%d of %d adds failed; the first with %s\n", sh.failures, THREADS * ROUNDS,
                err_name(sh.first_rc));
    assert_int_equal(sh.failures, 0);
    pthread_barrier_destroy(&sh.bar);
    pthread_mutex_destroy(&sh.mu);
    store_close(sh.st);
    store_fx_drop(&fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_adds_for_expired_names_all_count),
    };

    setenv("TV_TEST_STORE", "pg", 1);
    return cmocka_run_group_tests(tests, store_fx_group_setup, store_fx_group_teardown);
}
