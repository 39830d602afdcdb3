/* Authenticated encryption of small secrets at rest: AES-256-GCM (OpenSSL EVP) with a random
 * 96-bit nonce per message and associated data naming the purpose (e.g.
 * "tokenvend/session-key/v1"), so a blob sealed for one purpose never opens as another.
 * Sealed form: version byte AEAD_VERSION || nonce (12) || ciphertext || tag (16).
 * Thread-safe; keys and plaintexts are the caller's to wipe. */
#ifndef TV_CORE_AEAD_H
#define TV_CORE_AEAD_H

#include <stddef.h>
#include <stdint.h>

#define AEAD_KEY_LEN 32
#define AEAD_VERSION 0x01
#define AEAD_NONCE_LEN 12
#define AEAD_TAG_LEN 16
#define AEAD_OVERHEAD (1 + AEAD_NONCE_LEN + AEAD_TAG_LEN)
#define AEAD_PLAIN_MAX (1 << 20) /* a ceiling for what this is meant for */

/* Whether blob[0..len) looks sealed (right version byte and long enough); says nothing of
 * whether it opens. */
int aead_is_sealed(const uint8_t *blob, size_t len);

/* Seals pt[0..ptlen) (0..AEAD_PLAIN_MAX bytes) under key with associated data ad (a NUL-
 * terminated purpose string) into *out (malloc'd, ptlen + AEAD_OVERHEAD bytes; caller frees).
 * 0, TV_ERR_INVALID, TV_ERR_CRYPTO or TV_ERR_NOMEM. */
int aead_seal(const uint8_t key[AEAD_KEY_LEN], const char *ad, const uint8_t *pt, size_t ptlen,
              uint8_t **out, size_t *out_len);

/* Opens a sealed blob into *out (malloc'd, SECRET: the caller wipes with OPENSSL_cleanse and
 * frees). 0; TV_ERR_UNAUTHORIZED when it does not authenticate (another key, another purpose,
 * altered bytes); TV_ERR_INVALID (not a sealed blob of a known version); TV_ERR_NOMEM or
 * TV_ERR_CRYPTO. Outputs untouched on failure. */
int aead_open(const uint8_t key[AEAD_KEY_LEN], const char *ad, const uint8_t *blob, size_t len,
              uint8_t **out, size_t *out_len);

#endif
