/* Internals shared by client.c (engine, lifecycle) and client_http.c (one call's HTTP exchange:
 * request building, easy handle, header and body callbacks, response parsing). Everything here
 * runs on the engine thread except call_new(), which runs on the submitting thread. */
#ifndef TV_ACS_CLIENT_INT_H
#define TV_ACS_CLIENT_INT_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "acs/client.h"
#include "acs/connstr.h"
#include "core/budget.h"
#include "core/buf.h"

#define ACS_RESPONSE_MAX (256 * 1024) /* ceiling on one response body */
#define ACS_REQUEST_MAX (64 * 1024)   /* ceiling on one request body */
#define ACS_TOKEN_MAX (32 * 1024)     /* ceiling on a token in a response */
#define ACS_API_VERSION_MAX 32
#define ACS_HDR_VALUE_MAX 64
/* Oldest budget grant a request may still be sent on: the slot's hold (BUDGET_HOLD_MS) less a
 * margin for the bytes' way to ACS once written. */
#define ACS_SEND_MAX_AGE_MS (BUDGET_HOLD_MS - 100)

struct acs_call {
    struct acs_client *client;
    struct acs_call *next, *prev; /* submission queue (next only) or running list */
    enum acs_op op;
    const char *method;
    char *path; /* path and query as sent and signed */
    char *url;
    struct buf body; /* request body; may hold a Teams token, so wiped */
    int with_token;  /* CREATE asked for a token */
    int idempotent;  /* CREATE with a customId: ACS answers a repeat with the same identity */
    char request_id[ACS_REQUEST_ID_MAX];
    int64_t deadline_ms; /* monotonic: the whole call ends by then */
    int64_t due_ms;      /* monotonic: when a waiting call's next attempt starts */
    size_t heap_idx;
    int retries; /* retries made so far */
    int parked;  /* keyless mode: waits for the first Entra token (bearer_headers set it) */
    /* Admitted as the circuit breaker's half-open probe, its outcome not reported yet. */
    int breaker_probe;
    /* One of the client's max_connections is counted for this call while its attempt is in
     * curl: the engine never hands curl more requests than connections, so curl never queues
     * a granted request behind busy connections (it would go out long after its grant). */
    int conn_reserved;
    /* The attempt's timeout was cut short by the call's deadline: its timeout says nothing
     * about ACS. Set by call_prepare_attempt. */
    int attempt_cut;
    /* The slot grant the attempt in curl goes with (monotonic ms; 0: no budget), checked at
     * the real send by the prereq callback; send_stale: it aborted the send (nothing sent). */
    int64_t send_grant_ms;
    int send_stale;
    char caller[ACS_CALLER_MAX];
    long expect_status; /* acs_request.expect_status */
    /* Upstream budget: when the slot for the next attempt was granted (0: none yet), and the
     * gate's answer while it travels to the engine. */
    int64_t granted_mono_ms;
    int gate_waited; /* the gate kept the call: past the deadline it ends as the gate's refusal */
    enum acs_gate_verdict gate_verdict;
    int64_t gate_retry_ms;
    CURL *easy;
    struct curl_slist *headers;
    struct buf resp; /* response body of the current attempt (may hold a token) */
    char hdr_retry_after_ms[ACS_HDR_VALUE_MAX];
    char hdr_x_retry_after_ms[ACS_HDR_VALUE_MAX];
    char hdr_retry_after[ACS_HDR_VALUE_MAX];
    char hdr_request_id[ACS_REQUEST_ID_MAX];
    char errbuf[CURL_ERROR_SIZE];
    struct acs_result res;
    acs_done_fn done;
    void *arg;
};

struct acs_client {
    struct acs_connstr cs;     /* keyless mode: endpoint fields only, key NULL */
    struct entra_cache *entra; /* keyless mode: bearer tokens from here; else NULL */
    int entra_owned;           /* stopped by acs_client_free */
    char api_version[ACS_API_VERSION_MAX];
    long connect_timeout_ms;
    long attempt_timeout_ms;
    long deadline_ms;
    int max_retries;
    long backoff_base_ms;
    long backoff_max_ms;
    long max_connections;
    int custom_id; /* creates for an app user carry a customId */
    /* The circuit breaker (acs/breaker.h) every attempt passes; NULL when it is off. */
    struct acs_breaker *breaker;

    CURLM *multi;
    pthread_t thread;
    pthread_mutex_t lock; /* guards q_head, q_tail, g_head, g_tail, stopping */
    struct acs_call *q_head, *q_tail;
    struct acs_call *g_head, *g_tail; /* answered by the gate, for the engine to go on with */
    const struct acs_gate *gate;      /* NULL: no budget */
    int stopping;

    /* Written by the engine thread, read by anyone (relaxed atomics). */
    _Atomic uint64_t n_calls, n_failures, n_attempts, n_retries, n_connections;
    /* Gauges: calls between submit and call_finish; sockets curl opened through
     * acs_socket_open and has not closed yet (any thread, curl_multi_cleanup included). */
    _Atomic uint64_t n_inflight, n_sockets;

    /* Engine thread only. */
    struct acs_call **heap; /* calls waiting for their backoff, min-heap on due_ms */
    size_t heap_len, heap_cap;
    struct acs_call *running; /* calls with an attempt in the multi handle */
    long n_reserved;          /* calls with conn_reserved set */
    /* Calls (granted by the budget, if any) waiting for a free connection: FIFO, linked by
     * next. A grant that goes stale here is asked for again. */
    struct acs_call *held, *held_tail;
    int64_t held_due_ms; /* next look at them: a grant going stale or a deadline (monotonic) */
    /* Keyless mode: calls waiting for the very first Entra token (singly linked by next). The
     * engine never waits for it: the cache's fetch-ended callback wakes the engine, which then
     * tries them again; a short poll covers the end of the first wait and their deadlines. Other
     * wake-ups (a new call, an answer) do not retry them: with many parked calls that made every
     * pass cost all of them. */
    struct acs_call *parked, *parked_tail; /* first come, first tried */
    int64_t parked_due_ms;                 /* next look at them without a wake-up (monotonic) */
    atomic_int parked_wake;                /* set by the cache's callback: a fetch ended */
    int entra_listening;                   /* the wake-up callback is registered */
    uint64_t rng;
};

/* Validates req and builds a call for it (path, body, easy handle). Runs on the caller's
 * thread. 0, TV_ERR_INVALID or TV_ERR_NOMEM; *out untouched on failure. */
int call_new(struct acs_client *c, const struct acs_request *req, acs_done_fn done, void *arg,
             struct acs_call **out);
/* Frees a call that is in no list, wiping its secrets (not the result's token). */
void call_free(struct acs_call *call);
/* Prepares the next attempt: fresh date, signature and headers, timeouts bounded by left_ms.
 * 0 or a TV_ERR_* code (the call then ends with it), except TV_ERR_UNAVAILABLE with
 * call->parked set: the first Entra token is still being fetched (never waited for here), and
 * the engine tries again later. */
int call_prepare_attempt(struct acs_call *call, int64_t left_ms);
/* Fills call->res from a 2xx answer. 0 or TV_ERR_UPSTREAM_PROTOCOL. */
int call_parse_success(struct acs_call *call);
/* Copies error.code and error.message of a non-2xx answer into call->res when the body has
 * them; leaves them empty otherwise. */
void call_parse_error(struct acs_call *call);
/* Server-given wait of the last answer in ms, or -1 when it gave none. */
int64_t call_server_wait_ms(const struct acs_call *call);

/* Bounded copy that always terminates dst (truncating). */
void acs_strlcpy(char *dst, const char *src, size_t cap);

#endif
