/* API keys: generation, strict parsing and verification against the store. The secret part is
 * 32 random bytes, so a single SHA-256 is the right stored form: a slow password hash protects
 * guessable secrets, and nobody can guess 256 random bits, while a fast hash keeps every
 * internal request cheap. Thread-safe. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "auth/apikey.h"
#include "core/b64.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "store/apikeys.h"

#define ID_BYTES (APIKEY_ID_LEN / 2)
#define SECRET_BYTES 32

int apikey_name_valid(const char *name)
{
    size_t n = 0;

    if (name == NULL)
        return 0;
    for (; name[n] != '\0'; n++) {
        char c = name[n];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        if (!ok || n >= APIKEY_NAME_MAX - 1)
            return 0;
    }
    return n > 0;
}

static int secret_hash(const uint8_t *secret, size_t len, uint8_t hash[APIKEY_HASH_LEN])
{
    unsigned int out_len = 0;

    if (EVP_Digest(secret, len, hash, &out_len, EVP_sha256(), NULL) != 1 ||
        out_len != APIKEY_HASH_LEN)
        return TV_ERR_CRYPTO;
    return 0;
}

int apikey_generate(char *key_out, size_t cap, char key_id[APIKEY_KEY_ID_MAX],
                    uint8_t hash[APIKEY_HASH_LEN])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t id[ID_BYTES];
    uint8_t secret[SECRET_BYTES];
    uint8_t h[APIKEY_HASH_LEN];
    char enc[64]; /* b64_encoded_size(32) == 45 */
    char key[APIKEY_MAX];
    char idhex[APIKEY_ID_LEN + 1];
    int rc = TV_ERR_TOO_LARGE;

    if (key_out == NULL || cap < APIKEY_MAX)
        goto done;
    rc = TV_ERR_CRYPTO;
    if (RAND_bytes(id, sizeof id) != 1 || RAND_bytes(secret, sizeof secret) != 1)
        goto done;
    for (size_t i = 0; i < ID_BYTES; i++) {
        idhex[2 * i] = hex[id[i] >> 4];
        idhex[2 * i + 1] = hex[id[i] & 15];
    }
    idhex[APIKEY_ID_LEN] = '\0';
    b64url_encode(secret, sizeof secret, enc);
    if (strlen(enc) != APIKEY_SECRET_LEN)
        goto done;
    if ((rc = secret_hash(secret, sizeof secret, h)) != 0)
        goto done;
    memcpy(key, APIKEY_PREFIX, 4);
    memcpy(key + 4, idhex, APIKEY_ID_LEN);
    key[4 + APIKEY_ID_LEN] = '_';
    memcpy(key + 5 + APIKEY_ID_LEN, enc, APIKEY_SECRET_LEN + 1);
    memcpy(key_out, key, APIKEY_MAX);
    memcpy(key_id, idhex, APIKEY_ID_LEN + 1);
    memcpy(hash, h, APIKEY_HASH_LEN);
    rc = 0;
done:
    OPENSSL_cleanse(secret, sizeof secret);
    OPENSSL_cleanse(enc, sizeof enc);
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}

int apikey_parse(const char *presented, char key_id[APIKEY_KEY_ID_MAX],
                 uint8_t hash[APIKEY_HASH_LEN])
{
    uint8_t *secret = NULL;
    size_t secret_len = 0;
    uint8_t h[APIKEY_HASH_LEN];
    int rc = TV_ERR_UNAUTHORIZED;

    if (presented == NULL || strnlen(presented, APIKEY_MAX) != APIKEY_LEN ||
        memcmp(presented, APIKEY_PREFIX, 4) != 0 || presented[4 + APIKEY_ID_LEN] != '_')
        goto done;
    for (size_t i = 4; i < 4 + APIKEY_ID_LEN; i++) {
        char c = presented[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            goto done;
    }
    /* The strict decoder rejects padding, stray characters and non-zero trailing bits, so each
     * secret has exactly one spelling. */
    if (b64url_decode(presented + 5 + APIKEY_ID_LEN, APIKEY_SECRET_LEN, &secret, &secret_len) !=
            0 ||
        secret_len != SECRET_BYTES)
        goto done;
    if (secret_hash(secret, secret_len, h) != 0)
        goto done;
    memcpy(key_id, presented + 4, APIKEY_ID_LEN);
    key_id[APIKEY_ID_LEN] = '\0';
    memcpy(hash, h, APIKEY_HASH_LEN);
    rc = 0;
done:
    if (secret != NULL) {
        OPENSSL_cleanse(secret, secret_len);
        free(secret);
    }
    OPENSSL_cleanse(h, sizeof h);
    return rc;
}

int apikey_verify(struct store *st, const char *presented, char name_out[APIKEY_NAME_MAX])
{
    static const uint8_t zero_hash[APIKEY_HASH_LEN] = {0};
    struct store_apikey row;
    char key_id[APIKEY_KEY_ID_MAX];
    uint8_t hash[APIKEY_HASH_LEN];
    const uint8_t *want;
    int found;
    int rc;

    memset(&row, 0, sizeof row);
    if ((rc = apikey_parse(presented, key_id, hash)) != 0)
        goto done;
    rc = store_apikey_get_by_key_id(st, key_id, &row);
    if (rc != 0 && rc != TV_ERR_NOT_FOUND)
        goto done;
    found = rc == 0;
    /* Compare even for an unknown id so that both failures cost the same. */
    want = found ? row.hash : zero_hash;
    rc = TV_ERR_UNAUTHORIZED;
    int64_t now = clock_wall_ms();
    /* A key rotated out is refused from the end of its grace period on (expires_ms). */
    if (CRYPTO_memcmp(want, hash, APIKEY_HASH_LEN) != 0 || !found || row.revoked_ms != 0 ||
        (row.expires_ms != 0 && now >= row.expires_ms))
        goto done;
    if (now - row.last_used_ms >= APIKEY_TOUCH_INTERVAL_MS &&
        store_apikey_touch_used(st, key_id, now) != 0)
        log_msg(LOGL_WARN, NULL, "could not record the use of API key '%s'", row.name);
    memcpy(name_out, row.name, strnlen(row.name, APIKEY_NAME_MAX - 1));
    name_out[strnlen(row.name, APIKEY_NAME_MAX - 1)] = '\0';
    rc = 0;
done:
    OPENSSL_cleanse(hash, sizeof hash);
    OPENSSL_cleanse(&row, sizeof row);
    return rc;
}
