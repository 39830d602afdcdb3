/* API keys for the internal listener, stored ONLY as a hash (SHA-256 of the key's secret part;
 * include/auth/apikey.h makes and verifies keys) with a public key id for lookup. Thread-safe. */
#ifndef TV_STORE_APIKEYS_H
#define TV_STORE_APIKEYS_H

#include <stdint.h>

#include "store/store.h"

#define STORE_KEY_ID_MAX 32
#define STORE_KEY_HASH_LEN 32

/* Plain value type. A name holds its current key and, after a rotation, the key that one
 * replaced (prev_*), valid until prev_expires_ms. */
struct store_apikey {
    char name[STORE_NAME_MAX + 1];          /* unique, 1..64 bytes */
    char key_id[STORE_KEY_ID_MAX + 1];      /* unique, public part of the key, 1..32 bytes */
    unsigned char hash[STORE_KEY_HASH_LEN]; /* SHA-256 of the secret part */
    int64_t created_ms;                     /* when this key was made (created or rotated) */
    int64_t last_used_ms;                   /* 0 = never; one-minute granularity (see touch_used) */
    int64_t revoked_ms;                     /* 0 = active; a revoke ends the previous key too */
    int64_t expires_ms; /* 0 = no end; get_by_key_id of a previous key: its grace's end */
    /* Read by name (get, list): the previous key, "" / 0 when the name was never rotated. */
    char prev_key_id[STORE_KEY_ID_MAX + 1];
    int64_t prev_expires_ms;   /* refused from this time on */
    int64_t prev_last_used_ms; /* 0 = never */
};

/* Inserts k. TV_ERR_CONFLICT when the name (or, improbably, the key id) exists, even if that
 * key is revoked; TV_ERR_INVALID for an empty or over-long name or key id. */
int store_apikey_insert(struct store *s, const struct store_apikey *k);

/* The key with key_id, a name's current key or its previous one (revoked and expired ones too:
 * the caller checks revoked_ms and expires_ms). For a previous key, key_id, hash, last_used_ms
 * and expires_ms are that key's (prev_* empty); for a current key expires_ms is 0. 0,
 * TV_ERR_NOT_FOUND, TV_ERR_INVALID. */
int store_apikey_get_by_key_id(struct store *s, const char *key_id, struct store_apikey *out);

/* The key named name. 0, TV_ERR_NOT_FOUND, TV_ERR_INVALID. */
int store_apikey_get(struct store *s, const char *name, struct store_apikey *out);

/* Up to limit (1..STORE_LIST_MAX) keys ordered by name after the cursor (exclusive; NULL or ""
 * = from the start); *n receives the count. */
int store_apikey_list(struct store *s, const char *after, int limit, struct store_apikey *out,
                      int *n);

/* Revokes the key named name at ms (a key already revoked keeps its first revocation time).
 * 0 or TV_ERR_NOT_FOUND. */
int store_apikey_revoke(struct store *s, const char *name, int64_t ms);

/* Rotation: the key named name (not revoked), while its current key is still cur_key_id (the
 * one the caller read), gets next->key_id, next->hash and next->created_ms as its current key;
 * its current key becomes its previous key, valid until prev_expires_ms (<= now: refused at
 * once); a previous key it had is dropped. Conditional on cur_key_id, so of two rotations that
 * read the same key one wins and the other changes nothing (unconditional, the second would
 * drop the first's new key, handed out already, and keep the key both meant to retire). 0,
 * TV_ERR_NOT_FOUND (no such name, or revoked), TV_ERR_CONFLICT (rotated meanwhile: the current
 * key is no longer cur_key_id; or, improbably, next's key id is taken), TV_ERR_INVALID. */
int store_apikey_rotate(struct store *s, const char *name, const char *cur_key_id,
                        const struct store_apikey *next, int64_t prev_expires_ms);

/* Records a use of key_id (a current or a previous key) at ms. To keep authenticated reads from
 * turning into writes, the row is only written when the stored time is at least 60 s older than ms
 * (checked on a reader connection first). 0 or TV_ERR_NOT_FOUND. */
int store_apikey_touch_used(struct store *s, const char *key_id, int64_t ms);

#endif
