/* /metrics text of the service (service_metrics_write). */
#include "service/service.h"

#include <string.h>

#include "core/buf.h"
#include "service_int.h"
#include "store/outbox.h"
#include "tcache_int.h"

int service_metrics_write(struct service *s, struct buf *out)
{
    struct tcache_stats cs;
    int64_t pending = 0, mappings = 0;
    int rc;

    memset(&cs, 0, sizeof cs);
    if (s->cache != NULL)
        tcache_stats_get(s->cache, &cs);
    (void)store_outbox_count(s->store, &pending);
    (void)store_user_count(s->store, &mappings);
    rc = buf_printf(
        out,
        "# HELP tokenvend_identities_created_total ACS identities created.\n"
        "# TYPE tokenvend_identities_created_total counter\n"
        "tokenvend_identities_created_total %llu\n"
        "# HELP tokenvend_identities_deleted_total ACS identities deleted (confirmed by ACS).\n"
        "# TYPE tokenvend_identities_deleted_total counter\n"
        "tokenvend_identities_deleted_total %llu\n"
        "# HELP tokenvend_tokens_issued_total ACS tokens handed out.\n"
        "# TYPE tokenvend_tokens_issued_total counter\n"
        "tokenvend_tokens_issued_total %llu\n"
        "# HELP tokenvend_tokens_revoked_total Revocations of all of an identity's tokens.\n"
        "# TYPE tokenvend_tokens_revoked_total counter\n"
        "tokenvend_tokens_revoked_total %llu\n"
        "# HELP tokenvend_teams_exchanges_total Teams tokens exchanged.\n"
        "# TYPE tokenvend_teams_exchanges_total counter\n"
        "tokenvend_teams_exchanges_total %llu\n"
        "# HELP tokenvend_singleflight_joined_total Requests that waited for another's create.\n"
        "# TYPE tokenvend_singleflight_joined_total counter\n"
        "tokenvend_singleflight_joined_total %llu\n"
        "# HELP tokenvend_outbox_done_total Outbox rows finished.\n"
        "# TYPE tokenvend_outbox_done_total counter\n"
        "tokenvend_outbox_done_total %llu\n"
        "# HELP tokenvend_outbox_retries_total Outbox attempts that failed and were rescheduled.\n"
        "# TYPE tokenvend_outbox_retries_total counter\n"
        "tokenvend_outbox_retries_total %llu\n"
        "# HELP tokenvend_outbox_passes_total Times the outbox worker looked for due rows.\n"
        "# TYPE tokenvend_outbox_passes_total counter\n"
        "tokenvend_outbox_passes_total %llu\n"
        "# HELP tokenvend_outbox_pending Outbox rows waiting.\n"
        "# TYPE tokenvend_outbox_pending gauge\n"
        "tokenvend_outbox_pending %lld\n"
        "# HELP tokenvend_mappings Identity mappings in the store.\n"
        "# TYPE tokenvend_mappings gauge\n"
        "tokenvend_mappings %lld\n"
        "# HELP tokenvend_cache_hits_total Tokens served from the token cache.\n"
        "# TYPE tokenvend_cache_hits_total counter\n"
        "tokenvend_cache_hits_total %llu\n"
        "# HELP tokenvend_cache_misses_total Token requests the cache could not serve.\n"
        "# TYPE tokenvend_cache_misses_total counter\n"
        "tokenvend_cache_misses_total %llu\n"
        "# HELP tokenvend_cache_evictions_total Cached tokens dropped for room.\n"
        "# TYPE tokenvend_cache_evictions_total counter\n"
        "tokenvend_cache_evictions_total %llu\n"
        "# HELP tokenvend_cache_invalidated_total Cached tokens wiped by a revoke or delete.\n"
        "# TYPE tokenvend_cache_invalidated_total counter\n"
        "tokenvend_cache_invalidated_total %llu\n"
        "# HELP tokenvend_cache_entries Tokens held by the token cache.\n"
        "# TYPE tokenvend_cache_entries gauge\n"
        "tokenvend_cache_entries %llu\n"
        "# HELP tokenvend_issue_singleflight_joined_total Requests that waited for another's "
        "issue.\n"
        "# TYPE tokenvend_issue_singleflight_joined_total counter\n"
        "tokenvend_issue_singleflight_joined_total %llu\n",
        (unsigned long long)atomic_load(&s->m_created),
        (unsigned long long)atomic_load(&s->m_deleted),
        (unsigned long long)atomic_load(&s->m_issued),
        (unsigned long long)atomic_load(&s->m_revoked),
        (unsigned long long)atomic_load(&s->m_exchanged),
        (unsigned long long)atomic_load(&s->m_sf_joined),
        (unsigned long long)atomic_load(&s->m_outbox_done),
        (unsigned long long)atomic_load(&s->m_outbox_retry),
        (unsigned long long)atomic_load(&s->m_outbox_passes), (long long)pending,
        (long long)mappings, (unsigned long long)atomic_load(&s->m_cache_hits),
        (unsigned long long)atomic_load(&s->m_cache_misses), (unsigned long long)cs.evictions,
        (unsigned long long)cs.invalidated, (unsigned long long)cs.entries,
        (unsigned long long)atomic_load(&s->m_isf_joined));
    return rc;
}
