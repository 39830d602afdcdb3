/* The service's lifecycle: creates its parts (job queues, single-flight maps, token cache),
 * starts and stops its threads in order. */
#include "service/service.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "delayq_int.h"
#include "jobq_int.h"
#include "mapping_int.h"
#include "outbox_int.h"
#include "service_int.h"
#include "sflight_int.h"
#include "tcache_int.h"
#include "tkeep_int.h"

#define WORKERS_DEFAULT 2
#define WORKERS_MAX 16
#define DEFER_WORKERS_DEFAULT 2
#define DEFER_MAX_PENDING_DEFAULT 32
#define OUTBOX_LEASE_DEFAULT_MS 60000
#define ACS_DEADLINE_DEFAULT_MS 30000 /* the ACS client's own default */

static unsigned workers_or(unsigned n, unsigned dflt)
{
    return n == 0 ? dflt : n > WORKERS_MAX ? WORKERS_MAX : n;
}

int service_new(const struct service_opts *o, struct service **out)
{
    struct service *s;

    if (o == NULL || o->store == NULL || o->submit == NULL || o->resource == NULL ||
        o->resource[0] == '\0' || strlen(o->resource) > STORE_ID_MAX)
        return TV_ERR_INVALID;
    if ((s = calloc(1, sizeof *s)) == NULL)
        return TV_ERR_NOMEM;
    s->store = o->store;
    s->submit = o->submit;
    s->submit_ctx = o->submit_ctx;
    service_copy_str(s->resource, sizeof s->resource, o->resource);
    s->policy = o->policy;
    if (o->cache) {
        struct tcache_opts to = {
            .max_entries = o->cache_max_entries > 0 ? (size_t)o->cache_max_entries : 0,
            .min_remaining_ms = (int64_t)o->cache_min_remaining_minutes * 60000,
        };
        int rc = tcache_new(&to, &s->cache);
        if (rc != 0) {
            free(s);
            return rc;
        }
        if (o->cache_key != NULL &&
            (rc = tkeep_new(o->cache_key, s->store,
                            to.min_remaining_ms > 0 ? to.min_remaining_ms : 30 * 60000LL,
                            &s->keep)) != 0) {
            tcache_free(s->cache);
            free(s);
            return rc;
        }
    }
    if (mapping_init(s) != 0) {
        tkeep_free(s->keep);
        tcache_free(s->cache);
        free(s);
        return TV_ERR_NOMEM;
    }
    jobq_init(&s->fast, workers_or(o->workers, WORKERS_DEFAULT), 0);
    if (delayq_init(&s->delay, &s->fast) != 0) {
        tkeep_free(s->keep);
        tcache_free(s->cache);
        free(s);
        return TV_ERR_NOMEM;
    }
    s->acs_deadline_ms = o->acs_deadline_ms > 0 ? o->acs_deadline_ms : ACS_DEADLINE_DEFAULT_MS;
    /* Two threads: a login (Argon2, ~100 ms and 64 MiB each) need not wait for another on a
     * 2-core machine; the cap bounds how long a job can wait in the queue. */
    jobq_init(&s->slow, workers_or(o->defer_workers, DEFER_WORKERS_DEFAULT),
              o->defer_max_pending > 0 ? o->defer_max_pending : DEFER_MAX_PENDING_DEFAULT);
    s->ob_interval_ms = o->outbox_interval_ms == 0 ? 2000 : o->outbox_interval_ms;
    s->ob_base_ms = o->outbox_backoff_base_ms > 0 ? o->outbox_backoff_base_ms : 1000;
    s->ob_max_ms = o->outbox_backoff_max_ms > 0 ? o->outbox_backoff_max_ms : 60000;
    if (s->ob_base_ms > s->ob_max_ms)
        s->ob_base_ms = s->ob_max_ms;
    s->ob_lease_ms = o->outbox_lease_ms > 0 ? o->outbox_lease_ms : OUTBOX_LEASE_DEFAULT_MS;
    pthread_rwlock_init(&s->submit_lock, NULL);
    sfmap_init(&s->creates);
    sfmap_init(&s->issues);
    pthread_mutex_init(&s->ob_lock, NULL);
    pthread_cond_init(&s->ob_cond, NULL);
    *out = s;
    return 0;
}

int service_start(struct service *s)
{
    int rc;

    if ((rc = jobq_start(&s->fast)) != 0 || (rc = jobq_start(&s->slow)) != 0 ||
        (rc = delayq_start(&s->delay)) != 0)
        return rc;
    if ((rc = mapping_watch_start(s)) != 0)
        return rc;
    if (s->ob_interval_ms > 0 && outbox_start(s) != 0)
        return TV_ERR_INTERNAL;
    return 0;
}

void service_stop(struct service *s)
{
    if (s == NULL)
        return;
    outbox_stop(s);
    pthread_rwlock_wrlock(&s->submit_lock);
    s->stopping = 1;
    pthread_rwlock_unlock(&s->submit_lock);
    /* Requests waiting for another process's create end now (TV_ERR_SHUTDOWN), not at the
     * claim's deadline. */
    delayq_stop(&s->delay);
}

void service_free(struct service *s)
{
    if (s == NULL)
        return;
    service_stop(s);
    jobq_release(&s->slow);
    jobq_release(&s->fast); /* after service_stop's delayq_stop: nothing waits there now */
    /* After the workers: no flow queues a write any more; the queued ones run now. */
    tkeep_free(s->keep);
    /* The watch lives while anything may still read it (requests draining after service_stop,
     * the workers just joined), and stops before the caches its callbacks touch are freed. */
    mapping_watch_stop(s);
    delayq_release(&s->delay);
    sfmap_release(&s->issues);
    sfmap_release(&s->creates);
    tcache_free(s->cache);
    mapping_release(s);
    pthread_cond_destroy(&s->ob_cond);
    pthread_mutex_destroy(&s->ob_lock);
    pthread_rwlock_destroy(&s->submit_lock);
    free(s);
}
