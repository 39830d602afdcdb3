/* jsonx_parse and jsonx_put_wiped leave no copy of a secret value in memory the allocator takes
 * back: neither json-c's tokener scratch buffer (which grows by realloc while a long string is
 * read) nor the tree's own string. Observed with tests/lib/freecheck.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "core/jsonx.h"
#include "freecheck.h"

/* Longer than the tokener's first scratch buffer (32 bytes), so it would grow while reading. */
static const char SECRET[] =
    "tv-secret-9c2e4a6b8d0f1e3c5a7b9d1f3e5c7a9b2d4f6e8a0c1b3d5f7e9a2c4b6d8f"
    "0e1a3c5b7d9f2e4a6c8b0d1f3e5a7c9b1d3f5e7a9c2b4d6f8e0a1c3b5d7f9e2a4c6b";

/* A body like an identity endpoint's answer: the secret first, then shorter strings that would
 * overwrite only the start of the scratch buffer. */
static void body(char *out, size_t cap)
{
    snprintf(out, cap,
             "{\"access_token\":\"%s\",\"token_type\":\"Bearer\",\"expires_in\":\"3599\","
             "\"resource\":\"https://communication.azure.com/\",\"n\":[\"a\",\"%s\"]}",
             SECRET, SECRET);
}

/* The detector itself sees a block freed with the secret in it. */
static void test_detector_sees_unwiped_free(void **state)
{
    char *p = malloc(512);
    (void)state;
    assert_non_null(p);
    memcpy(p + 100, SECRET, sizeof SECRET);
    freecheck_begin(SECRET);
    free(p);
    assert_int_equal(freecheck_end(), 1);
}

/* Parse, read the secret, put the tree wiped: no unwiped copy was freed. */
static void test_parse_then_put_wiped(void **state)
{
    static char text[1024];
    struct json_object *o = NULL;
    const char *tok = NULL;
    (void)state;
    body(text, sizeof text);
    freecheck_begin(SECRET);
    assert_int_equal(jsonx_parse(text, strlen(text), sizeof text, &o), 0);
    assert_int_equal(jsonx_get_string(o, "access_token", 4096, &tok), 0);
    assert_string_equal(tok, SECRET);
    jsonx_put_wiped(o);
    assert_int_equal(freecheck_end(), 0);
}

/* A plain json_object_put of the same tree does free the secret unwiped: the check above
 * can fail, and jsonx_put_wiped is what makes the difference for the tree. */
static void test_plain_put_leaves_copy(void **state)
{
    static char text[1024];
    struct json_object *o = NULL;
    (void)state;
    body(text, sizeof text);
    assert_int_equal(jsonx_parse(text, strlen(text), sizeof text, &o), 0);
    freecheck_begin(SECRET);
    json_object_put(o);
    assert_true(freecheck_end() >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detector_sees_unwiped_free),
        cmocka_unit_test(test_parse_then_put_wiped),
        cmocka_unit_test(test_plain_put_leaves_copy),
    };
    freecheck_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
