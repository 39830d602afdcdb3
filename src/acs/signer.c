/* ACS HMAC-SHA256 request signing and its verifier. The string-to-sign is fed to the MAC in
 * pieces, so no copy of the request is made; only the MAC output is a secret-derived
 * intermediate, and it is wiped after encoding. */
#include "acs/signer.h"

#include <pthread.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "core/b64.h"
#include "core/err.h"

#define SIGNER_AUTH_PREFIX "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature="
#define SIGNER_AUTH_LEN (sizeof(SIGNER_AUTH_PREFIX) - 1 + ACS_SHA256_B64_LEN - 1)

/* Ceilings on the signed fields. A request line longer than this is refused by the HTTP layer
 * anyway; the verifier must not spend work on arbitrarily long attacker input. */
#define SIGNER_METHOD_MAX 16
#define SIGNER_PATH_MAX 8192
#define SIGNER_HOST_MAX 300
#define SIGNER_DATE_MAX 64

_Static_assert(SIGNER_AUTH_LEN < ACS_AUTH_MAX, "ACS_AUTH_MAX too small");

/* The fetched HMAC implementation is shared by all threads; fetching it once avoids a lookup in
 * the provider store per request. It lives until exit. */
static pthread_once_t signer_once = PTHREAD_ONCE_INIT;
static EVP_MAC *signer_hmac;

static void signer_fetch(void)
{
    signer_hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

/* A field is usable when present, within its ceiling and free of the delimiter that follows it
 * in the string-to-sign, so that no two different requests share a string-to-sign. */
static int signer_field_ok(const char *s, size_t max, char delim)
{
    size_t n;

    if (!s)
        return 0;
    n = strnlen(s, max + 1);
    return n <= max && !memchr(s, delim, n) && !memchr(s, '\n', n);
}

void acs_content_sha256(const void *body, size_t len, char out[ACS_SHA256_B64_LEN])
{
    unsigned char md[32];
    unsigned int md_len = 0;

    /* EVP_Digest with the default provider only fails when memory runs out; an empty hash
     * string then makes every comparison fail closed. */
    if (!EVP_Digest(len ? body : "", len, md, &md_len, EVP_sha256(), NULL) || md_len != 32) {
        out[0] = '\0';
        return;
    }
    b64_encode(md, sizeof(md), out);
}

/* HMAC over the string-to-sign, base64 into sig (ACS_SHA256_B64_LEN bytes). */
static int signer_mac(const uint8_t *key, size_t key_len, const char *method,
                      const char *path_and_query, const char *host, const char *date,
                      const char *content_sha256, char sig[ACS_SHA256_B64_LEN])
{
    EVP_MAC_CTX *ctx = NULL;
    OSSL_PARAM params[2];
    /* OSSL_PARAM takes a char * but only reads it; a writable copy keeps the literal const. */
    char digest[] = "SHA256";
    unsigned char mac[32];
    size_t mac_len = 0;
    int rc = TV_ERR_CRYPTO;

    if (pthread_once(&signer_once, signer_fetch) != 0 || !signer_hmac)
        goto done;
    ctx = EVP_MAC_CTX_new(signer_hmac);
    if (!ctx)
        goto done;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
    params[1] = OSSL_PARAM_construct_end();
    if (!EVP_MAC_init(ctx, key, key_len, params))
        goto free_ctx;
    if (!EVP_MAC_update(ctx, (const unsigned char *)method, strlen(method)) ||
        !EVP_MAC_update(ctx, (const unsigned char *)"\n", 1) ||
        !EVP_MAC_update(ctx, (const unsigned char *)path_and_query, strlen(path_and_query)) ||
        !EVP_MAC_update(ctx, (const unsigned char *)"\n", 1) ||
        !EVP_MAC_update(ctx, (const unsigned char *)date, strlen(date)) ||
        !EVP_MAC_update(ctx, (const unsigned char *)";", 1) ||
        !EVP_MAC_update(ctx, (const unsigned char *)host, strlen(host)) ||
        !EVP_MAC_update(ctx, (const unsigned char *)";", 1) ||
        !EVP_MAC_update(ctx, (const unsigned char *)content_sha256, strlen(content_sha256)))
        goto free_ctx;
    if (!EVP_MAC_final(ctx, mac, &mac_len, sizeof(mac)) || mac_len != sizeof(mac))
        goto free_ctx;
    b64_encode(mac, sizeof(mac), sig);
    rc = 0;
free_ctx:
    /* EVP_MAC_CTX_free cleanses the keyed state it holds. */
    EVP_MAC_CTX_free(ctx);
    OPENSSL_cleanse(mac, sizeof(mac));
done:
    return rc;
}

/* Argument checks shared by acs_sign and acs_sign_verify. */
static int signer_args_ok(const uint8_t *key, size_t key_len, const char *method,
                          const char *path_and_query, const char *host, const char *date,
                          const void *body, size_t body_len)
{
    return key && key_len > 0 && (body || body_len == 0) &&
           signer_field_ok(method, SIGNER_METHOD_MAX, '\n') && method[0] &&
           signer_field_ok(path_and_query, SIGNER_PATH_MAX, '\n') &&
           signer_field_ok(date, SIGNER_DATE_MAX, ';') &&
           signer_field_ok(host, SIGNER_HOST_MAX, ';');
}

int acs_sign(const uint8_t *key, size_t key_len, const char *method, const char *path_and_query,
             const char *host, const char *date, const void *body, size_t body_len,
             char content_sha256[ACS_SHA256_B64_LEN], char authorization[ACS_AUTH_MAX])
{
    char hash[ACS_SHA256_B64_LEN];
    char sig[ACS_SHA256_B64_LEN];
    int rc = TV_ERR_INVALID;

    if (!content_sha256 || !authorization ||
        !signer_args_ok(key, key_len, method, path_and_query, host, date, body, body_len))
        goto done;
    rc = TV_ERR_CRYPTO;
    acs_content_sha256(body, body_len, hash);
    if (!hash[0])
        goto done;
    rc = signer_mac(key, key_len, method, path_and_query, host, date, hash, sig);
    if (rc)
        goto done;
    memcpy(content_sha256, hash, sizeof(hash));
    memcpy(authorization, SIGNER_AUTH_PREFIX, sizeof(SIGNER_AUTH_PREFIX) - 1);
    memcpy(authorization + sizeof(SIGNER_AUTH_PREFIX) - 1, sig, sizeof(sig));
done:
    OPENSSL_cleanse(sig, sizeof(sig));
    return rc;
}

int acs_sign_verify(const uint8_t *key, size_t key_len, const char *method,
                    const char *path_and_query, const char *host, const char *date,
                    const void *body, size_t body_len, const char *content_sha256,
                    const char *authorization)
{
    char hash[ACS_SHA256_B64_LEN];
    char auth[ACS_AUTH_MAX];
    int rc = TV_ERR_UNAUTHORIZED;
    int diff;

    if (!content_sha256 || !authorization)
        goto done;
    /* Lengths first: they are public (fixed by the format), and CRYPTO_memcmp needs equal
     * sizes. */
    if (strnlen(content_sha256, ACS_SHA256_B64_LEN) != ACS_SHA256_B64_LEN - 1 ||
        strnlen(authorization, ACS_AUTH_MAX) != SIGNER_AUTH_LEN)
        goto done;
    if (acs_sign(key, key_len, method, path_and_query, host, date, body, body_len, hash, auth))
        goto done;
    /* Both comparisons always run so the timing does not say which one failed. */
    diff = CRYPTO_memcmp(hash, content_sha256, ACS_SHA256_B64_LEN - 1);
    diff |= CRYPTO_memcmp(auth, authorization, SIGNER_AUTH_LEN);
    if (diff == 0)
        rc = 0;
done:
    OPENSSL_cleanse(auth, sizeof(auth));
    return rc;
}
