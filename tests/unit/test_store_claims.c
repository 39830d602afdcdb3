/* Unit tests of the create claims (include/store/claims.h) on a temporary file or, with
 * TV_TEST_STORE=pg, on a database of a throw-away PostgreSQL cluster (tests/lib/store_fx.h).
 * Each store handle stands for one process: its own opening, its own store_instance. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <pthread.h>

#include "core/err.h"
#include "store/claims.h"
#include "store/store.h"
#include "store/users.h"
#include "store_fx.h"

#define HANDLES 4
#define ROUNDS 20

struct fx {
    char dir[64];
    char path[128];
    struct store_fx sx;
    struct store *s[HANDLES];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/tv-claims-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/tv.db", f->dir);
    if (store_fx_new(&f->sx, f->path) != 0 || store_fx_open(&f->sx, 1, &f->s[0]) != 0)
        return -1;
    for (int i = 1; i < HANDLES; i++) {
        if (store_fx_open(&f->sx, 0, &f->s[i]) != 0)
            return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char p[256];

    for (int i = 0; i < HANDLES; i++)
        store_close(f->s[i]);
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

static struct store_user make_user(const char *app, const char *acs)
{
    struct store_user u;

    memset(&u, 0, sizeof(u));
    snprintf(u.app_user_id, sizeof(u.app_user_id), "%s", app);
    snprintf(u.acs_id, sizeof(u.acs_id), "%s", acs);
    snprintf(u.resource, sizeof(u.resource), "res.example:443");
    u.created_ms = 5;
    return u;
}

/* Takes key on s at now for 1000 ms; asserts success and returns whether it won. */
static int take(struct store *s, const char *key, int64_t now, int64_t *expires)
{
    struct store_claim c = {-1, -1};

    assert_int_equal(store_claim_take(s, key, now, now + 1000, &c), 0);
    if (expires != NULL)
        *expires = c.expires_ms;
    return c.won;
}

struct racer {
    struct store *s;
    pthread_barrier_t *start;
    const char *key;
    int rc;
    struct store_claim c;
};

static void *race_take(void *arg)
{
    struct racer *r = arg;

    pthread_barrier_wait(r->start);
    r->rc = store_claim_take(r->s, r->key, 1000, 60000, &r->c);
    return NULL;
}

/* Processes racing for one user's claim: exactly one wins, and every loser is told the
 * winner's expiry (or 0: the winner's row was not visible yet), never a win. Repeated over
 * fresh keys so that the race is real more than once. */
static void test_race_one_winner(void **state)
{
    struct fx *f = *state;

    for (int round = 0; round < ROUNDS; round++) {
        pthread_t th[HANDLES];
        struct racer r[HANDLES];
        pthread_barrier_t start;
        char key[32];
        int won = 0;

        snprintf(key, sizeof(key), "racer-%d", round);
        pthread_barrier_init(&start, NULL, HANDLES);
        for (int i = 0; i < HANDLES; i++) {
            r[i] = (struct racer){f->s[i], &start, key, -1, {-1, -1}};
            assert_int_equal(pthread_create(&th[i], NULL, race_take, &r[i]), 0);
        }
        for (int i = 0; i < HANDLES; i++) {
            pthread_join(th[i], NULL);
            assert_int_equal(r[i].rc, 0);
            won += r[i].c.won;
            assert_true(r[i].c.expires_ms == 60000 || (!r[i].c.won && r[i].c.expires_ms == 0));
        }
        pthread_barrier_destroy(&start);
        assert_int_equal(won, 1);
    }
}

/* A claim past its expiry is taken over by the next taker; before it, the taker loses and
 * learns the expiry. The holder may renew its own claim at any time. */
static void test_takeover_after_expiry(void **state)
{
    struct fx *f = *state;
    int64_t exp = 0;

    assert_true(take(f->s[0], "alice", 1000, &exp));
    assert_int_equal(exp, 2000);
    assert_false(take(f->s[1], "alice", 1500, &exp));
    assert_int_equal(exp, 2000);
    assert_false(take(f->s[1], "alice", 2000, &exp)); /* expires_ms is not yet past at 2000 */
    assert_true(take(f->s[0], "alice", 1900, &exp));  /* renewal by the holder */
    assert_int_equal(exp, 2900);
    assert_false(take(f->s[1], "alice", 2500, &exp));
    assert_int_equal(exp, 2900);
    assert_true(take(f->s[1], "alice", 2901, &exp));
    assert_int_equal(exp, 3901);
    /* The old holder is the loser now. */
    assert_false(take(f->s[0], "alice", 3000, &exp));
    assert_int_equal(exp, 3901);
    /* Other users are independent. */
    assert_true(take(f->s[2], "bob", 3000, NULL));
}

/* Only the holder's release removes a claim. */
static void test_release_only_by_owner(void **state)
{
    struct fx *f = *state;
    int64_t exp = 0;

    assert_true(take(f->s[0], "carol", 1000, NULL));
    assert_int_equal(store_claim_release(f->s[1], "carol"), 0); /* not its claim: a no-op */
    assert_false(take(f->s[2], "carol", 1100, &exp));
    assert_int_equal(exp, 2000);
    assert_int_equal(store_claim_release(f->s[0], "carol"), 0);
    assert_true(take(f->s[2], "carol", 1100, NULL));
    assert_int_equal(store_claim_release(f->s[0], "carol"), 0); /* nothing of ours: still 0 */
    assert_false(take(f->s[1], "carol", 1200, NULL));
    assert_int_equal(store_claim_release(f->s[0], "nobody"), 0);
}

/* The commit inserts the mapping and removes the committer's claim together; a failed insert
 * (the mapping exists) leaves the claim; another process's claim is never removed by it. */
static void test_commit_removes_claim(void **state)
{
    struct fx *f = *state;
    struct store_user u = make_user("dave", "8:acs:dave-1"), got;
    struct store_user again = make_user("dave", "8:acs:dave-2");
    struct store_user eve = make_user("eve", "8:acs:eve-1");

    assert_true(take(f->s[0], "dave", 1000, NULL));
    assert_int_equal(store_claim_commit(f->s[0], &u), 0);
    assert_int_equal(store_user_get(f->s[1], "dave", &got), 0);
    assert_string_equal(got.acs_id, "8:acs:dave-1");
    /* The claim went with it: another process takes it before the old expiry. */
    assert_true(take(f->s[1], "dave", 1100, NULL));
    assert_int_equal(store_claim_commit(f->s[1], &again), TV_ERR_CONFLICT);
    assert_false(take(f->s[2], "dave", 1200, NULL)); /* s[1]'s claim stayed */
    assert_int_equal(store_user_get(f->s[2], "dave", &got), 0);
    assert_string_equal(got.acs_id, "8:acs:dave-1");

    /* A commit by a process that does not hold the claim leaves the holder's claim. */
    assert_true(take(f->s[0], "eve", 1000, NULL));
    assert_int_equal(store_claim_commit(f->s[3], &eve), 0);
    assert_false(take(f->s[1], "eve", 1100, NULL));
}

static void test_invalid(void **state)
{
    struct fx *f = *state;
    struct store_claim c;
    struct store_user standalone = make_user("", "8:acs:guest");
    char longid[STORE_ID_MAX + 2];

    memset(longid, 'x', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    assert_int_equal(store_claim_take(f->s[0], "", 1, 2, &c), TV_ERR_INVALID);
    assert_int_equal(store_claim_take(f->s[0], longid, 1, 2, &c), TV_ERR_INVALID);
    assert_int_equal(store_claim_take(f->s[0], "x", 2, 2, &c), TV_ERR_INVALID);
    assert_int_equal(store_claim_take(f->s[0], "x", 1, 2, NULL), TV_ERR_INVALID);
    assert_int_equal(store_claim_release(f->s[0], ""), TV_ERR_INVALID);
    assert_int_equal(store_claim_commit(f->s[0], NULL), TV_ERR_INVALID);
    assert_int_equal(store_claim_commit(f->s[0], &standalone), TV_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_race_one_winner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_takeover_after_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_only_by_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_removes_claim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid, setup, teardown),
    };

    return cmocka_run_group_tests(tests, store_fx_group_setup, store_fx_group_teardown);
}
