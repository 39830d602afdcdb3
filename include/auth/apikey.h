/* API keys for the internal listener: "tvk_<key id: 16 hex>_<secret: 43 base64url chars of 32
 * random bytes>". Only SHA-256(secret) is stored, with the key id for lookup; verification is a
 * lookup plus a constant-time compare. Thread-safe (the store is). */
#ifndef TV_AUTH_APIKEY_H
#define TV_AUTH_APIKEY_H

#include <stddef.h>
#include <stdint.h>

struct store;

#define APIKEY_PREFIX "tvk_"
#define APIKEY_ID_LEN 16     /* hex characters of the key id (8 random bytes) */
#define APIKEY_SECRET_LEN 43 /* base64url characters of the 32-byte secret */
#define APIKEY_LEN (4 + APIKEY_ID_LEN + 1 + APIKEY_SECRET_LEN) /* 64 */
#define APIKEY_MAX (APIKEY_LEN + 1)                            /* with the NUL */
#define APIKEY_KEY_ID_MAX 33                                   /* store's key_id capacity */
#define APIKEY_HASH_LEN 32
#define APIKEY_NAME_MAX 65 /* a name is [A-Za-z0-9._-]{1,64} */
/* last_used_ms is written at most this often per key, so that busy callers do not turn every
 * internal request into a database write. */
#define APIKEY_TOUCH_INTERVAL_MS 60000

/* True when name matches [A-Za-z0-9._-]{1,64}. */
int apikey_name_valid(const char *name);
/* Makes a new random key: writes it NUL-terminated into key_out (cap >= APIKEY_MAX), its key id
 * (16 lowercase hex + NUL) and SHA-256 of its secret part. The caller stores key_id and hash,
 * shows key_out once and wipes it (OPENSSL_cleanse). 0, TV_ERR_TOO_LARGE (cap) or
 * TV_ERR_CRYPTO (no randomness); outputs untouched on failure. */
int apikey_generate(char *key_out, size_t cap, char key_id[APIKEY_KEY_ID_MAX],
                    uint8_t hash[APIKEY_HASH_LEN]);
/* Parses a presented key strictly (exact length, prefix, lowercase hex id, '_', base64url
 * secret that decodes to 32 bytes with zero trailing bits) and computes the hash of its
 * secret. 0 or TV_ERR_UNAUTHORIZED (malformed: the caller answers 401 either way); outputs
 * untouched on failure. */
int apikey_parse(const char *presented, char key_id[APIKEY_KEY_ID_MAX],
                 uint8_t hash[APIKEY_HASH_LEN]);
/* Authenticates a presented key: parse, look the key id up, compare hashes in constant time,
 * reject revoked keys, and record last use (at most once per APIKEY_TOUCH_INTERVAL_MS; a failed
 * touch does not fail the check). On success writes the key's name into name_out and returns 0;
 * TV_ERR_UNAUTHORIZED for any unknown, malformed, mismatching or revoked key; another code when
 * the store fails (the caller answers 503/500, not 401). Blocks on the store. Never logs the key.
 */
int apikey_verify(struct store *st, const char *presented, char name_out[APIKEY_NAME_MAX]);

#endif
