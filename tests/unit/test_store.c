/* Unit tests of the store's lifecycle and mappings, on a temporary file or, with
 * TV_TEST_STORE=pg, on a database of a throw-away PostgreSQL cluster (tests/lib/store_fx.h; the
 * SQLite-only cases skip there): pragmas (WAL), file and
 * directory creation, migrations (idempotent, deferred, a missing version filled in, refusing a
 * newer or unknown schema), mapping conflicts on both unique keys, concurrent first inserts from
 * threads, list pagination, and the atomic delete that queues an outbox row. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <pthread.h>
#include <sqlite3.h>

#include "core/err.h"
#include "store/migrations.h"
#include "store/outbox.h"
#include "store/store.h"
#include "store/users.h"
#include "store_fx.h"

#define RES "acs.example.com"

struct fx {
    char dir[64];
    char path[128];
    struct store_fx sx; /* the backend's place for the store */
    struct store *s;
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
    snprintf(f->dir, sizeof(f->dir), "/tmp/tv-store-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    /* A sub-directory that does not exist yet: store_open must create it. */
    snprintf(f->path, sizeof(f->path), "%s/data/tv.db", f->dir);
    if (store_fx_new(&f->sx, f->path) != 0 || store_fx_open(&f->sx, 1, &f->s) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char p[160];

    store_close(f->s);
    store_fx_drop(&f->sx);
    remove_db_files(f->path);
    snprintf(p, sizeof(p), "%s/data", f->dir);
    rmdir(p);
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
    snprintf(u.resource, sizeof(u.resource), "%s", RES);
    u.created_ms = 1700000000000;
    return u;
}

static void test_open_pragmas_and_files(void **state)
{
    struct fx *f = *state;
    struct stat sb;
    int wal = 0, cur = -1, latest = -1;

    assert_int_equal(store_is_wal(f->s, &wal), 0);
    /* WAL is SQLite's journal mode: a PostgreSQL store reports 0. */
    assert_int_equal(wal, !store_fx_is_pg());
    if (!store_fx_is_pg()) {
        assert_int_equal(stat(f->path, &sb), 0);
        assert_int_equal(sb.st_mode & 0777, 0600);
    }
    assert_int_equal(store_schema_version(f->s, &cur, &latest), 0);
    assert_true(latest >= 1);
    assert_int_equal(cur, latest);
    assert_int_equal(latest, store_migrations[store_migrations_count - 1].version);
    assert_int_equal(store_ping_write(f->s), 0);
}

static void test_migrations_idempotent(void **state)
{
    struct fx *f = *state;
    int applied = -1, cur = 0;
    struct store_user u = make_user("alice", "8:acs:a");

    assert_int_equal(store_migrate(f->s, &applied), 0);
    assert_int_equal(applied, 0);
    assert_int_equal(store_user_insert(f->s, &u), 0);
    store_close(f->s);
    f->s = NULL;
    /* Reopening with and without migrate finds the schema current and the data intact. */
    assert_int_equal(store_fx_open(&f->sx, STORE_MIGRATE_NO, &f->s), 0);
    assert_int_equal(store_migrate(f->s, &applied), 0);
    assert_int_equal(applied, 0);
    assert_int_equal(store_user_get(f->s, "alice", &u), 0);
    assert_string_equal(u.acs_id, "8:acs:a");
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(store_fx_open(&f->sx, STORE_MIGRATE_YES, &f->s), 0);
    assert_int_equal(store_schema_version(f->s, &cur, NULL), 0);
    assert_int_equal(cur, store_migrations[store_migrations_count - 1].version);
}

static void test_migrate_modes(void **state)
{
    struct fx *f = *state;
    char path[160];
    struct store_fx m;
    struct store *s = NULL;
    int applied = 0, cur = -1;

    snprintf(path, sizeof(path), "%s/modes.db", f->dir);
    assert_int_equal(store_fx_new(&m, path), 0);
    /* A fresh file is behind: refused without migrate... */
    assert_int_equal(store_fx_open(&m, STORE_MIGRATE_NO, &s), TV_ERR_CONFIG);
    assert_null(s);
    /* ...opened as-is with DEFER, then migrated explicitly (the `tokenvend migrate` path). */
    assert_int_equal(store_fx_open(&m, STORE_MIGRATE_DEFER, &s), 0);
    assert_int_equal(store_schema_version(s, &cur, NULL), 0);
    assert_int_equal(cur, 0);
    assert_int_equal(store_migrate(s, &applied), 0);
    assert_int_equal(applied, (int)store_migrations_count);
    assert_int_equal(store_migrate(s, &applied), 0);
    assert_int_equal(applied, 0);
    store_close(s);
    s = NULL;
    assert_int_equal(store_fx_open(&m, STORE_MIGRATE_NO, &s), 0);
    store_close(s);
    s = NULL;
    assert_int_equal(store_fx_open(&m, 7, &s), TV_ERR_INVALID);
    store_fx_drop(&m);
    remove_db_files(path);
}

/* Runs sql on db, failing the test on an error. */
static void exec_sql(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

    if (rc != SQLITE_OK)
        fprintf(stderr, "sqlite: %s\n", msg ? msg : "?");
    sqlite3_free(msg);
    assert_int_equal(rc, SQLITE_OK);
}

/* A database holding every version but 3 (as one restored by hand, or migrated by a branch
 * that had 4 and 5 before 3, can) is behind, not current: opening it applies 3 (its effect
 * shows: an account's mapping moves to "local:NAME") and nothing twice. */
static void test_migration_gap_filled(void **state)
{
    struct fx *f = *state;
    char path[160], sql[200];
    struct store *s = NULL;
    struct store_user u;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int cur = -1, applied = -1;

    if (store_fx_is_pg())
        skip(); /* writes SQLite's dialect by hand; test_pg_migrate covers PostgreSQL's gaps */
    snprintf(path, sizeof(path), "%s/gap.db", f->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    exec_sql(db, "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY,"
                 " name TEXT NOT NULL, applied_ms INTEGER NOT NULL) STRICT");
    for (size_t i = 0; i < store_migrations_count; i++) {
        if (store_migrations[i].version == 3)
            continue;
        exec_sql(db, store_migrations[i].sql);
        snprintf(sql, sizeof sql, "INSERT INTO schema_migrations VALUES (%d, '%s', 1)",
                 store_migrations[i].version, store_migrations[i].name);
        exec_sql(db, sql);
    }
    exec_sql(db, "INSERT INTO accounts (name, password_hash, created_ms, updated_ms)"
                 " VALUES ('alice', 'x', 1, 1)");
    exec_sql(db, "INSERT INTO mappings (app_user_id, acs_id, resource, created_ms)"
                 " VALUES ('alice', '8:acs:alice', 'r', 1)");
    sqlite3_close(db);
    db = NULL;

    /* Behind: refused without migrate, reported as complete up to 2. */
    assert_int_equal(store_open(path, STORE_MIGRATE_NO, &s), TV_ERR_CONFIG);
    assert_int_equal(store_open(path, STORE_MIGRATE_DEFER, &s), 0);
    assert_int_equal(store_schema_version(s, &cur, NULL), 0);
    assert_int_equal(cur, 2);
    assert_int_equal(store_migrate(s, &applied), 0);
    assert_int_equal(applied, 1);
    assert_int_equal(store_schema_version(s, &cur, NULL), 0);
    assert_int_equal(cur, store_migrations[store_migrations_count - 1].version);
    assert_int_equal(store_migrate(s, &applied), 0);
    assert_int_equal(applied, 0);
    memset(&u, 0, sizeof u);
    assert_int_equal(store_user_get(s, "local:alice", &u), 0);
    assert_string_equal(u.acs_id, "8:acs:alice");
    store_close(s);
    s = NULL;
    assert_int_equal(store_open(path, STORE_MIGRATE_NO, &s), 0);
    store_close(s);

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT group_concat(version) FROM (SELECT version FROM "
                                        "schema_migrations ORDER BY version)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    {
        /* Every compiled-in version, the gap included. */
        char all[256] = "";
        size_t at = 0;
        for (size_t i = 0; i < store_migrations_count; i++)
            at += (size_t)snprintf(all + at, sizeof all - at, "%s%d", i ? "," : "",
                                   store_migrations[i].version);
        assert_string_equal((const char *)sqlite3_column_text(st, 0), all);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    remove_db_files(path);
}

/* Records a migration row behind the store's back, as another binary would (the statement is
 * the same in both dialects). */
static void record_version(struct fx *f, const char *sql)
{
    sqlite3 *db = NULL;

    if (store_fx_is_pg()) {
        assert_int_equal(store_fx_admin_exec(&f->sx, sql), 0);
        return;
    }
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    exec_sql(db, sql);
    sqlite3_close(db);
}

/* A version the binary does not know, even one below its newest, is refused like a newer
 * schema: another binary made it. */
static void test_unknown_version_refused(void **state)
{
    struct fx *f = *state;
    struct store *s = NULL;
    int applied = 0;

    record_version(f, "INSERT INTO schema_migrations VALUES (-7, 'branch_only', 0)");
    assert_int_equal(store_migrate(f->s, &applied), TV_ERR_CONFIG);
    assert_int_equal(applied, 0);
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(store_fx_open(&f->sx, STORE_MIGRATE_YES, &s), TV_ERR_CONFIG);
    assert_int_equal(store_fx_open(&f->sx, STORE_MIGRATE_NO, &s), TV_ERR_CONFIG);
    assert_int_equal(store_fx_open(&f->sx, STORE_MIGRATE_DEFER, &s), TV_ERR_CONFIG);
    assert_null(s);
}

static void test_newer_database_refused(void **state)
{
    struct fx *f = *state;
    struct store *s = NULL;
    int applied = 0;

    /* Another (newer) binary migrates the database while this one has it open. */
    record_version(f, "INSERT INTO schema_migrations VALUES (9999, '9999_future', 0)");
    assert_int_equal(store_migrate(f->s, &applied), TV_ERR_CONFIG);
    assert_int_equal(applied, 0);
    store_close(f->s);
    f->s = NULL;
    /* No mode opens a database this binary does not understand. */
    assert_int_equal(store_fx_open(&f->sx, STORE_MIGRATE_YES, &s), TV_ERR_CONFIG);
    assert_int_equal(store_fx_open(&f->sx, STORE_MIGRATE_NO, &s), TV_ERR_CONFIG);
    assert_int_equal(store_fx_open(&f->sx, STORE_MIGRATE_DEFER, &s), TV_ERR_CONFIG);
    assert_null(s);
}

static void test_not_a_database(void **state)
{
    struct fx *f = *state;
    char path[160];
    struct store *s = NULL;
    FILE *fp;

    if (store_fx_is_pg())
        skip(); /* a file that is not a database: SQLite only */
    snprintf(path, sizeof(path), "%s/junk.db", f->dir);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("this is not an SQLite database, just some text long enough to have a header..\n"
          "this is not an SQLite database, just some text long enough to have a header..\n",
          fp);
    fclose(fp);
    assert_int_equal(store_open(path, 1, &s), TV_ERR_IO);
    assert_null(s);
    remove_db_files(path);
    assert_int_equal(store_open("", 1, &s), TV_ERR_INVALID);
    assert_int_equal(store_open(NULL, 1, &s), TV_ERR_INVALID);
}

static void test_user_insert_get(void **state)
{
    struct fx *f = *state;
    struct store_user u = make_user("alice", "8:acs:r_1");
    struct store_user g;

    assert_int_equal(store_user_insert(f->s, &u), 0);
    assert_int_equal(store_user_get(f->s, "alice", &g), 0);
    assert_string_equal(g.app_user_id, "alice");
    assert_string_equal(g.acs_id, "8:acs:r_1");
    assert_string_equal(g.resource, RES);
    assert_true(g.created_ms == 1700000000000);
    assert_true(g.last_issued_ms == 0 && g.revoked_ms == 0);
    memset(&g, 0, sizeof(g));
    assert_int_equal(store_user_get_by_acs(f->s, "8:acs:r_1", &g), 0);
    assert_string_equal(g.app_user_id, "alice");
    assert_int_equal(store_user_get(f->s, "bob", &g), TV_ERR_NOT_FOUND);
    assert_int_equal(store_user_get_by_acs(f->s, "8:acs:none", &g), TV_ERR_NOT_FOUND);
    assert_int_equal(store_user_get(f->s, "", &g), TV_ERR_INVALID);

    /* Standalone identity: no app user, found by ACS id, reported with "". */
    u = make_user("", "8:acs:guest1");
    assert_int_equal(store_user_insert(f->s, &u), 0);
    assert_int_equal(store_user_get_by_acs(f->s, "8:acs:guest1", &g), 0);
    assert_string_equal(g.app_user_id, "");

    assert_int_equal(store_user_touch_issued(f->s, "8:acs:r_1", 5000), 0);
    assert_int_equal(store_user_touch_issued(f->s, "8:acs:r_1", 4000), 0); /* older: kept */
    assert_int_equal(store_user_set_revoked(f->s, "8:acs:r_1", 6000), 0);
    assert_int_equal(store_user_get(f->s, "alice", &g), 0);
    assert_true(g.last_issued_ms == 5000);
    assert_true(g.revoked_ms == 6000);
    assert_int_equal(store_user_touch_issued(f->s, "8:acs:none", 1), TV_ERR_NOT_FOUND);
    assert_int_equal(store_user_set_revoked(f->s, "8:acs:none", 1), TV_ERR_NOT_FOUND);
}

static void test_user_conflicts_table(void **state)
{
    static const struct {
        const char *app, *acs;
        int want;
    } cases[] = {
        {"carol", "8:acs:c1", 0},
        {"carol", "8:acs:c2", TV_ERR_CONFLICT}, /* same app user */
        {"dave", "8:acs:c1", TV_ERR_CONFLICT},  /* same ACS id */
        {"", "8:acs:c1", TV_ERR_CONFLICT},      /* standalone reusing an ACS id */
        {"", "8:acs:g1", 0},                    /* standalones do not collide on "" */
        {"", "8:acs:g2", 0},
        {"", "8:acs:g2", TV_ERR_CONFLICT},
        {"dave", "", TV_ERR_INVALID}, /* ACS id required */
        {"Carol", "8:acs:c3", 0},     /* ids are case-sensitive */
    };
    struct fx *f = *state;
    struct store_user u;
    char longid[STORE_ID_MAX + 2];
    int64_t n = 0;
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        u = make_user(cases[i].app, cases[i].acs);
        if (store_user_insert(f->s, &u) != cases[i].want)
            fail_msg("case %zu (%s, %s)", i, cases[i].app, cases[i].acs);
    }
    assert_int_equal(store_user_count(f->s, &n), 0);
    assert_true(n == 4);

    u = make_user("x", "8:acs:x");
    u.resource[0] = '\0';
    assert_int_equal(store_user_insert(f->s, &u), TV_ERR_INVALID);
    /* The longest allowed id fits; the struct cannot hold a longer one NUL-terminated. */
    memset(longid, 'a', STORE_ID_MAX);
    longid[STORE_ID_MAX] = '\0';
    u = make_user(longid, "8:acs:long");
    assert_int_equal(store_user_insert(f->s, &u), 0);
    memset(longid, 'a', STORE_ID_MAX + 1);
    longid[STORE_ID_MAX + 1] = '\0';
    assert_int_equal(store_user_get(f->s, longid, &u), TV_ERR_INVALID);
}

#define RACERS 8

struct racer {
    struct store *s;
    pthread_barrier_t *start;
    int index;
    int rc;
};

static void *race_insert(void *arg)
{
    struct racer *r = arg;
    struct store_user u;
    char acs[64];

    snprintf(acs, sizeof(acs), "8:acs:race_%d", r->index);
    u = make_user("racer", acs);
    pthread_barrier_wait(r->start);
    r->rc = store_user_insert(r->s, &u);
    return NULL;
}

static void test_concurrent_first_insert(void **state)
{
    struct fx *f = *state;
    pthread_t th[RACERS];
    struct racer r[RACERS];
    pthread_barrier_t start;
    struct store_user u;
    int i, ok = 0, conflict = 0;
    int64_t n = 0;

    pthread_barrier_init(&start, NULL, RACERS);
    for (i = 0; i < RACERS; i++) {
        r[i] = (struct racer){f->s, &start, i, -1};
        assert_int_equal(pthread_create(&th[i], NULL, race_insert, &r[i]), 0);
    }
    for (i = 0; i < RACERS; i++) {
        pthread_join(th[i], NULL);
        ok += r[i].rc == 0;
        conflict += r[i].rc == TV_ERR_CONFLICT;
    }
    pthread_barrier_destroy(&start);
    assert_int_equal(ok, 1);
    assert_int_equal(conflict, RACERS - 1);
    assert_int_equal(store_user_count(f->s, &n), 0);
    assert_true(n == 1);
    assert_int_equal(store_user_get(f->s, "racer", &u), 0);
}

/* Two store handles on one database (two processes, or replicas, in production) racing for one
 * user. */
static void test_concurrent_two_handles(void **state)
{
    struct fx *f = *state;
    struct store *other = NULL;
    pthread_t th[RACERS];
    struct racer r[RACERS];
    pthread_barrier_t start;
    int i, ok = 0;
    int64_t n = 0;

    assert_int_equal(store_fx_open(&f->sx, 0, &other), 0);
    /* Each opening has its own name among the processes sharing the database. */
    assert_int_equal(strlen(store_instance(other)), STORE_INSTANCE_MAX);
    assert_int_equal(strspn(store_instance(other), "0123456789abcdef"), STORE_INSTANCE_MAX);
    assert_string_not_equal(store_instance(other), store_instance(f->s));
    pthread_barrier_init(&start, NULL, RACERS);
    for (i = 0; i < RACERS; i++) {
        r[i] = (struct racer){i % 2 ? other : f->s, &start, i, -1};
        assert_int_equal(pthread_create(&th[i], NULL, race_insert, &r[i]), 0);
    }
    for (i = 0; i < RACERS; i++) {
        pthread_join(th[i], NULL);
        ok += r[i].rc == 0;
        if (r[i].rc != 0)
            assert_int_equal(r[i].rc, TV_ERR_CONFLICT);
    }
    pthread_barrier_destroy(&start);
    assert_int_equal(ok, 1);
    assert_int_equal(store_user_count(other, &n), 0);
    assert_true(n == 1);
    store_close(other);
}

#define MIXERS 4
#define MIX_OPS 300

static void *mix_worker(void *arg)
{
    struct racer *r = arg;
    struct store_user u, g;
    char app[64], acs[64];
    int i;

    pthread_barrier_wait(r->start);
    r->rc = 0;
    for (i = 0; i < MIX_OPS && r->rc == 0; i++) {
        snprintf(app, sizeof(app), "mix_%d_%d", r->index, i);
        snprintf(acs, sizeof(acs), "8:acs:mix_%d_%d", r->index, i);
        u = make_user(app, acs);
        r->rc = store_user_insert(r->s, &u);
        /* Read-your-write through the reader pool: a committed insert is visible at once. */
        if (r->rc == 0)
            r->rc = store_user_get(r->s, app, &g);
        if (r->rc == 0 && strcmp(g.acs_id, acs) != 0)
            r->rc = -1;
        if (r->rc == 0)
            r->rc = store_user_touch_issued(r->s, acs, i + 1);
    }
    return NULL;
}

static void test_concurrent_mixed(void **state)
{
    struct fx *f = *state;
    pthread_t th[MIXERS];
    struct racer r[MIXERS];
    pthread_barrier_t start;
    int i;
    int64_t n = 0;

    pthread_barrier_init(&start, NULL, MIXERS);
    for (i = 0; i < MIXERS; i++) {
        r[i] = (struct racer){f->s, &start, i, -1};
        assert_int_equal(pthread_create(&th[i], NULL, mix_worker, &r[i]), 0);
    }
    for (i = 0; i < MIXERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(r[i].rc, 0);
    }
    pthread_barrier_destroy(&start);
    assert_int_equal(store_user_count(f->s, &n), 0);
    assert_true(n == MIXERS * MIX_OPS);
}

static void test_user_list_pagination(void **state)
{
    struct fx *f = *state;
    struct store_user u, page[10];
    char app[32], acs[32], cursor[STORE_ID_MAX + 1] = "";
    int i, n = -1, total = 0, pages = 0;

    /* Inserted out of order; standalone identities must not appear in the list. */
    for (i = 24; i >= 0; i--) {
        snprintf(app, sizeof(app), "user%02d", i);
        snprintf(acs, sizeof(acs), "8:acs:u%02d", i);
        u = make_user(app, acs);
        assert_int_equal(store_user_insert(f->s, &u), 0);
    }
    for (i = 0; i < 3; i++) {
        snprintf(acs, sizeof(acs), "8:acs:guest%d", i);
        u = make_user("", acs);
        assert_int_equal(store_user_insert(f->s, &u), 0);
    }
    do {
        assert_int_equal(store_user_list(f->s, pages ? cursor : NULL, 10, page, &n), 0);
        for (i = 0; i < n; i++) {
            snprintf(app, sizeof(app), "user%02d", total + i);
            assert_string_equal(page[i].app_user_id, app);
        }
        total += n;
        pages++;
        if (n > 0)
            snprintf(cursor, sizeof(cursor), "%s", page[n - 1].app_user_id);
    } while (n == 10);
    assert_int_equal(total, 25);
    assert_int_equal(pages, 3);
    assert_int_equal(store_user_list(f->s, "user24", 10, page, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_user_list(f->s, "user05", 2, page, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(page[0].app_user_id, "user06");
    /* Byte order, as SQLite's BINARY collation, whatever the database's own collation: upper
     * case before '_' before lower case ("user.." sorts last). */
    u = make_user("Zed", "8:acs:zed");
    assert_int_equal(store_user_insert(f->s, &u), 0);
    u = make_user("_x", "8:acs:under");
    assert_int_equal(store_user_insert(f->s, &u), 0);
    assert_int_equal(store_user_list(f->s, NULL, 3, page, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(page[0].app_user_id, "Zed");
    assert_string_equal(page[1].app_user_id, "_x");
    assert_string_equal(page[2].app_user_id, "user00");
    assert_int_equal(store_user_list(f->s, "Zed", 1, page, &n), 0);
    assert_string_equal(page[0].app_user_id, "_x");
    assert_int_equal(store_user_list(f->s, NULL, 0, page, &n), TV_ERR_INVALID);
    assert_int_equal(store_user_list(f->s, NULL, STORE_LIST_MAX + 1, page, &n), TV_ERR_INVALID);
}

static void test_delete_begin_and_outbox(void **state)
{
    struct fx *f = *state;
    struct store_user u = make_user("erin", "8:acs:e1");
    struct store_outbox_row rows[4];
    int64_t id = 0, id2 = 0, cnt = -1, next = 0;
    int n = -1, found = -1;

    assert_int_equal(store_user_insert(f->s, &u), 0);
    assert_int_equal(store_outbox_next_due(f->s, &next, &found), 0);
    assert_int_equal(found, 0);
    assert_int_equal(store_outbox_pending_for(f->s, "8:acs:e1", &found), 0);
    assert_int_equal(found, 0);

    assert_int_equal(store_user_delete_begin(f->s, "8:acs:e1", 1000, &id), 0);
    assert_true(id > 0);
    /* Both effects at once: the mapping is gone and the outbox holds the delete. */
    assert_int_equal(store_user_get(f->s, "erin", &u), TV_ERR_NOT_FOUND);
    assert_int_equal(store_user_get_by_acs(f->s, "8:acs:e1", &u), TV_ERR_NOT_FOUND);
    assert_int_equal(store_outbox_pending_for(f->s, "8:acs:e1", &found), 0);
    assert_int_equal(found, 1);
    assert_int_equal(store_outbox_count(f->s, &cnt), 0);
    assert_true(cnt == 1);
    assert_int_equal(store_user_delete_begin(f->s, "8:acs:e1", 1000, &id2), TV_ERR_NOT_FOUND);
    assert_true(id2 == 0);

    assert_int_equal(store_outbox_due(f->s, 999, 4, rows, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_outbox_due(f->s, 1000, 4, rows, &n), 0);
    assert_int_equal(n, 1);
    assert_true(rows[0].id == id);
    assert_string_equal(rows[0].acs_id, "8:acs:e1");
    assert_string_equal(rows[0].resource, RES);
    assert_string_equal(rows[0].op, "delete");
    assert_int_equal(rows[0].attempts, 0);
    assert_string_equal(rows[0].last_error, "");

    assert_int_equal(store_outbox_retry_later(f->s, id, 5000, "acs_unavailable: 503"), 0);
    assert_int_equal(store_outbox_due(f->s, 4999, 4, rows, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_outbox_next_due(f->s, &next, &found), 0);
    assert_int_equal(found, 1);
    assert_true(next == 5000);
    assert_int_equal(store_outbox_due(f->s, 5000, 4, rows, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].attempts, 1);
    assert_string_equal(rows[0].last_error, "acs_unavailable: 503");

    /* The same user may get a new identity while the old one's delete is pending. */
    u = make_user("erin", "8:acs:e2");
    assert_int_equal(store_user_insert(f->s, &u), 0);

    assert_int_equal(store_outbox_done(f->s, id), 0);
    assert_int_equal(store_outbox_done(f->s, id), TV_ERR_NOT_FOUND);
    assert_int_equal(store_outbox_retry_later(f->s, id, 1, NULL), TV_ERR_NOT_FOUND);
    assert_int_equal(store_outbox_count(f->s, &cnt), 0);
    assert_true(cnt == 0);

    /* A direct add (identity without a mapping) and an over-long error message. */
    {
        char longerr[600];

        memset(longerr, 'x', sizeof(longerr) - 1);
        longerr[sizeof(longerr) - 1] = '\0';
        assert_int_equal(store_outbox_add(f->s, "8:acs:orphan", RES, "delete", 10, &id), 0);
        assert_int_equal(store_outbox_retry_later(f->s, id, 20, longerr), 0);
        assert_int_equal(store_outbox_due(f->s, 20, 4, rows, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(strlen(rows[0].last_error), STORE_OUTBOX_ERROR_MAX);
        assert_int_equal(store_outbox_add(f->s, "8:acs:orphan", RES, "explode", 10, &id),
                         TV_ERR_INVALID);
    }
}

/* Schema 2: the outbox row remembers the app user (a repeated delete answers 202 while it is
 * pending), a delete can lease its row for its own attempt, and a worker's lease sees rows
 * finished meanwhile. */
static void test_outbox_user_and_lease(void **state)
{
    struct fx *f = *state;
    struct store_user u = make_user("gina", "8:acs:g1");
    struct store_user guest = make_user("", "8:acs:guest1");
    struct store_outbox_row rows[4];
    char acs[STORE_ID_MAX + 1];
    int64_t id = 0, gid = 0, next = 0;
    int n = -1, found = -1;

    assert_int_equal(store_user_insert(f->s, &u), 0);
    assert_int_equal(store_user_insert(f->s, &guest), 0);
    assert_int_equal(store_outbox_pending_for_user(f->s, "gina", &found, acs), 0);
    assert_int_equal(found, 0);

    /* Leased for the caller's own attempt: not due before due_ms. */
    assert_int_equal(store_user_delete_begin_due(f->s, "8:acs:g1", 1000, 31000, &id), 0);
    assert_int_equal(store_outbox_due(f->s, 30999, 4, rows, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_outbox_next_due(f->s, &next, &found), 0);
    assert_true(found == 1 && next == 31000);
    assert_int_equal(store_outbox_due(f->s, 31000, 4, rows, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].app_user_id, "gina");
    assert_true(rows[0].created_ms == 1000);
    assert_int_equal(store_outbox_pending_for_user(f->s, "gina", &found, acs), 0);
    assert_int_equal(found, 1);
    assert_string_equal(acs, "8:acs:g1");
    assert_int_equal(store_outbox_pending_for_user(f->s, "gin", &found, NULL), 0);
    assert_int_equal(found, 0);
    assert_int_equal(store_outbox_pending_for_user(f->s, "", &found, NULL), TV_ERR_INVALID);

    /* A standalone identity's row has no app user. */
    assert_int_equal(store_user_delete_begin(f->s, "8:acs:guest1", 50, &gid), 0);
    assert_int_equal(store_outbox_due(f->s, 50, 4, rows, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].app_user_id, "");

    /* A lease moves the due time without counting an attempt; a finished row cannot be leased. */
    assert_int_equal(store_outbox_lease(f->s, gid, 9000), 0);
    assert_int_equal(store_outbox_due(f->s, 8999, 4, rows, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_outbox_due(f->s, 9000, 4, rows, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].attempts, 0);
    assert_int_equal(store_outbox_done(f->s, gid), 0);
    assert_int_equal(store_outbox_lease(f->s, gid, 9000), TV_ERR_NOT_FOUND);

    assert_int_equal(store_outbox_done(f->s, id), 0);
    assert_int_equal(store_outbox_pending_for_user(f->s, "gina", &found, acs), 0);
    assert_int_equal(found, 0);
}

static void test_delete_survives_reopen(void **state)
{
    struct fx *f = *state;
    struct store_user u = make_user("frank", "8:acs:f1");
    struct store_outbox_row rows[2];
    int64_t id = 0;
    int n = 0;

    assert_int_equal(store_user_insert(f->s, &u), 0);
    assert_int_equal(store_user_delete_begin(f->s, "8:acs:f1", 42, &id), 0);
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(store_fx_open(&f->sx, 0, &f->s), 0);
    assert_int_equal(store_outbox_due(f->s, 42, 2, rows, &n), 0);
    assert_int_equal(n, 1);
    assert_true(rows[0].id == id);
    assert_int_equal(store_user_get(f->s, "frank", &u), TV_ERR_NOT_FOUND);
}

/* PostgreSQL stopped and started under an open store: every call fails with
 * TV_ERR_UNAVAILABLE (the service's 503) while it is down, nothing is half-written, and the
 * same handle works again once it is back, without a reopen. */
static void test_pg_outage(void **state)
{
    struct fx *f = *state;
    struct store_user u = make_user("olga", "8:acs:o1");
    struct store_user v = make_user("pete", "8:acs:p1");
    int64_t n = -1;

    if (!store_fx_is_pg())
        skip(); /* a server to stop: PostgreSQL only */
    assert_int_equal(store_user_insert(f->s, &u), 0);
    assert_int_equal(store_fx_pause(), 0);
    assert_int_equal(store_user_get(f->s, "olga", &u), TV_ERR_UNAVAILABLE);
    assert_int_equal(store_user_insert(f->s, &v), TV_ERR_UNAVAILABLE);
    assert_int_equal(store_user_delete_begin(f->s, "8:acs:o1", 1, NULL), TV_ERR_UNAVAILABLE);
    assert_int_equal(store_ping_write(f->s), TV_ERR_UNAVAILABLE);
    assert_int_equal(store_fx_resume(), 0);
    assert_int_equal(store_ping_write(f->s), 0);
    assert_int_equal(store_user_get(f->s, "olga", &u), 0);
    assert_string_equal(u.acs_id, "8:acs:o1");
    assert_int_equal(store_user_get(f->s, "pete", &v), TV_ERR_NOT_FOUND);
    assert_int_equal(store_outbox_count(f->s, &n), 0);
    assert_true(n == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_pragmas_and_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrations_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_gap_filled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_version_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_database_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_insert_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_conflicts_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_first_insert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_two_handles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_mixed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_list_pagination, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_begin_and_outbox, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_survives_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_user_and_lease, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_outage, setup, teardown),
    };

    return cmocka_run_group_tests(tests, store_fx_group_setup, store_fx_group_teardown);
}
