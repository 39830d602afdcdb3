/* Unit tests of the session refresh token table (store/refresh.h, issue 12) on a temporary
 * file or, with TV_TEST_STORE=pg, on a database of a throw-away PostgreSQL cluster
 * (tests/lib/store_fx.h): insert and get (the hash round-trips, never a secret), rotation as
 * one conditional update (a used, expired or unknown token is a conflict and nothing is
 * stored), two stores rotating one token concurrently (exactly one wins), family and account
 * revocation, pruning of expired rows, and store_account_logout changing only the epoch. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "store/accounts.h"
#include "store/refresh.h"
#include "store/store.h"
#include "store_fx.h"

static struct store_refresh tok(const char *id, const char *family, const char *account,
                                unsigned char fill, int64_t now, int64_t ttl, int64_t fam_end)
{
    struct store_refresh r;

    memset(&r, 0, sizeof r);
    snprintf(r.id, sizeof r.id, "%s", id);
    snprintf(r.family, sizeof r.family, "%s", family);
    snprintf(r.account, sizeof r.account, "%s", account);
    r.session_epoch = -1234567890123LL;
    memset(r.hash, fill, sizeof r.hash);
    r.hash[0] = 0; /* a NUL inside the blob survives */
    r.created_ms = now;
    r.expires_ms = now + ttl;
    r.family_expires_ms = fam_end;
    return r;
}

static void test_refresh_insert_get(void **state)
{
    struct store_fx_tmp *f = *state;
    struct store_refresh a = tok("id-a", "fam-1", "alice", 0xab, 1000, 500, 9000), got;
    int64_t n = -1;

    assert_int_equal(store_refresh_insert(f->s, &a), 0);
    assert_int_equal(store_refresh_insert(f->s, &a), TV_ERR_CONFLICT);
    assert_int_equal(store_refresh_get(f->s, "id-a", &got), 0);
    assert_string_equal(got.id, "id-a");
    assert_string_equal(got.family, "fam-1");
    assert_string_equal(got.account, "alice");
    assert_true(got.session_epoch == a.session_epoch);
    assert_memory_equal(got.hash, a.hash, sizeof a.hash);
    assert_true(got.created_ms == 1000 && got.expires_ms == 1500 && got.family_expires_ms == 9000);
    assert_true(got.used_ms == 0);
    assert_int_equal(store_refresh_get(f->s, "id-b", &got), TV_ERR_NOT_FOUND);
    assert_int_equal(store_refresh_get(f->s, "", &got), TV_ERR_INVALID);
    a.id[0] = '\0';
    assert_int_equal(store_refresh_insert(f->s, &a), TV_ERR_INVALID);
    assert_int_equal(store_refresh_count(f->s, &n), 0);
    assert_true(n == 1);
}

static void test_refresh_rotate(void **state)
{
    struct store_fx_tmp *f = *state;
    struct store_refresh a = tok("id-a", "fam-1", "alice", 0x11, 1000, 500, 9000);
    struct store_refresh b = tok("id-b", "fam-1", "alice", 0x22, 1200, 500, 9000);
    struct store_refresh c = tok("id-c", "fam-1", "alice", 0x33, 1300, 500, 9000), got;

    assert_int_equal(store_refresh_insert(f->s, &a), 0);
    assert_int_equal(store_refresh_rotate(f->s, "id-a", 1200, &b), 0);
    assert_int_equal(store_refresh_get(f->s, "id-a", &got), 0);
    assert_true(got.used_ms == 1200);
    assert_int_equal(store_refresh_get(f->s, "id-b", &got), 0);
    assert_true(got.used_ms == 0 && got.expires_ms == 1700);
    /* The used token again: refused, and its would-be successor is not stored. */
    assert_int_equal(store_refresh_rotate(f->s, "id-a", 1300, &c), TV_ERR_CONFLICT);
    assert_int_equal(store_refresh_get(f->s, "id-c", &got), TV_ERR_NOT_FOUND);
    assert_int_equal(store_refresh_get(f->s, "id-a", &got), 0);
    assert_true(got.used_ms == 1200); /* the first use stays recorded */
    /* Past its idle end (1700), or an unknown id: refused alike. */
    assert_int_equal(store_refresh_rotate(f->s, "id-b", 1700, &c), TV_ERR_CONFLICT);
    assert_int_equal(store_refresh_rotate(f->s, "id-x", 1300, &c), TV_ERR_CONFLICT);
    assert_int_equal(store_refresh_get(f->s, "id-c", &got), TV_ERR_NOT_FOUND);
    /* Past the family's end: refused even within the idle lifetime. */
    struct store_refresh d = tok("id-d", "fam-2", "bob", 0x44, 1000, 500, 1100);
    assert_int_equal(store_refresh_insert(f->s, &d), 0);
    assert_int_equal(store_refresh_rotate(f->s, "id-d", 1100, &c), TV_ERR_CONFLICT);
    assert_int_equal(store_refresh_rotate(f->s, "id-b", 1600, &c), 0);
    assert_int_equal(store_refresh_rotate(f->s, "", 1600, &c), TV_ERR_INVALID);
}

struct racer {
    struct store *s;
    struct store_refresh next;
    pthread_barrier_t *go;
    int rc;
};

static void *race_main(void *arg)
{
    struct racer *r = arg;

    pthread_barrier_wait(r->go);
    r->rc = store_refresh_rotate(r->s, "id-race", 2000, &r->next);
    return NULL;
}

/* Two stores (two replicas on PostgreSQL, two connections' turns on SQLite) rotating the same
 * token at once: exactly one wins, exactly one successor is stored. */
static void test_refresh_rotate_race(void **state)
{
    struct store_fx_tmp *f = *state;
    struct store *other = NULL;
    struct store_refresh a = tok("id-race", "fam-r", "carol", 0x55, 1000, 5000, 90000), got;
    struct racer r[2];
    pthread_t th[2];
    pthread_barrier_t go;
    int64_t n = 0;

    assert_int_equal(store_fx_open(&f->sx, 0, &other), 0);
    for (int round = 0; round < 20; round++) {
        char id[32];
        snprintf(a.id, sizeof a.id, "id-race");
        (void)store_refresh_revoke_family(f->s, "fam-r", NULL);
        assert_int_equal(store_refresh_insert(f->s, &a), 0);
        pthread_barrier_init(&go, NULL, 2);
        for (int i = 0; i < 2; i++) {
            snprintf(id, sizeof id, "id-next-%d-%d", round, i);
            r[i] = (struct racer){.s = i == 0 ? f->s : other, .go = &go};
            r[i].next = tok(id, "fam-r", "carol", (unsigned char)i, 2000, 5000, 90000);
            assert_int_equal(pthread_create(&th[i], NULL, race_main, &r[i]), 0);
        }
        for (int i = 0; i < 2; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&go);
        assert_true((r[0].rc == 0 && r[1].rc == TV_ERR_CONFLICT) ||
                    (r[1].rc == 0 && r[0].rc == TV_ERR_CONFLICT));
        assert_int_equal(store_refresh_get(f->s, r[0].rc == 0 ? r[1].next.id : r[0].next.id, &got),
                         TV_ERR_NOT_FOUND);
        assert_int_equal(store_refresh_get(f->s, r[0].rc == 0 ? r[0].next.id : r[1].next.id, &got),
                         0);
        assert_int_equal(store_refresh_count(f->s, &n), 0);
        assert_true(n == 2);
    }
    store_close(other);
}

static void test_refresh_revoke_prune(void **state)
{
    struct store_fx_tmp *f = *state;
    struct store_refresh a1 = tok("a1", "fam-a", "alice", 1, 1000, 1000, 50000);
    struct store_refresh a2 = tok("a2", "fam-a", "alice", 2, 1100, 1000, 50000);
    struct store_refresh b1 = tok("b1", "fam-b", "alice", 3, 1000, 1000, 50000);
    struct store_refresh c1 = tok("c1", "fam-c", "bob", 4, 1000, 9000, 3000);
    struct store_refresh d1 = tok("d1", "fam-d", "bob", 5, 5000, 9000, 50000), got;
    int64_t n = -1;

    assert_int_equal(store_refresh_insert(f->s, &a1), 0);
    assert_int_equal(store_refresh_rotate(f->s, "a1", 1100, &a2), 0);
    assert_int_equal(store_refresh_insert(f->s, &b1), 0);
    assert_int_equal(store_refresh_insert(f->s, &c1), 0);
    assert_int_equal(store_refresh_insert(f->s, &d1), 0);
    /* A family: both of its tokens, used or not; the account's other family stays. */
    assert_int_equal(store_refresh_revoke_family(f->s, "fam-a", &n), 0);
    assert_true(n == 2);
    assert_int_equal(store_refresh_get(f->s, "a2", &got), TV_ERR_NOT_FOUND);
    assert_int_equal(store_refresh_get(f->s, "b1", &got), 0);
    assert_int_equal(store_refresh_revoke_family(f->s, "fam-a", &n), 0);
    assert_true(n == 0);
    /* Pruning at 3000: b1 (idle end 2000) and c1 (family end 3000) go, d1 stays. */
    assert_int_equal(store_refresh_prune(f->s, 3000, &n), 0);
    assert_true(n == 2);
    assert_int_equal(store_refresh_get(f->s, "b1", &got), TV_ERR_NOT_FOUND);
    assert_int_equal(store_refresh_get(f->s, "c1", &got), TV_ERR_NOT_FOUND);
    assert_int_equal(store_refresh_get(f->s, "d1", &got), 0);
    /* An account: every family of it. */
    assert_int_equal(store_refresh_revoke_account(f->s, "bob", &n), 0);
    assert_true(n == 1);
    assert_int_equal(store_refresh_count(f->s, &n), 0);
    assert_true(n == 0);
}

static void test_account_logout(void **state)
{
    struct store_fx_tmp *f = *state;
    struct store_account a, got;
    int64_t e1 = 0, e2 = 0;

    memset(&a, 0, sizeof a);
    snprintf(a.name, sizeof a.name, "dave");
    snprintf(a.password_hash, sizeof a.password_hash, "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA");
    a.created_ms = a.updated_ms = 1000;
    assert_int_equal(store_account_upsert(f->s, &a, NULL), 0);
    assert_int_equal(store_account_epoch(f->s, "dave", &e1), 0);
    assert_int_equal(store_account_logout(f->s, "dave"), 0);
    assert_int_equal(store_account_epoch(f->s, "dave", &e2), 0);
    assert_true(e1 != e2);
    assert_int_equal(store_account_get(f->s, "dave", &got), 0);
    assert_string_equal(got.password_hash, a.password_hash); /* the password stays */
    assert_true(got.updated_ms == 1000);
    assert_int_equal(store_account_logout(f->s, "nobody"), TV_ERR_NOT_FOUND);
    assert_int_equal(store_account_logout(f->s, ""), TV_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_refresh_insert_get, store_fx_tmp_setup,
                                        store_fx_tmp_teardown),
        cmocka_unit_test_setup_teardown(test_refresh_rotate, store_fx_tmp_setup,
                                        store_fx_tmp_teardown),
        cmocka_unit_test_setup_teardown(test_refresh_rotate_race, store_fx_tmp_setup,
                                        store_fx_tmp_teardown),
        cmocka_unit_test_setup_teardown(test_refresh_revoke_prune, store_fx_tmp_setup,
                                        store_fx_tmp_teardown),
        cmocka_unit_test_setup_teardown(test_account_logout, store_fx_tmp_setup,
                                        store_fx_tmp_teardown),
    };

    return cmocka_run_group_tests(tests, store_fx_group_setup, store_fx_group_teardown);
}
