/* Integration tests of the upstream budget (service/upstream_budget.h) with a real ACS client,
 * a real acs-emulator child and a SQLite store: the queue takes turns between callers, a call
 * whose turn comes after its deadline is refused at once with 503 and a retry hint (never
 * sent), a call still waiting at its deadline ends the same way, and shutdown hands back the
 * calls the budget keeps. No assertion on time: only on order, outcomes and ACS's counts. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "acs/client.h"
#include "core/budget.h"
#include "core/err.h"
#include "core/log.h"
#include "emu.h"
#include "service/upstream_budget.h"
#include "store/store.h"

static struct temu g_emu;

struct fx {
    char dir[64];
    char path[128];
    struct store *store;
    struct upstream_budget *budget;
    struct acs_client *acs;
};

static int group_setup(void **state)
{
    (void)state;
    log_setup(getenv("TV_TEST_VERBOSE") ? LOGL_DEBUG : LOGL_ERROR, 2);
    if (!temu_available()) {
        fprintf(stderr, "acs-emulator not built at %s\n", temu_binary());
        return -1;
    }
    return temu_start(&g_emu, NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    return temu_stop(&g_emu) == 0 ? 0 : -1;
}

/* A store, a budget of `budget` and a client with deadline_ms that asks it. */
static struct fx *fx_new(const char *budget, long deadline_ms)
{
    struct fx *f = calloc(1, sizeof *f);
    struct upstream_budget_opts bo = {.deadline_ms = deadline_ms};
    struct acs_client_opts ao = {
        .connection_string = g_emu.connstr, .deadline_ms = deadline_ms, .max_retries = 0};
    char err[200];

    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/tv-ubudget-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/tv.db", f->dir);
    assert_int_equal(store_open(f->path, STORE_MIGRATE_YES, &f->store), 0);
    assert_int_equal(budget_parse(budget, &bo.cfg, err, sizeof err), 0);
    bo.store = f->store;
    assert_int_equal(upstream_budget_new(&bo, &f->budget), 0);
    ao.gate = upstream_budget_gate(f->budget);
    assert_non_null(ao.gate);
    assert_int_equal(acs_client_new(&ao, &f->acs), 0);
    assert_int_equal(temu_stats_reset(&g_emu), 0);
    return f;
}

static void fx_free(struct fx *f)
{
    char p[256];

    acs_client_free(f->acs);
    upstream_budget_free(f->budget);
    store_close(f->store);
    unlink(f->path);
    snprintf(p, sizeof p, "%s-wal", f->path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", f->path);
    unlink(p);
    rmdir(f->dir);
    free(f);
}

/* Outcomes of asynchronous calls, in the order they finished. */
struct results {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int order[64]; /* tags, by finishing order */
    int rc[64];    /* by tag */
    int refused[64];
    long retry_s[64];
    int n;
};

struct slot {
    struct results *rs;
    int tag;
};

static void on_done(void *arg, struct acs_result *res)
{
    struct slot *s = arg;
    struct results *rs = s->rs;

    pthread_mutex_lock(&rs->mu);
    rs->order[rs->n++] = s->tag;
    rs->rc[s->tag] = res->rc;
    rs->refused[s->tag] = res->budget_refused;
    rs->retry_s[s->tag] = res->retry_after_s;
    pthread_cond_signal(&rs->cv);
    pthread_mutex_unlock(&rs->mu);
    acs_result_release(res);
}

static void wait_n(struct results *rs, int n)
{
    pthread_mutex_lock(&rs->mu);
    while (rs->n < n)
        pthread_cond_wait(&rs->cv, &rs->mu);
    pthread_mutex_unlock(&rs->mu);
}

static void submit(struct fx *f, struct slot *s, const char *caller)
{
    struct acs_request rq = {.op = ACS_OP_CREATE, .caller = caller};

    assert_int_equal(acs_client_submit(f->acs, &rq, on_done, s), 0);
}

/* One caller's burst of 12 and another's single call: the single call is served within the
 * first turns, not after the burst (a plain FIFO would serve it 13th). */
static void test_turns_between_callers(void **state)
{
    struct fx *f = fx_new("create=2/1s", 30000);
    struct results rs = {.n = 0};
    struct slot slots[13];
    int rank = -1;

    (void)state;
    pthread_mutex_init(&rs.mu, NULL);
    pthread_cond_init(&rs.cv, NULL);
    for (int i = 0; i < 13; i++)
        slots[i] = (struct slot){.rs = &rs, .tag = i};
    for (int i = 0; i < 12; i++)
        submit(f, &slots[i], "apikey:bulk");
    submit(f, &slots[12], "user:alice");
    wait_n(&rs, 13);
    for (int i = 0; i < 13; i++) {
        assert_int_equal(rs.rc[i], 0);
        if (rs.order[i] == 12)
            rank = i;
    }
    /* The burst may have taken the first window's slots before alice asked; in turns she is
     * next after that. */
    if (rank > 3)
        fail_msg("alice's call finished %dth of 13", rank + 1);
    assert_int_equal(temu_stats_get(&g_emu, "requests", "create"), 13);
    assert_int_equal(temu_stats_get(&g_emu, "succeeded", "create"), 13);
    fx_free(f);
    pthread_cond_destroy(&rs.cv);
    pthread_mutex_destroy(&rs.mu);
}

/* With the only slot of a long window used, a call whose deadline comes first is refused at
 * once: 503 (TV_ERR_UNAVAILABLE) with the wait until the slot frees, and ACS never sees it. */
static void test_refused_when_turn_after_deadline(void **state)
{
    struct fx *f = fx_new("create=1/60s", 3000);
    struct acs_request rq = {.op = ACS_OP_CREATE, .caller = "user:bob"};
    struct acs_result res;
    struct upstream_budget_stats st;

    (void)state;
    assert_int_equal(acs_client_call_sync(f->acs, &rq, &res), 0);
    acs_result_release(&res);
    assert_int_equal(acs_client_call_sync(f->acs, &rq, &res), TV_ERR_UNAVAILABLE);
    assert_int_equal(res.budget_refused, ACS_BUDGET_REFUSED_QUOTA);
    assert_int_equal(res.http_status, 0);
    assert_true(res.retry_after_s >= 55 && res.retry_after_s <= 61);
    assert_non_null(strstr(res.message, "acs_budget"));
    acs_result_release(&res);
    assert_int_equal(temu_stats_get(&g_emu, "requests", "create"), 1);
    upstream_budget_stats_get(f->budget, ACS_OP_CREATE, &st);
    assert_int_equal(st.limit, 1);
    assert_true(st.refusals >= 1);
    assert_int_equal(st.granted, 1);
    assert_int_equal(st.queued, 0);
    fx_free(f);
}

/* A call admitted while no slot was known to be taken, that then finds none before its
 * deadline, ends the same way (as soon as the budget sees its turn comes too late, at the
 * latest at its deadline), and is never sent. */
static void test_refused_while_waiting(void **state)
{
    struct fx *f = fx_new("create=1/20s", 1500);
    struct acs_request rq = {.op = ACS_OP_CREATE, .caller = "user:carol"};
    struct results rs = {.n = 0};
    struct slot s[2] = {{.rs = &rs, .tag = 0}, {.rs = &rs, .tag = 1}};

    (void)state;
    pthread_mutex_init(&rs.mu, NULL);
    pthread_cond_init(&rs.cv, NULL);
    /* Both at once: the second is queued before any take came short. */
    assert_int_equal(acs_client_submit(f->acs, &rq, on_done, &s[0]), 0);
    assert_int_equal(acs_client_submit(f->acs, &rq, on_done, &s[1]), 0);
    wait_n(&rs, 2);
    assert_int_equal(rs.rc[0] == 0 ? rs.rc[1] : rs.rc[0], TV_ERR_UNAVAILABLE);
    assert_int_equal(rs.rc[0] == 0 ? rs.refused[1] : rs.refused[0], 1);
    assert_true((rs.rc[0] == 0 ? rs.retry_s[1] : rs.retry_s[0]) >= 1);
    assert_true(rs.rc[0] == 0 || rs.rc[1] == 0);
    assert_int_equal(temu_stats_get(&g_emu, "requests", "create"), 1);
    fx_free(f);
    pthread_cond_destroy(&rs.cv);
    pthread_mutex_destroy(&rs.mu);
}

struct holder {
    const char *path;
    int ready;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

/* Another process's long write transaction on the store file, for 2 s. */
static void *hold_writer(void *arg)
{
    struct holder *h = arg;
    sqlite3 *db = NULL;
    int ok = sqlite3_open(h->path, &db) == SQLITE_OK &&
             sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;

    pthread_mutex_lock(&h->mu);
    h->ready = ok ? 1 : -1;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
    if (ok) {
        usleep(2000 * 1000);
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    }
    sqlite3_close(db);
    return NULL;
}

/* The store is slow (another process holds its write lock past the call's deadline): the call
 * still waiting for its slot at its deadline ends with the budget's 503 and a retry hint, and
 * is not sent once the slot finally comes. */
static void test_waiting_past_deadline_slow_store(void **state)
{
    struct fx *f = fx_new("create=5/1s", 1000);
    struct acs_request rq = {.op = ACS_OP_CREATE, .caller = "user:erin"};
    struct acs_result res;
    struct holder h = {.path = f->path};
    pthread_t th;

    (void)state;
    pthread_mutex_init(&h.mu, NULL);
    pthread_cond_init(&h.cv, NULL);
    assert_int_equal(pthread_create(&th, NULL, hold_writer, &h), 0);
    pthread_mutex_lock(&h.mu);
    while (h.ready == 0)
        pthread_cond_wait(&h.cv, &h.mu);
    pthread_mutex_unlock(&h.mu);
    assert_int_equal(h.ready, 1);
    assert_int_equal(acs_client_call_sync(f->acs, &rq, &res), TV_ERR_UNAVAILABLE);
    assert_int_equal(res.budget_refused, ACS_BUDGET_REFUSED_STORE);
    assert_true(res.retry_after_s >= 1);
    /* The 503 blames the store, not a spent quota (all 5 slots are free). */
    assert_non_null(strstr(res.message, "store"));
    assert_null(strstr(res.message, "frees"));
    acs_result_release(&res);
    pthread_join(th, NULL);
    assert_int_equal(temu_stats_get(&g_emu, "requests", "create"), 0);
    /* The store is back: the next call goes through. */
    assert_int_equal(acs_client_call_sync(f->acs, &rq, &res), 0);
    acs_result_release(&res);
    fx_free(f);
    pthread_cond_destroy(&h.cv);
    pthread_mutex_destroy(&h.mu);
}

/* Shutdown while calls wait for a slot: they end with TV_ERR_SHUTDOWN, none is lost. */
static void test_shutdown_hands_back_waiting_calls(void **state)
{
    /* Three more turns of 5.5 s fit the 30 s deadline: all are queued, none refused. */
    struct fx *f = fx_new("create=1/5s", 30000);
    struct results rs = {.n = 0};
    struct slot s[4];

    (void)state;
    pthread_mutex_init(&rs.mu, NULL);
    pthread_cond_init(&rs.cv, NULL);
    for (int i = 0; i < 4; i++) {
        s[i] = (struct slot){.rs = &rs, .tag = i};
        submit(f, &s[i], "user:dave");
    }
    wait_n(&rs, 1); /* the one slot's call */
    acs_client_free(f->acs);
    f->acs = NULL;
    assert_int_equal(rs.n, 4);
    for (int i = 1; i < 4; i++)
        assert_int_equal(rs.rc[rs.order[i]], TV_ERR_SHUTDOWN);
    fx_free(f);
    pthread_cond_destroy(&rs.cv);
    pthread_mutex_destroy(&rs.mu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_turns_between_callers),
        cmocka_unit_test(test_refused_when_turn_after_deadline),
        cmocka_unit_test(test_refused_while_waiting),
        cmocka_unit_test(test_waiting_past_deadline_slow_store),
        cmocka_unit_test(test_shutdown_hands_back_waiting_calls),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
