/* The mappings the token path reads, and the store's watch that keeps the per-process caches
 * honest across replicas (mapping.c). On PostgreSQL a token request's mapping comes from the
 * mapping cache (mapcache_int.h) while the watch is current, so a token-cache hit pays no
 * database round trip; revokes and deletes committed by any process reach the token cache and
 * the mapping cache through the watch's notifications; while the watch is not current both are
 * bypassed (every request reads the store and asks ACS as a miss does). On SQLite the watch is
 * always current and the mapping cache stays off: behaviour as before. */
#ifndef TV_SERVICE_MAPPING_INT_H
#define TV_SERVICE_MAPPING_INT_H

#include <stdint.h>

#include "service_int.h"

/* Creates the mapping cache (service_new). 0 or TV_ERR_NOMEM. */
int mapping_init(struct service *s);
/* Starts the store's watch (service_start): 0 or a TV_ERR_* code. */
int mapping_watch_start(struct service *s);
/* Stops the watch (service_stop; idempotent), then frees the cache (service_free). */
void mapping_watch_stop(struct service *s);
void mapping_release(struct service *s);

/* 1 when the token cache may be used: the watch is current (always on SQLite). */
int mapping_caches_current(struct service *s);

/* app_user_id's mapping: from the mapping cache when `cached` (the caller only wants a token)
 * and the cache may be used, else from the store (filling the cache when it may be used).
 * Codes as store_user_get. */
int mapping_get(struct service *s, const char *app_user_id, int cached, struct store_user *out);
/* app_user_id's mapping from the mapping cache alone, when it may be used: 0, or
 * TV_ERR_NOT_FOUND (not cached, or the cache may not be used now). Never touches the store. */
int mapping_peek(struct service *s, const char *app_user_id, struct store_user *out);
/* A local revoke or delete of app_user_id's mapping: its cached row goes at once (the
 * notification follows for every other process). "" only fences fills in flight. */
void mapping_forget(struct service *s, const char *app_user_id);

/* For /metrics. */
struct mapping_stats {
    uint64_t hits, entries; /* mapping cache */
    uint64_t current;       /* mapping_caches_current, 1 or 0 */
    uint64_t resets;        /* the watch's drop-everything calls */
};
void mapping_stats_get(struct service *s, struct mapping_stats *out);

#endif
