/* Unit tests of the kept token cache: the store's rows (include/store/tokens.h) on a temporary
 * SQLite file or, with TV_TEST_STORE=pg, on a database of a throw-away PostgreSQL cluster
 * (tests/lib/store_fx.h), two handles standing for two replicas; and the sealing of a row
 * (src/service/tkeep_int.h): what the associated data binds, damaged bytes, a wrong key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/crypto.h>

#include "core/clock.h"
#include "core/err.h"
#include "service/tkeep_int.h"
#include "store/store.h"
#include "store/tokens.h"
#include "store_fx.h"

#define TOKEN "eyJhbGciOiJSUzI1NiJ9.eyJza3lwZWlkIjoiYWNzOjEifQ.c2lnbmF0dXJlLXBhcnQtb2YtdGhlLXRva2Vu"
#define EXPIRES "2026-12-04T13:00:00.000Z"

struct fx {
    char dir[64];
    char path[128];
    struct store_fx sx;
    struct store *a, *b; /* two openings: two replicas */
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/tv-tokens-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/tv.db", f->dir);
    if (store_fx_new(&f->sx, f->path) != 0 || store_fx_open(&f->sx, 1, &f->a) != 0 ||
        store_fx_open(&f->sx, 0, &f->b) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char p[256];

    store_close(f->a);
    store_close(f->b);
    store_fx_drop(&f->sx);
    unlink(f->path);
    snprintf(p, sizeof(p), "%s-wal", f->path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", f->path);
    unlink(p);
    rmdir(f->dir);
    free(f);
    return 0;
}

static struct store_token row(const char *acs, const char *scopes, int minutes, int64_t issued,
                              int64_t expires, uint8_t *sealed, size_t len)
{
    struct store_token t;

    memset(&t, 0, sizeof(t));
    snprintf(t.acs_id, sizeof(t.acs_id), "%s", acs);
    snprintf(t.scopes, sizeof(t.scopes), "%s", scopes);
    snprintf(t.resource, sizeof(t.resource), "%s", "res.example:443");
    t.minutes = minutes;
    t.issued_ms = issued;
    t.expires_ms = expires;
    t.sealed = sealed;
    t.sealed_len = len;
    return t;
}

/* A row one handle writes is read by the other, bytes and all; an overwrite replaces it. */
static void test_put_get_shared(void **state)
{
    struct fx *f = *state;
    uint8_t blob1[40], blob2[64];
    struct store_token w, got;
    int64_t n = -1;

    memset(blob1, 0xA1, sizeof(blob1));
    memset(blob2, 0xB2, sizeof(blob2));
    w = row("8:acs:one", "chat,voip", 60, 1000, 3601000, blob1, sizeof(blob1));
    assert_int_equal(store_token_put(f->a, &w), 0);
    memset(&got, 0, sizeof(got));
    assert_int_equal(store_token_get(f->b, "8:acs:one", "chat,voip", 60, &got), 0);
    assert_string_equal(got.resource, "res.example:443");
    assert_int_equal(got.issued_ms, 1000);
    assert_int_equal(got.expires_ms, 3601000);
    assert_int_equal(got.sealed_len, sizeof(blob1));
    assert_memory_equal(got.sealed, blob1, sizeof(blob1));
    store_token_release(&got);
    assert_null(got.sealed);
    store_token_release(&got); /* twice is harmless */

    /* The key is the triple: other scopes or minutes are other rows. */
    assert_int_equal(store_token_get(f->b, "8:acs:one", "chat", 60, &got), TV_ERR_NOT_FOUND);
    assert_int_equal(store_token_get(f->b, "8:acs:one", "chat,voip", 61, &got), TV_ERR_NOT_FOUND);
    assert_int_equal(store_token_get(f->b, "8:acs:two", "chat,voip", 60, &got), TV_ERR_NOT_FOUND);

    w = row("8:acs:one", "chat,voip", 60, 2000, 3602000, blob2, sizeof(blob2));
    assert_int_equal(store_token_put(f->b, &w), 0);
    assert_int_equal(store_token_get(f->a, "8:acs:one", "chat,voip", 60, &got), 0);
    assert_int_equal(got.issued_ms, 2000);
    assert_int_equal(got.sealed_len, sizeof(blob2));
    assert_memory_equal(got.sealed, blob2, sizeof(blob2));
    store_token_release(&got);
    assert_int_equal(store_token_count(f->a, &n), 0);
    assert_int_equal(n, 1);
}

/* A purge removes every row of the identity, and only its rows. */
static void test_purge(void **state)
{
    struct fx *f = *state;
    uint8_t blob[32];
    struct store_token w, got;
    int64_t removed = -1, n = -1;

    memset(blob, 1, sizeof(blob));
    w = row("8:acs:p", "chat", 60, 1, 100, blob, sizeof(blob));
    assert_int_equal(store_token_put(f->a, &w), 0);
    w = row("8:acs:p", "voip", 60, 1, 100, blob, sizeof(blob));
    assert_int_equal(store_token_put(f->a, &w), 0);
    w = row("8:acs:q", "chat", 60, 1, 100, blob, sizeof(blob));
    assert_int_equal(store_token_put(f->a, &w), 0);
    assert_int_equal(store_token_purge(f->b, "8:acs:p", &removed), 0);
    assert_int_equal(removed, 2);
    memset(&got, 0, sizeof(got));
    assert_int_equal(store_token_get(f->a, "8:acs:p", "chat", 60, &got), TV_ERR_NOT_FOUND);
    assert_int_equal(store_token_get(f->a, "8:acs:q", "chat", 60, &got), 0);
    store_token_release(&got);
    assert_int_equal(store_token_purge(f->b, "8:acs:p", &removed), 0);
    assert_int_equal(removed, 0);
    assert_int_equal(store_token_count(f->a, &n), 0);
    assert_int_equal(n, 1);
}

/* Pruning takes the soonest-expired rows before the cut, at most `limit` of them. */
static void test_prune(void **state)
{
    struct fx *f = *state;
    uint8_t blob[16];
    struct store_token w, got;
    char id[32];
    int64_t removed = -1, n = -1;

    memset(blob, 2, sizeof(blob));
    for (int i = 0; i < 10; i++) {
        snprintf(id, sizeof(id), "8:acs:%d", i);
        w = row(id, "chat", 60, 0, 1000 + i, blob, sizeof(blob));
        assert_int_equal(store_token_put(f->a, &w), 0);
    }
    /* Exactly at the cut is not before it. */
    assert_int_equal(store_token_prune(f->b, 1000, 5, &removed), 0);
    assert_int_equal(removed, 0);
    assert_int_equal(store_token_prune(f->b, 1008, 3, &removed), 0);
    assert_int_equal(removed, 3);
    memset(&got, 0, sizeof(got));
    assert_int_equal(store_token_get(f->a, "8:acs:2", "chat", 60, &got), TV_ERR_NOT_FOUND);
    assert_int_equal(store_token_get(f->a, "8:acs:3", "chat", 60, &got), 0);
    store_token_release(&got);
    assert_int_equal(store_token_prune(f->b, 1008, 100, &removed), 0);
    assert_int_equal(removed, 5);
    assert_int_equal(store_token_count(f->a, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(store_token_prune(f->b, 1008, 0, &removed), TV_ERR_INVALID);
    assert_int_equal(store_token_prune(f->b, 1008, STORE_TOKEN_PRUNE_MAX + 1, &removed),
                     TV_ERR_INVALID);
}

static void test_invalid(void **state)
{
    struct fx *f = *state;
    uint8_t blob[8] = {0};
    char longid[STORE_ID_MAX + 2], longscopes[STORE_TOKEN_SCOPES_MAX + 2];
    struct store_token w, got;

    memset(longid, 'x', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    memset(longscopes, 's', sizeof(longscopes) - 1);
    longscopes[sizeof(longscopes) - 1] = '\0';
    w = row("", "chat", 60, 0, 1, blob, sizeof(blob));
    assert_int_equal(store_token_put(f->a, &w), TV_ERR_INVALID);
    w = row("8:acs:x", "chat", 60, 0, 1, NULL, 0);
    assert_int_equal(store_token_put(f->a, &w), TV_ERR_INVALID);
    w = row("8:acs:x", "chat", 60, 0, 1, blob, STORE_TOKEN_SEALED_MAX + 1);
    assert_int_equal(store_token_put(f->a, &w), TV_ERR_INVALID);
    w = row("8:acs:x", "chat", 60, 0, 1, blob, sizeof(blob));
    w.resource[0] = '\0';
    assert_int_equal(store_token_put(f->a, &w), TV_ERR_INVALID);
    memset(&got, 0, sizeof(got));
    assert_int_equal(store_token_get(f->a, longid, "chat", 60, &got), TV_ERR_INVALID);
    assert_int_equal(store_token_get(f->a, "8:acs:x", longscopes, 60, &got), TV_ERR_INVALID);
    assert_int_equal(store_token_get(f->a, "8:acs:x", "chat", 60, NULL), TV_ERR_INVALID);
    assert_int_equal(store_token_purge(f->a, "", NULL), TV_ERR_INVALID);
    assert_null(got.sealed);
}

/* ---- sealing ---- */

static const uint8_t KEY[AEAD_KEY_LEN] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                          12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                          23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static struct tkeep_id ident(void)
{
    struct tkeep_id id = {"res.example:443", "8:acs:one", "chat,voip", 60, 1000, 3601000};
    return id;
}

/* Opens blob for id: 0 and the token's text compared, or the error. */
static int open_as(const uint8_t *key, const struct tkeep_id *id, const uint8_t *blob, size_t len)
{
    char *tok = NULL, exp[TCACHE_EXPIRES_MAX];
    size_t tl = 0;
    int rc = tkeep_open(key, id, blob, len, &tok, &tl, exp);

    if (rc == 0) {
        assert_string_equal(tok, TOKEN);
        assert_int_equal(tl, strlen(TOKEN));
        assert_string_equal(exp, EXPIRES);
        OPENSSL_cleanse(tok, tl);
        free(tok);
    }
    return rc;
}

static void test_seal_roundtrip_no_clear_text(void **state)
{
    struct tkeep_id id = ident();
    uint8_t *b1 = NULL, *b2 = NULL;
    size_t l1 = 0, l2 = 0;
    const char *sig = strrchr(TOKEN, '.') + 1;

    (void)state;
    assert_int_equal(tkeep_seal(KEY, &id, TOKEN, EXPIRES, &b1, &l1), 0);
    assert_int_equal(tkeep_seal(KEY, &id, TOKEN, EXPIRES, &b2, &l2), 0);
    assert_int_equal(l1, strlen(TOKEN) + 1 + strlen(EXPIRES) + AEAD_OVERHEAD);
    assert_int_equal(open_as(KEY, &id, b1, l1), 0);
    /* A random nonce per token: the same token never seals to the same bytes. */
    assert_int_equal(l1, l2);
    assert_memory_not_equal(b1, b2, l1);
    assert_null(memmem(b1, l1, TOKEN, strlen(TOKEN)));
    assert_null(memmem(b1, l1, sig, strlen(sig)));
    free(b1);
    free(b2);
}

/* Each bound field, changed, makes the row not open. */
static void test_seal_binds_the_row(void **state)
{
    struct tkeep_id id = ident(), other;
    uint8_t *b = NULL;
    size_t l = 0;

    (void)state;
    assert_int_equal(tkeep_seal(KEY, &id, TOKEN, EXPIRES, &b, &l), 0);
    other = id;
    other.acs_id = "8:acs:two";
    assert_int_equal(open_as(KEY, &other, b, l), TV_ERR_UNAUTHORIZED);
    other = id;
    other.scopes = "chat";
    assert_int_equal(open_as(KEY, &other, b, l), TV_ERR_UNAUTHORIZED);
    other = id;
    other.minutes = 61;
    assert_int_equal(open_as(KEY, &other, b, l), TV_ERR_UNAUTHORIZED);
    other = id;
    other.resource = "other.example:443";
    assert_int_equal(open_as(KEY, &other, b, l), TV_ERR_UNAUTHORIZED);
    other = id;
    other.issued_ms = 1001; /* a row made to look issued after a revoke */
    assert_int_equal(open_as(KEY, &other, b, l), TV_ERR_UNAUTHORIZED);
    other = id;
    other.expires_ms = 3602000;
    assert_int_equal(open_as(KEY, &other, b, l), TV_ERR_UNAUTHORIZED);
    /* Length-prefixed fields: moving a character from one field to the next changes it. */
    other = id;
    other.acs_id = "8:acs:on";
    other.scopes = "echat,voip";
    assert_int_equal(open_as(KEY, &other, b, l), TV_ERR_UNAUTHORIZED);
    assert_int_equal(open_as(KEY, &id, b, l), 0);
    free(b);
}

static void test_seal_damaged_and_wrong_key(void **state)
{
    struct tkeep_id id = ident();
    uint8_t key2[AEAD_KEY_LEN];
    uint8_t *b = NULL;
    size_t l = 0;

    (void)state;
    memcpy(key2, KEY, sizeof(key2));
    key2[31] ^= 1;
    assert_int_equal(tkeep_seal(KEY, &id, TOKEN, EXPIRES, &b, &l), 0);
    assert_int_equal(open_as(key2, &id, b, l), TV_ERR_UNAUTHORIZED);
    for (size_t i = 0; i < l; i += 7) {
        b[i] ^= 0x40;
        assert_int_not_equal(open_as(KEY, &id, b, l), 0);
        b[i] ^= 0x40;
    }
    assert_int_equal(open_as(KEY, &id, b, l - 1), TV_ERR_UNAUTHORIZED); /* truncated */
    assert_int_equal(open_as(KEY, &id, b, 3), TV_ERR_UNAUTHORIZED);
    assert_int_equal(open_as(KEY, &id, b, l), 0);
    free(b);
}

static void test_seal_refuses(void **state)
{
    struct tkeep_id id = ident();
    uint8_t *b = NULL;
    size_t l = 0;
    char *big = malloc(TCACHE_TOKEN_MAX + 2);

    (void)state;
    assert_non_null(big);
    memset(big, 'a', TCACHE_TOKEN_MAX + 1);
    big[TCACHE_TOKEN_MAX + 1] = '\0';
    assert_int_equal(tkeep_seal(KEY, &id, "", EXPIRES, &b, &l), TV_ERR_INVALID);
    assert_int_equal(tkeep_seal(KEY, &id, big, EXPIRES, &b, &l), TV_ERR_INVALID);
    id.acs_id = "";
    assert_int_equal(tkeep_seal(KEY, &id, TOKEN, EXPIRES, &b, &l), TV_ERR_INVALID);
    assert_null(b);
    free(big);
}

/* ---- the keeper over a store: lookup rules, writes ---- */

#define MIN_REMAINING_MS (30 * 60000LL)
#define NOW_MS 1800000000000LL

/* Puts a row for id sealed under key. */
static void put_sealed(struct store *s, const uint8_t *key, const struct tkeep_id *id)
{
    struct store_token w;
    uint8_t *b = NULL;
    size_t l = 0;

    assert_int_equal(tkeep_seal(key, id, TOKEN, EXPIRES, &b, &l), 0);
    w = row(id->acs_id, id->scopes, id->minutes, id->issued_ms, id->expires_ms, b, l);
    snprintf(w.resource, sizeof(w.resource), "%s", id->resource);
    assert_int_equal(store_token_put(s, &w), 0);
    free(b);
}

static void test_lookup_rules(void **state)
{
    struct fx *f = *state;
    struct tkeep *k = NULL;
    struct tkeep_stats st;
    struct tcache_hit hit;
    struct tkeep_id id = ident();
    uint8_t key2[AEAD_KEY_LEN];

    assert_int_equal(tkeep_new(KEY, f->b, MIN_REMAINING_MS, &k), 0);
    memset(&hit, 0, sizeof(hit));
    /* Nothing kept: a miss. */
    assert_int_equal(tkeep_lookup(k, &id, NOW_MS, 0, NULL, &hit), TV_ERR_NOT_FOUND);

    /* Exactly min_remaining left is served (the memory cache's boundary), a millisecond less
     * is not. */
    id.issued_ms = NOW_MS - 1000;
    id.expires_ms = NOW_MS + MIN_REMAINING_MS;
    put_sealed(f->a, KEY, &id);
    assert_int_equal(tkeep_lookup(k, &id, NOW_MS, 0, NULL, &hit), 0);
    assert_string_equal(hit.token, TOKEN);
    assert_string_equal(hit.expires_on, EXPIRES);
    assert_int_equal(hit.issued_ms, id.issued_ms);
    assert_int_equal(hit.expires_on_ms, id.expires_ms);
    tcache_hit_release(&hit);
    assert_int_equal(tkeep_lookup(k, &id, NOW_MS + 1, 0, NULL, &hit), TV_ERR_NOT_FOUND);

    /* Issued at or before the mapping's revoke: never served. */
    id.expires_ms = NOW_MS + 2 * MIN_REMAINING_MS;
    put_sealed(f->a, KEY, &id);
    assert_int_equal(tkeep_lookup(k, &id, NOW_MS, id.issued_ms, NULL, &hit), TV_ERR_NOT_FOUND);
    assert_int_equal(tkeep_lookup(k, &id, NOW_MS, id.issued_ms - 1, NULL, &hit), 0);
    tcache_hit_release(&hit);

    /* A row of another resource, or sealed under another key: a miss, counted. */
    id.resource = "other.example:443";
    put_sealed(f->a, KEY, &id);
    id.resource = "res.example:443";
    assert_int_equal(tkeep_lookup(k, &id, NOW_MS, 0, NULL, &hit), TV_ERR_NOT_FOUND);
    memcpy(key2, KEY, sizeof(key2));
    key2[0] ^= 0x80;
    put_sealed(f->a, key2, &id);
    assert_int_equal(tkeep_lookup(k, &id, NOW_MS, 0, NULL, &hit), TV_ERR_NOT_FOUND);
    assert_null(hit.token);
    tkeep_stats_get(k, &st);
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.open_failures, 2);
    assert_int_equal(st.misses, 5);
    tkeep_free(k);
}

/* Writes run off the caller's thread; one whose identity was revoked here since it was cached
 * (the epoch moved on) is dropped. */
static void test_write_and_epoch(void **state)
{
    struct fx *f = *state;
    struct tkeep *k = NULL;
    struct tcache *c = NULL;
    struct tkeep_stats st;
    struct tkeep_id id = ident(), id2 = ident();
    struct tcache_hit hit;
    uint64_t e2;
    int64_t n = -1;

    assert_int_equal(tcache_new(NULL, &c), 0);
    /* A row that can no longer be served (expired long ago): the writer prunes it. */
    {
        struct tkeep_id old = ident();
        old.acs_id = "8:acs:expired";
        old.expires_ms = 5000;
        put_sealed(f->a, KEY, &old);
    }
    assert_int_equal(tkeep_new(KEY, f->a, MIN_REMAINING_MS, &k), 0);
    id.expires_ms = id2.expires_ms = clock_wall_ms() + 3600000;
    id2.acs_id = "8:acs:revoked";
    tkeep_write(k, c, tcache_epoch(c, id.acs_id), &id, TOKEN, EXPIRES, "rq-1");
    e2 = tcache_epoch(c, id2.acs_id);
    (void)tcache_invalidate(c, id2.acs_id);
    tkeep_write(k, c, e2, &id2, TOKEN, EXPIRES, "rq-2");
    tkeep_free(k); /* runs the queued writes */
    k = NULL;
    /* The one write kept; the revoked identity's dropped; the expired row pruned. */
    assert_int_equal(store_token_count(f->b, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(tkeep_new(KEY, f->b, MIN_REMAINING_MS, &k), 0);
    memset(&hit, 0, sizeof(hit));
    assert_int_equal(tkeep_lookup(k, &id, clock_wall_ms(), 0, NULL, &hit), 0);
    assert_string_equal(hit.token, TOKEN);
    tcache_hit_release(&hit);
    assert_int_equal(tkeep_lookup(k, &id2, clock_wall_ms(), 0, NULL, &hit), TV_ERR_NOT_FOUND);
    /* A purge through the keeper removes the identity's rows. */
    assert_int_equal(tkeep_purge(k, id.acs_id, NULL), 0);
    assert_int_equal(tkeep_lookup(k, &id, clock_wall_ms(), 0, NULL, &hit), TV_ERR_NOT_FOUND);
    tkeep_stats_get(k, &st);
    assert_int_equal(st.purged, 1);
    tkeep_free(k);
    tcache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_get_shared, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid, setup, teardown),
        cmocka_unit_test(test_seal_roundtrip_no_clear_text),
        cmocka_unit_test(test_seal_binds_the_row),
        cmocka_unit_test(test_seal_damaged_and_wrong_key),
        cmocka_unit_test(test_seal_refuses),
        cmocka_unit_test_setup_teardown(test_lookup_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_and_epoch, setup, teardown),
    };

    return cmocka_run_group_tests(tests, store_fx_group_setup, store_fx_group_teardown);
}
