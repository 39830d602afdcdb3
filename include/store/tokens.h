/* The token cache kept in the store (README "Token cache kept in the store"): rows of tokens
 * ACS issued, SEALED by the service (AES-256-GCM under TOKENVEND_CACHE_KEY) before they get
 * here, so this module only ever sees ciphertext. A row is keyed by (acs_id, scopes, minutes)
 * and carries the resource, when its ACS call started (issued_ms, compared with the mapping's
 * revoked_ms by the reader) and when the token expires. Rows are a cache: `store copy` skips
 * them, and every failure here only costs an ACS call. Thread-safe; every call blocks on the
 * database. */
#ifndef TV_STORE_TOKENS_H
#define TV_STORE_TOKENS_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define STORE_TOKEN_SCOPES_MAX 127   /* canonical scope set, bytes without the NUL */
#define STORE_TOKEN_SEALED_MAX 20000 /* a sealed token, bytes (the table's CHECK) */
#define STORE_TOKEN_PRUNE_MAX 1000   /* most rows one store_token_prune removes */

/* One row. sealed points at the caller's bytes for a put; a get fills it with a malloc'd copy
 * that store_token_release frees. */
struct store_token {
    char acs_id[STORE_ID_MAX + 1];
    char scopes[STORE_TOKEN_SCOPES_MAX + 1];
    int minutes;
    char resource[STORE_ID_MAX + 1];
    int64_t issued_ms;
    int64_t expires_ms;
    uint8_t *sealed;
    size_t sealed_len;
};

/* Writes t, replacing the row of the same (acs_id, scopes, minutes). TV_ERR_INVALID for an empty
 * or too long id, resource, scopes or sealed blob, or a store error. */
int store_token_put(struct store *s, const struct store_token *t);

/* Reads the row of (acs_id, scopes, minutes) into *out (sealed malloc'd; release with
 * store_token_release). TV_ERR_NOT_FOUND, TV_ERR_INVALID for bad keys, or a store error
 * (*out then holds nothing to release). */
int store_token_get(struct store *s, const char *acs_id, const char *scopes, int minutes,
                    struct store_token *out);

/* Frees a get's sealed copy; safe on a zeroed or released struct. */
void store_token_release(struct store_token *t);

/* Removes every row of acs_id (revoke, delete); *removed (may be NULL) gets how many. 0 also
 * when there were none. */
int store_token_purge(struct store *s, const char *acs_id, int64_t *removed);

/* Removes up to limit (1..STORE_TOKEN_PRUNE_MAX) rows whose expires_ms is before before_ms,
 * soonest-expired first; *removed (may be NULL) gets how many. */
int store_token_prune(struct store *s, int64_t before_ms, int limit, int64_t *removed);

/* How many rows the table holds (tests, diagnostics). */
int store_token_count(struct store *s, int64_t *n);

#endif
