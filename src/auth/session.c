/* Service-issued ES256 session tokens. The key is kept by the caller (the store's meta table) as
 * PKCS#8 bytes, so this module knows nothing of storage; verification goes through jwt_verify,
 * the same code that checks OIDC tokens. */
#include "auth/session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/b64.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/jsonx.h"

#define SESSION_KID_LEN 44 /* base64url SHA-256 (43 chars) + NUL */
#define SESSION_MAX_TTL_S (7 * 86400)

struct session_key {
    EVP_PKEY *pkey; /* P-256 private key */
    struct jwk *jwk;
    char kid[SESSION_KID_LEN];
};

/* RFC 7638 thumbprint: SHA-256 over {"crv","kty","x","y"} in that order, without spaces. */
static int session_thumbprint(EVP_PKEY *pkey, char kid[SESSION_KID_LEN])
{
    BIGNUM *x = NULL, *y = NULL;
    uint8_t xb[32], yb[32], digest[32];
    char xs[48], ys[48], json[160];
    unsigned int dlen = 0;
    int n, rc = TV_ERR_CRYPTO;

    if (!EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, &x) ||
        !EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &y) ||
        BN_bn2binpad(x, xb, 32) != 32 || BN_bn2binpad(y, yb, 32) != 32)
        goto cleanup;
    b64url_encode(xb, 32, xs);
    b64url_encode(yb, 32, ys);
    n = snprintf(json, sizeof json, "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
                 xs, ys);
    if (n <= 0 || (size_t)n >= sizeof json ||
        !EVP_Digest(json, (size_t)n, digest, &dlen, EVP_sha256(), NULL) || dlen != 32)
        goto cleanup;
    b64url_encode(digest, 32, kid);
    rc = 0;
cleanup:
    BN_free(x);
    BN_free(y);
    return rc;
}

/* Takes ownership of pkey (freed on failure too). */
static int session_key_wrap(EVP_PKEY *pkey, struct session_key **out)
{
    struct session_key *k = NULL;
    char group[32];
    int rc = TV_ERR_INVALID;

    if (!EVP_PKEY_is_a(pkey, "EC") ||
        !EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                        NULL) ||
        strcmp(group, "prime256v1") != 0)
        goto fail;
    {
        /* It must carry the private scalar, or it could not sign. */
        BIGNUM *d = NULL;
        int has = EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY, &d);
        BN_clear_free(d);
        if (!has)
            goto fail;
    }
    rc = TV_ERR_NOMEM;
    k = calloc(1, sizeof *k);
    if (!k)
        goto fail;
    k->pkey = pkey;
    pkey = NULL;
    rc = session_thumbprint(k->pkey, k->kid);
    if (rc == 0)
        rc = jwk_from_pkey(k->pkey, k->kid, &k->jwk);
    if (rc != 0)
        goto fail;
    *out = k;
    return 0;
fail:
    EVP_PKEY_free(pkey);
    session_key_free(k);
    return rc;
}

int session_key_generate(struct session_key **out)
{
    EVP_PKEY *pkey;

    if (!out)
        return TV_ERR_INVALID;
    pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!pkey)
        return TV_ERR_CRYPTO;
    return session_key_wrap(pkey, out);
}

int session_key_import(const uint8_t *data, size_t len, struct session_key **out)
{
    static const char pem_tag[] = "-----BEGIN";
    EVP_PKEY *pkey = NULL;

    if (!data || !out || len == 0 || len > SESSION_KEY_MAX)
        return TV_ERR_INVALID;
    if (len >= sizeof pem_tag - 1 && memcmp(data, pem_tag, sizeof pem_tag - 1) == 0) {
        BIO *bio = BIO_new_mem_buf(data, (int)len);
        if (!bio)
            return TV_ERR_NOMEM;
        /* A NULL passphrase callback with "" refuses encrypted PEM instead of prompting. */
        char no_pass[] = "";
        pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, no_pass);
        BIO_free(bio);
    } else {
        const unsigned char *p = data;
        pkey = d2i_AutoPrivateKey(NULL, &p, (long)len);
        if (pkey && p != data + len) {
            EVP_PKEY_free(pkey); /* trailing bytes: not exactly one key */
            pkey = NULL;
        }
    }
    if (!pkey)
        return TV_ERR_INVALID;
    return session_key_wrap(pkey, out);
}

int session_key_export(const struct session_key *k, uint8_t **out, size_t *out_len)
{
    PKCS8_PRIV_KEY_INFO *p8;
    unsigned char *der = NULL;
    uint8_t *copy;
    int n;

    if (!k || !out || !out_len)
        return TV_ERR_INVALID;
    p8 = EVP_PKEY2PKCS8(k->pkey);
    if (!p8)
        return TV_ERR_CRYPTO;
    n = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
    PKCS8_PRIV_KEY_INFO_free(p8);
    if (n <= 0)
        return TV_ERR_CRYPTO;
    copy = malloc((size_t)n);
    if (copy)
        memcpy(copy, der, (size_t)n);
    OPENSSL_clear_free(der, (size_t)n);
    if (!copy)
        return TV_ERR_NOMEM;
    *out = copy;
    *out_len = (size_t)n;
    return 0;
}

int session_key_export_pem(const struct session_key *k, char **out, size_t *out_len)
{
    BIO *bio;
    char *mem = NULL, *copy = NULL;
    long n;
    int rc = TV_ERR_CRYPTO;

    if (!k || !out || !out_len)
        return TV_ERR_INVALID;
    bio = BIO_new(BIO_s_secmem());
    if (!bio)
        return TV_ERR_NOMEM;
    if (!PEM_write_bio_PKCS8PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL, NULL))
        goto cleanup;
    n = BIO_get_mem_data(bio, &mem);
    if (n <= 0)
        goto cleanup;
    rc = TV_ERR_NOMEM;
    copy = malloc((size_t)n + 1);
    if (!copy)
        goto cleanup;
    memcpy(copy, mem, (size_t)n);
    copy[n] = '\0';
    *out = copy;
    *out_len = (size_t)n;
    rc = 0;
cleanup:
    BIO_free(bio); /* secure-heap BIO: its memory is cleansed on free */
    return rc;
}

void session_key_free(struct session_key *k)
{
    if (!k)
        return;
    jwk_free(k->jwk);
    EVP_PKEY_free(k->pkey); /* OpenSSL clears private key material on free */
    free(k);
}

const char *session_key_kid(const struct session_key *k)
{
    return k->kid;
}

const struct jwk *session_key_jwk(const struct session_key *k)
{
    return k->jwk;
}

/* has_epoch 0: no epoch claim (session_issue, kept for tests and tools). */
static int issue(const struct session_key *k, const char *sub, int has_epoch, int64_t epoch,
                 int64_t now_s, int64_t ttl_s, char **token, int64_t *exp_s)
{
    char ep[24];
    struct json_object *claims = NULL;
    const char *text;
    int64_t exp;
    size_t sub_len;
    int rc = TV_ERR_INVALID;

    if (!k || !sub || !token)
        return TV_ERR_INVALID;
    sub_len = strlen(sub);
    if (sub_len == 0 || sub_len > JWT_USER_MAX || ttl_s < 0 || ttl_s > SESSION_MAX_TTL_S)
        return TV_ERR_INVALID;
    if (now_s == 0)
        now_s = clock_wall_ms() / 1000;
    exp = now_s + (ttl_s ? ttl_s : SESSION_DEFAULT_TTL_S);
    rc = TV_ERR_NOMEM;
    claims = json_object_new_object();
    if (!claims || json_object_object_add(claims, "iss", json_object_new_string(SESSION_ISSUER)) ||
        json_object_object_add(claims, "aud", json_object_new_string(SESSION_AUDIENCE)) ||
        json_object_object_add(claims, "sub", json_object_new_string_len(sub, (int)sub_len)) ||
        json_object_object_add(claims, "iat", json_object_new_int64(now_s)) ||
        json_object_object_add(claims, "exp", json_object_new_int64(exp)))
        goto cleanup;
    if (has_epoch) {
        snprintf(ep, sizeof ep, "%lld", (long long)epoch);
        if (json_object_object_add(claims, SESSION_EPOCH_CLAIM, json_object_new_string(ep)))
            goto cleanup;
    }
    text = jsonx_compact(claims);
    if (!text)
        goto cleanup;
    rc = jwt_sign(k->pkey, JWT_ALG_ES256, k->kid, text, token);
    if (rc == 0 && exp_s)
        *exp_s = exp;
cleanup:
    json_object_put(claims);
    return rc;
}

int session_issue(const struct session_key *k, const char *sub, int64_t now_s, int64_t ttl_s,
                  char **token, int64_t *exp_s)
{
    return issue(k, sub, 0, 0, now_s, ttl_s, token, exp_s);
}

int session_issue_epoch(const struct session_key *k, const char *sub, int64_t epoch, int64_t now_s,
                        int64_t ttl_s, char **token, int64_t *exp_s)
{
    return issue(k, sub, 1, epoch, now_s, ttl_s, token, exp_s);
}

int session_epoch_get(const struct jwt_claims *c, int64_t *epoch)
{
    const char *v = NULL;
    char *end = NULL;
    long long n;

    if (c == NULL || epoch == NULL || jwt_claims_get_string(c, SESSION_EPOCH_CLAIM, 20, &v) != 0 ||
        v == NULL || v[0] == '\0')
        return TV_ERR_UNAUTHORIZED;
    errno = 0;
    n = strtoll(v, &end, 10);
    if (errno != 0 || *end != '\0' || (v[0] != '-' && (v[0] < '0' || v[0] > '9')))
        return TV_ERR_UNAUTHORIZED;
    *epoch = (int64_t)n;
    return 0;
}

int session_verify(const struct session_key *k, const char *token, size_t len, int64_t now_s,
                   struct jwt_claims *out, const char **reason)
{
    struct jwt_expect e = {
        .issuer = SESSION_ISSUER,
        .audience = SESSION_AUDIENCE,
        .user_claim = "sub",
        .leeway_s = JWT_DEFAULT_LEEWAY_S,
        .now_s = now_s,
    };

    if (!k) {
        if (reason)
            *reason = "no session key";
        return TV_ERR_UNAUTHORIZED;
    }
    return jwt_verify(k->jwk, token, len, &e, out, reason);
}
