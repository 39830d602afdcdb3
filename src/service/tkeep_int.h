/* The token cache kept in the store (README "Token cache kept in the store"): with
 * TOKENVEND_CACHE_KEY, every token the memory cache (tcache_int.h) takes is also written to the
 * store, sealed with AES-256-GCM under that key (core/aead.h: a random nonce per token), so a
 * restart or another replica on the same database serves it without an ACS call.
 *
 * Decisions recorded here:
 * - The associated data names the purpose and binds everything a row claims about its token:
 *   resource, identity, scope set, minutes, issued_ms and expires_ms. A row copied to another
 *   identity, scope set or lifetime, a row of another resource, or one whose times were edited
 *   does not open; nor does one sealed under another key. Any of these is a miss (a fresh token
 *   from ACS), counted and logged without secrets, never an error and never a token.
 * - The plaintext is expiresOn as ACS sent it, a NUL, and the token.
 * - A row is served only under the memory cache's rules: expires_ms - now >= min_remaining and
 *   issued_ms > the mapping's revoked_ms. It is then put into the memory cache under the epoch
 *   read before the lookup; a refusal (a revoke ran meanwhile) makes it a miss.
 * - Writes never delay an answer: a write is sealed on the caller's thread (microseconds; the
 *   queue then holds ciphertext only) and run by one thread of this module's own, bounded queue;
 *   a full queue or a failed write is counted and logged, never the caller's error. The writer
 *   checks the identity's epoch again before writing, so a token whose identity was revoked here
 *   meanwhile is not written; one written anyway (a revoke elsewhere) fails the revoked_ms check
 *   of every reader.
 * - Revoke and delete purge the identity's rows before they answer (tkeep_purge).
 * - The writer also prunes, at most once a minute, a small batch of rows that can no longer be
 *   served (less than min_remaining left), and an overwrite replaces the row of the same key.
 * Thread-safe. */
#ifndef TV_SERVICE_TKEEP_INT_H
#define TV_SERVICE_TKEEP_INT_H

#include <stddef.h>
#include <stdint.h>

#include "core/aead.h"
#include "tcache_int.h"

struct tkeep;
struct store;
struct buf;

#define TKEEP_QUEUE_MAX 4096 /* writes queued at once; beyond, a write is dropped (counted) */
#define TKEEP_PRUNE_BATCH 200
#define TKEEP_PRUNE_EVERY_MS 60000

/* What a row is bound to: all of it goes into the associated data. */
struct tkeep_id {
    const char *resource;
    const char *acs_id;
    const char *scopes; /* canonical set (tcache_scopes_key) */
    int minutes;
    int64_t issued_ms;
    int64_t expires_ms;
};

struct tkeep_stats {
    uint64_t hits;          /* tokens served from a row */
    uint64_t misses;        /* lookups that found no servable row (incl. the failures below) */
    uint64_t writes;        /* rows written */
    uint64_t write_errors;  /* writes the store refused, or dropped (queue full) */
    uint64_t open_failures; /* rows that did not open: wrong key, damaged, moved */
    uint64_t purged;        /* rows removed by revoke/delete */
    uint64_t pruned;        /* expired rows removed */
};

/* Seals token (and expires_on, "" allowed) for id under key into *out (malloc'd; caller
 * frees). 0, TV_ERR_INVALID (empty or too long token) or aead_seal's error. */
int tkeep_seal(const uint8_t key[AEAD_KEY_LEN], const struct tkeep_id *id, const char *token,
               const char *expires_on, uint8_t **out, size_t *out_len);

/* Opens a sealed row for id: *token (malloc'd, NUL-terminated, SECRET: the caller wipes and
 * frees) and expires_on (cap TCACHE_EXPIRES_MAX). 0; TV_ERR_UNAUTHORIZED when it does not open
 * for id under key; TV_ERR_INVALID when it opens but does not hold a token; TV_ERR_NOMEM. */
int tkeep_open(const uint8_t key[AEAD_KEY_LEN], const struct tkeep_id *id, const uint8_t *sealed,
               size_t len, char **token, size_t *token_len, char expires_on[TCACHE_EXPIRES_MAX]);

/* A keeper of tokens in store st under key (copied; the caller wipes its own), serving rows
 * with at least min_remaining_ms left. Starts its writer thread. 0, TV_ERR_NOMEM or
 * TV_ERR_INTERNAL. */
int tkeep_new(const uint8_t key[AEAD_KEY_LEN], struct store *st, int64_t min_remaining_ms,
              struct tkeep **out);
/* Runs the queued writes, stops the thread, wipes the key. NULL is a no-op. */
void tkeep_free(struct tkeep *k);

/* Looks the row of (id->acs_id, id->scopes, id->minutes) up (id's times are ignored) and opens
 * it under the memory cache's rules (not_before_ms: the mapping's revoked_ms). 0 with *out
 * filled (release with tcache_hit_release), or TV_ERR_NOT_FOUND for every kind of miss.
 * BLOCKS on the store: on PostgreSQL call it on a worker, never an HTTP thread. request_id (may
 * be NULL) goes into the warning a row that does not open logs. */
int tkeep_lookup(struct tkeep *k, const struct tkeep_id *id, int64_t now_ms, int64_t not_before_ms,
                 const char *request_id, struct tcache_hit *out);

/* Queues the write of a token the memory cache took for id under epoch; the writer drops it if
 * acs_id's epoch in cache has moved on by then. Never blocks on the store, never fails the
 * caller (a refusal is counted and logged). */
void tkeep_write(struct tkeep *k, struct tcache *cache, uint64_t epoch, const struct tkeep_id *id,
                 const char *token, const char *expires_on, const char *request_id);

/* Removes acs_id's rows (revoke, delete; before the answer). BLOCKS on the store. 0 or the
 * store's error (logged). */
int tkeep_purge(struct tkeep *k, const char *acs_id, const char *request_id);

void tkeep_stats_get(struct tkeep *k, struct tkeep_stats *out);

/* Appends the kept cache's Prometheus lines (zeros when k is NULL, so the names are stable). */
int tkeep_metrics_write(struct tkeep *k, struct buf *out);

#endif
