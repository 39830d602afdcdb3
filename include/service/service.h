/* The domain of tokenvend serve: get-or-create an app user's ACS identity (single-flight), issue
 * tokens under the policy, revoke, delete through the outbox, standalone identities and the
 * Teams exchange, with an audit row for each. Calls that need ACS are asynchronous: they return
 * at once and report through a done callback exactly once, from any thread (often a service
 * worker thread). The service never touches HTTP. Thread-safe. */
#ifndef TV_SERVICE_SERVICE_H
#define TV_SERVICE_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include "acs/client.h"
#include "service/policy.h"
#include "store/store.h"
#include "store/users.h"

struct service;

/* How the service reaches ACS: acs_client_submit's contract (done fires exactly once on some
 * other thread unless this returns non-zero). Tests pass a fake. */
typedef int (*service_submit_fn)(void *ctx, const struct acs_request *req, acs_done_fn done,
                                 void *arg);

struct service_opts {
    struct store *store;      /* required; borrowed, must outlive the service */
    service_submit_fn submit; /* required */
    void *submit_ctx;
    const char *resource; /* required: "host[:port]" of the ACS resource (copied) */
    struct policy policy;
    unsigned workers;            /* completion threads; 0 = 2 */
    long outbox_interval_ms;     /* outbox poll period; 0 = 2000; < 0 = no outbox thread */
    long outbox_backoff_base_ms; /* first retry delay of an outbox row; 0 = 1000 */
    long outbox_backoff_max_ms;  /* cap on a row's retry delay; 0 = 60000 */
    /* How long a delete's outbox row stays not-due while the request's own ACS delete is in
     * flight (and how long the outbox worker claims a row it takes): at least the ACS client's
     * deadline, so the worker only takes rows whose attempt never reported (crash, restart).
     * 0 = 60000 (the default 30 s ACS deadline plus margin). */
    long outbox_lease_ms;
    /* The ACS client's deadline for one call (retries included); 0 = 30000. A create for an app
     * user is claimed in the store for this long plus a margin, so a process that died holding
     * the claim blocks that user no longer; a request waiting for another process's create
     * waits at most as long before it answers TV_ERR_UNAVAILABLE with a retry hint. */
    long acs_deadline_ms;
    /* service_defer: threads for the blocking jobs (0 = 2) and the most jobs queued or running
     * at once (0 = 32); beyond that service_defer refuses with TV_ERR_UNAVAILABLE. */
    unsigned defer_workers;
    unsigned defer_max_pending;
    /* Token cache (see src/service/tcache_int.h). Off unless `cache` is set, so a zeroed
     * struct behaves as before the cache existed. With it on, concurrent requests for one
     * identity, scope set and lifetime also share one upstream issue. */
    int cache;
    long cache_min_remaining_minutes; /* 0 = 30; at least 11 */
    long cache_max_entries;           /* 0 = 20000 */
    /* The token cache kept in the store (src/service/tkeep_int.h): with the cache on and this
     * set (AEAD_KEY_LEN bytes, copied; the caller wipes its own), tokens are also written to the
     * store sealed under it, and read from there on a miss before asking ACS. NULL: off. */
    const uint8_t *cache_key;
};

#define SERVICE_CALLER_MAX 127
#define SERVICE_REQUEST_ID_MAX 64

/* Who asks, for audit rows and upstream correlation. Plain value type. The caller names a user
 * by its namespace: "user:<OIDC claim value>", "user:local:<account name>". */
struct service_call {
    char request_id[SERVICE_REQUEST_ID_MAX + 1]; /* sent upstream as x-ms-client-request-id */
    char caller[SERVICE_CALLER_MAX + 1];         /* "user:alice", "user:local:bob", "cli" */
};

/* Fills c: caller becomes "kind:name" (truncated at a character boundary), request_id is copied
 * (NULL = ""). */
void service_call_init(struct service_call *c, const char *request_id, const char *kind,
                       const char *name);

/* One outcome. Everything borrowed is valid only during the done callback. The message is always
 * tokenvend's own: a failed ACS call is told as err_message(rc) plus ACS's error code ("ACS does
 * not know the identity (ACS code IdentityNotFound)"); ACS's own words only go to the log. */
struct service_result {
    int rc;                        /* 0 or TV_ERR_* (err_http_status gives the answer's status) */
    const char *message;           /* a sentence for the caller, or NULL for err_message(rc) */
    int created;                   /* this call created the identity (201 rather than 200) */
    int pending;                   /* delete accepted, ACS failing: the outbox finishes it (202) */
    const struct store_user *user; /* the mapping concerned, or NULL */
    const char *token;             /* issued token (SECRET: never log it), or NULL */
    const char *expires_on;        /* its expiry as ACS sent it, or NULL */
    int64_t expires_on_ms;
    const char *acs_id; /* identity concerned ("" when none) */
    /* A failed outcome's hint (503, 429): the caller may try again after this many seconds, sent
     * as Retry-After by the API; 0 when there is none. Today: ACS out of reach in keyless mode
     * because no Entra token is held (the token cache's next fetch attempt). */
    long retry_after_s;
};

typedef void (*service_done_fn)(void *arg, const struct service_result *r);

/* Creates the service (no threads yet). 0, TV_ERR_INVALID (missing option) or TV_ERR_NOMEM. */
int service_new(const struct service_opts *o, struct service **out);
/* Starts the worker threads and the outbox worker (which at once looks for due rows, e.g.
 * deletes left by a previous run). 0 or TV_ERR_INTERNAL. */
int service_start(struct service *s);
/* First step of shutdown: stops the outbox worker and refuses new ACS submissions (flows then
 * end with TV_ERR_SHUTDOWN, as do requests still waiting for another process's create). Call
 * before freeing the ACS client. Blocks until the outbox thread
 * has exited (it never waits on ACS). Idempotent. */
void service_stop(struct service *s);
/* Last step: after the ACS client is gone (every callback has fired), runs the queued
 * completions, joins the workers and frees. NULL is a no-op. */
void service_free(struct service *s);

/* Token for an app user's identity. treq NULL = the policy defaults. With create_if_missing an
 * absent mapping is created first (concurrent first calls for one user share ONE upstream
 * create); without it an absent mapping ends in TV_ERR_NOT_FOUND. A mapping of another ACS
 * resource ends in TV_ERR_CONFLICT. When ACS answers 404 to the issue because a delete removed
 * (or replaced) the mapping meanwhile, the request starts over once (so with create_if_missing
 * it gets a new identity, without it TV_ERR_NOT_FOUND); a mapping ACS no longer knows although
 * no delete ran here, or a second such race, ends in TV_ERR_CONFLICT, never in
 * TV_ERR_ACS_NOT_FOUND. Result: token, expires_on, user, created. With the cache on,
 * the token may come from the cache (no ACS call, no audit row; the mapping is still read, so
 * a revoke or delete by another process is honoured) and done may then run before this
 * returns; concurrent misses for one key share one ACS issue. service_identity_token alike. */
void service_user_token(struct service *s, const struct service_call *c, const char *app_user_id,
                        const struct policy_token_req *treq, int create_if_missing,
                        service_done_fn done, void *arg);
/* Ensures the user has an identity. Result: user, created (1 new, 0 existing). */
void service_user_ensure(struct service *s, const struct service_call *c, const char *app_user_id,
                         service_done_fn done, void *arg);
/* Revokes all of the user's tokens. TV_ERR_NOT_FOUND without a mapping. */
void service_user_revoke(struct service *s, const struct service_call *c, const char *app_user_id,
                         service_done_fn done, void *arg);
/* Deletes the user's identity and mapping (idempotent: no mapping is success, audited with
 * detail "no mapping"). The mapping is gone at once; pending = 1 when ACS failed and the outbox
 * will finish, also for a repeated delete while the outbox still owes ACS the delete. A delete
 * that arrives while the user's first create is in flight waits for it and deletes what it
 * created (the request that started the create still gets its answer). */
void service_user_delete(struct service *s, const struct service_call *c, const char *app_user_id,
                         service_done_fn done, void *arg);

/* A standalone identity (no app user), with a token in the same upstream call when treq is not
 * NULL. Result: user (app_user_id ""), token when asked, created = 1. */
void service_identity_create(struct service *s, const struct service_call *c,
                             const struct policy_token_req *treq, service_done_fn done, void *arg);
/* Token / revoke / delete by ACS identity id; the id must have a mapping here (app user or
 * standalone), else TV_ERR_NOT_FOUND (delete: success, idempotent). */
void service_identity_token(struct service *s, const struct service_call *c, const char *acs_id,
                            const struct policy_token_req *treq, service_done_fn done, void *arg);
void service_identity_revoke(struct service *s, const struct service_call *c, const char *acs_id,
                             service_done_fn done, void *arg);
void service_identity_delete(struct service *s, const struct service_call *c, const char *acs_id,
                             service_done_fn done, void *arg);

/* Exchanges a Teams user's Entra token for an ACS token. bearer_oid is the "oid" claim of the
 * caller's own (verified) token; the Teams token's payload is decoded WITHOUT verification
 * (ACS verifies it) and its "oid" must equal bearer_oid (else TV_ERR_FORBIDDEN), its "appid"
 * (or "azp") names the application. TV_ERR_INVALID for a token that is not a JWT. Result:
 * token, expires_on, acs_id. */
void service_teams_exchange(struct service *s, const struct service_call *c, const char *bearer_oid,
                            const char *teams_token, service_done_fn done, void *arg);

/* Synchronous reads (block on the store only). service_user_get applies the resource binding:
 * TV_ERR_CONFLICT (message in msg) for a mapping of another ACS resource; TV_ERR_INVALID for an
 * id that breaks the id rule (core/ident.h). */
int service_user_get(struct service *s, const char *app_user_id, struct store_user *out, char *msg,
                     size_t msglen);
/* A page of app-user mappings (store_user_list_kept): mappings whose app user id breaks the id
 * rule (stored before ids were checked) are passed over, so every id and cursor handed out is
 * one a caller can send back; *skipped (may be NULL) receives how many were. */
int service_user_list(struct service *s, const char *after, int limit, struct store_user *out,
                      int *n, int *skipped);

/* Runs fn(arg) on the service's threads for slow jobs (blocking work such as password
 * hashing; defer_workers of them, 2 by default), so neither a server thread nor the ACS
 * completions are held; jobs start in order. At most defer_max_pending jobs are queued or
 * running: beyond that TV_ERR_UNAVAILABLE at once (answer 503 with Retry-After), so a flood
 * cannot make every later job wait without bound. 0, or TV_ERR_UNAVAILABLE / TV_ERR_SHUTDOWN /
 * TV_ERR_NOMEM (fn not called). */
int service_defer(struct service *s, void (*fn)(void *arg), void *arg);
/* Appends an audit row (blocks on the store; failures are logged, not returned). Fields may be
 * NULL. Never pass a secret. */
void service_audit(struct service *s, const struct service_call *c, const char *action,
                   const char *app_user_id, const char *acs_id, int rc, const char *detail);

/* Readiness: the store is writable and the service is not shutting down. 0 or an error. */
int service_ready(struct service *s);
/* Kicks the outbox worker to look for due rows now (tests, admin). */
void service_outbox_kick(struct service *s);
/* Appends Prometheus text (identities created/deleted, flows, outbox, token cache). 0 or the
 * buf error. */
struct buf;
int service_metrics_write(struct service *s, struct buf *out);
/* The policy in force (borrowed). */
const struct policy *service_policy(const struct service *s);

#endif
