/* The service's building blocks on their own: the job queue (cap, order, drain), the
 * single-flight map (join, second look, leader, waiters in arrival order) and the audit
 * fields' copy (always UTF-8, cut on a character boundary). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
/* Module-internal headers of src/service (by their path: tests only). */
#include "../../src/service/jobq_int.h"
#include "../../src/service/service_int.h"
#include "../../src/service/sflight_int.h"

/* ---- jobq ---- */

struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open;
    int ran[16]; /* order of the jobs that ran */
    int nran;
};

struct tjob {
    struct jobq_item it; /* first */
    struct gate *g;
    int id;
};

static void tjob_run(struct jobq_item *it)
{
    struct tjob *j = (struct tjob *)(void *)it;
    struct gate *g = j->g;

    pthread_mutex_lock(&g->mu);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    if (g->nran < 16)
        g->ran[g->nran++] = j->id;
    pthread_mutex_unlock(&g->mu);
}

static int gate_ran(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    int n = g->nran;
    pthread_mutex_unlock(&g->mu);
    return n;
}

static void gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

/* A queue that never started refuses work, but runs what completions pushed when released. */
static void test_jobq_not_started(void **state)
{
    struct gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 1, {0}, 0};
    struct tjob a = {{tjob_run, NULL}, &g, 1}, b = {{tjob_run, NULL}, &g, 2};
    struct jobq q;

    (void)state;
    jobq_init(&q, 1, 4);
    assert_int_equal(jobq_submit(&q, &a.it), TV_ERR_SHUTDOWN);
    jobq_push(&q, &a.it);
    jobq_push(&q, &b.it);
    jobq_release(&q);
    assert_int_equal(g.nran, 2);
    assert_int_equal(g.ran[0], 1);
    assert_int_equal(g.ran[1], 2);
}

/* The cap counts jobs queued or running; push ignores it; a released queue has run them all,
 * in order on one thread. */
static void test_jobq_cap(void **state)
{
    struct gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}, 0};
    struct tjob j[5];
    struct jobq q;

    (void)state;
    for (int i = 0; i < 5; i++)
        j[i] = (struct tjob){{tjob_run, NULL}, &g, i};
    jobq_init(&q, 1, 2);
    assert_int_equal(jobq_start(&q), 0);
    assert_int_equal(jobq_submit(&q, &j[0].it), 0);
    assert_int_equal(jobq_submit(&q, &j[1].it), 0);
    assert_int_equal(jobq_submit(&q, &j[2].it), TV_ERR_UNAVAILABLE);
    jobq_push(&q, &j[3].it); /* over the cap: a completion always gets in */
    assert_int_equal(jobq_submit(&q, &j[4].it), TV_ERR_UNAVAILABLE);
    gate_open(&g);
    int64_t end = clock_mono_ms() + 20000;
    while (gate_ran(&g) < 3 && clock_mono_ms() < end)
        clock_sleep_ms(2);
    assert_int_equal(gate_ran(&g), 3);
    /* Room again once they ran (the count drops after each job returns). */
    end = clock_mono_ms() + 20000;
    int rc;
    while ((rc = jobq_submit(&q, &j[4].it)) == TV_ERR_UNAVAILABLE && clock_mono_ms() < end)
        clock_sleep_ms(2);
    assert_int_equal(rc, 0);
    jobq_release(&q);
    assert_int_equal(g.nran, 4);
    assert_int_equal(g.ran[0], 0);
    assert_int_equal(g.ran[1], 1);
    assert_int_equal(g.ran[2], 3);
    assert_int_equal(g.ran[3], 4);
}

/* ---- sfmap ---- */

struct probe {
    int calls;
    int answer; /* what the second look finds: 0 or TV_ERR_NOT_FOUND or an error */
};

static int probe(void *ctx)
{
    struct probe *p = ctx;
    p->calls++;
    return p->answer;
}

struct waiter {
    struct sf_link link; /* first */
    int id;
};

static void test_sfmap_roles(void **state)
{
    struct sfmap m;
    struct waiter w[4];
    struct probe p = {0, TV_ERR_NOT_FOUND};
    enum sf_role role;

    (void)state;
    for (int i = 0; i < 4; i++)
        w[i] = (struct waiter){{NULL}, i};
    sfmap_init(&m);
    /* Nothing in flight, not leading: the second look says not found. */
    assert_int_equal(sfmap_join(&m, "k", &w[0].link, 0, probe, &p, &role), TV_ERR_NOT_FOUND);
    assert_int_equal(p.calls, 1);
    /* A store error on the second look is the caller's. */
    p.answer = TV_ERR_IO;
    assert_int_equal(sfmap_join(&m, "k", &w[0].link, 1, probe, &p, &role), TV_ERR_IO);
    /* Found on the second look. */
    p.answer = 0;
    assert_int_equal(sfmap_join(&m, "k", &w[0].link, 1, probe, &p, &role), 0);
    assert_int_equal(role, SF_FOUND);
    /* Lead, then three join (no second look for them), other keys untouched. */
    p.answer = TV_ERR_NOT_FOUND;
    p.calls = 0;
    assert_int_equal(sfmap_join(&m, "k", &w[0].link, 1, probe, &p, &role), 0);
    assert_int_equal(role, SF_LEAD);
    for (int i = 1; i < 4; i++) {
        assert_int_equal(sfmap_join(&m, "k", &w[i].link, i % 2, probe, &p, &role), 0);
        assert_int_equal(role, SF_JOINED);
    }
    assert_int_equal(p.calls, 1);
    assert_null(sfmap_finish(&m, "other"));
    /* The waiters come back in the order they joined; the entry is gone. */
    struct sf_link *l = sfmap_finish(&m, "k");
    for (int i = 1; i < 4; i++) {
        assert_non_null(l);
        assert_int_equal(((struct waiter *)(void *)l)->id, i);
        l = l->next;
    }
    assert_null(l);
    assert_null(sfmap_finish(&m, "k"));
    assert_int_equal(sfmap_join(&m, "k", &w[0].link, 1, probe, &p, &role), 0);
    assert_int_equal(role, SF_LEAD);
    sfmap_release(&m); /* frees the entry still there */
}

/* ---- audit fields ---- */

/* The Teams exchange's detail: 89 ASCII bytes then two-byte characters; a byte cut at 90 split
 * the first one and PostgreSQL refused the row (22021). */
static void test_audit_text_cut(void **state)
{
    char out[91], in[128];

    (void)state;
    memset(in, 'a', 89);
    strcpy(in + 89, "\xC3\xA9\xC3\xA9");
    service_audit_text(out, sizeof out, in);
    assert_int_equal(strlen(out), 89); /* the character that did not fit is left out whole */
    assert_int_equal(memcmp(out, in, 89), 0);
    service_audit_text(out, sizeof out, "x\xE2\x82\xAC");
    assert_string_equal(out, "x\xE2\x82\xAC");
    /* Ill-formed bytes and control characters never reach a field as they are. */
    service_audit_text(out, sizeof out,
                       "a\xFF"
                       "b\n");
    assert_string_equal(out, "a\xEF\xBF\xBD"
                             "b\xEF\xBF\xBD");
    service_audit_text(out, sizeof out, NULL);
    assert_string_equal(out, "");
    service_audit_text(out, 3, "ab\xC3\xA9");
    assert_string_equal(out, "ab");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jobq_not_started),
        cmocka_unit_test(test_jobq_cap),
        cmocka_unit_test(test_sfmap_roles),
        cmocka_unit_test(test_audit_text_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
