/* The basics every file of the service uses (service_int.h): string copies, the caller of a
 * call, audit rows; the synchronous reads and readiness; plain blocking jobs (service_defer). */
#include "service/service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/ident.h"
#include "core/log.h"
#include "service_int.h"
#include "store/audit.h"

/* The one bounded copy (core/buf.h); kept under this name for the service's call sites. */
void service_copy_str(char *dst, size_t cap, const char *src)
{
    (void)buf_copy_str(dst, cap, src);
}

void service_audit_text(char *dst, size_t cap, const char *src)
{
    (void)ident_sanitize(src, dst, cap);
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

/* ---- audit, reads, readiness ---- */

void service_audit(struct service *s, const struct service_call *c, const char *action,
                   const char *app_user_id, const char *acs_id, int rc, const char *detail)
{
    struct store_audit a;
    int arc;

    memset(&a, 0, sizeof a);
    a.ts_ms = clock_wall_ms();
    if (c != NULL) {
        service_audit_text(a.request_id, sizeof a.request_id, c->request_id);
        service_audit_text(a.caller, sizeof a.caller, c->caller);
    }
    service_audit_text(a.action, sizeof a.action, action);
    service_audit_text(a.app_user_id, sizeof a.app_user_id, app_user_id);
    service_audit_text(a.acs_id, sizeof a.acs_id, acs_id);
    service_audit_text(a.outcome, sizeof a.outcome, rc == 0 ? "ok" : err_name(rc));
    service_audit_text(a.detail, sizeof a.detail, detail);
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

const struct policy *service_policy(const struct service *s)
{
    return &s->policy;
}

/* ---- plain blocking jobs ---- */

struct defer_job {
    struct jobq_item it; /* first: the queue hands back &it */
    void (*fn)(void *arg);
    void *arg;
};

static void defer_run(struct jobq_item *it)
{
    struct defer_job *j = (struct defer_job *)(void *)it;

    j->fn(j->arg);
    free(j);
}

int service_defer(struct service *s, void (*fn)(void *arg), void *arg)
{
    struct defer_job *j = calloc(1, sizeof *j);
    int rc;

    if (j == NULL)
        return TV_ERR_NOMEM;
    j->it.run = defer_run;
    j->fn = fn;
    j->arg = arg;
    if ((rc = jobq_submit(&s->slow, &j->it)) != 0)
        free(j);
    return rc;
}
