/* Verified-token cache: hits return the stored claims, other tokens miss, exp and nbf end a hit
 * at exactly the second the verifier would refuse the token, the TTL, the size bound and LRU
 * order, JWKS generations and session entries, and consistency under threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "auth/jwks.h"
#include "auth/jwt.h"
#include "auth/vcache.h"
#include "core/err.h"

#define T0 1700000000LL
#define ISS "https://issuer.example"
#define AUD "tokenvend-test"

static struct vcache *new_cache(size_t max)
{
    struct vcache *c = NULL;
    assert_int_equal(vcache_new(max, 0, &c), 0);
    return c;
}

static void key_of(const char *token, uint8_t key[VCACHE_KEY_LEN])
{
    vcache_key(token, strlen(token), key);
}

static struct vcache_verdict oidc(uint64_t gen, int64_t exp, int64_t nbf)
{
    struct vcache_verdict v = {.source = VCACHE_SRC_OIDC,
                               .generation = gen,
                               .exp = exp,
                               .nbf = nbf,
                               .leeway_s = JWT_DEFAULT_LEEWAY_S};
    return v;
}

static struct vcache_claims claims(const char *user, const char *oid)
{
    struct vcache_claims c;
    memset(&c, 0, sizeof c);
    snprintf(c.user, sizeof c.user, "%s", user);
    snprintf(c.oid, sizeof c.oid, "%s", oid);
    return c;
}

static void test_hit_and_miss(void **state)
{
    struct vcache *c = new_cache(100);
    struct vcache_claims in = claims("alice", "0000-aaaa"), out;
    struct vcache_verdict v = oidc(1, T0 + 3600, 0);
    uint8_t k1[VCACHE_KEY_LEN], k2[VCACHE_KEY_LEN];

    (void)state;
    key_of("header.payload.signature", k1);
    key_of("header.payload.signaturf", k2);
    assert_int_equal(vcache_lookup(c, k1, T0, 1, 0, &out), TV_ERR_NOT_FOUND);
    assert_int_equal(vcache_insert(c, k1, T0, &v, &in), 0);
    memset(&out, 0x55, sizeof out);
    assert_int_equal(vcache_lookup(c, k1, T0 + 1, 1, 0, &out), 0);
    assert_string_equal(out.user, "alice");
    assert_string_equal(out.oid, "0000-aaaa");
    /* One different byte is a different token. */
    assert_int_equal(vcache_lookup(c, k2, T0 + 1, 1, 0, &out), TV_ERR_NOT_FOUND);
    /* Re-inserting the same token replaces the entry rather than adding one. */
    in = claims("alice", "");
    assert_int_equal(vcache_insert(c, k1, T0 + 2, &v, &in), 0);
    assert_int_equal(vcache_count(c), 1);
    assert_int_equal(vcache_lookup(c, k1, T0 + 3, 1, 0, &out), 0);
    assert_string_equal(out.oid, "");
    /* Nothing usable is refused. */
    in = claims("", "");
    assert_int_equal(vcache_insert(c, k2, T0, &v, &in), TV_ERR_INVALID);
    assert_int_equal(vcache_new(0, 0, &(struct vcache *){NULL}), TV_ERR_INVALID);
    vcache_free(c);
    vcache_free(NULL);
}

/* What the real verifier says about a payload with this exp/nbf at now (default leeway). */
static int verifier_accepts(int64_t exp, int64_t nbf, int64_t now)
{
    char payload[256];
    struct jwt_claims jc;
    struct jwt_expect e = {.issuer = ISS, .audience = AUD, .now_s = now};
    int rc;

    if (nbf != 0)
        snprintf(payload, sizeof payload,
                 "{\"iss\":\"" ISS "\",\"aud\":\"" AUD
                 "\",\"sub\":\"u\",\"exp\":%lld,\"nbf\":%lld}",
                 (long long)exp, (long long)nbf);
    else
        snprintf(payload, sizeof payload,
                 "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"u\",\"exp\":%lld}",
                 (long long)exp);
    memset(&jc, 0, sizeof jc);
    rc = jwt_claims_check(payload, strlen(payload), &e, &jc);
    jwt_claims_release(&jc);
    return rc == 0;
}

static void test_exp_boundary_matches_verifier(void **state)
{
    struct vcache *c = new_cache(100);
    struct vcache_claims in = claims("bob", ""), out;
    int64_t exp = T0 + 100;
    struct vcache_verdict v = oidc(1, exp, 0);
    uint8_t k[VCACHE_KEY_LEN];

    (void)state;
    key_of("tok-exp", k);
    assert_int_equal(vcache_insert(c, k, T0, &v, &in), 0);
    /* Every second around the boundary: the cache and the verifier agree. */
    for (int64_t now = exp + JWT_DEFAULT_LEEWAY_S - 3; now <= exp + JWT_DEFAULT_LEEWAY_S + 1;
         now++) {
        int hit = vcache_lookup(c, k, now, 1, 0, &out) == 0;
        assert_int_equal(hit, verifier_accepts(exp, 0, now));
        if (!hit)
            break; /* a refused entry is dropped: the next request verifies afresh */
    }
    assert_true(verifier_accepts(exp, 0, exp + JWT_DEFAULT_LEEWAY_S - 1));
    assert_false(verifier_accepts(exp, 0, exp + JWT_DEFAULT_LEEWAY_S));
    assert_int_equal(vcache_count(c), 0);
    vcache_free(c);
}

static void test_nbf_boundary_matches_verifier(void **state)
{
    struct vcache *c = new_cache(100);
    struct vcache_claims in = claims("carol", ""), out;
    int64_t nbf = T0 + 500;
    struct vcache_verdict v = oidc(1, T0 + 3600, nbf);
    uint8_t k[VCACHE_KEY_LEN];

    (void)state;
    key_of("tok-nbf", k);
    /* As if verified at nbf - leeway (the first accepted second), then the clock went back. */
    assert_int_equal(vcache_insert(c, k, nbf - JWT_DEFAULT_LEEWAY_S, &v, &in), 0);
    assert_int_equal(vcache_lookup(c, k, nbf - JWT_DEFAULT_LEEWAY_S, 1, 0, &out), 0);
    assert_true(verifier_accepts(T0 + 3600, nbf, nbf - JWT_DEFAULT_LEEWAY_S));
    assert_false(verifier_accepts(T0 + 3600, nbf, nbf - JWT_DEFAULT_LEEWAY_S - 1));
    assert_int_equal(vcache_lookup(c, k, nbf - JWT_DEFAULT_LEEWAY_S - 1, 1, 0, &out),
                     TV_ERR_NOT_FOUND);
    vcache_free(c);
}

static void test_ttl(void **state)
{
    struct vcache *c = new_cache(100);
    struct vcache_claims in = claims("dave", ""), out;
    struct vcache_verdict v = oidc(1, T0 + 86400, 0);
    uint8_t k[VCACHE_KEY_LEN];

    (void)state;
    key_of("tok-ttl", k);
    assert_int_equal(vcache_insert(c, k, T0, &v, &in), 0);
    assert_int_equal(vcache_lookup(c, k, T0 + VCACHE_TTL_S - 1, 1, 0, &out), 0);
    assert_int_equal(vcache_lookup(c, k, T0 + VCACHE_TTL_S, 1, 0, &out), TV_ERR_NOT_FOUND);
    assert_int_equal(vcache_count(c), 0);
    vcache_free(c);
}

static void test_eviction_bound_and_lru(void **state)
{
    struct vcache *c = new_cache(64);
    struct vcache_claims in = claims("user", ""), out;
    struct vcache_verdict v = oidc(1, T0 + 3600, 0);
    uint8_t first[VCACHE_KEY_LEN], k[VCACHE_KEY_LEN];
    char tok[32];
    int kept = 0;

    (void)state;
    key_of("tok-0", first);
    assert_int_equal(vcache_insert(c, first, T0, &v, &in), 0);
    for (int i = 1; i < 2000; i++) {
        snprintf(tok, sizeof tok, "tok-%d", i);
        key_of(tok, k);
        assert_int_equal(vcache_insert(c, k, T0, &v, &in), 0);
        assert_true(vcache_count(c) <= 64);
        /* Touching the first entry keeps it the most recently used of its shard. */
        assert_int_equal(vcache_lookup(c, first, T0, 1, 0, &out), 0);
    }
    assert_true(vcache_count(c) >= 32); /* the shards fill up: the bound is used, not wasted */
    for (int i = 1990; i < 2000; i++) {
        snprintf(tok, sizeof tok, "tok-%d", i);
        key_of(tok, k);
        kept += vcache_lookup(c, k, T0, 1, 0, &out) == 0;
    }
    assert_true(kept >= 1); /* the newest entries survive; the oldest went */
    key_of("tok-1", k);
    assert_int_equal(vcache_lookup(c, k, T0, 1, 0, &out), TV_ERR_NOT_FOUND);
    vcache_free(c);
}

static void test_generation_and_session(void **state)
{
    struct vcache *c = new_cache(100);
    struct vcache_claims in = claims("erin", "oid-1"), out;
    struct vcache_verdict v = oidc(5, T0 + 3600, 0), sv = v;
    uint8_t k[VCACHE_KEY_LEN], ks[VCACHE_KEY_LEN];

    (void)state;
    key_of("tok-gen", k);
    assert_int_equal(vcache_insert(c, k, T0, &v, &in), 0);
    assert_int_equal(vcache_lookup(c, k, T0, 5, 0, &out), 0);
    /* A new key set: the entry is no longer trusted, and is dropped. */
    assert_int_equal(vcache_lookup(c, k, T0, 6, 0, &out), TV_ERR_NOT_FOUND);
    assert_int_equal(vcache_lookup(c, k, T0, 5, 0, &out), TV_ERR_NOT_FOUND);

    /* Session entries ignore the JWKS generation but need the session key to be there. */
    sv.source = VCACHE_SRC_SESSION;
    sv.generation = 0;
    key_of("tok-session", ks);
    assert_int_equal(vcache_insert(c, ks, T0, &sv, &in), 0);
    assert_int_equal(vcache_lookup(c, ks, T0, 42, 1, &out), 0);
    assert_int_equal(vcache_lookup(c, ks, T0, 42, 0, &out), TV_ERR_NOT_FOUND);
    vcache_free(c);
}

static void test_jwks_generation_bumps(void **state)
{
    const char *jwk = "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"k1\","
                      "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
                      "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}";
    struct jwks_opts o = {0};
    struct jwks *s = NULL;
    uint64_t g0, g1;

    (void)state;
    assert_int_equal(jwks_new(&o, &s), 0);
    g0 = jwks_generation(s);
    assert_int_equal(jwks_load_json(s, jwk, strlen(jwk)), 0);
    g1 = jwks_generation(s);
    assert_true(g1 != g0);
    /* A document without usable keys installs nothing and keeps the generation. */
    assert_int_not_equal(jwks_load_json(s, "{\"keys\":[]}", 11), 0);
    assert_true(jwks_generation(s) == g1);
    assert_int_equal(jwks_load_json(s, jwk, strlen(jwk)), 0);
    assert_true(jwks_generation(s) != g1);
    jwks_free(s);
}

#define THREADS 4
#define THREAD_KEYS 300
#define THREAD_ROUNDS 20

static struct vcache *shared;
static int thread_failures;
static pthread_mutex_t fail_mu = PTHREAD_MUTEX_INITIALIZER;

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg, bad = 0;
    struct vcache_verdict v = oidc(1, T0 + 3600, 0);

    for (int r = 0; r < THREAD_ROUNDS; r++) {
        for (int i = 0; i < THREAD_KEYS; i++) {
            char tok[32], user[32];
            uint8_t k[VCACHE_KEY_LEN];
            struct vcache_claims in, out;
            /* Threads share half the tokens, so they race on the same entries too. */
            int n = (i % 2) ? i : i + 1000 * id;

            snprintf(tok, sizeof tok, "tok-%d", n);
            snprintf(user, sizeof user, "user-%d", n);
            key_of(tok, k);
            if (vcache_lookup(shared, k, T0, 1, 0, &out) == 0) {
                if (strcmp(out.user, user) != 0)
                    bad++; /* a hit must never return another token's claims */
            } else {
                in = claims(user, "");
                if (vcache_insert(shared, k, T0, &v, &in) != 0)
                    bad++;
            }
        }
    }
    pthread_mutex_lock(&fail_mu);
    thread_failures += bad;
    pthread_mutex_unlock(&fail_mu);
    return NULL;
}

static void test_threads(void **state)
{
    pthread_t th[THREADS];

    (void)state;
    shared = new_cache(256);
    thread_failures = 0;
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(thread_failures, 0);
    assert_true(vcache_count(shared) <= 256);
    vcache_free(shared);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_and_miss),
        cmocka_unit_test(test_exp_boundary_matches_verifier),
        cmocka_unit_test(test_nbf_boundary_matches_verifier),
        cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_eviction_bound_and_lru),
        cmocka_unit_test(test_generation_and_session),
        cmocka_unit_test(test_jwks_generation_bumps),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
