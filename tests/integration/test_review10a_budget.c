/* review10a: reproducers for the upstream budget (service/upstream_budget.h).
 *
 * The budget's promise (core/budget.h): "no interval of W sees more than N uses at ACS". A
 * slot is stamped grant + hold (500 ms), and the engine starts a granted attempt within
 * BUDGET_GRANT_TTL_MS. But "started" means curl_multi_add_handle: when every connection the
 * client may open to the host (CURLMOPT_MAX_HOST_CONNECTIONS, acs_max_connections) is busy,
 * curl keeps the request in its own pending queue, and it reaches ACS whenever a connection
 * frees, long after its slot's hold. The slot frees W after the stamp all the same, so the
 * next window's calls meet the late ones at ACS: more than N in W, and ACS answers 429.
 *
 * Here: acs-emulator enforces create=20 per 2 s (a fixed window from the first counted call,
 * so it never throttles a sequence that keeps to 20 in any 2 s); the budget is create=20/2s,
 * the same; the client may open 10 connections. Ten slow issue calls (1.5 s, an ACS latency
 * spike on one operation) hold every connection; 20 creates are granted at once and wait in
 * curl's queue until ~1.5 s, then reach ACS at once (creates are fast). The budget frees
 * their slots at 0.5 + 2 = 2.5 s and grants 20 more creates, which reach ACS at ~2.5 s: 40
 * creates within 1 s at ACS against a limit of 20 per 2 s. No timing is asserted: only ACS's
 * 429 count, which must be 0 when the budget keeps its promise. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "acs/breaker.h"
#include "acs/client.h"
#include "core/budget.h"
#include "core/err.h"
#include "core/log.h"
#include "emu.h"
#include "service/upstream_budget.h"
#include "store/store.h"

static struct temu g_emu;

static int group_setup(void **state)
{
    static const char *const args[] = {"--rate-limit-create", "20", "--rate-limit-window-s", "2",
                                       NULL};

    (void)state;
    log_setup(getenv("TV_TEST_VERBOSE") ? LOGL_DEBUG : LOGL_ERROR, 2);
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

#define NCALLS 64

struct results {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
    int n_create;
    int throttled; /* ACS answered 429 */
    int refused;   /* the budget refused (503, never sent) */
};

struct slot {
    struct results *rs;
    int is_create;
};

static void on_done(void *arg, struct acs_result *res)
{
    struct slot *s = arg;
    struct results *rs = s->rs;

    pthread_mutex_lock(&rs->mu);
    rs->n++;
    if (s->is_create) {
        rs->n_create++;
        if (res->http_status == 429)
            rs->throttled++;
        if (res->budget_refused)
            rs->refused++;
    }
    pthread_cond_broadcast(&rs->cv);
    pthread_mutex_unlock(&rs->mu);
    acs_result_release(res);
}

static void wait_creates(struct results *rs, int n)
{
    pthread_mutex_lock(&rs->mu);
    while (rs->n_create < n)
        pthread_cond_wait(&rs->cv, &rs->mu);
    pthread_mutex_unlock(&rs->mu);
}

static void wait_all(struct results *rs, int n)
{
    pthread_mutex_lock(&rs->mu);
    while (rs->n < n)
        pthread_cond_wait(&rs->cv, &rs->mu);
    pthread_mutex_unlock(&rs->mu);
}

static void run_two_windows(int slow_issues)
{
    char dir[64], path[128], p[256], err[200], callers[NCALLS][32];
    struct store *store = NULL;
    struct upstream_budget *budget = NULL;
    struct acs_client *acs = NULL;
    struct upstream_budget_opts bo = {.deadline_ms = 30000};
    struct acs_client_opts ao = {.connection_string = g_emu.connstr,
                                 .deadline_ms = 30000,
                                 .max_retries = 0,
                                 .max_connections = 10};
    struct results rs = {.n = 0};
    struct slot slots[NCALLS];
    int k = 0;

    pthread_mutex_init(&rs.mu, NULL);
    pthread_cond_init(&rs.cv, NULL);
    snprintf(dir, sizeof dir, "/tmp/tv-r10a-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/tv.db", dir);
    assert_int_equal(store_open(path, STORE_MIGRATE_YES, &store), 0);
    /* The same limit as "ACS"; issue has its own (default) budget. */
    assert_int_equal(budget_parse("create=20/2s", &bo.cfg, err, sizeof err), 0);
    bo.store = store;
    assert_int_equal(upstream_budget_new(&bo, &budget), 0);
    ao.gate = upstream_budget_gate(budget);
    assert_int_equal(acs_client_new(&ao, &acs), 0);
    assert_int_equal(temu_stats_reset(&g_emu), 0);
    /* The emulator's fixed window (2 s from its first counted create) outlives a test: the
     * previous test's last creates may have opened one. Let it pass, so this run's creates
     * meet a fresh window (stats/reset does not reset the emulator's rate limiter). */
    usleep(2100 * 1000);
    /* An ACS latency spike on issue only. */
    assert_int_equal(temu_faults_set(&g_emu, "{\"latency_ms\":1500,\"ops\":[\"issue\"]}"), 0);

    /* Ten slow issues take every connection the client may open. */
    for (int i = 0; i < slow_issues; i++, k++) {
        struct acs_request rq = {.op = ACS_OP_ISSUE,
                                 .identity_id = "8:acs:00000000-0000-0000-0000-000000000000_x",
                                 .scopes = {"voip"},
                                 .nscopes = 1,
                                 .caller = "apikey:backend"};
        slots[k] = (struct slot){.rs = &rs, .is_create = 0};
        assert_int_equal(acs_client_submit(acs, &rq, on_done, &slots[k]), 0);
    }
    usleep(200 * 1000); /* let them take the connections (not a timing assertion) */
    /* Window 1: 20 creates, granted at once, sent when a connection frees. */
    for (int i = 0; i < 20; i++, k++) {
        struct acs_request rq = {.op = ACS_OP_CREATE, .caller = callers[k]};
        snprintf(callers[k], sizeof callers[k], "user:a%d", i);
        slots[k] = (struct slot){.rs = &rs, .is_create = 1};
        assert_int_equal(acs_client_submit(acs, &rq, on_done, &slots[k]), 0);
    }
    wait_creates(&rs, 20);
    /* Window 2: 20 more creates; the budget grants them once the first 20 slots free. */
    for (int i = 0; i < 20; i++, k++) {
        struct acs_request rq = {.op = ACS_OP_CREATE, .caller = callers[k]};
        snprintf(callers[k], sizeof callers[k], "user:b%d", i);
        slots[k] = (struct slot){.rs = &rs, .is_create = 1};
        assert_int_equal(acs_client_submit(acs, &rq, on_done, &slots[k]), 0);
    }
    wait_all(&rs, k);
    fprintf(stderr,
            "creates: %d, answered 429 by ACS: %d, refused by the budget: %d; ACS requests %ld, "
            "succeeded %ld\n",
            rs.n_create, rs.throttled, rs.refused, temu_stats_get(&g_emu, "requests", "create"),
            temu_stats_get(&g_emu, "succeeded", "create"));
    assert_int_equal(temu_faults_clear(&g_emu), 0);
    acs_client_free(acs);
    upstream_budget_free(budget);
    store_close(store);
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
    rmdir(dir);
    /* The budget's promise: ACS never throttles a client that keeps to its own limit. */
    assert_int_equal(rs.throttled, 0);
    pthread_cond_destroy(&rs.cv);
    pthread_mutex_destroy(&rs.mu);
}

/* The defect: slow calls of another operation hold the connections. */
static void test_late_send_overruns_acs_window(void **state)
{
    (void)state;
    run_two_windows(10);
}

/* The control: the same two windows with free connections, ACS throttles nothing (this
 * passes, so the failure above comes from the late sends alone). */
static void test_control_free_connections(void **state)
{
    (void)state;
    run_two_windows(0);
}

/* ---- circuit breaker + budget: the probe's wait in the budget queue ----
 *
 * acs/breaker.h promises one probe while half-open. The probe is admitted by the breaker
 * before the budget gate (client.c call_start), and the breaker gives a probe up after
 * probe_timeout_ms (attempt_timeout_ms + 1000) counted from its admission: a probe that waits
 * longer than that for a budget slot is taken for lost, and the next call becomes a second
 * probe. Both keep breaker_probe = 1, which skips the breaker's admit on their next start, so
 * both reach the failing ACS, the second even after the first probe's failure has opened the
 * breaker again. Expected: 3 creates at ACS (2 failures that open it, 1 probe); seen: 4. */
static void test_two_probes_through_budget_queue(void **state)
{
    char dir[64], path[128], p[256], err[200];
    struct store *store = NULL;
    struct upstream_budget *budget = NULL;
    struct acs_client *acs = NULL;
    struct upstream_budget_opts bo = {.deadline_ms = 30000};
    struct acs_client_opts ao = {.connection_string = g_emu.connstr,
                                 .deadline_ms = 30000,
                                 .attempt_timeout_ms = 1000,
                                 .max_retries = 0,
                                 .breaker_threshold = 2,
                                 .breaker_open_ms = 3000};
    struct results rs = {.n = 0};
    struct slot slots[4];
    struct acs_breaker_stats bs;
    long at_acs;

    (void)state;
    pthread_mutex_init(&rs.mu, NULL);
    pthread_cond_init(&rs.cv, NULL);
    snprintf(dir, sizeof dir, "/tmp/tv-r10a-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/tv.db", dir);
    assert_int_equal(store_open(path, STORE_MIGRATE_YES, &store), 0);
    assert_int_equal(budget_parse("create=2/6s", &bo.cfg, err, sizeof err), 0);
    bo.store = store;
    assert_int_equal(upstream_budget_new(&bo, &budget), 0);
    ao.gate = upstream_budget_gate(budget);
    assert_int_equal(acs_client_new(&ao, &acs), 0);
    assert_int_equal(temu_stats_reset(&g_emu), 0);
    assert_int_equal(temu_faults_set(&g_emu, "{\"error_rate\":1,\"error_status\":503}"), 0);
    for (int i = 0; i < 4; i++)
        slots[i] = (struct slot){.rs = &rs, .is_create = 1};
    /* Two failures use both slots (free again ~6.5 s later) and open the breaker for 3 s. */
    for (int i = 0; i < 2; i++) {
        struct acs_request rq = {.op = ACS_OP_CREATE, .caller = "user:a"};
        assert_int_equal(acs_client_submit(acs, &rq, on_done, &slots[i]), 0);
    }
    wait_all(&rs, 2);
    assert_int_equal(acs_client_breaker_get(acs, &bs), 1);
    assert_int_equal(bs.state, ACS_BREAKER_OPEN);
    usleep(3300 * 1000); /* the open period ends: the next call is the probe */
    {
        struct acs_request rq = {.op = ACS_OP_CREATE, .caller = "user:b"};
        assert_int_equal(acs_client_submit(acs, &rq, on_done, &slots[2]), 0);
    }
    usleep(2300 * 1000); /* the probe still waits for a slot, past probe_timeout_ms (2 s) */
    {
        struct acs_request rq = {.op = ACS_OP_CREATE, .caller = "user:c"};
        assert_int_equal(acs_client_submit(acs, &rq, on_done, &slots[3]), 0);
    }
    wait_all(&rs, 4);
    at_acs = temu_stats_get(&g_emu, "requests", "create");
    fprintf(stderr, "creates at ACS: %ld (2 that opened the breaker + probes)\n", at_acs);
    assert_int_equal(temu_faults_clear(&g_emu), 0);
    acs_client_free(acs);
    upstream_budget_free(budget);
    store_close(store);
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
    rmdir(dir);
    assert_int_equal(at_acs, 3);
    pthread_cond_destroy(&rs.cv);
    pthread_mutex_destroy(&rs.mu);
}

/* ---- circuit breaker + budget: a call's own deadline counted as an ACS failure ----
 *
 * The budget grants a waiting call up to DEADLINE_MARGIN_MS (100 ms) before its deadline, and
 * the attempt's timeout is min(attempt_timeout_ms, time left) (client_http.c
 * call_prepare_attempt). When ACS's normal latency is longer than the time left, the attempt
 * times out; call_breaker_note counts every CURLcode other than OK as an ACS failure, so the
 * tail of a storm opens the breaker although ACS answered every request it got in time and
 * never failed: every caller then gets 503 for the breaker's whole open period.
 *
 * Here: ACS answers every create correctly in 600 ms; budget create=4/2s, deadline 3 s,
 * breaker 3 failures. Eight creates at once: four go at once and succeed; four wait for the
 * slots that free at 2.5 s, go with 0.5 s left, time out, and open the breaker. */
static void test_deadline_timeouts_open_breaker(void **state)
{
    char dir[64], path[128], p[256], err[200], callers[8][32];
    struct store *store = NULL;
    struct upstream_budget *budget = NULL;
    struct acs_client *acs = NULL;
    struct upstream_budget_opts bo = {.deadline_ms = 3000};
    struct acs_client_opts ao = {.connection_string = g_emu.connstr,
                                 .deadline_ms = 3000,
                                 .max_retries = 0,
                                 .breaker_threshold = 3,
                                 .breaker_open_ms = 30000};
    struct results rs = {.n = 0};
    struct slot slots[8];
    struct acs_breaker_stats bs;
    long at_acs, delivered;

    (void)state;
    pthread_mutex_init(&rs.mu, NULL);
    pthread_cond_init(&rs.cv, NULL);
    snprintf(dir, sizeof dir, "/tmp/tv-r10a-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/tv.db", dir);
    assert_int_equal(store_open(path, STORE_MIGRATE_YES, &store), 0);
    assert_int_equal(budget_parse("create=4/2s", &bo.cfg, err, sizeof err), 0);
    bo.store = store;
    assert_int_equal(upstream_budget_new(&bo, &budget), 0);
    ao.gate = upstream_budget_gate(budget);
    assert_int_equal(acs_client_new(&ao, &acs), 0);
    assert_int_equal(temu_stats_reset(&g_emu), 0);
    assert_int_equal(temu_faults_set(&g_emu, "{\"latency_ms\":600,\"ops\":[\"create\"]}"), 0);
    for (int i = 0; i < 8; i++) {
        struct acs_request rq = {.op = ACS_OP_CREATE, .caller = callers[i]};
        snprintf(callers[i], sizeof callers[i], "user:s%d", i);
        slots[i] = (struct slot){.rs = &rs, .is_create = 1};
        assert_int_equal(acs_client_submit(acs, &rq, on_done, &slots[i]), 0);
    }
    wait_all(&rs, 8);
    assert_int_equal(acs_client_breaker_get(acs, &bs), 1);
    /* ACS failed nothing: its only fault is 600 ms of latency (the emulator counts as
     * succeeded only the answers it could still deliver). */
    at_acs = temu_stats_get(&g_emu, "requests", "create");
    delivered = temu_stats_get(&g_emu, "succeeded", "create");
    fprintf(stderr,
            "ACS creates %ld, delivered 2xx %ld, refused by the budget %d; breaker %s after %llu "
            "opens\n",
            at_acs, delivered, rs.refused, acs_breaker_state_name(bs.state),
            (unsigned long long)bs.opens);
    assert_int_equal(temu_faults_clear(&g_emu), 0);
    acs_client_free(acs);
    upstream_budget_free(budget);
    store_close(store);
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
    rmdir(dir);
    /* fix10-budget: the budget no longer grants a slot that leaves less than a useful
     * attempt's time (min_attempt_ms, 1 s by default): the four calls whose turn comes 0.5 s
     * before their deadline are refused at once with 503 + Retry-After, and never reach ACS.
     * So not all 8 reach ACS (the reviewer's at_acs == 8); every call either reached ACS and
     * got its answer in time, or was refused by the budget without spending a slot. */
    assert_int_equal(at_acs + rs.refused, 8);
    assert_int_equal(delivered, at_acs);
    assert_int_equal(bs.opens, 0);
    assert_int_equal(bs.state, ACS_BREAKER_CLOSED);
    pthread_cond_destroy(&rs.cv);
    pthread_mutex_destroy(&rs.mu);
}

/* ---- the budget's slots are made once per process ----
 *
 * upstream_budget.c take_for passes .ensure = !o->ensured: the N rows of an operation are
 * inserted by the first take of the process only. Should the rows go (the table emptied by an
 * operator, a restore of a copy: `store copy` leaves acs_budget out), every later take finds
 * no slot, SQL_OLDEST reads 0, next_free is in the distant past, and the thread retries every
 * MIN_RETRY_MS (5 ms) for ever while every ACS call ends 503 at its deadline, until restart. */
static void test_lost_slots_never_remade(void **state)
{
    char dir[64], path[128], p[256], err[200];
    struct store *store = NULL;
    struct upstream_budget *budget = NULL;
    struct acs_client *acs = NULL;
    struct upstream_budget_opts bo = {.deadline_ms = 2000};
    struct acs_client_opts ao = {
        .connection_string = g_emu.connstr, .deadline_ms = 2000, .max_retries = 0};
    struct acs_request rq = {.op = ACS_OP_CREATE, .caller = "user:z"};
    struct acs_result res;
    sqlite3 *db = NULL;
    int rc;

    (void)state;
    snprintf(dir, sizeof dir, "/tmp/tv-r10a-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/tv.db", dir);
    assert_int_equal(store_open(path, STORE_MIGRATE_YES, &store), 0);
    assert_int_equal(budget_parse("create=5/10s", &bo.cfg, err, sizeof err), 0);
    bo.store = store;
    assert_int_equal(upstream_budget_new(&bo, &budget), 0);
    ao.gate = upstream_budget_gate(budget);
    assert_int_equal(acs_client_new(&ao, &acs), 0);
    assert_int_equal(acs_client_call_sync(acs, &rq, &res), 0);
    acs_result_release(&res);
    /* The slots' rows go (a transient table: an operator may empty it). */
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    assert_int_equal(sqlite3_exec(db, "DELETE FROM acs_budget", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    rc = acs_client_call_sync(acs, &rq, &res);
    fprintf(stderr, "after the rows went: rc %d budget_refused %d (%s)\n", rc, res.budget_refused,
            res.message);
    acs_result_release(&res);
    acs_client_free(acs);
    upstream_budget_free(budget);
    store_close(store);
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
    rmdir(dir);
    /* 4 of the 5 slots were never used: the call should go. */
    assert_int_equal(rc, 0);
}

/* ---- queued calls spend slots the breaker then refuses ----
 *
 * "An open breaker spends no budget" (client.c call_start: the breaker's gate first) holds for
 * new calls only: a call already queued in the budget when the breaker opens takes a slot of
 * the shared budget when its turn comes, and only then is refused by the breaker. Here 6
 * creates at once against create=2/3s with ACS failing: 2 reach ACS and open the breaker, the
 * 4 queued take the next two windows' 4 slots (2 per window) and are refused without reaching
 * ACS. Expected: slots granted == calls that reached ACS. */
static void test_queued_calls_spend_slots_breaker_refuses(void **state)
{
    char dir[64], path[128], p[256], err[200], callers[6][32];
    struct store *store = NULL;
    struct upstream_budget *budget = NULL;
    struct acs_client *acs = NULL;
    struct upstream_budget_opts bo = {.deadline_ms = 10000};
    struct acs_client_opts ao = {.connection_string = g_emu.connstr,
                                 .deadline_ms = 10000,
                                 .max_retries = 0,
                                 .breaker_threshold = 2,
                                 .breaker_open_ms = 30000};
    struct results rs = {.n = 0};
    struct slot slots[6];
    struct upstream_budget_stats st;
    long at_acs;

    (void)state;
    pthread_mutex_init(&rs.mu, NULL);
    pthread_cond_init(&rs.cv, NULL);
    snprintf(dir, sizeof dir, "/tmp/tv-r10a-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/tv.db", dir);
    assert_int_equal(store_open(path, STORE_MIGRATE_YES, &store), 0);
    assert_int_equal(budget_parse("create=2/3s", &bo.cfg, err, sizeof err), 0);
    bo.store = store;
    assert_int_equal(upstream_budget_new(&bo, &budget), 0);
    ao.gate = upstream_budget_gate(budget);
    assert_int_equal(acs_client_new(&ao, &acs), 0);
    assert_int_equal(temu_stats_reset(&g_emu), 0);
    assert_int_equal(temu_faults_set(&g_emu, "{\"error_rate\":1,\"error_status\":503}"), 0);
    for (int i = 0; i < 6; i++) {
        struct acs_request rq = {.op = ACS_OP_CREATE, .caller = callers[i]};
        snprintf(callers[i], sizeof callers[i], "user:q%d", i);
        slots[i] = (struct slot){.rs = &rs, .is_create = 1};
        assert_int_equal(acs_client_submit(acs, &rq, on_done, &slots[i]), 0);
    }
    wait_all(&rs, 6);
    at_acs = temu_stats_get(&g_emu, "requests", "create");
    upstream_budget_stats_get(budget, ACS_OP_CREATE, &st);
    fprintf(stderr, "creates at ACS %ld, budget slots granted %llu\n", at_acs,
            (unsigned long long)st.granted);
    assert_int_equal(temu_faults_clear(&g_emu), 0);
    acs_client_free(acs);
    upstream_budget_free(budget);
    store_close(store);
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
    rmdir(dir);
    assert_int_equal(at_acs, 2);
    assert_int_equal((long)st.granted, at_acs);
    pthread_cond_destroy(&rs.cv);
    pthread_mutex_destroy(&rs.mu);
}

/* ---- a call waits past its deadline while the budget thread is in the store ----
 *
 * Only the budget thread expires queued calls (budget_main: expire_all between takes), and it
 * drops its lock but not its work while a take runs: a take that waits for the store (SQLite's
 * busy timeout, 5 s; PostgreSQL's statement and connect timeouts) keeps every queued call of
 * every operation waiting past its deadline until the take returns. The engine does not time
 * out a call the gate keeps. Here the store's write lock is held for up to 4 s; a create with a
 * 1 s deadline should end (503) while the lock is still held, but ends only after it goes.
 * Ordering only: the holder waits (at most 4 s) for the call to end before it lets go. */
struct holder2 {
    const char *path;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int ready, call_done, saw_done;
};

static void *hold_lock(void *arg)
{
    struct holder2 *h = arg;
    sqlite3 *db = NULL;
    struct timespec ts;
    int ok = sqlite3_open(h->path, &db) == SQLITE_OK &&
             sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 4;
    pthread_mutex_lock(&h->mu);
    h->ready = ok ? 1 : -1;
    pthread_cond_broadcast(&h->cv);
    while (ok && !h->call_done)
        if (pthread_cond_timedwait(&h->cv, &h->mu, &ts) != 0)
            break;
    h->saw_done = h->call_done;
    pthread_mutex_unlock(&h->mu);
    if (ok)
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(db);
    return NULL;
}

static void test_deadline_passes_while_store_slow(void **state)
{
    char dir[64], path[128], p[256], err[200];
    struct store *store = NULL;
    struct upstream_budget *budget = NULL;
    struct acs_client *acs = NULL;
    struct upstream_budget_opts bo = {.deadline_ms = 1000};
    struct acs_client_opts ao = {
        .connection_string = g_emu.connstr, .deadline_ms = 1000, .max_retries = 0};
    struct acs_request rq = {.op = ACS_OP_CREATE, .caller = "user:slow"};
    struct acs_result res;
    struct holder2 h = {.ready = 0};
    pthread_t th;
    int rc;

    (void)state;
    snprintf(dir, sizeof dir, "/tmp/tv-r10a-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/tv.db", dir);
    assert_int_equal(store_open(path, STORE_MIGRATE_YES, &store), 0);
    assert_int_equal(budget_parse("create=5/1s", &bo.cfg, err, sizeof err), 0);
    bo.store = store;
    assert_int_equal(upstream_budget_new(&bo, &budget), 0);
    ao.gate = upstream_budget_gate(budget);
    assert_int_equal(acs_client_new(&ao, &acs), 0);
    h.path = path;
    pthread_mutex_init(&h.mu, NULL);
    pthread_cond_init(&h.cv, NULL);
    assert_int_equal(pthread_create(&th, NULL, hold_lock, &h), 0);
    pthread_mutex_lock(&h.mu);
    while (h.ready == 0)
        pthread_cond_wait(&h.cv, &h.mu);
    pthread_mutex_unlock(&h.mu);
    assert_int_equal(h.ready, 1);
    rc = acs_client_call_sync(acs, &rq, &res);
    acs_result_release(&res);
    pthread_mutex_lock(&h.mu);
    h.call_done = 1;
    pthread_cond_broadcast(&h.cv);
    pthread_mutex_unlock(&h.mu);
    pthread_join(th, NULL);
    fprintf(stderr, "call rc %d; ended while the store was still locked: %s\n", rc,
            h.saw_done ? "yes" : "no (it waited for the store, past its 1 s deadline)");
    acs_client_free(acs);
    upstream_budget_free(budget);
    store_close(store);
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
    rmdir(dir);
    assert_int_equal(rc, TV_ERR_UNAVAILABLE);
    assert_int_equal(h.saw_done, 1);
    pthread_cond_destroy(&h.cv);
    pthread_mutex_destroy(&h.mu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_control_free_connections),
        cmocka_unit_test(test_late_send_overruns_acs_window),
        cmocka_unit_test(test_two_probes_through_budget_queue),
        cmocka_unit_test(test_deadline_timeouts_open_breaker),
        cmocka_unit_test(test_lost_slots_never_remade),
        cmocka_unit_test(test_queued_calls_spend_slots_breaker_refuses),
        cmocka_unit_test(test_deadline_passes_while_store_slow),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
