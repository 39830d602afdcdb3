/* Caller limits kept in this process's memory: one GCRA state (core/ratelimit.h) per key (a
 * user id, an API key name, a client address) in a table of fixed capacity, so a request costs
 * one keyed hash and one look at a handful of slots under one of many locks, never an
 * allocation, and no number of callers can grow it.
 *
 * The table is set-associative: a key's keyed hash (SipHash-2-4 under a random key drawn at
 * creation, so a caller cannot choose keys that land together) picks one set of
 * CLIMIT_WAYS slots. A new key takes a free slot of its set, else one whose bucket is full
 * again (such an entry says nothing a missing one would not: forgetting it loses nothing),
 * else, when every slot of the set holds a live key, the slot of the key closest to a full
 * bucket (the least debt forgotten): a new caller is never refused because others fill the
 * table; at worst a key that was evicted starts again with a full bucket. Entries are told
 * apart by their 64-bit hash alone; two keys meeting on all 64 bits (about one chance in 2^64
 * per pair) would share a bucket.
 *
 * Thread-safe: sets are spread over CLIMIT_STRIPES mutexes. */
#ifndef TV_CORE_CLIMIT_H
#define TV_CORE_CLIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "core/ratelimit.h"

#define CLIMIT_WAYS 8
#define CLIMIT_STRIPES 64
#define CLIMIT_CAPACITY_MIN CLIMIT_WAYS
#define CLIMIT_CAPACITY_MAX (1u << 24)
/* What the service gives each of its caller limits: 65,536 keys, 1 MiB. */
#define CLIMIT_CAPACITY_DEFAULT (1u << 16)

struct climit;

struct climit_stats {
    uint64_t admitted;     /* takes that fitted */
    uint64_t refused;      /* takes over the limit */
    uint64_t evicted_live; /* keys forgotten while their bucket was not full (table pressure) */
    size_t capacity;       /* slots */
};

/* A table for limit rl (copied; not off) with room for capacity keys (rounded up to a power
 * of two, CLIMIT_CAPACITY_MIN..CLIMIT_CAPACITY_MAX). 0, TV_ERR_INVALID (off limit, capacity
 * out of range) or TV_ERR_NOMEM / TV_ERR_INTERNAL (no random hash key). */
int climit_new(const struct ratelimit *rl, size_t capacity, struct climit **out);
/* climit_free(NULL) is a no-op. */
void climit_free(struct climit *t);

/* Counts one event for key[0..len) at now_ms (>= 0; any clock, the same one every call): 1
 * when it fits (and is counted), 0 when it is over the limit (not counted; *retry_after_ms,
 * when not NULL, receives the wait until one fits, >= 1). */
int climit_take(struct climit *t, const void *key, size_t len, int64_t now_ms,
                int64_t *retry_after_ms);

/* Counters since creation (relaxed reads; thread-safe). */
void climit_stats(struct climit *t, struct climit_stats *out);

/* SipHash-2-4 of m[0..n) under the 16-byte key k (for the table and its tests). */
uint64_t climit_siphash(const uint8_t k[16], const void *m, size_t n);

#endif
