/* The delete flow (by app user or by ACS id): the mapping goes first, with an outbox row leased
 * to this process for this request's own ACS delete, so that an outbox worker (outbox.c; of
 * this replica or, should this one die, of any other) finishes the delete if this attempt fails
 * or never reports; either attempt's outcome is settled by delete_settle (settle.c). Runs like the
 * other request flows (reqflow.c): entry on the caller's thread, the ACS outcome on a service
 * worker. */
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "reqflow_int.h"
#include "service_int.h"
#include "settle_int.h"
#include "store/outbox.h"

/* A delete with no mapping (left) to act on: success, as deleting is idempotent, but 202 while
 * the outbox still owes ACS the delete of this user's (or this id's) identity. Audited. */
static void delete_none(struct reqflow *f)
{
    struct service *s = f->base.s;
    char acs[STORE_ID_MAX + 1];
    int found = 0;

    acs[0] = '\0';
    if (f->by_acs) {
        service_copy_str(acs, sizeof acs, f->key);
        (void)store_outbox_pending_for(s->store, f->key, &found);
    } else {
        (void)store_outbox_pending_for_user(s->store, f->key, &found, acs);
        /* A row queued before the outbox knew app users (schema 1) is found by its id. */
        if (!found && f->have_user) {
            service_copy_str(acs, sizeof acs, f->user.acs_id);
            (void)store_outbox_pending_for(s->store, f->user.acs_id, &found);
        }
    }
    service_audit(s, &f->base.call, "delete", f->by_acs ? "" : f->key, acs, 0,
                  found ? "no mapping; the outbox is still deleting the identity" : "no mapping");
    reqflow_finish_ex(f, 0, NULL, found);
}

/* Worker thread: the outcome of this request's own ACS delete. */
static void delete_done(struct flow *base)
{
    struct reqflow *f = (struct reqflow *)(void *)base; /* base is the first member */
    struct delete_attempt d = {.call = &base->call,
                               .outbox_id = f->outbox_id,
                               .acs_id = f->user.acs_id,
                               .app_user_id = reqflow_user_of(f)};

    reqflow_finish_ex(f, 0, NULL, delete_settle(base->s, &d, base->res.rc));
}

/* on_mapping of a delete. */
static void delete_begin(struct reqflow *f)
{
    struct service *s = f->base.s;
    struct acs_request rq;
    int64_t now = clock_wall_ms();
    int rc;

    /* The outbox row is leased for this request's own attempt (due only after the ACS deadline
     * has surely passed), so an outbox worker takes it only if the attempt never reports. The
     * row is written not due and nobody's, then leased to this process, so that only this
     * process may finish it while the lease lasts (store/outbox.h); should this process die in
     * between, the row simply falls due for whoever is alive. */
    rc = store_user_delete_begin_due(s->store, f->user.acs_id, now, now + s->ob_lease_ms,
                                     &f->outbox_id);
    /* The mapping is gone (or going): its cached tokens go now, before any answer. */
    reqflow_cache_invalidate(f, f->user.acs_id);
    if (rc == 0)
        reqflow_kept_purge(f, f->user.acs_id);
    if (rc == TV_ERR_NOT_FOUND) {
        /* Another delete removed it between our read and now. */
        delete_none(f);
        return;
    }
    if (rc != 0) {
        service_audit(s, &f->base.call, "delete", reqflow_user_of(f), f->user.acs_id, rc, NULL);
        reqflow_finish(f, rc, NULL);
        return;
    }
    if (store_outbox_lease(s->store, f->outbox_id, now + s->ob_lease_ms) == TV_ERR_NOT_FOUND) {
        /* Finished or held by another replica already (only possible when the clocks of the
         * replicas disagree by more than the lease): that one deletes the identity. Any other
         * failure leaves the row nobody's but not due before our attempt's deadline, which is
         * as good for sending it now. */
        service_audit(s, &f->base.call, "delete", reqflow_user_of(f), f->user.acs_id, 0,
                      "the outbox is deleting the identity");
        reqflow_finish_ex(f, 0, NULL, 1);
        return;
    }
    rc = outbox_inflight_add(s, f->outbox_id);
    if (rc == TV_ERR_CONFLICT) {
        /* The worker already sends it (the lease cannot have run out yet, but if it did):
         * not an error; the outbox finishes it. */
        service_audit(s, &f->base.call, "delete", reqflow_user_of(f), f->user.acs_id, 0,
                      "the outbox is deleting the identity");
        reqflow_finish_ex(f, 0, NULL, 1);
        return;
    }
    if (rc != 0) {
        /* Too many deletes in flight: due now, an outbox worker (here or on another replica)
         * takes this row soon. */
        (void)store_outbox_release(s->store, f->outbox_id, now);
        service_outbox_kick(s);
        service_audit(s, &f->base.call, "delete", reqflow_user_of(f), f->user.acs_id, rc,
                      "queued in the outbox (too many deletes in flight)");
        reqflow_finish_ex(f, 0, NULL, 1);
        return;
    }
    memset(&rq, 0, sizeof rq);
    rq.op = ACS_OP_DELETE;
    rq.identity_id = f->user.acs_id;
    rc = flow_submit(&f->base, &rq, delete_done);
    if (rc != 0) {
        (void)store_outbox_retry_later(s->store, f->outbox_id, now + outbox_backoff_ms(s, 0),
                                       err_name(rc));
        outbox_inflight_remove(s, f->outbox_id);
        service_audit(s, &f->base.call, "delete", reqflow_user_of(f), f->user.acs_id, rc,
                      "queued in the outbox");
        reqflow_finish_ex(f, 0, NULL, 1);
    }
}

static const struct reqflow_kind user_delete = {.on_mapping = delete_begin, .on_none = delete_none};
static const struct reqflow_kind id_delete = {
    .by_acs = 1, .on_mapping = delete_begin, .on_none = delete_none};

void service_user_delete(struct service *s, const struct service_call *c, const char *app_user_id,
                         service_done_fn done, void *arg)
{
    struct reqflow *f = reqflow_start(s, c, app_user_id, &user_delete, done, arg);
    enum sf_role role;
    int rc;

    if (f == NULL)
        return;
    rc = store_user_get(s->store, f->key, &f->user);
    if (rc == TV_ERR_NOT_FOUND) {
        /* A create in flight for this user: wait for it and delete what it makes, so that no
         * mapping appears after this delete answered. */
        rc = reqflow_join_create(f, &role);
        if (rc == 0 && role == SF_JOINED)
            return; /* the leader's create continues this flow */
    }
    reqflow_found(f, rc);
}

void service_identity_delete(struct service *s, const struct service_call *c, const char *acs_id,
                             service_done_fn done, void *arg)
{
    struct reqflow *f = reqflow_start(s, c, acs_id, &id_delete, done, arg);
    if (f != NULL)
        reqflow_go(f);
}
