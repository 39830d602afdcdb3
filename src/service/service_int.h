/* Internals of the service module shared by service.c (lifecycle, workers, single-flight map,
 * audit), flows.c (the request flows), delete.c (the delete flow), teams.c (the Teams exchange)
 * and outbox.c (the delete outbox worker). A flow is one
 * request's small state machine: each ACS callback copies its result into the flow and queues
 * the flow on a worker, which runs the next step (store writes never run on the ACS engine
 * thread, whose callbacks must not block). */
#ifndef TV_SERVICE_SERVICE_INT_H
#define TV_SERVICE_SERVICE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "service/service.h"
#include "service/tcache.h"
#include "store/outbox.h"

enum flow_kind {
    FK_USER_TOKEN,
    FK_USER_ENSURE,
    FK_USER_REVOKE,
    FK_USER_DELETE,
    FK_ID_CREATE,
    FK_ID_TOKEN,
    FK_ID_REVOKE,
    FK_ID_DELETE,
    FK_TEAMS,
    FK_OUTBOX, /* one outbox row's ACS delete */
    FK_DEFER,  /* service_defer: just a function to run */
};

#define TEAMS_OID_MAX 128
#define TEAMS_APP_MAX 128
#define SF_BUCKETS 256
#define FLOW_ACS_MSG_MAX 160

struct flow {
    struct service *s;
    enum flow_kind kind;
    struct service_call call;
    char key[STORE_ID_MAX + 1]; /* app user id, or acs id for FK_ID_* */
    struct store_user user;
    int have_user;
    struct policy_token_req treq;
    int want_token;
    int may_create; /* FK_USER_TOKEN: create the identity when the user has none */
    int created;
    int restarted; /* FK_USER_TOKEN: started over once after the identity vanished */
    int64_t outbox_id;
    int attempts;          /* FK_OUTBOX: failed attempts of the row before this one */
    struct acs_result res; /* the last ACS outcome (owns its token) */
    char *teams_token;     /* FK_TEAMS: a copy (secret, wiped) */
    char teams_oid[TEAMS_OID_MAX + 1];
    char teams_app[TEAMS_APP_MAX + 1];
    /* The caller's sentence for a failed res ("" otherwise): see flow_acs_message. */
    char acs_msg[FLOW_ACS_MSG_MAX];
    service_done_fn done;
    void *arg;
    void (*defer_fn)(void *arg);
    struct flow *qnext; /* worker queue */
    struct flow *wnext; /* single-flight waiters */
    /* Token cache (FK_USER_TOKEN, FK_ID_TOKEN, FK_ID_CREATE with a token). */
    char scopes_key[TCACHE_SCOPES_MAX]; /* canonical scope set; "" = not cacheable */
    uint64_t epoch;                     /* the identity's cache epoch before asking ACS */
    int64_t issue_start_ms;             /* wall clock when the ACS call was submitted */
    struct isf_entry *isf;              /* the issue single-flight this flow leads, or NULL */
};

/* One in-flight ACS issue for (identity, scope set, minutes, epoch): the leader and its
 * waiters. The epoch is part of the key: a request that starts after a revoke never joins an
 * issue that started before it. */
struct isf_entry {
    char acs_id[STORE_ID_MAX + 1];
    char scopes[TCACHE_SCOPES_MAX];
    int minutes;
    uint64_t epoch;
    struct flow *waiters;
    struct isf_entry *next;
};

/* One in-flight create for an app user: the leader's flow and those waiting for it. */
struct sf_entry {
    char user_id[STORE_ID_MAX + 1];
    struct flow *waiters;
    struct sf_entry *next;
};

/* A FIFO of flows served by a few threads. */
struct wq {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct flow *head, *tail;
    int stop;
    pthread_t *threads;
    unsigned n, started;
    unsigned pending, max_pending; /* jobs queued or running; 0 max = unbounded */
};

/* In-flight outbox row ids, so that a row being deleted is not submitted twice. */
#define OUTBOX_INFLIGHT_MAX 256

struct service {
    struct store *store;
    service_submit_fn submit;
    void *submit_ctx;
    char resource[STORE_ID_MAX + 1];
    struct policy policy;

    /* Submissions read-lock; service_stop write-locks to flip `stopping`, so no submission can
     * be half-way through when the ACS client is freed. */
    pthread_rwlock_t submit_lock;
    int stopping;

    /* Flow steps run on `fast`; service_defer's blocking jobs (password hashing) on `slow`,
     * a few threads with a bounded queue, so they never delay ACS completions and neither
     * their memory nor their waiting time grows without bound. */
    struct wq fast, slow;

    /* Single-flight map. */
    pthread_mutex_t sf_lock;
    struct sf_entry *sf[SF_BUCKETS];

    /* Token cache (NULL when off) and the single-flight map of in-flight issues. */
    struct tcache *cache;
    pthread_mutex_t isf_lock;
    struct isf_entry *isf[SF_BUCKETS];

    /* Outbox worker. */
    pthread_mutex_t ob_lock;
    pthread_cond_t ob_cond;
    int ob_stop, ob_kick, ob_started;
    pthread_t ob_thread;
    long ob_interval_ms, ob_base_ms, ob_max_ms, ob_lease_ms;
    int64_t ob_inflight[OUTBOX_INFLIGHT_MAX];
    size_t ob_ninflight;

    /* Counters for /metrics. */
    atomic_ullong m_created, m_deleted, m_issued, m_revoked, m_exchanged, m_sf_joined,
        m_outbox_done, m_outbox_retry, m_flow_errors, m_isf_joined, m_cache_hits, m_cache_misses,
        m_outbox_passes;
};

/* Allocates a flow for kind (zeroed, call copied). NULL when out of memory. */
struct flow *flow_new(struct service *s, enum flow_kind kind, const struct service_call *c,
                      service_done_fn done, void *arg);
/* Frees the flow, its ACS result and its secrets. */
void flow_free(struct flow *f);
/* Queues f for a worker (which calls flow_step). */
void service_queue_push(struct service *s, struct flow *f);
/* Submits req for f (request id from f->call); the callback queues f. 0 or an error (then no
 * callback comes). */
int flow_submit(struct flow *f, struct acs_request *req);
/* The next step of f after an ACS outcome (worker thread). flows.c / outbox.c. */
void flow_step(struct flow *f);
void outbox_step(struct flow *f);

/* Copies src (NULL = "") into dst, truncating to cap - 1 bytes (service.c). */
void service_copy_str(char *dst, size_t cap, const char *src);

/* Steps shared by the flows in flows.c, delete.c and teams.c. */

/* Allocates the flow of a public entry point for key (an app user or ACS id, 1..STORE_ID_MAX
 * bytes). NULL when out of memory or key is invalid: then done has already been called. */
struct flow *flow_start(struct service *s, enum flow_kind kind, const struct service_call *c,
                        const char *key, service_done_fn done, void *arg);
/* Reports the outcome to the caller exactly once and frees f. pending: the outbox still owes
 * ACS a delete (202). A token is handed out only when rc is 0 and f->res holds one. */
void flow_finish_ex(struct flow *f, int rc, const char *msg, int pending);
/* flow_finish_ex with pending 0. */
void flow_finish(struct flow *f, int rc, const char *msg);
/* The caller's sentence for f's failed ACS call: tokenvend's words for the error and ACS's error
 * code, never ACS's own message (flow_step logs that); NULL when the call did not fail. */
const char *flow_acs_message(const struct flow *f);
/* The app user f acts for: the mapping's, or f->key before the mapping is known. */
const char *flow_user_of(const struct flow *f);
/* Wipes acs_id's cached tokens and fences off ACS issues already in flight (cache on only). */
void flow_cache_invalidate(struct flow *f, const char *acs_id);
/* Continues f with its mapping in f->user (same resource check, then by kind). */
void flow_have_mapping(struct flow *f);
/* delete.c: no mapping to delete (an audited success, pending while the outbox owes ACS the
 * delete); the delete of f's mapping; its ACS outcome. */
void flow_delete_none(struct flow *f);
void flow_delete_begin(struct flow *f);
void flow_delete_done(struct flow *f);
/* teams.c: the ACS outcome of a Teams exchange. */
void flow_teams_done(struct flow *f);

enum sf_role { SF_LEAD, SF_JOINED, SF_FOUND };
/* Single-flight for f->key: when a create for that user is in flight, appends f to its waiters
 * (SF_JOINED); else, under the same lock, re-reads the store, so a create that finished since
 * the caller's first read is seen (SF_FOUND, f->user filled); else registers f as the leader
 * (SF_LEAD). 0 or a store error / TV_ERR_NOMEM. */
int sf_join_or_lead(struct service *s, struct flow *f, enum sf_role *role);
/* The same without leading: joins a create in flight for f->key (SF_JOINED) or finds the
 * mapping committed since the caller's read (SF_FOUND); else TV_ERR_NOT_FOUND. A delete uses it
 * so that it acts on what an in-flight create makes. */
int sf_join_if_inflight(struct service *s, struct flow *f, enum sf_role *role);
/* Removes the entry of user_id and returns its waiters (leader excluded) in the order they
 * joined, NULL if none. */
struct flow *sf_finish(struct service *s, const char *user_id);

/* Issue single-flight (cache on only). Under the map's lock: when an issue for f's key and
 * epoch is in flight, appends f to its waiters (SF_JOINED); else looks in the cache once more,
 * so an issue that finished since the caller's lookup is seen (SF_FOUND, *hit filled); else
 * registers f as the leader (SF_LEAD, f->isf set). 0 or TV_ERR_NOMEM. */
int isf_join_or_lead(struct service *s, struct flow *f, enum sf_role *role, struct tcache_hit *hit);
/* Removes the entry f leads and returns its waiters, NULL if none. */
struct flow *isf_finish(struct service *s, struct flow *f);

/* Outbox worker lifecycle and the in-flight set. */
int outbox_start(struct service *s);
void outbox_stop(struct service *s);
/* Marks row id in flight: 0, TV_ERR_CONFLICT (already in flight: someone else is sending its
 * delete, which is not an error) or TV_ERR_UNAVAILABLE (the set is full). Whoever added the mark
 * removes it, and only after the row's store update (done or retry_later), so nobody can take
 * a row that is finished but still looks due. */
int outbox_inflight_add(struct service *s, int64_t id);
void outbox_inflight_remove(struct service *s, int64_t id);
/* Next retry delay after `attempts` failures: base * 2^attempts, capped, with jitter. */
int64_t outbox_backoff_ms(const struct service *s, int attempts);

#endif
