/* Unit tests of src/core/ident.c (the id rule, the UTF-8 decoder, display sanitising, the local
 * namespace) and of the loopback test of URLs in src/core/netaddr.c. Table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/ident.h"
#include "core/netaddr.h"

struct id_case {
    const char *s;
    size_t len; /* 0: strlen */
    enum ident_fault want;
};

static void test_ident_check_table(void **state)
{
    static char long_ok[IDENT_MAX + 1], too_long[IDENT_MAX + 2];
    const struct id_case cases[] = {
        {"alice", 0, IDENT_OK},
        {"local:alice", 0, IDENT_OK},
        {"8:acs:0d1f_00000020-1234", 0, IDENT_OK},
        {"j\xC3\xBCrgen", 0, IDENT_OK},    /* U+00FC */
        {"\xE2\x82\xAC", 0, IDENT_OK},     /* U+20AC */
        {"\xF0\x9F\x98\x80", 0, IDENT_OK}, /* U+1F600 */
        {"\xF4\x8F\xBF\xBF", 0, IDENT_OK}, /* U+10FFFF, the last code point */
        {"\xC2\xA0", 0, IDENT_OK},         /* U+00A0, just past C1 */
        {"a b", 0, IDENT_OK},              /* a space is printable */
        {"", 0, IDENT_EMPTY},
        {NULL, 0, IDENT_EMPTY},
        {"\xC0\xAF", 0, IDENT_BAD_UTF8},         /* overlong '/' (the path) */
        {"\xE0\x80\xAF", 0, IDENT_BAD_UTF8},     /* overlong, three bytes */
        {"\xF0\x80\x80\xAF", 0, IDENT_BAD_UTF8}, /* overlong, four bytes */
        {"\xff\xfe", 0, IDENT_BAD_UTF8},         /* the path */
        {"\xED\xA0\x80", 0, IDENT_BAD_UTF8},     /* U+D800, a surrogate */
        {"\xED\xBF\xBF", 0, IDENT_BAD_UTF8},     /* U+DFFF */
        {"\xF4\x90\x80\x80", 0, IDENT_BAD_UTF8}, /* U+110000 */
        {"\xF5\x80\x80\x80", 0, IDENT_BAD_UTF8}, /* lead byte past U+10FFFF */
        {"abc\xC3", 0, IDENT_BAD_UTF8},          /* truncated at the end */
        {"\x80", 0, IDENT_BAD_UTF8},             /* stray continuation */
        {"\xC3\x28", 0, IDENT_BAD_UTF8},         /* missing continuation */
        {"x\r\nInjected: 1", 0, IDENT_CONTROL},  /* the path */
        {"tab\there", 0, IDENT_CONTROL},
        {"del\x7f", 0, IDENT_CONTROL},
        {"c1\xC2\x80", 0, IDENT_CONTROL}, /* U+0080 */
        {"c1\xC2\x9F", 0, IDENT_CONTROL}, /* U+009F */
        {"nul\0x", 5, IDENT_CONTROL},     /* a NUL inside the given length */
        {long_ok, 0, IDENT_OK},
        {too_long, 0, IDENT_TOO_LONG},
    };

    (void)state;
    memset(long_ok, 'a', IDENT_MAX);
    memset(too_long, 'a', IDENT_MAX + 1);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct id_case *c = &cases[i];
        size_t len = c->len ? c->len : (c->s ? strlen(c->s) : 0);
        enum ident_fault got = ident_check(c->s, len, IDENT_MAX);
        if (got != c->want)
            print_error("case %zu: got %d, want %d\n", i, (int)got, (int)c->want);
        assert_int_equal(got, c->want);
        if (c->len == 0)
            assert_int_equal(ident_check_str(c->s, IDENT_MAX), c->want);
    }
    /* Names have their own ceiling. */
    assert_int_equal(
        ident_check_str("0123456789012345678901234567890123456789012345678901234567890123",
                        IDENT_NAME_MAX),
        IDENT_OK);
    assert_int_equal(
        ident_check_str("01234567890123456789012345678901234567890123456789012345678901234",
                        IDENT_NAME_MAX),
        IDENT_TOO_LONG);
}

static void test_ident_decode(void **state)
{
    uint32_t cp = 0;

    (void)state;
    assert_int_equal(ident_utf8_decode((const unsigned char *)"A", 1, &cp), 1);
    assert_int_equal(cp, 'A');
    assert_int_equal(ident_utf8_decode((const unsigned char *)"\xE2\x82\xAC", 3, &cp), 3);
    assert_int_equal(cp, 0x20AC);
    /* The bytes are there but the caller says fewer are available. */
    assert_int_equal(ident_utf8_decode((const unsigned char *)"\xE2\x82\xAC", 2, &cp), 0);
    assert_int_equal(ident_utf8_decode((const unsigned char *)"\xC1\xBF", 2, &cp), 0);
    assert_int_equal(ident_utf8_decode((const unsigned char *)"", 0, &cp), 0);
}

static void test_ident_explain(void **state)
{
    char msg[128];

    (void)state;
    assert_string_equal(ident_explain(IDENT_BAD_UTF8, "userId", IDENT_MAX, msg, sizeof msg),
                        "userId is not valid UTF-8");
    assert_string_equal(ident_explain(IDENT_CONTROL, "acsId", IDENT_MAX, msg, sizeof msg),
                        "acsId must not contain control characters");
    assert_string_equal(ident_explain(IDENT_TOO_LONG, "userId", IDENT_MAX, msg, sizeof msg),
                        "userId must be 1..256 bytes");
    assert_string_equal(ident_explain(IDENT_EMPTY, "NAME", IDENT_NAME_MAX, msg, sizeof msg),
                        "NAME must be 1..64 bytes");
}

static void test_ident_sanitize(void **state)
{
    char out[32];

    (void)state;
    assert_int_equal(ident_sanitize("plain \xC3\xBC", out, sizeof out), 0);
    assert_string_equal(out, "plain \xC3\xBC");
    assert_int_equal(ident_sanitize("x\xff\xfe", out, sizeof out), 1);
    assert_string_equal(out, "x\xEF\xBF\xBD\xEF\xBF\xBD");
    assert_int_equal(ident_sanitize("a\r\nb", out, sizeof out), 1);
    assert_string_equal(out, "a\xEF\xBF\xBD\xEF\xBF\xBD"
                             "b");
    assert_int_equal(ident_sanitize("\xC2\x85", out, sizeof out), 1);
    assert_string_equal(out, "\xEF\xBF\xBD");
    /* Cut on a character boundary, and said so. */
    assert_int_equal(ident_sanitize("ab\xE2\x82\xAC", out, 5), 1);
    assert_string_equal(out, "ab");
    assert_int_equal(ident_check_str(out, IDENT_MAX), IDENT_OK);
}

static void test_ident_local_and_cut(void **state)
{
    char out[IDENT_LOCAL_ID_CAP];

    (void)state;
    assert_int_equal(ident_local_user("alice", out, sizeof out), 0);
    assert_string_equal(out, "local:alice");
    assert_int_equal(ident_local_user("bad\x01", out, sizeof out), -1);
    assert_string_equal(out, "");
    assert_int_equal(
        ident_local_user("01234567890123456789012345678901234567890123456789012345678901234", out,
                         sizeof out),
        -1);
    assert_int_equal(ident_local_user("alice", out, 8), -1);
    assert_int_equal(ident_utf8_cut("ab\xC3\xBC", 4), 4);
    assert_int_equal(ident_utf8_cut("ab\xC3\xBC", 3), 2);
    assert_int_equal(ident_utf8_cut("ab\xF0\x9F\x98", 5), 2);
    assert_int_equal(ident_utf8_cut("abc", 3), 3);
    assert_int_equal(ident_utf8_cut("", 0), 0);
    /* A prefix of at most max bytes: "a\xC3\xA9" cut at 2 would split the e-acute. */
    assert_int_equal(ident_utf8_prefix("a\xC3\xA9", 2), 1);
    assert_int_equal(ident_utf8_prefix("a\xC3\xA9", 3), 3);
    assert_int_equal(ident_utf8_prefix("a\xC3\xA9", 90), 3);
    assert_int_equal(ident_utf8_prefix("ab\xE2\x82\xAC", 4), 2);
    assert_int_equal(ident_utf8_prefix("", 5), 0);
}

static void test_url_loopback(void **state)
{
    static const struct {
        const char *url;
        int loopback;
    } cases[] = {
        {"http://127.0.0.1:8080/", 1},
        {"http://127.9.8.7/jwks", 1},
        {"HTTP://LOCALHOST:3000", 1},
        {"http://localhost", 1},
        {"http://[::1]:9000/x", 1},
        {"https://127.0.0.1/", 1},
        {"http://user:pw@127.0.0.1/", 1},
        {"http://idp.example/", 0},
        {"http://10.0.0.1/", 0},
        {"http://0.0.0.0:80/", 0},
        {"http://128.0.0.1/", 0},
        {"http://127.1/", 0}, /* not dotted-quad: not recognised */
        {"http://localhost.example/", 0},
        {"http://127.0.0.1.nip.io/", 0},
        {"http://127.0.0.1@evil.example/", 0},  /* userinfo, then the real host */
        {"http://evil.example#@127.0.0.1/", 0}, /* the fragment is not the authority */
        {"http://evil.example/?@127.0.0.1", 0},
        {"http://[::ffff:127.0.0.1]/", 0},
        {"http://[::1/", 0},
        {"http://%31%32%37.0.0.1/", 0},
        {"ftp://127.0.0.1/", 0},
        {"http://", 0},
        {NULL, 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int got = netaddr_url_is_loopback(cases[i].url);
        if (got != cases[i].loopback)
            print_error("%s: got %d\n", cases[i].url ? cases[i].url : "(null)", got);
        assert_int_equal(got, cases[i].loopback);
    }
    assert_int_equal(netaddr_url_transport_ok("https://idp.example/", 0), 1);
    assert_int_equal(netaddr_url_transport_ok("http://idp.example/", 0), 0);
    assert_int_equal(netaddr_url_transport_ok("http://idp.example/", 1), 1);
    assert_int_equal(netaddr_url_transport_ok("http://127.0.0.1:9/", 0), 1);
    assert_int_equal(netaddr_url_transport_ok("ftp://idp.example/", 1), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ident_check_table),   cmocka_unit_test(test_ident_decode),
        cmocka_unit_test(test_ident_explain),       cmocka_unit_test(test_ident_sanitize),
        cmocka_unit_test(test_ident_local_and_cut), cmocka_unit_test(test_url_loopback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
