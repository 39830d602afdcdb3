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
};

/* Creates the account or replaces its password hash. A new account gets created_ms and
 * updated_ms from a; an existing one keeps created_ms and takes a->updated_ms. *created (may
 * be NULL) = 1 for a new account, 0 for a replaced one. TV_ERR_INVALID for an empty or
 * over-long name or hash. */
int store_account_upsert(struct store *s, const struct store_account *a, int *created);

/* The account named name. 0, TV_ERR_NOT_FOUND, TV_ERR_INVALID. */
int store_account_get(struct store *s, const char *name, struct store_account *out);

/* Removes the account. 0 or TV_ERR_NOT_FOUND. */
int store_account_delete(struct store *s, const char *name);

/* Up to limit (1..STORE_LIST_MAX) accounts ordered by name after the cursor (exclusive; NULL
 * or "" = from the start); *n receives the count. The password_hash fields are filled too. */
int store_account_list(struct store *s, const char *after, int limit, struct store_account *out,
                       int *n);

#endif
