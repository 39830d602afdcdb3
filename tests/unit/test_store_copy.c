/* Unit tests of store_copy (store/copy.h) in both directions, SQLite -> PostgreSQL and back, on
 * a throw-away PostgreSQL cluster started for this binary (tests/lib/pg.h): every table's rows
 * arrive as they were (mappings with revoked marks, standalone identities, outbox rows with
 * their attempts, API keys' hashes, accounts' hashes and session epochs, audit ids, meta blobs,
 * failed-login state), PostgreSQL's id sequences are moved past the copied ids, a re-run is a
 * no-op, a conflicting destination row stops the copy with nothing written, and a source behind
 * the latest schema is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/err.h"
#include "core/log.h"
#include "core/ratelimit.h"
#include "pg.h"
#include "store/accounts.h"
#include "store/apikeys.h"
#include "store/audit.h"
#include "store/copy.h"
#include "store/login_failures.h"
#include "store/meta.h"
#include "store/outbox.h"
#include "store/store.h"
#include "store/users.h"

#define NOW 1800000000000LL /* a fixed time, so failed-login rows are not pruned as stale */

static struct pg_harness g_pg;
static int g_next_db;
static char g_dir[64];
static int g_next_file;

static int group_setup(void **state)
{
    (void)state;
    log_setup(getenv("TV_LOG_DEBUG") != NULL ? LOGL_DEBUG : LOGL_OFF, 2);
    snprintf(g_dir, sizeof(g_dir), "/tmp/tv-copy-XXXXXX");
    if (mkdtemp(g_dir) == NULL)
        return -1;
    return pg_start(&g_pg);
}

static int group_teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", g_dir);
    return pg_stop(&g_pg);
}

/* A new empty PostgreSQL database's store, migrated. */
static struct store *pg_store_new(void)
{
    char sql[160], uri[PG_URI_MAX], err[512];
    struct store_opts o = {.db = uri, .pool_size = 2};
    struct store *s = NULL;
    int n = ++g_next_db;

    snprintf(sql, sizeof(sql), "CREATE DATABASE c%d OWNER %s", n, g_pg.user);
    assert_int_equal(pg_admin_exec(&g_pg, sql), 0);
    snprintf(sql, sizeof(sql), "c%d", n);
    assert_int_equal(pg_uri_with(&g_pg, "", "", sql, uri, sizeof(uri)), 0);
    assert_int_equal(store_open_opts(&o, STORE_MIGRATE_YES, &s, err, sizeof(err)), 0);
    return s;
}

/* A new SQLite file's store, with the given migrate mode. */
static struct store *sqlite_store_new(int migrate)
{
    char path[128];
    struct store *s = NULL;

    snprintf(path, sizeof(path), "%s/s%d.db", g_dir, ++g_next_file);
    assert_int_equal(store_open(path, migrate, &s), 0);
    return s;
}

static struct store_user user(const char *app, const char *acs, int64_t created)
{
    struct store_user u;

    memset(&u, 0, sizeof(u));
    snprintf(u.app_user_id, sizeof(u.app_user_id), "%s", app);
    snprintf(u.acs_id, sizeof(u.acs_id), "%s", acs);
    snprintf(u.resource, sizeof(u.resource), "acs.example:443");
    u.created_ms = created;
    return u;
}

/* Fills s with rows of every table, each with values a copy must keep. */
static void populate(struct store *s)
{
    struct store_user u;
    struct store_apikey k;
    struct store_account acc;
    struct store_audit au;
    struct ratelimit rl;
    unsigned char blob[100];
    int64_t oid = 0, id = 0, tat = 0;

    u = user("alice", "8:acs:alice", NOW - 5000);
    assert_int_equal(store_user_insert(s, &u), 0);
    u = user("bob", "8:acs:bob", NOW - 4000);
    assert_int_equal(store_user_insert(s, &u), 0);
    u = user("", "8:acs:guest", NOW - 3000); /* standalone: app_user_id NULL */
    assert_int_equal(store_user_insert(s, &u), 0);
    u = user("carol", "8:acs:carol", NOW - 2000);
    assert_int_equal(store_user_insert(s, &u), 0);
    assert_int_equal(store_user_touch_issued(s, "8:acs:alice", NOW - 100), 0);
    assert_int_equal(store_user_set_revoked(s, "8:acs:bob", NOW - 50), 0);
    /* carol is deleted: her mapping goes, an outbox row remembers her identity. */
    assert_int_equal(store_user_delete_begin(s, "8:acs:carol", NOW - 10, &oid), 0);
    assert_int_equal(store_outbox_retry_later(s, oid, NOW + 60000, "ACS said 503"), 0);
    assert_int_equal(store_outbox_add(s, "8:acs:orphan", "acs.example:443", "delete", NOW, &id), 0);

    memset(&k, 0, sizeof(k));
    snprintf(k.name, sizeof(k.name), "backend1");
    snprintf(k.key_id, sizeof(k.key_id), "0123456789abcdef");
    for (size_t i = 0; i < sizeof(k.hash); i++)
        k.hash[i] = (unsigned char)(i * 7);
    k.created_ms = NOW - 9000;
    k.last_used_ms = NOW - 8000;
    assert_int_equal(store_apikey_insert(s, &k), 0);
    snprintf(k.name, sizeof(k.name), "old");
    snprintf(k.key_id, sizeof(k.key_id), "fedcba9876543210");
    k.hash[0] = 0xff;
    k.revoked_ms = NOW - 7000;
    assert_int_equal(store_apikey_insert(s, &k), 0);
    /* backend1 rotated: its previous key (id, hash, end) goes over too. */
    snprintf(k.key_id, sizeof(k.key_id), "00112233445566ff");
    k.hash[0] = 0x5a;
    k.created_ms = NOW - 6000;
    assert_int_equal(store_apikey_rotate(s, "backend1", "0123456789abcdef", &k, NOW + 3600000), 0);

    memset(&acc, 0, sizeof(acc));
    snprintf(acc.name, sizeof(acc.name), "dave");
    snprintf(acc.password_hash, sizeof(acc.password_hash),
             "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA");
    acc.created_ms = NOW - 6000;
    acc.updated_ms = NOW - 6000;
    assert_int_equal(store_account_upsert(s, &acc, NULL), 0);

    memset(&au, 0, sizeof(au));
    for (int i = 0; i < 3; i++) {
        au.ts_ms = NOW + i;
        snprintf(au.action, sizeof(au.action), "issue");
        snprintf(au.outcome, sizeof(au.outcome), "ok");
        snprintf(au.caller, sizeof(au.caller), "user:alice");
        snprintf(au.request_id, sizeof(au.request_id), "req-%d", i);
        assert_int_equal(store_audit_add(s, &au), 0);
    }

    /* A blob with zero bytes (an encrypted key) and an empty one. */
    for (size_t i = 0; i < sizeof(blob); i++)
        blob[i] = (unsigned char)(i % 3 == 0 ? 0 : i);
    assert_int_equal(store_meta_put(s, "session_key", blob, sizeof(blob)), 0);
    assert_int_equal(store_meta_put(s, "empty", NULL, 0), 0);

    assert_int_equal(ratelimit_parse("5/300s", &rl, NULL, 0), 0);
    assert_int_equal(store_login_failure_add(s, "dave", &rl, NOW, &tat), 0);
}

static void users_equal(const struct store_user *a, const struct store_user *b)
{
    assert_string_equal(a->app_user_id, b->app_user_id);
    assert_string_equal(a->acs_id, b->acs_id);
    assert_string_equal(a->resource, b->resource);
    assert_true(a->created_ms == b->created_ms);
    assert_true(a->last_issued_ms == b->last_issued_ms);
    assert_true(a->revoked_ms == b->revoked_ms);
}

/* Every table of a and b holds the same rows, read through the public functions. */
static void stores_equal(struct store *a, struct store *b)
{
    static struct store_user ua[16], ub[16];
    static struct store_outbox_row oa[16], ob[16];
    static struct store_apikey ka[16], kb[16];
    static struct store_account aa[16], ab[16];
    static struct store_audit da[16], db[16];
    struct store_user ga, gb;
    unsigned char va[128], vb[128];
    size_t la = 0, lb = 0;
    int64_t ta = 0, tb = 0;
    int na = 0, nb = 0;

    assert_int_equal(store_user_list(a, NULL, 16, ua, &na), 0);
    assert_int_equal(store_user_list(b, NULL, 16, ub, &nb), 0);
    assert_int_equal(na, 2);
    assert_int_equal(nb, na);
    for (int i = 0; i < na; i++)
        users_equal(&ua[i], &ub[i]);
    assert_int_equal(store_user_get_by_acs(a, "8:acs:guest", &ga), 0);
    assert_int_equal(store_user_get_by_acs(b, "8:acs:guest", &gb), 0);
    users_equal(&ga, &gb);
    assert_string_equal(gb.app_user_id, "");

    assert_int_equal(store_outbox_due(a, INT64_MAX, 16, oa, &na), 0);
    assert_int_equal(store_outbox_due(b, INT64_MAX, 16, ob, &nb), 0);
    assert_int_equal(na, 2);
    assert_int_equal(nb, na);
    for (int i = 0; i < na; i++) {
        assert_true(oa[i].id == ob[i].id);
        assert_string_equal(oa[i].acs_id, ob[i].acs_id);
        assert_string_equal(oa[i].op, ob[i].op);
        assert_int_equal(oa[i].attempts, ob[i].attempts);
        assert_true(oa[i].next_attempt_ms == ob[i].next_attempt_ms);
        assert_string_equal(oa[i].last_error, ob[i].last_error);
        assert_true(oa[i].created_ms == ob[i].created_ms);
        assert_string_equal(oa[i].app_user_id, ob[i].app_user_id);
    }

    assert_int_equal(store_apikey_list(a, NULL, 16, ka, &na), 0);
    assert_int_equal(store_apikey_list(b, NULL, 16, kb, &nb), 0);
    assert_int_equal(na, 2);
    assert_int_equal(nb, na);
    for (int i = 0; i < na; i++) {
        assert_string_equal(ka[i].name, kb[i].name);
        assert_string_equal(ka[i].key_id, kb[i].key_id);
        assert_memory_equal(ka[i].hash, kb[i].hash, STORE_KEY_HASH_LEN);
        assert_true(ka[i].created_ms == kb[i].created_ms);
        assert_true(ka[i].last_used_ms == kb[i].last_used_ms);
        assert_true(ka[i].revoked_ms == kb[i].revoked_ms);
        assert_string_equal(ka[i].prev_key_id, kb[i].prev_key_id);
        assert_true(ka[i].prev_expires_ms == kb[i].prev_expires_ms);
        assert_true(ka[i].prev_last_used_ms == kb[i].prev_last_used_ms);
    }
    /* The rotated name's previous key, hash included, is found by its id in the copy. */
    assert_int_equal(store_apikey_get_by_key_id(a, "0123456789abcdef", &ka[0]), 0);
    assert_int_equal(store_apikey_get_by_key_id(b, "0123456789abcdef", &kb[0]), 0);
    assert_memory_equal(ka[0].hash, kb[0].hash, STORE_KEY_HASH_LEN);
    assert_true(ka[0].expires_ms == NOW + 3600000 && kb[0].expires_ms == ka[0].expires_ms);

    assert_int_equal(store_account_list(a, NULL, 16, aa, &na), 0);
    assert_int_equal(store_account_list(b, NULL, 16, ab, &nb), 0);
    assert_int_equal(na, 1);
    assert_int_equal(nb, na);
    assert_string_equal(aa[0].name, ab[0].name);
    assert_string_equal(aa[0].password_hash, ab[0].password_hash);
    assert_true(aa[0].created_ms == ab[0].created_ms);
    assert_true(aa[0].updated_ms == ab[0].updated_ms);
    assert_true(aa[0].session_epoch == ab[0].session_epoch);
    assert_true(aa[0].session_epoch != 0);

    assert_int_equal(store_audit_list(a, NULL, 16, da, &na), 0);
    assert_int_equal(store_audit_list(b, NULL, 16, db, &nb), 0);
    assert_int_equal(na, 3);
    assert_int_equal(nb, na);
    for (int i = 0; i < na; i++) {
        assert_true(da[i].id == db[i].id);
        assert_true(da[i].ts_ms == db[i].ts_ms);
        assert_string_equal(da[i].request_id, db[i].request_id);
        assert_string_equal(da[i].caller, db[i].caller);
    }

    assert_int_equal(store_meta_get(a, "session_key", va, sizeof(va), &la), 0);
    assert_int_equal(store_meta_get(b, "session_key", vb, sizeof(vb), &lb), 0);
    assert_int_equal(la, 100);
    assert_int_equal(lb, la);
    assert_memory_equal(va, vb, la);
    assert_int_equal(store_meta_get(b, "empty", vb, sizeof(vb), &lb), 0);
    assert_int_equal(lb, 0);

    assert_int_equal(store_login_failure_get(a, "dave", &ta), 0);
    assert_int_equal(store_login_failure_get(b, "dave", &tb), 0);
    assert_true(ta != 0);
    assert_true(ta == tb);
}

static const struct store_copy_count *count_of(const struct store_copy_report *r, const char *t)
{
    for (int i = 0; i < r->ntables; i++) {
        if (strcmp(r->tables[i].table, t) == 0)
            return &r->tables[i];
    }
    fail_msg("no table %s in the report", t);
    return NULL;
}

/* Copies from into an empty to, checks every row, the report, the re-run and that new rows on
 * the destination get fresh ids. */
static void copy_and_check(struct store *from, struct store *to)
{
    struct store_copy_report rep;
    struct store_user u, got;
    struct store_audit au, list[1];
    char err[512];
    int n = 0;

    populate(from);
    assert_int_equal(store_copy(from, to, STORE_COPY_WRITE, &rep, err, sizeof(err)), 0);
    /* 3 mappings, 2 outbox, 2 keys, 1 account, 3 audit, 2 meta, 1 login failure. */
    assert_true(rep.copied == 14);
    assert_true(rep.present == 0);
    assert_int_equal(rep.written, 1);
    assert_true(count_of(&rep, "mappings")->copied == 3);
    assert_true(count_of(&rep, "outbox")->copied == 2);
    assert_true(count_of(&rep, "meta")->copied == 2);
    stores_equal(from, to);

    /* A re-run finds everything in place and writes nothing. */
    assert_int_equal(store_copy(from, to, STORE_COPY_WRITE, &rep, err, sizeof(err)), 0);
    assert_true(rep.copied == 0);
    assert_true(rep.present == 14);
    assert_int_equal(rep.written, 0);
    assert_true(count_of(&rep, "api_keys")->present == 2);

    /* The destination goes on from the copied ids: a new mapping and audit row get ids of
     * their own (on PostgreSQL the sequences must have moved, or id 1 would be drawn again). */
    u = user("erin", "8:acs:erin", NOW);
    assert_int_equal(store_user_insert(to, &u), 0);
    assert_int_equal(store_user_get(to, "erin", &got), 0);
    memset(&au, 0, sizeof(au));
    au.ts_ms = NOW + 10;
    snprintf(au.action, sizeof(au.action), "create");
    snprintf(au.outcome, sizeof(au.outcome), "ok");
    assert_int_equal(store_audit_add(to, &au), 0);
    assert_int_equal(store_audit_list(to, NULL, 1, list, &n), 0);
    assert_int_equal(n, 1);
    assert_true(list[0].id == 4);
    assert_true(list[0].ts_ms == NOW + 10);
}

static void test_sqlite_to_pg(void **state)
{
    struct store *from = sqlite_store_new(STORE_MIGRATE_YES);
    struct store *to = pg_store_new();

    (void)state;
    copy_and_check(from, to);
    store_close(to);
    store_close(from);
}

static void test_pg_to_sqlite(void **state)
{
    struct store *from = pg_store_new();
    struct store *to = sqlite_store_new(STORE_MIGRATE_YES);

    (void)state;
    copy_and_check(from, to);
    store_close(to);
    store_close(from);
}

/* Nothing of from is in to (which held only its own rows before). */
static void nothing_written(struct store *to)
{
    static struct store_account acc[4];
    struct store_user u;
    int64_t n = -1;
    int na = -1;

    assert_int_equal(store_user_get(to, "alice", &u), TV_ERR_NOT_FOUND);
    assert_int_equal(store_outbox_count(to, &n), 0);
    assert_true(n == 0);
    assert_int_equal(store_account_list(to, NULL, 4, acc, &na), 0);
    assert_int_equal(na, 0);
}

/* A destination key holding other values stops the copy before any row is written, and the
 * message names the table and the key; a secondary unique column (acs_id) counts too. */
static void test_conflict_refused(void **state)
{
    struct store *from = sqlite_store_new(STORE_MIGRATE_YES);
    struct store *to = pg_store_new();
    struct store *to2 = sqlite_store_new(STORE_MIGRATE_YES);
    struct store_copy_report rep;
    struct store_apikey k;
    struct store_user u;
    char err[512];

    (void)state;
    populate(from);
    /* Same key name, another hash. */
    memset(&k, 0, sizeof(k));
    snprintf(k.name, sizeof(k.name), "old");
    snprintf(k.key_id, sizeof(k.key_id), "1111111111111111");
    k.created_ms = NOW;
    assert_int_equal(store_apikey_insert(to, &k), 0);
    assert_int_equal(store_copy(from, to, STORE_COPY_WRITE, &rep, err, sizeof(err)),
                     TV_ERR_CONFLICT);
    assert_non_null(strstr(err, "api_keys"));
    assert_non_null(strstr(err, "name \"old\""));
    assert_int_equal(rep.written, 0);
    nothing_written(to);

    /* Another app user already holds alice's ACS identity in the destination, under an id
     * the source does not use (ids 1..4 are taken and given up first). */
    for (int i = 1; i <= 4; i++) {
        char app[16], acs[24];
        snprintf(app, sizeof(app), "x%d", i);
        snprintf(acs, sizeof(acs), "8:acs:x%d", i);
        u = user(app, acs, NOW);
        assert_int_equal(store_user_insert(to2, &u), 0);
    }
    u = user("mallory", "8:acs:alice", NOW);
    assert_int_equal(store_user_insert(to2, &u), 0);
    for (int i = 1; i <= 4; i++) {
        char acs[24];
        snprintf(acs, sizeof(acs), "8:acs:x%d", i);
        assert_int_equal(store_user_delete_begin(to2, acs, NOW, NULL), 0);
    }
    assert_int_equal(store_copy(from, to2, STORE_COPY_WRITE, &rep, err, sizeof(err)),
                     TV_ERR_CONFLICT);
    assert_non_null(strstr(err, "mappings"));
    assert_non_null(strstr(err, "acs_id \"8:acs:alice\""));
    assert_int_equal(store_user_get(to2, "alice", &u), TV_ERR_NOT_FOUND);
    assert_int_equal(store_user_get(to2, "mallory", &u), 0);
    store_close(to2);
    store_close(to);
    store_close(from);
}

/* STORE_COPY_CHECK counts what a copy would write and writes nothing. */
static void test_check_writes_nothing(void **state)
{
    struct store *from = pg_store_new();
    struct store *to = sqlite_store_new(STORE_MIGRATE_YES);
    struct store_copy_report rep;
    char err[512];

    (void)state;
    populate(from);
    assert_int_equal(store_copy(from, to, STORE_COPY_CHECK, &rep, err, sizeof(err)), 0);
    assert_true(rep.copied == 14);
    assert_int_equal(rep.written, 0);
    nothing_written(to);
    store_close(to);
    store_close(from);
}

/* A source behind the latest schema is refused with the command that fixes it. */
static void test_source_schema_behind(void **state)
{
    struct store *from = sqlite_store_new(STORE_MIGRATE_DEFER);
    struct store *to = pg_store_new();
    struct store_copy_report rep;
    char err[512];

    (void)state;
    assert_int_equal(store_copy(from, to, STORE_COPY_WRITE, &rep, err, sizeof(err)), TV_ERR_CONFIG);
    assert_non_null(strstr(err, "source"));
    assert_non_null(strstr(err, "tokenvend migrate"));
    store_close(to);
    store_close(from);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sqlite_to_pg),         cmocka_unit_test(test_pg_to_sqlite),
        cmocka_unit_test(test_conflict_refused),     cmocka_unit_test(test_check_writes_nothing),
        cmocka_unit_test(test_source_schema_behind),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
