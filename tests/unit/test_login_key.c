/* Unit test of the client key the per-address login cap counts by: IPv4 addresses as they
 * are, IPv6 addresses by their /64, so one subscriber's prefix counts as one client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/api/api_int.h"

static void test_client_key(void **state)
{
    static const struct {
        const char *in, *key;
    } cases[] = {
        {"127.0.0.2", "127.0.0.2"},
        {"203.0.113.7", "203.0.113.7"},
        {"2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"},
        {"2001:db8:1:2::1", "2001:db8:1:2::/64"},
        {"2001:db8:1:3::1", "2001:db8:1:3::/64"},
        {"::1", "::/64"},
        {"::ffff:192.0.2.1", "::ffff:192.0.2.1"}, /* v4-mapped: the IPv4 address counts */
        {"not an address", "not an address"},
    };
    char out[64];

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        api_login_client_key(cases[i].in, out, sizeof out);
        assert_string_equal(out, cases[i].key);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_client_key)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
