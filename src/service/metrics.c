/* /metrics text of the service (service_metrics_write): one table of the metrics, their help
 * and type, and where each value comes from, read into a snapshot and written in table order. */
#include "service/service.h"

#include <stddef.h>
#include <string.h>

#include "core/buf.h"
#include "mapping_int.h"
#include "service_int.h"
#include "store/outbox.h"
#include "tcache_int.h"
#include "tkeep_int.h"

/* The values at one moment: counters are unsigned, the two store gauges signed. */
struct metrics_snap {
    unsigned long long created, deleted, issued, revoked, exchanged, sf_joined, outbox_done,
        outbox_retry, outbox_passes, cache_hits, cache_misses, evictions, invalidated, entries,
        isf_joined, map_hits, map_entries, watch_current, watch_resets;
    long long pending, mappings;
};

struct metric_def {
    const char *name;
    const char *help;
    const char *type; /* "counter" or "gauge" */
    size_t off;       /* of the value in struct metrics_snap */
    int is_signed;    /* a long long rather than an unsigned long long */
};

#define U(field) offsetof(struct metrics_snap, field), 0
#define S(field) offsetof(struct metrics_snap, field), 1

static const struct metric_def metrics[] = {
    {"tokenvend_identities_created_total", "ACS identities created.", "counter", U(created)},
    {"tokenvend_identities_deleted_total", "ACS identities deleted (confirmed by ACS).", "counter",
     U(deleted)},
    {"tokenvend_tokens_issued_total", "ACS tokens handed out.", "counter", U(issued)},
    {"tokenvend_tokens_revoked_total", "Revocations of all of an identity's tokens.", "counter",
     U(revoked)},
    {"tokenvend_teams_exchanges_total", "Teams tokens exchanged.", "counter", U(exchanged)},
    {"tokenvend_singleflight_joined_total", "Requests that waited for another's create.", "counter",
     U(sf_joined)},
    {"tokenvend_outbox_done_total", "Outbox rows finished.", "counter", U(outbox_done)},
    {"tokenvend_outbox_retries_total", "Outbox attempts that failed and were rescheduled.",
     "counter", U(outbox_retry)},
    {"tokenvend_outbox_passes_total", "Times the outbox worker looked for due rows.", "counter",
     U(outbox_passes)},
    {"tokenvend_outbox_pending", "Outbox rows waiting.", "gauge", S(pending)},
    {"tokenvend_mappings", "Identity mappings in the store.", "gauge", S(mappings)},
    {"tokenvend_cache_hits_total", "Tokens served from the token cache.", "counter", U(cache_hits)},
    {"tokenvend_cache_misses_total", "Token requests the cache could not serve.", "counter",
     U(cache_misses)},
    {"tokenvend_cache_evictions_total", "Cached tokens dropped for room.", "counter", U(evictions)},
    {"tokenvend_cache_invalidated_total", "Cached tokens wiped by a revoke or delete.", "counter",
     U(invalidated)},
    {"tokenvend_cache_entries", "Tokens held by the token cache.", "gauge", U(entries)},
    {"tokenvend_issue_singleflight_joined_total", "Requests that waited for another's issue.",
     "counter", U(isf_joined)},
    {"tokenvend_mapping_cache_hits_total",
     "Token requests whose mapping came from the mapping cache (PostgreSQL only).", "counter",
     U(map_hits)},
    {"tokenvend_mapping_cache_entries", "Mappings held by the mapping cache.", "gauge",
     U(map_entries)},
    {"tokenvend_store_watch_current",
     "1 while the store's change notifications are vouched for (caches in use), else 0.", "gauge",
     U(watch_current)},
    {"tokenvend_store_watch_resets_total",
     "Times every cached token and mapping was dropped because a change may have been missed.",
     "counter", U(watch_resets)},
};

#undef U
#undef S

static void snapshot(struct service *s, struct metrics_snap *m)
{
    struct tcache_stats cs;
    struct mapping_stats ms;
    int64_t pending = 0, mappings = 0;

    memset(&cs, 0, sizeof cs);
    if (s->cache != NULL)
        tcache_stats_get(s->cache, &cs);
    /* A store that cannot count shows 0 rather than failing the whole page. */
    (void)store_outbox_count(s->store, &pending);
    (void)store_user_count(s->store, &mappings);
    mapping_stats_get(s, &ms);
    *m = (struct metrics_snap){
        .created = atomic_load(&s->m_created),
        .deleted = atomic_load(&s->m_deleted),
        .issued = atomic_load(&s->m_issued),
        .revoked = atomic_load(&s->m_revoked),
        .exchanged = atomic_load(&s->m_exchanged),
        .sf_joined = atomic_load(&s->m_sf_joined),
        .outbox_done = atomic_load(&s->m_outbox_done),
        .outbox_retry = atomic_load(&s->m_outbox_retry),
        .outbox_passes = atomic_load(&s->m_outbox_passes),
        .cache_hits = atomic_load(&s->m_cache_hits),
        .cache_misses = atomic_load(&s->m_cache_misses),
        .evictions = (unsigned long long)cs.evictions,
        .invalidated = (unsigned long long)cs.invalidated,
        .entries = (unsigned long long)cs.entries,
        .isf_joined = atomic_load(&s->m_isf_joined),
        .map_hits = (unsigned long long)ms.hits,
        .map_entries = (unsigned long long)ms.entries,
        .watch_current = (unsigned long long)ms.current,
        .watch_resets = (unsigned long long)ms.resets,
        .pending = (long long)pending,
        .mappings = (long long)mappings,
    };
}

int service_metrics_write(struct service *s, struct buf *out)
{
    struct metrics_snap m;
    int rc = 0;

    snapshot(s, &m);
    for (size_t i = 0; rc == 0 && i < sizeof metrics / sizeof metrics[0]; i++) {
        const struct metric_def *d = &metrics[i];
        const char *v = (const char *)&m + d->off;

        rc = buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", d->name, d->help, d->name, d->type);
        if (rc == 0 && d->is_signed)
            rc = buf_printf(out, "%s %lld\n", d->name, *(const long long *)(const void *)v);
        else if (rc == 0)
            rc =
                buf_printf(out, "%s %llu\n", d->name, *(const unsigned long long *)(const void *)v);
    }
    if (rc == 0)
        rc = tkeep_metrics_write(s->keep, out);
    return rc;
}
