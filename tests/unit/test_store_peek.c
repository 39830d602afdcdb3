/* Unit tests of store_peek (config check's read-only look into an existing SQLite database): a
 * missing file is reported and never created; an existing one gives its schema version and a
 * meta value; a version this binary does not know is flagged; and the look leaves no -wal or
 * -shm file behind when there was none. */
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
#include <sqlite3.h>

#include "core/err.h"
#include "store/meta.h"
#include "store/peek.h"
#include "store/store.h"

static char dir[64], path[128];

static int exists(const char *suffix)
{
    char p[160];
    struct stat sb;

    snprintf(p, sizeof p, "%s%s", path, suffix);
    return stat(p, &sb) == 0;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/tv-peek-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/tv.db", dir);
    return 0;
}

static int teardown(void **state)
{
    char p[160];
    (void)state;
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
    rmdir(dir);
    return 0;
}

static void test_missing(void **state)
{
    struct store_peek pk;
    char err[256], buf[64];
    (void)state;

    assert_int_equal(store_peek(path, "k", buf, sizeof buf, &pk, err, sizeof err),
                     TV_ERR_NOT_FOUND);
    assert_false(exists(""));
}

static void test_existing(void **state)
{
    struct store *s = NULL;
    struct store_peek pk;
    char err[256], buf[64];
    sqlite3 *db;
    (void)state;

    assert_int_equal(store_open(path, STORE_MIGRATE_YES, &s), 0);
    assert_int_equal(store_meta_put(s, "k", "value", 5), 0);
    store_close(s); /* the last close checkpoints and removes the -wal */
    assert_false(exists("-wal"));

    assert_int_equal(store_peek(path, "k", buf, sizeof buf, &pk, err, sizeof err), 0);
    assert_int_equal(pk.version, pk.latest);
    assert_false(pk.foreign);
    assert_true(pk.has_meta);
    assert_int_equal(pk.len, 5);
    assert_memory_equal(buf, "value", 5);
    assert_false(exists("-wal"));
    assert_false(exists("-shm"));

    assert_int_equal(store_peek(path, "other", buf, sizeof buf, &pk, err, sizeof err), 0);
    assert_false(pk.has_meta);
    assert_int_equal(store_peek(path, "k", buf, 2, &pk, err, sizeof err), TV_ERR_TOO_LARGE);

    /* A migration this binary does not know: a newer binary wrote the file. */
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO schema_migrations (version, name, applied_ms) "
                                  "VALUES (9999, 'future', 0)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(store_peek(path, NULL, buf, sizeof buf, &pk, err, sizeof err), 0);
    assert_true(pk.foreign);
    assert_int_equal(pk.version, 9999);
}

static void test_not_a_database(void **state)
{
    struct store_peek pk;
    char err[256], buf[64];
    FILE *f;
    (void)state;

    f = fopen(path, "w");
    assert_non_null(f);
    fputs("this is not a database, but text long enough to be read as a header.........\n", f);
    assert_int_equal(fclose(f), 0);
    assert_int_not_equal(store_peek(path, "k", buf, sizeof buf, &pk, err, sizeof err), 0);
    assert_non_null(strstr(err, path));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_existing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
