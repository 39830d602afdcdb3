/* A delete's outcome and the outbox's in-flight set (settle_int.h). */
#include "settle_int.h"

#include <openssl/rand.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "service_int.h"
#include "store/outbox.h"
#include "tcache_int.h"

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

size_t outbox_inflight_room(struct service *s)
{
    size_t room;

    pthread_mutex_lock(&s->ob_lock);
    room = OUTBOX_INFLIGHT_MAX - s->ob_ninflight;
    pthread_mutex_unlock(&s->ob_lock);
    return room;
}

int delete_settle(struct service *s, const struct delete_attempt *d, int rc)
{
    int64_t next;

    /* Again, for issues that were in flight when the delete began; and a delete queued by
     * another process (admin CLI) may leave tokens here: never served (the mapping is gone),
     * but wiped now rather than at eviction. */
    if (s->cache != NULL && d->acs_id[0] != '\0')
        (void)tcache_invalidate(s->cache, d->acs_id);
    if (rc == 0 || rc == TV_ERR_ACS_NOT_FOUND) {
        /* TV_ERR_NOT_FOUND: finished already, or our lease ran out and another replica took
         * the row over; its repeat of the (idempotent) delete finishes it. Either way the
         * identity is gone. */
        (void)store_outbox_done(s->store, d->outbox_id);
        outbox_inflight_remove(s, d->outbox_id);
        if (d->from_outbox)
            atomic_fetch_add(&s->m_outbox_done, 1);
        atomic_fetch_add(&s->m_deleted, 1);
        service_audit(s, d->call, "delete", d->app_user_id, d->acs_id, 0,
                      d->from_outbox
                          ? (rc == 0 ? "outbox" : "outbox; ACS did not know the identity")
                          : (rc == 0 ? NULL : "ACS did not know the identity"));
        return 0;
    }
    next = clock_wall_ms() + outbox_backoff_ms(s, d->attempts);
    if (store_outbox_retry_later(s->store, d->outbox_id, next, err_name(rc)) == TV_ERR_NOT_FOUND)
        /* Our lease ran out and another replica holds the row now (or finished it): its
         * attempt counts, ours is dropped. */
        log_msg(LOGL_INFO, d->call->request_id,
                "outbox: delete of %s failed (%s); the row is another instance's now", d->acs_id,
                err_name(rc));
    outbox_inflight_remove(s, d->outbox_id);
    atomic_fetch_add(&s->m_outbox_retry, 1);
    if (d->from_outbox)
        log_msg(LOGL_INFO, d->call->request_id,
                "outbox: delete of %s failed (%s); retry in %lld ms", d->acs_id, err_name(rc),
                (long long)(next - clock_wall_ms()));
    else
        service_audit(s, d->call, "delete", d->app_user_id, d->acs_id, rc, "queued in the outbox");
    return 1;
}
