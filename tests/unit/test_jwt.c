/* Unit tests for the JWS/JWT verifier: the rejection list (expired, not yet valid, wrong
 * iss, wrong or missing aud, alg none, HS256 keyed with the RSA public key, unknown kid, tampered
 * payload or signature, bad base64url, duplicate claims, oversized token) and the header rules
 * (typ, crit, jku ignored), with RS256, PS256 and ES256 keys made on the fly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "auth/jwk.h"
#include "auth/jwks.h"
#include "auth/jwt.h"
#include "core/b64.h"
#include "core/err.h"
#include "core/log.h"

#define NOW 1800000000LL
#define ISS "https://issuer.example/"
#define AUD "api://tokenvend"

static EVP_PKEY *rsa_key, *ec_key, *rsa_key2;
static struct jwks *keyset; /* kid "r1" (RSA), "e1" (EC), "ps" (RSA restricted to PS256) */

static const struct jwt_expect expect = {
    .issuer = ISS, .audience = AUD, .user_claim = NULL, .leeway_s = 0, .now_s = NOW};

static char *b64u(const void *p, size_t n)
{
    char *s = malloc(b64_encoded_size(n));
    assert_non_null(s);
    b64url_encode(p, n, s);
    return s;
}

static char *bn_b64u(const BIGNUM *bn, int pad)
{
    uint8_t buf[1024];
    int n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
    assert_true(n > 0);
    return b64u(buf, (size_t)n);
}

/* Public JWK text of pkey with kid and optional alg. */
static char *jwk_json(EVP_PKEY *pkey, const char *kid, const char *alg)
{
    char *out = malloc(4096), *a, *b;
    BIGNUM *x = NULL, *y = NULL;
    char algm[64] = "";

    assert_non_null(out);
    if (alg)
        snprintf(algm, sizeof algm, ",\"alg\":\"%s\"", alg);
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        assert_true(EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &x));
        assert_true(EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &y));
        a = bn_b64u(x, 0);
        b = bn_b64u(y, 0);
        snprintf(out, 4096,
                 "{\"kty\":\"RSA\",\"kid\":\"%s\",\"use\":\"sig\",\"n\":\"%s\",\"e\":\"%s\"%s}",
                 kid, a, b, algm);
    } else {
        assert_true(EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, &x));
        assert_true(EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &y));
        a = bn_b64u(x, 32);
        b = bn_b64u(y, 32);
        snprintf(out, 4096,
                 "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"%s}",
                 kid, a, b, algm);
    }
    free(a);
    free(b);
    BN_free(x);
    BN_free(y);
    return out;
}

/* Signs header.payload (both JSON text, used as is) with any header, unlike jwt_sign.
 * der_ecdsa keeps OpenSSL's DER signature for ES256 instead of raw r||s. */
static char *sign_custom(EVP_PKEY *pkey, const char *mdalg, int pad, const char *hdr,
                         const char *payload, int der_ecdsa)
{
    char *h = b64u(hdr, strlen(hdr)), *p = b64u(payload, strlen(payload)), *s, *tok;
    size_t in_len = strlen(h) + 1 + strlen(p), sig_len = 0;
    char *in = malloc(in_len + 1);
    uint8_t sig[1024];
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;

    snprintf(in, in_len + 1, "%s.%s", h, p);
    assert_int_equal(EVP_DigestSignInit_ex(md, &pctx, mdalg, NULL, NULL, pkey, NULL), 1);
    if (pad) {
        assert_true(EVP_PKEY_CTX_set_rsa_padding(pctx, pad) > 0);
        if (pad == RSA_PKCS1_PSS_PADDING)
            assert_true(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) > 0);
    }
    sig_len = sizeof sig;
    assert_int_equal(EVP_DigestSign(md, sig, &sig_len, (uint8_t *)in, in_len), 1);
    EVP_MD_CTX_free(md);
    if (EVP_PKEY_is_a(pkey, "EC") && !der_ecdsa) {
        const unsigned char *q = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &q, (long)sig_len);
        assert_non_null(es);
        BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32);
        BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32);
        ECDSA_SIG_free(es);
        sig_len = 64;
    }
    s = b64u(sig, sig_len);
    tok = malloc(in_len + strlen(s) + 2);
    sprintf(tok, "%s.%s", in, s);
    free(h);
    free(p);
    free(s);
    free(in);
    return tok;
}

static char *claims_json(const char *extra)
{
    char *out = malloc(1024);
    snprintf(out, 1024,
             "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"alice\",\"oid\":\"oid-1\","
             "\"iat\":%lld,\"exp\":%lld%s%s}",
             NOW - 10, NOW + 600, extra && *extra ? "," : "", extra ? extra : "");
    return out;
}

static char *make(EVP_PKEY *k, enum jwt_alg alg, const char *kid, const char *payload)
{
    char *tok = NULL;
    assert_int_equal(jwt_sign(k, alg, kid, payload, &tok), 0);
    return tok;
}

static int verify(const char *tok, const struct jwt_expect *e, const char **why)
{
    struct jwt_claims c;
    int rc = jwks_verify_ex(keyset, tok, strlen(tok), e ? e : &expect, &c, why);
    if (rc == 0)
        jwt_claims_release(&c);
    return rc;
}

static int setup(void **state)
{
    char doc[16384], *a, *b, *c;

    (void)state;
    rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    rsa_key2 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(rsa_key);
    assert_non_null(ec_key);
    a = jwk_json(rsa_key, "r1", NULL);
    b = jwk_json(ec_key, "e1", "ES256");
    c = jwk_json(rsa_key2, "ps", "PS256");
    snprintf(doc, sizeof doc, "{\"keys\":[%s,%s,%s]}", a, b, c);
    free(a);
    free(b);
    free(c);
    struct jwks_opts o = {0};
    assert_int_equal(jwks_new(&o, &keyset), 0);
    assert_int_equal(jwks_load_json(keyset, doc, strlen(doc)), 0);
    assert_int_equal(jwks_key_count(keyset), 3);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    jwks_free(keyset);
    EVP_PKEY_free(rsa_key);
    EVP_PKEY_free(rsa_key2);
    EVP_PKEY_free(ec_key);
    return 0;
}

static void test_valid_all_algs(void **state)
{
    char *p = claims_json(NULL);
    struct {
        EVP_PKEY *k;
        enum jwt_alg alg;
        const char *kid;
    } cases[] = {{NULL, JWT_ALG_RS256, "r1"},
                 {NULL, JWT_ALG_PS256, "r1"},
                 {NULL, JWT_ALG_ES256, "e1"},
                 {NULL, JWT_ALG_PS256, "ps"}};

    (void)state;
    cases[0].k = cases[1].k = rsa_key;
    cases[2].k = ec_key;
    cases[3].k = rsa_key2;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *tok = make(cases[i].k, cases[i].alg, cases[i].kid, p);
        struct jwt_claims c;
        const char *oid;
        assert_int_equal(jwks_verify(keyset, tok, strlen(tok), &expect, &c), 0);
        assert_string_equal(c.user, "alice");
        assert_string_equal(c.kid, cases[i].kid);
        assert_int_equal(c.alg, cases[i].alg);
        assert_int_equal(c.exp, NOW + 600);
        assert_int_equal(c.iat, NOW - 10);
        assert_int_equal(jwt_claims_get_string(&c, "oid", 64, &oid), 0);
        assert_string_equal(oid, "oid-1");
        jwt_claims_release(&c);
        jwt_claims_release(&c); /* idempotent */
        free(tok);
    }
    free(p);
}

/* Token with the given claim overrides must be rejected (or accepted when ok). */
static void claim_case(const char *payload, int ok, const char *want_reason)
{
    char *tok = make(rsa_key, JWT_ALG_RS256, "r1", payload);
    const char *why = NULL;
    int rc = verify(tok, NULL, &why);

    if (ok) {
        if (rc != 0)
            fail_msg("payload %s rejected (%s)", payload, why);
    } else {
        if (rc != TV_ERR_UNAUTHORIZED)
            fail_msg("payload %s: rc %d, wanted unauthorized", payload, rc);
        if (want_reason && strcmp(why, want_reason) != 0)
            fail_msg("payload %s: reason '%s', wanted '%s'", payload, why, want_reason);
    }
    free(tok);
}

static void test_time_claims(void **state)
{
    char p[512];
    (void)state;
#define BASE "\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"alice\""
    snprintf(p, sizeof p, "{" BASE ",\"exp\":%lld}", NOW - 61);
    claim_case(p, 0, "expired");
    snprintf(p, sizeof p, "{" BASE ",\"exp\":%lld}", NOW - 60);
    claim_case(p, 0, "expired");
    snprintf(p, sizeof p, "{" BASE ",\"exp\":%lld}", NOW - 59); /* within the leeway */
    claim_case(p, 1, NULL);
    snprintf(p, sizeof p, "{" BASE ",\"exp\":%lld,\"nbf\":%lld}", NOW + 600, NOW + 61);
    claim_case(p, 0, "not yet valid");
    snprintf(p, sizeof p, "{" BASE ",\"exp\":%lld,\"nbf\":%lld}", NOW + 600, NOW + 59);
    claim_case(p, 1, NULL);
    claim_case("{" BASE "}", 0, "missing or malformed exp");
    claim_case("{" BASE ",\"exp\":\"1900000000\"}", 0, NULL);
    claim_case("{" BASE ",\"exp\":1900000000.5}", 0, NULL);
    claim_case("{" BASE ",\"exp\":1e10}", 0, NULL);
    claim_case("{" BASE ",\"exp\":99999999999999999999}", 0, NULL);
    claim_case("{" BASE ",\"exp\":1900000000,\"nbf\":\"x\"}", 0, NULL);
    claim_case("{" BASE ",\"exp\":1900000000,\"iat\":true}", 0, NULL);
    claim_case("{" BASE ",\"exp\":-5}", 0, NULL);
}

static void test_iss_aud(void **state)
{
    (void)state;
#define EXP ",\"exp\":1900000000"
    claim_case("{\"iss\":\"https://evil.example/\",\"aud\":\"" AUD "\",\"sub\":\"a\"" EXP "}", 0,
               "wrong issuer");
    claim_case("{\"iss\":\"https://issuer.example\",\"aud\":\"" AUD "\",\"sub\":\"a\"" EXP "}", 0,
               "wrong issuer");
    claim_case("{\"aud\":\"" AUD "\",\"sub\":\"a\"" EXP "}", 0, "wrong issuer");
    claim_case("{\"iss\":[\"" ISS "\"],\"aud\":\"" AUD "\",\"sub\":\"a\"" EXP "}", 0, NULL);
    claim_case("{\"iss\":\"" ISS "\",\"aud\":\"api://other\",\"sub\":\"a\"" EXP "}", 0,
               "wrong audience");
    claim_case("{\"iss\":\"" ISS "\",\"sub\":\"a\"" EXP "}", 0, "wrong audience");
    claim_case("{\"iss\":\"" ISS "\",\"aud\":[\"x\",\"" AUD "\"],\"sub\":\"a\"" EXP "}", 1, NULL);
    claim_case("{\"iss\":\"" ISS "\",\"aud\":[\"x\",\"y\"],\"sub\":\"a\"" EXP "}", 0, NULL);
    claim_case("{\"iss\":\"" ISS "\",\"aud\":[],\"sub\":\"a\"" EXP "}", 0, NULL);
    claim_case("{\"iss\":\"" ISS "\",\"aud\":[1,\"" AUD "\"],\"sub\":\"a\"" EXP "}", 0, NULL);
    claim_case("{\"iss\":\"" ISS "\",\"aud\":\"api://tokenvendX\",\"sub\":\"a\"" EXP "}", 0, NULL);
}

static void test_user_claim(void **state)
{
    char p[1024], big[300];
    struct jwt_expect e = expect;
    char *tok;
    struct jwt_claims c;

    (void)state;
    claim_case("{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\"" EXP "}", 0,
               "missing or malformed user claim");
    claim_case("{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"\"" EXP "}", 0, NULL);
    claim_case("{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":42" EXP "}", 0, NULL);
    claim_case("{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"a\\u0000b\"" EXP "}", 0, NULL);
    /* The claim becomes an app user id: no control characters (C0, DEL, C1), escaped or not. */
    claim_case("{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"a\\u0001b\"" EXP "}", 0,
               "user claim holds control characters");
    claim_case("{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"a\\r\\nInjected: 1\"" EXP "}", 0,
               "user claim holds control characters");
    claim_case("{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"a\x7f\"" EXP "}", 0,
               "user claim holds control characters");
    claim_case("{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"a\\u0085\"" EXP "}", 0,
               "user claim holds control characters");
    claim_case("{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"\xc3\xa9l\\u00e8ve\"" EXP "}", 1,
               NULL);
    memset(big, 'u', 257);
    big[257] = '\0';
    snprintf(p, sizeof p, "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"%s\"" EXP "}", big);
    claim_case(p, 0, NULL);
    big[256] = '\0';
    snprintf(p, sizeof p, "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"%s\"" EXP "}", big);
    claim_case(p, 1, NULL);
    /* A configured claim replaces sub. */
    e.user_claim = "oid";
    tok = make(rsa_key, JWT_ALG_RS256, "r1",
               "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"oid\":\"o-7\"" EXP "}");
    assert_int_equal(jwks_verify(keyset, tok, strlen(tok), &e, &c), 0);
    assert_string_equal(c.user, "o-7");
    jwt_claims_release(&c);
    free(tok);
    /* Incomplete expectations are a caller bug, not a token problem. */
    e = expect;
    e.audience = NULL;
    tok = make(rsa_key, JWT_ALG_RS256, "r1", "{}");
    assert_int_equal(jwks_verify(keyset, tok, strlen(tok), &e, &c), TV_ERR_INVALID);
    free(tok);
}

static void test_duplicates_and_shape(void **state)
{
    (void)state;
    claim_case("{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"alice\",\"sub\":\"admin\"" EXP
               "}",
               0, "malformed claims");
    claim_case("{\"iss\":\"" ISS "\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"a\"" EXP "}",
               0, "malformed claims");
    claim_case("[\"iss\"]", 0, "malformed claims");
    claim_case("\"just a string\"", 0, "malformed claims");
    claim_case("{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"a\"" EXP "} x", 0,
               "malformed claims");
    claim_case("", 0, NULL);
}

static void test_alg_confusion(void **state)
{
    char *p = claims_json(NULL), *tok, *pem_b64, *h, *pl, *sig, *t;
    uint8_t *der = NULL, mac[32];
    unsigned int mac_len = 0;
    int der_len;
    const char *why = NULL;

    (void)state;
    /* alg none, with and without a signature part. */
    h = b64u("{\"alg\":\"none\",\"kid\":\"r1\"}", 25);
    pl = b64u(p, strlen(p));
    t = malloc(strlen(h) + strlen(pl) + 16);
    sprintf(t, "%s.%s.", h, pl);
    assert_int_equal(verify(t, NULL, NULL), TV_ERR_UNAUTHORIZED);
    sprintf(t, "%s.%s.AAAA", h, pl);
    assert_int_equal(verify(t, NULL, NULL), TV_ERR_UNAUTHORIZED);
    sprintf(t, "%s.%s", h, pl);
    assert_int_equal(verify(t, NULL, NULL), TV_ERR_UNAUTHORIZED);
    free(t);
    free(h);

    /* HS256 keyed with the RSA public key (DER and base64 of it), the classic confusion. */
    der_len = i2d_PUBKEY(rsa_key, &der);
    assert_true(der_len > 0);
    for (int variant = 0; variant < 2; variant++) {
        h = b64u("{\"alg\":\"HS256\",\"kid\":\"r1\"}", 26);
        t = malloc(strlen(h) + strlen(pl) + 128);
        sprintf(t, "%s.%s", h, pl);
        pem_b64 = b64u(der, (size_t)der_len);
        if (variant == 0)
            HMAC(EVP_sha256(), der, der_len, (uint8_t *)t, strlen(t), mac, &mac_len);
        else
            HMAC(EVP_sha256(), pem_b64, (int)strlen(pem_b64), (uint8_t *)t, strlen(t), mac,
                 &mac_len);
        sig = b64u(mac, mac_len);
        strcat(t, ".");
        strcat(t, sig);
        assert_int_equal(verify(t, NULL, &why), TV_ERR_UNAUTHORIZED);
        assert_string_equal(why, "malformed token"); /* HS256 is not even an algorithm to us */
        free(sig);
        free(pem_b64);
        free(t);
        free(h);
    }
    OPENSSL_free(der);

    /* The header's alg never picks the key type: ES256 header against an RSA kid, RS256 against
     * the EC kid, RS256 against a key restricted to PS256. */
    tok = sign_custom(rsa_key, "SHA256", RSA_PKCS1_PADDING, "{\"alg\":\"ES256\",\"kid\":\"r1\"}", p,
                      0);
    assert_int_equal(verify(tok, NULL, &why), TV_ERR_UNAUTHORIZED);
    assert_string_equal(why, "algorithm not allowed for the key");
    free(tok);
    tok = sign_custom(ec_key, "SHA256", 0, "{\"alg\":\"RS256\",\"kid\":\"e1\"}", p, 0);
    assert_int_equal(verify(tok, NULL, NULL), TV_ERR_UNAUTHORIZED);
    free(tok);
    tok = sign_custom(rsa_key2, "SHA256", RSA_PKCS1_PADDING, "{\"alg\":\"RS256\",\"kid\":\"ps\"}",
                      p, 0);
    assert_int_equal(verify(tok, NULL, &why), TV_ERR_UNAUTHORIZED);
    assert_string_equal(why, "algorithm not allowed for the key");
    free(tok);
    /* PS256 header over a PKCS#1 v1.5 signature and vice versa. */
    tok = sign_custom(rsa_key, "SHA256", RSA_PKCS1_PADDING, "{\"alg\":\"PS256\",\"kid\":\"r1\"}", p,
                      0);
    assert_int_equal(verify(tok, NULL, &why), TV_ERR_UNAUTHORIZED);
    assert_string_equal(why, "bad signature");
    free(tok);
    tok = sign_custom(rsa_key, "SHA256", RSA_PKCS1_PSS_PADDING,
                      "{\"alg\":\"RS256\",\"kid\":\"r1\"}", p, 0);
    assert_int_equal(verify(tok, NULL, NULL), TV_ERR_UNAUTHORIZED);
    free(tok);
    /* Other digests under our alg names. */
    tok = sign_custom(rsa_key, "SHA384", RSA_PKCS1_PADDING, "{\"alg\":\"RS256\",\"kid\":\"r1\"}", p,
                      0);
    assert_int_equal(verify(tok, NULL, NULL), TV_ERR_UNAUTHORIZED);
    free(tok);
    /* ES256 with a DER signature instead of raw r||s. */
    tok = sign_custom(ec_key, "SHA256", 0, "{\"alg\":\"ES256\",\"kid\":\"e1\"}", p, 1);
    assert_int_equal(verify(tok, NULL, NULL), TV_ERR_UNAUTHORIZED);
    free(tok);
    /* And the raw form of the same is fine (control). */
    tok = sign_custom(ec_key, "SHA256", 0, "{\"alg\":\"ES256\",\"kid\":\"e1\"}", p, 0);
    assert_int_equal(verify(tok, NULL, NULL), 0);
    free(tok);
    /* Lower-case alg names are not ours. */
    tok = sign_custom(rsa_key, "SHA256", RSA_PKCS1_PADDING, "{\"alg\":\"rs256\",\"kid\":\"r1\"}", p,
                      0);
    assert_int_equal(verify(tok, NULL, NULL), TV_ERR_UNAUTHORIZED);
    free(tok);
    free(pl);
    free(p);
}

static void test_header_rules(void **state)
{
    char *p = claims_json(NULL), *tok;
    const char *why;
    static const struct {
        const char *hdr;
        int ok;
    } cases[] = {
        {"{\"alg\":\"RS256\",\"kid\":\"r1\",\"typ\":\"JWT\"}", 1},
        {"{\"alg\":\"RS256\",\"kid\":\"r1\",\"typ\":\"jwt\"}", 1},
        {"{\"alg\":\"RS256\",\"kid\":\"r1\",\"typ\":\"at+jwt\"}", 1},
        {"{\"alg\":\"RS256\",\"kid\":\"r1\",\"typ\":\"application/at+jwt\"}", 1},
        {"{\"alg\":\"RS256\",\"kid\":\"r1\",\"typ\":\"JOSE\"}", 0},
        {"{\"alg\":\"RS256\",\"kid\":\"r1\",\"typ\":7}", 0},
        {"{\"alg\":\"RS256\",\"kid\":\"r1\",\"crit\":[\"exp\"],\"exp\":1}", 0},
        {"{\"alg\":\"RS256\",\"kid\":\"r1\",\"crit\":[]}", 0},
        {"{\"alg\":\"RS256\",\"kid\":\"r1\",\"b64\":false,\"crit\":[\"b64\"]}", 0},
        {"{\"alg\":\"RS256\",\"kid\":\"r1\",\"alg\":\"RS256\"}", 0}, /* duplicate header */
        {"{\"alg\":\"RS256\",\"kid\":\"r1\",\"kid\":\"e1\"}", 0},    /* duplicate header */
        {"{\"alg\":\"RS256\",\"kid\":7}", 0},
        {"{\"alg\":\"RS256\",\"kid\":\"\"}", 0},
        {"{\"kid\":\"r1\"}", 0},
        {"[\"RS256\"]", 0},
        /* Keys named by the token itself are ignored, never fetched: the token verifies with the
         * configured key, and nothing listens on port 1. */
        {"{\"alg\":\"RS256\",\"kid\":\"r1\",\"jku\":\"http://127.0.0.1:1/jwks\","
         "\"x5u\":\"http://127.0.0.1:1/x\",\"jwk\":{\"kty\":\"oct\",\"k\":\"AAAA\"}}",
         1},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tok = sign_custom(rsa_key, "SHA256", RSA_PKCS1_PADDING, cases[i].hdr, p, 0);
        why = NULL;
        int rc = verify(tok, NULL, &why);
        if (cases[i].ok ? rc != 0 : rc != TV_ERR_UNAUTHORIZED)
            fail_msg("header %s: rc %d (%s)", cases[i].hdr, rc, why ? why : "");
        free(tok);
    }
    free(p);
}

static void test_kid_selection(void **state)
{
    char *p = claims_json(NULL), *tok;
    const char *why = NULL;
    struct jwks *one;
    struct jwks_opts o = {0};
    char *j;

    (void)state;
    tok = make(rsa_key, JWT_ALG_RS256, "nope", p);
    assert_int_equal(verify(tok, NULL, &why), TV_ERR_UNAUTHORIZED);
    assert_string_equal(why, "unknown kid");
    free(tok);
    /* The right kid but another key's signature. */
    tok = make(rsa_key2, JWT_ALG_RS256, "r1", p);
    assert_int_equal(verify(tok, NULL, &why), TV_ERR_UNAUTHORIZED);
    assert_string_equal(why, "bad signature");
    free(tok);
    /* No kid: refused with several keys, accepted with exactly one. */
    tok = make(rsa_key, JWT_ALG_RS256, NULL, p);
    assert_int_equal(verify(tok, NULL, &why), TV_ERR_UNAUTHORIZED);
    assert_string_equal(why, "no kid and several keys");
    assert_int_equal(jwks_new(&o, &one), 0);
    j = jwk_json(rsa_key, "solo", NULL);
    assert_int_equal(jwks_load_json(one, j, strlen(j)), 0);
    struct jwt_claims c;
    assert_int_equal(jwks_verify(one, tok, strlen(tok), &expect, &c), 0);
    jwt_claims_release(&c);
    /* A set that never had keys and cannot fetch any answers "unavailable", not 401. */
    jwks_free(one);
    assert_int_equal(jwks_new(&o, &one), 0);
    assert_int_equal(jwks_verify(one, tok, strlen(tok), &expect, &c), TV_ERR_UNAVAILABLE);
    jwks_free(one);
    free(j);
    free(tok);
    free(p);
}

static void test_tamper_and_encoding(void **state)
{
    char *p = claims_json(NULL), *tok, *t2, buf[2048];
    size_t n, d1, d2;

    (void)state;
    tok = make(ec_key, JWT_ALG_ES256, "e1", p);
    n = strlen(tok);
    d1 = strcspn(tok, ".");
    d2 = d1 + 1 + strcspn(tok + d1 + 1, ".");
    assert_int_equal(verify(tok, NULL, NULL), 0);
    /* Every single-character change of the header, payload and signature is refused. */
    for (size_t i = 0; i < n; i++) {
        if (tok[i] == '.')
            continue;
        t2 = strdup(tok);
        t2[i] = t2[i] == 'A' ? 'B' : 'A';
        if (verify(t2, NULL, NULL) != TV_ERR_UNAUTHORIZED)
            fail_msg("change at %zu accepted", i);
        free(t2);
    }
    /* Payload of another valid token spliced in. */
    {
        char *q = claims_json("\"role\":\"admin\""), *other = make(ec_key, JWT_ALG_ES256, "e1", q);
        size_t o1 = strcspn(other, "."), o2 = o1 + 1 + strcspn(other + o1 + 1, ".");
        snprintf(buf, sizeof buf, "%.*s%.*s%s", (int)(d1 + 1), tok, (int)(o2 - o1 - 1),
                 other + o1 + 1, tok + d2);
        assert_int_equal(verify(buf, NULL, NULL), TV_ERR_UNAUTHORIZED);
        free(other);
        free(q);
    }
    /* Bad base64url: padding, standard alphabet, whitespace, extra parts, truncation. */
    {
        static const char *const affix[][2] = {{"", "="}, {"", "=="}, {" ", ""},    {"", "\n"},
                                               {"", "."}, {".", ""},  {"", ".AAAA"}};
        struct jwt_claims c;
        for (size_t i = 0; i < sizeof affix / sizeof affix[0]; i++) {
            snprintf(buf, sizeof buf, "%s%s%s", affix[i][0], tok, affix[i][1]);
            assert_int_equal(verify(buf, NULL, NULL), TV_ERR_UNAUTHORIZED);
        }
        snprintf(buf, sizeof buf, "%s", tok);
        buf[d1 - 1] = '+';
        assert_int_equal(verify(buf, NULL, NULL), TV_ERR_UNAUTHORIZED);
        snprintf(buf, sizeof buf, "%s", tok);
        buf[n - 1] = '/';
        assert_int_equal(verify(buf, NULL, NULL), TV_ERR_UNAUTHORIZED);
        snprintf(buf, sizeof buf, "%s", tok);
        buf[n - 3] = '\0';
        assert_int_equal(verify(buf, NULL, NULL), TV_ERR_UNAUTHORIZED);
        /* A NUL inside the given length. */
        snprintf(buf, sizeof buf, "%s", tok);
        buf[5] = '\0';
        assert_int_equal(jwks_verify(keyset, buf, n, &expect, &c), TV_ERR_UNAUTHORIZED);
        assert_int_equal(verify("", NULL, NULL), TV_ERR_UNAUTHORIZED);
        assert_int_equal(verify("..", NULL, NULL), TV_ERR_UNAUTHORIZED);
        assert_int_equal(verify("a.b.c", NULL, NULL), TV_ERR_UNAUTHORIZED);
    }
    free(tok);
    free(p);
}

static void test_oversized(void **state)
{
    char *big = malloc(JWT_MAX_LEN + 2), *tok, *p;
    const char *why = NULL;

    (void)state;
    memset(big, 'A', JWT_MAX_LEN + 1);
    big[JWT_MAX_LEN + 1] = '\0';
    memcpy(big, "eyJhbGciOiJSUzI1NiJ9.", 21);
    big[100] = '.';
    assert_int_equal(verify(big, NULL, &why), TV_ERR_UNAUTHORIZED);
    assert_string_equal(why, "token too large");
    free(big);
    /* A well-formed signed token just over the limit (a padded claim) is refused as well, and
     * jwt_sign refuses to mint one. */
    /* base64url grows the payload by 4/3, so this padding alone passes the limit. */
    size_t pad = JWT_MAX_LEN * 3 / 4 + 64;
    big = malloc(pad + 1);
    memset(big, 'x', pad);
    big[pad] = '\0';
    p = malloc(pad + 256);
    snprintf(p, pad + 256,
             "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"a\",\"pad\":\"%s\"" EXP "}", big);
    tok = NULL;
    assert_int_equal(jwt_sign(rsa_key, JWT_ALG_RS256, "r1", p, &tok), TV_ERR_TOO_LARGE);
    tok = sign_custom(rsa_key, "SHA256", RSA_PKCS1_PADDING, "{\"alg\":\"RS256\",\"kid\":\"r1\"}", p,
                      0);
    assert_true(strlen(tok) > JWT_MAX_LEN);
    assert_int_equal(verify(tok, NULL, &why), TV_ERR_UNAUTHORIZED);
    assert_string_equal(why, "token too large");
    free(tok);
    free(p);
    free(big);
}

static void test_jwk_parsing(void **state)
{
    struct jwk *k = NULL;
    EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    char *j;
    static const char *bad[] = {
        "{\"kty\":\"oct\",\"k\":\"AAAAAAAAAAAAAAAAAAAAAA\"}",
        "{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AA\",\"y\":\"AA\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_"
        "7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}",
        "{\"kty\":\"RSA\",\"n\":\"AQAB\"}",
        "{\"kty\":\"RSA\"}",
        "[]",
        "{\"kty\":\"EC\",\"crv\":\"P-256\"}",
    };

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_not_equal(jwk_parse(bad[i], strlen(bad[i]), &k), 0);
    /* RSA under 2048 bits. */
    j = jwk_json(small, "s", NULL);
    assert_int_equal(jwk_parse(j, strlen(j), &k), TV_ERR_INVALID);
    assert_int_equal(jwk_from_pkey(small, NULL, &k), TV_ERR_INVALID);
    free(j);
    EVP_PKEY_free(small);
    /* alg must fit the key; use must be sig; key_ops must allow verify. */
    j = jwk_json(rsa_key, "r", "ES256");
    assert_int_equal(jwk_parse(j, strlen(j), &k), TV_ERR_INVALID);
    free(j);
    j = jwk_json(rsa_key, "r", "RS384");
    assert_int_equal(jwk_parse(j, strlen(j), &k), TV_ERR_INVALID);
    free(j);
    j = jwk_json(ec_key, "e", "HS256");
    assert_int_equal(jwk_parse(j, strlen(j), &k), TV_ERR_INVALID);
    free(j);
    j = jwk_json(rsa_key, "r", "PS256");
    assert_int_equal(jwk_parse(j, strlen(j), &k), 0);
    assert_true(jwk_allows(k, JWT_ALG_PS256));
    assert_false(jwk_allows(k, JWT_ALG_RS256));
    assert_false(jwk_allows(k, JWT_ALG_ES256));
    assert_string_equal(jwk_kid(k), "r");
    jwk_free(k);
    free(j);
    /* An off-curve EC point. */
    j = jwk_json(ec_key, "e", NULL);
    {
        char *y = strstr(j, "\"y\":\"") + 5;
        y[3] = y[3] == 'A' ? 'B' : 'A';
    }
    assert_int_equal(jwk_parse(j, strlen(j), &k), TV_ERR_INVALID);
    free(j);
    /* Wrong use and key_ops. */
    {
        char *r = jwk_json(rsa_key, "r", NULL), buf[4096];
        size_t len = strlen(r);
        r[len - 1] = '\0';
        snprintf(buf, sizeof buf, "%s,\"key_ops\":[\"sign\"]}", r);
        assert_int_equal(jwk_parse(buf, strlen(buf), &k), TV_ERR_INVALID);
        snprintf(buf, sizeof buf, "%s,\"key_ops\":[\"verify\"]}", r);
        assert_int_equal(jwk_parse(buf, strlen(buf), &k), 0);
        jwk_free(k);
        char *u = strstr(r, "\"use\":\"sig\"");
        memcpy(u, "\"use\":\"enc\"", 11);
        snprintf(buf, sizeof buf, "%s}", r);
        assert_int_equal(jwk_parse(buf, strlen(buf), &k), TV_ERR_INVALID);
        free(r);
    }
    /* A key set where two keys share a kid keeps neither of them. */
    {
        char *a = jwk_json(rsa_key, "same", NULL), *b = jwk_json(rsa_key2, "same", NULL);
        char *c = jwk_json(ec_key, "other", NULL), doc[16384];
        struct jwks *s;
        struct jwks_opts o = {0};
        snprintf(doc, sizeof doc, "{\"keys\":[%s,%s,%s]}", a, b, c);
        assert_int_equal(jwks_new(&o, &s), 0);
        assert_int_equal(jwks_load_json(s, doc, strlen(doc)), 0);
        assert_int_equal(jwks_key_count(s), 1);
        snprintf(doc, sizeof doc, "{\"keys\":[%s,%s]}", a, b);
        assert_int_equal(jwks_load_json(s, doc, strlen(doc)), TV_ERR_PARSE);
        assert_int_equal(jwks_key_count(s), 1); /* the previous set survives */
        jwks_free(s);
        free(a);
        free(b);
        free(c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_all_algs),
        cmocka_unit_test(test_time_claims),
        cmocka_unit_test(test_iss_aud),
        cmocka_unit_test(test_user_claim),
        cmocka_unit_test(test_duplicates_and_shape),
        cmocka_unit_test(test_alg_confusion),
        cmocka_unit_test(test_header_rules),
        cmocka_unit_test(test_kid_selection),
        cmocka_unit_test(test_tamper_and_encoding),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_jwk_parsing),
    };

    log_setup(LOGL_OFF, 2);
    return cmocka_run_group_tests(tests, setup, teardown);
}
