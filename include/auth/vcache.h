/* Verified-token cache: remembers for a short while that a bearer token passed full
 * verification, so a repeat request skips the signature check. Keyed by the SHA-256 of the
 * token's exact bytes; the token itself is never stored. Thread-safe (sharded mutexes). */
#ifndef TV_AUTH_VCACHE_H
#define TV_AUTH_VCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "auth/jwt.h"

struct vcache;

#define VCACHE_KEY_LEN 32 /* SHA-256 */
#define VCACHE_DEFAULT_MAX_ENTRIES 16384
#define VCACHE_TTL_S 300 /* a key removed from the JWKS stops working within this at most */
#define VCACHE_OID_MAX 128

/* Which verifier accepted a token. An OIDC entry is only good for the JWKS key-set generation
 * it was verified under; a session entry for the process's one session key. */
enum vcache_source { VCACHE_SRC_OIDC = 1, VCACHE_SRC_SESSION = 2 };

/* What a hit hands back: the verified claims the API layer needs. */
struct vcache_claims {
    char user[JWT_USER_MAX + 1];  /* the user claim's value */
    char oid[VCACHE_OID_MAX + 1]; /* the "oid" claim, "" when absent or unusable */
    int session;                  /* lookup: 1 when a session token (VCACHE_SRC_SESSION) */
    int64_t session_epoch;        /* a session token's account epoch, kept for the per-use
                                   * account check (a hit skips the signature, not that) */
};

/* What the verifier saw, so a hit can apply the verifier's own time rules. */
struct vcache_verdict {
    enum vcache_source source;
    uint64_t generation; /* JWKS generation read BEFORE the key was looked up (OIDC only) */
    int64_t exp;         /* the token's exp (seconds) */
    int64_t nbf;         /* its nbf, 0 when absent */
    int64_t leeway_s;    /* the leeway the verifier applied (>= 0) */
};

/* Creates a cache holding at most max_entries tokens (least recently used go first); each
 * entry lives at most ttl_s seconds (0 means VCACHE_TTL_S). 0, TV_ERR_INVALID (max_entries 0)
 * or TV_ERR_NOMEM. */
int vcache_new(size_t max_entries, int64_t ttl_s, struct vcache **out);
/* Frees the cache, wiping every entry. vcache_free(NULL) is a no-op. */
void vcache_free(struct vcache *c);

/* The cache key of token[0..len): its SHA-256. The key derives from a secret: keep it in
 * memory only, and wipe it (OPENSSL_cleanse) when done. */
void vcache_key(const char *token, size_t len, uint8_t key[VCACHE_KEY_LEN]);

/* Looks key up at wall time now_s. A hit needs: the entry younger than the TTL; now_s inside
 * the token's validity exactly as the verifier decides it (now < exp + leeway and, with nbf,
 * now + leeway >= nbf); and, for an OIDC entry, oidc_generation equal to the one stored (a
 * session entry needs session_ok non-zero). A stale entry met on the way is dropped.
 * 0 (hit, *out filled), TV_ERR_NOT_FOUND (miss) or TV_ERR_INVALID. */
int vcache_lookup(struct vcache *c, const uint8_t key[VCACHE_KEY_LEN], int64_t now_s,
                  uint64_t oidc_generation, int session_ok, struct vcache_claims *out);

/* Records that the token with this key passed full verification at now_s (only ever call it
 * after a success: failures are never cached). Replaces an entry for the same key. Evicts the
 * least recently used entry of the key's shard when full. 0, TV_ERR_INVALID or TV_ERR_NOMEM. */
int vcache_insert(struct vcache *c, const uint8_t key[VCACHE_KEY_LEN], int64_t now_s,
                  const struct vcache_verdict *v, const struct vcache_claims *claims);

/* Entries held now (all shards; for tests and metrics). */
size_t vcache_count(struct vcache *c);

#endif
