/* Wycheproof JWS and JWK vectors (tests/vectors/wycheproof/, Apache-2.0) through the real key-set
 * and JWS code: every case whose header names RS256, PS256 or ES256, and every "invalid" case
 * whatever its algorithm, must come out as the vector says. "valid" cases for algorithms we do
 * not support (HS*, RS384, ...) are counted as skipped: refusing them is our policy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "auth/jwks.h"
#include "auth/jwt.h"
#include "core/b64.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"

struct wp_counts {
    int total, valid_ok, invalid_ok, skipped, failed, key_refused;
};

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && n < 8 * 1024 * 1024 &&
        fseek(f, 0, SEEK_SET) == 0) {
        data = malloc((size_t)n + 1);
        if (data && fread(data, 1, (size_t)n, f) != (size_t)n) {
            free(data);
            data = NULL;
        } else if (data) {
            data[n] = '\0';
            *len = (size_t)n;
        }
    }
    fclose(f);
    return data;
}

/* The header's "alg" read leniently (the vectors mangle headers on purpose); NULL if unreadable. */
static char *header_alg(const char *jws)
{
    const char *dot = strchr(jws, '.');
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    struct json_object *h, *alg;
    char *out = NULL;

    if (!dot || b64url_decode(jws, (size_t)(dot - jws), &raw, &raw_len) != 0)
        return NULL;
    {
        struct json_tokener *tok = json_tokener_new();
        h = tok ? json_tokener_parse_ex(tok, (const char *)raw, (int)raw_len) : NULL;
        json_tokener_free(tok);
    }
    free(raw);
    if (h && json_object_object_get_ex(h, "alg", &alg) &&
        json_object_is_type(alg, json_type_string))
        out = strdup(json_object_get_string(alg));
    json_object_put(h);
    return out;
}

static int ours(const char *alg)
{
    return alg &&
           (strcmp(alg, "RS256") == 0 || strcmp(alg, "PS256") == 0 || strcmp(alg, "ES256") == 0);
}

static void run_file(const char *name, struct wp_counts *c)
{
    const char *dir = getenv("TV_TEST_DATA");
    char path[1024];
    size_t len = 0;
    char *text;
    struct json_object *doc = NULL, *groups;

    /* Relative to the repository root, where make test runs every binary from. */
    snprintf(path, sizeof path, "%s/wycheproof/%s", dir && *dir ? dir : "tests/vectors", name);
    text = read_file(path, &len);
    if (!text)
        fail_msg("cannot read %s (run from the repository root)", path);
    assert_int_equal(jsonx_parse(text, len, len + 1, &doc), 0);
    assert_int_equal(jsonx_get_array(doc, "testGroups", &groups), 0);

    for (size_t g = 0; g < json_object_array_length(groups); g++) {
        struct json_object *grp = json_object_array_get_idx(groups, g);
        struct json_object *keyobj = NULL, *tests;
        struct jwks *set = NULL;
        struct jwks_opts o = {0};
        int loaded;

        if (!json_object_object_get_ex(grp, "public", &keyobj))
            json_object_object_get_ex(grp, "private", &keyobj);
        assert_int_equal(jwks_new(&o, &set), 0);
        loaded =
            keyobj ? jwks_load_json(set, jsonx_compact(keyobj), strlen(jsonx_compact(keyobj))) == 0
                   : 0;
        assert_int_equal(jsonx_get_array(grp, "tests", &tests), 0);
        {
            /* Weak keys must be refused when the set is loaded, not only later. */
            const char *cm = json_object_get_string(json_object_object_get(grp, "comment"));
            if (cm && (strstr(cm, "roca") || strstr(cm, "too_small") || strstr(cm, "exponentOne") ||
                       strstr(cm, "invalid_point") || strstr(cm, "wrong_curve") ||
                       strstr(cm, "wrong_kty") || strstr(cm, "encryption"))) {
                assert_false(loaded);
                c->key_refused++;
            }
        }

        for (size_t t = 0; t < json_object_array_length(tests); t++) {
            struct json_object *tc = json_object_array_get_idx(tests, t);
            struct json_object *jv, *rv, *idv;
            const char *jws, *result;
            char *alg;
            struct jwk *key = NULL;
            uint8_t *payload = NULL;
            size_t plen = 0;
            int accepted = 0;

            assert_true(json_object_object_get_ex(tc, "jws", &jv));
            assert_true(json_object_object_get_ex(tc, "result", &rv));
            assert_true(json_object_object_get_ex(tc, "tcId", &idv));
            jws = json_object_get_string(jv);
            result = json_object_get_string(rv);
            alg = header_alg(jws);
            c->total++;
            if (strcmp(result, "valid") == 0 && !ours(alg)) {
                c->skipped++;
                free(alg);
                continue;
            }
            if (loaded && jwks_key_for(set, jws, strlen(jws), &key, NULL) == 0) {
                accepted = jwt_jws_verify(key, jws, strlen(jws), &payload, &plen) == 0;
                jwk_free(key);
                free(payload);
            }
            if (strcmp(result, "valid") == 0 && accepted) {
                c->valid_ok++;
            } else if (strcmp(result, "invalid") == 0 && !accepted) {
                c->invalid_ok++;
            } else if (strcmp(result, "acceptable") == 0) {
                c->skipped++;
            } else {
                c->failed++;
                print_error("%s tcId %d (%s, alg %s): expected %s, got %s\n", name,
                            json_object_get_int(idv),
                            json_object_get_string(json_object_object_get(tc, "comment")),
                            alg ? alg : "?", result, accepted ? "accepted" : "rejected");
            }
            free(alg);
        }
        jwks_free(set);
    }
    json_object_put(doc);
    free(text);
    printf("wycheproof %s: %d cases, %d valid accepted, %d invalid rejected, %d skipped "
           "(unsupported alg), %d failed; %d weak/unusable key sets refused at load\n",
           name, c->total, c->valid_ok, c->invalid_ok, c->skipped, c->failed, c->key_refused);
}

static void test_wycheproof_jws(void **state)
{
    struct wp_counts c = {0};

    (void)state;
    run_file("json_web_signature_test.json", &c);
    assert_int_equal(c.failed, 0);
    assert_true(c.valid_ok >= 10);
    assert_true(c.invalid_ok >= 300);
}

static void test_wycheproof_jwk(void **state)
{
    struct wp_counts c = {0};

    (void)state;
    run_file("json_web_key_test.json", &c);
    assert_int_equal(c.failed, 0);
    assert_true(c.valid_ok >= 1);
    assert_true(c.invalid_ok >= 15);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wycheproof_jws),
        cmocka_unit_test(test_wycheproof_jwk),
    };

    log_setup(LOGL_OFF, 2);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
