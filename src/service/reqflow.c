/* The request flows (reqflow_int.h): get-or-create, issue (through the token cache), revoke, and
 * the entry points by app user or by ACS id. Each public entry point allocates a flow, does what
 * it can synchronously (store reads, policy) and submits one ACS call with the step that takes
 * its outcome on a worker thread: that step writes the store and the audit row, and either
 * submits the next call or finishes. reqflow_finish() calls the caller's done callback exactly
 * once and frees the flow. The delete flow lives in delete.c, the Teams exchange in teams.c.
 * Token cache (README "Configuration", tcache_int.h; only when configured): token_start()
 * serves a hit or joins/leads the one in-flight issue for the key; tokens ACS issues (or sends with
 * a create) are stored before anyone else can look; revoke and delete invalidate the identity's
 * entries when they start and again before they answer. */
#include "reqflow_int.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/ident.h"
#include "core/log.h"
#include "service_int.h"
#include "store/outbox.h"

#define MSG_MAX 320
/* An issue single-flight key: identity (length-prefixed), scope set, minutes, epoch. */
#define ISF_KEY_MAX (STORE_ID_MAX + TCACHE_SCOPES_MAX + 64)

static void user_start(struct reqflow *f);
static void reqflow_by_acs(struct reqflow *f);

static struct reqflow *rf_of(struct flow *f)
{
    return (struct reqflow *)(void *)f; /* base is the first member */
}

static struct reqflow *rf_of_link(struct sf_link *l)
{
    return (struct reqflow *)(void *)((char *)l - offsetof(struct reqflow, wait));
}

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

static void token_detail(const struct reqflow *f, char *out, size_t cap)
{
    char scopes[96];
    policy_scopes_format(&f->tok.treq, scopes, sizeof scopes);
    snprintf(out, cap, "scopes=%s minutes=%d", scopes, f->tok.treq.minutes);
}

static void fill_token_request(const struct reqflow *f, struct acs_request *rq)
{
    rq->nscopes = f->tok.treq.nscopes;
    for (size_t i = 0; i < f->tok.treq.nscopes && i < ACS_MAX_SCOPES; i++)
        rq->scopes[i] = f->tok.treq.scopes[i];
    rq->expires_in_minutes = f->tok.treq.minutes;
}

/* Submits op for the flow's mapping with its next step; on a refused submission the flow ends
 * here. */
static void submit_for_mapping(struct reqflow *f, enum acs_op op, flow_step_fn next)
{
    struct acs_request rq;
    int rc;

    memset(&rq, 0, sizeof rq);
    rq.op = op;
    rq.identity_id = f->user.acs_id;
    if (op == ACS_OP_ISSUE)
        fill_token_request(f, &rq);
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
}

/* Ends a failed single-flight: everyone gets the leader's error, except a request that has its
 * own answer for no mapping (a delete that waited for a create that made nothing: it has
 * nothing to delete). */
static void fail_all(struct reqflow *leader, struct sf_link *waiters, int rc, const char *msg)
{
    while (waiters != NULL) {
        struct reqflow *w = rf_of_link(waiters);
        waiters = waiters->next;
        if (w->on_none != NULL)
            w->on_none(w);
        else
            reqflow_finish(w, rc, msg);
    }
    reqflow_finish(leader, rc, msg);
}

/* ---- tokens, through the cache ---- */

static void isf_key(const struct reqflow *f, char out[ISF_KEY_MAX])
{
    snprintf(out, ISF_KEY_MAX, "%zu:%s|%s|%d|%llu", strlen(f->user.acs_id), f->user.acs_id,
             f->tok.scopes_key, f->tok.treq.minutes, (unsigned long long)f->tok.epoch);
}

/* Removes the issue single-flight entry f leads and returns its waiters, NULL if none. */
static struct sf_link *isf_finish(struct reqflow *f)
{
    char key[ISF_KEY_MAX];

    if (!f->tok.isf_lead)
        return NULL;
    f->tok.isf_lead = 0;
    isf_key(f, key);
    return sfmap_finish(&f->base.s->issues, key);
}

/* Offers the token in f's result to the cache under the epoch read before the ACS call. A
 * refusal (revoked since, too little life left) only means the next request asks ACS again. */
static void cache_store(struct reqflow *f, const char *acs_id)
{
    const struct acs_result *res = &f->base.res;
    struct tcache_key k = {acs_id, f->tok.scopes_key, f->tok.treq.minutes};
    int rc;

    if (f->base.s->cache == NULL || res->token == NULL || f->tok.scopes_key[0] == '\0')
        return;
    rc = tcache_put(f->base.s->cache, &k, f->tok.epoch, res->token, res->expires_on,
                    res->expires_on_ms, f->tok.issue_start_ms, clock_wall_ms());
    if (rc != 0)
        log_msg(LOGL_DEBUG, f->base.call.request_id, "token for %s not cached: %s", acs_id,
                rc == TV_ERR_CONFLICT ? "revoked or deleted meanwhile" : err_name(rc));
}

/* Answers f with a cached token (moved into f's result, which the free wipes). No audit row:
 * see tcache_int.h. */
static void finish_hit(struct reqflow *f, struct tcache_hit *h)
{
    struct acs_result *res = &f->base.res;

    acs_result_release(res);
    res->op = ACS_OP_ISSUE;
    res->token = h->token;
    h->token = NULL;
    service_copy_str(res->expires_on, sizeof res->expires_on, h->expires_on);
    res->expires_on_ms = h->expires_on_ms;
    atomic_fetch_add(&f->base.s->m_cache_hits, 1);
    reqflow_finish(f, 0, NULL);
}

/* A waiter of an issue single-flight gets a copy of the leader's outcome. */
static void finish_shared(struct reqflow *w, const struct reqflow *leader, int rc, const char *msg)
{
    const struct acs_result *lres = &leader->base.res;
    struct acs_result *res = &w->base.res;

    if (rc != 0 || lres->token == NULL) {
        reqflow_finish(w, rc, msg);
        return;
    }
    acs_result_release(res);
    res->op = ACS_OP_ISSUE;
    if ((res->token = strdup(lres->token)) == NULL) {
        reqflow_finish(w, TV_ERR_NOMEM, NULL);
        return;
    }
    service_copy_str(res->expires_on, sizeof res->expires_on, lres->expires_on);
    res->expires_on_ms = lres->expires_on_ms;
    reqflow_finish(w, 0, NULL);
}

static void issue_done(struct flow *base);

/* The single-flight leader's ACS issue; a refused submission ends it and its waiters. */
static void issue_submit_leader(struct reqflow *f)
{
    struct acs_request rq;
    int rc;

    memset(&rq, 0, sizeof rq);
    rq.op = ACS_OP_ISSUE;
    rq.identity_id = f->user.acs_id;
    fill_token_request(f, &rq);
    rc = flow_submit(&f->base, &rq, issue_done);
    if (rc != 0) {
        struct sf_link *waiters = isf_finish(f);
        service_audit(f->base.s, &f->base.call, "issue", reqflow_user_of(f), f->user.acs_id, rc,
                      NULL);
        fail_all(f, waiters, rc, NULL);
    }
}

/* The issue single-flight's second look: the leader stores its token before it removes its
 * entry, so a token that arrived since the caller's lookup is found here. */
struct isf_recheck {
    struct reqflow *f;
    struct tcache_hit *hit;
};

static int isf_recheck(void *ctx)
{
    struct isf_recheck *r = ctx;
    struct reqflow *f = r->f;
    struct tcache_key k = {f->user.acs_id, f->tok.scopes_key, f->tok.treq.minutes};

    return tcache_get(f->base.s->cache, &k, clock_wall_ms(), f->user.revoked_ms, r->hit);
}

/* A token for the mapping in hand: from the cache, by joining the issue in flight for the same
 * key, or from a new ACS issue. Without the cache: straight to ACS, as before. */
static void token_start(struct reqflow *f)
{
    struct service *s = f->base.s;
    struct tcache_hit hit;
    struct tcache_key k;
    struct isf_recheck rck = {f, &hit};
    char key[ISF_KEY_MAX];
    enum sf_role role;
    int rc;

    memset(&hit, 0, sizeof hit);
    if (s->cache == NULL || tcache_scopes_key(f->tok.treq.scopes, f->tok.treq.nscopes,
                                              f->tok.scopes_key, sizeof f->tok.scopes_key) != 0) {
        f->tok.scopes_key[0] = '\0';
        submit_for_mapping(f, ACS_OP_ISSUE, issue_done);
        return;
    }
    k = (struct tcache_key){f->user.acs_id, f->tok.scopes_key, f->tok.treq.minutes};
    if (tcache_get(s->cache, &k, clock_wall_ms(), f->user.revoked_ms, &hit) == 0) {
        finish_hit(f, &hit);
        return;
    }
    /* Both before the ACS call: the start time is what a later revoked_ms is compared with,
     * the epoch what a revoke moves on. */
    f->tok.issue_start_ms = clock_wall_ms();
    f->tok.epoch = tcache_epoch(s->cache, f->user.acs_id);
    isf_key(f, key);
    if ((rc = sfmap_join(&s->issues, key, &f->wait, 1, isf_recheck, &rck, &role)) != 0) {
        reqflow_finish(f, rc, NULL);
        return;
    }
    switch (role) {
    case SF_FOUND:
        finish_hit(f, &hit);
        break;
    case SF_JOINED:
        atomic_fetch_add(&s->m_isf_joined, 1);
        atomic_fetch_add(&s->m_cache_misses, 1);
        break; /* the leader's issue_done answers this flow */
    case SF_LEAD:
        f->tok.isf_lead = 1;
        atomic_fetch_add(&s->m_cache_misses, 1);
        issue_submit_leader(f);
        break;
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
    submit_for_mapping(f, ACS_OP_REVOKE, revoke_done);
}

/* ---- create (single-flight leader) ---- */

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
        cache_store(f, f->user.acs_id);
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
        token_detail(f, detail, sizeof detail);
        atomic_fetch_add(&s->m_issued, 1);
        service_audit(s, &f->base.call, "issue", f->user.app_user_id, f->user.acs_id, 0, detail);
        reqflow_finish(f, 0, NULL);
        return;
    }
    reqflow_have_mapping(f);
}

static void user_create_done(struct flow *base)
{
    struct reqflow *f = rf_of(base);
    struct service *s = base->s;
    struct store_user u;
    int rc = base->res.rc;

    if (rc != 0) {
        service_audit(s, &base->call, "create", f->key, "", rc, NULL);
        fail_all(f, sfmap_finish(&s->creates, f->key), rc, flow_acs_message(base));
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
    rc = store_user_insert(s->store, &u);
    if (rc == 0) {
        f->user = u;
        f->have_user = 1;
        f->created = 1;
        atomic_fetch_add(&s->m_created, 1);
        service_audit(s, &base->call, "create", u.app_user_id, u.acs_id, 0, NULL);
    } else {
        /* TV_ERR_CONFLICT: another process created this user's mapping first (the UNIQUE
         * constraint is the backstop of the in-memory single-flight). Use its mapping, and
         * delete the identity we created, with the token that came with it. */
        service_audit(s, &base->call, "create", u.app_user_id, u.acs_id, rc,
                      "identity discarded; queued for deletion");
        orphan_delete(s, f, u.acs_id);
        acs_result_release(&base->res);
        if (rc == TV_ERR_CONFLICT && store_user_get(s->store, f->key, &f->user) == 0) {
            f->have_user = 1;
        } else {
            fail_all(f, sfmap_finish(&s->creates, f->key),
                     rc == TV_ERR_CONFLICT ? TV_ERR_INTERNAL : rc, NULL);
            return;
        }
    }
    user_created(f);
}

static void identity_create_done(struct flow *base)
{
    struct reqflow *f = rf_of(base);
    struct service *s = base->s;
    int rc = base->res.rc;

    if (rc != 0) {
        service_audit(s, &base->call, "create", "", "", rc, NULL);
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
        token_detail(f, detail, sizeof detail);
        atomic_fetch_add(&s->m_issued, 1);
        service_audit(s, &base->call, "issue", "", f->user.acs_id, 0, detail);
        cache_store(f, f->user.acs_id);
    }
    reqflow_finish(f, 0, NULL);
}

/* ---- the other outcomes ---- */

/* ACS answered 404 to f's issue: the identity is gone. Usually a delete removed (or replaced)
 * the mapping after f read it; then the request starts over once, from the store, as if it had
 * arrived after the delete (with auto-create: a new identity; without: 404 not_found). A
 * mapping that still names the identity means it vanished outside tokenvend: 409. */
static void issue_gone(struct reqflow *f)
{
    struct service *s = f->base.s;
    struct store_user cur;
    int rc;

    rc = f->by_acs ? store_user_get_by_acs(s->store, f->key, &cur)
                   : store_user_get(s->store, f->key, &cur);
    if (rc != 0 && rc != TV_ERR_NOT_FOUND) {
        reqflow_finish(f, rc, NULL);
        return;
    }
    if (rc == 0 && strcmp(cur.acs_id, f->user.acs_id) == 0) {
        reqflow_finish(
            f, TV_ERR_CONFLICT,
            "ACS no longer knows this identity although its mapping exists (deleted outside "
            "tokenvend?); delete the user or identity to start over");
        return;
    }
    if (f->by_acs) {
        reqflow_finish(f, TV_ERR_NOT_FOUND, "no such identity");
        return;
    }
    if (f->tok.restarted) {
        reqflow_finish(f, TV_ERR_CONFLICT,
                       "the identity was deleted while a token was being issued; try again");
        return;
    }
    log_msg(LOGL_INFO, f->base.call.request_id,
            "identity %s of %s went away during the issue (deleted); starting over", f->user.acs_id,
            f->key);
    f->tok.restarted = 1;
    acs_result_release(&f->base.res);
    memset(&f->base.res, 0, sizeof f->base.res);
    memset(&f->user, 0, sizeof f->user);
    f->have_user = 0;
    f->created = 0;
    f->tok.isf_lead = 0;
    f->wait.next = NULL;
    f->tok.scopes_key[0] = '\0';
    user_start(f);
}

static void issue_done(struct flow *base)
{
    struct reqflow *f = rf_of(base);
    struct service *s = base->s;
    char detail[160];
    int rc = base->res.rc;

    token_detail(f, detail, sizeof detail);
    if (rc == 0) {
        (void)store_user_touch_issued(s->store, f->user.acs_id, clock_wall_ms());
        atomic_fetch_add(&s->m_issued, 1);
    }
    service_audit(s, &base->call, "issue", reqflow_user_of(f), f->user.acs_id, rc, detail);
    if (f->tok.isf_lead) {
        /* Stored before the single-flight entry goes, so a request arriving in between finds
         * one or the other. */
        struct sf_link *waiters;
        if (rc == 0)
            cache_store(f, f->user.acs_id);
        waiters = isf_finish(f);
        while (waiters != NULL) {
            struct reqflow *w = rf_of_link(waiters);
            waiters = waiters->next;
            if (rc == TV_ERR_ACS_NOT_FOUND)
                issue_gone(w);
            else
                finish_shared(w, f, rc, rc == 0 ? NULL : flow_acs_message(base));
        }
    }
    if (rc == TV_ERR_ACS_NOT_FOUND) {
        issue_gone(f);
        return;
    }
    reqflow_finish(f, rc, rc == 0 ? NULL : flow_acs_message(base));
}

static void revoke_done(struct flow *base)
{
    struct reqflow *f = rf_of(base);
    struct service *s = base->s;
    int rc = base->res.rc;

    if (rc == 0) {
        (void)store_user_set_revoked(s->store, f->user.acs_id, clock_wall_ms());
        atomic_fetch_add(&s->m_revoked, 1);
    }
    /* Before answering, whatever ACS said (a failed revoke may still have happened): tokens of
     * issues that were in flight meanwhile are refused by the cache from here on. */
    reqflow_cache_invalidate(f, f->user.acs_id);
    service_audit(s, &base->call, "revoke", reqflow_user_of(f), f->user.acs_id, rc, NULL);
    reqflow_finish(f, rc, rc == 0 ? NULL : flow_acs_message(base));
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
    if (!f->tok.want)
        return;
    fill_token_request(f, rq);
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
        struct sf_link *waiters = sfmap_finish(&s->creates, f->key);
        service_audit(s, &f->base.call, "create", f->key, "", rc, NULL);
        fail_all(f, waiters, rc, NULL);
    }
}

/* Looks the app user up and continues with the mapping, a create, or an error. */
static void user_start(struct reqflow *f)
{
    struct service *s = f->base.s;
    enum sf_role role;
    int rc;

    rc = store_user_get(s->store, f->key, &f->user);
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
        create_submit_leader(f);
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

static void set_treq(struct reqflow *f, const struct policy_token_req *treq)
{
    if (treq != NULL)
        f->tok.treq = *treq;
    else
        policy_token_req_default(&f->base.s->policy, &f->tok.treq);
    f->tok.want = 1;
}

void reqflow_go(struct reqflow *f)
{
    if (f->by_acs)
        reqflow_by_acs(f);
    else
        user_start(f);
}

static const struct reqflow_kind user_token = {.on_mapping = token_start};
static const struct reqflow_kind user_token_create = {.may_create = 1, .on_mapping = token_start};
static const struct reqflow_kind user_ensure = {.may_create = 1, .on_mapping = ensure_have};
static const struct reqflow_kind user_revoke = {.on_mapping = revoke_have};
static const struct reqflow_kind id_token = {.by_acs = 1, .on_mapping = token_start};
static const struct reqflow_kind id_revoke = {.by_acs = 1, .on_mapping = revoke_have};
static const struct reqflow_kind id_create = {.by_acs = 1};

/* A public entry point: the flow of kind k for key, with a token request when want_token (treq
 * NULL = the policy defaults). */
static void entry(struct service *s, const struct service_call *c, const char *key,
                  const struct reqflow_kind *k, int want_token, const struct policy_token_req *treq,
                  service_done_fn done, void *arg)
{
    struct reqflow *f = reqflow_start(s, c, key, k, done, arg);

    if (f == NULL)
        return;
    if (want_token)
        set_treq(f, treq);
    reqflow_go(f);
}

void service_user_token(struct service *s, const struct service_call *c, const char *app_user_id,
                        const struct policy_token_req *treq, int create_if_missing,
                        service_done_fn done, void *arg)
{
    entry(s, c, app_user_id, create_if_missing ? &user_token_create : &user_token, 1, treq, done,
          arg);
}

void service_user_ensure(struct service *s, const struct service_call *c, const char *app_user_id,
                         service_done_fn done, void *arg)
{
    entry(s, c, app_user_id, &user_ensure, 0, NULL, done, arg);
}

void service_user_revoke(struct service *s, const struct service_call *c, const char *app_user_id,
                         service_done_fn done, void *arg)
{
    entry(s, c, app_user_id, &user_revoke, 0, NULL, done, arg);
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

void service_identity_token(struct service *s, const struct service_call *c, const char *acs_id,
                            const struct policy_token_req *treq, service_done_fn done, void *arg)
{
    entry(s, c, acs_id, &id_token, 1, treq, done, arg);
}

void service_identity_revoke(struct service *s, const struct service_call *c, const char *acs_id,
                             service_done_fn done, void *arg)
{
    entry(s, c, acs_id, &id_revoke, 0, NULL, done, arg);
}
