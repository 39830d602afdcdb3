/* Unit tests for Argon2id password hashing: round trips, wrong passwords, length limits, binary
 * passwords, salting, malformed or foreign encoded strings, the parameter parser, and that no
 * password reaches the log. Most cases run with light parameters (t=1, m=1 MiB); one checks the
 * production default. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <argon2.h>
#include <cmocka.h>

#include "auth/password.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"

#define CANARY "pw-canary-7f3a9c"

static int light_params(void **state)
{
    struct password_params p = {1, 1024, 1};
    (void)state;
    assert_int_equal(password_params_set(&p), 0);
    return 0;
}

static void test_round_trip(void **state)
{
    char enc[PASSWORD_HASH_MAX];
    (void)state;

    assert_int_equal(password_hash(CANARY, strlen(CANARY), enc, sizeof enc), 0);
    assert_true(strncmp(enc, "$argon2id$v=19$m=1024,t=1,p=1$", 30) == 0);
    assert_null(strstr(enc, CANARY));
    assert_int_equal(password_verify(enc, CANARY, strlen(CANARY)), 0);
    assert_int_equal(password_verify(enc, CANARY "x", strlen(CANARY) + 1), TV_ERR_UNAUTHORIZED);
    assert_int_equal(password_verify(enc, CANARY, strlen(CANARY) - 1), TV_ERR_UNAUTHORIZED);
    assert_int_equal(password_verify(enc, "PW-CANARY-7F3A9C", 16), TV_ERR_UNAUTHORIZED);
}

static void test_salted(void **state)
{
    char a[PASSWORD_HASH_MAX], b[PASSWORD_HASH_MAX];
    (void)state;

    assert_int_equal(password_hash("same", 4, a, sizeof a), 0);
    assert_int_equal(password_hash("same", 4, b, sizeof b), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(password_verify(a, "same", 4), 0);
    assert_int_equal(password_verify(b, "same", 4), 0);
}

static void test_lengths(void **state)
{
    static char big[PASSWORD_MAX_LEN + 1];
    char enc[PASSWORD_HASH_MAX];
    char untouched[PASSWORD_HASH_MAX];
    (void)state;

    memset(big, 'a', sizeof big);
    memset(enc, 'Z', sizeof enc);
    memcpy(untouched, enc, sizeof enc);
    assert_int_equal(password_hash("", 0, enc, sizeof enc), TV_ERR_INVALID);
    assert_int_equal(password_hash(big, sizeof big, enc, sizeof enc), TV_ERR_INVALID);
    assert_int_equal(password_hash(NULL, 3, enc, sizeof enc), TV_ERR_INVALID);
    assert_memory_equal(enc, untouched, sizeof enc);
    /* Too small an output buffer. */
    assert_int_equal(password_hash("abc", 3, enc, 20), TV_ERR_TOO_LARGE);
    assert_memory_equal(enc, untouched, sizeof enc);

    assert_int_equal(password_hash(big, PASSWORD_MAX_LEN, enc, sizeof enc), 0);
    assert_int_equal(password_verify(enc, big, PASSWORD_MAX_LEN), 0);
    assert_int_equal(password_verify(enc, big, PASSWORD_MAX_LEN + 1), TV_ERR_UNAUTHORIZED);
    assert_int_equal(password_verify(enc, big, 0), TV_ERR_UNAUTHORIZED);
    assert_int_equal(password_hash("x", 1, enc, sizeof enc), 0);
    assert_int_equal(password_verify(enc, "x", 1), 0);
}

/* Passwords are bytes: an embedded NUL or non-UTF-8 byte is part of the password. */
static void test_binary(void **state)
{
    static const char pw[] = {'a', '\0', 'b', (char)0xff};
    char enc[PASSWORD_HASH_MAX];
    (void)state;

    assert_int_equal(password_hash(pw, sizeof pw, enc, sizeof enc), 0);
    assert_int_equal(password_verify(enc, pw, sizeof pw), 0);
    assert_int_equal(password_verify(enc, pw, 1), TV_ERR_UNAUTHORIZED);
}

static void test_bad_encoded(void **state)
{
    char enc[PASSWORD_HASH_MAX];
    char other[PASSWORD_HASH_MAX];
    static const uint8_t salt[16] = {1, 2, 3};
    (void)state;

    assert_int_equal(password_hash("pw", 2, enc, sizeof enc), 0);
    static const char *bad[] = {
        "",
        "plain",
        "$argon2id$",
        "$argon2id$v=19$m=1024,t=1,p=1$",
        "$2b$10$abcdefghijklmnopqrstuv",
        "$argon2id$v=19$m=1024,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(password_verify(bad[i], "pw", 2), TV_ERR_UNAUTHORIZED);
    assert_int_equal(password_verify(NULL, "pw", 2), TV_ERR_UNAUTHORIZED);
    assert_int_equal(password_verify(enc, NULL, 2), TV_ERR_UNAUTHORIZED);

    /* Truncated tag. */
    memcpy(other, enc, sizeof other);
    other[strlen(other) - 3] = '\0';
    assert_int_equal(password_verify(other, "pw", 2), TV_ERR_UNAUTHORIZED);
    /* A flipped tag character. */
    memcpy(other, enc, sizeof other);
    size_t last = strlen(other) - 1;
    other[last] = other[last] == 'A' ? 'B' : 'A';
    assert_int_equal(password_verify(other, "pw", 2), TV_ERR_UNAUTHORIZED);
    /* A valid Argon2i (not id) hash of the right password is not accepted. */
    assert_int_equal(
        argon2i_hash_encoded(1, 1024, 1, "pw", 2, salt, sizeof salt, 32, other, sizeof other),
        ARGON2_OK);
    assert_int_equal(password_verify(other, "pw", 2), TV_ERR_UNAUTHORIZED);
}

static void test_dummy(void **state)
{
    (void)state;
    assert_int_equal(password_verify_dummy("pw", 2), TV_ERR_UNAUTHORIZED);
    assert_int_equal(password_verify_dummy(NULL, 0), TV_ERR_UNAUTHORIZED);
}

struct params_case {
    const char *in;
    int rc;
    uint32_t t, m, p; /* expected when rc == 0, starting from {3, 32768, 1} */
};

static void test_params_parse(void **state)
{
    static const struct params_case cases[] = {
        {"t=1,m=1024,p=1", 0, 1, 1024, 1},
        {"t=2", 0, 2, 32768, 1},
        {"m=65536", 0, 3, 65536, 1},
        {"p=2,t=4", 0, 4, 32768, 2},
        {"", TV_ERR_INVALID, 0, 0, 0},
        {"t=0", TV_ERR_INVALID, 0, 0, 0},
        {"t=11", TV_ERR_INVALID, 0, 0, 0},
        {"m=7", TV_ERR_INVALID, 0, 0, 0},
        {"m=2000000", TV_ERR_INVALID, 0, 0, 0},
        {"p=9", TV_ERR_INVALID, 0, 0, 0},
        {"t=1,", TV_ERR_INVALID, 0, 0, 0},
        {"t=1, m=1024", TV_ERR_INVALID, 0, 0, 0},
        {"x=1", TV_ERR_INVALID, 0, 0, 0},
        {"t=", TV_ERR_INVALID, 0, 0, 0},
        {"t=99999999999", TV_ERR_INVALID, 0, 0, 0},
        {"t=1x", TV_ERR_INVALID, 0, 0, 0},
    };
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct password_params p;
        password_params_default(&p);
        struct password_params before = p;
        int rc = password_params_parse(cases[i].in, &p);
        if (rc != cases[i].rc)
            fail_msg("case %zu '%s': rc %d, want %d", i, cases[i].in, rc, cases[i].rc);
        if (rc == 0) {
            assert_int_equal(p.t_cost, cases[i].t);
            assert_int_equal(p.m_cost_kib, cases[i].m);
            assert_int_equal(p.parallelism, cases[i].p);
        } else {
            assert_memory_equal(&p, &before, sizeof p);
        }
    }
}

/* The production parameters; one hash costs about a tenth of a second. */
static void test_default_params(void **state)
{
    struct password_params def, saved;
    char enc[PASSWORD_HASH_MAX];
    (void)state;

    password_params_get(&saved);
    password_params_default(&def);
    assert_int_equal(def.t_cost, 3);
    assert_int_equal(def.m_cost_kib, 32768);
    assert_int_equal(def.parallelism, 1);
    assert_int_equal(password_params_set(&def), 0);
    assert_int_equal(password_hash(CANARY, strlen(CANARY), enc, sizeof enc), 0);
    assert_true(strncmp(enc, "$argon2id$v=19$m=32768,t=3,p=1$", 31) == 0);
    /* A hash keeps its own parameters: it still verifies after they change. */
    assert_int_equal(password_params_set(&saved), 0);
    assert_int_equal(password_verify(enc, CANARY, strlen(CANARY)), 0);
}

static void test_log_has_no_password(void **state)
{
    char path[] = "/tmp/test_password_log_XXXXXX";
    char enc[PASSWORD_HASH_MAX];
    char buf[8192];
    int fd = mkstemp(path);
    (void)state;

    assert_true(fd >= 0);
    log_setup(LOGL_DEBUG, fd);
    assert_int_equal(password_hash(CANARY, strlen(CANARY), enc, sizeof enc), 0);
    (void)password_verify(enc, CANARY "!", strlen(CANARY) + 1);
    (void)password_verify("$argon2id$v=19$m=1024,t=1,p=1$broken", CANARY, strlen(CANARY));
    (void)password_verify_dummy(CANARY, strlen(CANARY));
    log_setup(LOGL_OFF, 2);
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    assert_true(n >= 0);
    buf[n] = '\0';
    assert_null(strstr(buf, CANARY));
    close(fd);
    unlink(path);
}

/* A hash made under other parameters needs a rehash; one made under the current ones does
 * not; garbage always does. */
static void test_needs_rehash(void **state)
{
    struct password_params cur, cheap = {1, 64, 1};
    char h_cur[PASSWORD_HASH_MAX], h_cheap[PASSWORD_HASH_MAX];

    (void)state;
    password_params_get(&cur);
    assert_int_equal(password_hash("correct horse", 13, h_cur, sizeof h_cur), 0);
    assert_int_equal(password_needs_rehash(h_cur), 0);
    assert_int_equal(password_params_set(&cheap), 0);
    assert_int_equal(password_hash("correct horse", 13, h_cheap, sizeof h_cheap), 0);
    assert_int_equal(password_needs_rehash(h_cheap), 0);
    assert_int_equal(password_needs_rehash(h_cur), cur.m_cost_kib != 64 || cur.t_cost != 1);
    assert_int_equal(password_params_set(&cur), 0);
    assert_int_equal(password_needs_rehash(h_cheap), 1);
    assert_int_equal(password_needs_rehash("$argon2id$v=16$m=64,t=1,p=1$c2FsdA$aGFzaA"), 1);
    assert_int_equal(password_needs_rehash("$argon2i$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA"), 1);
    assert_int_equal(password_needs_rehash("plain"), 1);
    assert_int_equal(password_needs_rehash(NULL), 1);
    /* The dummy follows the parameters too, and never matches. */
    assert_int_equal(password_dummy_prepare(), 0);
    assert_int_equal(password_verify_dummy("correct horse", 13), TV_ERR_UNAUTHORIZED);
}

/* A failure against a hash of other parameters (cheaper, costlier, another version, not
 * parsable) is padded to the current cost; a failure against a current hash is not. */
static void test_pad_failure(void **state)
{
    static const struct {
        const char *hash;
        int padded;
    } cases[] = {
        {NULL, 0}, /* filled below with a current hash */
        {"$argon2id$v=19$m=512,t=3,p=1$c2FsdHNhbHQ$aGFzaA", 1}, /* costlier */
        {"$argon2id$v=16$m=256,t=2,p=1$c2FsdHNhbHQ$aGFzaA", 1}, /* older version */
        {"$argon2id$v=19$m=64,t=2,p=1$c2FsdHNhbHQ$aGFzaA", 1},  /* less memory */
        {"$argon2id$v=19$m=256,t=2,p=2$c2FsdHNhbHQ$aGFzaA", 1}, /* more lanes */
        {"$argon2i$v=19$m=256,t=2,p=1$c2FsdHNhbHQ$aGFzaA", 1},  /* not ours */
        {"plain", 1},
    };
    struct password_params saved, cur = {2, 256, 1};
    char current_hash[PASSWORD_HASH_MAX];

    (void)state;
    password_params_get(&saved);
    assert_int_equal(password_params_set(&cur), 0);
    assert_int_equal(password_hash("correct horse", 13, current_hash, sizeof current_hash), 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *h = cases[i].hash != NULL ? cases[i].hash : current_hash;
        unsigned long long before = password_pad_count();
        int64_t t0 = clock_mono_ms();

        assert_int_equal(password_verify(h, "wrong horse!", 12), TV_ERR_UNAUTHORIZED);
        password_pad_failure(h, t0);
        if (password_pad_count() != before + (unsigned long long)cases[i].padded)
            fail_msg("case %zu (%s): want padded=%d", i, h, cases[i].padded);
    }
    assert_int_equal(password_params_set(&saved), 0);
}

/* Every dummy verification is counted, whatever the password. */
static void test_dummy_counted(void **state)
{
    unsigned long long before = password_dummy_count();

    (void)state;
    assert_int_equal(password_verify_dummy("pw", 2), TV_ERR_UNAUTHORIZED);
    assert_int_equal(password_verify_dummy("another one", 11), TV_ERR_UNAUTHORIZED);
    assert_true(password_dummy_count() == before + 2);
}

static void test_length_chars(void **state)
{
    static const struct {
        const char *s;
        size_t chars;
    } cases[] = {
        {"", 0},
        {"abcdefghijkl", 12},
        {"\xc3\xa9t\xc3\xa9", 3},        /* été */
        {"\xe6\x97\xa5\xe6\x9c\xac", 2}, /* 日本 */
        {"\xf0\x9f\x94\x91", 1},         /* U+1F511 */
        {"\xc3", 1},                     /* truncated: bytes */
        {"a\xff", 2},                    /* not UTF-8: bytes */
        {"\xc0\xaf", 2},                 /* overlong: bytes */
        {"\xed\xa0\x80", 3},             /* surrogate: bytes */
        {"\xf4\x90\x80\x80", 4},         /* past U+10FFFF: bytes */
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(password_length_chars(cases[i].s, strlen(cases[i].s)), cases[i].chars);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_salted),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_binary),
        cmocka_unit_test(test_bad_encoded),
        cmocka_unit_test(test_dummy),
        cmocka_unit_test(test_needs_rehash),
        cmocka_unit_test(test_pad_failure),
        cmocka_unit_test(test_dummy_counted),
        cmocka_unit_test(test_length_chars),
        cmocka_unit_test(test_params_parse),
        cmocka_unit_test(test_default_params),
        cmocka_unit_test(test_log_has_no_password),
    };
    log_setup(LOGL_OFF, 2);
    return cmocka_run_group_tests(tests, light_params, NULL);
}
