/* Unit tests of the Cookie header reading behind POST /api/session/refresh and /logout
 * (api_cookie_find, src/api/session.c): table-driven over header lines. Only an exact name
 * match counts; other cookies of any shape are skipped; a second tv_refresh is a conflict; more
 * than 8 lines or a line over 8 KiB is refused; spaces around a value are dropped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/api_int.h"
#include "core/err.h"

struct cookie_case {
    const char *lines[3];
    int rc;
    const char *value; /* expected value when rc == 0 */
};

static void test_cookie_table(void **state)
{
    static const struct cookie_case cases[] = {
        {{"tv_refresh=abc", NULL}, 0, "abc"},
        {{"a=1; tv_refresh=abc; b=2", NULL}, 0, "abc"},
        {{"a=1;tv_refresh=abc ;b", NULL}, 0, "abc"},
        {{"  tv_refresh=abc  ", NULL}, 0, "abc"},
        {{"\ttv_refresh=", NULL}, 0, ""},
        {{"a=1", "tv_refresh=xyz", NULL}, 0, "xyz"},
        {{"tv_refresh=a=b", NULL}, 0, "a=b"},
        {{"x_tv_refresh=abc; tv_refreshx=1; TV_REFRESH=2", NULL}, TV_ERR_NOT_FOUND, NULL},
        {{"", NULL}, TV_ERR_NOT_FOUND, NULL},
        {{";;;; ; =; tv_refresh", NULL}, TV_ERR_NOT_FOUND, NULL},
        {{NULL}, TV_ERR_NOT_FOUND, NULL},
        {{"tv_refresh=a; tv_refresh=a", NULL}, TV_ERR_CONFLICT, NULL},
        {{"tv_refresh=a", "tv_refresh=b", NULL}, TV_ERR_CONFLICT, NULL},
        {{"tv_refresh=a; tv_refresh=", NULL}, TV_ERR_CONFLICT, NULL},
    };
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct cookie_case *c = &cases[i];
        const char *v = NULL;
        size_t n = 0, len = 0;
        while (n < 3 && c->lines[n] != NULL)
            n++;
        int rc = api_cookie_find(c->lines, n, "tv_refresh", &v, &len);
        assert_int_equal(rc, c->rc);
        if (rc == 0) {
            assert_int_equal(len, strlen(c->value));
            assert_memory_equal(v, c->value, len);
        }
    }
}

static void test_cookie_bounds(void **state)
{
    const char *lines[9];
    char *big = malloc(8194);
    const char *v = NULL;
    size_t len = 0;
    (void)state;

    assert_non_null(big);
    for (size_t i = 0; i < 9; i++)
        lines[i] = "a=1";
    assert_int_equal(api_cookie_find(lines, 8, "tv_refresh", &v, &len), TV_ERR_NOT_FOUND);
    assert_int_equal(api_cookie_find(lines, 9, "tv_refresh", &v, &len), TV_ERR_INVALID);
    memset(big, 'x', 8193);
    memcpy(big, "tv_refresh=", 11);
    big[8192] = '\0'; /* 8192 bytes: the most a line may have */
    lines[0] = big;
    assert_int_equal(api_cookie_find(lines, 1, "tv_refresh", &v, &len), 0);
    assert_int_equal(len, 8192 - 11);
    big[8192] = 'x';
    big[8193] = '\0';
    assert_int_equal(api_cookie_find(lines, 1, "tv_refresh", &v, &len), TV_ERR_INVALID);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cookie_table),
        cmocka_unit_test(test_cookie_bounds),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
