/* Tokens for a mapping in hand, through the token cache (README "Configuration",
 * tcache_int.h; only when configured): token_start() serves a hit or joins/leads the one
 * in-flight issue for the key (identity, scope set, minutes, cache epoch); the leader's token is
 * stored before its single-flight entry goes, so a request arriving in between finds one or
 * the other. ACS answering 404 to an issue starts the request over once (issue_gone). The
 * entry points service_user_token and service_identity_token. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "mapping_int.h"
#include "reqflow_int.h"
#include "service_int.h"
#include "tkeep_int.h"

/* An issue single-flight key: identity (length-prefixed), scope set, minutes, epoch. */
#define ISF_KEY_MAX (STORE_ID_MAX + TCACHE_SCOPES_MAX + 64)

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
        w->base.retry_after_s = leader->base.retry_after_s;
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
    reqflow_fill_token_request(f, &rq);
    rc = flow_submit(&f->base, &rq, issue_done);
    if (rc != 0) {
        struct sf_link *waiters = isf_finish(f);
        service_audit(f->base.s, &f->base.call, "issue", reqflow_user_of(f), f->user.acs_id, rc,
                      NULL);
        reqflow_fail_all(f, waiters, rc, NULL);
    }
}

/* The kept token cache (tkeep_int.h) answers the leader, and its waiters, as an ACS issue
 * would, without one. The row's token enters the memory cache first, under the epoch the leader
 * read before its lookup: a revoke since then refuses it, and then it is not served at all.
 * 0, or TV_ERR_NOT_FOUND for every kind of miss (the leader asks ACS). */
static int kept_try(struct reqflow *f)
{
    struct service *s = f->base.s;
    struct acs_result *res = &f->base.res;
    struct tkeep_id id = {
        s->resource, f->user.acs_id, f->tok.scopes_key, f->tok.treq.minutes, 0, 0};
    struct tcache_key k = {f->user.acs_id, f->tok.scopes_key, f->tok.treq.minutes};
    struct tcache_hit hit;
    struct sf_link *waiters;

    memset(&hit, 0, sizeof hit);
    if (tkeep_lookup(s->keep, &id, clock_wall_ms(), f->user.revoked_ms, f->base.call.request_id,
                     &hit) != 0)
        return TV_ERR_NOT_FOUND;
    if (tcache_put(s->cache, &k, f->tok.epoch, hit.token, hit.expires_on, hit.expires_on_ms,
                   hit.issued_ms, clock_wall_ms()) != 0) {
        tcache_hit_release(&hit);
        return TV_ERR_NOT_FOUND;
    }
    acs_result_release(res);
    res->op = ACS_OP_ISSUE;
    res->token = hit.token;
    hit.token = NULL;
    service_copy_str(res->expires_on, sizeof res->expires_on, hit.expires_on);
    res->expires_on_ms = hit.expires_on_ms;
    /* In the memory cache before the single-flight entry goes, as after an ACS issue. */
    waiters = isf_finish(f);
    while (waiters != NULL) {
        struct reqflow *w = rf_of_link(waiters);
        waiters = waiters->next;
        finish_shared(w, f, 0, NULL);
    }
    reqflow_finish(f, 0, NULL);
    return 0;
}

static void kept_job(struct jobq_item *it)
{
    struct reqflow *f = rf_of((struct flow *)(void *)it); /* job is the flow's first member */

    if (kept_try(f) != 0)
        issue_submit_leader(f);
}

/* The single-flight leader: the kept token cache first (when configured), then ACS. On
 * PostgreSQL the row is read on a worker, never on the caller's (HTTP) thread; the flow's job
 * is free, as no ACS call of f is in flight yet. A local SQLite file is read here. */
static void leader_start(struct reqflow *f)
{
    struct service *s = f->base.s;

    if (s->keep == NULL) {
        issue_submit_leader(f);
        return;
    }
    if (store_is_pg(s->store)) {
        f->base.job.run = kept_job;
        if (jobq_submit(&s->fast, &f->base.job) != 0)
            issue_submit_leader(f); /* stopping: the submission refuses and answers */
        return;
    }
    if (kept_try(f) != 0)
        issue_submit_leader(f);
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
    /* While the store's watch is not current a revoke elsewhere may have gone unseen: no hit,
     * no fill, straight to ACS. */
    if (s->cache == NULL || !mapping_caches_current(s) ||
        tcache_scopes_key(f->tok.treq.scopes, f->tok.treq.nscopes, f->tok.scopes_key,
                          sizeof f->tok.scopes_key) != 0) {
        f->tok.scopes_key[0] = '\0';
        reqflow_submit(f, ACS_OP_ISSUE, issue_done);
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
        leader_start(f);
        break;
    }
}

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
    reqflow_go(f);
}

static void issue_done(struct flow *base)
{
    struct reqflow *f = rf_of(base);
    struct service *s = base->s;
    char detail[160];
    int rc = base->res.rc;

    reqflow_token_detail(f, detail, sizeof detail);
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
            reqflow_cache_store(f, f->user.acs_id);
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

static const struct reqflow_kind user_token = {.on_mapping = token_start};
static const struct reqflow_kind user_token_create = {.may_create = 1, .on_mapping = token_start};
static const struct reqflow_kind id_token = {.by_acs = 1, .on_mapping = token_start};

void service_user_token(struct service *s, const struct service_call *c, const char *app_user_id,
                        const struct policy_token_req *treq, int create_if_missing,
                        service_done_fn done, void *arg)
{
    reqflow_entry(s, c, app_user_id, create_if_missing ? &user_token_create : &user_token, 1, treq,
                  done, arg);
}

void service_identity_token(struct service *s, const struct service_call *c, const char *acs_id,
                            const struct policy_token_req *treq, service_done_fn done, void *arg)
{
    reqflow_entry(s, c, acs_id, &id_token, 1, treq, done, arg);
}
