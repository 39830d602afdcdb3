/* Unit tests for API keys: the format of generated keys, strict parsing (a table of rejected
 * spellings), and verification against a temporary store: the right key, a wrong secret, an
 * unknown id, a revoked key, last-used recording, and that no key reaches the log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth/apikey.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "store/apikeys.h"
#include "store/store.h"

/* A well-formed key (the secret decodes to 32 bytes; last character has zero trailing bits). */
#define GOOD "tvk_0123456789abcdef_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"

static void test_generate_format(void **state)
{
    char key[APIKEY_MAX], key2[APIKEY_MAX];
    char id[APIKEY_KEY_ID_MAX], id2[APIKEY_KEY_ID_MAX], pid[APIKEY_KEY_ID_MAX];
    uint8_t h[APIKEY_HASH_LEN], h2[APIKEY_HASH_LEN], ph[APIKEY_HASH_LEN];
    (void)state;

    assert_int_equal(apikey_generate(key, sizeof key, id, h), 0);
    assert_int_equal(strlen(key), APIKEY_LEN);
    assert_int_equal(APIKEY_LEN, 64);
    assert_memory_equal(key, "tvk_", 4);
    assert_int_equal(key[20], '_');
    assert_int_equal(strlen(id), APIKEY_ID_LEN);
    assert_memory_equal(key + 4, id, APIKEY_ID_LEN);
    for (size_t i = 21; i < APIKEY_LEN; i++)
        assert_non_null(
            strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", key[i]));
    /* The generated key parses back to the same id and hash. */
    assert_int_equal(apikey_parse(key, pid, ph), 0);
    assert_string_equal(pid, id);
    assert_memory_equal(ph, h, sizeof h);
    /* Two keys share nothing. */
    assert_int_equal(apikey_generate(key2, sizeof key2, id2, h2), 0);
    assert_string_not_equal(key, key2);
    assert_string_not_equal(id, id2);
    assert_memory_not_equal(h, h2, sizeof h);
    /* Too small a buffer. */
    assert_int_equal(apikey_generate(key2, APIKEY_LEN, id2, h2), TV_ERR_TOO_LARGE);
}

static void test_parse_good(void **state)
{
    char id[APIKEY_KEY_ID_MAX];
    uint8_t h[APIKEY_HASH_LEN];
    /* SHA-256 of the bytes 0x00..0x1f. */
    static const uint8_t want[APIKEY_HASH_LEN] = {0x63, 0x0d, 0xcd, 0x29, 0x66, 0xc4, 0x33, 0x66,
                                                  0x91, 0x12, 0x54, 0x48, 0xbb, 0xb2, 0x5b, 0x4f,
                                                  0xf4, 0x12, 0xa4, 0x9c, 0x73, 0x2d, 0xb2, 0xc8,
                                                  0xab, 0xc1, 0xb8, 0x58, 0x1b, 0xd7, 0x10, 0xdd};
    (void)state;

    assert_int_equal(apikey_parse(GOOD, id, h), 0);
    assert_string_equal(id, "0123456789abcdef");
    assert_memory_equal(h, want, sizeof want);
}

static void test_parse_rejects(void **state)
{
    static const char *bad[] = {
        "",
        "tvk_",
        /* One character short / long. */
        "tvk_0123456789abcdef_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh",
        "tvk_0123456789abcdef_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8A",
        /* Prefix. */
        "TVK_0123456789abcdef_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
        "tvx_0123456789abcdef_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
        /* Key id: uppercase hex, non-hex. */
        "tvk_0123456789ABCDEF_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
        "tvk_0123456789abcdeg_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
        /* Separator. */
        "tvk_0123456789abcdef-AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
        /* Secret: standard base64 characters, padding, blanks, non-zero trailing bits. */
        "tvk_0123456789abcdef_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+",
        "tvk_0123456789abcdef_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh/",
        "tvk_0123456789abcdef_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh=",
        "tvk_0123456789abcdef_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh ",
        "tvk_0123456789abcdef_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9",
        " tvk_0123456789abcdef_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh",
        "Bearer tvk_0123456789abcdef_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxw",
    };
    char id[APIKEY_KEY_ID_MAX] = "untouched";
    uint8_t h[APIKEY_HASH_LEN] = {7};
    (void)state;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (apikey_parse(bad[i], id, h) != TV_ERR_UNAUTHORIZED)
            fail_msg("case %zu accepted: '%s'", i, bad[i]);
    }
    assert_int_equal(apikey_parse(NULL, id, h), TV_ERR_UNAUTHORIZED);
    assert_string_equal(id, "untouched");
    assert_int_equal(h[0], 7);
}

static void test_name_valid(void **state)
{
    static const char *good[] = {
        "a", "backend-1", "svc.prod_2",
        "0123456789012345678901234567890123456789012345678901234567890123"};
    static const char *bad[] = {
        "",    "has space", "a/b",
        "a@b", "ü",         "01234567890123456789012345678901234567890123456789012345678901234"};
    (void)state;

    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(apikey_name_valid(good[i]));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(apikey_name_valid(bad[i]));
    assert_false(apikey_name_valid(NULL));
}

struct fixture {
    char dir[64];
    char path[128];
    struct store *st;
};

static int store_setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);

    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/test_apikey_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/tv.db", f->dir);
    assert_int_equal(store_open(f->path, 1, &f->st), 0);
    *state = f;
    return 0;
}

static int store_teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[200];

    store_close(f->st);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

/* Creates a key named name in the store; its text goes to key. */
static void key_add(struct store *st, const char *name, char key[APIKEY_MAX])
{
    struct store_apikey k;

    memset(&k, 0, sizeof k);
    snprintf(k.name, sizeof k.name, "%s", name);
    k.created_ms = clock_wall_ms();
    assert_int_equal(apikey_generate(key, APIKEY_MAX, k.key_id, k.hash), 0);
    assert_int_equal(store_apikey_insert(st, &k), 0);
}

static void test_verify(void **state)
{
    struct fixture *f = *state;
    struct store_apikey row;
    char key[APIKEY_MAX], other[APIKEY_MAX], forged[APIKEY_MAX];
    char name[APIKEY_NAME_MAX];

    key_add(f->st, "backend1", key);
    key_add(f->st, "backend2", other);

    memset(name, 0, sizeof name);
    assert_int_equal(apikey_verify(f->st, key, name), 0);
    assert_string_equal(name, "backend1");
    assert_int_equal(apikey_verify(f->st, other, name), 0);
    assert_string_equal(name, "backend2");

    /* Use is recorded. */
    assert_int_equal(store_apikey_get(f->st, "backend1", &row), 0);
    assert_true(row.last_used_ms > 0);

    /* backend1's id with backend2's secret: well-formed, wrong. */
    memcpy(forged, key, APIKEY_MAX);
    memcpy(forged + 21, other + 21, APIKEY_SECRET_LEN);
    snprintf(name, sizeof name, "untouched");
    assert_int_equal(apikey_verify(f->st, forged, name), TV_ERR_UNAUTHORIZED);
    assert_string_equal(name, "untouched");
    /* An id nobody has. */
    assert_int_equal(apikey_verify(f->st, GOOD, name), TV_ERR_UNAUTHORIZED);
    /* Malformed. */
    assert_int_equal(apikey_verify(f->st, "tvk_nope", name), TV_ERR_UNAUTHORIZED);
    assert_int_equal(apikey_verify(f->st, "", name), TV_ERR_UNAUTHORIZED);
    assert_string_equal(name, "untouched");

    /* Revocation takes effect at once; the other key still works. */
    assert_int_equal(store_apikey_revoke(f->st, "backend1", clock_wall_ms()), 0);
    assert_int_equal(apikey_verify(f->st, key, name), TV_ERR_UNAUTHORIZED);
    assert_int_equal(apikey_verify(f->st, other, name), 0);
    assert_string_equal(name, "backend2");
}

/* Nothing about a key but its name and id may be logged, whatever the outcome. */
static void test_log_has_no_key(void **state)
{
    struct fixture *f = *state;
    char path[] = "/tmp/test_apikey_log_XXXXXX";
    char key[APIKEY_MAX], bad[APIKEY_MAX];
    char name[APIKEY_NAME_MAX];
    char buf[16384];
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    log_setup(LOGL_DEBUG, fd);
    key_add(f->st, "logged", key);
    assert_int_equal(apikey_verify(f->st, key, name), 0);
    memcpy(bad, key, APIKEY_MAX);
    bad[APIKEY_LEN - 2] = bad[APIKEY_LEN - 2] == 'A' ? 'B' : 'A';
    (void)apikey_verify(f->st, bad, name);
    (void)apikey_verify(f->st, key + 1, name);
    log_setup(LOGL_OFF, 2);
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    assert_true(n >= 0);
    buf[n] = '\0';
    /* The secret part: 43 characters no log line may contain (also not in pieces of 12). */
    for (size_t i = 21; i + 12 <= APIKEY_LEN; i++) {
        char piece[13];
        memcpy(piece, key + i, 12);
        piece[12] = '\0';
        assert_null(strstr(buf, piece));
    }
    close(fd);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_format),
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_name_valid),
        cmocka_unit_test_setup_teardown(test_verify, store_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_log_has_no_key, store_setup, store_teardown),
    };
    log_setup(LOGL_OFF, 2);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
