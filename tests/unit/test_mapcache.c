/* The mapping cache (src/service/mapcache.c): hits and misses, drops by app user, the
 * generation that refuses a row read before a drop, clear, the LRU bound, threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"

#include "../../src/service/mapcache_int.h"

static struct store_user row(const char *app, const char *acs)
{
    struct store_user u;

    memset(&u, 0, sizeof u);
    snprintf(u.app_user_id, sizeof u.app_user_id, "%s", app);
    snprintf(u.acs_id, sizeof u.acs_id, "%s", acs);
    snprintf(u.resource, sizeof u.resource, "acs.example");
    u.created_ms = 1700000000000LL;
    return u;
}

static struct mapcache *new_cache(size_t max)
{
    struct mapcache *c = NULL;

    assert_int_equal(mapcache_new(max, &c), 0);
    return c;
}

static void test_get_put_drop(void **state)
{
    struct mapcache *c = new_cache(10);
    struct store_user a = row("alice", "8:acs:a"), got;
    struct mapcache_stats st;
    (void)state;

    assert_int_equal(mapcache_get(c, "alice", &got), TV_ERR_NOT_FOUND);
    assert_int_equal(mapcache_put(c, mapcache_gen(c), &a), 0);
    assert_int_equal(mapcache_get(c, "alice", &got), 0);
    assert_string_equal(got.acs_id, "8:acs:a");
    assert_string_equal(got.resource, "acs.example");
    /* A newer row for the same user replaces the old one. */
    a.revoked_ms = 5;
    assert_int_equal(mapcache_put(c, mapcache_gen(c), &a), 0);
    assert_int_equal(mapcache_get(c, "alice", &got), 0);
    assert_int_equal(got.revoked_ms, 5);
    mapcache_drop(c, "alice");
    assert_int_equal(mapcache_get(c, "alice", &got), TV_ERR_NOT_FOUND);
    /* Standalone identities (no app user) are not cached; "" is never a key. */
    struct store_user standalone = row("", "8:acs:s");
    assert_int_equal(mapcache_put(c, mapcache_gen(c), &standalone), TV_ERR_INVALID);
    assert_int_equal(mapcache_get(c, "", &got), TV_ERR_NOT_FOUND);
    mapcache_stats_get(c, &st);
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.dropped, 1);
    assert_int_equal(st.entries, 0);
    mapcache_free(c);
}

static void test_drop_fences_fills_in_flight(void **state)
{
    struct mapcache *c = new_cache(10);
    struct store_user a = row("alice", "8:acs:a"), b = row("bob", "8:acs:b"), got;
    uint64_t gen;
    (void)state;

    /* Read from the store before a revoke, stored after its notification arrived: refused,
     * whoever the drop was for (the generation is global). */
    gen = mapcache_gen(c);
    mapcache_drop(c, "someone-else");
    assert_int_equal(mapcache_put(c, gen, &a), TV_ERR_CONFLICT);
    assert_int_equal(mapcache_get(c, "alice", &got), TV_ERR_NOT_FOUND);
    gen = mapcache_gen(c);
    mapcache_drop(c, "");
    assert_int_equal(mapcache_put(c, gen, &a), TV_ERR_CONFLICT);
    gen = mapcache_gen(c);
    mapcache_clear(c);
    assert_int_equal(mapcache_put(c, gen, &b), TV_ERR_CONFLICT);
    /* Read after the drop: stored. */
    assert_int_equal(mapcache_put(c, mapcache_gen(c), &a), 0);
    assert_int_equal(mapcache_put(c, mapcache_gen(c), &b), 0);
    mapcache_clear(c);
    assert_int_equal(mapcache_get(c, "alice", &got), TV_ERR_NOT_FOUND);
    assert_int_equal(mapcache_get(c, "bob", &got), TV_ERR_NOT_FOUND);
    mapcache_free(c);
}

static void test_lru_bound(void **state)
{
    struct mapcache *c = new_cache(3);
    struct store_user got;
    struct mapcache_stats st;
    char app[16], acs[24];
    (void)state;

    for (int i = 0; i < 3; i++) {
        snprintf(app, sizeof app, "u%d", i);
        snprintf(acs, sizeof acs, "8:acs:%d", i);
        struct store_user u = row(app, acs);
        assert_int_equal(mapcache_put(c, mapcache_gen(c), &u), 0);
    }
    /* u0 used again: u1 is now the least recently used and goes first. */
    assert_int_equal(mapcache_get(c, "u0", &got), 0);
    struct store_user u3 = row("u3", "8:acs:3");
    assert_int_equal(mapcache_put(c, mapcache_gen(c), &u3), 0);
    assert_int_equal(mapcache_get(c, "u1", &got), TV_ERR_NOT_FOUND);
    assert_int_equal(mapcache_get(c, "u0", &got), 0);
    assert_int_equal(mapcache_get(c, "u2", &got), 0);
    assert_int_equal(mapcache_get(c, "u3", &got), 0);
    mapcache_stats_get(c, &st);
    assert_int_equal(st.entries, 3);
    assert_int_equal(st.evictions, 1);
    mapcache_free(c);
}

static struct mapcache *shared;

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    char app[16];
    struct store_user got;

    for (int i = 0; i < 20000; i++) {
        snprintf(app, sizeof app, "t%d-%d", id, i % 50);
        struct store_user u = row(app, "8:acs:x");
        uint64_t gen = mapcache_gen(shared);
        (void)mapcache_put(shared, gen, &u);
        (void)mapcache_get(shared, app, &got);
        if (i % 97 == 0)
            mapcache_drop(shared, app);
        if (i % 5001 == 0)
            mapcache_clear(shared);
    }
    return NULL;
}

static void test_threads(void **state)
{
    pthread_t th[4];
    struct mapcache_stats st;
    (void)state;

    shared = new_cache(64);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    mapcache_stats_get(shared, &st);
    assert_true(st.entries <= 64);
    mapcache_free(shared);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_put_drop),
        cmocka_unit_test(test_drop_fences_fills_in_flight),
        cmocka_unit_test(test_lru_bound),
        cmocka_unit_test(test_threads),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
