/* Unit tests of the emulator's request-level HMAC check (emu_auth_check): a correctly signed
 * request passes; a one-byte change of any signed input, a missing header and a stale date in
 * either direction fail; the real SDK's requests (tests/vectors/acs-hmac-sdk*.json) pass. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "acs/signer.h"
#include "core/b64.h"
#include "core/clock.h"
#include "core/err.h"
#include "emulator/auth.h"

#define SKEW 600

static const uint8_t test_key[] =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
#define KEY_LEN 64

struct signed_req {
    char method[16];
    char path[256];
    char host[64];
    char date[CLOCK_HTTP_DATE_LEN];
    char body[256];
    char hash[ACS_SHA256_B64_LEN];
    char auth[ACS_AUTH_MAX];
    time_t now;
};

static void make_req(struct signed_req *r)
{
    memset(r, 0, sizeof(*r));
    r->now = 1795770000; /* a fixed "now"; the date is signed at it */
    snprintf(r->method, sizeof(r->method), "POST");
    snprintf(r->path, sizeof(r->path),
             "/identities/8%%3Aacs%%3Aabc_def/:issueAccessToken?api-version=2023-10-01");
    snprintf(r->host, sizeof(r->host), "127.0.0.1:8090");
    clock_http_date(r->now, r->date);
    snprintf(r->body, sizeof(r->body), "{\"scopes\":[\"chat\"],\"expiresInMinutes\":60}");
    assert_int_equal(acs_sign(test_key, KEY_LEN, r->method, r->path, r->host, r->date, r->body,
                              strlen(r->body), r->hash, r->auth),
                     0);
}

static int check(const struct signed_req *r, int64_t now)
{
    struct emu_auth_input in = {
        .method = r->method,
        .path_and_query = r->path,
        .host = r->host,
        .x_ms_date = r->date,
        .date = NULL,
        .content_sha256 = r->hash,
        .authorization = r->auth,
        .body = r->body,
        .body_len = strlen(r->body),
    };
    char why[128];

    return emu_auth_check(test_key, KEY_LEN, &in, now, SKEW, why, sizeof(why));
}

static void test_accepts_signed(void **state)
{
    struct signed_req r;

    (void)state;
    make_req(&r);
    assert_int_equal(check(&r, r.now), 0);
    /* Within the skew on both sides. */
    assert_int_equal(check(&r, r.now + SKEW), 0);
    assert_int_equal(check(&r, r.now - SKEW), 0);
}

static void test_rejects_stale(void **state)
{
    struct signed_req r;

    (void)state;
    make_req(&r);
    assert_int_equal(check(&r, r.now + SKEW + 1), TV_ERR_UNAUTHORIZED);
    assert_int_equal(check(&r, r.now - SKEW - 1), TV_ERR_UNAUTHORIZED);
}

/* Flips each byte of one field in turn (to another printable character) and expects a
 * rejection every time. */
static void mutate_field(char *field, size_t cap, const struct signed_req *r)
{
    size_t n = strlen(field);

    assert_true(n < cap);
    for (size_t i = 0; i < n; i++) {
        char saved = field[i];
        field[i] = saved == 'A' ? 'B' : 'A';
        assert_int_equal(check(r, r->now), TV_ERR_UNAUTHORIZED);
        field[i] = saved;
    }
    assert_int_equal(check(r, r->now), 0);
}

static void test_rejects_one_byte_changes(void **state)
{
    struct signed_req r;

    (void)state;
    make_req(&r);
    mutate_field(r.method, sizeof(r.method), &r);
    mutate_field(r.path, sizeof(r.path), &r);
    mutate_field(r.host, sizeof(r.host), &r);
    mutate_field(r.body, sizeof(r.body), &r);
    mutate_field(r.hash, sizeof(r.hash), &r);
    mutate_field(r.auth, sizeof(r.auth), &r);
    /* The date: a changed character either breaks parsing or the signature. */
    mutate_field(r.date, sizeof(r.date), &r);
}

static void test_rejects_missing_headers(void **state)
{
    struct signed_req r;
    struct emu_auth_input in;
    char why[128];

    (void)state;
    make_req(&r);
    in = (struct emu_auth_input){r.method, r.path, r.host, r.date,        NULL,
                                 r.hash,   r.auth, r.body, strlen(r.body)};
    in.authorization = NULL;
    assert_int_equal(emu_auth_check(test_key, KEY_LEN, &in, r.now, SKEW, why, sizeof(why)),
                     TV_ERR_UNAUTHORIZED);
    assert_non_null(strstr(why, "Authorization"));
    in.authorization = r.auth;
    in.x_ms_date = NULL;
    assert_int_equal(emu_auth_check(test_key, KEY_LEN, &in, r.now, SKEW, why, sizeof(why)),
                     TV_ERR_UNAUTHORIZED);
    in.x_ms_date = r.date;
    in.content_sha256 = NULL;
    assert_int_equal(emu_auth_check(test_key, KEY_LEN, &in, r.now, SKEW, why, sizeof(why)),
                     TV_ERR_UNAUTHORIZED);
    in.content_sha256 = r.hash;
    in.host = NULL;
    assert_int_equal(emu_auth_check(test_key, KEY_LEN, &in, r.now, SKEW, why, sizeof(why)),
                     TV_ERR_UNAUTHORIZED);
    in.host = r.host;
    assert_int_equal(emu_auth_check(test_key, KEY_LEN, &in, r.now, SKEW, why, sizeof(why)), 0);
    /* Another key. */
    assert_int_equal(emu_auth_check((const uint8_t *)"other", 5, &in, r.now, SKEW, NULL, 0),
                     TV_ERR_UNAUTHORIZED);
}

static void test_date_header_variant(void **state)
{
    struct signed_req r;
    struct emu_auth_input in;
    char auth[ACS_AUTH_MAX];
    const char *sig;

    (void)state;
    make_req(&r);
    sig = strstr(r.auth, "&Signature=");
    assert_non_null(sig);
    snprintf(auth, sizeof(auth), "HMAC-SHA256 SignedHeaders=date;host;x-ms-content-sha256%s", sig);
    in = (struct emu_auth_input){r.method, r.path, r.host, NULL,          r.date,
                                 r.hash,   auth,   r.body, strlen(r.body)};
    assert_int_equal(emu_auth_check(test_key, KEY_LEN, &in, r.now, SKEW, NULL, 0), 0);
    /* Signing under the x-ms-date name with only a Date header is accepted too. */
    in.authorization = r.auth;
    assert_int_equal(emu_auth_check(test_key, KEY_LEN, &in, r.now, SKEW, NULL, 0), 0);
    in.authorization = auth;
    /* Naming date but sending only x-ms-date is refused. */
    in.date = NULL;
    in.x_ms_date = r.date;
    assert_int_equal(emu_auth_check(test_key, KEY_LEN, &in, r.now, SKEW, NULL, 0),
                     TV_ERR_UNAUTHORIZED);
}

static const char *member(struct json_object *o, const char *key)
{
    struct json_object *v;

    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* The SDK's own requests pass the emulator's check when "now" is their x-ms-date. */
static void run_vectors(const char *file, const char *host_key)
{
    const char *dir = getenv("TV_TEST_DATA");
    char path[1024];
    struct json_object *root, *arr;
    size_t n;

    /* Relative to the repository root, where make test runs every binary from. */
    snprintf(path, sizeof(path), "%s/%s", dir && *dir ? dir : "tests/vectors", file);
    root = json_object_from_file(path);
    if (!root) {
        fprintf(stderr, "cannot read %s (run from the repository root)\n", path);
        fail();
    }
    assert_true(json_object_object_get_ex(root, "vectors", &arr));
    n = json_object_array_length(arr);
    assert_true(n > 0);
    for (size_t i = 0; i < n; i++) {
        struct json_object *v = json_object_array_get_idx(arr, i);
        const char *key_b64 = member(v, "key_base64");
        const char *body = member(v, "body");
        uint8_t *key = NULL;
        size_t key_len = 0;
        time_t now;
        struct emu_auth_input in = {
            .method = member(v, "method"),
            .path_and_query = member(v, "path_and_query"),
            .host = member(v, "host_signed") ? member(v, "host_signed") : member(v, host_key),
            .x_ms_date = member(v, "x_ms_date"),
            .content_sha256 = member(v, "x_ms_content_sha256"),
            .authorization = member(v, "authorization"),
            .body = body,
            .body_len = body ? strlen(body) : 0,
        };

        assert_non_null(key_b64);
        assert_int_equal(b64_decode(key_b64, strlen(key_b64), &key, &key_len), 0);
        assert_int_equal(clock_parse_http_date(in.x_ms_date, &now), 0);
        assert_int_equal(emu_auth_check(key, key_len, &in, now, SKEW, NULL, 0), 0);
        assert_int_equal(emu_auth_check(key, key_len, &in, now + SKEW + 1, SKEW, NULL, 0),
                         TV_ERR_UNAUTHORIZED);
        key[0] ^= 1;
        assert_int_equal(emu_auth_check(key, key_len, &in, now, SKEW, NULL, 0),
                         TV_ERR_UNAUTHORIZED);
        free(key);
    }
    json_object_put(root);
}

static void test_sdk_vectors(void **state)
{
    (void)state;
    run_vectors("acs-hmac-sdk.json", "host");
    run_vectors("acs-hmac-sdk-policy.json", "host_signed");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_signed),
        cmocka_unit_test(test_rejects_stale),
        cmocka_unit_test(test_rejects_one_byte_changes),
        cmocka_unit_test(test_rejects_missing_headers),
        cmocka_unit_test(test_date_header_variant),
        cmocka_unit_test(test_sdk_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
