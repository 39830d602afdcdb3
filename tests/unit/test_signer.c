/* Unit tests for the HMAC signer against requests signed by the real Azure SDK
 * (tests/vectors/acs-hmac-sdk*.json, origin in tests/vectors/README.md): every authorization
 * reproduced byte for byte, and the verifier accepting each vector and rejecting every one-byte
 * change of it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "acs/connstr.h"
#include "acs/signer.h"
#include "core/b64.h"
#include "core/err.h"
#include "core/log.h"

#define MAX_VECTORS 64
#define FIELD_MAX 8192

struct vector {
    const char *file;
    int index;
    uint8_t *key;
    size_t key_len;
    char *key_b64;
    char *method;
    char *path;
    char *host;
    char *date;
    char *body;
    size_t body_len;
    char *hash;
    char *auth;
    char *url; /* policy file only */
};

static struct vector vectors[MAX_VECTORS];
static int n_vectors;
static long n_mutations;

/* Returns member `key` of obj as a fresh copy of the whole string (NUL bytes refused). */
static char *dup_member(struct json_object *obj, const char *key, size_t *len_out)
{
    struct json_object *v;
    const char *s;
    size_t len;
    char *copy;

    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    s = json_object_get_string(v);
    len = (size_t)json_object_get_string_len(v);
    if (strlen(s) != len || len > FIELD_MAX)
        return NULL;
    copy = malloc(len + 1);
    assert_non_null(copy);
    memcpy(copy, s, len + 1);
    if (len_out)
        *len_out = len;
    return copy;
}

static void load_file(const char *name, int with_url)
{
    const char *dir = getenv("TV_TEST_DATA");
    char path[1024];
    struct json_object *root, *arr;
    size_t i, n;

    /* Relative to the repository root, where make test runs every binary from. */
    snprintf(path, sizeof(path), "%s/%s", dir && *dir ? dir : "tests/vectors", name);
    root = json_object_from_file(path);
    if (!root)
        fail_msg("cannot read test vectors from %s (run from the repository root)", path);
    if (!json_object_object_get_ex(root, "vectors", &arr) ||
        !json_object_is_type(arr, json_type_array))
        fail_msg("%s: no \"vectors\" array", path);
    n = json_object_array_length(arr);
    if (n == 0)
        fail_msg("%s: empty \"vectors\" array", path);
    for (i = 0; i < n; i++) {
        struct json_object *o = json_object_array_get_idx(arr, i);
        struct vector *v;

        if (n_vectors >= MAX_VECTORS)
            fail_msg("more than %d vectors", MAX_VECTORS);
        v = &vectors[n_vectors++];
        v->file = name;
        v->index = (int)i;
        v->key_b64 = dup_member(o, "key_base64", NULL);
        v->method = dup_member(o, "method", NULL);
        v->path = dup_member(o, "path_and_query", NULL);
        v->host = dup_member(o, with_url ? "host_signed" : "host", NULL);
        v->date = dup_member(o, "x_ms_date", NULL);
        v->body = dup_member(o, "body", &v->body_len);
        v->hash = dup_member(o, "x_ms_content_sha256", NULL);
        v->auth = dup_member(o, "authorization", NULL);
        v->url = with_url ? dup_member(o, "url", NULL) : NULL;
        if (!v->key_b64 || !v->method || !v->path || !v->host || !v->date || !v->body || !v->hash ||
            !v->auth || (with_url && !v->url))
            fail_msg("%s vector %zu: a field is missing or not a string", name, i);
        if (b64_decode(v->key_b64, strlen(v->key_b64), &v->key, &v->key_len) != 0)
            fail_msg("%s vector %zu: key_base64 does not decode", name, i);
    }
    json_object_put(root);
}

static int setup(void **state)
{
    (void)state;
    log_setup(LOGL_OFF, 2);
    load_file("acs-hmac-sdk.json", 0);
    load_file("acs-hmac-sdk-policy.json", 1);
    return 0;
}

static int teardown(void **state)
{
    int i;

    (void)state;
    for (i = 0; i < n_vectors; i++) {
        struct vector *v = &vectors[i];
        free(v->key);
        free(v->key_b64);
        free(v->method);
        free(v->path);
        free(v->host);
        free(v->date);
        free(v->body);
        free(v->hash);
        free(v->auth);
        free(v->url);
    }
    printf("[ signer ] %d SDK vectors checked, %ld one-byte mutations rejected\n", n_vectors,
           n_mutations);
    return 0;
}

static void test_sign_reproduces_sdk(void **state)
{
    int i;

    (void)state;
    for (i = 0; i < n_vectors; i++) {
        struct vector *v = &vectors[i];
        char hash[ACS_SHA256_B64_LEN], auth[ACS_AUTH_MAX], hash2[ACS_SHA256_B64_LEN];
        int rc = acs_sign(v->key, v->key_len, v->method, v->path, v->host, v->date, v->body,
                          v->body_len, hash, auth);

        if (rc != 0)
            fail_msg("%s vector %d: acs_sign returned %s", v->file, v->index, err_name(rc));
        if (strcmp(hash, v->hash) != 0)
            fail_msg("%s vector %d: content hash\n  got  %s\n  want %s", v->file, v->index, hash,
                     v->hash);
        if (strcmp(auth, v->auth) != 0)
            fail_msg("%s vector %d: authorization\n  got  %s\n  want %s", v->file, v->index, auth,
                     v->auth);
        acs_content_sha256(v->body, v->body_len, hash2);
        if (strcmp(hash2, v->hash) != 0)
            fail_msg("%s vector %d: acs_content_sha256 differs", v->file, v->index);
    }
    printf("[ signer ] %d authorizations reproduced byte for byte\n", n_vectors);
}

/* The policy vectors carry the URL the SDK signed: the host derived from it by the
 * connection-string parser must be the host the SDK signed. */
static void test_policy_url_host(void **state)
{
    int i, checked = 0;

    (void)state;
    for (i = 0; i < n_vectors; i++) {
        struct vector *v = &vectors[i];
        struct acs_connstr cs = {0};
        const char *auth_start, *path;
        char cstr[ACS_CONNSTR_MAX];
        int rc;

        if (!v->url)
            continue;
        auth_start = strstr(v->url, "://");
        assert_non_null(auth_start);
        path = strchr(auth_start + 3, '/');
        assert_non_null(path);
        if (strcmp(path, v->path) != 0)
            fail_msg("%s vector %d: url path %s != path_and_query", v->file, v->index, path);
        snprintf(cstr, sizeof(cstr), "endpoint=%.*s/;accesskey=%s", (int)(path - v->url), v->url,
                 v->key_b64);
        rc = acs_connstr_parse(cstr, &cs);
        if (rc != 0)
            fail_msg("%s vector %d: connection string from url rejected: %s", v->file, v->index,
                     err_name(rc));
        if (strcmp(cs.host_signed, v->host) != 0)
            fail_msg("%s vector %d: host_signed %s, want %s", v->file, v->index, cs.host_signed,
                     v->host);
        if (cs.key_len != v->key_len || memcmp(cs.key, v->key, v->key_len) != 0)
            fail_msg("%s vector %d: key differs after parsing", v->file, v->index);
        acs_connstr_release(&cs);
        checked++;
    }
    assert_true(checked > 0);
}

static void test_verify_accepts_vectors(void **state)
{
    int i;

    (void)state;
    for (i = 0; i < n_vectors; i++) {
        struct vector *v = &vectors[i];
        int rc = acs_sign_verify(v->key, v->key_len, v->method, v->path, v->host, v->date, v->body,
                                 v->body_len, v->hash, v->auth);
        if (rc != 0)
            fail_msg("%s vector %d: verifier rejected the SDK's request (%s)", v->file, v->index,
                     err_name(rc));
    }
}

enum field { F_METHOD, F_PATH, F_HOST, F_DATE, F_BODY, F_HASH, F_AUTH, F_KEY, F_COUNT };
static const char *const field_names[F_COUNT] = {
    "method", "path_and_query", "host", "date", "body", "content hash", "authorization", "key"};

/* Runs the verifier with field f replaced by buf[0..len) and expects a rejection. */
static void expect_reject(const struct vector *v, enum field f, const uint8_t *buf, size_t len,
                          const char *what, size_t pos)
{
    const char *s = (const char *)buf;
    int rc = acs_sign_verify(f == F_KEY ? buf : v->key, f == F_KEY ? len : v->key_len,
                             f == F_METHOD ? s : v->method, f == F_PATH ? s : v->path,
                             f == F_HOST ? s : v->host, f == F_DATE ? s : v->date,
                             f == F_BODY ? s : v->body, f == F_BODY ? len : v->body_len,
                             f == F_HASH ? s : v->hash, f == F_AUTH ? s : v->auth);
    if (rc == 0)
        fail_msg("%s vector %d: verifier accepted the %s with %s at byte %zu", v->file, v->index,
                 field_names[f], what, pos);
    n_mutations++;
}

static void mutate_field(const struct vector *v, enum field f)
{
    static const uint8_t masks[] = {0x01, 0x20, 0x80};
    const uint8_t *orig;
    size_t len, pos, m;
    uint8_t *buf;

    switch (f) {
    case F_METHOD:
        orig = (const uint8_t *)v->method;
        break;
    case F_PATH:
        orig = (const uint8_t *)v->path;
        break;
    case F_HOST:
        orig = (const uint8_t *)v->host;
        break;
    case F_DATE:
        orig = (const uint8_t *)v->date;
        break;
    case F_BODY:
        orig = (const uint8_t *)v->body;
        break;
    case F_HASH:
        orig = (const uint8_t *)v->hash;
        break;
    case F_AUTH:
        orig = (const uint8_t *)v->auth;
        break;
    default:
        orig = v->key;
        break;
    }
    len = f == F_KEY ? v->key_len : f == F_BODY ? v->body_len : strlen((const char *)orig);
    buf = malloc(len + 2);
    assert_non_null(buf);

    /* Every byte position, each flipped three ways (low bit, ASCII case, high bit). */
    for (pos = 0; pos < len; pos++) {
        for (m = 0; m < sizeof(masks); m++) {
            memcpy(buf, orig, len);
            buf[len] = '\0';
            buf[pos] ^= masks[m];
            expect_reject(v, f, buf, len, "a flipped bit", pos);
        }
    }
    /* One byte shorter (an empty key or method is refused too). */
    if (len > 0) {
        memcpy(buf, orig, len - 1);
        buf[len - 1] = '\0';
        expect_reject(v, f, buf, len - 1, "its last byte cut", len - 1);
    }
    /* One byte longer, with a harmless and with a repeated character. */
    for (m = 0; m < 2; m++) {
        memcpy(buf, orig, len);
        buf[len] = m == 0 ? (uint8_t)'a' : (len ? orig[len - 1] : (uint8_t)' ');
        buf[len + 1] = '\0';
        expect_reject(v, f, buf, len + 1, "one byte appended", len);
    }
    free(buf);
}

static void test_verify_rejects_one_byte_changes(void **state)
{
    int i, f;
    long before = n_mutations;

    (void)state;
    for (i = 0; i < n_vectors; i++)
        for (f = 0; f < F_COUNT; f++)
            mutate_field(&vectors[i], (enum field)f);
    printf("[ signer ] %ld one-byte mutations over %d vectors, all rejected\n",
           n_mutations - before, n_vectors);
}

static void test_bad_arguments(void **state)
{
    const struct vector *v = &vectors[0];
    char hash[ACS_SHA256_B64_LEN], auth[ACS_AUTH_MAX];
    char *big = malloc(FIELD_MAX + 2);

    (void)state;
    assert_non_null(big);
    memset(big, 'a', FIELD_MAX + 1);
    big[0] = '/';
    big[FIELD_MAX + 1] = '\0';

    assert_int_equal(acs_sign(NULL, 0, "POST", "/", "h", "d", NULL, 0, hash, auth), TV_ERR_INVALID);
    assert_int_equal(acs_sign(v->key, v->key_len, NULL, "/", "h", "d", NULL, 0, hash, auth),
                     TV_ERR_INVALID);
    assert_int_equal(acs_sign(v->key, v->key_len, "POST", big, "h", "d", NULL, 0, hash, auth),
                     TV_ERR_INVALID);
    assert_int_equal(acs_sign(v->key, v->key_len, "POST", "/", "h", "d", NULL, 3, hash, auth),
                     TV_ERR_INVALID);
    /* Delimiters inside fields would let two requests share a string-to-sign. */
    assert_int_equal(acs_sign(v->key, v->key_len, "PO\nST", "/", "h", "d", NULL, 0, hash, auth),
                     TV_ERR_INVALID);
    assert_int_equal(acs_sign(v->key, v->key_len, "POST", "/a\nb", "h", "d", NULL, 0, hash, auth),
                     TV_ERR_INVALID);
    assert_int_equal(acs_sign(v->key, v->key_len, "POST", "/", "h;x", "d", NULL, 0, hash, auth),
                     TV_ERR_INVALID);
    assert_int_equal(acs_sign(v->key, v->key_len, "POST", "/", "h", "d;x", NULL, 0, hash, auth),
                     TV_ERR_INVALID);
    /* An empty body may be NULL and hashes like "". */
    assert_int_equal(acs_sign(v->key, v->key_len, "POST", "/", "h", "d", NULL, 0, hash, auth), 0);
    assert_string_equal(hash, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    assert_int_equal(
        acs_sign_verify(v->key, v->key_len, "POST", "/", "h", "d", NULL, 0, hash, auth), 0);

    assert_int_equal(acs_sign_verify(v->key, v->key_len, v->method, v->path, v->host, v->date,
                                     v->body, v->body_len, NULL, v->auth),
                     TV_ERR_UNAUTHORIZED);
    assert_int_equal(acs_sign_verify(v->key, v->key_len, v->method, v->path, v->host, v->date,
                                     v->body, v->body_len, v->hash, NULL),
                     TV_ERR_UNAUTHORIZED);
    assert_int_equal(acs_sign_verify(NULL, 0, v->method, v->path, v->host, v->date, v->body,
                                     v->body_len, v->hash, v->auth),
                     TV_ERR_UNAUTHORIZED);
    assert_int_equal(acs_sign_verify(v->key, v->key_len, v->method, big, v->host, v->date, v->body,
                                     v->body_len, v->hash, v->auth),
                     TV_ERR_UNAUTHORIZED);
    assert_int_equal(acs_sign_verify(v->key, v->key_len, v->method, v->path, v->host, v->date,
                                     v->body, v->body_len, v->hash, big),
                     TV_ERR_UNAUTHORIZED);
    assert_int_equal(acs_sign_verify(v->key, v->key_len, v->method, v->path, v->host, v->date,
                                     v->body, v->body_len, "", ""),
                     TV_ERR_UNAUTHORIZED);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_reproduces_sdk),
        cmocka_unit_test(test_policy_url_host),
        cmocka_unit_test(test_verify_accepts_vectors),
        cmocka_unit_test(test_verify_rejects_one_byte_changes),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
