/* Two services (two replicas) on one PostgreSQL database, each with its own store handle, token
 * cache on, one fake ACS between them: a revoke or a delete through A is honoured by B, whose
 * caches held the user's token and mapping, within the bound the issue sets (1 s); a hit on B
 * makes no database round trip; while B's watch is not current its caches are bypassed.
 * Always runs on PostgreSQL (TV_TEST_STORE is set here). */
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

#include "acs/client.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "service/service.h"
#include "service/service_int.h"
#include "store/pg_pool.h"
#include "store/store.h"
#include "store/store_int.h"
#include "store/watch.h"
#include "store_fx.h"

#define RESOURCE "fake.example:443"
#define MAXQ 256
#define HONOURED_MS 1000 /* the issue's bound for a revoke or delete to reach every replica */
#define WAIT_MS 20000    /* generous: only stops a hung run */

/* ---- a fake ACS completing calls on its own thread, as the real client does ---- */

struct fcall {
    enum acs_op op;
    char identity_id[ACS_ID_MAX];
    size_t nscopes;
    acs_done_fn done;
    void *arg;
};

struct fake {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct fcall q[MAXQ];
    size_t nq;
    int counts[8];
    unsigned seq, tokseq;
    int stop;
    pthread_t th;
};

static int fake_submit(void *ctx, const struct acs_request *req, acs_done_fn done, void *arg)
{
    struct fake *f = ctx;
    struct fcall *c;

    pthread_mutex_lock(&f->mu);
    if (f->nq == MAXQ) {
        pthread_mutex_unlock(&f->mu);
        return TV_ERR_UNAVAILABLE;
    }
    c = &f->q[f->nq++];
    memset(c, 0, sizeof *c);
    c->op = req->op;
    if (req->identity_id != NULL)
        snprintf(c->identity_id, sizeof c->identity_id, "%s", req->identity_id);
    c->nscopes = req->nscopes;
    c->done = done;
    c->arg = arg;
    f->counts[req->op]++;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static void fake_complete(struct fake *f, struct fcall *c)
{
    struct acs_result r;

    memset(&r, 0, sizeof r);
    r.op = c->op;
    r.http_status = 200;
    pthread_mutex_lock(&f->mu);
    if (c->op == ACS_OP_CREATE)
        snprintf(r.identity_id, sizeof r.identity_id, "8:acs:fake_%u", ++f->seq);
    else
        snprintf(r.identity_id, sizeof r.identity_id, "%s", c->identity_id);
    if (c->op == ACS_OP_ISSUE || (c->op == ACS_OP_CREATE && c->nscopes > 0)) {
        char tok[48];
        snprintf(tok, sizeof tok, "fake.token.%u", ++f->tokseq);
        r.token = strdup(tok);
        r.expires_on_ms = clock_wall_ms() + 3600000;
        snprintf(r.expires_on, sizeof r.expires_on, "2030-01-01T00:00:00.000Z");
    }
    pthread_mutex_unlock(&f->mu);
    c->done(c->arg, &r);
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;

    pthread_mutex_lock(&f->mu);
    for (;;) {
        if (f->nq > 0) {
            struct fcall c = f->q[0];
            memmove(&f->q[0], &f->q[1], (f->nq - 1) * sizeof c);
            f->nq--;
            pthread_mutex_unlock(&f->mu);
            fake_complete(f, &c);
            pthread_mutex_lock(&f->mu);
            continue;
        }
        if (f->stop)
            break;
        pthread_cond_wait(&f->cv, &f->mu);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

static int fake_count(struct fake *f, enum acs_op op)
{
    int n;

    pthread_mutex_lock(&f->mu);
    n = f->counts[op];
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* ---- one request at a time, waited for ---- */

struct result {
    pthread_mutex_t mu;
    int done, rc;
    char acs[ACS_ID_MAX];
    char tok[48];
};

static void on_done(void *arg, const struct service_result *r)
{
    struct result *res = arg;

    pthread_mutex_lock(&res->mu);
    res->rc = r->rc;
    snprintf(res->acs, sizeof res->acs, "%s", r->acs_id != NULL ? r->acs_id : "");
    snprintf(res->tok, sizeof res->tok, "%s", r->token != NULL ? r->token : "");
    res->done = 1;
    pthread_mutex_unlock(&res->mu);
}

static void result_wait(struct result *res)
{
    int64_t end = clock_mono_ms() + WAIT_MS;
    int done = 0;

    while (!done && clock_mono_ms() < end) {
        pthread_mutex_lock(&res->mu);
        done = res->done;
        pthread_mutex_unlock(&res->mu);
        if (!done)
            clock_sleep_ms(2);
    }
    assert_true(done);
}

static struct policy_token_req treq_default(void)
{
    struct policy_token_req r;
    struct config_scopes cs;
    char err[128];

    memset(&r, 0, sizeof r);
    assert_int_equal(config_scopes_parse("chat,voip", &cs, err, sizeof err), 0);
    for (size_t i = 0; i < cs.n; i++)
        r.scopes[i] = cs.items[i];
    r.nscopes = cs.n;
    r.minutes = 1440;
    return r;
}

/* A token for user through s: its rc, identity and token into *out. */
static int token_on(struct service *s, const char *user, struct result *out)
{
    struct policy_token_req treq = treq_default();
    struct service_call c;

    memset(out, 0, sizeof *out);
    pthread_mutex_init(&out->mu, NULL);
    service_call_init(&c, "req-replicas", "user", user);
    service_user_token(s, &c, user, &treq, 1, on_done, out);
    result_wait(out);
    pthread_mutex_destroy(&out->mu);
    return out->rc;
}

typedef void (*user_op_fn)(struct service *s, const struct service_call *c, const char *user,
                           service_done_fn done, void *arg);

static int user_op_on(struct service *s, user_op_fn op, const char *user)
{
    struct service_call c;
    struct result r;

    memset(&r, 0, sizeof r);
    pthread_mutex_init(&r.mu, NULL);
    service_call_init(&c, "req-replicas", "user", user);
    op(s, &c, user, on_done, &r);
    result_wait(&r);
    pthread_mutex_destroy(&r.mu);
    return r.rc;
}

/* The service keeps its watch private; the test peeks (service_int.h). */
static int watch_current(struct service *s)
{
    return store_watch_current(s->watch);
}

static int wait_watch(struct service *s, int want)
{
    int64_t end = clock_mono_ms() + WAIT_MS;

    while (watch_current(s) != want && clock_mono_ms() < end)
        clock_sleep_ms(5);
    return watch_current(s) == want ? 0 : -1;
}

/* The value of metric name in s's /metrics text, or -1. */
static long long metric(struct service *s, const char *name)
{
    struct buf b;
    char pat[128];
    const char *at;
    long long v = -1;

    buf_init(&b, 1 << 20);
    assert_int_equal(service_metrics_write(s, &b), 0);
    snprintf(pat, sizeof pat, "\n%s ", name);
    at = strstr(buf_cstr(&b), pat);
    if (at != NULL)
        v = strtoll(at + strlen(pat), NULL, 10);
    buf_release(&b);
    return v;
}

/* ---- fixture: replicas A and B ---- */

struct fx {
    struct store_fx where, other; /* other: a database to run admin commands from */
    struct store *sa, *sb;
    struct service *a, *b;
    struct fake fake;
};

static struct service *replica(struct fx *x, struct store *st)
{
    struct service_opts o;
    struct service *s = NULL;
    char err[128];

    memset(&o, 0, sizeof o);
    o.store = st;
    o.submit = fake_submit;
    o.submit_ctx = &x->fake;
    o.resource = RESOURCE;
    /* No outbox thread: its polls would go through the pool and blur the count of the hit's
     * round trips (the deletes here finish at once; nothing is retried). */
    o.outbox_interval_ms = -1;
    assert_int_equal(config_scopes_parse("chat,voip", &o.policy.allowed, err, sizeof err), 0);
    o.policy.defaults = o.policy.allowed;
    o.policy.default_minutes = 1440;
    o.policy.min_minutes = 60;
    o.policy.max_minutes = 1440;
    o.policy.auto_create = 1;
    o.cache = 1;
    o.cache_min_remaining_minutes = 30;
    assert_int_equal(service_new(&o, &s), 0);
    assert_int_equal(service_start(s), 0);
    return s;
}

static int setup(void **state)
{
    struct fx *x = calloc(1, sizeof *x);

    if (x == NULL || store_fx_new(&x->where, "") != 0 || store_fx_new(&x->other, "") != 0 ||
        store_fx_open(&x->where, STORE_MIGRATE_YES, &x->sa) != 0 ||
        store_fx_open(&x->where, STORE_MIGRATE_NO, &x->sb) != 0)
        return -1;
    pthread_mutex_init(&x->fake.mu, NULL);
    pthread_cond_init(&x->fake.cv, NULL);
    if (pthread_create(&x->fake.th, NULL, fake_main, &x->fake) != 0)
        return -1;
    x->a = replica(x, x->sa);
    x->b = replica(x, x->sb);
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    struct fx *x = *state;

    service_stop(x->a);
    service_stop(x->b);
    pthread_mutex_lock(&x->fake.mu);
    x->fake.stop = 1;
    pthread_cond_broadcast(&x->fake.cv);
    pthread_mutex_unlock(&x->fake.mu);
    pthread_join(x->fake.th, NULL);
    service_free(x->a);
    service_free(x->b);
    store_close(x->sa);
    store_close(x->sb);
    store_fx_drop(&x->where);
    store_fx_drop(&x->other);
    pthread_mutex_destroy(&x->fake.mu);
    pthread_cond_destroy(&x->fake.cv);
    free(x);
    return 0;
}

/* user's token cached on B: created through A, then asked of B twice (a miss, then a hit that
 * makes no database round trip). */
static void warm_b(struct fx *x, const char *user, struct result *first)
{
    struct result again;
    long trips = -1;

    assert_int_equal(wait_watch(x->a, 1), 0);
    assert_int_equal(wait_watch(x->b, 1), 0);
    assert_int_equal(token_on(x->a, user, first), 0);
    assert_int_equal(token_on(x->b, user, first), 0);
    /* Neither the mapping nor anything else is read from the database for a hit. A loaded
     * machine (sanitizers) may delay the watch's liveness answer past its bound, and a hit
     * asked meanwhile reads the store by design: a few tries, one must show none. */
    for (int i = 0; i < 5 && trips != 0; i++) {
        long before;
        assert_int_equal(wait_watch(x->b, 1), 0);
        before = pgpool_statements(x->sb->pg);
        assert_int_equal(token_on(x->b, user, &again), 0);
        trips = pgpool_statements(x->sb->pg) - before;
        assert_string_equal(again.tok, first->tok);
    }
    assert_int_equal(trips, 0);
    assert_true(metric(x->b, "tokenvend_mapping_cache_hits_total") >= 1);
    assert_int_equal(metric(x->b, "tokenvend_store_watch_current"), 1);
}

/* Asks B for user's token until it differs from old, for at most HONOURED_MS after the change
 * was acknowledged; fails the test otherwise. */
static void b_honours(struct fx *x, const char *user, const struct result *old, struct result *now)
{
    int64_t end = clock_mono_ms() + HONOURED_MS;

    for (;;) {
        assert_int_equal(token_on(x->b, user, now), 0);
        if (strcmp(now->tok, old->tok) != 0)
            return;
        if (clock_mono_ms() >= end)
            fail_msg("replica B still served the old token %d ms after the change on A",
                     HONOURED_MS);
        clock_sleep_ms(10);
    }
}

static void test_revoke_on_a_honoured_by_b(void **state)
{
    struct fx *x = *state;
    struct result old, now;
    int issues;

    warm_b(x, "alice", &old);
    issues = fake_count(&x->fake, ACS_OP_ISSUE);
    assert_int_equal(user_op_on(x->a, service_user_revoke, "alice"), 0);
    b_honours(x, "alice", &old, &now);
    assert_string_equal(now.acs, old.acs); /* same identity, a new token from ACS */
    assert_true(fake_count(&x->fake, ACS_OP_ISSUE) > issues);
}

static void test_delete_on_a_honoured_by_b(void **state)
{
    struct fx *x = *state;
    struct result old, now;

    warm_b(x, "bruno", &old);
    assert_int_equal(user_op_on(x->a, service_user_delete, "bruno"), 0);
    b_honours(x, "bruno", &old, &now);
    /* The mapping went with it: auto-create made a new identity. */
    assert_string_not_equal(now.acs, old.acs);
}

static void admin(struct fx *x, const char *sql)
{
    assert_int_equal(store_fx_admin_exec(&x->other, sql), 0);
}

static void test_watch_down_bypasses_caches(void **state)
{
    struct fx *x = *state;
    struct result old, now;
    char sql[256];
    int issues;

    warm_b(x, "chloe", &old);
    /* The LISTEN connections go and cannot come back; the pools' connections stay. */
    snprintf(sql, sizeof sql, "ALTER DATABASE %s ALLOW_CONNECTIONS false", x->where.db);
    admin(x, sql);
    snprintf(sql, sizeof sql,
             "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s'"
             " AND application_name = '" STORE_WATCH_APP_NAME "'",
             x->where.db);
    admin(x, sql);
    assert_int_equal(wait_watch(x->b, 0), 0);
    assert_int_equal(metric(x->b, "tokenvend_store_watch_current"), 0);
    /* Not current: no hit, whatever the cache holds; the request reads the store and asks ACS. */
    issues = fake_count(&x->fake, ACS_OP_ISSUE);
    assert_int_equal(token_on(x->b, "chloe", &now), 0);
    assert_string_not_equal(now.tok, old.tok);
    assert_string_equal(now.acs, old.acs);
    assert_int_equal(fake_count(&x->fake, ACS_OP_ISSUE), issues + 1);
    snprintf(sql, sizeof sql, "ALTER DATABASE %s ALLOW_CONNECTIONS true", x->where.db);
    admin(x, sql);
    assert_int_equal(wait_watch(x->b, 1), 0);
    /* Nothing was committed meanwhile: no reason to drop everything beyond the first sync. */
    assert_int_equal(metric(x->b, "tokenvend_store_watch_resets_total"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_revoke_on_a_honoured_by_b, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_on_a_honoured_by_b, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_down_bypasses_caches, setup, teardown),
    };

    setenv("TV_TEST_STORE", "pg", 1);
    return cmocka_run_group_tests(tests, store_fx_group_setup, store_fx_group_teardown);
}
