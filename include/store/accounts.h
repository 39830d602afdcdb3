/* Local accounts (TOKENVEND_LOCAL_ACCOUNTS=on): a name and an Argon2id ENCODED hash string
 * (include/auth/password.h hashes and verifies; the store never sees a password).
 * Thread-safe. */
#ifndef TV_STORE_ACCOUNTS_H
#define TV_STORE_ACCOUNTS_H

#include <stdint.h>

#include "store/store.h"

#define STORE_PASSWORD_HASH_MAX 255

/* Plain value type. password_hash is sensitive (offline guessing): callers wipe copies with
 * OPENSSL_cleanse when done. */
struct store_account {
    char name[STORE_NAME_MAX + 1];                   /* unique, 1..64 bytes */
    char password_hash[STORE_PASSWORD_HASH_MAX + 1]; /* "$argon2id$v=19$m=...,t=...,p=...$..." */
    int64_t created_ms;
    int64_t updated_ms;
    int64_t session_epoch; /* carried by its session tokens; new on every password change */
};

/* Creates the account or replaces its password hash. A new account gets created_ms and
 * updated_ms from a; an existing one keeps created_ms and takes a->updated_ms. Either way the
 * account gets a new random session_epoch (a->session_epoch is ignored), which ends the
 * sessions issued before. *created (may be NULL) = 1 for a new account, 0 for a replaced one.
 * TV_ERR_INVALID for an empty or over-long name or hash. */
int store_account_upsert(struct store *s, const struct store_account *a, int *created);

/* Replaces the password hash of an existing account (a new session_epoch, as upsert).
 * 0, TV_ERR_NOT_FOUND (no such account) or TV_ERR_INVALID. */
int store_account_passwd(struct store *s, const char *name, const char *password_hash,
                         int64_t updated_ms);

/* Gives the account a new session_epoch and nothing else: every session token and refresh token
 * it issued before stops working (`tokenvend account logout`). 0, TV_ERR_NOT_FOUND or
 * TV_ERR_INVALID. */
int store_account_logout(struct store *s, const char *name);

/* Replaces the hash with new_hash only while it is still old_hash (a rehash under new Argon2
 * parameters after a successful login: same password, so the session epoch stays).
 * 0, TV_ERR_CONFLICT (the hash changed meanwhile, or the account is gone), TV_ERR_INVALID. */
int store_account_rehash(struct store *s, const char *name, const char *old_hash,
                         const char *new_hash);

/* The session epoch of the account named name, without reading its hash (checked on every
 * request that carries a session token). 0, TV_ERR_NOT_FOUND, TV_ERR_INVALID. */
int store_account_epoch(struct store *s, const char *name, int64_t *epoch);

/* The account named name. 0, TV_ERR_NOT_FOUND, TV_ERR_INVALID. */
int store_account_get(struct store *s, const char *name, struct store_account *out);

/* Removes the account. 0 or TV_ERR_NOT_FOUND. */
int store_account_delete(struct store *s, const char *name);

/* Up to limit (1..STORE_LIST_MAX) accounts ordered by name after the cursor (exclusive; NULL
 * or "" = from the start); *n receives the count. The password_hash fields are filled too. */
int store_account_list(struct store *s, const char *after, int limit, struct store_account *out,
                       int *n);

#endif
