/* Unit tests of the emulator's identity registry: revocation by generation (tokens from before a
 * revoke are revoked, one minted right after is valid), deletion, unknown identities, growth of
 * the hash map, the stats document, and SQLite persistence across a reopen. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <sqlite3.h>

#include "core/err.h"
#include "emulator/persist.h"
#include "emulator/state.h"

#define RES "11111111-2222-4333-8444-555555555555"

static void test_revocation(void **state)
{
    struct emu_state *st = NULL;
    char id[EMU_ID_MAX];
    uint64_t g0, g1, g2;

    (void)state;
    assert_int_equal(emu_state_new(NULL, &st), 0);
    assert_int_equal(emu_state_create(st, RES, 1000, id), 0);
    assert_int_equal(strncmp(id, "8:acs:" RES "_", strlen("8:acs:" RES "_")), 0);
    assert_int_equal(strlen(id), strlen("8:acs:" RES "_") + 36);
    assert_int_equal(emu_state_issue(st, id, &g0), 0);
    assert_int_equal(emu_state_check(st, id, g0), EMU_TOKEN_OK);
    /* Same millisecond: a revoke still separates earlier from later tokens. */
    assert_int_equal(emu_state_revoke(st, id, 1000), 0);
    assert_int_equal(emu_state_check(st, id, g0), EMU_TOKEN_REVOKED);
    assert_int_equal(emu_state_issue(st, id, &g1), 0);
    assert_true(g1 > g0);
    assert_int_equal(emu_state_check(st, id, g1), EMU_TOKEN_OK);
    assert_int_equal(emu_state_revoke(st, id, 1000), 0);
    assert_int_equal(emu_state_issue(st, id, &g2), 0);
    assert_int_equal(emu_state_check(st, id, g1), EMU_TOKEN_REVOKED);
    assert_int_equal(emu_state_check(st, id, g2), EMU_TOKEN_OK);
    emu_state_free(st);
}

static void test_delete_and_unknown(void **state)
{
    struct emu_state *st = NULL;
    char a[EMU_ID_MAX], b[EMU_ID_MAX];
    uint64_t g;

    (void)state;
    assert_int_equal(emu_state_new(NULL, &st), 0);
    assert_int_equal(emu_state_create(st, RES, 1, a), 0);
    assert_int_equal(emu_state_create(st, RES, 1, b), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(emu_state_live(st), 2);
    assert_int_equal(emu_state_issue(st, a, &g), 0);
    assert_int_equal(emu_state_delete(st, a, 2), 0);
    assert_int_equal(emu_state_live(st), 1);
    assert_int_equal(emu_state_check(st, a, g), EMU_TOKEN_DELETED);
    assert_int_equal(emu_state_issue(st, a, &g), TV_ERR_NOT_FOUND);
    assert_int_equal(emu_state_revoke(st, a, 3), TV_ERR_NOT_FOUND);
    assert_int_equal(emu_state_delete(st, a, 3), TV_ERR_NOT_FOUND);
    assert_int_equal(emu_state_issue(st, b, &g), 0);
    assert_int_equal(emu_state_issue(st, "8:acs:" RES "_00000000-0000-0000-0000-00000000dead", &g),
                     TV_ERR_NOT_FOUND);
    assert_int_equal(emu_state_check(st, "8:acs:nobody", 0), EMU_TOKEN_DELETED);
    assert_int_equal(emu_state_revoke(st, "8:acs:nobody", 1), TV_ERR_NOT_FOUND);
    emu_state_free(st);
}

static void test_many_identities(void **state)
{
    enum { N = 5000 };
    struct emu_state *st = NULL;
    char(*ids)[EMU_ID_MAX] = calloc(N, EMU_ID_MAX);
    uint64_t g;

    (void)state;
    assert_non_null(ids);
    assert_int_equal(emu_state_new(NULL, &st), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(emu_state_create(st, RES, i, ids[i]), 0);
    assert_int_equal(emu_state_live(st), N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(emu_state_issue(st, ids[i], &g), 0);
        assert_int_equal(g, 0);
    }
    for (int i = 0; i < N; i += 2)
        assert_int_equal(emu_state_delete(st, ids[i], 1), 0);
    assert_int_equal(emu_state_live(st), N / 2);
    for (int i = 0; i < N; i++)
        assert_int_equal(emu_state_issue(st, ids[i], &g), i % 2 ? 0 : TV_ERR_NOT_FOUND);
    emu_state_free(st);
    free(ids);
}

static int64_t stat_of(struct json_object *o, const char *group, const char *key)
{
    struct json_object *g, *v;

    if (group) {
        assert_true(json_object_object_get_ex(o, group, &g));
        o = g;
    }
    assert_true(json_object_object_get_ex(o, key, &v));
    return json_object_get_int64(v);
}

static void test_stats(void **state)
{
    struct emu_state *st = NULL;
    char id[EMU_ID_MAX];
    char *js = NULL;
    struct json_object *o;

    (void)state;
    assert_int_equal(emu_state_new(NULL, &st), 0);
    emu_state_count_request(st, EMU_OP_CREATE);
    emu_state_count_request(st, EMU_OP_CREATE);
    emu_state_count_success(st, EMU_OP_CREATE);
    emu_state_count_request(st, EMU_OP_TEAMS_EXCHANGE);
    emu_state_count_token(st);
    emu_state_count_fault(st);
    assert_int_equal(emu_state_create(st, RES, 1, id), 0);
    assert_int_equal(emu_state_stats_json(st, &js), 0);
    o = json_tokener_parse(js);
    assert_non_null(o);
    assert_int_equal(stat_of(o, "requests", "create"), 2);
    assert_int_equal(stat_of(o, "requests", "issue"), 0);
    assert_int_equal(stat_of(o, "requests", "teams_exchange"), 1);
    assert_int_equal(stat_of(o, "succeeded", "create"), 1);
    assert_int_equal(stat_of(o, NULL, "identities_created"), 1);
    assert_int_equal(stat_of(o, NULL, "identities_live"), 1);
    assert_int_equal(stat_of(o, NULL, "tokens_issued"), 1);
    assert_int_equal(stat_of(o, NULL, "faults_injected"), 1);
    json_object_put(o);
    free(js);
    emu_state_stats_reset(st);
    assert_int_equal(emu_state_stats_json(st, &js), 0);
    o = json_tokener_parse(js);
    assert_int_equal(stat_of(o, "requests", "create"), 0);
    assert_int_equal(stat_of(o, NULL, "identities_created"), 0);
    assert_int_equal(stat_of(o, NULL, "identities_live"), 1); /* a gauge, not a counter */
    json_object_put(o);
    free(js);
    emu_state_free(st);
}

static void test_persistence(void **state)
{
    char path[] = "/tmp/test_emulator_state_XXXXXX";
    int fd = mkstemp(path);
    struct emu_persist *db = NULL;
    struct emu_state *st = NULL;
    char live[EMU_ID_MAX], revoked[EMU_ID_MAX], gone[EMU_ID_MAX];
    char *v = NULL;
    uint64_t g;

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(emu_persist_open(path, &db), 0);
    assert_int_equal(emu_persist_meta_get(db, "k", &v), TV_ERR_NOT_FOUND);
    assert_int_equal(emu_persist_meta_put(db, "k", "one"), 0);
    assert_int_equal(emu_persist_meta_put(db, "k", "two"), 0);
    assert_int_equal(emu_state_new(db, &st), 0);
    assert_int_equal(emu_state_create(st, RES, 10, live), 0);
    assert_int_equal(emu_state_create(st, RES, 11, revoked), 0);
    assert_int_equal(emu_state_create(st, RES, 12, gone), 0);
    assert_int_equal(emu_state_revoke(st, revoked, 13), 0);
    assert_int_equal(emu_state_delete(st, gone, 14), 0);
    emu_state_free(st);
    emu_persist_close(db);

    db = NULL;
    st = NULL;
    assert_int_equal(emu_persist_open(path, &db), 0);
    assert_int_equal(emu_persist_meta_get(db, "k", &v), 0);
    assert_string_equal(v, "two");
    free(v);
    assert_int_equal(emu_state_new(db, &st), 0);
    assert_int_equal(emu_state_live(st), 2);
    assert_int_equal(emu_state_issue(st, live, &g), 0);
    assert_int_equal(g, 0);
    assert_int_equal(emu_state_check(st, revoked, 0), EMU_TOKEN_REVOKED);
    assert_int_equal(emu_state_issue(st, revoked, &g), 0);
    assert_int_equal(g, 1);
    assert_int_equal(emu_state_check(st, gone, 0), EMU_TOKEN_DELETED);
    assert_int_equal(emu_state_issue(st, gone, &g), TV_ERR_NOT_FOUND);
    emu_state_free(st);
    emu_persist_close(db);
    unlink(path);
    {
        char side[sizeof(path) + 8];
        snprintf(side, sizeof(side), "%s-wal", path);
        unlink(side);
        snprintf(side, sizeof(side), "%s-shm", path);
        unlink(side);
    }
}

/* customId: the same one gives the same identity (with its current generation) while it lives,
 * another one or none a new identity; after a delete the customId makes a new identity; all of
 * it survives a reopen of the --db file. */
static void test_custom_id(void **state)
{
    char path[] = "/tmp/test_emulator_state_cid_XXXXXX";
    int fd = mkstemp(path);
    struct emu_persist *db = NULL;
    struct emu_state *st = NULL;
    char a[EMU_ID_MAX], a2[EMU_ID_MAX], b[EMU_ID_MAX], c[EMU_ID_MAX], d[EMU_ID_MAX];
    char x[EMU_ID_MAX];
    uint64_t g;
    int existed;

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(emu_persist_open(path, &db), 0);
    assert_int_equal(emu_state_new(db, &st), 0);
    assert_int_equal(emu_state_create_custom(st, RES, "alice", 1, a, &g, &existed), 0);
    assert_int_equal(existed, 0);
    assert_int_equal(emu_state_revoke(st, a, 2), 0);
    assert_int_equal(emu_state_create_custom(st, RES, "alice", 3, a2, &g, &existed), 0);
    assert_int_equal(existed, 1);
    assert_string_equal(a2, a);
    assert_int_equal(g, 1); /* tokens for it must carry the generation after the revoke */
    assert_int_equal(emu_state_create_custom(st, RES, "bob", 4, b, &g, &existed), 0);
    assert_int_equal(existed, 0);
    assert_string_not_equal(b, a);
    assert_int_equal(emu_state_create_custom(st, RES, NULL, 5, x, &g, &existed), 0);
    assert_int_equal(existed, 0);
    assert_int_equal(emu_state_create_custom(st, RES, "", 5, c, &g, &existed), 0);
    assert_string_not_equal(c, x);
    /* A deleted identity is not handed out again: its customId makes a new one. */
    assert_int_equal(emu_state_create_custom(st, RES, "carol", 6, c, &g, &existed), 0);
    assert_int_equal(emu_state_delete(st, c, 7), 0);
    assert_int_equal(emu_state_create_custom(st, RES, "carol", 8, d, &g, &existed), 0);
    assert_int_equal(existed, 0);
    assert_string_not_equal(d, c);
    assert_int_equal(emu_state_live(st), 5);
    emu_state_free(st);
    emu_persist_close(db);

    db = NULL;
    st = NULL;
    assert_int_equal(emu_persist_open(path, &db), 0);
    assert_int_equal(emu_state_new(db, &st), 0);
    assert_int_equal(emu_state_create_custom(st, RES, "alice", 9, x, &g, &existed), 0);
    assert_int_equal(existed, 1);
    assert_string_equal(x, a);
    assert_int_equal(g, 1);
    assert_int_equal(emu_state_create_custom(st, RES, "bob", 9, x, &g, &existed), 0);
    assert_string_equal(x, b);
    assert_int_equal(emu_state_create_custom(st, RES, "carol", 9, x, &g, &existed), 0);
    assert_int_equal(existed, 1);
    assert_string_equal(x, d);
    assert_int_equal(emu_state_live(st), 5);
    emu_state_free(st);
    emu_persist_close(db);
    unlink(path);
    {
        char side[sizeof(path) + 8];
        snprintf(side, sizeof(side), "%s-wal", path);
        unlink(side);
        snprintf(side, sizeof(side), "%s-shm", path);
        unlink(side);
    }
}

/* A --db file written before customId support (no custom_id column) opens: its identities load
 * without a customId, and customIds work from then on. */
static void test_custom_id_old_file(void **state)
{
    char path[] = "/tmp/test_emulator_state_old_XXXXXX";
    int fd = mkstemp(path);
    sqlite3 *raw = NULL;
    struct emu_persist *db = NULL;
    struct emu_state *st = NULL;
    char a[EMU_ID_MAX], b[EMU_ID_MAX];
    uint64_t g;
    int existed;

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw,
                                  "CREATE TABLE identities (id TEXT PRIMARY KEY, created_ms INTEGER"
                                  " NOT NULL, gen INTEGER NOT NULL, revoked_ms INTEGER NOT NULL,"
                                  " deleted_ms INTEGER NOT NULL);"
                                  "INSERT INTO identities VALUES ('8:acs:" RES
                                  "_00000000-0000-4000-8000-000000000001', 1, 0, 0, 0);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(raw);
    assert_int_equal(emu_persist_open(path, &db), 0);
    assert_int_equal(emu_state_new(db, &st), 0);
    assert_int_equal(emu_state_live(st), 1);
    assert_int_equal(emu_state_issue(st, "8:acs:" RES "_00000000-0000-4000-8000-000000000001", &g),
                     0);
    assert_int_equal(emu_state_create_custom(st, RES, "dave", 2, a, &g, &existed), 0);
    emu_state_free(st);
    emu_persist_close(db);
    assert_int_equal(emu_persist_open(path, &db), 0);
    assert_int_equal(emu_state_new(db, &st), 0);
    assert_int_equal(emu_state_create_custom(st, RES, "dave", 3, b, &g, &existed), 0);
    assert_int_equal(existed, 1);
    assert_string_equal(a, b);
    emu_state_free(st);
    emu_persist_close(db);
    unlink(path);
    {
        char side[sizeof(path) + 8];
        snprintf(side, sizeof(side), "%s-wal", path);
        unlink(side);
        snprintf(side, sizeof(side), "%s-shm", path);
        unlink(side);
    }
}

/* Many customIds: the customId index grows past its first size and keeps every binding. */
static void test_custom_id_many(void **state)
{
    struct emu_state *st = NULL;
    enum { N = 3000 };
    static char ids[N][EMU_ID_MAX];
    char cid[32], x[EMU_ID_MAX];
    uint64_t g;
    int existed;

    (void)state;
    assert_int_equal(emu_state_new(NULL, &st), 0);
    for (int i = 0; i < N; i++) {
        snprintf(cid, sizeof(cid), "user-%d", i);
        assert_int_equal(emu_state_create_custom(st, RES, cid, i, ids[i], &g, &existed), 0);
        assert_int_equal(existed, 0);
    }
    for (int i = 0; i < N; i++) {
        snprintf(cid, sizeof(cid), "user-%d", i);
        assert_int_equal(emu_state_create_custom(st, RES, cid, i, x, &g, &existed), 0);
        assert_int_equal(existed, 1);
        assert_string_equal(x, ids[i]);
    }
    assert_int_equal(emu_state_live(st), N);
    emu_state_free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_revocation),      cmocka_unit_test(test_delete_and_unknown),
        cmocka_unit_test(test_many_identities), cmocka_unit_test(test_stats),
        cmocka_unit_test(test_persistence),     cmocka_unit_test(test_custom_id),
        cmocka_unit_test(test_custom_id_many),  cmocka_unit_test(test_custom_id_old_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
