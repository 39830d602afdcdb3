/* The service object shared by the files of src/service, and the basics every file uses
 * (service.c: string copies, audit rows). The layers, each calling only those below it:
 *   lifecycle.c                  creates, starts, stops and frees everything
 *   metrics.c, login.c           /metrics; the local-account login (a plain blocking job)
 *   token.c, delete.c, teams.c   tokens through the cache, the delete flow, the Teams exchange
 *   reqflow.c                    the request flows by app user or ACS id (create, revoke)
 *   outbox.c                     the outbox worker (retries deletes)
 *   settle.c                     a delete's outcome, settled in one place; the in-flight set
 *   claim.c                      the create claim across processes, waited for without a thread
 *   flow.c                       a flow: one ACS call at a time, and the step that follows it
 *   service.c                    the basics, the synchronous reads, service_defer
 *   jobq.c, sflight.c, tcache.c  job queues, single-flight maps, the token cache
 *   delayq.c                     the delay line that hands waiting work back to a job queue
 * (scripts/service-graph.sh checks that the include, module and call graphs have no cycle.) */
#ifndef TV_SERVICE_SERVICE_INT_H
#define TV_SERVICE_SERVICE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "delayq_int.h"
#include "jobq_int.h"
#include "service/service.h"
#include "sflight_int.h"

/* In-flight outbox row ids, so that a row being deleted is not submitted twice. */
#define OUTBOX_INFLIGHT_MAX 256

struct tcache;
struct tkeep;
struct mapcache;
struct store_watch;

struct service {
    struct store *store;
    service_submit_fn submit;
    void *submit_ctx;
    char resource[STORE_ID_MAX + 1];
    struct policy policy;

    /* Submissions read-lock; service_stop write-locks to flip `stopping`, so no submission can
     * be half-way through when the ACS client is freed. */
    pthread_rwlock_t submit_lock;
    int stopping;

    /* Flow steps run on `fast`; plain blocking jobs (password checks) on `slow`, a few threads
     * with a bounded queue, so they never delay ACS completions and neither their memory nor
     * their waiting time grows without bound. */
    struct jobq fast, slow;
    /* Work that waits without a thread (claim.c's re-checks) comes back to `fast` from here. */
    struct delayq delay;
    long acs_deadline_ms; /* the ACS client's deadline: a create claim lives this long + margin */

    /* Creates in flight per app user; issues in flight per (identity, scopes, minutes, epoch),
     * the latter with the token cache only (NULL when off). */
    struct sfmap creates, issues;
    struct tcache *cache;
    struct tkeep *keep; /* the token cache kept in the store; NULL without a cache key */
    /* The mapping cache and the store's watch that keeps both caches honest across processes
     * (mapping.c). */
    struct mapcache *maps;
    struct store_watch *watch;

    /* Outbox worker (outbox.c) and the set of rows whose delete is in flight (settle.c). */
    pthread_mutex_t ob_lock;
    pthread_cond_t ob_cond;
    int ob_stop, ob_kick, ob_started;
    pthread_t ob_thread;
    long ob_interval_ms, ob_base_ms, ob_max_ms, ob_lease_ms;
    int64_t ob_inflight[OUTBOX_INFLIGHT_MAX];
    size_t ob_ninflight;

    /* Counters for /metrics. */
    atomic_ullong m_created, m_deleted, m_issued, m_revoked, m_exchanged, m_sf_joined,
        m_outbox_done, m_outbox_retry, m_flow_errors, m_isf_joined, m_cache_hits, m_cache_misses,
        m_outbox_passes;
};

/* Copies src (NULL = "") into dst, truncating to cap - 1 bytes. */
void service_copy_str(char *dst, size_t cap, const char *src);
/* Copies src (NULL = "") into an audit field dst[cap]: well-formed UTF-8 without control
 * characters (others become U+FFFD), cut on a character boundary. The PostgreSQL store refuses
 * an ill-formed string, and the audit row with it. */
void service_audit_text(char *dst, size_t cap, const char *src);

#endif
