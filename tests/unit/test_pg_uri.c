/* PostgreSQL URIs (store/pg_pool.h): which strings are URIs, and redaction of their passwords
 * (after user:, and in password= parameters) before anything is logged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "core/dburi.h"

static void redacts(const char *uri, const char *want)
{
    char out[256];

    assert_int_equal(dburi_redact(uri, out, sizeof(out)), 0);
    assert_string_equal(out, want);
}

static void test_is_uri(void **state)
{
    (void)state;
    assert_true(dburi_is_pg("postgresql://h/db"));
    assert_true(dburi_is_pg("postgres://u@h:5432/db"));
    assert_false(dburi_is_pg("data/tokenvend.db"));
    assert_false(dburi_is_pg("/postgresql://x"));
    assert_false(dburi_is_pg("postgresql:/h/db"));
    assert_false(dburi_is_pg(NULL));
}

static void test_redact(void **state)
{
    (void)state;
    redacts("postgresql://tv:s3cret@127.0.0.1:5432/tv", "postgresql://tv:***@127.0.0.1:5432/tv");
    redacts("postgres://tv@db/tv", "postgres://tv@db/tv");
    redacts("postgresql://db:5432/tv", "postgresql://db:5432/tv");
    redacts("postgresql://db/tv?sslmode=require&password=s3cret&connect_timeout=5",
            "postgresql://:***@db/tv?connect_timeout=5&sslmode=require");
    redacts("postgresql://u:a%40b@h/d?password=p", "postgresql://u:***@h/d");
    /* libpq decodes parameter names too (review9): pass%77ord= is password=. */
    redacts("postgresql://u@h/d?pass%77ord=s3cret", "postgresql://u:***@h/d");
    /* An '@' in a password= value is hidden with it (review9); an unencoded '@' in the user
     * information as well as another one: nothing but the scheme is shown. */
    redacts("postgresql://h/d?user=u&password=s3cret@rest", "postgresql://u:***@h/d");
    redacts("postgresql://u:p@ss/w@h/d",
            "postgresql://(not shown: more than one '@'; write '@' in a password as %40)");
    redacts("postgresql://u:s3cret@h/d?no_such_parameter=1",
            "postgresql://(not shown: not a URI libpq reads)");
    redacts("host=h password=s3cret user=u", "user=u password=*** host=h");
    redacts("sslpassword=s3cret host=h", "host=h sslpassword=***");
    assert_true(dburi_is_conninfo("host=h dbname=d"));
    assert_false(dburi_is_conninfo("data/a=b.db"));
    assert_false(dburi_is_conninfo("data/tokenvend.db"));
    assert_true(dburi_has_secret("postgresql://u@h/d?pass%77ord=x"));
    assert_false(dburi_has_secret("postgresql://u@h/d"));
    assert_false(dburi_has_secret("data/tokenvend.db"));
}

static void test_redact_bounds(void **state)
{
    char small[16];

    (void)state;
    assert_int_equal(dburi_redact("postgresql://u:p@host/database", small, sizeof(small)),
                     TV_ERR_TOO_LARGE);
    assert_string_equal(small, "");
    assert_int_equal(dburi_redact(NULL, small, sizeof(small)), TV_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_is_uri),
        cmocka_unit_test(test_redact),
        cmocka_unit_test(test_redact_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
