/* Unit tests of the store's side of the user namespaces and the id rule: migration 0003 run on a
 * database built at schema version 2 with rows written the old way (local accounts' mappings
 * and pending deletes move to "local:NAME", other ids stay, OIDC ids in the new namespace become
 * standalone identities), and store_user_list_kept, which pages past rows the id rule refuses
 * while the cursors it hands out stay ones a caller may send back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "core/err.h"
#include "core/ident.h"
#include "store/migrations.h"
#include "store/outbox.h"
#include "store/store.h"
#include "store/users.h"

#define RES "acs.example.com"

struct fx {
    char dir[64];
    char path[128];
};

static void remove_db_files(const char *path)
{
    char p[256];

    unlink(path);
    snprintf(p, sizeof(p), "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", path);
    unlink(p);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/tv-ids-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/tv.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    remove_db_files(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);

    if (rc != SQLITE_OK)
        print_error("%s: %s\n", sql, err != NULL ? err : "?");
    sqlite3_free(err);
    assert_int_equal(rc, SQLITE_OK);
}

/* Builds f->path at schema version 2 exactly as a binary of that version left it: the
 * bookkeeping table the store creates, the compiled-in migrations 1 and 2, their records. */
static sqlite3 *open_v2(const struct fx *f)
{
    sqlite3 *db = NULL;
    char sql[160];

    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    exec_ok(db, "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_ms INTEGER NOT NULL) STRICT");
    for (size_t i = 0; i < store_migrations_count && store_migrations[i].version <= 2; i++) {
        exec_ok(db, store_migrations[i].sql);
        snprintf(sql, sizeof sql, "INSERT INTO schema_migrations VALUES (%d, '%s', 1)",
                 store_migrations[i].version, store_migrations[i].name);
        exec_ok(db, sql);
    }
    return db;
}

static void get_acs(struct store *s, const char *app, const char *want_acs)
{
    struct store_user u;

    memset(&u, 0, sizeof u);
    assert_int_equal(store_user_get(s, app, &u), 0);
    assert_string_equal(u.acs_id, want_acs);
}

static void test_migration_0003(void **state)
{
    struct fx *f = *state;
    struct store *s = NULL;
    struct store_user u;
    char acs[STORE_ID_MAX + 1];
    int cur = 0, found = -1;
    sqlite3 *db = open_v2(f);

    /* Two local accounts; alice has a mapping under her bare name, a pending delete left by
     * bob's earlier identity, and OIDC users: "carol" (no account of that name), and two whose
     * claims already used the new namespace ("local:alice" clashes with alice's new id). */
    exec_ok(db, "INSERT INTO accounts VALUES ('alice', '$argon2id$x', 1, 1),"
                " ('bob', '$argon2id$x', 1, 1)");
    exec_ok(db, "INSERT INTO mappings (app_user_id, acs_id, resource, created_ms) VALUES"
                " ('alice', '8:acs:alice', '" RES "', 1),"
                " ('carol', '8:acs:carol', '" RES "', 1),"
                " ('local:alice', '8:acs:oidc-local-alice', '" RES "', 1),"
                " ('local:zed', '8:acs:oidc-local-zed', '" RES "', 1),"
                " (NULL, '8:acs:guest', '" RES "', 1)");
    exec_ok(db, "INSERT INTO outbox (acs_id, resource, op, next_attempt_ms, created_ms,"
                " app_user_id) VALUES"
                " ('8:acs:bob-old', '" RES "', 'delete', 1, 1, 'bob'),"
                " ('8:acs:carol-old', '" RES "', 'delete', 1, 1, 'carol'),"
                " ('8:acs:oidc-old', '" RES "', 'delete', 1, 1, 'local:bob')");
    sqlite3_close(db);

    assert_int_equal(store_open(f->path, STORE_MIGRATE_YES, &s), 0);
    assert_int_equal(store_schema_version(s, &cur, NULL), 0);
    assert_true(cur >= 3);

    /* The account keeps its identity under its new id; the bare name no longer maps. */
    get_acs(s, "local:alice", "8:acs:alice");
    assert_int_equal(store_user_get(s, "alice", &u), TV_ERR_NOT_FOUND);
    /* An id that is no account name is unchanged. */
    get_acs(s, "carol", "8:acs:carol");
    /* OIDC users that were in the local namespace are now standalone identities, kept. */
    memset(&u, 0, sizeof u);
    assert_int_equal(store_user_get_by_acs(s, "8:acs:oidc-local-alice", &u), 0);
    assert_string_equal(u.app_user_id, "");
    assert_int_equal(store_user_get_by_acs(s, "8:acs:oidc-local-zed", &u), 0);
    assert_string_equal(u.app_user_id, "");
    assert_int_equal(store_user_get(s, "local:zed", &u), TV_ERR_NOT_FOUND);
    assert_int_equal(store_user_get_by_acs(s, "8:acs:guest", &u), 0);
    assert_string_equal(u.app_user_id, "");

    /* Pending deletes follow the same rules. */
    assert_int_equal(store_outbox_pending_for_user(s, "local:bob", &found, acs), 0);
    assert_int_equal(found, 1);
    assert_string_equal(acs, "8:acs:bob-old");
    assert_int_equal(store_outbox_pending_for_user(s, "bob", &found, NULL), 0);
    assert_int_equal(found, 0);
    assert_int_equal(store_outbox_pending_for_user(s, "carol", &found, acs), 0);
    assert_int_equal(found, 1);
    assert_string_equal(acs, "8:acs:carol-old");
    assert_int_equal(store_outbox_pending_for(s, "8:acs:oidc-old", &found), 0);
    assert_int_equal(found, 1);
    store_close(s);
}

/* Rows the way a binary without the id rule stored them. */
static void insert_user(struct store *s, const char *app, const char *acs)
{
    struct store_user u;

    memset(&u, 0, sizeof u);
    snprintf(u.app_user_id, sizeof u.app_user_id, "%s", app);
    snprintf(u.acs_id, sizeof u.acs_id, "%s", acs);
    snprintf(u.resource, sizeof u.resource, "%s", RES);
    u.created_ms = 1;
    assert_int_equal(store_user_insert(s, &u), 0);
}

static int keep_valid(const struct store_user *u, void *ctx)
{
    int *passed = ctx;

    if (ident_check_str(u->app_user_id, STORE_ID_MAX) == IDENT_OK)
        return 1;
    (*passed)++;
    return 0;
}

static void test_list_kept(void **state)
{
    struct fx *f = *state;
    struct store *s = NULL;
    struct store_user page[3];
    char cursor[STORE_ID_MAX + 1] = "";
    const char *want[] = {"a1", "a2", "b1", "c1", "c2"};
    size_t seen = 0;
    int n = 0, passed = 0, pages = 0;

    assert_int_equal(store_open(f->path, STORE_MIGRATE_YES, &s), 0);
    /* Valid ids around runs of refused ones, one run longer than a page. */
    insert_user(s, "a1", "8:acs:1");
    insert_user(s, "a2", "8:acs:2");
    insert_user(s, "a3\xC0\xAF", "8:acs:3");
    insert_user(s, "a4\r\nInjected: 1", "8:acs:4");
    insert_user(s, "b1", "8:acs:5");
    insert_user(s, "b2\xff\xfe", "8:acs:6");
    insert_user(s, "b3\x7f", "8:acs:7");
    insert_user(s, "b4\xC2\x85", "8:acs:8");
    insert_user(s, "b5\xED\xA0\x80", "8:acs:9");
    insert_user(s, "c1", "8:acs:10");
    insert_user(s, "c2", "8:acs:11");
    insert_user(s, "c3\xff", "8:acs:12");
    do {
        assert_int_equal(
            store_user_list_kept(s, pages ? cursor : NULL, 3, keep_valid, &passed, page, &n), 0);
        for (int i = 0; i < n; i++) {
            assert_true(seen < sizeof want / sizeof want[0]);
            assert_string_equal(page[i].app_user_id, want[seen++]);
        }
        if (n > 0)
            snprintf(cursor, sizeof cursor, "%s", page[n - 1].app_user_id);
        pages++;
    } while (n == 3);
    assert_int_equal(seen, 5);
    assert_int_equal(pages, 2);
    assert_int_equal(passed, 7);
    assert_int_equal(store_user_list_kept(s, NULL, 3, NULL, NULL, page, &n), TV_ERR_INVALID);
    assert_int_equal(store_user_list_kept(s, NULL, 0, keep_valid, &passed, page, &n),
                     TV_ERR_INVALID);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migration_0003, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_kept, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
