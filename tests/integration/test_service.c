/* The service layer against a real store (temp file) and a fake ACS: single-flight creates,
 * failure fan-out, delete through the outbox, resource binding and the Teams checks. The fake
 * completes calls on its own thread, as the real engine does, and can hold creates back so
 * that concurrent requests pile up behind one. */
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
#include "core/b64.h"
#include "core/clock.h"
#include "core/err.h"
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
    int hold_creates; /* creates wait for fake_release */
    int fail_rc[5];   /* per op: rc to complete with (0 = success) */
    int counts[5];    /* submissions per op */
    int stop;
    unsigned seq;
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
    pthread_mutex_unlock(&f->mu);
    r.http_status = r.rc == 0 ? 200 : 503;
    if (r.rc == 0) {
        if (c->op == ACS_OP_CREATE)
            snprintf(r.identity_id, sizeof r.identity_id, "8:acs:fake_%u", ++f->seq);
        else
            snprintf(r.identity_id, sizeof r.identity_id, "%s", c->identity_id);
        if (c->op == ACS_OP_ISSUE || c->op == ACS_OP_TEAMS_EXCHANGE ||
            (c->op == ACS_OP_CREATE && c->nscopes > 0)) {
            r.token = strdup("fake.token.value");
            r.expires_on_ms = clock_wall_ms() + 3600000;
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
            if (!(f->hold_creates && f->q[i].op == ACS_OP_CREATE))
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
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
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
    char acs[MAXR][64];
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
        snprintf(rs->acs[i], sizeof rs->acs[i], "%s", r->acs_id ? r->acs_id : "");
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

static int setup(void **state)
{
    struct fx *x = calloc(1, sizeof *x);
    struct service_opts o;
    char err[128];

    snprintf(x->dir, sizeof x->dir, "/tmp/tv-svc-test-XXXXXX");
    assert_non_null(mkdtemp(x->dir));
    snprintf(x->path, sizeof x->path, "%s/tv.db", x->dir);
    assert_int_equal(store_open(x->path, STORE_MIGRATE_YES, &x->st), 0);
    pthread_mutex_init(&x->fake.mu, NULL);
    pthread_cond_init(&x->fake.cv, NULL);
    pthread_mutex_init(&x->rs.mu, NULL);
    pthread_cond_init(&x->rs.cv, NULL);
    assert_int_equal(pthread_create(&x->fake.th, NULL, fake_main, &x->fake), 0);

    memset(&o, 0, sizeof o);
    o.store = x->st;
    o.submit = fake_submit;
    o.submit_ctx = &x->fake;
    o.resource = RESOURCE;
    o.outbox_interval_ms = 50;
    o.outbox_backoff_base_ms = 20;
    o.outbox_backoff_max_ms = 50;
    assert_int_equal(config_scopes_parse("chat,voip", &o.policy.allowed, err, sizeof err), 0);
    o.policy.defaults = o.policy.allowed;
    o.policy.default_minutes = 1440;
    o.policy.min_minutes = 60;
    o.policy.max_minutes = 1440;
    o.policy.auto_create = 1;
    assert_int_equal(service_new(&o, &x->svc), 0);
    assert_int_equal(service_start(x->svc), 0);
    *state = x;
    return 0;
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_single_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_failure_fans_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_auto_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_via_outbox, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_confirmed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_resource, setup, teardown),
        cmocka_unit_test_setup_teardown(test_teams_checks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
