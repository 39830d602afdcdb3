/* Typed client for the ACS identity REST API on libcurl's multi interface. One engine thread
 * runs every request concurrently over reused connections, retries what is safe to retry, and
 * reports each outcome through a callback on that thread. Submitting is thread-safe; callbacks
 * must not block. acs_client_call_sync() is a blocking wrapper for the CLI and tests. */
#ifndef TV_ACS_CLIENT_H
#define TV_ACS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "acs/breaker.h"
#include "core/acsnames.h"

struct acs_client;
struct config;
struct entra_cache;

#define ACS_ID_MAX 256
#define ACS_CODE_MAX 64
#define ACS_MESSAGE_MAX 512
#define ACS_REQUEST_ID_MAX 64
#define ACS_MAX_SCOPES 8
/* "tv1_" + 43 base64url characters + NUL */
#define ACS_CUSTOM_ID_LEN 48
#define ACS_CALLER_MAX 128 /* acs_request.caller, NUL included (longer is cut) */

/* ACS_OP_CREATE, ACS_OP_ISSUE, ... in the order of core/acsnames.h's ACS_OPS. */
#define ACS_OP_ENUM_ITEM(id, name) ACS_OP_##id,
enum acs_op { ACS_OPS(ACS_OP_ENUM_ITEM, ) };
#undef ACS_OP_ENUM_ITEM

/* The upstream budget's gate (README "Upstream budget"): asked before EVERY HTTP attempt, the
 * first and each retry. The acs module only knows this interface; the budget itself (with its
 * store and its thread) is set up by the service (service/upstream_budget.h). */
enum acs_gate_verdict {
    ACS_GATE_GO = 0,     /* attempt now: a slot was taken for it */
    ACS_GATE_WAIT = 1,   /* the gate keeps the ask and answers it later */
    ACS_GATE_REFUSE = 2, /* no slot before the call's deadline: the call ends with 503 */
    /* The budget's store is failing (or too slow to answer before the deadline): the call ends
     * with 503 saying so, not blaming a spent quota. */
    ACS_GATE_REFUSE_STORE = 3,
};
struct acs_gate_ask {
    struct acs_client *client;
    void *call; /* opaque: given back to acs_client_gate_answer */
    enum acs_op op;
    const char *caller;       /* acs_request.caller ("" when none); valid during the ask only */
    int64_t deadline_mono_ms; /* the call's deadline on clock_mono_ms */
};
struct acs_gate {
    /* Engine thread; must not block. GO, REFUSE (*retry_after_ms: when a slot would be free,
     * >= 0), or WAIT: then the gate answers exactly once, later, from any thread, with
     * acs_client_gate_answer (GO, or REFUSE when the deadline comes first). */
    enum acs_gate_verdict (*ask)(void *ctx, const struct acs_gate_ask *a, int64_t *retry_after_ms);
    /* Engine thread, when the client shuts down, and when its circuit breaker opens (the
     * calls it keeps would only be refused at their turn): answers every ask of client it
     * still keeps (REFUSE) before it returns, and none of those after; later asks are served
     * as usual. */
    void (*cancel)(void *ctx, struct acs_client *client);
    void *ctx;
};

struct acs_client_opts {
    const char *connection_string; /* required; parsed by acs_connstr_parse */
    const char *api_version;       /* NULL: ACS_API_VERSION_DEFAULT */
    long connect_timeout_ms;       /* per attempt; 0: 3000 */
    long attempt_timeout_ms;       /* one attempt, connect included; 0: 10000 */
    long deadline_ms;              /* whole call, retries included; 0: 30000 */
    int max_retries;               /* retries after the first attempt; <0: 3 */
    long backoff_base_ms;          /* 0: 200; doubled each retry, with full jitter */
    long backoff_max_ms; /* 0: 5000; cap on one jittered backoff (a server's retry-after is honoured
                            in full) */
    size_t max_connections; /* 0: 64 per host */
    /* Keyless mode (SPEC section 11): with entra set and no connection string, requests go to
     * `endpoint` (https://<resource>.communication.azure.com) with `Authorization: Bearer` and a
     * token from the cache (borrowed: it must outlive the client). */
    const char *endpoint;
    struct entra_cache *entra;
    int entra_owned; /* acs_client_free stops the cache too (the CLI's one-shot clients) */
    /* Creates for an app user (acs_request.custom_id_user) carry a customId; needs
     * api_version ACS_API_VERSION_CUSTOM_ID (acs_client_new refuses it with another). */
    int custom_id;
    /* Circuit breaker (acs/breaker.h), per client: after breaker_threshold consecutive failed
     * attempts (5xx, timeouts, network errors) attempts fail fast for breaker_open_ms, then one
     * probe decides. 0 in either: no breaker. */
    long breaker_threshold;
    long breaker_open_ms;
    /* The upstream budget (borrowed: it must outlive the client); NULL: none. */
    const struct acs_gate *gate;
};

/* Fills *out from the configuration's acs_* settings: the one place `serve` and the CLI take
 * their client options from. out->connection_string points into cfg. */
void acs_client_opts_from_config(const struct config *cfg, struct acs_client_opts *out);

/* What one call asks for. Strings are copied at submission. */
struct acs_request {
    enum acs_op op;
    const char *identity_id;            /* ISSUE, REVOKE, DELETE */
    const char *scopes[ACS_MAX_SCOPES]; /* ISSUE; CREATE with a token when nscopes > 0 */
    size_t nscopes;
    int expires_in_minutes;    /* ISSUE/CREATE with token; 0 leaves it to ACS (1440) */
    const char *teams_token;   /* TEAMS_EXCHANGE: Entra token (secret) */
    const char *teams_app_id;  /* TEAMS_EXCHANGE */
    const char *teams_user_id; /* TEAMS_EXCHANGE */
    const char *request_id;    /* sent as x-ms-client-request-id; NULL: a new UUID */
    /* CREATE: the app user the identity is for. With the client's custom_id on, the create
     * carries acs_custom_id(resource, this) and, being idempotent then, is retried like any
     * other call after a lost answer. Ignored when the option is off or for other ops. */
    const char *custom_id_user;
    /* Who the call is for ("user:alice", "apikey:ops", "outbox"): the budget's queue takes
     * turns between callers. NULL: "". */
    const char *caller;
    /* An error status the caller expects as the answer (the credential check's 404 for its
     * made-up identity): ending with it is logged at debug level and not counted in the
     * failures of acs_client_stats (it is still rc != 0). 0: none. */
    long expect_status;
};

#define ACS_BUDGET_REFUSED_QUOTA 1
#define ACS_BUDGET_REFUSED_STORE 2

/* Outcome of one call. rc is 0 on a 2xx answer, else a TV_ERR_ACS_* / TV_ERR_UPSTREAM_* code;
 * http_status, acs_code and message then describe the last ACS answer (status 0 when none). */
struct acs_result {
    int rc;
    enum acs_op op;
    long http_status;
    char acs_code[ACS_CODE_MAX];   /* error.code from ACS, or "" */
    char message[ACS_MESSAGE_MAX]; /* error.message from ACS or a description of the failure */
    char identity_id[ACS_ID_MAX];  /* CREATE: the new identity; else the one acted on */
    char *token;                   /* CREATE with token, ISSUE, TEAMS_EXCHANGE (secret) */
    int64_t expires_on_ms;         /* token expiry, ms since the epoch */
    char expires_on[40];           /* as ACS sent it */
    int attempts;                  /* HTTP attempts made */
    char request_id[ACS_REQUEST_ID_MAX];
    /* Seconds the caller should wait before trying again, else 0: the Entra cache's hint when
     * rc is TV_ERR_UNAVAILABLE with no HTTP status (keyless, no token), or ACS's own wait
     * (Retry-After, retry-after-ms, x-ms-retry-after-ms; rounded up) when its error answer
     * carried one. */
    long retry_after_s;
    /* rc TV_ERR_UNAVAILABLE from the circuit breaker, which refused the attempt (retry_after_s
     * is then the rest of its open period): message is our own sentence, fit for a caller. */
    int paused;
    /* rc TV_ERR_UNAVAILABLE from the upstream budget: ACS_BUDGET_REFUSED_QUOTA (no slot in time)
     * or ACS_BUDGET_REFUSED_STORE (its store failing or too slow: message says so); else 0. */
    int budget_refused;
    /* CREATE failed after a request that may have reached ACS, with no answer saying what ACS
     * did (no answer before the deadline: rc TV_ERR_UPSTREAM_TIMEOUT; a lost connection or a
     * 500/502/504: TV_ERR_UPSTREAM_UNKNOWN): the identity may exist. The caller tells its own
     * caller so and logs it for follow-up. */
    int outcome_unknown;
    /* CREATE: the customId it carried ("" when none); with one, a repeat gets the same
     * identity (the safe answer to outcome_unknown). */
    char custom_id[ACS_CUSTOM_ID_LEN];
};

/* Counters since acs_client_new (for metrics and tests). */
struct acs_client_stats {
    uint64_t calls;       /* calls finished, whatever their outcome */
    uint64_t failures;    /* calls finished with rc != 0 */
    uint64_t attempts;    /* HTTP attempts started */
    uint64_t retries;     /* attempts scheduled after a failed one */
    uint64_t connections; /* new connections opened (the rest reused a kept-alive one) */
    /* Gauges: calls submitted and not finished yet (each holds one curl easy handle), and
     * sockets to ACS open now (in use or kept alive by curl). Both return to their level once
     * the calls end, whatever ACS did: a black-holed call leaves neither behind. */
    uint64_t inflight;
    uint64_t sockets_open;
};

/* Called once per submitted call on the engine thread. The callee owns res and must release it
 * with acs_result_release() (it may keep it past the callback). The struct itself lives on the
 * engine's stack until the callback returns: to keep the result, copy *res (the copy then owns
 * the token). Callbacks must not block and must not call acs_client_call_sync or
 * acs_client_free; acs_client_submit is fine. */
typedef void (*acs_done_fn)(void *arg, struct acs_result *res);

/* Creates the client and starts its engine thread. 0, TV_ERR_CONFIG (bad connection string or
 * options), TV_ERR_NOMEM or TV_ERR_INTERNAL; *out untouched on failure. */
int acs_client_new(const struct acs_client_opts *opts, struct acs_client **out);
/* Stops the engine: calls still running complete with TV_ERR_SHUTDOWN; then frees. Blocks until
 * the engine thread has exited. NULL is a no-op. */
void acs_client_free(struct acs_client *c);
/* Queues a call; done(arg, res) fires exactly once, later, on the engine thread, also when the
 * call fails. 0, or TV_ERR_INVALID (bad request, done not called) / TV_ERR_SHUTDOWN /
 * TV_ERR_NOMEM / TV_ERR_CRYPTO (no random request id). The deadline runs from submission.
 * A create without a customId is never repeated once its request may have reached ACS (it
 * always uses a fresh connection, closed after it, so libcurl cannot silently re-send it); it
 * then ends in TV_ERR_UPSTREAM_TIMEOUT when no answer came in time, else in
 * TV_ERR_UPSTREAM_UNKNOWN, with acs_result.outcome_unknown set. A create with one is retried
 * like the other operations. */
int acs_client_submit(struct acs_client *c, const struct acs_request *req, acs_done_fn done,
                      void *arg);
/* The customId of app user `user` at ACS resource `resource` ("host[:port]"):
 * "tv1_" + base64url(SHA-256("tokenvend/acs-custom-id/v1" NUL resource NUL user)), unpadded.
 * Stable across processes and replicas; does not show the user id (README, design notes).
 * 0, TV_ERR_INVALID (NULL input) or TV_ERR_CRYPTO. */
int acs_custom_id(const char *resource, const char *user, char out[ACS_CUSTOM_ID_LEN]);
/* Submits and waits for the outcome (blocks; never on the engine thread). Returns res->rc;
 * *res is always filled (release it). */
int acs_client_call_sync(struct acs_client *c, const struct acs_request *req,
                         struct acs_result *res);
/* "host[:port]" this client signs for (the ACS resource a mapping belongs to). */
const char *acs_client_resource(const struct acs_client *c);
/* The gate's later answer to an ask it kept (ACS_GATE_GO or ACS_GATE_REFUSE with
 * retry_after_ms); granted_mono_ms is when the slot was taken (clock_mono_ms), so a grant that
 * waited too long for the engine is asked again. Thread-safe, never blocks on ACS. */
void acs_client_gate_answer(struct acs_client *c, void *call, enum acs_gate_verdict v,
                            int64_t retry_after_ms, int64_t granted_mono_ms);
/* Reads the counters; thread-safe, no lock (each counter is read atomically on its own). */
void acs_client_stats_get(const struct acs_client *c, struct acs_client_stats *out);
/* The circuit breaker's state now: 1 with *out filled, or 0 when the client has none (off). */
int acs_client_breaker_get(const struct acs_client *c, struct acs_breaker_stats *out);
/* Wipes and frees the token; leaves the rest. Safe on a zeroed struct. */
void acs_result_release(struct acs_result *res);
/* The op's name in core/acsnames.h ("create", "issue", ...); "unknown" out of range. */
const char *acs_op_name(enum acs_op op);

#endif
