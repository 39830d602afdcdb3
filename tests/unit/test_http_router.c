/* Unit tests for the http module's pure parts: route patterns (syntax and matching with
 * parameters), percent-decoding of parameters, request-id validation, UUIDs, and the CORS
 * origin allow-list. Table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "../../src/http/http_int.h"

static void test_pattern_check(void **state)
{
    static const struct {
        const char *pattern;
        int ok;
    } cases[] = {
        {"/", 1},
        {"/healthz", 1},
        {"/internal/users/{}", 1},
        {"/internal/users/{}/token", 1},
        {"/a/{}/b/{}/c/{}/d/{}", 1},
        {"/a/{}/b/{}/c/{}/d/{}/e/{}", 0}, /* more than HTTP_MAX_PARAMS */
        {"", 0},
        {"healthz", 0},
        {"/trailing/", 0},
        {"//double", 0},
        {"/users/{id}", 0},
        {"/users/x{}", 0},
        {"/users/{", 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = http_pattern_check(cases[i].pattern);
        if ((rc == 0) != cases[i].ok)
            fail_msg("pattern \"%s\": rc %d", cases[i].pattern, rc);
    }
}

static void test_pattern_match(void **state)
{
    static const struct {
        const char *pattern, *path;
        int match;
        size_t nparams;
        const char *p0, *p1;
    } cases[] = {
        {"/", "/", 1, 0, NULL, NULL},
        {"/", "/x", 0, 0, NULL, NULL},
        {"/healthz", "/healthz", 1, 0, NULL, NULL},
        {"/healthz", "/healthz/", 0, 0, NULL, NULL},
        {"/healthz", "/healthzz", 0, 0, NULL, NULL},
        {"/healthz", "/health", 0, 0, NULL, NULL},
        {"/healthz", "", 0, 0, NULL, NULL},
        {"/internal/users/{}", "/internal/users/alice", 1, 1, "alice", NULL},
        {"/internal/users/{}", "/internal/users/", 0, 0, NULL, NULL},
        {"/internal/users/{}", "/internal/users", 0, 0, NULL, NULL},
        {"/internal/users/{}", "/internal/users/a/b", 0, 0, NULL, NULL},
        {"/internal/users/{}/token", "/internal/users/a%2Fb/token", 1, 1, "a%2Fb", NULL},
        {"/internal/users/{}/token", "/internal/users/bob/revoke", 0, 0, NULL, NULL},
        {"/x/{}/y/{}", "/x/1/y/2", 1, 2, "1", "2"},
        {"/x/{}/y/{}", "/x//y/2", 0, 0, NULL, NULL},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct http_span sp[HTTP_MAX_PARAMS];
        size_t n = 99;
        const char *path = cases[i].path;
        int m = http_pattern_match(cases[i].pattern, path, strlen(path), sp, &n);
        if (m != cases[i].match)
            fail_msg("%s vs %s: match %d", cases[i].pattern, path, m);
        if (!m)
            continue;
        assert_int_equal(n, cases[i].nparams);
        if (n > 0) {
            assert_int_equal(sp[0].len, strlen(cases[i].p0));
            assert_memory_equal(path + sp[0].off, cases[i].p0, sp[0].len);
        }
        if (n > 1) {
            assert_int_equal(sp[1].len, strlen(cases[i].p1));
            assert_memory_equal(path + sp[1].off, cases[i].p1, sp[1].len);
        }
    }
}

static void test_percent_decode(void **state)
{
    static const struct {
        const char *in, *out; /* out NULL = rejected */
    } cases[] = {
        {"alice", "alice"},
        {"a%2Fb", "a/b"},
        {"a%2fb", "a/b"},
        {"%E2%9C%93", "\xe2\x9c\x93"},
        {"a+b", "a+b"}, /* '+' is only a space in form bodies, not in paths */
        {"8:acs:x_y", "8:acs:x_y"},
        {"%", NULL},
        {"%4", NULL},
        {"ab%", NULL},
        {"%zz", NULL},
        {"a%00b", NULL},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out = NULL;
        int rc = http_percent_decode(cases[i].in, strlen(cases[i].in), &out);
        if (cases[i].out) {
            if (rc != 0)
                fail_msg("\"%s\" rejected", cases[i].in);
            assert_string_equal(out, cases[i].out);
        } else {
            assert_int_equal(rc, TV_ERR_PARSE);
            assert_null(out);
        }
        free(out);
    }
}

static void test_req_id(void **state)
{
    char uuid[37], uuid2[37];
    char long_id[HTTP_REQ_ID_MAX + 2];

    (void)state;
    assert_true(http_req_id_valid("abc-DEF_123.x"));
    assert_false(http_req_id_valid(""));
    assert_false(http_req_id_valid(NULL));
    assert_false(http_req_id_valid("with space"));
    assert_false(http_req_id_valid("semi;colon"));
    assert_false(http_req_id_valid("new\nline"));
    memset(long_id, 'a', HTTP_REQ_ID_MAX);
    long_id[HTTP_REQ_ID_MAX] = '\0';
    assert_true(http_req_id_valid(long_id));
    long_id[HTTP_REQ_ID_MAX] = 'a';
    long_id[HTTP_REQ_ID_MAX + 1] = '\0';
    assert_false(http_req_id_valid(long_id));
    http_uuid_new(uuid);
    http_uuid_new(uuid2);
    assert_int_equal(strlen(uuid), 36);
    assert_true(http_req_id_valid(uuid));
    assert_int_equal(uuid[14], '4');
    assert_string_not_equal(uuid, uuid2);
}

static void test_cors(void **state)
{
    struct http_listener l;

    (void)state;
    memset(&l, 0, sizeof(l));
    assert_int_equal(http_cors_parse(&l, " https://a.example , http://localhost:3000,,"), 0);
    assert_int_equal(l.norigins, 2);
    assert_true(http_cors_allowed(&l, "https://a.example"));
    assert_true(http_cors_allowed(&l, "http://localhost:3000"));
    assert_false(http_cors_allowed(&l, "https://a.example.evil"));
    assert_false(http_cors_allowed(&l, "https://A.example"));
    assert_false(http_cors_allowed(&l, "null"));
    assert_false(http_cors_allowed(&l, ""));
    assert_false(http_cors_allowed(&l, NULL));
    for (size_t i = 0; i < l.norigins; i++)
        free(l.origins[i]);
    free(l.origins);

    memset(&l, 0, sizeof(l));
    assert_int_equal(http_cors_parse(&l, "*"), 0);
    assert_true(l.any_origin);
    assert_true(http_cors_allowed(&l, "https://anything.example"));
    assert_false(http_cors_listed(&l, "https://anything.example"));
    assert_false(http_cors_listed(&l, "*"));

    /* An origin named next to "*" is listed (the session routes and the login cookie rely on
     * it); any other is only allowed. */
    memset(&l, 0, sizeof(l));
    assert_int_equal(http_cors_parse(&l, "*, https://a.example"), 0);
    assert_true(http_cors_listed(&l, "https://a.example"));
    assert_false(http_cors_listed(&l, "https://b.example"));
    assert_true(http_cors_allowed(&l, "https://b.example"));
    assert_false(http_cors_listed(&l, NULL));
    for (size_t i = 0; i < l.norigins; i++)
        free(l.origins[i]);
    free(l.origins);

    memset(&l, 0, sizeof(l));
    assert_int_equal(http_cors_parse(&l, NULL), 0);
    assert_false(http_cors_listed(&l, "https://a.example"));
    assert_false(http_cors_allowed(&l, "https://a.example"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pattern_check),  cmocka_unit_test(test_pattern_match),
        cmocka_unit_test(test_percent_decode), cmocka_unit_test(test_req_id),
        cmocka_unit_test(test_cors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
