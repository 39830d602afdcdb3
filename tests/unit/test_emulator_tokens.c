/* Unit tests of the emulator's RS256 tokens: mint and verify round trip, the real claim names in
 * the payload, distinct tokens within one second, tampering and foreign keys detected, PEM
 * export and import keeping the key id, and the JWKS document. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <openssl/crypto.h>

#include "core/b64.h"
#include "core/err.h"
#include "emulator/tokens.h"

static struct emu_keys *key_a, *key_b;

static int setup(void **state)
{
    (void)state;
    if (emu_keys_generate(&key_a) != 0 || emu_keys_generate(&key_b) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    emu_keys_free(key_a);
    emu_keys_free(key_b);
    return 0;
}

static void sample_claims(struct emu_claims *c, const char *jti)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->skypeid, sizeof(c->skypeid),
             "acs:11111111-2222-4333-8444-555555555555_66666666-7777-4888-9999-000000000000");
    c->scp = 1792;
    snprintf(c->acs_scope, sizeof(c->acs_scope), "chat,voip");
    snprintf(c->resource_id, sizeof(c->resource_id), "11111111-2222-4333-8444-555555555555");
    c->iat = 1795770000;
    c->exp = c->iat + 3600;
    c->gen = 3;
    snprintf(c->jti, sizeof(c->jti), "%s", jti);
}

/* Decodes segment idx (0 header, 1 payload) of a compact JWT. */
static struct json_object *segment(const char *tok, int idx)
{
    const char *start = tok;
    const char *end;
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    struct json_object *o;
    char *text;

    for (int i = 0; i < idx; i++)
        start = strchr(start, '.') + 1;
    end = strchr(start, '.');
    assert_non_null(end);
    assert_int_equal(b64url_decode(start, (size_t)(end - start), &raw, &raw_len), 0);
    text = calloc(1, raw_len + 1);
    assert_non_null(text);
    memcpy(text, raw, raw_len);
    o = json_tokener_parse(text);
    free(text);
    free(raw);
    assert_non_null(o);
    return o;
}

static void test_round_trip(void **state)
{
    struct emu_claims c, got;
    char *tok = NULL;

    (void)state;
    sample_claims(&c, "jti-1");
    assert_int_equal(emu_token_mint(key_a, &c, &tok), 0);
    assert_int_equal(emu_token_verify(key_a, tok, strlen(tok), &got), EMU_TOKEN_OK);
    assert_string_equal(got.skypeid, c.skypeid);
    assert_string_equal(got.acs_scope, "chat,voip");
    assert_string_equal(got.resource_id, c.resource_id);
    assert_string_equal(got.jti, "jti-1");
    assert_int_equal(got.iat, c.iat);
    assert_int_equal(got.exp, c.exp);
    assert_int_equal(got.gen, 3);
    assert_int_equal(got.scp, 1792);
    free(tok);
}

static void test_claims_present(void **state)
{
    static const char *const names[] = {"skypeid", "scp",      "csi",        "iat",
                                        "exp",     "acsScope", "resourceId", "resourceLocation"};
    struct emu_claims c;
    char *tok = NULL;
    struct json_object *h, *p, *v;

    (void)state;
    sample_claims(&c, "jti-2");
    assert_int_equal(emu_token_mint(key_a, &c, &tok), 0);
    h = segment(tok, 0);
    assert_true(json_object_object_get_ex(h, "alg", &v));
    assert_string_equal(json_object_get_string(v), "RS256");
    assert_true(json_object_object_get_ex(h, "kid", &v));
    assert_string_equal(json_object_get_string(v), emu_keys_kid(key_a));
    assert_true(json_object_object_get_ex(h, "x5t", &v));
    assert_true(json_object_object_get_ex(h, "typ", &v));
    assert_string_equal(json_object_get_string(v), "JWT");
    p = segment(tok, 1);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        assert_true(json_object_object_get_ex(p, names[i], &v));
    json_object_object_get_ex(p, "scp", &v);
    assert_true(json_object_is_type(v, json_type_int));
    json_object_object_get_ex(p, "csi", &v);
    assert_true(json_object_is_type(v, json_type_string));
    assert_string_equal(json_object_get_string(v), "1795770000");
    json_object_object_get_ex(p, "resourceLocation", &v);
    assert_string_equal(json_object_get_string(v), "unitedstates");
    json_object_object_get_ex(p, "exp", &v);
    assert_int_equal(json_object_get_int64(v), c.exp);
    json_object_put(h);
    json_object_put(p);
    free(tok);
}

static void test_distinct_same_second(void **state)
{
    struct emu_claims c1, c2, g;
    char *t1 = NULL, *t2 = NULL;

    (void)state;
    sample_claims(&c1, "jti-a");
    sample_claims(&c2, "jti-b");
    assert_int_equal(emu_token_mint(key_a, &c1, &t1), 0);
    assert_int_equal(emu_token_mint(key_a, &c2, &t2), 0);
    assert_string_not_equal(t1, t2);
    assert_int_equal(emu_token_verify(key_a, t1, strlen(t1), &g), EMU_TOKEN_OK);
    assert_string_equal(g.jti, "jti-a");
    assert_int_equal(emu_token_verify(key_a, t2, strlen(t2), &g), EMU_TOKEN_OK);
    assert_string_equal(g.jti, "jti-b");
    free(t1);
    free(t2);
}

static void test_tamper_and_foreign_key(void **state)
{
    struct emu_claims c, g;
    char *tok = NULL;
    char *sig;
    char saved;
    size_t len;

    (void)state;
    sample_claims(&c, "jti-3");
    assert_int_equal(emu_token_mint(key_a, &c, &tok), 0);
    len = strlen(tok);
    assert_int_equal(emu_token_verify(key_b, tok, len, &g), EMU_TOKEN_BAD_SIGNATURE);
    /* Change one character of the signature (the first: all six bits count). */
    sig = strrchr(tok, '.') + 1;
    saved = sig[0];
    sig[0] = saved == 'A' ? 'B' : 'A';
    assert_int_equal(emu_token_verify(key_a, tok, len, &g), EMU_TOKEN_BAD_SIGNATURE);
    sig[0] = saved;
    assert_int_equal(emu_token_verify(key_a, tok, len, &g), EMU_TOKEN_OK);
    /* A truncated signature. */
    assert_int_equal(emu_token_verify(key_a, tok, len - 4, &g), EMU_TOKEN_BAD_SIGNATURE);
    /* Malformed shapes. */
    assert_int_equal(emu_token_verify(key_a, "abc", 3, &g), EMU_TOKEN_MALFORMED);
    assert_int_equal(emu_token_verify(key_a, "a.b.c", 5, &g), EMU_TOKEN_MALFORMED);
    assert_int_equal(emu_token_verify(key_a, "", 0, &g), EMU_TOKEN_MALFORMED);
    assert_int_equal(emu_token_verify(key_a, tok, (size_t)(sig - tok) - 1, &g),
                     EMU_TOKEN_MALFORMED);
    free(tok);
}

static void test_payload_change_detected(void **state)
{
    struct emu_claims c, g;
    char *tok = NULL, *forged = NULL;
    char *dot1, *dot2;

    (void)state;
    sample_claims(&c, "jti-4");
    assert_int_equal(emu_token_mint(key_a, &c, &tok), 0);
    /* Mint a payload with a later gen under key_b and splice it in: well-formed, bad signature. */
    c.gen = 9;
    assert_int_equal(emu_token_mint(key_b, &c, &forged), 0);
    dot1 = strchr(tok, '.');
    dot2 = strchr(dot1 + 1, '.');
    {
        char *f1 = strchr(forged, '.');
        char *f2 = strchr(f1 + 1, '.');
        size_t n = (size_t)(dot1 - tok) + 1 + (size_t)(f2 - f1 - 1) + strlen(dot2) + 1;
        char *mix = malloc(n);
        assert_non_null(mix);
        snprintf(mix, n, "%.*s.%.*s%s", (int)(dot1 - tok), tok, (int)(f2 - f1 - 1), f1 + 1, dot2);
        assert_int_equal(emu_token_verify(key_a, mix, strlen(mix), &g), EMU_TOKEN_BAD_SIGNATURE);
        free(mix);
    }
    free(tok);
    free(forged);
}

static void test_pem_round_trip(void **state)
{
    char *pem = NULL;
    struct emu_keys *k2 = NULL;
    struct emu_claims c, g;
    char *tok = NULL;

    (void)state;
    assert_int_equal(emu_keys_to_pem(key_a, &pem), 0);
    assert_non_null(strstr(pem, "PRIVATE KEY"));
    assert_int_equal(emu_keys_from_pem(pem, strlen(pem), &k2), 0);
    assert_string_equal(emu_keys_kid(k2), emu_keys_kid(key_a));
    sample_claims(&c, "jti-5");
    assert_int_equal(emu_token_mint(key_a, &c, &tok), 0);
    assert_int_equal(emu_token_verify(k2, tok, strlen(tok), &g), EMU_TOKEN_OK);
    assert_int_not_equal(emu_keys_from_pem("junk", 4, &k2), 0);
    OPENSSL_cleanse(pem, strlen(pem));
    free(pem);
    free(tok);
    emu_keys_free(k2);
}

static void test_jwks(void **state)
{
    char *jwks = NULL;
    struct json_object *o, *keys, *k, *v;

    (void)state;
    assert_int_equal(emu_keys_jwks(key_a, &jwks), 0);
    o = json_tokener_parse(jwks);
    assert_non_null(o);
    assert_true(json_object_object_get_ex(o, "keys", &keys));
    assert_int_equal(json_object_array_length(keys), 1);
    k = json_object_array_get_idx(keys, 0);
    assert_true(json_object_object_get_ex(k, "kid", &v));
    assert_string_equal(json_object_get_string(v), emu_keys_kid(key_a));
    assert_true(json_object_object_get_ex(k, "alg", &v));
    assert_string_equal(json_object_get_string(v), "RS256");
    assert_true(json_object_object_get_ex(k, "use", &v));
    assert_string_equal(json_object_get_string(v), "sig");
    assert_true(json_object_object_get_ex(k, "e", &v));
    assert_string_equal(json_object_get_string(v), "AQAB");
    assert_true(json_object_object_get_ex(k, "n", &v));
    assert_int_equal(strlen(json_object_get_string(v)), 342); /* 256 bytes, base64url */
    json_object_put(o);
    free(jwks);
}

static void test_reason_names(void **state)
{
    (void)state;
    assert_string_equal(emu_token_reason_name(EMU_TOKEN_OK), "ok");
    assert_string_equal(emu_token_reason_name(EMU_TOKEN_MALFORMED), "malformed");
    assert_string_equal(emu_token_reason_name(EMU_TOKEN_BAD_SIGNATURE), "bad_signature");
    assert_string_equal(emu_token_reason_name(EMU_TOKEN_EXPIRED), "expired");
    assert_string_equal(emu_token_reason_name(EMU_TOKEN_REVOKED), "revoked");
    assert_string_equal(emu_token_reason_name(EMU_TOKEN_DELETED), "deleted");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_claims_present),
        cmocka_unit_test(test_distinct_same_second),
        cmocka_unit_test(test_tamper_and_foreign_key),
        cmocka_unit_test(test_payload_change_detected),
        cmocka_unit_test(test_pem_round_trip),
        cmocka_unit_test(test_jwks),
        cmocka_unit_test(test_reason_names),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
