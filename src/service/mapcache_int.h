/* Mapping cache: app user -> mapping (struct store_user) in memory, so a token request that
 * hits the token cache pays no database round trip on PostgreSQL (docs/design-store.md, "Caches
 * stay per process"). Bounded (least recently used entries go first), never a store: nothing
 * survives a restart. Thread-safe (one mutex; every operation is a hash lookup).
 *
 * Decisions recorded here:
 * - Used only while the store's watch (include/store/watch.h) is current and the backend pushes
 *   notifications: every revoke and delete committed anywhere then drops the entry within the
 *   notification delay, and a missed notification drops everything. On SQLite it stays off:
 *   other processes on the file (the admin CLI) send nothing, and a SQLite read costs no round
 *   trip anyway.
 * - Only positive entries: a user without a mapping is looked up in the store each time, so a
 *   mapping created by another replica is seen at once.
 * - A fill may race an invalidation (read before a revoke committed, stored after its
 *   notification arrived): mapcache_gen is read before the store read, and mapcache_put refuses
 *   the row when any drop happened since. Drops are rare (revoke, delete), so a global
 *   generation costs little and cannot let a stale row in. */
#ifndef TV_SERVICE_MAPCACHE_INT_H
#define TV_SERVICE_MAPCACHE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "store/users.h"

struct mapcache;

#define MAPCACHE_DEFAULT_MAX 10000 /* ~8 MiB of rows */

struct mapcache_stats {
    uint64_t hits, misses, inserts, refused, dropped, evictions, resets, entries;
};

/* An empty cache for at most max_entries rows (0: MAPCACHE_DEFAULT_MAX). 0 or TV_ERR_NOMEM. */
int mapcache_new(size_t max_entries, struct mapcache **out);
/* Frees the cache. NULL is a no-op. Not concurrent with other calls. */
void mapcache_free(struct mapcache *c);

/* The generation to hand to mapcache_put: read it BEFORE reading the row from the store. */
uint64_t mapcache_gen(struct mapcache *c);
/* The cached mapping of app_user_id: 0 with *out, or TV_ERR_NOT_FOUND. */
int mapcache_get(struct mapcache *c, const char *app_user_id, struct store_user *out);
/* Stores u (an app user's mapping; standalone identities are not cached) unless a drop happened
 * since gen: 0, TV_ERR_CONFLICT (dropped since; harmless), TV_ERR_INVALID or TV_ERR_NOMEM. */
int mapcache_put(struct mapcache *c, uint64_t gen, const struct store_user *u);
/* Drops app_user_id's entry (revoked or deleted) and moves the generation on. "" or NULL only
 * moves the generation. */
void mapcache_drop(struct mapcache *c, const char *app_user_id);
/* Drops every entry and moves the generation on. */
void mapcache_clear(struct mapcache *c);
void mapcache_stats_get(struct mapcache *c, struct mapcache_stats *out);

#endif
