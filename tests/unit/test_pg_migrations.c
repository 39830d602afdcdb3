/* The PostgreSQL migrations (migrations/postgres/) are the SQLite ones (migrations/) in another
 * dialect: the same versions with the same names, in order, none empty. A migration added to
 * one folder only fails here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "store/migrations.h"

static void test_same_versions_and_names(void **state)
{
    (void)state;
    assert_true(store_migrations_count > 0);
    assert_int_equal(store_pg_migrations_count, store_migrations_count);
    for (size_t i = 0; i < store_migrations_count; i++) {
        assert_int_equal(store_pg_migrations[i].version, store_migrations[i].version);
        assert_string_equal(store_pg_migrations[i].name, store_migrations[i].name);
        assert_true(strlen(store_pg_migrations[i].sql) > 0);
        if (i > 0)
            assert_true(store_pg_migrations[i].version > store_pg_migrations[i - 1].version);
    }
}

/* The runner owns the transaction; a file with its own would end it early. */
static void test_no_transaction_control(void **state)
{
    (void)state;
    for (size_t i = 0; i < store_pg_migrations_count; i++) {
        assert_null(strstr(store_pg_migrations[i].sql, "BEGIN;"));
        assert_null(strstr(store_pg_migrations[i].sql, "COMMIT;"));
        assert_null(strstr(store_pg_migrations[i].sql, ") STRICT")); /* SQLite only */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_versions_and_names),
        cmocka_unit_test(test_no_transaction_control),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
