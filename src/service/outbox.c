/* The delete outbox worker: one thread that, at start and then every interval (or when kicked),
 * takes due outbox rows and submits their ACS deletes; each outcome (on a service worker) is
 * settled by delete_settle (settle.c): the row done (ACS 404 counts as done) or its retry
 * scheduled with exponential backoff.
 * The thread never waits on ACS, so stopping it is immediate. A row is never sent twice at
 * once: store_outbox_take leases the rows it hands out to this process (store/outbox.h), so no
 * other replica on the database takes them while the lease (longer than the ACS deadline)
 * lasts, nor are they due here (nor a reason to wake up early); in this process an in-flight
 * set guards the row of a request's own delete, which leases its row when it writes it. A
 * replica that dies holding leases leaves rows that fall due when the leases run out, and
 * whichever replica is alive then takes and finishes them. */
#include "outbox_int.h"

#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "flow_int.h"
#include "service_int.h"
#include "settle_int.h"
#include "store/outbox.h"

#define OUTBOX_BATCH 32

/* One row's ACS delete. */
struct outbox_flow {
    struct flow base; /* first: steps get &base */
    int64_t outbox_id;
    int attempts; /* failed attempts of the row before this one */
    char app_user_id[STORE_ID_MAX + 1];
    char acs_id[STORE_ID_MAX + 1];
};

static void outbox_flow_free(struct outbox_flow *o)
{
    flow_release(&o->base);
    free(o);
}

/* Worker thread: the outcome of one row's delete. */
static void outbox_done(struct flow *f)
{
    struct outbox_flow *o = (struct outbox_flow *)(void *)f;
    struct delete_attempt d = {.call = &f->call,
                               .outbox_id = o->outbox_id,
                               .acs_id = o->acs_id,
                               .app_user_id = o->app_user_id,
                               .attempts = o->attempts,
                               .from_outbox = 1};

    (void)delete_settle(f->s, &d, f->res.rc);
    outbox_flow_free(o);
}

/* Submits the delete of one row this process has just taken (leased). */
static void outbox_send(struct service *s, const struct store_outbox_row *row)
{
    struct acs_request rq;
    struct outbox_flow *o;
    int rc;

    if (strcmp(row->op, "delete") != 0 || strcmp(row->resource, s->resource) != 0) {
        /* Not ours to do (another op, or an identity of another ACS resource): look again
         * much later instead of spinning on it; the lease ends, so a replica that can do it
         * may. */
        (void)store_outbox_retry_later(s->store, row->id, clock_wall_ms() + s->ob_max_ms,
                                       "not handled by this instance (op or ACS resource)");
        return;
    }
    rc = outbox_inflight_add(s, row->id);
    if (rc == TV_ERR_CONFLICT)
        return; /* our own attempt (a request's that outlived its lease) is in flight: the take
                   renewed the lease, so the row is not due while it lasts */
    if (rc != 0) {
        /* The set filled up since the pass counted its room: due again, for anyone. */
        (void)store_outbox_release(s->store, row->id, clock_wall_ms());
        return;
    }
    /* Renew the lease now that the mark is set: this sees a row our own request's attempt
     * finished between the take and the mark (its owner updates the store before dropping its
     * mark), and one another replica took over: then there is nothing to send. */
    if (store_outbox_lease(s->store, row->id, clock_wall_ms() + s->ob_lease_ms) != 0 ||
        (o = calloc(1, sizeof *o)) == NULL) {
        outbox_inflight_remove(s, row->id);
        return;
    }
    flow_init(&o->base, s, NULL);
    service_call_init(&o->base.call, NULL, "outbox", NULL);
    o->outbox_id = row->id;
    service_copy_str(o->app_user_id, sizeof o->app_user_id, row->app_user_id);
    service_copy_str(o->acs_id, sizeof o->acs_id, row->acs_id);
    o->attempts = row->attempts;
    memset(&rq, 0, sizeof rq);
    rq.op = ACS_OP_DELETE;
    rq.identity_id = o->acs_id;
    rc = flow_submit(&o->base, &rq, outbox_done);
    if (rc != 0) {
        /* Not sent (shutting down): give the lease back, so the next run, or another replica,
         * need not wait it out. */
        (void)store_outbox_release(s->store, row->id, clock_wall_ms());
        outbox_inflight_remove(s, row->id);
        outbox_flow_free(o);
    }
}

static void outbox_pass(struct service *s)
{
    struct store_outbox_row *rows;
    size_t room = outbox_inflight_room(s);
    int n = 0, rc;

    atomic_fetch_add(&s->m_outbox_passes, 1);
    /* Take no more than can be sent now: a taken row waits out its lease before anyone (this
     * process or another replica) may take it again. */
    if (room == 0)
        return;
    if (room > OUTBOX_BATCH)
        room = OUTBOX_BATCH;
    rows = calloc(room, sizeof *rows);
    if (rows == NULL)
        return;
    rc = store_outbox_take(s->store, clock_wall_ms(), s->ob_lease_ms, (int)room, rows, &n);
    if (rc != 0)
        log_msg(LOGL_WARN, NULL, "outbox: cannot take due rows: %s", err_name(rc));
    for (int i = 0; rc == 0 && i < n; i++)
        outbox_send(s, &rows[i]);
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

void service_outbox_kick(struct service *s)
{
    pthread_mutex_lock(&s->ob_lock);
    s->ob_kick = 1;
    pthread_cond_signal(&s->ob_cond);
    pthread_mutex_unlock(&s->ob_lock);
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
