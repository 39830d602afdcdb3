/* Refresh tokens of local-account sessions (POST /api/session/refresh): one row per token, keyed
 * by its random id, holding SHA-256 of its secret (never the secret itself), its family (every
 * token descended from one login), the account and its session epoch at that login, and a used
 * mark set once, when the token is rotated. Not the session tokens themselves (auth/session.h).
 * Thread-safe; every call blocks on the store. */
#ifndef TV_STORE_REFRESH_H
#define TV_STORE_REFRESH_H

#include <stdint.h>

#include "store/store.h"

#define STORE_REFRESH_ID_MAX 64
#define STORE_REFRESH_HASH_LEN 32 /* SHA-256 */

/* Plain value type. hash is sensitive (it identifies a live credential): wipe copies. */
struct store_refresh {
    char id[STORE_REFRESH_ID_MAX + 1];     /* random, base64url */
    char family[STORE_REFRESH_ID_MAX + 1]; /* random, shared by a login's tokens */
    char account[STORE_NAME_MAX + 1];
    int64_t session_epoch; /* the account's epoch when the family began */
    unsigned char hash[STORE_REFRESH_HASH_LEN];
    int64_t created_ms;
    int64_t expires_ms;        /* idle lifetime: this token's end */
    int64_t family_expires_ms; /* absolute lifetime: the end of every token of the family */
    int64_t used_ms;           /* 0 while unused */
};

/* Stores a new token (a login's first; used_ms is ignored, stored as unused).
 * 0, TV_ERR_INVALID (empty or over-long strings), TV_ERR_CONFLICT (the id exists) or a store
 * error. */
int store_refresh_insert(struct store *s, const struct store_refresh *r);

/* The token with this id. 0, TV_ERR_NOT_FOUND, TV_ERR_INVALID or a store error. */
int store_refresh_get(struct store *s, const char *id, struct store_refresh *out);

/* Rotates token old_id: in one transaction, marks it used at now_ms only if it is still unused
 * and not expired at now_ms (one conditional update), then stores next. So of two replicas or
 * two requests rotating the same token, exactly one succeeds. 0, TV_ERR_CONFLICT (the token is
 * used, expired or gone: nothing changed), TV_ERR_INVALID or a store error. */
int store_refresh_rotate(struct store *s, const char *old_id, int64_t now_ms,
                         const struct store_refresh *next);

/* Deletes every token of family. *removed (may be NULL) gets the count. 0, TV_ERR_INVALID or a
 * store error (no row is not an error). */
int store_refresh_revoke_family(struct store *s, const char *family, int64_t *removed);

/* Deletes every token of account (logout everywhere, password change, removal). *removed as
 * above. */
int store_refresh_revoke_account(struct store *s, const char *account, int64_t *removed);

/* Deletes the tokens past their idle or family end at now_ms (used ones included: a used token
 * is kept until then so that its reuse is recognised). *removed as above. */
int store_refresh_prune(struct store *s, int64_t now_ms, int64_t *removed);

/* Rows in the table (tests, metrics). */
int store_refresh_count(struct store *s, int64_t *n);

#endif
