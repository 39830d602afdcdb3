/* Unit tests for the service's own ES256 session tokens: key generation, export/import as DER
 * and PEM (what the store keeps), issue and verify through jwt_verify, and refusal of expired,
 * foreign-key, tampered and malformed tokens and keys. */
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
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "auth/jwt.h"
#include "auth/session.h"
#include "core/b64.h"
#include "core/err.h"
#include "core/log.h"

#define NOW 1800000000LL

static void test_roundtrip_der_pem(void **state)
{
    struct session_key *k = NULL, *k2 = NULL, *k3 = NULL;
    uint8_t *der = NULL;
    char *pem = NULL, *tok = NULL;
    size_t der_len = 0, pem_len = 0;
    struct jwt_claims c;
    int64_t exp = 0;

    (void)state;
    assert_int_equal(session_key_generate(&k), 0);
    assert_int_equal(strlen(session_key_kid(k)), 43);
    assert_int_equal(session_key_export(k, &der, &der_len), 0);
    assert_true(der_len > 100 && der_len < SESSION_KEY_MAX);
    assert_int_equal(session_key_export_pem(k, &pem, &pem_len), 0);
    assert_non_null(strstr(pem, "-----BEGIN PRIVATE KEY-----"));
    assert_int_equal(strlen(pem), pem_len);
    assert_int_equal(session_key_import(der, der_len, &k2), 0);
    assert_int_equal(session_key_import((uint8_t *)pem, pem_len, &k3), 0);
    /* Same key, same kid (an RFC 7638 thumbprint, so stable across restarts). */
    assert_string_equal(session_key_kid(k), session_key_kid(k2));
    assert_string_equal(session_key_kid(k), session_key_kid(k3));

    /* Tokens from one copy verify with the others. */
    assert_int_equal(session_issue(k, "alice", NOW, 0, &tok, &exp), 0);
    assert_int_equal(exp, NOW + SESSION_DEFAULT_TTL_S);
    assert_int_equal(session_verify(k3, tok, strlen(tok), NOW + 10, &c, NULL), 0);
    assert_string_equal(c.user, "alice");
    assert_int_equal(c.alg, JWT_ALG_ES256);
    assert_string_equal(c.kid, session_key_kid(k));
    assert_int_equal(c.iat, NOW);
    assert_int_equal(c.exp, NOW + SESSION_DEFAULT_TTL_S);
    jwt_claims_release(&c);
    /* And with the generic verifier, given the issuer and audience. */
    {
        struct jwt_expect e = {
            .issuer = SESSION_ISSUER, .audience = SESSION_AUDIENCE, .now_s = NOW};
        assert_int_equal(jwt_verify(session_key_jwk(k2), tok, strlen(tok), &e, &c, NULL), 0);
        jwt_claims_release(&c);
        e.audience = "api://tokenvend";
        assert_int_equal(jwt_verify(session_key_jwk(k2), tok, strlen(tok), &e, &c, NULL),
                         TV_ERR_UNAUTHORIZED);
    }
    free(tok);
    OPENSSL_cleanse(der, der_len);
    free(der);
    OPENSSL_cleanse(pem, pem_len);
    free(pem);
    session_key_free(k);
    session_key_free(k2);
    session_key_free(k3);
    session_key_free(NULL);
}

static void test_expiry_and_foreign_keys(void **state)
{
    struct session_key *k = NULL, *other = NULL;
    char *tok = NULL;
    const char *why = NULL;
    struct jwt_claims c;

    (void)state;
    assert_int_equal(session_key_generate(&k), 0);
    assert_int_equal(session_key_generate(&other), 0);
    assert_string_not_equal(session_key_kid(k), session_key_kid(other));
    assert_int_equal(session_issue(k, "bob", NOW, 120, &tok, NULL), 0);
    assert_int_equal(session_verify(k, tok, strlen(tok), NOW + 120 + 59, &c, NULL), 0);
    jwt_claims_release(&c);
    assert_int_equal(session_verify(k, tok, strlen(tok), NOW + 120 + 60, &c, &why),
                     TV_ERR_UNAUTHORIZED);
    assert_string_equal(why, "expired");
    assert_int_equal(session_verify(other, tok, strlen(tok), NOW, &c, &why), TV_ERR_UNAUTHORIZED);
    assert_string_equal(why, "bad signature");
    assert_int_equal(session_verify(NULL, tok, strlen(tok), NOW, &c, &why), TV_ERR_UNAUTHORIZED);
    /* Tampering anywhere. */
    for (size_t i = 0; i < strlen(tok); i++) {
        char *t = strdup(tok);
        if (t[i] == '.') {
            free(t);
            continue;
        }
        t[i] = t[i] == 'x' ? 'y' : 'x';
        assert_int_equal(session_verify(k, t, strlen(t), NOW, &c, NULL), TV_ERR_UNAUTHORIZED);
        free(t);
    }
    free(tok);
    /* Wall clock defaults. */
    assert_int_equal(session_issue(k, "carol", 0, 0, &tok, NULL), 0);
    assert_int_equal(session_verify(k, tok, strlen(tok), 0, &c, NULL), 0);
    assert_string_equal(c.user, "carol");
    jwt_claims_release(&c);
    free(tok);
    session_key_free(k);
    session_key_free(other);
}

static void test_bad_inputs(void **state)
{
    struct session_key *k = NULL, *k2 = NULL;
    char sub[JWT_USER_MAX + 2], *tok = NULL;
    uint8_t *der = NULL;
    size_t der_len = 0;
    EVP_PKEY *rsa, *p384;
    unsigned char *buf = NULL;
    int n;

    (void)state;
    assert_int_equal(session_key_generate(&k), 0);
    memset(sub, 'a', sizeof sub - 1);
    sub[sizeof sub - 1] = '\0';
    assert_int_equal(session_issue(k, sub, NOW, 0, &tok, NULL), TV_ERR_INVALID);
    assert_int_equal(session_issue(k, "", NOW, 0, &tok, NULL), TV_ERR_INVALID);
    assert_int_equal(session_issue(k, "a", NOW, -1, &tok, NULL), TV_ERR_INVALID);
    sub[JWT_USER_MAX] = '\0';
    assert_int_equal(session_issue(k, sub, NOW, 0, &tok, NULL), 0);
    free(tok);

    /* Garbage, truncated, trailing bytes, other key types, public-only keys. */
    assert_int_equal(session_key_import((const uint8_t *)"garbage", 7, &k2), TV_ERR_INVALID);
    assert_int_equal(session_key_export(k, &der, &der_len), 0);
    assert_int_equal(session_key_import(der, der_len - 1, &k2), TV_ERR_INVALID);
    {
        uint8_t *longer = malloc(der_len + 1);
        memcpy(longer, der, der_len);
        longer[der_len] = 0;
        assert_int_equal(session_key_import(longer, der_len + 1, &k2), TV_ERR_INVALID);
        free(longer);
    }
    OPENSSL_cleanse(der, der_len);
    free(der);
    rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    n = i2d_PrivateKey(rsa, &buf);
    assert_true(n > 0);
    assert_int_equal(session_key_import(buf, (size_t)n, &k2), TV_ERR_INVALID);
    OPENSSL_free(buf);
    buf = NULL;
    p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    n = i2d_PrivateKey(p384, &buf);
    assert_int_equal(session_key_import(buf, (size_t)n, &k2), TV_ERR_INVALID);
    OPENSSL_free(buf);
    buf = NULL;
    {
        /* The public half alone cannot sign. */
        struct session_key *tmp = NULL;
        EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        n = i2d_PUBKEY(ec, &buf);
        assert_int_equal(session_key_import(buf, (size_t)n, &tmp), TV_ERR_INVALID);
        OPENSSL_free(buf);
        EVP_PKEY_free(ec);
    }
    assert_null(k2);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(p384);
    session_key_free(k);
}

/* The account epoch rides in the token and reads back exactly; a token without it has none. */
static void test_epoch_claim(void **state)
{
    static const int64_t epochs[] = {0, 1, -1, INT64_MAX, INT64_MIN, 8070450532247928832LL};
    struct session_key *k = NULL;
    struct jwt_claims c;
    char *tok = NULL;
    int64_t e = 42;

    (void)state;
    assert_int_equal(session_key_generate(&k), 0);
    for (size_t i = 0; i < sizeof epochs / sizeof epochs[0]; i++) {
        assert_int_equal(session_issue_epoch(k, "alice", epochs[i], NOW, 60, &tok, NULL), 0);
        assert_int_equal(session_verify(k, tok, strlen(tok), NOW, &c, NULL), 0);
        assert_int_equal(session_epoch_get(&c, &e), 0);
        assert_true(e == epochs[i]);
        jwt_claims_release(&c);
        free(tok);
    }
    assert_int_equal(session_issue(k, "alice", NOW, 60, &tok, NULL), 0);
    assert_int_equal(session_verify(k, tok, strlen(tok), NOW, &c, NULL), 0);
    assert_int_equal(session_epoch_get(&c, &e), TV_ERR_UNAUTHORIZED);
    jwt_claims_release(&c);
    free(tok);
    session_key_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_der_pem),
        cmocka_unit_test(test_expiry_and_foreign_keys),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_epoch_claim),
    };

    log_setup(LOGL_OFF, 2);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
