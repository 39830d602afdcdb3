/* Unit tests of src/core/climit.c: SipHash-2-4 against the paper's vector and OpenSSL's own
 * SIPHASH MAC, and the caller-limit table at window edges, under clock jumps, with eviction
 * of idle keys, a table full of live keys, and from many threads at once. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "core/climit.h"
#include "core/err.h"
#include "core/ratelimit.h"

static struct ratelimit limit(const char *text)
{
    struct ratelimit rl;
    assert_int_equal(ratelimit_parse(text, &rl, NULL, 0), 0);
    return rl;
}

/* The SipHash paper's appendix A: key 00..0f, message 00..0e. */
static void test_siphash_paper_vector(void **state)
{
    uint8_t k[16], m[15];
    (void)state;
    for (int i = 0; i < 16; i++)
        k[i] = (uint8_t)i;
    for (int i = 0; i < 15; i++)
        m[i] = (uint8_t)i;
    assert_true(climit_siphash(k, m, sizeof m) == 0xa129ca6149be45e5ull);
}

/* OpenSSL's SIPHASH MAC (8-byte output, little-endian) agrees for every length 0..64. */
static void test_siphash_matches_openssl(void **state)
{
    uint8_t k[16], m[64], mac[8];
    EVP_MAC *alg = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
    (void)state;
    assert_non_null(alg);
    assert_int_equal(RAND_bytes(k, sizeof k), 1);
    assert_int_equal(RAND_bytes(m, sizeof m), 1);
    for (size_t n = 0; n <= sizeof m; n++) {
        EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(alg);
        size_t size = 8, outl = 0;
        OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size),
                               OSSL_PARAM_construct_end()};
        uint64_t want = 0;
        assert_int_equal(EVP_MAC_init(ctx, k, sizeof k, params), 1);
        assert_int_equal(EVP_MAC_update(ctx, m, n), 1);
        assert_int_equal(EVP_MAC_final(ctx, mac, &outl, sizeof mac), 1);
        assert_int_equal(outl, 8);
        for (int i = 0; i < 8; i++)
            want |= (uint64_t)mac[i] << (8 * i);
        assert_true(climit_siphash(k, m, n) == want);
        EVP_MAC_CTX_free(ctx);
    }
    EVP_MAC_free(alg);
}

static void test_new_bad(void **state)
{
    struct ratelimit off = limit("off"), on = limit("5/10s");
    struct climit *t = NULL;
    (void)state;
    assert_int_equal(climit_new(&off, 64, &t), TV_ERR_INVALID);
    assert_int_equal(climit_new(&on, CLIMIT_CAPACITY_MIN - 1, &t), TV_ERR_INVALID);
    assert_int_equal(climit_new(&on, (size_t)CLIMIT_CAPACITY_MAX + 1, &t), TV_ERR_INVALID);
    assert_int_equal(climit_new(NULL, 64, &t), TV_ERR_INVALID);
    assert_null(t);
    climit_free(NULL);
}

/* 5/10s: five at once, the sixth waits exactly one interval (2 s); another key is untouched;
 * at the edge of the wait (1 ms before) still refused, at it admitted. */
static void test_burst_and_edges(void **state)
{
    struct ratelimit rl = limit("5/10s");
    struct climit *t = NULL;
    struct climit_stats st;
    int64_t wait = 0, now = 1000000;
    (void)state;
    assert_int_equal(climit_new(&rl, 1024, &t), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(climit_take(t, "user:a", 6, now, &wait), 1);
    assert_int_equal(climit_take(t, "user:a", 6, now, &wait), 0);
    assert_int_equal(wait, 2000);
    assert_int_equal(climit_take(t, "user:b", 6, now, &wait), 1);
    assert_int_equal(climit_take(t, "user:a", 6, now + 1999, &wait), 0);
    assert_int_equal(wait, 1);
    assert_int_equal(climit_take(t, "user:a", 6, now + 2000, &wait), 1);
    assert_int_equal(climit_take(t, "user:a", 6, now + 2000, &wait), 0);
    /* A full window later the whole burst is back. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(climit_take(t, "user:a", 6, now + 12000, &wait), 1);
    climit_stats(t, &st);
    assert_int_equal(st.admitted, 12);
    assert_int_equal(st.refused, 3);
    assert_int_equal(st.evicted_live, 0);
    assert_int_equal(st.capacity, 1024);
    /* Keys are bytes, not strings: a NUL inside and a prefix are other keys. */
    assert_int_equal(climit_take(t, "user:a\0x", 8, now + 12000, &wait), 1);
    assert_int_equal(climit_take(t, "user:", 5, now + 12000, &wait), 1);
    climit_free(t);
}

/* The clock going back (or a now far from the last) never locks a key longer than one window
 * after it, and never lets more than a burst through; now < 0 counts as 0; a huge now does
 * not overflow. */
static void test_clock_jumps(void **state)
{
    struct ratelimit rl = limit("2/60s");
    struct climit *t = NULL;
    int64_t wait = 0, now = 10LL * 24 * 3600 * 1000;
    (void)state;
    assert_int_equal(climit_new(&rl, 64, &t), 0);
    assert_int_equal(climit_take(t, "k", 1, now, &wait), 1);
    assert_int_equal(climit_take(t, "k", 1, now, &wait), 1);
    assert_int_equal(climit_take(t, "k", 1, now, &wait), 0);
    /* One day back: still limited, but for at most the window. */
    assert_int_equal(climit_take(t, "k", 1, now - 86400000, &wait), 0);
    assert_true(wait >= 1 && wait <= 60000);
    assert_int_equal(climit_take(t, "k", 1, now - 86400000 + wait, &wait), 1);
    /* Forward a year: a full bucket, exactly a burst. */
    assert_int_equal(climit_take(t, "k", 1, now + 31536000000LL, &wait), 1);
    assert_int_equal(climit_take(t, "k", 1, now + 31536000000LL, &wait), 1);
    assert_int_equal(climit_take(t, "k", 1, now + 31536000000LL, &wait), 0);
    /* Extremes. */
    assert_int_equal(climit_take(t, "n", 1, -5, &wait), 1);
    now = INT64_MAX - 1000000;
    assert_int_equal(climit_take(t, "m", 1, now, &wait), 1);
    assert_int_equal(climit_take(t, "m", 1, now, &wait), 1);
    assert_int_equal(climit_take(t, "m", 1, now, &wait), 0);
    assert_int_equal(wait, 30000);
    /* At the very end of time the sums saturate (no overflow; UBSan watches under make asan). */
    (void)climit_take(t, "m", 1, INT64_MAX, &wait);
    (void)climit_take(t, "m", 1, INT64_MAX, &wait);
    climit_free(t);
}

/* A table of 64 slots serving 10,000 keys one after another: each key once, so every entry
 * is idle again a window later and is reused without any live eviction. */
static void test_idle_entries_reused(void **state)
{
    struct ratelimit rl = limit("1/1s");
    struct climit *t = NULL;
    struct climit_stats st;
    char key[32];
    (void)state;
    assert_int_equal(climit_new(&rl, 64, &t), 0);
    for (int i = 0; i < 10000; i++) {
        int n = snprintf(key, sizeof key, "user:%d", i);
        /* Each key 1 s after the previous one: the older entries are all full buckets. */
        assert_int_equal(climit_take(t, key, (size_t)n, 1000LL * i, NULL), 1);
    }
    climit_stats(t, &st);
    assert_int_equal(st.evicted_live, 0);
    assert_int_equal(st.admitted, 10000);
    climit_free(t);
}

/* A table full of live keys: a new caller is still admitted (never refused for others'
 * sake), the memory does not grow (a fixed array), and the evicted keys are the ones closest
 * to a full bucket, counted. A key limited now and evicted can only come back with a fresh
 * bucket, which is the documented price. */
static void test_full_of_live_keys(void **state)
{
    struct ratelimit rl = limit("1/3600s");
    struct climit *t = NULL;
    struct climit_stats st;
    char key[32];
    int64_t wait = 0;
    (void)state;
    assert_int_equal(climit_new(&rl, 8, &t), 0); /* one set of 8 slots */
    for (int i = 0; i < 8; i++) {
        int n = snprintf(key, sizeof key, "live:%d", i);
        assert_int_equal(climit_take(t, key, (size_t)n, 1000 + i, NULL), 1);
    }
    climit_stats(t, &st);
    assert_int_equal(st.evicted_live, 0);
    /* All eight are limited for an hour; a ninth key still gets in. */
    assert_int_equal(climit_take(t, "newcomer", 8, 2000, &wait), 1);
    climit_stats(t, &st);
    assert_int_equal(st.evicted_live, 1);
    /* The one evicted was live:0, the oldest debt (closest to a full bucket): it starts again
     * with a full bucket, while live:7 is still limited. */
    assert_int_equal(climit_take(t, "live:7", 6, 2000, &wait), 0);
    assert_int_equal(climit_take(t, "newcomer", 8, 2000, &wait), 0);
    assert_int_equal(climit_take(t, "live:0", 6, 2000, &wait), 1);
    climit_free(t);
}

struct hammer {
    struct climit *t;
    int id;
    int admitted;
};

static void *hammer_main(void *arg)
{
    struct hammer *h = arg;
    char key[32];
    for (int round = 0; round < 200; round++) {
        for (int k = 0; k < 50; k++) {
            int n = snprintf(key, sizeof key, "shared:%d", k);
            h->admitted += climit_take(h->t, key, (size_t)n, 5000, NULL);
        }
    }
    return NULL;
}

/* Four threads on fifty shared keys at one instant: exactly the burst per key gets through in
 * total (the stripes' locks make each take atomic). */
static void test_threads_exact(void **state)
{
    struct ratelimit rl = limit("10/60s");
    struct climit *t = NULL;
    struct hammer h[4];
    pthread_t th[4];
    int total = 0;
    (void)state;
    assert_int_equal(climit_new(&rl, 4096, &t), 0);
    for (int i = 0; i < 4; i++) {
        h[i] = (struct hammer){.t = t, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, hammer_main, &h[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += h[i].admitted;
    }
    assert_int_equal(total, 50 * 10);
    climit_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_siphash_paper_vector),
        cmocka_unit_test(test_siphash_matches_openssl),
        cmocka_unit_test(test_new_bad),
        cmocka_unit_test(test_burst_and_edges),
        cmocka_unit_test(test_clock_jumps),
        cmocka_unit_test(test_idle_entries_reused),
        cmocka_unit_test(test_full_of_live_keys),
        cmocka_unit_test(test_threads_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
