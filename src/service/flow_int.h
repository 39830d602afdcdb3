/* A flow: one request's small state machine, one ACS call at a time. flow_submit hands ACS the
 * call together with the step that takes its outcome; the ACS callback copies the result into
 * the flow and queues that step on a service worker (store writes never run on the ACS engine
 * thread, whose callbacks must not block). Each kind of flow embeds a struct flow as its first
 * member and keeps its own fields in its own struct (reqflow.c, teams.c, outbox.c). */
#ifndef TV_SERVICE_FLOW_INT_H
#define TV_SERVICE_FLOW_INT_H

#include "acs/client.h"
#include "jobq_int.h"
#include "service/service.h"

#define FLOW_ACS_MSG_MAX 320

struct flow;
/* A step: runs on a service worker with the ACS outcome in f->res; owns f from then on. */
typedef void (*flow_step_fn)(struct flow *f);

struct flow {
    struct jobq_item job; /* queued on the service's workers when ACS answered */
    struct service *s;
    struct service_call call;
    struct acs_result res; /* the last ACS outcome (owns its token) */
    /* The caller's sentence for a failed res ("" otherwise): see flow_acs_message. */
    char acs_msg[FLOW_ACS_MSG_MAX];
    /* The retry hint of the failed outcome the flow ends with (service_result.retry_after_s):
     * from its own ACS call, or the one it waited on (a single-flight leader's); 0 for none. */
    long retry_after_s;
    flow_step_fn next;
};

/* Prepares f (zeroed by the caller's allocation) for service s; c may be NULL. */
void flow_init(struct flow *f, struct service *s, const struct service_call *c);
/* Releases what f holds (its ACS result, wiped); not f itself. */
void flow_release(struct flow *f);
/* Submits req for f (request id from f->call); when ACS answers, next(f) runs on a worker.
 * 0, or an error (then next never runs and f is still the caller's). */
int flow_submit(struct flow *f, struct acs_request *req, flow_step_fn next);
/* The caller's sentence for f's failed ACS call: tokenvend's words for the error and ACS's error
 * code, never ACS's own message (logged when the outcome arrived); NULL when the call did not
 * fail. */
const char *flow_acs_message(const struct flow *f);
/* f's retry hint for an outcome rc: f->retry_after_s when rc is an error answered 503 or 429
 * (so a later, different failure does not carry a stale hint), else 0. */
long flow_retry_after(const struct flow *f, int rc);

#endif
