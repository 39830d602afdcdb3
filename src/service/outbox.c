/* The delete outbox worker: one thread that, at start and then every interval (or when kicked),
 * takes due outbox rows and submits their ACS deletes; each outcome (on a service worker)
 * marks the row done (ACS 404 counts as done) or schedules its retry with exponential backoff.
 * The thread never waits on ACS, so stopping it is immediate. A row is never sent twice at
 * once: in this process an in-flight set guards it, and in the store a row whose delete is in
 * flight is leased (not due until the lease ends), so it is neither taken again nor a reason
 * to wake up early; a request's own delete leases its row the same way when it writes it. */
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "service_int.h"
#include "store/outbox.h"

#define OUTBOX_BATCH 32

int64_t outbox_backoff_ms(const struct service *s, int attempts)
{
    int64_t d = s->ob_base_ms;
    unsigned r = 0;

    for (int i = 0; i < attempts && d < s->ob_max_ms; i++)
        d *= 2;
    if (d > s->ob_max_ms)
        d = s->ob_max_ms;
    /* Up to 20% jitter, so rows failed together do not retry in lockstep. */
    if (RAND_bytes((unsigned char *)&r, sizeof r) == 1 && d >= 5)
        d -= (int64_t)(r % (unsigned)(d / 5 + 1));
    return d;
}

int outbox_inflight_add(struct service *s, int64_t id)
{
    int rc = 0;
    pthread_mutex_lock(&s->ob_lock);
    for (size_t i = 0; i < s->ob_ninflight; i++) {
        if (s->ob_inflight[i] == id) {
            rc = TV_ERR_CONFLICT;
            goto unlock;
        }
    }
    if (s->ob_ninflight == OUTBOX_INFLIGHT_MAX) {
        rc = TV_ERR_UNAVAILABLE;
        goto unlock;
    }
    s->ob_inflight[s->ob_ninflight++] = id;
unlock:
    pthread_mutex_unlock(&s->ob_lock);
    return rc;
}

void outbox_inflight_remove(struct service *s, int64_t id)
{
    pthread_mutex_lock(&s->ob_lock);
    for (size_t i = 0; i < s->ob_ninflight; i++) {
        if (s->ob_inflight[i] == id) {
            s->ob_inflight[i] = s->ob_inflight[--s->ob_ninflight];
            break;
        }
    }
    pthread_mutex_unlock(&s->ob_lock);
}

/* Worker thread: the outcome of one row's delete. */
void outbox_step(struct flow *f)
{
    struct service *s = f->s;
    int rc = f->res.rc;

    /* A delete queued by another process (admin CLI) may leave tokens here: never served (the
     * mapping is gone), but wiped now rather than at eviction. */
    if (s->cache != NULL)
        (void)tcache_invalidate(s->cache, f->user.acs_id);
    /* The store first, the in-flight mark after: until the row is gone or rescheduled, the mark
     * keeps anyone else from sending the same delete. */
    if (rc == 0 || rc == TV_ERR_ACS_NOT_FOUND) {
        (void)store_outbox_done(s->store, f->outbox_id);
        outbox_inflight_remove(s, f->outbox_id);
        atomic_fetch_add(&s->m_outbox_done, 1);
        atomic_fetch_add(&s->m_deleted, 1);
        service_audit(s, &f->call, "delete", f->key, f->user.acs_id, 0,
                      rc == 0 ? "outbox" : "outbox; ACS did not know the identity");
    } else {
        int64_t next = clock_wall_ms() + outbox_backoff_ms(s, f->attempts);
        (void)store_outbox_retry_later(s->store, f->outbox_id, next, err_name(rc));
        outbox_inflight_remove(s, f->outbox_id);
        atomic_fetch_add(&s->m_outbox_retry, 1);
        log_msg(LOGL_INFO, f->call.request_id, "outbox: delete of %s failed (%s); retry in %lld ms",
                f->user.acs_id, err_name(rc), (long long)(next - clock_wall_ms()));
    }
    flow_free(f);
}

/* Submits the delete of one due row. */
static void outbox_take(struct service *s, const struct store_outbox_row *row)
{
    struct acs_request rq;
    struct flow *f;
    int rc;

    if (strcmp(row->op, "delete") != 0 || strcmp(row->resource, s->resource) != 0) {
        /* Not ours to do (another op, or an identity of another ACS resource): look again
         * much later instead of spinning on it. */
        (void)store_outbox_retry_later(s->store, row->id, clock_wall_ms() + s->ob_max_ms,
                                       "not handled by this instance (op or ACS resource)");
        return;
    }
    rc = outbox_inflight_add(s, row->id);
    if (rc == TV_ERR_CONFLICT) {
        /* Its delete is in flight (a request's attempt that outlived its lease): not an error,
         * and not due either, so push it out rather than wake up for it again and again. */
        (void)store_outbox_lease(s->store, row->id, clock_wall_ms() + s->ob_lease_ms);
        return;
    }
    if (rc != 0)
        return; /* too many in flight: a later pass */
    /* Claim it in the store. This also sees a row finished after our read (its owner updates
     * the store before dropping its mark): then there is nothing to send. */
    if (store_outbox_lease(s->store, row->id, clock_wall_ms() + s->ob_lease_ms) != 0 ||
        (f = flow_new(s, FK_OUTBOX, NULL, NULL, NULL)) == NULL) {
        outbox_inflight_remove(s, row->id);
        return;
    }
    service_call_init(&f->call, NULL, "outbox", NULL);
    f->outbox_id = row->id;
    snprintf(f->key, sizeof f->key, "%s", row->app_user_id);
    snprintf(f->user.acs_id, sizeof f->user.acs_id, "%s", row->acs_id);
    f->attempts = row->attempts;
    memset(&rq, 0, sizeof rq);
    rq.op = ACS_OP_DELETE;
    rq.identity_id = f->user.acs_id;
    rc = flow_submit(f, &rq);
    if (rc != 0) {
        /* Not sent (shutting down): give the claim back, so the next run need not wait out
         * the lease. */
        (void)store_outbox_lease(s->store, row->id, row->next_attempt_ms);
        outbox_inflight_remove(s, row->id);
        flow_free(f);
    }
}

static void outbox_pass(struct service *s)
{
    struct store_outbox_row *rows = calloc(OUTBOX_BATCH, sizeof *rows);
    int n = 0, rc;

    if (rows == NULL)
        return;
    atomic_fetch_add(&s->m_outbox_passes, 1);
    rc = store_outbox_due(s->store, clock_wall_ms(), OUTBOX_BATCH, rows, &n);
    if (rc != 0)
        log_msg(LOGL_WARN, NULL, "outbox: cannot read due rows: %s", err_name(rc));
    for (int i = 0; rc == 0 && i < n; i++)
        outbox_take(s, &rows[i]);
    free(rows);
}

static void *outbox_main(void *arg)
{
    struct service *s = arg;

    pthread_mutex_lock(&s->ob_lock);
    while (!s->ob_stop) {
        struct timespec ts;
        int64_t wait_ms = s->ob_interval_ms, next = 0;
        int found = 0;

        s->ob_kick = 0;
        pthread_mutex_unlock(&s->ob_lock);
        outbox_pass(s);
        /* Sleep until the interval, or sooner when a row falls due before it. Rows in flight
         * are leased (not due), so they never shorten the sleep. */
        if (store_outbox_next_due(s->store, &next, &found) == 0 && found) {
            int64_t until = next - clock_wall_ms();
            if (until < wait_ms)
                wait_ms = until < 10 ? 10 : until;
        }
        pthread_mutex_lock(&s->ob_lock);
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += wait_ms / 1000;
        ts.tv_nsec += (wait_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (!s->ob_stop && !s->ob_kick) {
            if (pthread_cond_timedwait(&s->ob_cond, &s->ob_lock, &ts) != 0)
                break;
        }
    }
    pthread_mutex_unlock(&s->ob_lock);
    return NULL;
}

int outbox_start(struct service *s)
{
    if (pthread_create(&s->ob_thread, NULL, outbox_main, s) != 0) {
        log_msg(LOGL_ERROR, NULL, "service: cannot start the outbox thread");
        return TV_ERR_INTERNAL;
    }
    s->ob_started = 1;
    return 0;
}

void outbox_stop(struct service *s)
{
    if (!s->ob_started)
        return;
    pthread_mutex_lock(&s->ob_lock);
    s->ob_stop = 1;
    pthread_cond_signal(&s->ob_cond);
    pthread_mutex_unlock(&s->ob_lock);
    pthread_join(s->ob_thread, NULL);
    s->ob_started = 0;
}
