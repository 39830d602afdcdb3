/* Token cache (README "Configuration"): ACS tokens in memory keyed by (identity, sorted scope set,
 * requested lifetime), bounded (LRU per shard), with a per-identity epoch that keeps a token issued
 * before a revoke out of the cache. Not a store: nothing survives a restart. Thread-safe; sharded
 * locks.
 *
 * Decisions recorded here:
 * - A hit is exact: same identity, same scope set, same requested minutes. A token for other
 *   scopes or a longer lifetime than asked is never handed out.
 * - A token is served only while expires_on - now >= min_remaining (the boundary itself is a
 *   hit). min_remaining is at least 11 minutes: the ACS SDK refreshes 10 minutes before expiry,
 *   so a cached token must never be that close (tcache_new refuses less).
 * - Revoke and delete call tcache_invalidate, which wipes the identity's entries and moves its
 *   epoch on; a flow reads the epoch before it asks ACS and tcache_put refuses a token whose
 *   epoch is stale, so a pre-revoke token cannot enter the cache after the revoke answered.
 *   Epochs live in a fixed table of counters hashed by identity (bounded memory); identities
 *   sharing a counter only lose a cache insert, never get a stale token.
 * - Callers also pass the mapping's revoked_ms (not_before_ms), so a revoke made by another
 *   process on the same database (admin CLI) is honoured too.
 * - Cache hits write no audit row: the audit log records ACS operations (create, issue, ...),
 *   and the token handed out was audited when ACS issued it; an audit write per hit would put
 *   the single store writer on the hit path and cap the hit rate. Hits are counted instead
 *   (tcache_stats_get, /metrics tokenvend_cache_hits_total).
 * - Tokens are secrets: entries are wiped with OPENSSL_cleanse on eviction, replacement,
 *   invalidation and free, and nothing in this module logs. */
#ifndef TV_SERVICE_TCACHE_INT_H
#define TV_SERVICE_TCACHE_INT_H

#include <stddef.h>
#include <stdint.h>

struct tcache;

#define TCACHE_MIN_REMAINING_FLOOR_MS (11 * 60 * 1000LL) /* SDK refresh window + 1 minute */
#define TCACHE_ID_MAX 256
#define TCACHE_SCOPES_MAX 128     /* canonical scope set "a,b,c" incl. NUL */
#define TCACHE_TOKEN_MAX 16384    /* larger tokens are not cached */
#define TCACHE_EXPIRES_MAX 40     /* expiresOn as ACS sent it, incl. NUL */
#define TCACHE_PER_IDENTITY_MAX 8 /* distinct (scopes, minutes) kept per identity */

struct tcache_opts {
    size_t max_entries;       /* bound on entries over all shards; 0 = 20000 */
    int64_t min_remaining_ms; /* 0 = 30 minutes; else >= TCACHE_MIN_REMAINING_FLOOR_MS */
    unsigned shards;          /* lock shards, rounded down to a power of two; 0 = 64 */
};

/* What a token was asked for. scopes is the canonical set from tcache_scopes_key. */
struct tcache_key {
    const char *acs_id;
    const char *scopes;
    int minutes;
};

/* A hit: owns a copy of the token (SECRET), released (wiped) with tcache_hit_release. */
struct tcache_hit {
    char *token;
    size_t token_len;
    char expires_on[TCACHE_EXPIRES_MAX];
    int64_t expires_on_ms;
    int64_t issued_ms;
};

struct tcache_stats {
    uint64_t hits;
    uint64_t misses;      /* lookups that found nothing servable (incl. stale) */
    uint64_t stale;       /* entries dropped on lookup: too close to expiry or revoked */
    uint64_t inserts;     /* tokens stored */
    uint64_t refused;     /* tcache_put refusals: epoch moved on, too little life left */
    uint64_t evictions;   /* entries dropped for room (LRU or per-identity bound) */
    uint64_t invalidated; /* entries wiped by tcache_invalidate */
    uint64_t entries;     /* entries held now */
};

/* Creates an empty cache. 0, TV_ERR_INVALID (min_remaining below the floor) or TV_ERR_NOMEM. */
int tcache_new(const struct tcache_opts *o, struct tcache **out);
/* Wipes every token and frees the cache. NULL is a no-op. Not concurrent with other calls. */
void tcache_free(struct tcache *c);

/* Writes the canonical form of a scope set (sorted, comma-joined, no blanks) into out. 0, or
 * TV_ERR_TOO_LARGE when it does not fit cap (then the request is simply not cached). */
int tcache_scopes_key(const char *const *scopes, size_t n, char *out, size_t cap);

/* The identity's current epoch. Read it BEFORE asking ACS for a token and hand it to
 * tcache_put with the answer. Never blocks for long (one shard lock). */
uint64_t tcache_epoch(struct tcache *c, const char *acs_id);

/* Looks up k. A hit needs expires_on_ms - now_ms >= min_remaining and issued_ms >
 * not_before_ms (the mapping's revoked_ms; 0 = never revoked); an entry failing either is wiped.
 * 0 with *out filled (caller releases), TV_ERR_NOT_FOUND on a miss, TV_ERR_NOMEM. */
int tcache_get(struct tcache *c, const struct tcache_key *k, int64_t now_ms, int64_t not_before_ms,
               struct tcache_hit *out);

/* Stores a token ACS issued for k (copied; replaces an entry for the same k), evicting the
 * least recently used entry of the shard (or of the identity beyond TCACHE_PER_IDENTITY_MAX)
 * when full. issued_ms is when the ACS call started (compared with revoked_ms on lookups).
 * 0 stored; TV_ERR_CONFLICT when the identity's epoch is no longer `epoch` (revoked or deleted
 * since); TV_ERR_INVALID when the token has less than min_remaining left at now_ms, or k or
 * the token is empty or too long; TV_ERR_NOMEM. Every refusal is harmless: the caller still
 * hands the token to its own requester. */
int tcache_put(struct tcache *c, const struct tcache_key *k, uint64_t epoch, const char *token,
               const char *expires_on, int64_t expires_on_ms, int64_t issued_ms, int64_t now_ms);

/* Revoke/delete: wipes every entry of acs_id and moves its epoch on, so that tokens of ACS
 * calls already in flight are refused by tcache_put. Returns the number of entries wiped. */
size_t tcache_invalidate(struct tcache *c, const char *acs_id);

/* A missed invalidation (the store's watch could not vouch for what happened while it was
 * away): wipes every entry and moves every epoch on. Returns the number of entries wiped. */
size_t tcache_invalidate_all(struct tcache *c);

/* Wipes and frees a hit's token; safe on a zeroed or released struct. */
void tcache_hit_release(struct tcache_hit *h);

/* Sums the shards' counters (each shard read under its lock; the sum is not one snapshot). */
void tcache_stats_get(struct tcache *c, struct tcache_stats *out);

#endif
