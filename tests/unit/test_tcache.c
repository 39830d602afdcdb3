/* Token cache: exact-key hits, the expiry threshold at its boundary, revocation (wipe and
 * epoch), the revoked_ms guard, LRU and per-identity bounds, and invariants under threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
/* Module-internal header of src/service (by its path: tests only). */
#include "../../src/service/tcache_int.h"

#define MIN_MS (60 * 1000LL)
#define NOW 1700000000000LL
#define MIN_REMAINING (30 * MIN_MS)

static struct tcache *new_cache(size_t max, unsigned shards)
{
    struct tcache_opts o = {
        .max_entries = max, .min_remaining_ms = MIN_REMAINING, .shards = shards};
    struct tcache *c = NULL;
    assert_int_equal(tcache_new(&o, &c), 0);
    return c;
}

static int put(struct tcache *c, const char *id, const char *scopes, int minutes, const char *tok,
               int64_t expires_ms)
{
    struct tcache_key k = {id, scopes, minutes};
    return tcache_put(c, &k, tcache_epoch(c, id), tok, "2030-01-01T00:00:00Z", expires_ms, NOW,
                      NOW);
}

/* The token a lookup returns, "" on a miss (into buf). */
static const char *get(struct tcache *c, const char *id, const char *scopes, int minutes,
                       int64_t now, char *buf, size_t cap)
{
    struct tcache_key k = {id, scopes, minutes};
    struct tcache_hit h = {0};
    int rc = tcache_get(c, &k, now, 0, &h);
    buf[0] = '\0';
    if (rc == 0) {
        snprintf(buf, cap, "%s", h.token);
        assert_int_equal(h.token_len, strlen(h.token));
        assert_string_equal(h.expires_on, "2030-01-01T00:00:00Z");
        tcache_hit_release(&h);
        assert_null(h.token);
    } else {
        assert_int_equal(rc, TV_ERR_NOT_FOUND);
    }
    return buf;
}

/* ---- exact keys ---- */

static void test_lookup_table(void **state)
{
    static const struct {
        const char *id, *scopes;
        int minutes;
        const char *want; /* "" = miss */
    } cases[] = {
        {"8:acs:a", "chat,voip", 60, "tok-a-cv-60"},
        {"8:acs:a", "chat", 60, "tok-a-c-60"},
        {"8:acs:a", "voip", 60, ""},                /* other scope set */
        {"8:acs:a", "chat,voip,voip.join", 60, ""}, /* a superset is another key */
        {"8:acs:a", "chat,voip", 120, ""},          /* longer lifetime than cached: never */
        {"8:acs:a", "chat,voip", 59, ""},           /* shorter: a separate key too */
        {"8:acs:b", "chat,voip", 60, ""},           /* other identity */
        {"8:acs:", "chat,voip", 60, ""},            /* prefix of the identity */
        {"8:acs:a", "chat,voi", 60, ""},            /* prefix of the scopes */
    };
    struct tcache *c = new_cache(100, 4);
    char buf[64];
    (void)state;

    assert_int_equal(put(c, "8:acs:a", "chat,voip", 60, "tok-a-cv-60", NOW + 60 * MIN_MS), 0);
    assert_int_equal(put(c, "8:acs:a", "chat", 60, "tok-a-c-60", NOW + 60 * MIN_MS), 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        print_message("case %zu: %s %s %d\n", i, cases[i].id, cases[i].scopes, cases[i].minutes);
        assert_string_equal(
            get(c, cases[i].id, cases[i].scopes, cases[i].minutes, NOW, buf, sizeof buf),
            cases[i].want);
    }
    /* Replacing a key keeps one entry with the newer token. */
    assert_int_equal(put(c, "8:acs:a", "chat", 60, "tok-a-c-60-v2", NOW + 60 * MIN_MS), 0);
    assert_string_equal(get(c, "8:acs:a", "chat", 60, NOW, buf, sizeof buf), "tok-a-c-60-v2");
    struct tcache_stats st;
    tcache_stats_get(c, &st);
    assert_int_equal(st.entries, 2);
    assert_int_equal(st.hits, 3);
    assert_int_equal(st.misses, 7);
    tcache_free(c);
}

static void test_scopes_key(void **state)
{
    static const struct {
        const char *in[4];
        size_t n;
        const char *want;
    } cases[] = {
        {{"voip", "chat"}, 2, "chat,voip"},
        {{"chat", "voip"}, 2, "chat,voip"},
        {{"voip.join", "chat.join", "chat"}, 3, "chat,chat.join,voip.join"},
        {{"chat"}, 1, "chat"},
        {{NULL}, 0, ""},
    };
    char out[TCACHE_SCOPES_MAX], tiny[6];
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(tcache_scopes_key(cases[i].in, cases[i].n, out, sizeof out), 0);
        assert_string_equal(out, cases[i].want);
    }
    const char *two[] = {"voip", "chat"};
    assert_int_equal(tcache_scopes_key(two, 2, tiny, sizeof tiny), TV_ERR_TOO_LARGE);
    assert_string_equal(tiny, "");
}

/* ---- the expiry threshold ---- */

static void test_expiry_boundary(void **state)
{
    static const struct {
        int64_t remaining_ms; /* life left at lookup */
        int hit;
    } cases[] = {
        {60 * MIN_MS, 1},
        {MIN_REMAINING + 1, 1},
        {MIN_REMAINING, 1}, /* exactly the minimum is still served */
        {MIN_REMAINING - 1, 0},
        {11 * MIN_MS, 0},
        {10 * MIN_MS, 0}, /* the SDK's refresh window: never */
        {0, 0},
        {-MIN_MS, 0},
    };
    char buf[64];
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tcache *c = new_cache(10, 1);
        const int64_t expires = NOW + 60 * MIN_MS;
        const int64_t at = expires - cases[i].remaining_ms;
        struct tcache_stats st;
        print_message("case %zu: %" PRId64 " ms left\n", i, cases[i].remaining_ms);
        assert_int_equal(put(c, "8:acs:x", "chat", 60, "tok-x", expires), 0);
        assert_string_equal(get(c, "8:acs:x", "chat", 60, at, buf, sizeof buf),
                            cases[i].hit ? "tok-x" : "");
        tcache_stats_get(c, &st);
        /* A token too close to expiry is wiped, not kept for later. */
        assert_int_equal(st.entries, cases[i].hit ? 1 : 0);
        assert_int_equal(st.stale, cases[i].hit ? 0 : 1);
        tcache_free(c);
    }
}

static void test_put_refuses_short_tokens(void **state)
{
    struct tcache *c = new_cache(10, 1);
    struct tcache_key k = {"8:acs:x", "chat", 60};
    char big[TCACHE_TOKEN_MAX + 2];
    (void)state;

    /* A token with less than the minimum left would never be served: not stored. */
    assert_int_equal(put(c, "8:acs:x", "chat", 60, "t", NOW + MIN_REMAINING - 1), TV_ERR_INVALID);
    assert_int_equal(put(c, "8:acs:x", "chat", 60, "t", NOW + MIN_REMAINING), 0);
    assert_int_equal(put(c, "8:acs:x", "chat", 60, "", NOW + 60 * MIN_MS), TV_ERR_INVALID);
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(
        tcache_put(c, &k, tcache_epoch(c, k.acs_id), big, "", NOW + 60 * MIN_MS, NOW, NOW),
        TV_ERR_INVALID);
    tcache_free(c);
}

static void test_new_refuses_sdk_window(void **state)
{
    static const struct {
        int64_t min_remaining_ms;
        int rc;
    } cases[] = {
        {10 * MIN_MS, TV_ERR_INVALID},
        {TCACHE_MIN_REMAINING_FLOOR_MS - 1, TV_ERR_INVALID},
        {TCACHE_MIN_REMAINING_FLOOR_MS, 0},
        {0, 0}, /* default: 30 minutes */
    };
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tcache_opts o = {.min_remaining_ms = cases[i].min_remaining_ms};
        struct tcache *c = NULL;
        assert_int_equal(tcache_new(&o, &c), cases[i].rc);
        tcache_free(c);
    }
}

/* ---- revocation ---- */

static void test_invalidate(void **state)
{
    struct tcache *c = new_cache(100, 4);
    char buf[64];
    (void)state;

    assert_int_equal(put(c, "8:acs:a", "chat", 60, "a1", NOW + 60 * MIN_MS), 0);
    assert_int_equal(put(c, "8:acs:a", "chat,voip", 90, "a2", NOW + 90 * MIN_MS), 0);
    assert_int_equal(put(c, "8:acs:b", "chat", 60, "b1", NOW + 60 * MIN_MS), 0);
    assert_int_equal(tcache_invalidate(c, "8:acs:a"), 2);
    assert_string_equal(get(c, "8:acs:a", "chat", 60, NOW, buf, sizeof buf), "");
    assert_string_equal(get(c, "8:acs:a", "chat,voip", 90, NOW, buf, sizeof buf), "");
    assert_string_equal(get(c, "8:acs:b", "chat", 60, NOW, buf, sizeof buf), "b1");
    assert_int_equal(tcache_invalidate(c, "8:acs:a"), 0);
    assert_int_equal(tcache_invalidate(c, "8:acs:never"), 0);
    tcache_free(c);
}

/* A missed notification (the store's watch): every entry goes, and every identity's epoch moves
 * on, so an issue in flight under the old epoch cannot put its token back. */
static void test_invalidate_all(void **state)
{
    struct tcache *c = new_cache(100, 4);
    struct tcache_key k = {"8:acs:b", "chat", 60};
    struct tcache_stats st;
    uint64_t in_flight;
    char buf[64];
    (void)state;

    assert_int_equal(put(c, "8:acs:a", "chat", 60, "a1", NOW + 60 * MIN_MS), 0);
    assert_int_equal(put(c, "8:acs:a", "voip", 60, "a2", NOW + 60 * MIN_MS), 0);
    in_flight = tcache_epoch(c, k.acs_id);
    assert_int_equal(tcache_invalidate_all(c), 2);
    assert_string_equal(get(c, "8:acs:a", "chat", 60, NOW, buf, sizeof buf), "");
    assert_string_equal(get(c, "8:acs:a", "voip", 60, NOW, buf, sizeof buf), "");
    assert_int_equal(
        tcache_put(c, &k, in_flight, "stale", "2030-01-01T00:00:00Z", NOW + 60 * MIN_MS, NOW, NOW),
        TV_ERR_CONFLICT);
    assert_int_equal(put(c, "8:acs:b", "chat", 60, "fresh", NOW + 60 * MIN_MS), 0);
    assert_string_equal(get(c, "8:acs:b", "chat", 60, NOW, buf, sizeof buf), "fresh");
    tcache_stats_get(c, &st);
    assert_int_equal(st.invalidated, 2);
    assert_int_equal(st.entries, 1);
    assert_int_equal(tcache_invalidate_all(c), 1);
    tcache_free(c);
}

static void test_epoch_race(void **state)
{
    struct tcache *c = new_cache(100, 4);
    struct tcache_key k = {"8:acs:a", "chat", 60};
    char buf[64];
    uint64_t before, after;
    (void)state;

    /* An issue starts (reads the epoch), a revoke answers, then the issue's token arrives. */
    before = tcache_epoch(c, k.acs_id);
    tcache_invalidate(c, k.acs_id);
    assert_int_equal(tcache_put(c, &k, before, "pre-revoke", "2030-01-01T00:00:00Z",
                                NOW + 60 * MIN_MS, NOW, NOW),
                     TV_ERR_CONFLICT);
    assert_string_equal(get(c, k.acs_id, k.scopes, k.minutes, NOW, buf, sizeof buf), "");
    /* An issue that started after the revoke is cached. */
    after = tcache_epoch(c, k.acs_id);
    assert_true(after != before);
    assert_int_equal(tcache_put(c, &k, after, "post-revoke", "2030-01-01T00:00:00Z",
                                NOW + 60 * MIN_MS, NOW, NOW),
                     0);
    assert_string_equal(get(c, k.acs_id, k.scopes, k.minutes, NOW, buf, sizeof buf), "post-revoke");
    /* Another identity's epoch did not move (unless it shares a counter, which it does not
     * here: different identities with different hashes in a 4-shard cache). */
    struct tcache_stats st;
    tcache_stats_get(c, &st);
    assert_int_equal(st.refused, 1);
    tcache_free(c);
}

static void test_revoked_since_issue(void **state)
{
    static const struct {
        int64_t issued_ms, revoked_ms;
        int hit;
    } cases[] = {
        {NOW, 0, 1},          /* never revoked */
        {NOW, NOW - 1, 1},    /* revoked before the issue started */
        {NOW, NOW, 0},        /* same millisecond: cannot tell, refuse */
        {NOW, NOW + 1000, 0}, /* revoked after (e.g. by the admin CLI) */
    };
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tcache *c = new_cache(10, 1);
        struct tcache_key k = {"8:acs:r", "chat", 60};
        struct tcache_hit h = {0};
        assert_int_equal(tcache_put(c, &k, tcache_epoch(c, k.acs_id), "tok", "", NOW + 60 * MIN_MS,
                                    cases[i].issued_ms, NOW),
                         0);
        assert_int_equal(tcache_get(c, &k, NOW, cases[i].revoked_ms, &h),
                         cases[i].hit ? 0 : TV_ERR_NOT_FOUND);
        tcache_hit_release(&h);
        tcache_free(c);
    }
}

/* ---- bounds ---- */

static void test_eviction_bound(void **state)
{
    static const struct {
        size_t max;
        unsigned shards;
        int puts;
    } cases[] = {
        {100, 4, 1000}, {100, 64, 1000},
        {7, 64, 50}, /* fewer entries than shards: shards shrink, the bound holds */
        {1, 0, 10},     {1000, 0, 300},
    };
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tcache *c = new_cache(cases[i].max, cases[i].shards);
        struct tcache_stats st;
        char id[32];
        for (int j = 0; j < cases[i].puts; j++) {
            snprintf(id, sizeof id, "8:acs:u%d", j);
            assert_int_equal(put(c, id, "chat", 60, "tok", NOW + 60 * MIN_MS), 0);
        }
        tcache_stats_get(c, &st);
        size_t want = (size_t)cases[i].puts < cases[i].max ? (size_t)cases[i].puts : cases[i].max;
        print_message("case %zu: max %zu -> %" PRIu64 " entries\n", i, cases[i].max, st.entries);
        assert_int_equal(st.entries, want);
        assert_int_equal(st.evictions, (uint64_t)cases[i].puts - want);
        tcache_free(c);
    }
}

static void test_lru_order(void **state)
{
    struct tcache *c = new_cache(3, 1);
    char buf[64];
    (void)state;

    assert_int_equal(put(c, "8:acs:a", "chat", 60, "a", NOW + 60 * MIN_MS), 0);
    assert_int_equal(put(c, "8:acs:b", "chat", 60, "b", NOW + 60 * MIN_MS), 0);
    assert_int_equal(put(c, "8:acs:c", "chat", 60, "c", NOW + 60 * MIN_MS), 0);
    assert_string_equal(get(c, "8:acs:a", "chat", 60, NOW, buf, sizeof buf), "a"); /* a is fresh */
    assert_int_equal(put(c, "8:acs:d", "chat", 60, "d", NOW + 60 * MIN_MS), 0);    /* evicts b */
    assert_string_equal(get(c, "8:acs:b", "chat", 60, NOW, buf, sizeof buf), "");
    assert_string_equal(get(c, "8:acs:a", "chat", 60, NOW, buf, sizeof buf), "a");
    assert_string_equal(get(c, "8:acs:c", "chat", 60, NOW, buf, sizeof buf), "c");
    assert_string_equal(get(c, "8:acs:d", "chat", 60, NOW, buf, sizeof buf), "d");
    tcache_free(c);
}

static void test_per_identity_bound(void **state)
{
    struct tcache *c = new_cache(1000, 1);
    struct tcache_stats st;
    char buf[64], tok[32];
    (void)state;

    /* One caller cycling through lifetimes cannot fill the cache or lengthen a chain. */
    for (int m = 60; m < 60 + 3 * TCACHE_PER_IDENTITY_MAX; m++) {
        snprintf(tok, sizeof tok, "t%d", m);
        assert_int_equal(put(c, "8:acs:greedy", "chat", m, tok, NOW + 60 * MIN_MS), 0);
    }
    assert_int_equal(put(c, "8:acs:other", "chat", 60, "o", NOW + 60 * MIN_MS), 0);
    tcache_stats_get(c, &st);
    assert_int_equal(st.entries, TCACHE_PER_IDENTITY_MAX + 1);
    /* The most recent ones stay. */
    snprintf(tok, sizeof tok, "t%d", 60 + 3 * TCACHE_PER_IDENTITY_MAX - 1);
    assert_string_equal(
        get(c, "8:acs:greedy", "chat", 60 + 3 * TCACHE_PER_IDENTITY_MAX - 1, NOW, buf, sizeof buf),
        tok);
    assert_string_equal(get(c, "8:acs:greedy", "chat", 60, NOW, buf, sizeof buf), "");
    assert_string_equal(get(c, "8:acs:other", "chat", 60, NOW, buf, sizeof buf), "o");
    tcache_free(c);
}

/* ---- threads ---- */

#define T_IDS 16
#define T_ITER 20000

struct tctx {
    struct tcache *c;
    int seed;
    atomic_int *bad;
    atomic_int *hits;
};

/* Tokens name their key and the epoch the writer read: "id|scopes|minutes|epoch". */
static void *worker(void *arg)
{
    struct tctx *t = arg;
    unsigned r = (unsigned)t->seed * 2654435761u + 1;
    char id[32], tok[96], want[64];
    static const char *const scopes[] = {"chat", "chat,voip"};

    for (int i = 0; i < T_ITER; i++) {
        r = r * 1103515245u + 12345u;
        int u = (int)((r >> 8) % T_IDS), s = (int)((r >> 16) % 2), m = 60 + (int)((r >> 20) % 3);
        snprintf(id, sizeof id, "8:acs:t%d", u);
        struct tcache_key k = {id, scopes[s], m};
        struct tcache_hit h = {0};
        switch ((r >> 24) % 8) {
        case 0:
        case 1: {
            uint64_t e = tcache_epoch(t->c, id);
            snprintf(tok, sizeof tok, "%s|%s|%d|%" PRIu64, id, scopes[s], m, e);
            int rc = tcache_put(t->c, &k, e, tok, "", NOW + 60 * MIN_MS, NOW, NOW);
            if (rc != 0 && rc != TV_ERR_CONFLICT)
                atomic_fetch_add(t->bad, 1);
            break;
        }
        case 2: {
            /* After the invalidate answered, nothing put before it may be served. Epoch
             * counters are shared by identities that hash alike and only grow, so a token put
             * before this invalidate carries an epoch <= the one read just before it. */
            uint64_t floor = tcache_epoch(t->c, id) + 1;
            tcache_invalidate(t->c, id);
            if (tcache_get(t->c, &k, NOW, 0, &h) == 0) {
                const char *last = strrchr(h.token, '|');
                if (last == NULL || strtoull(last + 1, NULL, 10) < floor)
                    atomic_fetch_add(t->bad, 1);
            }
            tcache_hit_release(&h);
            break;
        }
        default:
            if (tcache_get(t->c, &k, NOW, 0, &h) == 0) {
                atomic_fetch_add(t->hits, 1);
                snprintf(want, sizeof want, "%s|%s|%d|", id, scopes[s], m);
                if (strncmp(h.token, want, strlen(want)) != 0)
                    atomic_fetch_add(t->bad, 1);
            }
            tcache_hit_release(&h);
            break;
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    enum { NT = 8 };
    struct tcache *c = new_cache(32, 4); /* small: eviction runs all the time too */
    pthread_t th[NT];
    struct tctx ctx[NT];
    atomic_int bad = 0, hits = 0;
    struct tcache_stats st;
    (void)state;

    for (int i = 0; i < NT; i++) {
        ctx[i] = (struct tctx){c, i + 1, &bad, &hits};
        assert_int_equal(pthread_create(&th[i], NULL, worker, &ctx[i]), 0);
    }
    for (int i = 0; i < NT; i++)
        pthread_join(th[i], NULL);
    tcache_stats_get(c, &st);
    print_message("threads: %" PRIu64 " hits, %" PRIu64 " misses, %" PRIu64 " refused, %" PRIu64
                  " evictions, %" PRIu64 " entries\n",
                  st.hits, st.misses, st.refused, st.evictions, st.entries);
    assert_int_equal(atomic_load(&bad), 0);
    assert_true(atomic_load(&hits) > 0);
    assert_true(st.entries <= 32);
    tcache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup_table),
        cmocka_unit_test(test_scopes_key),
        cmocka_unit_test(test_expiry_boundary),
        cmocka_unit_test(test_put_refuses_short_tokens),
        cmocka_unit_test(test_new_refuses_sdk_window),
        cmocka_unit_test(test_invalidate),
        cmocka_unit_test(test_invalidate_all),
        cmocka_unit_test(test_epoch_race),
        cmocka_unit_test(test_revoked_since_issue),
        cmocka_unit_test(test_eviction_bound),
        cmocka_unit_test(test_lru_order),
        cmocka_unit_test(test_per_identity_bound),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
