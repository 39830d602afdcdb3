/* Strict JWS compact verification and JWT claim checks. Each step refuses rather than guesses:
 * exactly three strict base64url parts, a strict JSON header (no duplicates), an algorithm the
 * KEY allows (the header only selects among those), fixed signature sizes, then the claims. */
#include "auth/jwt.h"
#include "auth/jwk.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>

#include "core/b64.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/ident.h"
#include "core/jsonx.h"

#define JWT_HEADER_MAX 4096 /* decoded header bytes */
#define JWT_ES256_SIG_LEN 64
#define JWT_MAX_TIME                                                                               \
    253402300799LL /* 9999-12-31T23:59:59Z: keeps exp + leeway from overflowing                    \
                    */

/* The three parts of a compact token, as offsets into it. */
struct jwt_parts {
    const char *header;
    size_t header_len;
    const char *payload;
    size_t payload_len;
    const char *sig;
    size_t sig_len;
    size_t signing_input_len; /* header "." payload */
};

static int jwt_split(const char *token, size_t len, struct jwt_parts *p)
{
    const char *d1, *d2;

    if (!token || len == 0 || len > JWT_MAX_LEN || memchr(token, '\0', len))
        return TV_ERR_UNAUTHORIZED;
    d1 = memchr(token, '.', len);
    if (!d1)
        return TV_ERR_UNAUTHORIZED;
    d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token));
    if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)))
        return TV_ERR_UNAUTHORIZED;
    p->header = token;
    p->header_len = (size_t)(d1 - token);
    p->payload = d1 + 1;
    p->payload_len = (size_t)(d2 - p->payload);
    p->sig = d2 + 1;
    p->sig_len = len - (size_t)(p->sig - token);
    p->signing_input_len = (size_t)(d2 - token);
    /* An empty header or signature can never verify; an empty payload is legal JWS. */
    if (p->header_len == 0 || p->sig_len == 0)
        return TV_ERR_UNAUTHORIZED;
    return 0;
}

/* Checks the decoded header object and fills *out. */
static int jwt_header_check(struct json_object *hdr, struct jwt_header *out)
{
    struct json_object *v;
    const char *s;
    int rc;

    if (!json_object_is_type(hdr, json_type_object))
        return TV_ERR_UNAUTHORIZED;
    if (jsonx_get_string(hdr, "alg", 16, &s) != 0 || jwt_alg_parse(s, &out->alg) != 0)
        return TV_ERR_UNAUTHORIZED;
    /* We understand no extension, so any "crit" list must be refused (RFC 7515 4.1.11); "b64"
     * (RFC 7797) changes what is signed and is only legal together with "crit". */
    if (json_object_object_get_ex(hdr, "crit", &v) || json_object_object_get_ex(hdr, "b64", &v))
        return TV_ERR_UNAUTHORIZED;
    rc = jsonx_get_string(hdr, "typ", 64, &s);
    if (rc == 0) {
        if (strcasecmp(s, "JWT") != 0 && strcasecmp(s, "at+jwt") != 0 &&
            strcasecmp(s, "application/at+jwt") != 0)
            return TV_ERR_UNAUTHORIZED;
    } else if (rc != TV_ERR_NOT_FOUND) {
        return TV_ERR_UNAUTHORIZED;
    }
    out->kid[0] = '\0';
    rc = jsonx_get_string(hdr, "kid", JWK_KID_MAX, &s);
    if (rc == 0)
        memcpy(out->kid, s, strlen(s) + 1);
    else if (rc != TV_ERR_NOT_FOUND)
        return TV_ERR_UNAUTHORIZED;
    /* "jku", "x5u", "jwk" and "x5c" are deliberately ignored: trusting a key or a URL named by
     * the token itself would let anyone sign their own tokens. */
    return 0;
}

static int jwt_header_decode(const struct jwt_parts *p, struct jwt_header *out)
{
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    struct json_object *hdr = NULL;
    int rc;

    if (p->header_len > b64_encoded_size(JWT_HEADER_MAX))
        return TV_ERR_UNAUTHORIZED;
    rc = b64url_decode(p->header, p->header_len, &raw, &raw_len);
    if (rc != 0)
        return rc == TV_ERR_NOMEM ? rc : TV_ERR_UNAUTHORIZED;
    rc = jsonx_parse((const char *)raw, raw_len, JWT_HEADER_MAX, &hdr);
    if (rc == 0)
        rc = jwt_header_check(hdr, out);
    else
        rc = TV_ERR_UNAUTHORIZED;
    json_object_put(hdr);
    free(raw);
    return rc;
}

int jwt_header_peek(const char *token, size_t len, struct jwt_header *out)
{
    struct jwt_parts p;
    struct jwt_header h;
    int rc;

    if (!out)
        return TV_ERR_INVALID;
    rc = jwt_split(token, len, &p);
    if (rc == 0)
        rc = jwt_header_decode(&p, &h);
    if (rc == 0)
        *out = h;
    return rc;
}

/* Raw r||s (RFC 7518 3.4) -> DER ECDSA-Sig-Value, which is what OpenSSL verifies. */
static int jwt_es256_to_der(const uint8_t *raw, uint8_t **der, size_t *der_len)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, 32, NULL), *s = BN_bin2bn(raw + 32, 32, NULL);
    unsigned char *out = NULL;
    int n, rc = TV_ERR_NOMEM;

    if (!sig || !r || !s || !ECDSA_SIG_set0(sig, r, s))
        goto cleanup;
    r = s = NULL; /* owned by sig now */
    n = i2d_ECDSA_SIG(sig, &out);
    if (n <= 0)
        goto cleanup;
    *der = out;
    *der_len = (size_t)n;
    rc = 0;
cleanup:
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return rc;
}

/* 0 when sig verifies over msg with key under alg; TV_ERR_UNAUTHORIZED otherwise. The digest
 * comes from jwk_sha256() and the key's prepared context does the rest (jwk_verify_sha256):
 * building a DigestVerify context per call fetched the algorithms from the provider store
 * every time, which cost about a fifth of an RSA-2048 verification. */
static int jwt_sig_check(const struct jwk *key, enum jwt_alg alg, const char *msg, size_t msg_len,
                         const uint8_t *sig, size_t sig_len)
{
    uint8_t digest[SHA256_DIGEST_LENGTH];
    uint8_t *der = NULL;
    size_t der_len = 0;
    int rc = TV_ERR_UNAUTHORIZED;

    if (alg == JWT_ALG_ES256) {
        if (sig_len != JWT_ES256_SIG_LEN)
            goto cleanup;
        if (jwt_es256_to_der(sig, &der, &der_len) != 0)
            goto cleanup;
        sig = der;
        sig_len = der_len;
    } else if (sig_len != (size_t)EVP_PKEY_get_size(jwk_pkey(key))) {
        /* RSA signatures are exactly the modulus length (RFC 8017 8.2.2 step 1). */
        goto cleanup;
    }
    jwk_sha256(msg, msg_len, digest);
    rc = jwk_verify_sha256(key, alg, digest, sig, sig_len);
cleanup:
    OPENSSL_free(der);
    return rc;
}

static int jwt_jws_verify_impl(const struct jwk *key, const char *token, size_t len,
                               uint8_t **payload, size_t *payload_len, struct jwt_header *hdr,
                               const char **reason)
{
    struct jwt_parts p;
    uint8_t *sig = NULL, *body = NULL;
    size_t sig_len = 0, body_len = 0;
    int rc;

    *reason = "malformed token";
    if (!key)
        return TV_ERR_UNAUTHORIZED;
    rc = jwt_split(token, len, &p);
    if (rc == 0)
        rc = jwt_header_decode(&p, hdr);
    if (rc != 0) {
        *reason = len > JWT_MAX_LEN ? "token too large" : "malformed token";
        return rc;
    }
    if (!jwk_allows(key, hdr->alg)) {
        *reason = "algorithm not allowed for the key";
        return TV_ERR_UNAUTHORIZED;
    }
    rc = b64url_decode(p.sig, p.sig_len, &sig, &sig_len);
    if (rc == 0)
        rc = b64url_decode(p.payload, p.payload_len, &body, &body_len);
    if (rc != 0) {
        rc = rc == TV_ERR_NOMEM ? rc : TV_ERR_UNAUTHORIZED;
        goto cleanup;
    }
    rc = jwt_sig_check(key, hdr->alg, token, p.signing_input_len, sig, sig_len);
    if (rc != 0) {
        *reason = "bad signature";
        goto cleanup;
    }
    /* b64url_decode gives no terminator; add one so callers may treat the payload as text. */
    {
        uint8_t *t = realloc(body, body_len + 1);
        if (!t) {
            rc = TV_ERR_NOMEM;
            goto cleanup;
        }
        body = t;
        body[body_len] = '\0';
    }
    *payload = body;
    *payload_len = body_len;
    body = NULL;
    *reason = NULL;
cleanup:
    free(sig);
    free(body);
    return rc;
}

int jwt_jws_verify(const struct jwk *key, const char *token, size_t len, uint8_t **payload,
                   size_t *payload_len)
{
    struct jwt_header hdr;
    const char *reason;

    if (!payload || !payload_len)
        return TV_ERR_INVALID;
    return jwt_jws_verify_impl(key, token, len, payload, payload_len, &hdr, &reason);
}

void jwt_claims_release(struct jwt_claims *c)
{
    if (!c)
        return;
    json_object_put(c->payload);
    memset(c, 0, sizeof *c);
}

int jwt_claims_get_string(const struct jwt_claims *c, const char *name, size_t max_len,
                          const char **out)
{
    if (!c || !c->payload || !name || !out)
        return TV_ERR_INVALID;
    return jsonx_get_string(c->payload, name, max_len, out);
}

static int jwt_aud_ok(struct json_object *payload, const char *audience)
{
    struct json_object *aud;

    if (!json_object_object_get_ex(payload, "aud", &aud))
        return 0;
    if (json_object_is_type(aud, json_type_string))
        return strcmp(json_object_get_string(aud), audience) == 0 &&
               (size_t)json_object_get_string_len(aud) == strlen(audience);
    if (!json_object_is_type(aud, json_type_array))
        return 0;
    for (size_t i = 0; i < json_object_array_length(aud); i++) {
        struct json_object *a = json_object_array_get_idx(aud, i);
        if (!json_object_is_type(a, json_type_string))
            return 0; /* a malformed member makes the whole claim suspect */
    }
    for (size_t i = 0; i < json_object_array_length(aud); i++) {
        struct json_object *a = json_object_array_get_idx(aud, i);
        if (strcmp(json_object_get_string(a), audience) == 0)
            return 1;
    }
    return 0;
}

/* Optional integer time claim: 0 absent, 1 present (*out set), -1 malformed. */
static int jwt_time_claim(struct json_object *obj, const char *name, int64_t *out)
{
    int rc = jsonx_get_int(obj, name, 0, JWT_MAX_TIME, out);

    if (rc == TV_ERR_NOT_FOUND)
        return 0;
    return rc == 0 ? 1 : -1;
}

static int jwt_claims_check_impl(const char *payload, size_t len, const struct jwt_expect *e,
                                 struct jwt_claims *out, const char **reason)
{
    struct json_object *obj = NULL;
    const char *iss, *user;
    const char *claim = e && e->user_claim ? e->user_claim : "sub";
    int64_t now, leeway, exp = 0, nbf = 0, iat = 0;
    int rc = TV_ERR_UNAUTHORIZED, has;

    *reason = "invalid expectations";
    if (!payload || !out || !e || !e->issuer || !*e->issuer || !e->audience || !*e->audience)
        return TV_ERR_INVALID;
    now = e->now_s ? e->now_s : clock_wall_ms() / 1000;
    leeway = e->leeway_s == 0 ? JWT_DEFAULT_LEEWAY_S : (e->leeway_s < 0 ? 0 : e->leeway_s);
    if (leeway > 86400)
        leeway = 86400;

    *reason = "malformed claims";
    if (jsonx_parse(payload, len, JWT_MAX_LEN, &obj) != 0 ||
        !json_object_is_type(obj, json_type_object))
        goto cleanup;
    *reason = "wrong issuer";
    if (jsonx_get_string(obj, "iss", 2048, &iss) != 0 || strcmp(iss, e->issuer) != 0)
        goto cleanup;
    *reason = "wrong audience";
    if (!jwt_aud_ok(obj, e->audience))
        goto cleanup;
    *reason = "missing or malformed exp";
    if (jwt_time_claim(obj, "exp", &exp) != 1)
        goto cleanup;
    *reason = "expired";
    if (now >= exp + leeway)
        goto cleanup;
    *reason = "malformed nbf";
    has = jwt_time_claim(obj, "nbf", &nbf);
    if (has < 0)
        goto cleanup;
    *reason = "not yet valid";
    if (has && now + leeway < nbf)
        goto cleanup;
    *reason = "malformed iat";
    if (jwt_time_claim(obj, "iat", &iat) < 0)
        goto cleanup;
    *reason = "missing or malformed user claim";
    if (jsonx_get_string(obj, claim, JWT_USER_MAX, &user) != 0)
        goto cleanup;
    /* The claim becomes the app user id: the same rule as every other way an id enters. */
    *reason = "user claim holds control characters";
    if (ident_check_str(user, JWT_USER_MAX) != IDENT_OK)
        goto cleanup;

    memset(out, 0, sizeof *out);
    memcpy(out->user, user, strlen(user) + 1);
    out->exp = exp;
    out->nbf = nbf;
    out->iat = iat;
    out->payload = obj;
    obj = NULL;
    *reason = NULL;
    rc = 0;
cleanup:
    json_object_put(obj);
    return rc;
}

int jwt_claims_check(const char *payload, size_t len, const struct jwt_expect *e,
                     struct jwt_claims *out)
{
    const char *reason;

    return jwt_claims_check_impl(payload, len, e, out, &reason);
}

int jwt_verify(const struct jwk *key, const char *token, size_t len, const struct jwt_expect *e,
               struct jwt_claims *out, const char **reason)
{
    struct jwt_header hdr;
    struct jwt_claims c;
    uint8_t *payload = NULL;
    size_t payload_len = 0;
    const char *why = NULL;
    int rc;

    if (!out) {
        rc = TV_ERR_INVALID;
        goto done;
    }
    rc = jwt_jws_verify_impl(key, token, len, &payload, &payload_len, &hdr, &why);
    if (rc != 0)
        goto done;
    rc = jwt_claims_check_impl((const char *)payload, payload_len, e, &c, &why);
    if (rc != 0)
        goto done;
    c.alg = hdr.alg;
    memcpy(c.kid, hdr.kid, sizeof c.kid);
    *out = c;
done:
    if (reason)
        *reason = rc == 0 ? NULL : (why ? why : err_message(rc));
    free(payload);
    return rc;
}

/* DER ECDSA-Sig-Value -> raw r||s of 64 bytes. */
static int jwt_es256_from_der(const uint8_t *der, size_t der_len, uint8_t raw[64])
{
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    const BIGNUM *r, *s;
    int rc = TV_ERR_CRYPTO;

    if (!sig)
        return rc;
    ECDSA_SIG_get0(sig, &r, &s);
    if (BN_bn2binpad(r, raw, 32) == 32 && BN_bn2binpad(s, raw + 32, 32) == 32)
        rc = 0;
    ECDSA_SIG_free(sig);
    return rc;
}

static int jwt_sign_raw(EVP_PKEY *priv, enum jwt_alg alg, const char *msg, size_t msg_len,
                        uint8_t **sig_out, size_t *sig_len_out)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    int rc = TV_ERR_CRYPTO;

    if (!md)
        return TV_ERR_NOMEM;
    if (EVP_DigestSignInit_ex(md, &pctx, "SHA256", NULL, NULL, priv, NULL) <= 0)
        goto cleanup;
    if (alg == JWT_ALG_RS256 && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0)
        goto cleanup;
    if (alg == JWT_ALG_PS256 && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
                                 EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, "SHA256", NULL) <= 0 ||
                                 EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) <= 0))
        goto cleanup;
    if (EVP_DigestSign(md, NULL, &sig_len, (const unsigned char *)msg, msg_len) <= 0)
        goto cleanup;
    sig = malloc(sig_len > 64 ? sig_len : 64);
    if (!sig) {
        rc = TV_ERR_NOMEM;
        goto cleanup;
    }
    if (EVP_DigestSign(md, sig, &sig_len, (const unsigned char *)msg, msg_len) <= 0)
        goto cleanup;
    if (alg == JWT_ALG_ES256) {
        uint8_t raw[64];
        if (jwt_es256_from_der(sig, sig_len, raw) != 0)
            goto cleanup;
        memcpy(sig, raw, sizeof raw);
        sig_len = sizeof raw;
    }
    *sig_out = sig;
    *sig_len_out = sig_len;
    sig = NULL;
    rc = 0;
cleanup:
    free(sig);
    EVP_MD_CTX_free(md);
    return rc;
}

int jwt_sign(EVP_PKEY *priv, enum jwt_alg alg, const char *kid, const char *payload_json,
             char **out)
{
    struct json_object *hdr = NULL;
    struct jwk *check = NULL;
    const char *hdr_text;
    char *tok = NULL;
    uint8_t *sig = NULL;
    size_t hdr_len, pay_len, sig_len = 0, pos, cap;
    int rc = TV_ERR_INVALID;

    if (!priv || !payload_json || !out || !jwt_alg_name(alg) || (kid && strlen(kid) > JWK_KID_MAX))
        return TV_ERR_INVALID;
    /* The same key rules as verification, so we never mint a token we would refuse. */
    rc = jwk_from_pkey(priv, NULL, &check);
    if (rc != 0)
        return rc;
    rc = TV_ERR_INVALID;
    if (!jwk_allows(check, alg))
        goto cleanup;
    rc = TV_ERR_NOMEM;
    hdr = json_object_new_object();
    if (!hdr || json_object_object_add(hdr, "alg", json_object_new_string(jwt_alg_name(alg))) ||
        json_object_object_add(hdr, "typ", json_object_new_string("JWT")) ||
        (kid && json_object_object_add(hdr, "kid", json_object_new_string(kid))))
        goto cleanup;
    hdr_text = jsonx_compact(hdr);
    if (!hdr_text)
        goto cleanup;
    hdr_len = strlen(hdr_text);
    pay_len = strlen(payload_json);
    rc = TV_ERR_TOO_LARGE;
    cap = b64_encoded_size(hdr_len) + b64_encoded_size(pay_len) + b64_encoded_size(1024) + 2;
    if (cap > JWT_MAX_LEN + 8)
        goto cleanup;
    rc = TV_ERR_NOMEM;
    tok = malloc(cap);
    if (!tok)
        goto cleanup;
    b64url_encode((const uint8_t *)hdr_text, hdr_len, tok);
    pos = strlen(tok);
    tok[pos++] = '.';
    b64url_encode((const uint8_t *)payload_json, pay_len, tok + pos);
    pos += strlen(tok + pos);
    rc = jwt_sign_raw(priv, alg, tok, pos, &sig, &sig_len);
    if (rc != 0)
        goto cleanup;
    rc = TV_ERR_TOO_LARGE;
    if (sig_len > 1024) /* the buffer holds up to 1024 signature bytes (8192-bit RSA) */
        goto cleanup;
    tok[pos++] = '.';
    b64url_encode(sig, sig_len, tok + pos);
    if (strlen(tok) > JWT_MAX_LEN)
        goto cleanup;
    *out = tok;
    tok = NULL;
    rc = 0;
cleanup:
    free(tok);
    free(sig);
    json_object_put(hdr);
    jwk_free(check);
    return rc;
}
