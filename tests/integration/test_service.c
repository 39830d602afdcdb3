/* The service layer against a real store (temp file) and a fake ACS: single-flight creates,
 * failure fan-out, delete through the outbox, resource binding, the Teams checks, and the token
 * cache (hits, single-flight issues, revoke fencing, cache off as before). The fake
 * completes calls on its own thread, as the real engine does, and can hold creates back so
 * that concurrent requests pile up behind one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acs/client.h"
#include "core/b64.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/buf.h"
#include "service/service.h"
#include "store/audit.h"
#include "store/outbox.h"
#include "store/store.h"
#include "store/users.h"

#define RESOURCE "fake.example:443"
#define MAXQ 1024

/* ---- fake ACS ---- */

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
    int hold_creates;   /* creates wait for fake_release */
    int hold_issues;    /* issues wait for fake_release */
    int hold_deletes;   /* deletes wait for fake_release */
    int64_t ttl_ms;     /* token lifetime; 0 = 60 minutes */
    int fail_rc[5];     /* per op: rc to complete with (0 = success) */
    int counts[5];      /* submissions per op */
    long retry_after_s; /* the hint a failure carries (keyless mode without a token) */
    int stop;
    unsigned seq, tokseq;
    pthread_t th;
};

static int fake_submit(void *ctx, const struct acs_request *req, acs_done_fn done, void *arg)
{
    struct fake *f = ctx;
    pthread_mutex_lock(&f->mu);
    if (f->nq == MAXQ) {
        pthread_mutex_unlock(&f->mu);
        return TV_ERR_UNAVAILABLE;
    }
    struct fcall *c = &f->q[f->nq++];
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
    pthread_mutex_lock(&f->mu);
    r.rc = f->fail_rc[c->op];
    r.retry_after_s = r.rc != 0 ? f->retry_after_s : 0;
    pthread_mutex_unlock(&f->mu);
    r.http_status = r.rc == 0 ? 200 : 503;
    if (r.rc == 0) {
        if (c->op == ACS_OP_CREATE)
            snprintf(r.identity_id, sizeof r.identity_id, "8:acs:fake_%u", ++f->seq);
        else
            snprintf(r.identity_id, sizeof r.identity_id, "%s", c->identity_id);
        if (c->op == ACS_OP_ISSUE || c->op == ACS_OP_TEAMS_EXCHANGE ||
            (c->op == ACS_OP_CREATE && c->nscopes > 0)) {
            char tok[48];
            pthread_mutex_lock(&f->mu);
            int64_t ttl = f->ttl_ms > 0 ? f->ttl_ms : 3600000;
            snprintf(tok, sizeof tok, "fake.token.%u", ++f->tokseq);
            pthread_mutex_unlock(&f->mu);
            r.token = strdup(tok);
            r.expires_on_ms = clock_wall_ms() + ttl;
            snprintf(r.expires_on, sizeof r.expires_on, "2030-01-01T00:00:00.000Z");
        }
    } else {
        snprintf(r.message, sizeof r.message, "fake failure");
    }
    c->done(c->arg, &r);
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    pthread_mutex_lock(&f->mu);
    for (;;) {
        size_t i;
        for (i = 0; i < f->nq; i++) {
            if (!(f->hold_creates && f->q[i].op == ACS_OP_CREATE) &&
                !(f->hold_issues && f->q[i].op == ACS_OP_ISSUE) &&
                !(f->hold_deletes && f->q[i].op == ACS_OP_DELETE))
                break;
        }
        if (i < f->nq) {
            struct fcall c = f->q[i];
            memmove(&f->q[i], &f->q[i + 1], (f->nq - i - 1) * sizeof c);
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

/* Settings change under the lock: the fake's thread reads them. */
static void fake_set(struct fake *f, int hold_creates, enum acs_op op, int rc)
{
    pthread_mutex_lock(&f->mu);
    f->hold_creates = hold_creates;
    f->fail_rc[op] = rc;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static void fake_release(struct fake *f)
{
    pthread_mutex_lock(&f->mu);
    f->hold_creates = 0;
    f->hold_issues = 0;
    f->hold_deletes = 0;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static int fake_count(struct fake *f, enum acs_op op);

/* Only the failure of one op changes; holds stay as they are. */
static void fake_fail(struct fake *f, enum acs_op op, int rc)
{
    pthread_mutex_lock(&f->mu);
    f->fail_rc[op] = rc;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static void fake_hold(struct fake *f, int creates, int issues, int deletes)
{
    pthread_mutex_lock(&f->mu);
    f->hold_creates = creates;
    f->hold_issues = issues;
    f->hold_deletes = deletes;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

/* Waits (generous deadline) until at least n calls of op were submitted. */
static int fake_wait_count(struct fake *f, enum acs_op op, int n)
{
    int64_t end = clock_mono_ms() + 20000;
    int got;
    while ((got = fake_count(f, op)) < n && clock_mono_ms() < end)
        clock_sleep_ms(5);
    return got;
}

static int fake_count(struct fake *f, enum acs_op op)
{
    pthread_mutex_lock(&f->mu);
    int n = f->counts[op];
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* ---- results ---- */

#define MAXR 256

struct results {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
    int rc[MAXR], created[MAXR], pending[MAXR], had_token[MAXR];
    long retry[MAXR];
    char acs[MAXR][64];
    char tok[MAXR][48];
};

static void on_done(void *arg, const struct service_result *r)
{
    struct results *rs = arg;
    pthread_mutex_lock(&rs->mu);
    int i = rs->n++;
    if (i < MAXR) {
        rs->rc[i] = r->rc;
        rs->created[i] = r->created;
        rs->pending[i] = r->pending;
        rs->had_token[i] = r->token != NULL;
        rs->retry[i] = r->retry_after_s;
        snprintf(rs->acs[i], sizeof rs->acs[i], "%s", r->acs_id ? r->acs_id : "");
        snprintf(rs->tok[i], sizeof rs->tok[i], "%s", r->token ? r->token : "");
    }
    pthread_cond_broadcast(&rs->cv);
    pthread_mutex_unlock(&rs->mu);
}

/* Generous deadline: only stops a hung run. */
static int results_wait(struct results *rs, int n)
{
    int64_t end = clock_mono_ms() + 20000;
    pthread_mutex_lock(&rs->mu);
    while (rs->n < n && clock_mono_ms() < end) {
        pthread_mutex_unlock(&rs->mu);
        clock_sleep_ms(5);
        pthread_mutex_lock(&rs->mu);
    }
    int got = rs->n;
    pthread_mutex_unlock(&rs->mu);
    return got;
}

/* ---- fixture ---- */

struct fx {
    char dir[64];
    char path[128];
    struct store *st;
    struct fake fake;
    struct service *svc;
    struct results rs;
};

/* The outbox period of the next fixture (test_outbox_idle_while_inflight wants a long one). */
static long outbox_interval_ms = 50;

/* The fixture's service options, on store st (a second replica gets its own handle). */
static void fixture_opts(struct fx *x, struct store *st, int cache, struct service_opts *out)
{
    struct service_opts o;
    char err[128];

    memset(&o, 0, sizeof o);
    o.store = st;
    o.submit = fake_submit;
    o.submit_ctx = &x->fake;
    o.resource = RESOURCE;
    o.outbox_interval_ms = outbox_interval_ms;
    o.outbox_backoff_base_ms = 20;
    o.outbox_backoff_max_ms = 50;
    assert_int_equal(config_scopes_parse("chat,voip", &o.policy.allowed, err, sizeof err), 0);
    o.policy.defaults = o.policy.allowed;
    o.policy.default_minutes = 1440;
    o.policy.min_minutes = 60;
    o.policy.max_minutes = 1440;
    o.policy.auto_create = 1;
    o.cache = cache;
    o.cache_min_remaining_minutes = 30;
    *out = o;
}

static int setup_with(void **state, int cache)
{
    struct fx *x = calloc(1, sizeof *x);
    struct service_opts o;

    snprintf(x->dir, sizeof x->dir, "/tmp/tv-svc-test-XXXXXX");
    assert_non_null(mkdtemp(x->dir));
    snprintf(x->path, sizeof x->path, "%s/tv.db", x->dir);
    assert_int_equal(store_open(x->path, STORE_MIGRATE_YES, &x->st), 0);
    pthread_mutex_init(&x->fake.mu, NULL);
    pthread_cond_init(&x->fake.cv, NULL);
    pthread_mutex_init(&x->rs.mu, NULL);
    pthread_cond_init(&x->rs.cv, NULL);
    assert_int_equal(pthread_create(&x->fake.th, NULL, fake_main, &x->fake), 0);
    fixture_opts(x, x->st, cache, &o);
    assert_int_equal(service_new(&o, &x->svc), 0);
    assert_int_equal(service_start(x->svc), 0);
    *state = x;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, 0);
}

static int setup_cache(void **state)
{
    return setup_with(state, 1);
}

static int setup_slow_outbox(void **state)
{
    outbox_interval_ms = 1000;
    int rc = setup_with(state, 0);
    outbox_interval_ms = 50;
    return rc;
}

static int teardown(void **state)
{
    struct fx *x = *state;
    char cmd[200];

    service_stop(x->svc);
    /* As the real client does on free: every queued call completes. */
    fake_release(&x->fake);
    pthread_mutex_lock(&x->fake.mu);
    x->fake.stop = 1;
    pthread_cond_broadcast(&x->fake.cv);
    pthread_mutex_unlock(&x->fake.mu);
    pthread_join(x->fake.th, NULL);
    service_free(x->svc);
    store_close(x->st);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", x->dir);
    assert_int_equal(system(cmd), 0);
    free(x);
    return 0;
}

static struct service_call call_for(const char *who)
{
    struct service_call c;
    service_call_init(&c, "req-test-1", "user", who);
    return c;
}

/* ---- tests ---- */

static void test_single_flight(void **state)
{
    struct fx *x = *state;
    struct service_call c = call_for("alice");
    struct store_user u;
    const int n = 100;

    fake_set(&x->fake, 1, ACS_OP_CREATE, 0);
    for (int i = 0; i < n; i++)
        service_user_token(x->svc, &c, "alice", NULL, 1, on_done, &x->rs);
    /* Everyone is waiting on the one create. */
    assert_int_equal(fake_count(&x->fake, ACS_OP_CREATE), 1);
    assert_int_equal(results_wait(&x->rs, 0), 0);
    fake_release(&x->fake);
    assert_int_equal(results_wait(&x->rs, n), n);
    for (int i = 0; i < n; i++) {
        assert_int_equal(x->rs.rc[i], 0);
        assert_true(x->rs.had_token[i]);
        assert_string_equal(x->rs.acs[i], x->rs.acs[0]);
    }
    int created = 0;
    for (int i = 0; i < n; i++)
        created += x->rs.created[i];
    assert_int_equal(created, 1);
    assert_int_equal(fake_count(&x->fake, ACS_OP_CREATE), 1);
    /* The leader's token came with the create; the 99 others were issued. */
    assert_int_equal(fake_count(&x->fake, ACS_OP_ISSUE), n - 1);
    assert_int_equal(store_user_get(x->st, "alice", &u), 0);
    assert_string_equal(u.acs_id, x->rs.acs[0]);
    assert_string_equal(u.resource, RESOURCE);

    struct store_audit rows[4];
    struct store_audit_filter flt = {.app_user_id = "alice", .action = "create"};
    int na = 0;
    assert_int_equal(store_audit_list(x->st, &flt, 4, rows, &na), 0);
    assert_int_equal(na, 1);
    assert_string_equal(rows[0].caller, "user:alice");
    assert_string_equal(rows[0].request_id, "req-test-1");
    assert_string_equal(rows[0].outcome, "ok");
}

static void test_create_failure_fans_out(void **state)
{
    struct fx *x = *state;
    struct service_call c = call_for("bob");

    fake_set(&x->fake, 1, ACS_OP_CREATE, TV_ERR_ACS_UNAVAILABLE);
    for (int i = 0; i < 10; i++)
        service_user_token(x->svc, &c, "bob", NULL, 1, on_done, &x->rs);
    fake_release(&x->fake);
    assert_int_equal(results_wait(&x->rs, 10), 10);
    for (int i = 0; i < 10; i++)
        assert_int_equal(x->rs.rc[i], TV_ERR_ACS_UNAVAILABLE);
    assert_int_equal(fake_count(&x->fake, ACS_OP_CREATE), 1);

    /* The failed create left nothing behind: the next request creates afresh. */
    fake_set(&x->fake, 0, ACS_OP_CREATE, 0);
    service_user_token(x->svc, &c, "bob", NULL, 1, on_done, &x->rs);
    assert_int_equal(results_wait(&x->rs, 11), 11);
    assert_int_equal(x->rs.rc[10], 0);
    assert_int_equal(x->rs.created[10], 1);
}

/* ACS out of reach with a retry hint (keyless mode without an Entra token): every request
 * that shared the failed call gets the hint, the single-flight's waiters as well as its leader,
 * for creates and (with the cache) issues; an error answered other than 503 carries none. */
static void test_retry_after_fans_out(void **state)
{
    struct fx *x = *state;
    struct service_call c = call_for("rita");

    pthread_mutex_lock(&x->fake.mu);
    x->fake.retry_after_s = 7;
    pthread_mutex_unlock(&x->fake.mu);
    fake_set(&x->fake, 1, ACS_OP_CREATE, TV_ERR_UNAVAILABLE);
    for (int i = 0; i < 10; i++)
        service_user_token(x->svc, &c, "rita", NULL, 1, on_done, &x->rs);
    fake_release(&x->fake);
    assert_int_equal(results_wait(&x->rs, 10), 10);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(x->rs.rc[i], TV_ERR_UNAVAILABLE);
        assert_int_equal(x->rs.retry[i], 7);
    }
    /* The identity exists; its issues fail the same way, shared by the cache's single-flight. */
    fake_set(&x->fake, 0, ACS_OP_CREATE, 0);
    service_user_ensure(x->svc, &c, "rita", on_done, &x->rs);
    assert_int_equal(results_wait(&x->rs, 11), 11);
    assert_int_equal(x->rs.rc[10], 0);
    assert_int_equal(x->rs.retry[10], 0);
    pthread_mutex_lock(&x->fake.mu);
    x->fake.hold_issues = 1;
    pthread_mutex_unlock(&x->fake.mu);
    fake_set(&x->fake, 0, ACS_OP_ISSUE, TV_ERR_UNAVAILABLE);
    for (int i = 0; i < 5; i++)
        service_user_token(x->svc, &c, "rita", NULL, 0, on_done, &x->rs);
    assert_int_equal(fake_wait_count(&x->fake, ACS_OP_ISSUE, 1), 1);
    /* All four others wait on the leader's issue before it is let go. */
    struct buf b;
    buf_init(&b, 1 << 20);
    for (int64_t end = clock_mono_ms() + 20000; clock_mono_ms() < end; clock_sleep_ms(5)) {
        buf_reset(&b);
        assert_int_equal(service_metrics_write(x->svc, &b), 0);
        if (strstr(buf_cstr(&b), "tokenvend_issue_singleflight_joined_total 4\n") != NULL)
            break;
    }
    assert_non_null(strstr(buf_cstr(&b), "tokenvend_issue_singleflight_joined_total 4\n"));
    buf_release(&b);
    assert_int_equal(fake_count(&x->fake, ACS_OP_ISSUE), 1);
    fake_release(&x->fake);
    assert_int_equal(results_wait(&x->rs, 16), 16);
    for (int i = 11; i < 16; i++) {
        assert_int_equal(x->rs.rc[i], TV_ERR_UNAVAILABLE);
        assert_int_equal(x->rs.retry[i], 7);
    }
    /* A 502-class failure carries no hint even when the outcome had one. */
    fake_set(&x->fake, 0, ACS_OP_ISSUE, TV_ERR_ACS_DENIED);
    service_user_token(x->svc, &c, "rita", NULL, 0, on_done, &x->rs);
    assert_int_equal(results_wait(&x->rs, 17), 17);
    assert_int_equal(x->rs.rc[16], TV_ERR_ACS_DENIED);
    assert_int_equal(x->rs.retry[16], 0);
}

static void test_no_auto_create(void **state)
{
    struct fx *x = *state;
    struct service_call c = call_for("carol");

    service_user_token(x->svc, &c, "carol", NULL, 0, on_done, &x->rs);
    assert_int_equal(results_wait(&x->rs, 1), 1);
    assert_int_equal(x->rs.rc[0], TV_ERR_NOT_FOUND);
    assert_int_equal(fake_count(&x->fake, ACS_OP_CREATE), 0);
}

static void test_delete_via_outbox(void **state)
{
    struct fx *x = *state;
    struct service_call c = call_for("dave");
    struct store_user u;
    int64_t pending = -1;

    service_user_ensure(x->svc, &c, "dave", on_done, &x->rs);
    assert_int_equal(results_wait(&x->rs, 1), 1);
    assert_int_equal(x->rs.created[0], 1);

    fake_set(&x->fake, 0, ACS_OP_DELETE, TV_ERR_ACS_UNAVAILABLE);
    service_user_delete(x->svc, &c, "dave", on_done, &x->rs);
    assert_int_equal(results_wait(&x->rs, 2), 2);
    assert_int_equal(x->rs.rc[1], 0);
    assert_int_equal(x->rs.pending[1], 1);
    /* The mapping is gone at once, the outbox holds the delete. */
    assert_int_equal(store_user_get(x->st, "dave", &u), TV_ERR_NOT_FOUND);
    assert_int_equal(store_outbox_count(x->st, &pending), 0);
    assert_int_equal(pending, 1);

    /* Idempotent while pending. */
    service_user_delete(x->svc, &c, "dave", on_done, &x->rs);
    assert_int_equal(results_wait(&x->rs, 3), 3);
    assert_int_equal(x->rs.rc[2], 0);

    /* ACS recovers: the outbox worker finishes (ACS 404 would count as done too). */
    fake_set(&x->fake, 0, ACS_OP_DELETE, TV_ERR_ACS_NOT_FOUND);
    int64_t end = clock_mono_ms() + 20000;
    do {
        service_outbox_kick(x->svc);
        clock_sleep_ms(20);
        assert_int_equal(store_outbox_count(x->st, &pending), 0);
    } while (pending != 0 && clock_mono_ms() < end);
    assert_int_equal(pending, 0);
}

static void test_delete_confirmed(void **state)
{
    struct fx *x = *state;
    struct service_call c = call_for("erin");
    int64_t pending = -1;

    service_user_ensure(x->svc, &c, "erin", on_done, &x->rs);
    assert_int_equal(results_wait(&x->rs, 1), 1);
    service_user_delete(x->svc, &c, "erin", on_done, &x->rs);
    assert_int_equal(results_wait(&x->rs, 2), 2);
    assert_int_equal(x->rs.rc[1], 0);
    assert_int_equal(x->rs.pending[1], 0);
    assert_int_equal(store_outbox_count(x->st, &pending), 0);
    assert_int_equal(pending, 0);
    /* Never existed: still success. */
    service_user_delete(x->svc, &c, "nobody", on_done, &x->rs);
    assert_int_equal(results_wait(&x->rs, 3), 3);
    assert_int_equal(x->rs.rc[2], 0);
}

static void test_other_resource(void **state)
{
    struct fx *x = *state;
    struct service_call c = call_for("frank");
    struct store_user u;

    memset(&u, 0, sizeof u);
    snprintf(u.app_user_id, sizeof u.app_user_id, "frank");
    snprintf(u.acs_id, sizeof u.acs_id, "8:acs:elsewhere_1");
    snprintf(u.resource, sizeof u.resource, "other.example:443");
    u.created_ms = clock_wall_ms();
    assert_int_equal(store_user_insert(x->st, &u), 0);
    service_user_token(x->svc, &c, "frank", NULL, 1, on_done, &x->rs);
    assert_int_equal(results_wait(&x->rs, 1), 1);
    assert_int_equal(x->rs.rc[0], TV_ERR_CONFLICT);
    assert_int_equal(fake_count(&x->fake, ACS_OP_ISSUE), 0);
    assert_int_equal(fake_count(&x->fake, ACS_OP_CREATE), 0);
}

static char *jwt_with(const char *payload)
{
    char *p = malloc(b64_encoded_size(strlen(payload)));
    char *out = malloc(strlen(payload) * 2 + 64);
    b64url_encode((const uint8_t *)payload, strlen(payload), p);
    sprintf(out, "eyJhbGciOiJSUzI1NiJ9.%s.c2ln", p);
    free(p);
    return out;
}

static void test_teams_checks(void **state)
{
    struct fx *x = *state;
    struct service_call c = call_for("gina");
    char *good = jwt_with("{\"oid\":\"oid-1\",\"appid\":\"app-1\"}");
    char *noapp = jwt_with("{\"oid\":\"oid-1\"}");

    service_teams_exchange(x->svc, &c, "oid-2", good, on_done, &x->rs);
    service_teams_exchange(x->svc, &c, "", good, on_done, &x->rs);
    service_teams_exchange(x->svc, &c, "oid-1", "not-a-jwt", on_done, &x->rs);
    service_teams_exchange(x->svc, &c, "oid-1", noapp, on_done, &x->rs);
    service_teams_exchange(x->svc, &c, "oid-1", NULL, on_done, &x->rs);
    assert_int_equal(results_wait(&x->rs, 5), 5);
    assert_int_equal(x->rs.rc[0], TV_ERR_FORBIDDEN);
    assert_int_equal(x->rs.rc[1], TV_ERR_FORBIDDEN);
    assert_int_equal(x->rs.rc[2], TV_ERR_INVALID);
    assert_int_equal(x->rs.rc[3], TV_ERR_INVALID);
    assert_int_equal(x->rs.rc[4], TV_ERR_INVALID);
    assert_int_equal(fake_count(&x->fake, ACS_OP_TEAMS_EXCHANGE), 0);

    service_teams_exchange(x->svc, &c, "oid-1", good, on_done, &x->rs);
    assert_int_equal(results_wait(&x->rs, 6), 6);
    assert_int_equal(x->rs.rc[5], 0);
    assert_true(x->rs.had_token[5]);
    free(good);
    free(noapp);
}

/* ---- token cache ---- */

static struct policy_token_req treq_for(const char *scopes, int minutes)
{
    struct policy_token_req r;
    struct config_scopes cs;
    char err[128];

    memset(&r, 0, sizeof r);
    assert_int_equal(config_scopes_parse(scopes, &cs, err, sizeof err), 0);
    for (size_t i = 0; i < cs.n; i++)
        r.scopes[i] = cs.items[i];
    r.nscopes = cs.n;
    r.minutes = minutes;
    return r;
}

/* One request, waited for; returns its result index. */
static int token_now(struct fx *x, const char *user, const struct policy_token_req *treq)
{
    struct service_call c = call_for(user);
    int want = x->rs.n + 1;
    service_user_token(x->svc, &c, user, treq, 1, on_done, &x->rs);
    assert_int_equal(results_wait(&x->rs, want), want);
    assert_int_equal(x->rs.rc[want - 1], 0);
    assert_true(x->rs.had_token[want - 1]);
    return want - 1;
}

static int audit_count(struct fx *x, const char *user, const char *action)
{
    struct store_audit rows[64];
    struct store_audit_filter flt = {.app_user_id = user, .action = action};
    int n = 0;
    assert_int_equal(store_audit_list(x->st, &flt, 64, rows, &n), 0);
    return n;
}

static void assert_metric(struct fx *x, const char *line)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    assert_int_equal(service_metrics_write(x->svc, &b), 0);
    if (strstr(buf_cstr(&b), line) == NULL)
        fail_msg("metrics lack \"%s\"", line);
    buf_release(&b);
}

static void test_cache_sequential(void **state)
{
    struct fx *x = *state;
    struct policy_token_req dflt = treq_for("chat,voip", 1440);
    struct policy_token_req vc = treq_for("voip,chat", 1440); /* same set, other order */
    struct policy_token_req chat = treq_for("chat", 1440);
    struct policy_token_req shorter = treq_for("chat,voip", 600);

    int a = token_now(x, "hana", &dflt); /* create with token */
    int b = token_now(x, "hana", &dflt); /* hit */
    int c = token_now(x, "hana", &vc);   /* hit: a scope set is a set */
    assert_string_equal(x->rs.tok[b], x->rs.tok[a]);
    assert_string_equal(x->rs.tok[c], x->rs.tok[a]);
    assert_int_equal(x->rs.created[b], 0);
    assert_int_equal(fake_count(&x->fake, ACS_OP_CREATE), 1);
    assert_int_equal(fake_count(&x->fake, ACS_OP_ISSUE), 0);

    /* Other scopes or another lifetime are other keys: one upstream issue each, then hits. */
    int d = token_now(x, "hana", &chat);
    int e = token_now(x, "hana", &shorter);
    int f = token_now(x, "hana", &chat);
    int g = token_now(x, "hana", &shorter);
    assert_int_equal(fake_count(&x->fake, ACS_OP_ISSUE), 2);
    assert_string_not_equal(x->rs.tok[d], x->rs.tok[a]);
    assert_string_not_equal(x->rs.tok[e], x->rs.tok[d]);
    assert_string_equal(x->rs.tok[f], x->rs.tok[d]);
    assert_string_equal(x->rs.tok[g], x->rs.tok[e]);
    /* ACS issues are audited, hits are not. */
    assert_int_equal(audit_count(x, "hana", "issue"), 3);
    assert_metric(x, "tokenvend_cache_hits_total 4\n");
    assert_metric(x, "tokenvend_cache_entries 3\n");
}

static void test_cache_revoke(void **state)
{
    struct fx *x = *state;
    struct service_call c = call_for("ivan");
    struct policy_token_req dflt = treq_for("chat,voip", 1440);

    int a = token_now(x, "ivan", &dflt);
    service_user_revoke(x->svc, &c, "ivan", on_done, &x->rs);
    assert_int_equal(results_wait(&x->rs, a + 2), a + 2);
    assert_int_equal(x->rs.rc[a + 1], 0);
    assert_metric(x, "tokenvend_cache_entries 0\n");
    clock_sleep_ms(2); /* out of the revoke's millisecond (see test_cache_revoke_during_issue) */
    int b = token_now(x, "ivan", &dflt); /* after the revoke: upstream again */
    assert_int_equal(fake_count(&x->fake, ACS_OP_ISSUE), 1);
    assert_string_not_equal(x->rs.tok[b], x->rs.tok[a]);
    int d = token_now(x, "ivan", &dflt); /* and the new token is cached */
    assert_string_equal(x->rs.tok[d], x->rs.tok[b]);
    assert_int_equal(fake_count(&x->fake, ACS_OP_ISSUE), 1);

    /* A revoke recorded by another process (only the store knows) is honoured too. */
    clock_sleep_ms(2);
    assert_int_equal(store_user_set_revoked(x->st, x->rs.acs[a], clock_wall_ms()), 0);
    int e = token_now(x, "ivan", &dflt);
    assert_int_equal(fake_count(&x->fake, ACS_OP_ISSUE), 2);
    assert_string_not_equal(x->rs.tok[e], x->rs.tok[b]);
}

static void test_cache_concurrent(void **state)
{
    struct fx *x = *state;
    struct service_call c = call_for("jo");
    const int n = 64;

    service_user_ensure(x->svc, &c, "jo", on_done, &x->rs);
    assert_int_equal(results_wait(&x->rs, 1), 1);
    fake_set(&x->fake, 0, ACS_OP_ISSUE, 0);
    pthread_mutex_lock(&x->fake.mu);
    x->fake.hold_issues = 1;
    pthread_mutex_unlock(&x->fake.mu);
    for (int i = 0; i < n; i++)
        service_user_token(x->svc, &c, "jo", NULL, 1, on_done, &x->rs);
    /* Everyone waits on one issue. */
    assert_int_equal(fake_count(&x->fake, ACS_OP_ISSUE), 1);
    assert_int_equal(results_wait(&x->rs, 1), 1);
    fake_release(&x->fake);
    assert_int_equal(results_wait(&x->rs, n + 1), n + 1);
    for (int i = 1; i <= n; i++) {
        assert_int_equal(x->rs.rc[i], 0);
        assert_string_equal(x->rs.tok[i], x->rs.tok[1]);
    }
    assert_int_equal(fake_count(&x->fake, ACS_OP_ISSUE), 1);
    assert_int_equal(audit_count(x, "jo", "issue"), 1);
    assert_metric(x, "tokenvend_issue_singleflight_joined_total 63\n");
    token_now(x, "jo", NULL);
    assert_int_equal(fake_count(&x->fake, ACS_OP_ISSUE), 1);
}

/* 100 concurrent first requests: one create, and the waiters take its token from the cache. */
static void test_cache_first_requests(void **state)
{
    struct fx *x = *state;
    struct service_call c = call_for("kai");
    const int n = 100;

    fake_set(&x->fake, 1, ACS_OP_CREATE, 0);
    for (int i = 0; i < n; i++)
        service_user_token(x->svc, &c, "kai", NULL, 1, on_done, &x->rs);
    fake_release(&x->fake);
    assert_int_equal(results_wait(&x->rs, n), n);
    for (int i = 0; i < n; i++) {
        assert_int_equal(x->rs.rc[i], 0);
        assert_string_equal(x->rs.tok[i], x->rs.tok[0]);
    }
    assert_int_equal(fake_count(&x->fake, ACS_OP_CREATE), 1);
    assert_int_equal(fake_count(&x->fake, ACS_OP_ISSUE), 0);
}

/* A revoke that answers while an issue is in flight: that issue's token is handed to its own
 * requester but never cached, and later requests do not join it. */
static void test_cache_revoke_during_issue(void **state)
{
    struct fx *x = *state;
    struct service_call c = call_for("lea");

    service_user_ensure(x->svc, &c, "lea", on_done, &x->rs);
    assert_int_equal(results_wait(&x->rs, 1), 1);
    pthread_mutex_lock(&x->fake.mu);
    x->fake.hold_issues = 1;
    pthread_mutex_unlock(&x->fake.mu);
    service_user_token(x->svc, &c, "lea", NULL, 1, on_done, &x->rs); /* #1: issue held */
    assert_int_equal(fake_count(&x->fake, ACS_OP_ISSUE), 1);
    service_user_revoke(x->svc, &c, "lea", on_done, &x->rs);
    assert_int_equal(results_wait(&x->rs, 2), 2);
    assert_int_equal(x->rs.rc[1], 0); /* the revoke answered; #1 still waits */
    /* A token issued in the millisecond of a recorded revoke is conservatively not served
     * from the cache; step past it so #2's token counts as issued after the revoke. */
    clock_sleep_ms(2);
    service_user_token(x->svc, &c, "lea", NULL, 1, on_done, &x->rs); /* #2 */
    assert_int_equal(fake_count(&x->fake, ACS_OP_ISSUE), 2);         /* did not join #1 */
    fake_release(&x->fake);
    assert_int_equal(results_wait(&x->rs, 4), 4);
    assert_int_equal(x->rs.rc[2], 0);
    assert_int_equal(x->rs.rc[3], 0);
    /* The fake issues in submission order: #1 got fake.token.1 (issued before the revoke),
     * #2 fake.token.2 (the service's two workers may answer them in either order). Only the
     * latter may be served from the cache. */
    assert_true(
        (strcmp(x->rs.tok[2], "fake.token.1") == 0 && strcmp(x->rs.tok[3], "fake.token.2") == 0) ||
        (strcmp(x->rs.tok[2], "fake.token.2") == 0 && strcmp(x->rs.tok[3], "fake.token.1") == 0));
    int d = token_now(x, "lea", NULL);
    assert_int_equal(fake_count(&x->fake, ACS_OP_ISSUE), 2);
    assert_string_equal(x->rs.tok[d], "fake.token.2");
}

static void test_cache_short_tokens(void **state)
{
    struct fx *x = *state;

    pthread_mutex_lock(&x->fake.mu);
    x->fake.ttl_ms = 29 * 60 * 1000; /* below cache_min_remaining_minutes */
    pthread_mutex_unlock(&x->fake.mu);
    int a = token_now(x, "max", NULL);
    int b = token_now(x, "max", NULL);
    assert_string_not_equal(x->rs.tok[a], x->rs.tok[b]);
    assert_int_equal(fake_count(&x->fake, ACS_OP_ISSUE), 1);
    assert_metric(x, "tokenvend_cache_entries 0\n");
}

static void test_cache_delete(void **state)
{
    struct fx *x = *state;
    struct service_call c = call_for("nia");

    int a = token_now(x, "nia", NULL);
    service_user_delete(x->svc, &c, "nia", on_done, &x->rs);
    assert_int_equal(results_wait(&x->rs, a + 2), a + 2);
    assert_metric(x, "tokenvend_cache_entries 0\n");
    int b = token_now(x, "nia", NULL); /* a new identity, a new token */
    assert_string_not_equal(x->rs.acs[b], x->rs.acs[a]);
    assert_string_not_equal(x->rs.tok[b], x->rs.tok[a]);
    assert_int_equal(fake_count(&x->fake, ACS_OP_CREATE), 2);
}

static void test_cache_off(void **state)
{
    struct fx *x = *state;

    int a = token_now(x, "olga", NULL);
    int b = token_now(x, "olga", NULL);
    assert_string_not_equal(x->rs.tok[a], x->rs.tok[b]);
    assert_int_equal(fake_count(&x->fake, ACS_OP_ISSUE), 1);
    assert_metric(x, "tokenvend_cache_hits_total 0\n");
}

/* ---- races and limits (reviewer findings 2-6, 8) ---- */

static void results_init(struct results *rs)
{
    memset(rs, 0, sizeof *rs);
    pthread_mutex_init(&rs->mu, NULL);
    pthread_cond_init(&rs->cv, NULL);
}

static void results_destroy(struct results *rs)
{
    pthread_cond_destroy(&rs->cv);
    pthread_mutex_destroy(&rs->mu);
}

/* The newest audit row of user/action (fails the test when there is none). */
static struct store_audit audit_last(struct fx *x, const char *user, const char *action)
{
    struct store_audit rows[4];
    struct store_audit_filter flt = {.app_user_id = user, .action = action};
    int n = 0;
    assert_int_equal(store_audit_list(x->st, &flt, 4, rows, &n), 0);
    if (n == 0)
        fail_msg("no \"%s\" audit row for %s", action, user);
    return rows[0];
}

static long long metric_value(struct fx *x, const char *name)
{
    struct buf b;
    char key[128];
    long long v = -1;
    buf_init(&b, 1 << 20);
    assert_int_equal(service_metrics_write(x->svc, &b), 0);
    snprintf(key, sizeof key, "\n%s ", name);
    const char *p = strstr(buf_cstr(&b), key);
    if (p != NULL)
        v = strtoll(p + strlen(key), NULL, 10);
    buf_release(&b);
    if (v < 0)
        fail_msg("metrics lack %s", name);
    return v;
}

static void wait_outbox_empty(struct fx *x)
{
    int64_t pending = -1, end = clock_mono_ms() + 20000;
    do {
        service_outbox_kick(x->svc);
        clock_sleep_ms(10);
        assert_int_equal(store_outbox_count(x->st, &pending), 0);
    } while (pending != 0 && clock_mono_ms() < end);
    assert_int_equal(pending, 0);
}

/* Finding 2: service_defer's queue is bounded; beyond it the caller gets TV_ERR_UNAVAILABLE at
 * once (the API answers 503 with Retry-After) instead of waiting behind everyone. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open, ran;
};

static void gate_job(void *arg)
{
    struct gate *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    g->ran++;
    pthread_mutex_unlock(&g->mu);
}

static int gate_ran(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    int ran = g->ran;
    pthread_mutex_unlock(&g->mu);
    return ran;
}

static int gate_wait_ran(struct gate *g, int n)
{
    int64_t end = clock_mono_ms() + 20000;
    while (gate_ran(g) < n && clock_mono_ms() < end)
        clock_sleep_ms(5);
    return gate_ran(g);
}

/* Static: the jobs must outlive a failed assertion (the teardown runs them). */
static struct gate defer_gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};

static void test_defer_bounded(void **state)
{
    struct fx *x = *state;
    struct gate *g = &defer_gate;
    int accepted = 0, refused = 0, other = 0;

    g->open = 0;
    g->ran = 0;
    for (int i = 0; i < 100; i++) {
        int rc = service_defer(x->svc, gate_job, g);
        if (rc == 0)
            accepted++;
        else if (rc == TV_ERR_UNAVAILABLE)
            refused++;
        else
            other++;
    }
    /* Open before asserting, so a failure does not leave the workers blocked. */
    pthread_mutex_lock(&g->mu);
    g->open = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    /* At most 32 jobs queued or running at a time (the default cap). */
    assert_int_equal(other, 0);
    assert_int_equal(accepted, 32);
    assert_int_equal(refused, 68);
    assert_int_equal(gate_wait_ran(g, accepted), accepted);
    /* Room again once the queue drained (the count drops after each job returns). */
    int64_t end = clock_mono_ms() + 20000;
    int rc;
    while ((rc = service_defer(x->svc, gate_job, g)) == TV_ERR_UNAVAILABLE && clock_mono_ms() < end)
        clock_sleep_ms(5);
    assert_int_equal(rc, 0);
    assert_int_equal(gate_wait_ran(g, accepted + 1), accepted + 1);
}

/* Finding 3: while the outbox still owes the ACS delete, a repeated delete says so (202), by
 * app user id as well as by ACS id; once ACS confirmed, 204. */
static void test_delete_again_while_pending(void **state)
{
    struct fx *x = *state;
    struct service_call c = call_for("paul");

    service_user_ensure(x->svc, &c, "paul", on_done, &x->rs);
    assert_int_equal(results_wait(&x->rs, 1), 1);
    char acs[64];
    snprintf(acs, sizeof acs, "%s", x->rs.acs[0]);
    fake_fail(&x->fake, ACS_OP_DELETE, TV_ERR_ACS_UNAVAILABLE);
    service_user_delete(x->svc, &c, "paul", on_done, &x->rs);
    assert_int_equal(results_wait(&x->rs, 2), 2);
    assert_int_equal(x->rs.rc[1], 0);
    assert_int_equal(x->rs.pending[1], 1);
    service_user_delete(x->svc, &c, "paul", on_done, &x->rs);
    assert_int_equal(results_wait(&x->rs, 3), 3);
    assert_int_equal(x->rs.rc[2], 0);
    assert_int_equal(x->rs.pending[2], 1); /* was 0 (204) before the fix */
    service_identity_delete(x->svc, &c, acs, on_done, &x->rs);
    assert_int_equal(results_wait(&x->rs, 4), 4);
    assert_int_equal(x->rs.pending[3], 1);
    struct store_audit a = audit_last(x, "paul", "delete");
    assert_string_equal(a.outcome, "ok");
    assert_non_null(strstr(a.detail, "no mapping"));

    fake_fail(&x->fake, ACS_OP_DELETE, 0);
    wait_outbox_empty(x);
    service_user_delete(x->svc, &c, "paul", on_done, &x->rs);
    assert_int_equal(results_wait(&x->rs, 5), 5);
    assert_int_equal(x->rs.rc[4], 0);
    assert_int_equal(x->rs.pending[4], 0);
}

/* Finding 4a: the request's own row is not due while the request's ACS delete is in flight,
 * so the outbox worker cannot take it (spurious 202, duplicate delete). */
static void test_delete_row_leased_during_attempt(void **state)
{
    struct fx *x = *state;
    struct service_call c = call_for("quinn");
    struct store_outbox_row rows[4];
    int n = -1;

    service_user_ensure(x->svc, &c, "quinn", on_done, &x->rs);
    assert_int_equal(results_wait(&x->rs, 1), 1);
    fake_hold(&x->fake, 0, 0, 1);
    service_user_delete(x->svc, &c, "quinn", on_done, &x->rs);
    assert_int_equal(fake_wait_count(&x->fake, ACS_OP_DELETE, 1), 1);
    assert_int_equal(store_outbox_due(x->st, clock_wall_ms(), 4, rows, &n), 0);
    assert_int_equal(n, 0); /* was 1 before the fix: due at once */
    /* Give the worker (50 ms period) a few chances anyway. */
    for (int i = 0; i < 5; i++) {
        service_outbox_kick(x->svc);
        clock_sleep_ms(20);
    }
    fake_release(&x->fake);
    assert_int_equal(results_wait(&x->rs, 2), 2);
    assert_int_equal(x->rs.rc[1], 0);
    assert_int_equal(x->rs.pending[1], 0);
    wait_outbox_empty(x);
    assert_int_equal(fake_count(&x->fake, ACS_OP_DELETE), 1);
    struct store_audit a = audit_last(x, "quinn", "delete");
    assert_string_equal(a.outcome, "ok");
}

/* Finding 4b: many deletes while the outbox worker runs flat out: each identity deleted once,
 * every answer 204, every audit row ok. */
struct kicker {
    struct service *svc;
    atomic_int stop;
};

static void *kicker_main(void *arg)
{
    struct kicker *k = arg;
    while (!atomic_load(&k->stop)) {
        service_outbox_kick(k->svc);
        clock_sleep_ms(1);
    }
    return NULL;
}

static void test_delete_storm_no_duplicates(void **state)
{
    struct fx *x = *state;
    const int n = 150;
    char name[32];
    struct kicker k = {.svc = x->svc};
    pthread_t th;
    struct results rd;

    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "storm%03d", i);
        struct service_call c = call_for(name);
        service_user_ensure(x->svc, &c, name, on_done, &x->rs);
    }
    assert_int_equal(results_wait(&x->rs, n), n);
    results_init(&rd);
    assert_int_equal(pthread_create(&th, NULL, kicker_main, &k), 0);
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "storm%03d", i);
        struct service_call c = call_for(name);
        service_user_delete(x->svc, &c, name, on_done, &rd);
    }
    assert_int_equal(results_wait(&rd, n), n);
    clock_sleep_ms(200); /* let any duplicate the worker might send arrive */
    atomic_store(&k.stop, 1);
    pthread_join(th, NULL);
    int pending = 0;
    for (int i = 0; i < n; i++) {
        assert_int_equal(rd.rc[i], 0);
        pending += rd.pending[i];
    }
    assert_int_equal(pending, 0);
    wait_outbox_empty(x);
    assert_int_equal(fake_count(&x->fake, ACS_OP_DELETE), n);
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "storm%03d", i);
        struct store_audit a = audit_last(x, name, "delete");
        assert_string_equal(a.outcome, "ok");
    }
    results_destroy(&rd);
}

/* Finding 4c: a due row whose delete is in flight does not make the worker poll: it sleeps its
 * period (1 s here). */
static void test_outbox_idle_while_inflight(void **state)
{
    struct fx *x = *state;

    fake_hold(&x->fake, 0, 0, 1);
    assert_int_equal(
        store_outbox_add(x->st, "8:acs:orphan_1", RESOURCE, "delete", clock_wall_ms(), NULL), 0);
    service_outbox_kick(x->svc);
    assert_int_equal(fake_wait_count(&x->fake, ACS_OP_DELETE, 1), 1);
    clock_sleep_ms(50);
    long long p0 = metric_value(x, "tokenvend_outbox_passes_total");
    clock_sleep_ms(500);
    long long p1 = metric_value(x, "tokenvend_outbox_passes_total");
    /* A 10 ms poll would make ~50 passes; the 1 s period at most one. */
    assert_true(p1 - p0 <= 2);
    fake_release(&x->fake);
    wait_outbox_empty(x);
    assert_int_equal(fake_count(&x->fake, ACS_OP_DELETE), 1);
}

/* Issue 9: a second replica, a service of its own on its own handle of the fixture's database
 * (another process, in production), sharing the fake ACS. */
struct replica {
    struct store *st;
    struct service *svc;
};

static void replica_start(struct fx *x, struct replica *r)
{
    struct service_opts o;

    assert_int_equal(store_open(x->path, STORE_MIGRATE_NO, &r->st), 0);
    fixture_opts(x, r->st, 0, &o);
    assert_int_equal(service_new(&o, &r->svc), 0);
    assert_int_equal(service_start(r->svc), 0);
}

static void replica_stop(struct replica *r)
{
    service_stop(r->svc);
    service_free(r->svc);
    store_close(r->st);
}

/* Two replicas' outbox workers running flat out over the same queued deletes: each delete is
 * sent to ACS once (the rows are leased to whoever took them first). */
static void test_two_replicas_delete_once(void **state)
{
    struct fx *x = *state;
    const int n = 120;
    struct replica r2;
    struct kicker k1 = {.svc = x->svc}, k2;
    pthread_t t1, t2;
    char acs[32];

    replica_start(x, &r2);
    k2.svc = r2.svc;
    atomic_init(&k2.stop, 0);
    /* Held, so a row taken twice would be sent twice while both workers see it. */
    fake_hold(&x->fake, 0, 0, 1);
    for (int i = 0; i < n; i++) {
        snprintf(acs, sizeof acs, "8:acs:queued_%03d", i);
        assert_int_equal(store_outbox_add(x->st, acs, RESOURCE, "delete", clock_wall_ms(), NULL),
                         0);
    }
    assert_int_equal(pthread_create(&t1, NULL, kicker_main, &k1), 0);
    assert_int_equal(pthread_create(&t2, NULL, kicker_main, &k2), 0);
    assert_true(fake_wait_count(&x->fake, ACS_OP_DELETE, n) >= n);
    clock_sleep_ms(300); /* more passes of both workers: room for a duplicate to show */
    atomic_store(&k1.stop, 1);
    atomic_store(&k2.stop, 1);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    fake_release(&x->fake);
    wait_outbox_empty(x);
    assert_int_equal(fake_count(&x->fake, ACS_OP_DELETE), n);
    replica_stop(&r2);
}

/* A replica accepted a delete (202: the mapping gone, its row leased for its own attempt) and
 * died before finishing it: once the lease runs out, the surviving replica sends the delete. */
static void test_dead_replica_delete_finished(void **state)
{
    struct fx *x = *state;
    struct store *dead = NULL;
    struct store_user u;
    int64_t id = 0, now = clock_wall_ms();

    assert_int_equal(store_open(x->path, STORE_MIGRATE_NO, &dead), 0);
    memset(&u, 0, sizeof u);
    snprintf(u.app_user_id, sizeof u.app_user_id, "victor");
    snprintf(u.acs_id, sizeof u.acs_id, "8:acs:victor_1");
    snprintf(u.resource, sizeof u.resource, "%s", RESOURCE);
    u.created_ms = now;
    assert_int_equal(store_user_insert(dead, &u), 0);
    /* What delete.c does on the replica that then dies. */
    assert_int_equal(store_user_delete_begin_due(dead, u.acs_id, now, now + 300, &id), 0);
    assert_int_equal(store_outbox_lease(dead, id, now + 300), 0);
    store_close(dead);
    wait_outbox_empty(x);
    assert_int_equal(fake_count(&x->fake, ACS_OP_DELETE), 1);
    struct store_audit a = audit_last(x, "victor", "delete");
    assert_string_equal(a.outcome, "ok");
}

/* Finding 5: a delete during the user's in-flight create waits for it, then deletes what it
 * created; the token request that started the create still gets its token. */
static void test_delete_joins_create(void **state)
{
    struct fx *x = *state;
    struct service_call c = call_for("dora");
    struct results rt, rd;
    struct store_user u;
    int64_t pending = -1;

    results_init(&rt);
    results_init(&rd);
    fake_hold(&x->fake, 1, 0, 0);
    service_user_token(x->svc, &c, "dora", NULL, 1, on_done, &rt);
    assert_int_equal(fake_wait_count(&x->fake, ACS_OP_CREATE, 1), 1);
    service_user_delete(x->svc, &c, "dora", on_done, &rd);
    clock_sleep_ms(50);
    assert_int_equal(results_wait(&rd, 0), 0); /* before the fix: answered at once */
    fake_release(&x->fake);
    assert_int_equal(results_wait(&rt, 1), 1);
    assert_int_equal(results_wait(&rd, 1), 1);
    assert_int_equal(rt.rc[0], 0);
    assert_true(rt.had_token[0]);
    assert_int_equal(rd.rc[0], 0);
    assert_int_equal(rd.pending[0], 0);
    /* After the delete answered: no mapping, the identity deleted at ACS. */
    assert_int_equal(store_user_get(x->st, "dora", &u), TV_ERR_NOT_FOUND);
    assert_int_equal(fake_count(&x->fake, ACS_OP_DELETE), 1);
    assert_int_equal(store_outbox_count(x->st, &pending), 0);
    assert_int_equal(pending, 0);

    /* A failed create leaves nothing to delete: the joined delete answers 204. */
    fake_hold(&x->fake, 1, 0, 0);
    fake_fail(&x->fake, ACS_OP_CREATE, TV_ERR_ACS_UNAVAILABLE);
    service_user_token(x->svc, &c, "dora", NULL, 1, on_done, &rt);
    assert_int_equal(fake_wait_count(&x->fake, ACS_OP_CREATE, 2), 2);
    service_user_delete(x->svc, &c, "dora", on_done, &rd);
    fake_release(&x->fake);
    assert_int_equal(results_wait(&rt, 2), 2);
    assert_int_equal(results_wait(&rd, 2), 2);
    assert_int_equal(rt.rc[1], TV_ERR_ACS_UNAVAILABLE);
    assert_int_equal(rd.rc[1], 0);
    assert_int_equal(rd.pending[1], 0);
    assert_int_equal(fake_count(&x->fake, ACS_OP_DELETE), 1);
    results_destroy(&rt);
    results_destroy(&rd);
}

/* Finding 6: ACS answers 404 to an issue because a delete removed the identity after the
 * token request read the mapping. With auto-create the request starts over once (a new
 * identity); without it the answer is the plain "no identity" 404, never acs_not_found. */
static void test_issue_races_delete(void **state)
{
    struct fx *x = *state;
    struct service_call c = call_for("gus");
    struct results rt;

    results_init(&rt);
    service_user_ensure(x->svc, &c, "gus", on_done, &x->rs);
    assert_int_equal(results_wait(&x->rs, 1), 1);
    char first[64];
    snprintf(first, sizeof first, "%s", x->rs.acs[0]);

    fake_hold(&x->fake, 0, 1, 0);
    service_user_token(x->svc, &c, "gus", NULL, 1, on_done, &rt);
    assert_int_equal(fake_wait_count(&x->fake, ACS_OP_ISSUE, 1), 1);
    service_user_delete(x->svc, &c, "gus", on_done, &x->rs);
    assert_int_equal(results_wait(&x->rs, 2), 2);
    assert_int_equal(x->rs.pending[1], 0);
    fake_fail(&x->fake, ACS_OP_ISSUE, TV_ERR_ACS_NOT_FOUND); /* the identity is gone */
    fake_release(&x->fake);
    assert_int_equal(results_wait(&rt, 1), 1);
    assert_int_equal(rt.rc[0], 0); /* before the fix: TV_ERR_ACS_NOT_FOUND */
    assert_true(rt.had_token[0]);
    assert_string_not_equal(rt.acs[0], first);
    assert_int_equal(rt.created[0], 1);

    /* Without auto-create: a plain 404 for the missing mapping. */
    fake_fail(&x->fake, ACS_OP_ISSUE, 0);
    fake_hold(&x->fake, 0, 1, 0);
    service_user_token(x->svc, &c, "gus", NULL, 0, on_done, &rt);
    assert_int_equal(fake_wait_count(&x->fake, ACS_OP_ISSUE, 2), 2);
    service_user_delete(x->svc, &c, "gus", on_done, &x->rs);
    assert_int_equal(results_wait(&x->rs, 3), 3);
    fake_fail(&x->fake, ACS_OP_ISSUE, TV_ERR_ACS_NOT_FOUND);
    fake_release(&x->fake);
    assert_int_equal(results_wait(&rt, 2), 2);
    assert_int_equal(rt.rc[1], TV_ERR_NOT_FOUND);

    /* The mapping still there but ACS no longer knows it (deleted behind our back): 409. */
    fake_fail(&x->fake, ACS_OP_ISSUE, 0);
    service_user_ensure(x->svc, &c, "gus", on_done, &x->rs);
    assert_int_equal(results_wait(&x->rs, 4), 4);
    fake_fail(&x->fake, ACS_OP_ISSUE, TV_ERR_ACS_NOT_FOUND);
    service_user_token(x->svc, &c, "gus", NULL, 1, on_done, &rt);
    assert_int_equal(results_wait(&rt, 3), 3);
    assert_int_equal(rt.rc[2], TV_ERR_CONFLICT);
    results_destroy(&rt);
}

/* Finding 8: a delete that finds no mapping is audited too. */
static void test_delete_no_mapping_audited(void **state)
{
    struct fx *x = *state;
    struct service_call c = call_for("nobody");

    service_user_delete(x->svc, &c, "nobody", on_done, &x->rs);
    assert_int_equal(results_wait(&x->rs, 1), 1);
    assert_int_equal(x->rs.rc[0], 0);
    assert_int_equal(x->rs.pending[0], 0);
    struct store_audit a = audit_last(x, "nobody", "delete");
    assert_string_equal(a.outcome, "ok");
    assert_string_equal(a.detail, "no mapping");
    assert_string_equal(a.caller, "user:nobody");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_single_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_failure_fans_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_after_fans_out, setup_cache, teardown),
        cmocka_unit_test_setup_teardown(test_no_auto_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_via_outbox, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_confirmed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_resource, setup, teardown),
        cmocka_unit_test_setup_teardown(test_teams_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_sequential, setup_cache, teardown),
        cmocka_unit_test_setup_teardown(test_cache_revoke, setup_cache, teardown),
        cmocka_unit_test_setup_teardown(test_cache_concurrent, setup_cache, teardown),
        cmocka_unit_test_setup_teardown(test_cache_first_requests, setup_cache, teardown),
        cmocka_unit_test_setup_teardown(test_cache_revoke_during_issue, setup_cache, teardown),
        cmocka_unit_test_setup_teardown(test_cache_short_tokens, setup_cache, teardown),
        cmocka_unit_test_setup_teardown(test_cache_delete, setup_cache, teardown),
        cmocka_unit_test_setup_teardown(test_cache_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defer_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_again_while_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_row_leased_during_attempt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_storm_no_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_idle_while_inflight, setup_slow_outbox,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_two_replicas_delete_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_replica_delete_finished, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_joins_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_issue_races_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_no_mapping_audited, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
