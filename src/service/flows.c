/* The request flows: get-or-create, issue (through the token cache), revoke, and the entry
 * points by app user or by ACS id. Each public entry point allocates a flow, does what it can
 * synchronously (store reads, policy) and submits one ACS call; flow_step, on a worker thread,
 * takes the ACS outcome, writes the store and the audit row, and either submits the next call or
 * finishes. flow_finish() calls the caller's done callback exactly once and frees the flow.
 * The delete flow lives in delete.c, the Teams exchange in teams.c.
 * Token cache (README "Configuration", service/tcache.h; only when configured): token_start()
 * serves a hit or joins/leads the one in-flight issue for the key; tokens ACS issues (or sends with
 * a create) are stored before anyone else can look; revoke and delete invalidate the identity's
 * entries when they start and again before they answer. */
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/ident.h"
#include "core/log.h"
#include "service_int.h"
#include "store/outbox.h"

#define MSG_MAX 320

/* ACS error codes are short words ("IdentityNotFound"); anything else is not passed on. */
#define ACS_CODE_SHOWN_MAX 64

static int id_valid(const char *id)
{
    return ident_check_str(id, STORE_ID_MAX) == IDENT_OK;
}

/* Reports the outcome and frees f. A token is handed out only on success and only when this
 * flow's last ACS call produced one. */
void flow_finish_ex(struct flow *f, int rc, const char *msg, int pending)
{
    struct service_result r;

    memset(&r, 0, sizeof r);
    r.rc = rc;
    r.message = msg;
    r.created = f->created;
    r.pending = pending;
    r.user = f->have_user ? &f->user : NULL;
    r.acs_id = f->have_user ? f->user.acs_id : "";
    if (rc == 0 && f->res.token != NULL) {
        r.token = f->res.token;
        r.expires_on = f->res.expires_on;
        r.expires_on_ms = f->res.expires_on_ms;
    }
    if (f->kind == FK_TEAMS && rc == 0)
        r.acs_id = f->res.identity_id;
    if (rc != 0)
        atomic_fetch_add(&f->s->m_flow_errors, 1);
    if (f->done != NULL)
        f->done(f->arg, &r);
    flow_free(f);
}

void flow_finish(struct flow *f, int rc, const char *msg)
{
    flow_finish_ex(f, rc, msg, 0);
}

const char *flow_acs_message(const struct flow *f)
{
    return f->acs_msg[0] != '\0' ? f->acs_msg : NULL;
}

static int acs_code_shown(const char *code)
{
    size_t n = 0;

    for (; code[n] != '\0'; n++) {
        char c = code[n];
        if (n >= ACS_CODE_SHOWN_MAX ||
            !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return n > 0;
}

/* A failed ACS call: the caller is told our sentence for the error with ACS's code, which a
 * backend can act on; ACS's own message (free text that may echo what it was sent, or name
 * internals of the resource) goes to the log only. */
static void acs_failure_note(struct flow *f)
{
    const struct acs_result *r = &f->res;
    int shown = acs_code_shown(r->acs_code);

    if (shown)
        snprintf(f->acs_msg, sizeof f->acs_msg, "%s (ACS code %s)", err_message(r->rc),
                 r->acs_code);
    else
        snprintf(f->acs_msg, sizeof f->acs_msg, "%s", err_message(r->rc));
    log_msg(LOGL_INFO, f->call.request_id, "ACS %s failed (%s, HTTP %ld, code %s): %s",
            acs_op_name(r->op), err_name(r->rc), r->http_status, shown ? r->acs_code : "-",
            r->message[0] != '\0' ? r->message : "-");
}

const char *flow_user_of(const struct flow *f)
{
    return f->have_user ? f->user.app_user_id : f->key;
}

static void token_detail(const struct flow *f, char *out, size_t cap)
{
    char scopes[96];
    policy_scopes_format(&f->treq, scopes, sizeof scopes);
    snprintf(out, cap, "scopes=%s minutes=%d", scopes, f->treq.minutes);
}

static void fill_token_request(const struct flow *f, struct acs_request *rq)
{
    rq->nscopes = f->treq.nscopes;
    for (size_t i = 0; i < f->treq.nscopes && i < ACS_MAX_SCOPES; i++)
        rq->scopes[i] = f->treq.scopes[i];
    rq->expires_in_minutes = f->treq.minutes;
}

/* Submits op for the flow's mapping; on a refused submission the flow ends here. */
static void submit_for_mapping(struct flow *f, enum acs_op op)
{
    struct acs_request rq;
    int rc;

    memset(&rq, 0, sizeof rq);
    rq.op = op;
    rq.identity_id = f->user.acs_id;
    if (op == ACS_OP_ISSUE)
        fill_token_request(f, &rq);
    rc = flow_submit(f, &rq);
    if (rc != 0) {
        service_audit(f->s, &f->call, acs_op_name(op), flow_user_of(f), f->user.acs_id, rc, NULL);
        flow_finish(f, rc, NULL);
    }
}

/* Wipes the identity's cached tokens and fences off ACS calls already in flight. */
void flow_cache_invalidate(struct flow *f, const char *acs_id)
{
    if (f->s->cache != NULL && acs_id != NULL && acs_id[0] != '\0')
        (void)tcache_invalidate(f->s->cache, acs_id);
}

/* Ends a failed single-flight: everyone gets the leader's error, except a delete that waited
 * for a create that made nothing: it has nothing to delete. */
static void fail_all(struct flow *leader, struct flow *waiters, int rc, const char *msg)
{
    while (waiters != NULL) {
        struct flow *w = waiters;
        waiters = w->wnext;
        if (w->kind == FK_USER_DELETE)
            flow_delete_none(w);
        else
            flow_finish(w, rc, msg);
    }
    flow_finish(leader, rc, msg);
}

/* ---- tokens, through the cache ---- */

/* Offers the token in f->res to the cache under the epoch read before the ACS call. A refusal
 * (revoked since, too little life left) only means the next request asks ACS again. */
static void cache_store(struct flow *f, const char *acs_id)
{
    struct tcache_key k = {acs_id, f->scopes_key, f->treq.minutes};
    int rc;

    if (f->s->cache == NULL || f->res.token == NULL || f->scopes_key[0] == '\0')
        return;
    rc = tcache_put(f->s->cache, &k, f->epoch, f->res.token, f->res.expires_on,
                    f->res.expires_on_ms, f->issue_start_ms, clock_wall_ms());
    if (rc != 0)
        log_msg(LOGL_DEBUG, f->call.request_id, "token for %s not cached: %s", acs_id,
                rc == TV_ERR_CONFLICT ? "revoked or deleted meanwhile" : err_name(rc));
}

/* Answers f with a cached token (moved into f->res, which flow_free wipes). No audit row: see
 * service/tcache.h. */
static void finish_hit(struct flow *f, struct tcache_hit *h)
{
    acs_result_release(&f->res);
    f->res.op = ACS_OP_ISSUE;
    f->res.token = h->token;
    h->token = NULL;
    service_copy_str(f->res.expires_on, sizeof f->res.expires_on, h->expires_on);
    f->res.expires_on_ms = h->expires_on_ms;
    atomic_fetch_add(&f->s->m_cache_hits, 1);
    flow_finish(f, 0, NULL);
}

/* A waiter of an issue single-flight gets a copy of the leader's outcome. */
static void finish_shared(struct flow *w, const struct flow *leader, int rc, const char *msg)
{
    if (rc != 0 || leader->res.token == NULL) {
        flow_finish(w, rc, msg);
        return;
    }
    acs_result_release(&w->res);
    w->res.op = ACS_OP_ISSUE;
    if ((w->res.token = strdup(leader->res.token)) == NULL) {
        flow_finish(w, TV_ERR_NOMEM, NULL);
        return;
    }
    service_copy_str(w->res.expires_on, sizeof w->res.expires_on, leader->res.expires_on);
    w->res.expires_on_ms = leader->res.expires_on_ms;
    flow_finish(w, 0, NULL);
}

/* The single-flight leader's ACS issue; a refused submission ends it and its waiters. */
static void issue_submit_leader(struct flow *f)
{
    struct acs_request rq;
    int rc;

    memset(&rq, 0, sizeof rq);
    rq.op = ACS_OP_ISSUE;
    rq.identity_id = f->user.acs_id;
    fill_token_request(f, &rq);
    rc = flow_submit(f, &rq);
    if (rc != 0) {
        struct flow *waiters = isf_finish(f->s, f);
        service_audit(f->s, &f->call, "issue", flow_user_of(f), f->user.acs_id, rc, NULL);
        fail_all(f, waiters, rc, NULL);
    }
}

/* A token for the mapping in hand: from the cache, by joining the issue in flight for the same
 * key, or from a new ACS issue. Without the cache: straight to ACS, as before. */
static void token_start(struct flow *f)
{
    struct service *s = f->s;
    struct tcache_hit hit;
    struct tcache_key k;
    enum sf_role role;
    int rc;

    memset(&hit, 0, sizeof hit);
    if (s->cache == NULL || tcache_scopes_key(f->treq.scopes, f->treq.nscopes, f->scopes_key,
                                              sizeof f->scopes_key) != 0) {
        f->scopes_key[0] = '\0';
        submit_for_mapping(f, ACS_OP_ISSUE);
        return;
    }
    k = (struct tcache_key){f->user.acs_id, f->scopes_key, f->treq.minutes};
    if (tcache_get(s->cache, &k, clock_wall_ms(), f->user.revoked_ms, &hit) == 0) {
        finish_hit(f, &hit);
        return;
    }
    /* Both before the ACS call: the start time is what a later revoked_ms is compared with,
     * the epoch what a revoke moves on. */
    f->issue_start_ms = clock_wall_ms();
    f->epoch = tcache_epoch(s->cache, f->user.acs_id);
    if ((rc = isf_join_or_lead(s, f, &role, &hit)) != 0) {
        flow_finish(f, rc, NULL);
        return;
    }
    switch (role) {
    case SF_FOUND:
        finish_hit(f, &hit);
        break;
    case SF_JOINED:
        atomic_fetch_add(&s->m_cache_misses, 1);
        break; /* the leader's issue_done answers this flow */
    case SF_LEAD:
        atomic_fetch_add(&s->m_cache_misses, 1);
        issue_submit_leader(f);
        break;
    }
}

/* ---- with a mapping in hand ---- */

void flow_have_mapping(struct flow *f)
{
    char msg[MSG_MAX];

    if (strcmp(f->user.resource, f->s->resource) != 0) {
        snprintf(msg, sizeof msg, "identity belongs to another ACS resource (%s)",
                 f->user.resource);
        flow_finish(f, TV_ERR_CONFLICT, msg);
        return;
    }
    switch (f->kind) {
    case FK_USER_ENSURE:
        flow_finish(f, 0, NULL);
        break;
    case FK_USER_TOKEN:
    case FK_ID_TOKEN:
        token_start(f);
        break;
    case FK_USER_REVOKE:
    case FK_ID_REVOKE:
        /* Cached tokens stop being served from the moment the revoke is asked for. */
        flow_cache_invalidate(f, f->user.acs_id);
        submit_for_mapping(f, ACS_OP_REVOKE);
        break;
    case FK_USER_DELETE:
    case FK_ID_DELETE:
        flow_delete_begin(f);
        break;
    default:
        flow_finish(f, TV_ERR_INTERNAL, NULL);
        break;
    }
}

/* ---- create (single-flight leader) ---- */

/* An identity ACS created that no mapping will own (we lost the race to another process, or
 * the store failed): queue its deletion so it does not linger. */
static void orphan_delete(struct service *s, const struct flow *f, const char *acs_id)
{
    int rc = store_outbox_add(s->store, acs_id, s->resource, "delete", clock_wall_ms(), NULL);
    if (rc != 0)
        log_msg(LOGL_ERROR, f->call.request_id,
                "ACS identity %s has no mapping and could not be queued for deletion: %s", acs_id,
                err_name(rc));
    else
        service_outbox_kick(s);
}

static void user_create_done(struct flow *f)
{
    struct service *s = f->s;
    struct store_user u;
    struct flow *waiters;
    int rc = f->res.rc;

    if (rc != 0) {
        service_audit(s, &f->call, "create", f->key, "", rc, NULL);
        waiters = sf_finish(s, f->key);
        fail_all(f, waiters, rc, flow_acs_message(f));
        return;
    }
    memset(&u, 0, sizeof u);
    service_copy_str(u.app_user_id, sizeof u.app_user_id, f->key);
    service_copy_str(u.acs_id, sizeof u.acs_id, f->res.identity_id);
    service_copy_str(u.resource, sizeof u.resource, s->resource);
    u.created_ms = clock_wall_ms();
    if (f->res.token != NULL)
        u.last_issued_ms = u.created_ms;
    /* Read before the mapping exists, so no revoke can come between it and the ACS call. */
    if (s->cache != NULL)
        f->epoch = tcache_epoch(s->cache, u.acs_id);
    rc = store_user_insert(s->store, &u);
    if (rc == 0) {
        f->user = u;
        f->have_user = 1;
        f->created = 1;
        atomic_fetch_add(&s->m_created, 1);
        service_audit(s, &f->call, "create", u.app_user_id, u.acs_id, 0, NULL);
    } else {
        /* TV_ERR_CONFLICT: another process created this user's mapping first (the UNIQUE
         * constraint is the backstop of the in-memory single-flight). Use its mapping, and
         * delete the identity we created, with the token that came with it. */
        service_audit(s, &f->call, "create", u.app_user_id, u.acs_id, rc,
                      "identity discarded; queued for deletion");
        orphan_delete(s, f, u.acs_id);
        acs_result_release(&f->res);
        if (rc == TV_ERR_CONFLICT && store_user_get(s->store, f->key, &f->user) == 0) {
            f->have_user = 1;
        } else {
            waiters = sf_finish(s, f->key);
            fail_all(f, waiters, rc == TV_ERR_CONFLICT ? TV_ERR_INTERNAL : rc, NULL);
            return;
        }
    }

    /* The token that came with the create goes into the cache first, so the waiters asking
     * for the same scopes and lifetime are served from it. */
    if (f->kind == FK_USER_TOKEN && f->res.token != NULL)
        cache_store(f, f->user.acs_id);
    /* The mapping is committed: from now on new requests find it in the store. */
    waiters = sf_finish(s, f->key);
    while (waiters != NULL) {
        struct flow *w = waiters;
        waiters = w->wnext;
        w->user = f->user;
        w->have_user = 1;
        flow_have_mapping(w);
    }
    if (f->kind == FK_USER_TOKEN && f->res.token != NULL) {
        char detail[160];
        token_detail(f, detail, sizeof detail);
        atomic_fetch_add(&s->m_issued, 1);
        service_audit(s, &f->call, "issue", f->user.app_user_id, f->user.acs_id, 0, detail);
        flow_finish(f, 0, NULL);
        return;
    }
    flow_have_mapping(f);
}

static void identity_create_done(struct flow *f)
{
    struct service *s = f->s;
    int rc = f->res.rc;

    if (rc != 0) {
        service_audit(s, &f->call, "create", "", "", rc, NULL);
        flow_finish(f, rc, flow_acs_message(f));
        return;
    }
    memset(&f->user, 0, sizeof f->user);
    service_copy_str(f->user.acs_id, sizeof f->user.acs_id, f->res.identity_id);
    service_copy_str(f->user.resource, sizeof f->user.resource, s->resource);
    f->user.created_ms = clock_wall_ms();
    if (f->res.token != NULL)
        f->user.last_issued_ms = f->user.created_ms;
    if (s->cache != NULL)
        f->epoch = tcache_epoch(s->cache, f->user.acs_id);
    rc = store_user_insert(s->store, &f->user);
    service_audit(s, &f->call, "create", "", f->user.acs_id, rc, "standalone");
    if (rc != 0) {
        orphan_delete(s, f, f->user.acs_id);
        flow_finish(f, rc, NULL);
        return;
    }
    f->have_user = 1;
    f->created = 1;
    atomic_fetch_add(&s->m_created, 1);
    if (f->res.token != NULL) {
        char detail[160];
        token_detail(f, detail, sizeof detail);
        atomic_fetch_add(&s->m_issued, 1);
        service_audit(s, &f->call, "issue", "", f->user.acs_id, 0, detail);
        cache_store(f, f->user.acs_id);
    }
    flow_finish(f, 0, NULL);
}

/* ---- the other outcomes ---- */

static void user_start(struct flow *f);

/* ACS answered 404 to f's issue: the identity is gone. Usually a delete removed (or replaced)
 * the mapping after f read it; then the request starts over once, from the store, as if it had
 * arrived after the delete (with auto-create: a new identity; without: 404 not_found). A
 * mapping that still names the identity means it vanished outside tokenvend: 409. */
static void issue_gone(struct flow *f)
{
    struct service *s = f->s;
    struct store_user cur;
    int rc;

    rc = f->kind == FK_ID_TOKEN ? store_user_get_by_acs(s->store, f->key, &cur)
                                : store_user_get(s->store, f->key, &cur);
    if (rc != 0 && rc != TV_ERR_NOT_FOUND) {
        flow_finish(f, rc, NULL);
        return;
    }
    if (rc == 0 && strcmp(cur.acs_id, f->user.acs_id) == 0) {
        flow_finish(
            f, TV_ERR_CONFLICT,
            "ACS no longer knows this identity although its mapping exists (deleted outside "
            "tokenvend?); delete the user or identity to start over");
        return;
    }
    if (f->kind == FK_ID_TOKEN) {
        flow_finish(f, TV_ERR_NOT_FOUND, "no such identity");
        return;
    }
    if (f->kind != FK_USER_TOKEN || f->restarted) {
        flow_finish(f, TV_ERR_CONFLICT,
                    "the identity was deleted while a token was being issued; try again");
        return;
    }
    log_msg(LOGL_INFO, f->call.request_id,
            "identity %s of %s went away during the issue (deleted); starting over", f->user.acs_id,
            f->key);
    f->restarted = 1;
    acs_result_release(&f->res);
    memset(&f->res, 0, sizeof f->res);
    memset(&f->user, 0, sizeof f->user);
    f->have_user = 0;
    f->created = 0;
    f->isf = NULL;
    f->wnext = NULL;
    f->scopes_key[0] = '\0';
    user_start(f);
}

static void issue_done(struct flow *f)
{
    struct service *s = f->s;
    char detail[160];
    int rc = f->res.rc;

    token_detail(f, detail, sizeof detail);
    if (rc == 0) {
        (void)store_user_touch_issued(s->store, f->user.acs_id, clock_wall_ms());
        atomic_fetch_add(&s->m_issued, 1);
    }
    service_audit(s, &f->call, "issue", flow_user_of(f), f->user.acs_id, rc, detail);
    if (f->isf != NULL) {
        /* Stored before the single-flight entry goes, so a request arriving in between finds
         * one or the other. */
        struct flow *waiters;
        if (rc == 0)
            cache_store(f, f->user.acs_id);
        waiters = isf_finish(s, f);
        while (waiters != NULL) {
            struct flow *w = waiters;
            waiters = w->wnext;
            if (rc == TV_ERR_ACS_NOT_FOUND)
                issue_gone(w);
            else
                finish_shared(w, f, rc, rc == 0 ? NULL : flow_acs_message(f));
        }
    }
    if (rc == TV_ERR_ACS_NOT_FOUND) {
        issue_gone(f);
        return;
    }
    flow_finish(f, rc, rc == 0 ? NULL : flow_acs_message(f));
}

static void revoke_done(struct flow *f)
{
    struct service *s = f->s;
    int rc = f->res.rc;

    if (rc == 0) {
        (void)store_user_set_revoked(s->store, f->user.acs_id, clock_wall_ms());
        atomic_fetch_add(&s->m_revoked, 1);
    }
    /* Before answering, whatever ACS said (a failed revoke may still have happened): tokens of
     * issues that were in flight meanwhile are refused by the cache from here on. */
    flow_cache_invalidate(f, f->user.acs_id);
    service_audit(s, &f->call, "revoke", flow_user_of(f), f->user.acs_id, rc, NULL);
    flow_finish(f, rc, rc == 0 ? NULL : flow_acs_message(f));
}

void flow_step(struct flow *f)
{
    f->acs_msg[0] = '\0';
    if (f->res.rc != 0)
        acs_failure_note(f);
    switch (f->res.op) {
    case ACS_OP_CREATE:
        if (f->kind == FK_ID_CREATE)
            identity_create_done(f);
        else
            user_create_done(f);
        break;
    case ACS_OP_ISSUE:
        issue_done(f);
        break;
    case ACS_OP_REVOKE:
        revoke_done(f);
        break;
    case ACS_OP_DELETE:
        flow_delete_done(f);
        break;
    case ACS_OP_TEAMS_EXCHANGE:
        flow_teams_done(f);
        break;
    default:
        flow_finish(f, TV_ERR_INTERNAL, NULL);
        break;
    }
}

/* ---- entry points ---- */

/* Looks the app user up and continues with the mapping, a create, or an error. */
static void user_start(struct flow *f)
{
    struct service *s = f->s;
    struct acs_request rq;
    enum sf_role role;
    int rc;

    rc = store_user_get(s->store, f->key, &f->user);
    if (rc == 0) {
        f->have_user = 1;
        flow_have_mapping(f);
        return;
    }
    if (rc != TV_ERR_NOT_FOUND) {
        flow_finish(f, rc, NULL);
        return;
    }
    if (!f->may_create) {
        flow_finish(f, TV_ERR_NOT_FOUND, "no ACS identity for this user");
        return;
    }
    if ((rc = sf_join_or_lead(s, f, &role)) != 0) {
        flow_finish(f, rc, NULL);
        return;
    }
    if (role == SF_FOUND) {
        flow_have_mapping(f);
        return;
    }
    if (role == SF_JOINED)
        return; /* the leader's create continues this flow */

    memset(&rq, 0, sizeof rq);
    rq.op = ACS_OP_CREATE;
    /* The leader's own token comes in the same upstream call (create identity and token). */
    if (f->kind == FK_USER_TOKEN) {
        fill_token_request(f, &rq);
        f->issue_start_ms = clock_wall_ms();
        if (f->s->cache != NULL && tcache_scopes_key(f->treq.scopes, f->treq.nscopes, f->scopes_key,
                                                     sizeof f->scopes_key) != 0)
            f->scopes_key[0] = '\0';
    }
    rc = flow_submit(f, &rq);
    if (rc != 0) {
        struct flow *waiters = sf_finish(s, f->key);
        service_audit(s, &f->call, "create", f->key, "", rc, NULL);
        fail_all(f, waiters, rc, NULL);
    }
}

struct flow *flow_start(struct service *s, enum flow_kind kind, const struct service_call *c,
                        const char *key, service_done_fn done, void *arg)
{
    struct flow *f = flow_new(s, kind, c, done, arg);
    struct service_result r;

    if (f == NULL || !id_valid(key)) {
        memset(&r, 0, sizeof r);
        r.rc = f == NULL ? TV_ERR_NOMEM : TV_ERR_INVALID;
        r.message = f == NULL ? NULL
                              : "the user or identity id must be 1..256 bytes of UTF-8 without "
                                "control characters";
        r.acs_id = "";
        flow_free(f);
        if (done != NULL)
            done(arg, &r);
        return NULL;
    }
    service_copy_str(f->key, sizeof f->key, key);
    return f;
}

static void set_treq(struct flow *f, const struct policy_token_req *treq)
{
    if (treq != NULL)
        f->treq = *treq;
    else
        policy_token_req_default(&f->s->policy, &f->treq);
    f->want_token = 1;
}

void service_user_token(struct service *s, const struct service_call *c, const char *app_user_id,
                        const struct policy_token_req *treq, int create_if_missing,
                        service_done_fn done, void *arg)
{
    struct flow *f = flow_start(s, FK_USER_TOKEN, c, app_user_id, done, arg);
    if (f == NULL)
        return;
    set_treq(f, treq);
    f->may_create = create_if_missing;
    user_start(f);
}

void service_user_ensure(struct service *s, const struct service_call *c, const char *app_user_id,
                         service_done_fn done, void *arg)
{
    struct flow *f = flow_start(s, FK_USER_ENSURE, c, app_user_id, done, arg);
    if (f == NULL)
        return;
    f->may_create = 1;
    user_start(f);
}

void service_user_revoke(struct service *s, const struct service_call *c, const char *app_user_id,
                         service_done_fn done, void *arg)
{
    struct flow *f = flow_start(s, FK_USER_REVOKE, c, app_user_id, done, arg);
    if (f == NULL)
        return;
    user_start(f);
}

void service_identity_create(struct service *s, const struct service_call *c,
                             const struct policy_token_req *treq, service_done_fn done, void *arg)
{
    struct flow *f = flow_start(s, FK_ID_CREATE, c, "-", done, arg);
    struct acs_request rq;
    int rc;

    if (f == NULL)
        return;
    f->key[0] = '\0';
    memset(&rq, 0, sizeof rq);
    rq.op = ACS_OP_CREATE;
    if (treq != NULL) {
        f->treq = *treq;
        f->want_token = 1;
        fill_token_request(f, &rq);
        f->issue_start_ms = clock_wall_ms();
        if (s->cache != NULL && tcache_scopes_key(f->treq.scopes, f->treq.nscopes, f->scopes_key,
                                                  sizeof f->scopes_key) != 0)
            f->scopes_key[0] = '\0';
    }
    rc = flow_submit(f, &rq);
    if (rc != 0) {
        service_audit(s, &f->call, "create", "", "", rc, "standalone");
        flow_finish(f, rc, NULL);
    }
}

/* By ACS id: the id must be mapped here (that is what binds it to our resource). */
static void identity_start(struct flow *f)
{
    struct service *s = f->s;
    int rc = store_user_get_by_acs(s->store, f->key, &f->user);

    if (rc == TV_ERR_NOT_FOUND && f->kind == FK_ID_DELETE) {
        flow_delete_none(f);
        return;
    }
    if (rc == TV_ERR_NOT_FOUND) {
        flow_finish(f, TV_ERR_NOT_FOUND, "no such identity");
        return;
    }
    if (rc != 0) {
        flow_finish(f, rc, NULL);
        return;
    }
    f->have_user = 1;
    flow_have_mapping(f);
}

void service_identity_token(struct service *s, const struct service_call *c, const char *acs_id,
                            const struct policy_token_req *treq, service_done_fn done, void *arg)
{
    struct flow *f = flow_start(s, FK_ID_TOKEN, c, acs_id, done, arg);
    if (f == NULL)
        return;
    set_treq(f, treq);
    identity_start(f);
}

void service_identity_revoke(struct service *s, const struct service_call *c, const char *acs_id,
                             service_done_fn done, void *arg)
{
    struct flow *f = flow_start(s, FK_ID_REVOKE, c, acs_id, done, arg);
    if (f != NULL)
        identity_start(f);
}

void service_identity_delete(struct service *s, const struct service_call *c, const char *acs_id,
                             service_done_fn done, void *arg)
{
    struct flow *f = flow_start(s, FK_ID_DELETE, c, acs_id, done, arg);
    if (f != NULL)
        identity_start(f);
}
