/* The mapping reads of the token path and the store watch's callbacks (mapping_int.h). */
#include "mapping_int.h"

#include <stdatomic.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "mapcache_int.h"
#include "store/watch.h"
#include "tcache_int.h"

/* A mapping revoked or deleted somewhere: its tokens and its row go (listener thread). */
static void on_event(void *arg, const struct store_watch_event *ev)
{
    struct service *s = arg;

    if (ev->kind != STORE_WATCH_MAPPING)
        return; /* account changes: the session check reads the account itself */
    if (s->cache != NULL)
        (void)tcache_invalidate(s->cache, ev->id);
    mapcache_drop(s->maps, ev->app_user_id);
}

/* The watch may have missed something: nothing cached can be vouched for. */
static void on_reset(void *arg)
{
    struct service *s = arg;

    if (s->cache != NULL)
        (void)tcache_invalidate_all(s->cache);
    mapcache_clear(s->maps);
}

int mapping_init(struct service *s)
{
    return mapcache_new(0, &s->maps);
}

int mapping_watch_start(struct service *s)
{
    struct store_watch_cb cb = {on_event, on_reset, s};
    int rc = store_watch_start(s->store, &cb, &s->watch);

    if (rc != 0)
        log_msg(LOGL_ERROR, NULL, "service: cannot watch the store for changes: %s", err_name(rc));
    return rc;
}

void mapping_watch_stop(struct service *s)
{
    store_watch_stop(s->watch);
    s->watch = NULL;
}

void mapping_release(struct service *s)
{
    mapcache_free(s->maps);
    s->maps = NULL;
}

int mapping_caches_current(struct service *s)
{
    /* No watch: the service was never started (unit tests), so it behaves as before. */
    return s->watch == NULL || store_watch_current(s->watch);
}

/* Whether the mapping cache may be read and filled now. */
static int maps_usable(struct service *s)
{
    return s->maps != NULL && s->watch != NULL && store_watch_pushes(s->watch) &&
           store_watch_current(s->watch);
}

int mapping_get(struct service *s, const char *app_user_id, int cached, struct store_user *out)
{
    uint64_t gen = 0;
    int use = cached && maps_usable(s);
    int rc;

    if (use) {
        if (mapcache_get(s->maps, app_user_id, out) == 0)
            return 0;
        gen = mapcache_gen(s->maps);
    }
    rc = store_user_get(s->store, app_user_id, out);
    /* A drop since gen (or the watch losing its footing meanwhile) refuses the fill. */
    if (rc == 0 && use && maps_usable(s))
        (void)mapcache_put(s->maps, gen, out);
    return rc;
}

int mapping_peek(struct service *s, const char *app_user_id, struct store_user *out)
{
    if (!maps_usable(s) || mapcache_get(s->maps, app_user_id, out) != 0)
        return TV_ERR_NOT_FOUND;
    return 0;
}

void mapping_forget(struct service *s, const char *app_user_id)
{
    if (s->maps != NULL)
        mapcache_drop(s->maps, app_user_id);
}

void mapping_stats_get(struct service *s, struct mapping_stats *out)
{
    struct mapcache_stats mc;
    struct store_watch_stats ws;

    memset(out, 0, sizeof *out);
    if (s->maps != NULL) {
        mapcache_stats_get(s->maps, &mc);
        out->hits = mc.hits;
        out->entries = mc.entries;
    }
    store_watch_stats_get(s->watch, &ws);
    out->resets = ws.resets;
    out->current = (uint64_t)mapping_caches_current(s);
}
