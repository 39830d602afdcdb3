/* Several processes on one store, each with its own service and ACS client, against
 * acs-emulator: the create claim makes the first requests for one new user, spread over all of
 * them, cost exactly one ACS create (issue 9: one per process before). Each "process" is a
 * store handle of its own (its own store_instance) in this test binary; the store is a SQLite
 * file or, with TV_TEST_STORE=pg, a database of a throw-away PostgreSQL cluster. Creates are
 * slowed down at the emulator so that every process sees the user without a mapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acs/client.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "emu.h"
#include "service/service.h"
#include "store/claims.h"
#include "store/outbox.h"
#include "store/store.h"
#include "store/users.h"
#include "store_fx.h"

#define PROCS 3
#define REQS 99
#define CREATE_LATENCY "{\"latency_ms\":400,\"ops\":[\"create\"]}"

static struct temu g_emu;

static int group_setup(void **state)
{
    const char *args[] = {"--no-rate-limits", NULL};

    log_setup(getenv("TV_LOG_DEBUG") != NULL ? LOGL_DEBUG : LOGL_OFF, 2);
    if (!temu_available()) {
        fprintf(stderr, "acs-emulator not built at %s\n", temu_binary());
        return -1;
    }
    if (store_fx_group_setup(state) != 0)
        return -1;
    return temu_start(&g_emu, args);
}

static int group_teardown(void **state)
{
    int rc = temu_stop(&g_emu) == 0 ? 0 : -1;

    return store_fx_group_teardown(state) == 0 ? rc : -1;
}

/* ---- results ---- */

/* Set while this thread is inside a service call: an answer given before the call returned, on
 * the caller's own thread, sees it set. */
static _Thread_local int tl_in_call;

struct results {
    pthread_mutex_t mu;
    int n;
    int rc[REQS], created[REQS], inline_answer[REQS];
    long retry[REQS];
    int64_t at_ms[REQS]; /* wall clock when the answer came */
    char acs[REQS][128];
};

static void on_done(void *arg, const struct service_result *r)
{
    struct results *rs = arg;

    pthread_mutex_lock(&rs->mu);
    if (rs->n < REQS) {
        int i = rs->n;
        rs->rc[i] = r->rc;
        rs->created[i] = r->created;
        rs->inline_answer[i] = tl_in_call;
        rs->retry[i] = r->retry_after_s;
        rs->at_ms[i] = clock_wall_ms();
        snprintf(rs->acs[i], sizeof rs->acs[i], "%s", r->acs_id != NULL ? r->acs_id : "");
    }
    rs->n++;
    pthread_mutex_unlock(&rs->mu);
}

/* Waits (generous bound: only stops a hung run) until n answers came. */
static int results_wait(struct results *rs, int n)
{
    int64_t end = clock_mono_ms() + 60000;
    int got;

    for (;;) {
        pthread_mutex_lock(&rs->mu);
        got = rs->n;
        pthread_mutex_unlock(&rs->mu);
        if (got >= n || clock_mono_ms() > end)
            return got;
        clock_sleep_ms(5);
    }
}

/* ---- fixture: PROCS processes on one store ---- */

struct proc {
    struct store *st;
    struct acs_client *acs;
    struct service *svc;
};

struct fx {
    char dir[64];
    char path[128];
    struct store_fx sx;
    struct proc p[PROCS];
    struct store *dead; /* a process that takes a claim and dies (never finishes it) */
    struct results rs;
};

static int submit_acs(void *ctx, const struct acs_request *req, acs_done_fn done, void *arg)
{
    return acs_client_submit(ctx, req, done, arg);
}

static void proc_start(struct fx *x, struct proc *p, int migrate, long deadline_ms)
{
    struct acs_client_opts ao = {
        .connection_string = g_emu.connstr,
        .deadline_ms = deadline_ms,
        .backoff_base_ms = 20,
    };
    struct service_opts o;
    char err[128];

    assert_int_equal(store_fx_open(&x->sx, migrate, &p->st), 0);
    assert_int_equal(acs_client_new(&ao, &p->acs), 0);
    memset(&o, 0, sizeof o);
    o.store = p->st;
    o.submit = submit_acs;
    o.submit_ctx = p->acs;
    o.resource = acs_client_resource(p->acs);
    o.outbox_interval_ms = -1; /* no outbox thread: a queued orphan delete stays visible */
    o.acs_deadline_ms = deadline_ms;
    assert_int_equal(config_scopes_parse("chat,voip", &o.policy.allowed, err, sizeof err), 0);
    o.policy.defaults = o.policy.allowed;
    o.policy.default_minutes = 1440;
    o.policy.min_minutes = 60;
    o.policy.max_minutes = 1440;
    o.policy.auto_create = 1;
    assert_int_equal(service_new(&o, &p->svc), 0);
    assert_int_equal(service_start(p->svc), 0);
}

static int setup_deadline(void **state, long deadline_ms)
{
    struct fx *x = calloc(1, sizeof *x);

    assert_non_null(x);
    snprintf(x->dir, sizeof x->dir, "/tmp/tv-claims-XXXXXX");
    assert_non_null(mkdtemp(x->dir));
    snprintf(x->path, sizeof x->path, "%s/tv.db", x->dir);
    assert_int_equal(store_fx_new(&x->sx, x->path), 0);
    for (int i = 0; i < PROCS; i++)
        proc_start(x, &x->p[i], i == 0 ? STORE_MIGRATE_YES : STORE_MIGRATE_NO, deadline_ms);
    assert_int_equal(store_fx_open(&x->sx, STORE_MIGRATE_NO, &x->dead), 0);
    pthread_mutex_init(&x->rs.mu, NULL);
    assert_int_equal(temu_faults_clear(&g_emu), 0);
    assert_int_equal(temu_stats_reset(&g_emu), 0);
    *state = x;
    return 0;
}

static int setup(void **state)
{
    return setup_deadline(state, 15000);
}

/* A short ACS deadline, for the request that gives up waiting. */
static int setup_short(void **state)
{
    return setup_deadline(state, 1500);
}

static int teardown(void **state)
{
    struct fx *x = *state;
    char cmd[200];

    for (int i = 0; i < PROCS; i++)
        service_stop(x->p[i].svc);
    for (int i = 0; i < PROCS; i++) {
        acs_client_free(x->p[i].acs);
        service_free(x->p[i].svc);
        store_close(x->p[i].st);
    }
    store_close(x->dead);
    store_fx_drop(&x->sx);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", x->dir);
    assert_int_equal(system(cmd), 0);
    pthread_mutex_destroy(&x->rs.mu);
    free(x);
    return 0;
}

/* ---- requests from several threads ---- */

struct sender {
    struct fx *x;
    pthread_barrier_t *start;
    int first; /* sends requests first, first + PROCS, ... */
    const char *user;
};

static void *send_requests(void *arg)
{
    struct sender *sd = arg;
    struct service_call c;

    pthread_barrier_wait(sd->start);
    for (int i = sd->first; i < REQS; i += PROCS) {
        struct proc *p = &sd->x->p[i % PROCS];
        service_call_init(&c, "req-claims", "user", sd->user);
        service_user_token(p->svc, &c, sd->user, NULL, 1, on_done, &sd->x->rs);
    }
    return NULL;
}

/* REQS token requests for one new user, spread over the processes from PROCS threads. */
static void send_spread(struct fx *x, const char *user)
{
    pthread_t th[PROCS];
    struct sender sd[PROCS];
    pthread_barrier_t start;

    pthread_barrier_init(&start, NULL, PROCS);
    for (int i = 0; i < PROCS; i++) {
        sd[i] = (struct sender){x, &start, i, user};
        assert_int_equal(pthread_create(&th[i], NULL, send_requests, &sd[i]), 0);
    }
    for (int i = 0; i < PROCS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    assert_int_equal(results_wait(&x->rs, REQS), REQS);
}

static int64_t outbox_rows(struct store *st)
{
    int64_t n = -1;

    assert_int_equal(store_outbox_count(st, &n), 0);
    return n;
}

/* ---- tests ---- */

/* Issue 9: three processes, 99 concurrent first requests for one user -> one identity in every
 * answer, in the store, and exactly one ACS create (no orphan queued for deletion). */
static void test_one_create_across_processes(void **state)
{
    struct fx *x = *state;
    struct store_user u;
    struct store_claim cl;
    int created = 0;

    assert_int_equal(temu_faults_set(&g_emu, CREATE_LATENCY), 0);
    send_spread(x, "shared-user");
    for (int i = 0; i < REQS; i++) {
        assert_int_equal(x->rs.rc[i], 0);
        assert_string_equal(x->rs.acs[i], x->rs.acs[0]);
        created += x->rs.created[i];
    }
    assert_int_equal(created, 1);
    assert_int_equal(temu_stats_get(&g_emu, "requests", "create"), 1);
    assert_int_equal(temu_stats_get(&g_emu, "identities_created", NULL), 1);
    for (int i = 0; i < PROCS; i++) {
        assert_int_equal(store_user_get(x->p[i].st, "shared-user", &u), 0);
        assert_string_equal(u.acs_id, x->rs.acs[0]);
    }
    assert_int_equal(outbox_rows(x->p[0].st), 0);
    /* The claim went with the mapping: anyone takes it at once. */
    assert_int_equal(
        store_claim_take(x->dead, "shared-user", clock_wall_ms(), clock_wall_ms() + 1000, &cl), 0);
    assert_int_equal(cl.won, 1);
}

/* A process that died holding the claim (row inserted, no mapping, never released) delays the
 * user's first request until the claim expires, not longer than the claim says; then one
 * process takes it over and makes the one identity. */
static void test_dead_holder_until_expiry(void **state)
{
    struct fx *x = *state;
    struct store_claim cl;
    struct service_call c;
    int64_t expiry;

    assert_int_equal(
        store_claim_take(x->dead, "orphaned-claim", clock_wall_ms(), clock_wall_ms() + 1500, &cl),
        0);
    assert_int_equal(cl.won, 1);
    expiry = cl.expires_ms;
    for (int i = 0; i < PROCS; i++) {
        service_call_init(&c, "req-dead", "user", "orphaned-claim");
        service_user_token(x->p[i].svc, &c, "orphaned-claim", NULL, 1, on_done, &x->rs);
    }
    assert_int_equal(results_wait(&x->rs, PROCS), PROCS);
    for (int i = 0; i < PROCS; i++) {
        assert_int_equal(x->rs.rc[i], 0);
        assert_string_equal(x->rs.acs[i], x->rs.acs[0]);
        /* Nobody created before the dead holder's claim ran out. */
        assert_true(x->rs.at_ms[i] >= expiry);
    }
    assert_int_equal(temu_stats_get(&g_emu, "requests", "create"), 1);
    assert_int_equal(outbox_rows(x->p[0].st), 0);
}

/* A claim that outlives the caller's ACS deadline: the request gives up with 503 unavailable
 * and a retry hint, asks ACS for nothing and leaves the claim to its holder. */
static void test_wait_bounded_by_deadline(void **state)
{
    struct fx *x = *state;
    struct store_claim cl;
    struct service_call c;

    assert_int_equal(
        store_claim_take(x->dead, "held-long", clock_wall_ms(), clock_wall_ms() + 600000, &cl), 0);
    service_call_init(&c, "req-held", "user", "held-long");
    service_user_ensure(x->p[1].svc, &c, "held-long", on_done, &x->rs);
    assert_int_equal(results_wait(&x->rs, 1), 1);
    assert_int_equal(x->rs.rc[0], TV_ERR_UNAVAILABLE);
    assert_true(x->rs.retry[0] >= 1);
    assert_int_equal(temu_stats_get(&g_emu, "requests", "create"), 0);
    assert_int_equal(
        store_claim_take(x->p[2].st, "held-long", clock_wall_ms(), clock_wall_ms() + 1000, &cl), 0);
    assert_int_equal(cl.won, 0);
}

/* A create that fails at ACS gives its claim up at once: the next process does not wait for
 * the expiry. */
static void test_failed_create_releases_claim(void **state)
{
    struct fx *x = *state;
    struct store_claim cl;
    struct service_call c;

    assert_int_equal(
        temu_faults_set(&g_emu, "{\"error_rate\":1,\"error_status\":500,\"ops\":[\"create\"]}"), 0);
    service_call_init(&c, "req-fail", "user", "unlucky");
    service_user_ensure(x->p[0].svc, &c, "unlucky", on_done, &x->rs);
    assert_int_equal(results_wait(&x->rs, 1), 1);
    assert_int_not_equal(x->rs.rc[0], 0);
    assert_int_equal(
        store_claim_take(x->dead, "unlucky", clock_wall_ms(), clock_wall_ms() + 1000, &cl), 0);
    assert_int_equal(cl.won, 1);
}

/* With a database server behind the store, a request's lookup never runs on the caller's
 * (HTTP) thread: the answer comes from a worker even when no ACS call is needed. A local
 * SQLite file keeps the inline path. */
static void test_lookup_off_caller_thread(void **state)
{
    struct fx *x = *state;
    struct service_call c;

    service_call_init(&c, "req-lookup", "user", "nobody");
    tl_in_call = 1;
    service_user_revoke(x->p[0].svc, &c, "nobody", on_done, &x->rs);
    tl_in_call = 0;
    assert_int_equal(results_wait(&x->rs, 1), 1);
    assert_int_equal(x->rs.rc[0], TV_ERR_NOT_FOUND);
    assert_int_equal(x->rs.inline_answer[0], store_is_pg(x->p[0].st) ? 0 : 1);
}

/* Shutting down ends a request waiting for another process's create at once (shutting_down),
 * not at its deadline. */
static void test_stop_ends_waiting(void **state)
{
    struct fx *x = *state;
    struct store_claim cl;
    struct service_call c;

    assert_int_equal(
        store_claim_take(x->dead, "never-done", clock_wall_ms(), clock_wall_ms() + 600000, &cl), 0);
    service_call_init(&c, "req-stop", "user", "never-done");
    service_user_ensure(x->p[0].svc, &c, "never-done", on_done, &x->rs);
    service_stop(x->p[0].svc);
    assert_int_equal(results_wait(&x->rs, 1), 1);
    assert_int_equal(x->rs.rc[0], TV_ERR_SHUTDOWN);
    assert_int_equal(temu_stats_get(&g_emu, "requests", "create"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_create_across_processes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_holder_until_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_bounded_by_deadline, setup_short, teardown),
        cmocka_unit_test_setup_teardown(test_failed_create_releases_claim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lookup_off_caller_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_ends_waiting, setup, teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
