/* AES-256-GCM through OpenSSL's EVP interface. GCM with random 96-bit nonces is safe for far
 * more messages under one key than a service ever seals (NIST's 2^32 bound); the version byte
 * leaves room for another construction later. */
#include "core/aead.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "core/err.h"

int aead_is_sealed(const uint8_t *blob, size_t len)
{
    return blob != NULL && len >= AEAD_OVERHEAD && blob[0] == AEAD_VERSION;
}

/* Runs one GCM pass (enc 1 seals, 0 opens) over in[0..len) into out, with the tag in or out of
 * tag. 0, TV_ERR_UNAUTHORIZED (open: the tag does not match) or TV_ERR_CRYPTO. */
static int gcm_run(int enc, const uint8_t *key, const uint8_t *nonce, const char *ad,
                   const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, rc = TV_ERR_CRYPTO;

    if (ctx == NULL)
        return TV_ERR_NOMEM;
    if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, AEAD_NONCE_LEN, NULL) != 1 ||
        EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) != 1 ||
        EVP_CipherUpdate(ctx, NULL, &n, (const unsigned char *)ad, (int)strlen(ad)) != 1)
        goto done;
    if (len > 0 && EVP_CipherUpdate(ctx, out, &n, in, (int)len) != 1)
        goto done;
    if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, AEAD_TAG_LEN, tag) != 1)
        goto done;
    if (EVP_CipherFinal_ex(ctx, out + (len > 0 ? (size_t)n : 0), &n) != 1) {
        /* For an open, a failed final is the tag check. */
        rc = enc ? TV_ERR_CRYPTO : TV_ERR_UNAUTHORIZED;
        goto done;
    }
    if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, AEAD_TAG_LEN, tag) != 1)
        goto done;
    rc = 0;
done:
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

int aead_seal(const uint8_t key[AEAD_KEY_LEN], const char *ad, const uint8_t *pt, size_t ptlen,
              uint8_t **out, size_t *out_len)
{
    uint8_t *blob;
    size_t len = ptlen + AEAD_OVERHEAD;
    int rc;

    if (key == NULL || ad == NULL || (pt == NULL && ptlen > 0) || ptlen > AEAD_PLAIN_MAX ||
        out == NULL || out_len == NULL)
        return TV_ERR_INVALID;
    if ((blob = malloc(len)) == NULL)
        return TV_ERR_NOMEM;
    blob[0] = AEAD_VERSION;
    if (RAND_bytes(blob + 1, AEAD_NONCE_LEN) != 1) {
        free(blob);
        return TV_ERR_CRYPTO;
    }
    rc = gcm_run(1, key, blob + 1, ad, pt, ptlen, blob + 1 + AEAD_NONCE_LEN,
                 blob + 1 + AEAD_NONCE_LEN + ptlen);
    if (rc != 0) {
        OPENSSL_clear_free(blob, len);
        return rc;
    }
    *out = blob;
    *out_len = len;
    return 0;
}

int aead_open(const uint8_t key[AEAD_KEY_LEN], const char *ad, const uint8_t *blob, size_t len,
              uint8_t **out, size_t *out_len)
{
    uint8_t *pt;
    uint8_t tag[AEAD_TAG_LEN];
    size_t ptlen;
    int rc;

    if (key == NULL || ad == NULL || out == NULL || out_len == NULL || !aead_is_sealed(blob, len) ||
        len - AEAD_OVERHEAD > AEAD_PLAIN_MAX)
        return TV_ERR_INVALID;
    ptlen = len - AEAD_OVERHEAD;
    /* One spare byte so an empty plaintext still gets a distinct, freeable buffer. */
    if ((pt = malloc(ptlen + 1)) == NULL)
        return TV_ERR_NOMEM;
    memcpy(tag, blob + 1 + AEAD_NONCE_LEN + ptlen, AEAD_TAG_LEN);
    rc = gcm_run(0, key, blob + 1, ad, blob + 1 + AEAD_NONCE_LEN, ptlen, pt, tag);
    if (rc != 0) {
        OPENSSL_clear_free(pt, ptlen + 1);
        return rc;
    }
    *out = pt;
    *out_len = ptlen;
    return 0;
}
