/* Flows (flow_int.h): the guarded path to ACS and the hand-over of each outcome to a worker. */
#include "flow_int.h"

#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "service_int.h"

/* ACS error codes are short words ("IdentityNotFound"); anything else is not passed on. */
#define ACS_CODE_SHOWN_MAX 64

void flow_init(struct flow *f, struct service *s, const struct service_call *c)
{
    f->s = s;
    if (c != NULL)
        f->call = *c;
}

void flow_release(struct flow *f)
{
    acs_result_release(&f->res);
}

const char *flow_acs_message(const struct flow *f)
{
    return f->acs_msg[0] != '\0' ? f->acs_msg : NULL;
}

long flow_retry_after(const struct flow *f, int rc)
{
    int st = rc != 0 ? err_http_status(rc) : 0;

    return st == 503 || st == 429 ? f->retry_after_s : 0;
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

    /* Keyless mode without an Entra token: the call never left (no HTTP status); the cause is
     * the identity endpoint, not ACS. The reason itself (which may name the endpoint) is logged
     * below, not told. */
    if (r->rc == TV_ERR_UNAVAILABLE && (r->paused || r->budget_refused == ACS_BUDGET_REFUSED_STORE))
        /* The circuit breaker's sentence, and the budget's when its store fails, are ours (no
         * ACS text in them): told as is. */
        (void)buf_copy_str(f->acs_msg, sizeof f->acs_msg, r->message);
    else if (r->rc == TV_ERR_UNAVAILABLE && r->budget_refused)
        (void)buf_copy_str(f->acs_msg, sizeof f->acs_msg,
                           "the ACS call budget is spent: more calls now would make ACS throttle "
                           "this service; retry after the time in Retry-After");
    else if (r->rc == TV_ERR_UNAVAILABLE && r->http_status == 0 && r->retry_after_s > 0)
        (void)buf_copy_str(f->acs_msg, sizeof f->acs_msg,
                           "cannot reach ACS: no Microsoft Entra ID token, the identity "
                           "endpoint is failing or has not answered yet; retry later");
    else if (r->op == ACS_OP_CREATE && r->outcome_unknown)
        /* The request reached ACS and nothing says what ACS did (README "Upstream black hole"):
         * the caller learns that, and what a repeat does. */
        snprintf(f->acs_msg, sizeof f->acs_msg,
                 "%s%s%s%s: the create request was sent, so the ACS identity may have been "
                 "created; %s",
                 err_message(r->rc), shown ? " (ACS code " : "", shown ? r->acs_code : "",
                 shown ? ")" : "",
                 r->custom_id[0] != '\0'
                     ? "repeating the request is safe: ACS answers it with the same identity"
                     : "repeating the request is safe: it creates the identity anew, and one "
                       "this request may have made stays unused");
    else if (shown)
        snprintf(f->acs_msg, sizeof f->acs_msg, "%s (ACS code %s)", err_message(r->rc),
                 r->acs_code);
    else
        (void)buf_copy_str(f->acs_msg, sizeof f->acs_msg, err_message(r->rc));
    log_msg(LOGL_INFO, f->call.request_id, "ACS %s failed (%s, HTTP %ld, code %s): %s",
            acs_op_name(r->op), err_name(r->rc), r->http_status, shown ? r->acs_code : "-",
            r->message[0] != '\0' ? r->message : "-");
}

/* Worker thread: the step f asked for, with the outcome in hand. */
static void flow_run(struct jobq_item *it)
{
    struct flow *f = (struct flow *)(void *)it; /* job is f's first member */

    f->acs_msg[0] = '\0';
    f->retry_after_s = f->res.rc != 0 ? f->res.retry_after_s : 0;
    if (f->res.rc != 0)
        acs_failure_note(f);
    f->next(f);
}

/* ACS engine thread: keep the result (the struct lives on the engine's stack) and hand the
 * flow to a worker; nothing here blocks. */
static void on_acs_done(void *arg, struct acs_result *res)
{
    struct flow *f = arg;

    acs_result_release(&f->res);
    f->res = *res; /* the copy owns the token now */
    f->job.run = flow_run;
    jobq_push(&f->s->fast, &f->job);
}

int flow_submit(struct flow *f, struct acs_request *req, flow_step_fn next)
{
    struct service *s = f->s;
    int rc;

    /* The client accepts ids below ACS_REQUEST_ID_MAX; a longer (64-char) incoming id gets a
     * fresh UUID upstream rather than failing the call. */
    req->request_id = NULL;
    req->caller = f->call.caller;
    if (f->call.request_id[0] != '\0' && strlen(f->call.request_id) < ACS_REQUEST_ID_MAX)
        req->request_id = f->call.request_id;
    f->next = next;
    pthread_rwlock_rdlock(&s->submit_lock);
    rc = s->stopping ? TV_ERR_SHUTDOWN : s->submit(s->submit_ctx, req, on_acs_done, f);
    pthread_rwlock_unlock(&s->submit_lock);
    if (rc != 0)
        log_msg(LOGL_WARN, f->call.request_id, "ACS %s not submitted: %s", acs_op_name(req->op),
                err_name(rc));
    return rc;
}
