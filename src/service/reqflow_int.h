/* The request flows by app user or by ACS identity id (reqflow.c): get-or-create, ensure,
 * revoke, a standalone create; token.c (issue through the token cache) and delete.c build on
 * them. A request says what it does with the mapping once found (on_mapping) and, for a
 * delete, with no mapping (on_none), so nothing here knows every kind of request. */
#ifndef TV_SERVICE_REQFLOW_INT_H
#define TV_SERVICE_REQFLOW_INT_H

#include <stddef.h>
#include <stdint.h>

#include "claim_int.h"
#include "flow_int.h"
#include "service/service.h"
#include "sflight_int.h"
#include "tcache_int.h"

struct reqflow;
typedef void (*reqflow_fn)(struct reqflow *f);

/* The fields of a token request (and of a create that brings a token along). */
struct rf_token {
    struct policy_token_req treq;
    int want;                           /* a token is asked for */
    int restarted;                      /* started over once after the identity vanished */
    char scopes_key[TCACHE_SCOPES_MAX]; /* canonical scope set; "" = not cacheable */
    uint64_t epoch;                     /* the identity's cache epoch before asking ACS */
    int64_t issue_start_ms;             /* wall clock when the ACS call was submitted */
    int isf_lead;                       /* leads the issue single-flight of its key */
};

struct reqflow {
    struct flow base;           /* first: steps get &base */
    struct sf_link wait;        /* in a single-flight's waiters */
    char key[STORE_ID_MAX + 1]; /* app user id, or ACS id when by_acs */
    int by_acs;
    struct store_user user;
    int have_user;
    int may_create; /* create the identity when the user has none */
    int created;
    reqflow_fn on_mapping; /* required */
    reqflow_fn on_none;    /* NULL: no mapping is TV_ERR_NOT_FOUND */
    service_done_fn done;
    void *arg;
    struct rf_token tok;
    int64_t outbox_id;  /* delete: its outbox row */
    struct claim claim; /* create leader: the store's create claim, taken before ACS */
    int claimed;        /* holds that claim (released or committed with the mapping) */
};

/* What a kind of request is: how it finds its mapping and what it does with it. */
struct reqflow_kind {
    int by_acs;            /* key is an ACS id (else an app user id) */
    int may_create;        /* create the identity when the user has none */
    reqflow_fn on_mapping; /* required, except for a create (which never looks one up) */
    reqflow_fn on_none;    /* NULL: no mapping is TV_ERR_NOT_FOUND */
};

/* A flow step's reqflow (base is its first member), and a single-flight waiter's. */
static inline struct reqflow *rf_of(struct flow *f)
{
    return (struct reqflow *)(void *)f;
}

static inline struct reqflow *rf_of_link(struct sf_link *l)
{
    return (struct reqflow *)(void *)((char *)l - offsetof(struct reqflow, wait));
}

static inline struct reqflow *rf_of_claim(struct claim *c)
{
    return (struct reqflow *)(void *)((char *)c - offsetof(struct reqflow, claim));
}

/* Allocates the flow of a public entry point of kind k for key (an app user or ACS id,
 * 1..STORE_ID_MAX bytes). NULL when out of memory or key is invalid: then done has already been
 * called. */
struct reqflow *reqflow_start(struct service *s, const struct service_call *c, const char *key,
                              const struct reqflow_kind *k, service_done_fn done, void *arg);
/* Looks f's mapping up (by app user, with get-or-create when f may create; or by ACS id) and
 * continues with on_mapping, on_none or an error. */
void reqflow_go(struct reqflow *f);
/* Reports the outcome to the caller exactly once and frees f. pending: the outbox still owes
 * ACS a delete (202). A token is handed out only when rc is 0 and f's ACS result holds one. */
void reqflow_finish_ex(struct reqflow *f, int rc, const char *msg, int pending);
void reqflow_finish(struct reqflow *f, int rc, const char *msg);
/* The app user f acts for: the mapping's, or f->key before the mapping is known. */
const char *reqflow_user_of(const struct reqflow *f);
/* Wipes acs_id's cached tokens and fences off ACS issues already in flight (cache on only). */
void reqflow_cache_invalidate(struct reqflow *f, const char *acs_id);
/* Removes acs_id's tokens kept in the store (kept cache on only; blocks on the store: call it
 * on a worker). Revoke and delete, before they answer. */
void reqflow_kept_purge(struct reqflow *f, const char *acs_id);
/* Continues f with its mapping in f->user: the resource check, then on_mapping. */
void reqflow_have_mapping(struct reqflow *f);
/* A public entry point: the flow of kind k for key, looked up (reqflow_go), with a token
 * request when want_token (treq NULL = the policy defaults). */
void reqflow_entry(struct service *s, const struct service_call *c, const char *key,
                   const struct reqflow_kind *k, int want_token,
                   const struct policy_token_req *treq, service_done_fn done, void *arg);
/* Submits op (issue, revoke) for f's mapping with its next step; a refused submission is
 * audited and ends f. */
void reqflow_submit(struct reqflow *f, enum acs_op op, flow_step_fn next);
/* Ends a failed single-flight: every waiter gets the leader's error (or its on_none), then the
 * leader. */
void reqflow_fail_all(struct reqflow *leader, struct sf_link *waiters, int rc, const char *msg);
/* The token request of f into rq (scopes, minutes). */
void reqflow_fill_token_request(const struct reqflow *f, struct acs_request *rq);
/* "scopes=... minutes=N" of f's token request, for audit rows. */
void reqflow_token_detail(const struct reqflow *f, char *out, size_t cap);
/* Offers the token in f's ACS result to the cache under the epoch read before the ACS call
 * (cache on, cacheable scopes only). A refusal only means the next request asks ACS again. */
void reqflow_cache_store(struct reqflow *f, const char *acs_id);
/* Continues f after its mapping lookup (f->user filled when rc is 0): the mapping, on_none or
 * TV_ERR_NOT_FOUND for no mapping, or the lookup's error. */
void reqflow_found(struct reqflow *f, int rc);
/* For a delete that found no mapping of app user f->key: joins the create in flight for it
 * (SF_JOINED: the create's outcome continues f) or finds the mapping committed since (SF_FOUND,
 * f->user filled). 0, TV_ERR_NOT_FOUND (neither) or a store error. */
int reqflow_join_create(struct reqflow *f, enum sf_role *role);

#endif
