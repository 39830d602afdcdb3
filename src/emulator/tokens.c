/* RS256 JWTs for acs-emulator. The header is fixed per key and encoded once; each token gets a
 * fresh json-c payload (identity strings can come from a Teams token, so they must be escaped)
 * and a PKCS#1 v1.5 SHA-256 signature. */
#include "tokens.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "core/b64.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/jsonx.h"

#define TOKENS_SIG_MAX 512 /* RSA-4096 at most; we make 2048 */
#define TOKENS_RESOURCE_LOCATION "unitedstates"
#define TOKENS_RGN "amer"

struct emu_keys {
    EVP_PKEY *pkey;
    char kid[2 * SHA_DIGEST_LENGTH + 1];
    char x5t[32];
    char *header_b64; /* base64url of the fixed JOSE header */
};

static int keys_finish(EVP_PKEY *pkey, struct emu_keys **out)
{
    int rc = TV_ERR_CRYPTO;
    struct emu_keys *k = NULL;
    unsigned char *der = NULL;
    unsigned char sha1[SHA_DIGEST_LENGTH];
    char header[256];
    int der_len;

    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA || EVP_PKEY_get_bits(pkey) < 2048)
        goto out;
    der_len = i2d_PUBKEY(pkey, &der);
    if (der_len <= 0)
        goto out;
    SHA1(der, (size_t)der_len, sha1);
    k = calloc(1, sizeof(*k));
    if (!k) {
        rc = TV_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < sizeof(sha1); i++)
        snprintf(k->kid + 2 * i, 3, "%02X", sha1[i]);
    b64url_encode(sha1, sizeof(sha1), k->x5t);
    snprintf(header, sizeof(header),
             "{\"alg\":\"RS256\",\"kid\":\"%s\",\"x5t\":\"%s\",\"typ\":\"JWT\"}", k->kid, k->x5t);
    k->header_b64 = malloc(b64_encoded_size(strlen(header)));
    if (!k->header_b64) {
        rc = TV_ERR_NOMEM;
        goto out;
    }
    b64url_encode((const uint8_t *)header, strlen(header), k->header_b64);
    k->pkey = pkey;
    *out = k;
    k = NULL;
    rc = 0;
out:
    if (k) {
        free(k->header_b64);
        free(k);
    }
    OPENSSL_free(der);
    return rc;
}

int emu_keys_generate(struct emu_keys **out)
{
    EVP_PKEY *pkey = EVP_RSA_gen(2048);
    int rc;

    if (!pkey)
        return TV_ERR_CRYPTO;
    rc = keys_finish(pkey, out);
    if (rc != 0)
        EVP_PKEY_free(pkey);
    return rc;
}

int emu_keys_from_pem(const char *pem, size_t pem_len, struct emu_keys **out)
{
    int rc = TV_ERR_CRYPTO;
    BIO *bio = NULL;
    EVP_PKEY *pkey = NULL;

    if (pem_len > INT32_MAX)
        goto out;
    bio = BIO_new_mem_buf(pem, (int)pem_len);
    if (!bio)
        goto out;
    pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    if (!pkey)
        goto out;
    rc = keys_finish(pkey, out);
    if (rc == 0)
        pkey = NULL;
out:
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    return rc;
}

int emu_keys_to_pem(const struct emu_keys *k, char **out)
{
    int rc = TV_ERR_CRYPTO;
    BIO *bio = BIO_new(BIO_s_secmem());
    char *data;
    long len;
    char *copy;

    if (!bio)
        goto out;
    if (PEM_write_bio_PKCS8PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL, NULL) != 1)
        goto out;
    len = BIO_get_mem_data(bio, &data);
    if (len <= 0)
        goto out;
    copy = malloc((size_t)len + 1);
    if (!copy) {
        rc = TV_ERR_NOMEM;
        goto out;
    }
    memcpy(copy, data, (size_t)len);
    copy[len] = '\0';
    *out = copy;
    rc = 0;
out:
    BIO_free(bio); /* secure-memory BIO: freed storage is cleansed */
    return rc;
}

void emu_keys_free(struct emu_keys *k)
{
    if (!k)
        return;
    EVP_PKEY_free(k->pkey);
    free(k->header_b64);
    free(k);
}

const char *emu_keys_kid(const struct emu_keys *k)
{
    return k->kid;
}

/* base64url of a big-endian BIGNUM parameter of the key into *out (malloc'd). */
static int keys_bn_b64url(const struct emu_keys *k, const char *param, char **out)
{
    int rc = TV_ERR_CRYPTO;
    BIGNUM *bn = NULL;
    unsigned char *bin = NULL;
    char *enc = NULL;
    int n;

    if (EVP_PKEY_get_bn_param(k->pkey, param, &bn) != 1)
        goto out;
    n = BN_num_bytes(bn);
    bin = malloc((size_t)n + 1);
    enc = malloc(b64_encoded_size((size_t)n));
    if (!bin || !enc) {
        rc = TV_ERR_NOMEM;
        goto out;
    }
    BN_bn2bin(bn, bin);
    b64url_encode(bin, (size_t)n, enc);
    *out = enc;
    enc = NULL;
    rc = 0;
out:
    free(enc);
    free(bin);
    BN_free(bn);
    return rc;
}

int emu_keys_jwks(const struct emu_keys *k, char **out)
{
    int rc;
    char *n = NULL, *e = NULL;
    struct buf b;

    buf_init(&b, 8192);
    rc = keys_bn_b64url(k, OSSL_PKEY_PARAM_RSA_N, &n);
    if (rc != 0)
        goto out;
    rc = keys_bn_b64url(k, OSSL_PKEY_PARAM_RSA_E, &e);
    if (rc != 0)
        goto out;
    rc = buf_printf(&b,
                    "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"%s\",\"alg\":\"RS256\",\"use\":\"sig\","
                    "\"n\":\"%s\",\"e\":\"%s\",\"x5t\":\"%s\"}]}",
                    k->kid, n, e, k->x5t);
    if (rc != 0)
        goto out;
    *out = buf_take(&b);
    rc = *out ? 0 : TV_ERR_NOMEM;
out:
    buf_release(&b);
    free(n);
    free(e);
    return rc;
}

static int tokens_payload(const struct emu_claims *c, char **out)
{
    int rc = TV_ERR_NOMEM;
    struct json_object *p = json_object_new_object();
    char csi[32];

    if (!p)
        goto out;
    snprintf(csi, sizeof(csi), "%lld", (long long)c->iat);
    if (json_object_object_add(p, "skypeid", json_object_new_string(c->skypeid)) ||
        json_object_object_add(p, "scp", json_object_new_int64(c->scp)) ||
        json_object_object_add(p, "csi", json_object_new_string(csi)) ||
        json_object_object_add(p, "exp", json_object_new_int64(c->exp)) ||
        json_object_object_add(p, "rgn", json_object_new_string(TOKENS_RGN)) ||
        json_object_object_add(p, "acsScope", json_object_new_string(c->acs_scope)) ||
        json_object_object_add(p, "resourceId", json_object_new_string(c->resource_id)) ||
        json_object_object_add(p, "resourceLocation",
                               json_object_new_string(TOKENS_RESOURCE_LOCATION)) ||
        json_object_object_add(p, "iat", json_object_new_int64(c->iat)) ||
        json_object_object_add(p, "jti", json_object_new_string(c->jti)) ||
        json_object_object_add(p, "gen", json_object_new_int64((int64_t)c->gen)))
        goto out;
    *out = strdup(jsonx_compact(p));
    rc = *out ? 0 : TV_ERR_NOMEM;
out:
    json_object_put(p);
    return rc;
}

int emu_keys_sign_json(const struct emu_keys *k, const char *payload, char **out)
{
    int rc = TV_ERR_NOMEM;
    char *tok = NULL;
    EVP_MD_CTX *ctx = NULL;
    unsigned char sig[TOKENS_SIG_MAX];
    size_t sig_len = sizeof(sig);
    size_t hlen, plen, signed_len, total;

    hlen = strlen(k->header_b64);
    plen = b64_encoded_size(strlen(payload)) - 1;
    total = hlen + 1 + plen + 1 + b64_encoded_size(sizeof(sig));
    tok = malloc(total);
    if (!tok)
        goto out;
    memcpy(tok, k->header_b64, hlen);
    tok[hlen] = '.';
    b64url_encode((const uint8_t *)payload, strlen(payload), tok + hlen + 1);
    signed_len = strlen(tok);
    rc = TV_ERR_CRYPTO;
    ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k->pkey) != 1 ||
        EVP_DigestSign(ctx, sig, &sig_len, (const unsigned char *)tok, signed_len) != 1)
        goto out;
    tok[signed_len] = '.';
    b64url_encode(sig, sig_len, tok + signed_len + 1);
    *out = tok;
    tok = NULL;
    rc = 0;
out:
    EVP_MD_CTX_free(ctx);
    free(tok);
    return rc;
}

int emu_token_mint(const struct emu_keys *k, const struct emu_claims *c, char **out)
{
    char *payload = NULL;
    int rc;

    rc = tokens_payload(c, &payload);
    if (rc == 0)
        rc = emu_keys_sign_json(k, payload, out);
    free(payload);
    return rc;
}

/* Decodes one base64url segment as a strict JSON object. */
static int tokens_segment_json(const char *s, size_t len, struct json_object **out)
{
    int rc = TV_ERR_PARSE;
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    struct json_object *o = NULL;

    if (b64url_decode(s, len, &raw, &raw_len) != 0)
        goto out;
    if (jsonx_parse((const char *)raw, raw_len, EMU_TOKEN_MAX, &o) != 0)
        goto out;
    if (!json_object_is_type(o, json_type_object))
        goto out;
    *out = o;
    o = NULL;
    rc = 0;
out:
    json_object_put(o);
    if (raw) {
        OPENSSL_cleanse(raw, raw_len);
        free(raw);
    }
    return rc;
}

/* Fills c from a payload object; 0 or TV_ERR_PARSE when a required claim is missing. */
static int tokens_claims_read(struct json_object *p, struct emu_claims *c)
{
    const char *s;
    int64_t v;

    memset(c, 0, sizeof(*c));
    if (jsonx_get_string(p, "skypeid", EMU_SKYPEID_MAX - 1, &s) != 0)
        return TV_ERR_PARSE;
    (void)buf_copy_str(c->skypeid, sizeof(c->skypeid), s);
    if (jsonx_get_int(p, "exp", 0, INT64_MAX / 1000, &c->exp) != 0 ||
        jsonx_get_int(p, "iat", 0, INT64_MAX / 1000, &c->iat) != 0)
        return TV_ERR_PARSE;
    if (jsonx_get_int(p, "gen", 0, INT64_MAX, &v) != 0)
        return TV_ERR_PARSE;
    c->gen = (uint64_t)v;
    if (jsonx_get_int(p, "scp", INT64_MIN, INT64_MAX, &c->scp) != 0)
        c->scp = 0;
    if (jsonx_get_string(p, "acsScope", EMU_SCOPE_STR_MAX - 1, &s) == 0)
        (void)buf_copy_str(c->acs_scope, sizeof(c->acs_scope), s);
    if (jsonx_get_string(p, "resourceId", EMU_UUID_LEN - 1, &s) == 0)
        (void)buf_copy_str(c->resource_id, sizeof(c->resource_id), s);
    if (jsonx_get_string(p, "jti", EMU_JTI_MAX - 1, &s) == 0)
        (void)buf_copy_str(c->jti, sizeof(c->jti), s);
    return 0;
}

enum emu_token_reason emu_token_verify(const struct emu_keys *k, const char *token, size_t len,
                                       struct emu_claims *out)
{
    enum emu_token_reason r = EMU_TOKEN_MALFORMED;
    const char *dot1, *dot2;
    struct json_object *hdr = NULL, *pay = NULL;
    const char *alg, *kid;
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    EVP_MD_CTX *ctx = NULL;

    memset(out, 0, sizeof(*out));
    if (!token || len == 0 || len > EMU_TOKEN_MAX || memchr(token, '\0', len))
        goto out;
    dot1 = memchr(token, '.', len);
    if (!dot1)
        goto out;
    dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
    if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
        goto out;
    if (tokens_segment_json(token, (size_t)(dot1 - token), &hdr) != 0 ||
        tokens_segment_json(dot1 + 1, (size_t)(dot2 - dot1 - 1), &pay) != 0)
        goto out;
    if (jsonx_get_string(hdr, "alg", 16, &alg) != 0 || jsonx_get_string(hdr, "kid", 64, &kid) != 0)
        goto out;
    if (tokens_claims_read(pay, out) != 0)
        goto out;
    /* From here on the header and payload are well-formed; anything that does not check out is
     * a signature failure (wrong algorithm, another key, altered or missing signature bytes). */
    r = EMU_TOKEN_BAD_SIGNATURE;
    if (b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), &sig, &sig_len) != 0 ||
        sig_len == 0)
        goto out;
    if (strcmp(alg, "RS256") != 0 || strcmp(kid, k->kid) != 0)
        goto out;
    ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k->pkey) != 1)
        goto out;
    if (EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)token, (size_t)(dot2 - token)) !=
        1)
        goto out;
    r = EMU_TOKEN_OK;
out:
    EVP_MD_CTX_free(ctx);
    free(sig);
    json_object_put(hdr);
    json_object_put(pay);
    return r;
}

const char *emu_token_reason_name(enum emu_token_reason r)
{
    switch (r) {
    case EMU_TOKEN_OK:
        return "ok";
    case EMU_TOKEN_MALFORMED:
        return "malformed";
    case EMU_TOKEN_BAD_SIGNATURE:
        return "bad_signature";
    case EMU_TOKEN_EXPIRED:
        return "expired";
    case EMU_TOKEN_REVOKED:
        return "revoked";
    case EMU_TOKEN_DELETED:
        return "deleted";
    }
    return "malformed";
}
