/* The delete flow (by app user or by ACS id): the mapping goes first, with an outbox row leased
 * for this request's own ACS delete, so that the outbox worker (outbox.c) finishes the delete if
 * this attempt fails or never reports. Runs like the other flows (flows.c): entry on the
 * caller's thread, ACS outcomes on a service worker. */
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "service_int.h"
#include "store/outbox.h"

/* A delete with no mapping (left) to act on: success, as deleting is idempotent, but 202 while
 * the outbox still owes ACS the delete of this user's (or this id's) identity. Audited. */
void flow_delete_none(struct flow *f)
{
    struct service *s = f->s;
    char acs[STORE_ID_MAX + 1];
    int found = 0;

    acs[0] = '\0';
    if (f->kind == FK_ID_DELETE) {
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
    service_audit(s, &f->call, "delete", f->kind == FK_ID_DELETE ? "" : f->key, acs, 0,
                  found ? "no mapping; the outbox is still deleting the identity" : "no mapping");
    flow_finish_ex(f, 0, NULL, found);
}

void flow_delete_begin(struct flow *f)
{
    struct service *s = f->s;
    struct acs_request rq;
    int64_t now = clock_wall_ms();
    int rc;

    /* The outbox row is leased for this request's own attempt (due only after the ACS deadline
     * has surely passed), so the outbox worker takes it only if the attempt never reports. */
    rc = store_user_delete_begin_due(s->store, f->user.acs_id, now, now + s->ob_lease_ms,
                                     &f->outbox_id);
    /* The mapping is gone (or going): its cached tokens go now, before any answer. */
    flow_cache_invalidate(f, f->user.acs_id);
    if (rc == TV_ERR_NOT_FOUND) {
        /* Another delete removed it between our read and now. */
        flow_delete_none(f);
        return;
    }
    if (rc != 0) {
        service_audit(s, &f->call, "delete", flow_user_of(f), f->user.acs_id, rc, NULL);
        flow_finish(f, rc, NULL);
        return;
    }
    rc = outbox_inflight_add(s, f->outbox_id);
    if (rc == TV_ERR_CONFLICT) {
        /* The worker already sends it (the lease cannot have run out yet, but if it did):
         * not an error; the outbox finishes it. */
        service_audit(s, &f->call, "delete", flow_user_of(f), f->user.acs_id, 0,
                      "the outbox is deleting the identity");
        flow_finish_ex(f, 0, NULL, 1);
        return;
    }
    if (rc != 0) {
        /* Too many deletes in flight: due now, the outbox worker takes this row soon. */
        (void)store_outbox_lease(s->store, f->outbox_id, now);
        service_outbox_kick(s);
        service_audit(s, &f->call, "delete", flow_user_of(f), f->user.acs_id, rc,
                      "queued in the outbox (too many deletes in flight)");
        flow_finish_ex(f, 0, NULL, 1);
        return;
    }
    memset(&rq, 0, sizeof rq);
    rq.op = ACS_OP_DELETE;
    rq.identity_id = f->user.acs_id;
    rc = flow_submit(f, &rq);
    if (rc != 0) {
        (void)store_outbox_retry_later(s->store, f->outbox_id, now + outbox_backoff_ms(s, 0),
                                       err_name(rc));
        outbox_inflight_remove(s, f->outbox_id);
        service_audit(s, &f->call, "delete", flow_user_of(f), f->user.acs_id, rc,
                      "queued in the outbox");
        flow_finish_ex(f, 0, NULL, 1);
    }
}

void flow_delete_done(struct flow *f)
{
    struct service *s = f->s;
    int rc = f->res.rc;

    /* Again, for issues that were in flight when the delete began. */
    flow_cache_invalidate(f, f->user.acs_id);
    /* The store first, the in-flight mark after: while the row still looks due, the mark keeps
     * the outbox worker from sending the same delete again. */
    if (rc == 0 || rc == TV_ERR_ACS_NOT_FOUND) {
        (void)store_outbox_done(s->store, f->outbox_id);
        outbox_inflight_remove(s, f->outbox_id);
        atomic_fetch_add(&s->m_deleted, 1);
        service_audit(s, &f->call, "delete", flow_user_of(f), f->user.acs_id, 0,
                      rc == 0 ? NULL : "ACS did not know the identity");
        flow_finish(f, 0, NULL);
        return;
    }
    (void)store_outbox_retry_later(s->store, f->outbox_id,
                                   clock_wall_ms() + outbox_backoff_ms(s, 0), err_name(rc));
    outbox_inflight_remove(s, f->outbox_id);
    atomic_fetch_add(&s->m_outbox_retry, 1);
    service_audit(s, &f->call, "delete", flow_user_of(f), f->user.acs_id, rc,
                  "queued in the outbox");
    flow_finish_ex(f, 0, NULL, 1);
}

void service_user_delete(struct service *s, const struct service_call *c, const char *app_user_id,
                         service_done_fn done, void *arg)
{
    struct flow *f = flow_start(s, FK_USER_DELETE, c, app_user_id, done, arg);
    enum sf_role role;
    int rc;

    if (f == NULL)
        return;
    rc = store_user_get(s->store, f->key, &f->user);
    if (rc == TV_ERR_NOT_FOUND) {
        /* A create in flight for this user: wait for it and delete what it makes, so that no
         * mapping appears after this delete answered. */
        rc = sf_join_if_inflight(s, f, &role);
        if (rc == 0 && role == SF_JOINED)
            return; /* the leader's create continues this flow */
        if (rc == TV_ERR_NOT_FOUND) {
            flow_delete_none(f);
            return;
        }
    }
    if (rc != 0) {
        flow_finish(f, rc, NULL);
        return;
    }
    f->have_user = 1;
    flow_have_mapping(f);
}
