/* The request flows (reqflow_int.h): the lookup of a mapping by app user (get-or-create, one
 * create in flight per user) or by ACS id, ensure, revoke and a standalone create. Each public
 * entry point allocates a flow, does what it can synchronously (store reads, policy) and submits
 * one ACS call with the step that takes its outcome on a worker thread: that step writes the
 * store and the audit row, and either submits the next call or finishes. reqflow_finish() calls
 * the caller's done callback exactly once and frees the flow. Tokens are token.c's, the delete
 * delete.c's, the Teams exchange teams.c's. A token that comes with a create is stored in the
 * cache before anyone else can look; revoke and delete invalidate the identity's entries when
 * they start and again before they answer. */
#include "reqflow_int.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/ident.h"
#include "core/log.h"
#include "mapping_int.h"
#include "service_int.h"
#include "store/claims.h"
#include "store/outbox.h"
#include "tkeep_int.h"

#define MSG_MAX 320

static void user_start(struct reqflow *f);
static void reqflow_by_acs(struct reqflow *f);

static int id_valid(const char *id)
{
    return ident_check_str(id, STORE_ID_MAX) == IDENT_OK;
}

static void reqflow_free(struct reqflow *f)
{
    flow_release(&f->base);
    free(f);
}

/* Reports the outcome and frees f. A token is handed out only on success and only when this
 * flow's last ACS call produced one. */
void reqflow_finish_ex(struct reqflow *f, int rc, const char *msg, int pending)
{
    const struct acs_result *res = &f->base.res;
    struct service_result r;

    memset(&r, 0, sizeof r);
    r.rc = rc;
    r.message = msg;
    r.created = f->created;
    r.pending = pending;
    r.user = f->have_user ? &f->user : NULL;
    r.acs_id = f->have_user ? f->user.acs_id : "";
    r.retry_after_s = flow_retry_after(&f->base, rc);
    if (rc == 0 && res->token != NULL) {
        r.token = res->token;
        r.expires_on = res->expires_on;
        r.expires_on_ms = res->expires_on_ms;
    }
    if (rc != 0)
        atomic_fetch_add(&f->base.s->m_flow_errors, 1);
    if (f->done != NULL)
        f->done(f->arg, &r);
    reqflow_free(f);
}

void reqflow_finish(struct reqflow *f, int rc, const char *msg)
{
    reqflow_finish_ex(f, rc, msg, 0);
}

const char *reqflow_user_of(const struct reqflow *f)
{
    return f->have_user ? f->user.app_user_id : f->key;
}

void reqflow_token_detail(const struct reqflow *f, char *out, size_t cap)
{
    char scopes[96];
    policy_scopes_format(&f->tok.treq, scopes, sizeof scopes);
    snprintf(out, cap, "scopes=%s minutes=%d", scopes, f->tok.treq.minutes);
}

void reqflow_fill_token_request(const struct reqflow *f, struct acs_request *rq)
{
    rq->nscopes = f->tok.treq.nscopes;
    for (size_t i = 0; i < f->tok.treq.nscopes && i < ACS_MAX_SCOPES; i++)
        rq->scopes[i] = f->tok.treq.scopes[i];
    rq->expires_in_minutes = f->tok.treq.minutes;
}

/* Submits op for the flow's mapping with its next step; on a refused submission the flow ends
 * here. */
void reqflow_submit(struct reqflow *f, enum acs_op op, flow_step_fn next)
{
    struct acs_request rq;
    int rc;

    memset(&rq, 0, sizeof rq);
    rq.op = op;
    rq.identity_id = f->user.acs_id;
    if (op == ACS_OP_ISSUE)
        reqflow_fill_token_request(f, &rq);
    rc = flow_submit(&f->base, &rq, next);
    if (rc != 0) {
        service_audit(f->base.s, &f->base.call, acs_op_name(op), reqflow_user_of(f), f->user.acs_id,
                      rc, NULL);
        reqflow_finish(f, rc, NULL);
    }
}

/* Wipes the identity's cached tokens and fences off ACS calls already in flight. */
void reqflow_cache_invalidate(struct reqflow *f, const char *acs_id)
{
    if (f->base.s->cache != NULL && acs_id != NULL && acs_id[0] != '\0')
        (void)tcache_invalidate(f->base.s->cache, acs_id);
    mapping_forget(f->base.s, f->user.app_user_id[0] != '\0' ? f->user.app_user_id
                              : f->by_acs                    ? ""
                                                             : f->key);
}

/* Removes acs_id's kept tokens from the store (the kept cache on only). Called by revoke and
 * delete on a worker, after the mapping changed and before the answer, so no replica reads the
 * rows after it; a failure (logged) leaves the readers' revoked_ms check, or the mapping's
 * absence, to refuse them. */
void reqflow_kept_purge(struct reqflow *f, const char *acs_id)
{
    (void)tkeep_purge(f->base.s->keep, acs_id, f->base.call.request_id);
}

/* Ends a failed single-flight: everyone gets the leader's error, except a request that has its
 * own answer for no mapping (a delete that waited for a create that made nothing: it has
 * nothing to delete). */
void reqflow_fail_all(struct reqflow *leader, struct sf_link *waiters, int rc, const char *msg)
{
    while (waiters != NULL) {
        struct reqflow *w = rf_of_link(waiters);
        waiters = waiters->next;
        w->base.retry_after_s = leader->base.retry_after_s;
        if (w->on_none != NULL)
            w->on_none(w);
        else
            reqflow_finish(w, rc, msg);
    }
    reqflow_finish(leader, rc, msg);
}

/* ---- tokens ---- */

/* Offers the token in f's result to the cache under the epoch read before the ACS call. A
 * refusal (revoked since, too little life left) only means the next request asks ACS again. */
void reqflow_cache_store(struct reqflow *f, const char *acs_id)
{
    const struct acs_result *res = &f->base.res;
    struct tcache_key k = {acs_id, f->tok.scopes_key, f->tok.treq.minutes};
    int rc;

    if (f->base.s->cache == NULL || res->token == NULL || f->tok.scopes_key[0] == '\0')
        return;
    rc = tcache_put(f->base.s->cache, &k, f->tok.epoch, res->token, res->expires_on,
                    res->expires_on_ms, f->tok.issue_start_ms, clock_wall_ms());
    if (rc != 0) {
        log_msg(LOGL_DEBUG, f->base.call.request_id, "token for %s not cached: %s", acs_id,
                rc == TV_ERR_CONFLICT ? "revoked or deleted meanwhile" : err_name(rc));
    } else if (f->base.s->keep != NULL) {
        /* What the memory cache took is kept in the store too, off this thread. */
        struct tkeep_id id = {f->base.s->resource,   acs_id,
                              f->tok.scopes_key,     f->tok.treq.minutes,
                              f->tok.issue_start_ms, res->expires_on_ms};
        tkeep_write(f->base.s->keep, f->base.s->cache, f->tok.epoch, &id, res->token,
                    res->expires_on, f->base.call.request_id);
    }
}

/* ---- with a mapping in hand ---- */

void reqflow_have_mapping(struct reqflow *f)
{
    char msg[MSG_MAX];

    if (strcmp(f->user.resource, f->base.s->resource) != 0) {
        snprintf(msg, sizeof msg, "identity belongs to another ACS resource (%s)",
                 f->user.resource);
        reqflow_finish(f, TV_ERR_CONFLICT, msg);
        return;
    }
    f->on_mapping(f);
}

/* on_mapping of an ensure: the mapping is the answer. */
static void ensure_have(struct reqflow *f)
{
    reqflow_finish(f, 0, NULL);
}

static void revoke_done(struct flow *base);

/* on_mapping of a revoke. */
static void revoke_have(struct reqflow *f)
{
    /* Cached tokens stop being served from the moment the revoke is asked for. */
    reqflow_cache_invalidate(f, f->user.acs_id);
    reqflow_submit(f, ACS_OP_REVOKE, revoke_done);
}

/* ---- create (single-flight leader) ---- */

/* The leader's create ended without a mapping of its own: other processes need not wait for
 * the claim's expiry. */
static void create_claim_drop(struct reqflow *f)
{
    if (f->claimed) {
        f->claimed = 0;
        claim_release(f->base.s, f->key, f->base.call.request_id);
    }
}

/* An identity ACS created that no mapping will own (we lost the race to another process, or
 * the store failed): queue its deletion so it does not linger. */
static void orphan_delete(struct service *s, const struct reqflow *f, const char *acs_id)
{
    int rc = store_outbox_add(s->store, acs_id, s->resource, "delete", clock_wall_ms(), NULL);
    if (rc != 0)
        log_msg(LOGL_ERROR, f->base.call.request_id,
                "ACS identity %s has no mapping and could not be queued for deletion: %s", acs_id,
                err_name(rc));
    else
        service_outbox_kick(s);
}

/* The mapping of a new identity committed (or another process's found instead): the waiters
 * continue with it, then the leader. */
static void user_created(struct reqflow *f)
{
    struct service *s = f->base.s;
    struct sf_link *waiters;

    /* The token that came with the create goes into the cache first, so the waiters asking
     * for the same scopes and lifetime are served from it. */
    if (f->tok.want && f->base.res.token != NULL)
        reqflow_cache_store(f, f->user.acs_id);
    /* The mapping is committed: from now on new requests find it in the store. */
    waiters = sfmap_finish(&s->creates, f->key);
    while (waiters != NULL) {
        struct reqflow *w = rf_of_link(waiters);
        waiters = waiters->next;
        w->user = f->user;
        w->have_user = 1;
        reqflow_have_mapping(w);
    }
    if (f->tok.want && f->base.res.token != NULL) {
        char detail[160];
        reqflow_token_detail(f, detail, sizeof detail);
        atomic_fetch_add(&s->m_issued, 1);
        service_audit(s, &f->base.call, "issue", f->user.app_user_id, f->user.acs_id, 0, detail);
        reqflow_finish(f, 0, NULL);
        return;
    }
    reqflow_have_mapping(f);
}

/* With acs_custom_id on, ACS answers a create for a user whose identity still exists with that
 * identity (200, not 201). If the outbox still owes ACS that identity's delete (the user was
 * deleted and came back before ACS finished deleting), mapping it would hand out an identity
 * about to vanish: TV_ERR_UNAVAILABLE (the delete is hurried along), a store error as is, or 0. */
static int create_check_existing(struct reqflow *f)
{
    struct service *s = f->base.s;
    int found = 0;
    int rc;

    if (f->base.res.http_status != 200)
        return 0;
    rc = store_outbox_pending_for(s->store, f->base.res.identity_id, &found);
    if (rc != 0 || !found)
        return rc;
    service_outbox_kick(s);
    return TV_ERR_UNAVAILABLE;
}

/* Audit detail of a create whose outcome ACS left unknown. */
#define CREATE_UNKNOWN_DETAIL "outcome unknown: the identity may have been created"

/* A create that reached ACS and got no answer saying what ACS did (acs_result.outcome_unknown):
 * an identity may exist at ACS that no mapping owns. Logged at warn with what finds it again:
 * the app user (or "standalone"), the request id ACS got as x-ms-client-request-id, and the
 * customId when the create carried one. No token or key is known here. The audit detail. */
static const char *create_unknown_note(const struct reqflow *f, int rc)
{
    const struct acs_result *r = &f->base.res;

    if (!r->outcome_unknown)
        return NULL;
    log_msg(LOGL_WARN, f->base.call.request_id,
            "ACS create outcome unknown (%s) for %s%s after %d attempt(s): an ACS identity may "
            "exist that no mapping owns; follow up with x-ms-client-request-id %s%s%s",
            err_name(rc), f->key[0] != '\0' ? "app user " : "a standalone identity", f->key,
            r->attempts, r->request_id, r->custom_id[0] != '\0' ? ", customId " : "", r->custom_id);
    return CREATE_UNKNOWN_DETAIL;
}

static void user_create_done(struct flow *base)
{
    struct reqflow *f = rf_of(base);
    struct service *s = base->s;
    struct store_user u;
    int rc = base->res.rc;

    if (rc != 0) {
        create_claim_drop(f);
        service_audit(s, &base->call, "create", f->key, "", rc, create_unknown_note(f, rc));
        reqflow_fail_all(f, sfmap_finish(&s->creates, f->key), rc, flow_acs_message(base));
        return;
    }
    if ((rc = create_check_existing(f)) != 0) {
        create_claim_drop(f);
        service_audit(s, &base->call, "create", f->key, base->res.identity_id, rc,
                      rc == TV_ERR_UNAVAILABLE ? "ACS returned the identity still being deleted"
                                               : NULL);
        acs_result_release(&base->res);
        reqflow_fail_all(f, sfmap_finish(&s->creates, f->key), rc,
                         rc == TV_ERR_UNAVAILABLE
                             ? "the user's previous ACS identity is still being deleted; retry "
                               "shortly"
                             : NULL);
        return;
    }
    memset(&u, 0, sizeof u);
    service_copy_str(u.app_user_id, sizeof u.app_user_id, f->key);
    service_copy_str(u.acs_id, sizeof u.acs_id, base->res.identity_id);
    service_copy_str(u.resource, sizeof u.resource, s->resource);
    u.created_ms = clock_wall_ms();
    if (base->res.token != NULL)
        u.last_issued_ms = u.created_ms;
    /* Read before the mapping exists, so no revoke can come between it and the ACS call. */
    if (s->cache != NULL)
        f->tok.epoch = tcache_epoch(s->cache, u.acs_id);
    /* The claim goes with the mapping, in one transaction: no moment shows neither. */
    rc = f->claimed ? store_claim_commit(s->store, &u) : store_user_insert(s->store, &u);
    if (rc == 0) {
        f->claimed = 0;
        f->user = u;
        f->have_user = 1;
        f->created = 1;
        atomic_fetch_add(&s->m_created, 1);
        service_audit(s, &base->call, "create", u.app_user_id, u.acs_id, 0, NULL);
    } else {
        /* TV_ERR_CONFLICT: another process created this user's mapping first (the UNIQUE
         * constraint is the backstop of the in-memory single-flight). Use its mapping, and
         * delete the identity we created, with the token that came with it; unless ACS gave
         * us that very identity (same customId): deleting it would break that mapping. */
        struct store_user theirs;
        int have = rc == TV_ERR_CONFLICT && store_user_get(s->store, f->key, &theirs) == 0;

        create_claim_drop(f);

        if (have && strcmp(theirs.acs_id, u.acs_id) == 0) {
            service_audit(s, &base->call, "create", u.app_user_id, u.acs_id, 0,
                          "mapped by another process first; same identity");
        } else {
            service_audit(s, &base->call, "create", u.app_user_id, u.acs_id, rc,
                          "identity discarded; queued for deletion");
            orphan_delete(s, f, u.acs_id);
            acs_result_release(&base->res);
        }
        if (!have) {
            reqflow_fail_all(f, sfmap_finish(&s->creates, f->key),
                             rc == TV_ERR_CONFLICT ? TV_ERR_INTERNAL : rc, NULL);
            return;
        }
        f->user = theirs;
        f->have_user = 1;
    }
    user_created(f);
}

static void identity_create_done(struct flow *base)
{
    struct reqflow *f = rf_of(base);
    struct service *s = base->s;
    int rc = base->res.rc;

    if (rc != 0) {
        service_audit(s, &base->call, "create", "", "", rc, create_unknown_note(f, rc));
        reqflow_finish(f, rc, flow_acs_message(base));
        return;
    }
    memset(&f->user, 0, sizeof f->user);
    service_copy_str(f->user.acs_id, sizeof f->user.acs_id, base->res.identity_id);
    service_copy_str(f->user.resource, sizeof f->user.resource, s->resource);
    f->user.created_ms = clock_wall_ms();
    if (base->res.token != NULL)
        f->user.last_issued_ms = f->user.created_ms;
    if (s->cache != NULL)
        f->tok.epoch = tcache_epoch(s->cache, f->user.acs_id);
    rc = store_user_insert(s->store, &f->user);
    service_audit(s, &base->call, "create", "", f->user.acs_id, rc, "standalone");
    if (rc != 0) {
        orphan_delete(s, f, f->user.acs_id);
        reqflow_finish(f, rc, NULL);
        return;
    }
    f->have_user = 1;
    f->created = 1;
    atomic_fetch_add(&s->m_created, 1);
    if (base->res.token != NULL) {
        char detail[160];
        reqflow_token_detail(f, detail, sizeof detail);
        atomic_fetch_add(&s->m_issued, 1);
        service_audit(s, &base->call, "issue", "", f->user.acs_id, 0, detail);
        reqflow_cache_store(f, f->user.acs_id);
    }
    reqflow_finish(f, 0, NULL);
}

/* ---- the other outcomes ---- */

static void revoke_done(struct flow *base)
{
    struct reqflow *f = rf_of(base);
    struct service *s = base->s;
    int rc = base->res.rc;

    const char *msg = rc == 0 ? NULL : flow_acs_message(base);

    if (rc == 0) {
        /* The write is what tells the other replicas (its notification): a revoke they never
         * hear of would let them serve tokens ACS has revoked, so a failed write is a failed
         * revoke (503; repeating it is safe: ACS revokes are idempotent). */
        if (store_user_set_revoked(s->store, f->user.acs_id, clock_wall_ms()) == 0) {
            atomic_fetch_add(&s->m_revoked, 1);
        } else {
            rc = TV_ERR_UNAVAILABLE;
            msg = "ACS revoked the tokens but the store could not record it; retry the revoke";
            (void)store_user_invalidate(s->store, f->user.acs_id);
        }
    } else {
        /* A failed revoke may still have happened at ACS (an unknown outcome): every replica
         * drops its cached tokens, as this one does below. */
        (void)store_user_invalidate(s->store, f->user.acs_id);
    }
    /* Before answering, whatever ACS said (a failed revoke may still have happened): tokens of
     * issues that were in flight meanwhile are refused by the cache from here on. */
    reqflow_cache_invalidate(f, f->user.acs_id);
    reqflow_kept_purge(f, f->user.acs_id);
    service_audit(s, &base->call, "revoke", reqflow_user_of(f), f->user.acs_id, rc, NULL);
    reqflow_finish(f, rc, msg);
}

/* ---- entry points ---- */

/* The create single-flight's second look: a create that finished since the caller's read has
 * committed its mapping before removing its entry, so this read sees it. */
static int create_recheck(void *ctx)
{
    struct reqflow *f = ctx;
    int rc = store_user_get(f->base.s->store, f->key, &f->user);

    if (rc == 0)
        f->have_user = 1;
    return rc;
}

static int join_create(struct reqflow *f, int lead, enum sf_role *role)
{
    int rc = sfmap_join(&f->base.s->creates, f->key, &f->wait, lead, create_recheck, f, role);

    if (rc == 0 && *role == SF_JOINED)
        atomic_fetch_add(&f->base.s->m_sf_joined, 1);
    return rc;
}

int reqflow_join_create(struct reqflow *f, enum sf_role *role)
{
    return join_create(f, 0, role);
}

/* The ACS create for f, with f's token in the same upstream call when it wants one (create
 * identity and token); the token's cache key and start time are taken here. */
static void create_request(struct reqflow *f, struct acs_request *rq)
{
    struct service *s = f->base.s;

    memset(rq, 0, sizeof *rq);
    rq->op = ACS_OP_CREATE;
    /* With acs_custom_id on, the client derives the customId from the app user. A standalone
     * identity (POST /internal/identities) has none and must not share one customId with every
     * other standalone identity. */
    rq->custom_id_user = f->key[0] != '\0' ? f->key : NULL;
    if (!f->tok.want)
        return;
    reqflow_fill_token_request(f, rq);
    f->tok.issue_start_ms = clock_wall_ms();
    if (s->cache != NULL && tcache_scopes_key(f->tok.treq.scopes, f->tok.treq.nscopes,
                                              f->tok.scopes_key, sizeof f->tok.scopes_key) != 0)
        f->tok.scopes_key[0] = '\0';
}

/* The leader's create; the leader's own token comes in the same upstream call (create identity
 * and token). */
static void create_submit_leader(struct reqflow *f)
{
    struct service *s = f->base.s;
    struct acs_request rq;
    int rc;

    create_request(f, &rq);
    rc = flow_submit(&f->base, &rq, user_create_done);
    if (rc != 0) {
        struct sf_link *waiters;
        /* The claim goes before the single-flight entry: a new leader of this process could
         * otherwise renew the claim (same owner) and then lose it to this release. */
        create_claim_drop(f);
        waiters = sfmap_finish(&s->creates, f->key);
        service_audit(s, &f->base.call, "create", f->key, "", rc, NULL);
        reqflow_fail_all(f, waiters, rc, NULL);
    }
}

/* The leader's claim outcome (claim.c): create; or continue with the mapping another process
 * made (the waiters too, as after our own create); or fail every request of the flight. */
static void create_claimed(struct claim *c, enum claim_outcome o, int rc)
{
    struct reqflow *f = rf_of_claim(c);
    struct service *s = f->base.s;

    switch (o) {
    case CLAIM_WON:
        f->claimed = 1;
        create_submit_leader(f);
        break;
    case CLAIM_FOUND:
        f->have_user = 1;
        user_created(f);
        break;
    case CLAIM_FAILED:
        f->base.retry_after_s = c->retry_after_s;
        service_audit(s, &f->base.call, "create", f->key, "", rc,
                      rc == TV_ERR_UNAVAILABLE ? "another process held the create claim" : NULL);
        reqflow_fail_all(f, sfmap_finish(&s->creates, f->key), rc,
                         rc == TV_ERR_UNAVAILABLE
                             ? "another tokenvend process is creating this user's ACS identity "
                               "and has not finished; retry shortly"
                             : NULL);
        break;
    }
}

/* Looks the app user up and continues with the mapping, a create, or an error. */
static void user_start(struct reqflow *f)
{
    struct service *s = f->base.s;
    enum sf_role role;
    int rc;

    /* A token request may take the mapping from the mapping cache (a restart after the
     * identity vanished reads the store). */
    rc = mapping_get(s, f->key, f->tok.want && !f->tok.restarted, &f->user);
    if (rc != TV_ERR_NOT_FOUND || !f->may_create) {
        reqflow_found(f, rc);
        return;
    }
    if ((rc = join_create(f, 1, &role)) != 0) {
        reqflow_finish(f, rc, NULL);
        return;
    }
    if (role == SF_FOUND)
        reqflow_have_mapping(f);
    else if (role == SF_LEAD)
        claim_start(&f->claim, s, f->key, &f->user, f->base.call.request_id, create_claimed);
    /* SF_JOINED: the leader's create continues this flow. */
}

struct reqflow *reqflow_start(struct service *s, const struct service_call *c, const char *key,
                              const struct reqflow_kind *k, service_done_fn done, void *arg)
{
    struct reqflow *f = calloc(1, sizeof *f);
    struct service_result r;

    if (f == NULL || !id_valid(key)) {
        memset(&r, 0, sizeof r);
        r.rc = f == NULL ? TV_ERR_NOMEM : TV_ERR_INVALID;
        r.message = f == NULL ? NULL
                              : "the user or identity id must be 1..256 bytes of UTF-8 without "
                                "control characters";
        r.acs_id = "";
        free(f);
        if (done != NULL)
            done(arg, &r);
        return NULL;
    }
    flow_init(&f->base, s, c);
    f->done = done;
    f->arg = arg;
    f->by_acs = k->by_acs;
    f->may_create = k->may_create;
    f->on_mapping = k->on_mapping;
    f->on_none = k->on_none;
    service_copy_str(f->key, sizeof f->key, key);
    return f;
}

static void reqflow_go_now(struct reqflow *f)
{
    if (f->by_acs)
        reqflow_by_acs(f);
    else
        user_start(f);
}

static void reqflow_go_job(struct jobq_item *it)
{
    reqflow_go_now(rf_of((struct flow *)(void *)it)); /* job is the flow's first member */
}

void reqflow_go(struct reqflow *f)
{
    struct service *s = f->base.s;
    int rc;

    /* A database server may keep a lookup waiting (a round trip, a reconnect, up to the
     * statement timeout): it runs on a worker and the caller's (HTTP) thread only queues. A
     * local SQLite file answers in microseconds and keeps the inline path. The flow's job is
     * free: no ACS call of f is in flight before its lookup. */
    if (!store_is_pg(s->store)) {
        reqflow_go_now(f);
        return;
    }
    /* A token request whose mapping the (notification-kept) mapping cache holds needs no
     * lookup: it goes on here, so a cache hit costs no thread hop either. */
    if (!f->by_acs && f->tok.want && !f->tok.restarted && mapping_peek(s, f->key, &f->user) == 0) {
        reqflow_found(f, 0);
        return;
    }
    f->base.job.run = reqflow_go_job;
    if ((rc = jobq_submit(&s->fast, &f->base.job)) != 0)
        reqflow_finish(f, rc, NULL);
}

static const struct reqflow_kind user_ensure = {.may_create = 1, .on_mapping = ensure_have};
static const struct reqflow_kind user_revoke = {.on_mapping = revoke_have};
static const struct reqflow_kind id_revoke = {.by_acs = 1, .on_mapping = revoke_have};
static const struct reqflow_kind id_create = {.by_acs = 1};

static void set_treq(struct reqflow *f, const struct policy_token_req *treq)
{
    if (treq != NULL)
        f->tok.treq = *treq;
    else
        policy_token_req_default(&f->base.s->policy, &f->tok.treq);
    f->tok.want = 1;
}

/* A public entry point: the flow of kind k for key, with a token request when want_token (treq
 * NULL = the policy defaults). */
void reqflow_entry(struct service *s, const struct service_call *c, const char *key,
                   const struct reqflow_kind *k, int want_token,
                   const struct policy_token_req *treq, service_done_fn done, void *arg)
{
    struct reqflow *f = reqflow_start(s, c, key, k, done, arg);

    if (f == NULL)
        return;
    if (want_token)
        set_treq(f, treq);
    reqflow_go(f);
}

void service_user_ensure(struct service *s, const struct service_call *c, const char *app_user_id,
                         service_done_fn done, void *arg)
{
    reqflow_entry(s, c, app_user_id, &user_ensure, 0, NULL, done, arg);
}

void service_user_revoke(struct service *s, const struct service_call *c, const char *app_user_id,
                         service_done_fn done, void *arg)
{
    reqflow_entry(s, c, app_user_id, &user_revoke, 0, NULL, done, arg);
}

void service_identity_create(struct service *s, const struct service_call *c,
                             const struct policy_token_req *treq, service_done_fn done, void *arg)
{
    struct reqflow *f = reqflow_start(s, c, "-", &id_create, done, arg);
    struct acs_request rq;
    int rc;

    if (f == NULL)
        return;
    f->key[0] = '\0';
    if (treq != NULL) {
        f->tok.treq = *treq;
        f->tok.want = 1;
    }
    create_request(f, &rq);
    rc = flow_submit(&f->base, &rq, identity_create_done);
    if (rc != 0) {
        service_audit(s, &f->base.call, "create", "", "", rc, "standalone");
        reqflow_finish(f, rc, NULL);
    }
}

void reqflow_found(struct reqflow *f, int rc)
{
    if (rc == 0) {
        f->have_user = 1;
        reqflow_have_mapping(f);
    } else if (rc == TV_ERR_NOT_FOUND && f->on_none != NULL) {
        f->on_none(f);
    } else if (rc == TV_ERR_NOT_FOUND) {
        reqflow_finish(f, rc, f->by_acs ? "no such identity" : "no ACS identity for this user");
    } else {
        reqflow_finish(f, rc, NULL);
    }
}

/* By ACS id: the id must be mapped here (that is what binds it to our resource). */
static void reqflow_by_acs(struct reqflow *f)
{
    reqflow_found(f, store_user_get_by_acs(f->base.s->store, f->key, &f->user));
}

void service_identity_revoke(struct service *s, const struct service_call *c, const char *acs_id,
                             service_done_fn done, void *arg)
{
    reqflow_entry(s, c, acs_id, &id_revoke, 0, NULL, done, arg);
}
