/* Unit tests of the store functions behind the operator commands of issue 11, on a temporary
 * file or, with TV_TEST_STORE=pg, on a database of a throw-away PostgreSQL cluster
 * (tests/lib/store_fx.h): store_outbox_get / store_outbox_retry_now (a row made due, a leased
 * row left to its holder, an expired lease and a due row left as they are, --all counts), and
 * API key rotation (store_apikey_rotate: both keys found by id, the previous one with its end;
 * a second rotation drops the oldest; revoke ends both; last use per key), with apikey_verify
 * refusing a previous key once its grace period is over. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "auth/apikey.h"
#include "core/clock.h"
#include "core/err.h"
#include "store/apikeys.h"
#include "store/outbox.h"
#include "store/store.h"
#include "store_fx.h"

#define OB_RES "res.example"

static void test_outbox_retry_now(void **state)
{
    struct store_fx_tmp *f = *state;
    struct store *a = f->s, *b = NULL;
    struct store_outbox_retry r;
    struct store_outbox_row row, rows[4];
    int64_t id1 = 0, id2 = 0, id3 = 0;
    int n = -1;

    assert_int_equal(store_fx_open(&f->sx, 0, &b), 0);
    assert_int_equal(store_outbox_add(a, "8:acs:r1", OB_RES, "delete", 10, &id1), 0);
    assert_int_equal(store_outbox_add(a, "8:acs:r2", OB_RES, "delete", 10, &id2), 0);
    assert_int_equal(store_outbox_add(a, "8:acs:r3", OB_RES, "delete", 10, &id3), 0);
    /* r1 failed and waits until 50000; r2 is leased by b until 60000; r3 is due (10). */
    assert_int_equal(store_outbox_retry_later(a, id1, 50000, "acs_unavailable"), 0);
    assert_int_equal(store_outbox_take(b, 10, 59990, 1, rows, &n), 0);
    assert_int_equal(n, 1);
    assert_true(rows[0].id == id2 && rows[0].next_attempt_ms == 60000);
    /* take picked r2 (oldest due first after r1 was rescheduled). */

    assert_int_equal(store_outbox_get(a, id1, &row), 0);
    assert_true(row.id == id1 && row.attempts == 1 && row.next_attempt_ms == 50000);
    assert_string_equal(row.acs_id, "8:acs:r1");
    assert_string_equal(row.last_error, "acs_unavailable");
    assert_int_equal(store_outbox_get(a, 999999, &row), TV_ERR_NOT_FOUND);
    assert_int_equal(store_outbox_get(a, 0, &row), TV_ERR_INVALID);

    /* One row that waits: due now, attempts and last error kept. */
    assert_int_equal(store_outbox_retry_now(a, id1, 1000, &r), 0);
    assert_true(r.matched == 1 && r.made_due == 1 && r.leased == 0);
    assert_int_equal(store_outbox_get(a, id1, &row), 0);
    assert_true(row.next_attempt_ms == 1000 && row.attempts == 1);
    assert_string_equal(row.last_error, "acs_unavailable");
    /* Already due: left as it is (not pushed later to "now"). */
    assert_int_equal(store_outbox_retry_now(a, id1, 2000, &r), 0);
    assert_true(r.matched == 1 && r.made_due == 0 && r.leased == 0);
    assert_int_equal(store_outbox_get(a, id1, &row), 0);
    assert_true(row.next_attempt_ms == 1000);
    /* Leased by b: left to it, counted. */
    assert_int_equal(store_outbox_retry_now(a, id2, 2000, &r), 0);
    assert_true(r.matched == 1 && r.made_due == 0 && r.leased == 1);
    assert_int_equal(store_outbox_get(a, id2, &row), 0);
    assert_true(row.next_attempt_ms == 60000);
    assert_string_equal(row.leased_by, store_instance(b));
    /* Unknown row: nothing matched. */
    assert_int_equal(store_outbox_retry_now(a, 999999, 2000, &r), 0);
    assert_true(r.matched == 0 && r.made_due == 0 && r.leased == 0);
    assert_int_equal(store_outbox_retry_now(a, -1, 2000, &r), TV_ERR_INVALID);

    /* Every row: r1 due already, r2 leased, r3 pushed back to 40000 by a failure. */
    assert_int_equal(store_outbox_retry_later(a, id3, 40000, "throttled"), 0);
    assert_int_equal(store_outbox_retry_now(a, 0, 3000, &r), 0);
    assert_true(r.matched == 3 && r.made_due == 1 && r.leased == 1);
    assert_int_equal(store_outbox_due(a, 3000, 4, rows, &n), 0);
    assert_int_equal(n, 2); /* r1 and r3, not the leased r2 */
    /* Once b's lease has run out the row is due as it is: nothing to change, nothing leased. */
    assert_int_equal(store_outbox_retry_now(a, id2, 60000, &r), 0);
    assert_true(r.matched == 1 && r.made_due == 0 && r.leased == 0);
    assert_int_equal(store_outbox_get(a, id2, &row), 0);
    assert_true(row.next_attempt_ms == 60000);
    store_close(b);
}

static struct store_apikey key_with(const char *name, const char *key_id, unsigned char fill,
                                    int64_t created_ms)
{
    struct store_apikey k;

    memset(&k, 0, sizeof(k));
    snprintf(k.name, sizeof(k.name), "%s", name);
    snprintf(k.key_id, sizeof(k.key_id), "%s", key_id);
    memset(k.hash, fill, sizeof(k.hash));
    k.created_ms = created_ms;
    return k;
}

static void test_apikey_rotate(void **state)
{
    struct store_fx_tmp *f = *state;
    struct store_apikey k, list[4];
    struct store_apikey k1 = key_with("svc", "1111111111111111", 0x11, 1000);
    struct store_apikey k2 = key_with("svc", "2222222222222222", 0x22, 5000);
    struct store_apikey k3 = key_with("svc", "3333333333333333", 0x33, 9000);
    int n = -1;

    assert_int_equal(store_apikey_insert(f->s, &k1), 0);
    assert_int_equal(store_apikey_get(f->s, "svc", &k), 0);
    assert_string_equal(k.prev_key_id, "");
    assert_true(k.expires_ms == 0 && k.prev_expires_ms == 0);
    assert_int_equal(store_apikey_touch_used(f->s, k1.key_id, 70000), 0);

    assert_int_equal(store_apikey_rotate(f->s, "svc", k1.key_id, &k2, 7000), 0);
    /* By name: the new key, and the old one with its end and its last use. */
    assert_int_equal(store_apikey_get(f->s, "svc", &k), 0);
    assert_string_equal(k.key_id, k2.key_id);
    assert_memory_equal(k.hash, k2.hash, STORE_KEY_HASH_LEN);
    assert_true(k.created_ms == 5000 && k.last_used_ms == 0 && k.expires_ms == 0);
    assert_string_equal(k.prev_key_id, k1.key_id);
    assert_true(k.prev_expires_ms == 7000 && k.prev_last_used_ms == 70000);
    /* By id: each key as itself. */
    assert_int_equal(store_apikey_get_by_key_id(f->s, k1.key_id, &k), 0);
    assert_string_equal(k.name, "svc");
    assert_string_equal(k.key_id, k1.key_id);
    assert_memory_equal(k.hash, k1.hash, STORE_KEY_HASH_LEN);
    assert_true(k.expires_ms == 7000 && k.last_used_ms == 70000);
    assert_string_equal(k.prev_key_id, "");
    assert_int_equal(store_apikey_get_by_key_id(f->s, k2.key_id, &k), 0);
    assert_memory_equal(k.hash, k2.hash, STORE_KEY_HASH_LEN);
    assert_true(k.expires_ms == 0);
    /* Last use is kept per key (the old one's too), each at most once a minute. */
    assert_int_equal(store_apikey_touch_used(f->s, k1.key_id, 140000), 0);
    assert_int_equal(store_apikey_touch_used(f->s, k2.key_id, 95000), 0);
    assert_int_equal(store_apikey_get(f->s, "svc", &k), 0);
    assert_true(k.prev_last_used_ms == 140000 && k.last_used_ms == 95000);
    assert_int_equal(store_apikey_list(f->s, NULL, 4, list, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].prev_key_id, k1.key_id);

    /* A second rotation: k2 becomes the previous key, k1 is gone. */
    assert_int_equal(store_apikey_rotate(f->s, "svc", k2.key_id, &k3, 12000), 0);
    assert_int_equal(store_apikey_get_by_key_id(f->s, k1.key_id, &k), TV_ERR_NOT_FOUND);
    assert_int_equal(store_apikey_get_by_key_id(f->s, k2.key_id, &k), 0);
    assert_true(k.expires_ms == 12000 && k.last_used_ms == 95000);
    /* The new key id must be new. */
    struct store_apikey dup = key_with("other", "4444444444444444", 0x44, 1);
    assert_int_equal(store_apikey_insert(f->s, &dup), 0);
    assert_int_equal(store_apikey_rotate(f->s, "svc", k3.key_id, &dup, 1), TV_ERR_CONFLICT);
    assert_int_equal(store_apikey_rotate(f->s, "nosuch", k3.key_id, &k3, 1), TV_ERR_NOT_FOUND);
    /* Revoked: both keys carry the revoke; a revoked name is not rotated. */
    assert_int_equal(store_apikey_revoke(f->s, "svc", 20000), 0);
    assert_int_equal(store_apikey_get_by_key_id(f->s, k2.key_id, &k), 0);
    assert_true(k.revoked_ms == 20000);
    assert_int_equal(store_apikey_get_by_key_id(f->s, k3.key_id, &k), 0);
    assert_true(k.revoked_ms == 20000);
    struct store_apikey k5 = key_with("svc", "5555555555555555", 0x55, 30000);
    assert_int_equal(store_apikey_rotate(f->s, "svc", k3.key_id, &k5, 40000), TV_ERR_NOT_FOUND);
}

/* Two rotations that read the same current key (two `apikey rotate` at once): the first wins;
 * the second changes nothing and says so (TV_ERR_CONFLICT), so the key the first handed out
 * stays valid and the retired key keeps the first's grace. */
static void test_apikey_rotate_race(void **state)
{
    struct store_fx_tmp *f = *state;
    struct store_apikey k;
    struct store_apikey k1 = key_with("race", "aaaaaaaaaaaaaaaa", 0x1a, 1000);
    struct store_apikey k2 = key_with("race", "bbbbbbbbbbbbbbbb", 0x2b, 2000);
    struct store_apikey k3 = key_with("race", "cccccccccccccccc", 0x3c, 2001);

    assert_int_equal(store_apikey_insert(f->s, &k1), 0);
    /* Both read k1 as the current key; the first rotation replaces it by k2. */
    assert_int_equal(store_apikey_rotate(f->s, "race", k1.key_id, &k2, 9000), 0);
    assert_int_equal(store_apikey_rotate(f->s, "race", k1.key_id, &k3, 9500), TV_ERR_CONFLICT);
    assert_int_equal(store_apikey_get(f->s, "race", &k), 0);
    assert_string_equal(k.key_id, k2.key_id);
    assert_string_equal(k.prev_key_id, k1.key_id);
    assert_true(k.prev_expires_ms == 9000);
    assert_int_equal(store_apikey_get_by_key_id(f->s, k2.key_id, &k), 0);
    assert_true(k.revoked_ms == 0 && k.expires_ms == 0);
    assert_int_equal(store_apikey_get_by_key_id(f->s, k3.key_id, &k), TV_ERR_NOT_FOUND);
    /* Read again, the rotation goes through. */
    assert_int_equal(store_apikey_rotate(f->s, "race", k2.key_id, &k3, 9500), 0);
    /* A revoked name is not found, whatever key was read. */
    assert_int_equal(store_apikey_revoke(f->s, "race", 10000), 0);
    assert_int_equal(store_apikey_rotate(f->s, "race", k2.key_id, &k1, 11000), TV_ERR_NOT_FOUND);
}

/* The verify path: a previous key authenticates until its grace ends, then never. */
static void test_apikey_verify_grace(void **state)
{
    struct store_fx_tmp *f = *state;
    struct store_apikey k, next;
    char key1[APIKEY_MAX], key2[APIKEY_MAX], name[APIKEY_NAME_MAX];
    int64_t now = clock_wall_ms();

    memset(&k, 0, sizeof(k));
    memset(&next, 0, sizeof(next));
    snprintf(k.name, sizeof(k.name), "backend");
    k.created_ms = now;
    assert_int_equal(apikey_generate(key1, sizeof(key1), k.key_id, k.hash), 0);
    assert_int_equal(store_apikey_insert(f->s, &k), 0);
    assert_int_equal(apikey_verify(f->s, key1, name), 0);

    /* Rotated with an hour of grace: both keys work. */
    next.created_ms = now;
    assert_int_equal(apikey_generate(key2, sizeof(key2), next.key_id, next.hash), 0);
    assert_int_equal(store_apikey_rotate(f->s, "backend", k.key_id, &next, now + 3600000), 0);
    assert_int_equal(apikey_verify(f->s, key1, name), 0);
    assert_string_equal(name, "backend");
    assert_int_equal(apikey_verify(f->s, key2, name), 0);
    /* The same previous key whose grace has ended (a rotation with none left): refused. */
    memcpy(k.key_id, next.key_id, sizeof(k.key_id)); /* key2's id: the current key now */
    assert_int_equal(apikey_generate(key1, sizeof(key1), next.key_id, next.hash), 0);
    assert_int_equal(store_apikey_rotate(f->s, "backend", k.key_id, &next, now - 1), 0);
    assert_int_equal(apikey_verify(f->s, key2, name), TV_ERR_UNAUTHORIZED);
    assert_int_equal(apikey_verify(f->s, key1, name), 0);
    /* A wrong secret under a previous key's id is refused as well. */
    key2[30] = key2[30] == 'A' ? 'B' : 'A';
    assert_int_equal(apikey_verify(f->s, key2, name), TV_ERR_UNAUTHORIZED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_outbox_retry_now, store_fx_tmp_setup,
                                        store_fx_tmp_teardown),
        cmocka_unit_test_setup_teardown(test_apikey_rotate, store_fx_tmp_setup,
                                        store_fx_tmp_teardown),
        cmocka_unit_test_setup_teardown(test_apikey_rotate_race, store_fx_tmp_setup,
                                        store_fx_tmp_teardown),
        cmocka_unit_test_setup_teardown(test_apikey_verify_grace, store_fx_tmp_setup,
                                        store_fx_tmp_teardown),
    };

    return cmocka_run_group_tests(tests, store_fx_group_setup, store_fx_group_teardown);
}
