/* Service lifecycle: worker threads that run flow steps, the guarded path to ACS, the
 * single-flight maps of in-flight creates and (with the token cache) issues, audit rows and
 * metrics. The flows themselves are in flows.c, delete.c and teams.c, the delete outbox in
 * outbox.c. */
#include "service/service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/ident.h"
#include "core/log.h"
#include "service_int.h"
#include "store/audit.h"

#define WORKERS_DEFAULT 2
#define WORKERS_MAX 16
#define DEFER_WORKERS_DEFAULT 2
#define DEFER_MAX_PENDING_DEFAULT 32
#define OUTBOX_LEASE_DEFAULT_MS 60000

/* The one bounded copy (core/buf.h); kept under this name for the service's call sites. */
void service_copy_str(char *dst, size_t cap, const char *src)
{
    (void)buf_copy_str(dst, cap, src);
}

/* Appends src at dst[*len] within cap (truncating, always terminated). */
static void append_str(char *dst, size_t cap, size_t *len, const char *src)
{
    size_t n = strnlen(src, cap - 1 - *len);

    memcpy(dst + *len, src, n);
    *len += n;
    dst[*len] = '\0';
}

void service_call_init(struct service_call *c, const char *request_id, const char *kind,
                       const char *name)
{
    size_t len = 0;

    memset(c, 0, sizeof *c);
    service_copy_str(c->request_id, sizeof c->request_id, request_id);
    /* "kind:name", as snprintf("%s%s%s", kind, ":" when both, name) wrote it. */
    append_str(c->caller, sizeof c->caller, &len, kind != NULL ? kind : "");
    append_str(c->caller, sizeof c->caller, &len, kind != NULL && name != NULL ? ":" : "");
    append_str(c->caller, sizeof c->caller, &len, name != NULL ? name : "");
    /* A long user id may have been cut inside a character; audit rows stay UTF-8. */
    c->caller[ident_utf8_cut(c->caller, len)] = '\0';
}

/* ---- flows ---- */

struct flow *flow_new(struct service *s, enum flow_kind kind, const struct service_call *c,
                      service_done_fn done, void *arg)
{
    struct flow *f = calloc(1, sizeof *f);
    if (f == NULL)
        return NULL;
    f->s = s;
    f->kind = kind;
    if (c != NULL)
        f->call = *c;
    f->done = done;
    f->arg = arg;
    return f;
}

void flow_free(struct flow *f)
{
    if (f == NULL)
        return;
    acs_result_release(&f->res);
    if (f->teams_token != NULL) {
        OPENSSL_cleanse(f->teams_token, strlen(f->teams_token));
        free(f->teams_token);
    }
    free(f);
}

/* ---- worker queues ---- */

static void wq_push(struct wq *q, struct flow *f)
{
    pthread_mutex_lock(&q->lock);
    f->qnext = NULL;
    if (q->tail != NULL)
        q->tail->qnext = f;
    else
        q->head = f;
    q->tail = f;
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

void service_queue_push(struct service *s, struct flow *f)
{
    wq_push(f->kind == FK_DEFER ? &s->slow : &s->fast, f);
}

static void run_one(struct flow *f)
{
    if (f->kind == FK_DEFER) {
        struct wq *q = &f->s->slow;
        f->defer_fn(f->arg);
        flow_free(f);
        pthread_mutex_lock(&q->lock);
        q->pending--;
        pthread_mutex_unlock(&q->lock);
    } else if (f->kind == FK_OUTBOX) {
        outbox_step(f);
    } else {
        flow_step(f);
    }
}

static void *worker_main(void *arg)
{
    struct wq *q = arg;

    for (;;) {
        struct flow *f;
        pthread_mutex_lock(&q->lock);
        while (q->head == NULL && !q->stop)
            pthread_cond_wait(&q->cond, &q->lock);
        f = q->head;
        if (f == NULL) {
            /* Stopping and drained: every queued step has run. */
            pthread_mutex_unlock(&q->lock);
            break;
        }
        q->head = f->qnext;
        if (q->head == NULL)
            q->tail = NULL;
        pthread_mutex_unlock(&q->lock);
        run_one(f);
    }
    return NULL;
}

static void wq_init(struct wq *q, unsigned n)
{
    memset(q, 0, sizeof *q);
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->cond, NULL);
    q->n = n;
}

static int wq_start(struct wq *q)
{
    if ((q->threads = calloc(q->n, sizeof *q->threads)) == NULL)
        return TV_ERR_NOMEM;
    for (unsigned i = 0; i < q->n; i++) {
        if (pthread_create(&q->threads[i], NULL, worker_main, q) != 0) {
            log_msg(LOGL_ERROR, NULL, "service: cannot start worker thread %u", i);
            return TV_ERR_INTERNAL;
        }
        pthread_mutex_lock(&q->lock);
        q->started++;
        pthread_mutex_unlock(&q->lock);
    }
    return 0;
}

/* Runs what is queued, joins the threads and frees them. */
static void wq_release(struct wq *q)
{
    pthread_mutex_lock(&q->lock);
    q->stop = 1;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
    for (unsigned i = 0; i < q->started; i++)
        pthread_join(q->threads[i], NULL);
    /* Without threads (never started) queued flows still deserve their answer. */
    while (q->head != NULL) {
        struct flow *f = q->head;
        q->head = f->qnext;
        run_one(f);
    }
    q->tail = NULL;
    free(q->threads);
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->lock);
}

int service_defer(struct service *s, void (*fn)(void *arg), void *arg)
{
    struct wq *q = &s->slow;
    struct flow *f;
    int rc = 0;

    if ((f = flow_new(s, FK_DEFER, NULL, NULL, arg)) == NULL)
        return TV_ERR_NOMEM;
    f->defer_fn = fn;
    /* Counted under the queue's lock, so concurrent callers cannot overshoot the cap; the count
     * drops when a job has run (run_one). */
    pthread_mutex_lock(&q->lock);
    if (q->stop || q->started == 0)
        rc = TV_ERR_SHUTDOWN;
    else if (q->max_pending > 0 && q->pending >= q->max_pending)
        rc = TV_ERR_UNAVAILABLE;
    else
        q->pending++;
    pthread_mutex_unlock(&q->lock);
    if (rc != 0) {
        flow_free(f);
        return rc;
    }
    service_queue_push(s, f);
    return 0;
}

/* ---- the path to ACS ---- */

/* ACS engine thread: keep the result (the struct lives on the engine's stack) and hand the
 * flow to a worker; nothing here blocks. */
static void on_acs_done(void *arg, struct acs_result *res)
{
    struct flow *f = arg;

    acs_result_release(&f->res);
    f->res = *res; /* the copy owns the token now */
    service_queue_push(f->s, f);
}

int flow_submit(struct flow *f, struct acs_request *req)
{
    struct service *s = f->s;
    int rc;

    /* The client accepts ids below ACS_REQUEST_ID_MAX; a longer (64-char) incoming id gets a
     * fresh UUID upstream rather than failing the call. */
    req->request_id = NULL;
    if (f->call.request_id[0] != '\0' && strlen(f->call.request_id) < ACS_REQUEST_ID_MAX)
        req->request_id = f->call.request_id;
    pthread_rwlock_rdlock(&s->submit_lock);
    rc = s->stopping ? TV_ERR_SHUTDOWN : s->submit(s->submit_ctx, req, on_acs_done, f);
    pthread_rwlock_unlock(&s->submit_lock);
    if (rc != 0)
        log_msg(LOGL_WARN, f->call.request_id, "ACS %s not submitted: %s", acs_op_name(req->op),
                err_name(rc));
    return rc;
}

/* ---- single-flight ---- */

static unsigned sf_hash(const char *k)
{
    unsigned h = 2166136261u;
    for (; *k; k++)
        h = (h ^ (unsigned char)*k) * 16777619u;
    return h % SF_BUCKETS;
}

/* The two single-flight entries for creates: joins the create in flight for f->key, or finds
 * the mapping, or (lead) registers f as the leader of a new create. */
static int sf_join(struct service *s, struct flow *f, enum sf_role *role, int lead)
{
    unsigned b = sf_hash(f->key);
    struct sf_entry *e;
    int rc = 0;

    pthread_mutex_lock(&s->sf_lock);
    for (e = s->sf[b]; e != NULL; e = e->next) {
        if (strcmp(e->user_id, f->key) == 0)
            break;
    }
    if (e != NULL) {
        f->wnext = e->waiters;
        e->waiters = f;
        *role = SF_JOINED;
        atomic_fetch_add(&s->m_sf_joined, 1);
        goto unlock;
    }
    /* A create may have finished between the caller's read and this lock: its entry is removed
     * only after the mapping is committed, so this read sees it. */
    rc = store_user_get(s->store, f->key, &f->user);
    if (rc == 0) {
        f->have_user = 1;
        *role = SF_FOUND;
        goto unlock;
    }
    if (rc != TV_ERR_NOT_FOUND || !lead)
        goto unlock;
    if ((e = calloc(1, sizeof *e)) == NULL) {
        rc = TV_ERR_NOMEM;
        goto unlock;
    }
    service_copy_str(e->user_id, sizeof e->user_id, f->key);
    e->next = s->sf[b];
    s->sf[b] = e;
    *role = SF_LEAD;
    rc = 0;
unlock:
    pthread_mutex_unlock(&s->sf_lock);
    return rc;
}

int sf_join_or_lead(struct service *s, struct flow *f, enum sf_role *role)
{
    return sf_join(s, f, role, 1);
}

int sf_join_if_inflight(struct service *s, struct flow *f, enum sf_role *role)
{
    return sf_join(s, f, role, 0);
}

struct flow *sf_finish(struct service *s, const char *user_id)
{
    unsigned b = sf_hash(user_id);
    struct flow *w = NULL;

    pthread_mutex_lock(&s->sf_lock);
    for (struct sf_entry **pp = &s->sf[b]; *pp != NULL; pp = &(*pp)->next) {
        if (strcmp((*pp)->user_id, user_id) == 0) {
            struct sf_entry *e = *pp;
            *pp = e->next;
            /* Joined by prepending: reverse, so they continue in arrival order (a delete that
             * came before a token request acts before it). */
            for (struct flow *n = e->waiters; n != NULL;) {
                struct flow *next = n->wnext;
                n->wnext = w;
                w = n;
                n = next;
            }
            free(e);
            break;
        }
    }
    pthread_mutex_unlock(&s->sf_lock);
    return w;
}

/* ---- issue single-flight ---- */

static unsigned isf_hash(const char *acs_id, const char *scopes, int minutes)
{
    return (sf_hash(acs_id) * 31u + sf_hash(scopes) * 7u + (unsigned)minutes) % SF_BUCKETS;
}

static int isf_match(const struct isf_entry *e, const struct flow *f)
{
    return e->epoch == f->epoch && e->minutes == f->treq.minutes &&
           strcmp(e->acs_id, f->user.acs_id) == 0 && strcmp(e->scopes, f->scopes_key) == 0;
}

int isf_join_or_lead(struct service *s, struct flow *f, enum sf_role *role, struct tcache_hit *hit)
{
    unsigned b = isf_hash(f->user.acs_id, f->scopes_key, f->treq.minutes);
    struct tcache_key k = {f->user.acs_id, f->scopes_key, f->treq.minutes};
    struct isf_entry *e;
    int rc = 0;

    pthread_mutex_lock(&s->isf_lock);
    for (e = s->isf[b]; e != NULL; e = e->next) {
        if (isf_match(e, f))
            break;
    }
    if (e != NULL) {
        f->wnext = e->waiters;
        e->waiters = f;
        *role = SF_JOINED;
        atomic_fetch_add(&s->m_isf_joined, 1);
        goto unlock;
    }
    /* The leader stores its token before it removes its entry: this lookup sees it. */
    rc = tcache_get(s->cache, &k, clock_wall_ms(), f->user.revoked_ms, hit);
    if (rc == 0) {
        *role = SF_FOUND;
        goto unlock;
    }
    if (rc != TV_ERR_NOT_FOUND)
        goto unlock;
    if ((e = calloc(1, sizeof *e)) == NULL) {
        rc = TV_ERR_NOMEM;
        goto unlock;
    }
    service_copy_str(e->acs_id, sizeof e->acs_id, f->user.acs_id);
    service_copy_str(e->scopes, sizeof e->scopes, f->scopes_key);
    e->minutes = f->treq.minutes;
    e->epoch = f->epoch;
    e->next = s->isf[b];
    s->isf[b] = e;
    f->isf = e;
    *role = SF_LEAD;
    rc = 0;
unlock:
    pthread_mutex_unlock(&s->isf_lock);
    return rc;
}

struct flow *isf_finish(struct service *s, struct flow *f)
{
    struct isf_entry *e = f->isf;
    struct flow *w = NULL;

    if (e == NULL)
        return NULL;
    pthread_mutex_lock(&s->isf_lock);
    for (struct isf_entry **pp = &s->isf[isf_hash(e->acs_id, e->scopes, e->minutes)]; *pp != NULL;
         pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            w = e->waiters;
            free(e);
            break;
        }
    }
    pthread_mutex_unlock(&s->isf_lock);
    f->isf = NULL;
    return w;
}

/* ---- lifecycle ---- */

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
    wq_init(&s->fast, o->workers == 0            ? WORKERS_DEFAULT
                      : o->workers > WORKERS_MAX ? WORKERS_MAX
                                                 : o->workers);
    /* Two threads: a login (Argon2, ~100 ms and 64 MiB each) need not wait for another on a
     * 2-core machine; the cap bounds how long a job can wait in the queue. */
    wq_init(&s->slow, o->defer_workers == 0            ? DEFER_WORKERS_DEFAULT
                      : o->defer_workers > WORKERS_MAX ? WORKERS_MAX
                                                       : o->defer_workers);
    s->slow.max_pending =
        o->defer_max_pending > 0 ? o->defer_max_pending : DEFER_MAX_PENDING_DEFAULT;
    s->ob_interval_ms = o->outbox_interval_ms == 0 ? 2000 : o->outbox_interval_ms;
    s->ob_base_ms = o->outbox_backoff_base_ms > 0 ? o->outbox_backoff_base_ms : 1000;
    s->ob_max_ms = o->outbox_backoff_max_ms > 0 ? o->outbox_backoff_max_ms : 60000;
    if (s->ob_base_ms > s->ob_max_ms)
        s->ob_base_ms = s->ob_max_ms;
    s->ob_lease_ms = o->outbox_lease_ms > 0 ? o->outbox_lease_ms : OUTBOX_LEASE_DEFAULT_MS;
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
    }
    pthread_rwlock_init(&s->submit_lock, NULL);
    pthread_mutex_init(&s->sf_lock, NULL);
    pthread_mutex_init(&s->isf_lock, NULL);
    pthread_mutex_init(&s->ob_lock, NULL);
    pthread_cond_init(&s->ob_cond, NULL);
    *out = s;
    return 0;
}

int service_start(struct service *s)
{
    int rc;

    if ((rc = wq_start(&s->fast)) != 0 || (rc = wq_start(&s->slow)) != 0)
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
}

void service_free(struct service *s)
{
    if (s == NULL)
        return;
    service_stop(s);
    wq_release(&s->slow);
    wq_release(&s->fast);
    for (size_t b = 0; b < SF_BUCKETS; b++) {
        while (s->sf[b] != NULL) {
            struct sf_entry *e = s->sf[b];
            s->sf[b] = e->next;
            free(e);
        }
    }
    for (size_t b = 0; b < SF_BUCKETS; b++) {
        while (s->isf[b] != NULL) {
            struct isf_entry *e = s->isf[b];
            s->isf[b] = e->next;
            free(e);
        }
    }
    tcache_free(s->cache);
    pthread_cond_destroy(&s->ob_cond);
    pthread_mutex_destroy(&s->ob_lock);
    pthread_mutex_destroy(&s->isf_lock);
    pthread_mutex_destroy(&s->sf_lock);
    pthread_rwlock_destroy(&s->submit_lock);
    free(s);
}

/* ---- audit, reads, readiness, metrics ---- */

void service_audit(struct service *s, const struct service_call *c, const char *action,
                   const char *app_user_id, const char *acs_id, int rc, const char *detail)
{
    struct store_audit a;
    int arc;

    memset(&a, 0, sizeof a);
    a.ts_ms = clock_wall_ms();
    if (c != NULL) {
        service_copy_str(a.request_id, sizeof a.request_id, c->request_id);
        service_copy_str(a.caller, sizeof a.caller, c->caller);
    }
    service_copy_str(a.action, sizeof a.action, action);
    service_copy_str(a.app_user_id, sizeof a.app_user_id, app_user_id);
    service_copy_str(a.acs_id, sizeof a.acs_id, acs_id);
    service_copy_str(a.outcome, sizeof a.outcome, rc == 0 ? "ok" : err_name(rc));
    service_copy_str(a.detail, sizeof a.detail, detail);
    if ((arc = store_audit_add(s->store, &a)) != 0)
        log_msg(LOGL_ERROR, a.request_id, "audit row for %s not written: %s", a.action,
                err_name(arc));
}

int service_user_get(struct service *s, const char *app_user_id, struct store_user *out, char *msg,
                     size_t msglen)
{
    struct store_user u;
    int rc;

    if (ident_check_str(app_user_id, STORE_ID_MAX) != IDENT_OK)
        return TV_ERR_INVALID;
    if ((rc = store_user_get(s->store, app_user_id, &u)) != 0)
        return rc;
    if (strcmp(u.resource, s->resource) != 0) {
        if (msg != NULL && msglen > 0)
            snprintf(msg, msglen, "identity belongs to another ACS resource (%s)", u.resource);
        return TV_ERR_CONFLICT;
    }
    *out = u;
    return 0;
}

/* A store_user_keep_fn: rows whose app user id passes the id rule; counts the others. */
static int keep_valid_id(const struct store_user *u, void *ctx)
{
    int *skipped = ctx;

    if (ident_check_str(u->app_user_id, STORE_ID_MAX) == IDENT_OK)
        return 1;
    (*skipped)++;
    return 0;
}

int service_user_list(struct service *s, const char *after, int limit, struct store_user *out,
                      int *n, int *skipped)
{
    int passed = 0;
    int rc = store_user_list_kept(s->store, after, limit, keep_valid_id, &passed, out, n);

    if (skipped != NULL)
        *skipped = passed;
    return rc;
}

int service_ready(struct service *s)
{
    int stopping;

    pthread_rwlock_rdlock(&s->submit_lock);
    stopping = s->stopping;
    pthread_rwlock_unlock(&s->submit_lock);
    if (stopping)
        return TV_ERR_SHUTDOWN;
    return store_ping_write(s->store);
}

void service_outbox_kick(struct service *s)
{
    pthread_mutex_lock(&s->ob_lock);
    s->ob_kick = 1;
    pthread_cond_signal(&s->ob_cond);
    pthread_mutex_unlock(&s->ob_lock);
}

const struct policy *service_policy(const struct service *s)
{
    return &s->policy;
}

int service_metrics_write(struct service *s, struct buf *out)
{
    struct tcache_stats cs;
    int64_t pending = 0, mappings = 0;
    int rc;

    memset(&cs, 0, sizeof cs);
    if (s->cache != NULL)
        tcache_stats_get(s->cache, &cs);
    (void)store_outbox_count(s->store, &pending);
    (void)store_user_count(s->store, &mappings);
    rc = buf_printf(
        out,
        "# HELP tokenvend_identities_created_total ACS identities created.\n"
        "# TYPE tokenvend_identities_created_total counter\n"
        "tokenvend_identities_created_total %llu\n"
        "# HELP tokenvend_identities_deleted_total ACS identities deleted (confirmed by ACS).\n"
        "# TYPE tokenvend_identities_deleted_total counter\n"
        "tokenvend_identities_deleted_total %llu\n"
        "# HELP tokenvend_tokens_issued_total ACS tokens handed out.\n"
        "# TYPE tokenvend_tokens_issued_total counter\n"
        "tokenvend_tokens_issued_total %llu\n"
        "# HELP tokenvend_tokens_revoked_total Revocations of all of an identity's tokens.\n"
        "# TYPE tokenvend_tokens_revoked_total counter\n"
        "tokenvend_tokens_revoked_total %llu\n"
        "# HELP tokenvend_teams_exchanges_total Teams tokens exchanged.\n"
        "# TYPE tokenvend_teams_exchanges_total counter\n"
        "tokenvend_teams_exchanges_total %llu\n"
        "# HELP tokenvend_singleflight_joined_total Requests that waited for another's create.\n"
        "# TYPE tokenvend_singleflight_joined_total counter\n"
        "tokenvend_singleflight_joined_total %llu\n"
        "# HELP tokenvend_outbox_done_total Outbox rows finished.\n"
        "# TYPE tokenvend_outbox_done_total counter\n"
        "tokenvend_outbox_done_total %llu\n"
        "# HELP tokenvend_outbox_retries_total Outbox attempts that failed and were rescheduled.\n"
        "# TYPE tokenvend_outbox_retries_total counter\n"
        "tokenvend_outbox_retries_total %llu\n"
        "# HELP tokenvend_outbox_passes_total Times the outbox worker looked for due rows.\n"
        "# TYPE tokenvend_outbox_passes_total counter\n"
        "tokenvend_outbox_passes_total %llu\n"
        "# HELP tokenvend_outbox_pending Outbox rows waiting.\n"
        "# TYPE tokenvend_outbox_pending gauge\n"
        "tokenvend_outbox_pending %lld\n"
        "# HELP tokenvend_mappings Identity mappings in the store.\n"
        "# TYPE tokenvend_mappings gauge\n"
        "tokenvend_mappings %lld\n"
        "# HELP tokenvend_cache_hits_total Tokens served from the token cache.\n"
        "# TYPE tokenvend_cache_hits_total counter\n"
        "tokenvend_cache_hits_total %llu\n"
        "# HELP tokenvend_cache_misses_total Token requests the cache could not serve.\n"
        "# TYPE tokenvend_cache_misses_total counter\n"
        "tokenvend_cache_misses_total %llu\n"
        "# HELP tokenvend_cache_evictions_total Cached tokens dropped for room.\n"
        "# TYPE tokenvend_cache_evictions_total counter\n"
        "tokenvend_cache_evictions_total %llu\n"
        "# HELP tokenvend_cache_invalidated_total Cached tokens wiped by a revoke or delete.\n"
        "# TYPE tokenvend_cache_invalidated_total counter\n"
        "tokenvend_cache_invalidated_total %llu\n"
        "# HELP tokenvend_cache_entries Tokens held by the token cache.\n"
        "# TYPE tokenvend_cache_entries gauge\n"
        "tokenvend_cache_entries %llu\n"
        "# HELP tokenvend_issue_singleflight_joined_total Requests that waited for another's "
        "issue.\n"
        "# TYPE tokenvend_issue_singleflight_joined_total counter\n"
        "tokenvend_issue_singleflight_joined_total %llu\n",
        (unsigned long long)atomic_load(&s->m_created),
        (unsigned long long)atomic_load(&s->m_deleted),
        (unsigned long long)atomic_load(&s->m_issued),
        (unsigned long long)atomic_load(&s->m_revoked),
        (unsigned long long)atomic_load(&s->m_exchanged),
        (unsigned long long)atomic_load(&s->m_sf_joined),
        (unsigned long long)atomic_load(&s->m_outbox_done),
        (unsigned long long)atomic_load(&s->m_outbox_retry),
        (unsigned long long)atomic_load(&s->m_outbox_passes), (long long)pending,
        (long long)mappings, (unsigned long long)atomic_load(&s->m_cache_hits),
        (unsigned long long)atomic_load(&s->m_cache_misses), (unsigned long long)cs.evictions,
        (unsigned long long)cs.invalidated, (unsigned long long)cs.entries,
        (unsigned long long)atomic_load(&s->m_isf_joined));
    return rc;
}
