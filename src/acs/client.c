/* ACS client engine: one thread per client owns a curl multi handle, starts submitted calls,
 * retries failed attempts after their backoff (a min-heap of waiting calls), enforces each
 * call's deadline and reports outcomes through callbacks. Submission is thread-safe. */
#include "client_int.h"

#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "retry_int.h"
#include "acs/entra.h"
#include "core/acsnames.h"
#include "core/buf.h"
#include "core/budget.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/curlx.h"
#include "core/log.h"
#include "core/ratelimit.h"

#define IDLE_POLL_MS 1000 /* longest sleep of the engine; wake-ups normally come sooner */
/* Sleep while calls wait for the first Entra token: the cache's callback wakes the engine when
 * a fetch ends; this only notices the end of the first wait and the calls' deadlines. */
#define PARKED_POLL_MS 100

const char *acs_op_name(enum acs_op op)
{
    static const char *const names[] = {ACS_OPS(ACS_NAME_ITEM, )};

    if ((unsigned)op >= sizeof names / sizeof names[0])
        return "unknown";
    return names[op];
}

void acs_result_release(struct acs_result *res)
{
    if (res == NULL || res->token == NULL)
        return;
    OPENSSL_cleanse(res->token, strlen(res->token));
    free(res->token);
    res->token = NULL;
}

const char *acs_client_resource(const struct acs_client *c)
{
    return c->cs.host_signed;
}

int acs_client_breaker_get(const struct acs_client *c, struct acs_breaker_stats *out)
{
    if (c->breaker == NULL)
        return 0;
    acs_breaker_stats_get(c->breaker, clock_mono_ms(), out);
    return 1;
}

void acs_client_stats_get(const struct acs_client *c, struct acs_client_stats *out)
{
    out->calls = atomic_load_explicit(&c->n_calls, memory_order_relaxed);
    out->failures = atomic_load_explicit(&c->n_failures, memory_order_relaxed);
    out->attempts = atomic_load_explicit(&c->n_attempts, memory_order_relaxed);
    out->retries = atomic_load_explicit(&c->n_retries, memory_order_relaxed);
    out->connections = atomic_load_explicit(&c->n_connections, memory_order_relaxed);
    out->inflight = atomic_load_explicit(&c->n_inflight, memory_order_relaxed);
    out->sockets_open = atomic_load_explicit(&c->n_sockets, memory_order_relaxed);
}

/* xorshift64*: jitter needs spread, not secrecy; seeded from the CSPRNG. */
static uint64_t rng_next(struct acs_client *c)
{
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return c->rng * 0x2545F4914F6CDD1DULL;
}

/* ---- min-heap of waiting calls, ordered by due_ms ---- */

static void heap_swap(struct acs_client *c, size_t a, size_t b)
{
    struct acs_call *t = c->heap[a];

    c->heap[a] = c->heap[b];
    c->heap[b] = t;
    c->heap[a]->heap_idx = a;
    c->heap[b]->heap_idx = b;
}

static int heap_push(struct acs_client *c, struct acs_call *call)
{
    size_t i;

    if (c->heap_len == c->heap_cap) {
        size_t cap = c->heap_cap ? c->heap_cap * 2 : 64;
        struct acs_call **h = realloc(c->heap, cap * sizeof(*h));
        if (h == NULL)
            return TV_ERR_NOMEM;
        c->heap = h;
        c->heap_cap = cap;
    }
    i = c->heap_len++;
    c->heap[i] = call;
    call->heap_idx = i;
    while (i > 0 && c->heap[(i - 1) / 2]->due_ms > c->heap[i]->due_ms) {
        heap_swap(c, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    return 0;
}

static struct acs_call *heap_pop(struct acs_client *c)
{
    struct acs_call *top;
    size_t i = 0;

    if (c->heap_len == 0)
        return NULL;
    top = c->heap[0];
    c->heap_len--;
    if (c->heap_len > 0) {
        c->heap[0] = c->heap[c->heap_len];
        c->heap[0]->heap_idx = 0;
        for (;;) {
            size_t l = 2 * i + 1, r = l + 1, m = i;
            if (l < c->heap_len && c->heap[l]->due_ms < c->heap[m]->due_ms)
                m = l;
            if (r < c->heap_len && c->heap[r]->due_ms < c->heap[m]->due_ms)
                m = r;
            if (m == i)
                break;
            heap_swap(c, i, m);
            i = m;
        }
    }
    return top;
}

/* ---- running list ---- */

static void running_add(struct acs_client *c, struct acs_call *call)
{
    call->prev = NULL;
    call->next = c->running;
    if (c->running != NULL)
        c->running->prev = call;
    c->running = call;
}

static void running_remove(struct acs_client *c, struct acs_call *call)
{
    if (call->prev != NULL)
        call->prev->next = call->next;
    else
        c->running = call->next;
    if (call->next != NULL)
        call->next->prev = call->prev;
    call->next = call->prev = NULL;
}

/* Gives back the connection counted for call, if any. */
static void conn_release(struct acs_client *c, struct acs_call *call)
{
    if (call->conn_reserved) {
        call->conn_reserved = 0;
        c->n_reserved--;
    }
}

/* ---- outcomes ---- */

#define LOG_START (-2) /* log_attempt: an attempt starts, no outcome to show yet */

/* Logs one step of a call: op, attempt and, after an attempt, its outcome and the wait before
 * the next one (wait_ms >= 0). Never the body, the token or the signature. */
static void log_attempt(enum log_level l, const struct acs_call *call, const char *msg,
                        int64_t wait_ms)
{
    struct json_object *f;

    if (!log_enabled(l))
        return;
    f = json_object_new_object();
    if (f == NULL)
        return;
    json_object_object_add(f, "op", json_object_new_string(acs_op_name(call->op)));
    json_object_object_add(f, "attempt", json_object_new_int(call->res.attempts));
    if (wait_ms == LOG_START) {
        log_fields(l, call->request_id, msg, f);
        json_object_put(f);
        return;
    }
    json_object_object_add(f, "status", json_object_new_int64(call->res.http_status));
    if (call->res.rc != 0)
        json_object_object_add(f, "error", json_object_new_string(err_name(call->res.rc)));
    if (call->res.acs_code[0] != '\0')
        json_object_object_add(f, "acs_code", json_object_new_string(call->res.acs_code));
    if (call->errbuf[0] != '\0')
        json_object_object_add(f, "curl", json_object_new_string(call->errbuf));
    if (wait_ms >= 0)
        json_object_object_add(f, "wait_ms", json_object_new_int64(wait_ms));
    log_fields(l, call->request_id, msg, f);
    json_object_put(f);
}

/* Ends a call that is in no list: reports rc through the callback and frees the call. The
 * result is handed over on the stack; the callee copies it to keep it. */
static void call_finish(struct acs_call *call, int rc, const char *why)
{
    struct acs_result res;
    acs_done_fn done = call->done;
    void *arg = call->arg;
    int expected;

    conn_release(call->client, call);
    if (call->breaker_probe) {
        /* The probe ends without an answer from ACS (deadline, shutdown, a local failure):
         * it says nothing about ACS, so the next attempt probes instead. */
        acs_breaker_abandon(call->client->breaker, clock_mono_ms());
        call->breaker_probe = 0;
    }
    call->res.rc = rc;
    if (rc == 0)
        call->res.outcome_unknown = 0; /* a retry of an idempotent create got the answer */
    if (rc != 0 && why != NULL)
        acs_strlcpy(call->res.message, why, sizeof(call->res.message));
    else if (rc != 0 && call->res.message[0] == '\0')
        acs_strlcpy(call->res.message, err_message(rc), sizeof(call->res.message));
    if (rc == 0)
        call->res.message[0] = '\0';
    /* The answer the caller asked for is no failure to report (the credential check). */
    expected = rc != 0 && call->expect_status != 0 && call->res.http_status == call->expect_status;
    if (rc == 0 || expected)
        log_attempt(LOGL_DEBUG, call,
                    rc == 0 ? "acs call succeeded" : "acs call got the expected answer", -1);
    else
        log_attempt(rc == TV_ERR_SHUTDOWN ? LOGL_INFO : LOGL_WARN, call, "acs call failed", -1);
    atomic_fetch_add_explicit(&call->client->n_calls, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&call->client->n_inflight, 1, memory_order_relaxed);
    if (rc != 0 && !expected)
        atomic_fetch_add_explicit(&call->client->n_failures, 1, memory_order_relaxed);
    res = call->res;
    call->res.token = NULL;
    call_free(call);
    done(arg, &res);
}

/* Ends call with the breaker's 503 and its wait. */
static void call_breaker_refuse(struct acs_call *call, int64_t wait_ms)
{
    char why[ACS_MESSAGE_MAX];

    call->res.retry_after_s = (long)ratelimit_retry_after_s(wait_ms);
    call->res.paused = 1;
    snprintf(why, sizeof why,
             "ACS is failing, so calls to it are paused (circuit breaker open); retry in %ld s",
             call->res.retry_after_s);
    call_finish(call, TV_ERR_UNAVAILABLE, why);
}

/* The breaker's fast check before an attempt waits for anything (a connection, the budget):
 * an open breaker refuses at once and spends no budget. It takes no probe: the probe is
 * admitted right before the send (call_breaker_gate), so its timer never runs while it waits
 * for a slot. 0: go on; else the call has ended with TV_ERR_UNAVAILABLE. */
static int call_breaker_check(struct acs_client *c, struct acs_call *call)
{
    int64_t wait_ms = 0;

    if (c->breaker == NULL || call->breaker_probe ||
        acs_breaker_check(c->breaker, clock_mono_ms(), &wait_ms))
        return 0;
    call_breaker_refuse(call, wait_ms);
    return TV_ERR_UNAVAILABLE;
}

/* The circuit breaker's gate right before every send, the first and each retry: a retry of a
 * call admitted before the breaker opened fails fast too, since ACS is failing for it as
 * for everyone. 0: go on; else the call has been ended with TV_ERR_UNAVAILABLE and a
 * Retry-After hint. No call holds the probe between attempts (it is reported or given back
 * at the end of each), so every send is admitted afresh. */
static int call_breaker_gate(struct acs_client *c, struct acs_call *call)
{
    int64_t wait_ms = 0;
    int probe = 0;

    if (c->breaker == NULL || call->breaker_probe)
        return 0;
    if (acs_breaker_admit(c->breaker, clock_mono_ms(), &probe, &wait_ms)) {
        call->breaker_probe = probe;
        if (probe)
            log_attempt(LOGL_INFO, call, "acs circuit breaker: this attempt is the probe",
                        LOG_START);
        return 0;
    }
    call_breaker_refuse(call, wait_ms);
    return TV_ERR_UNAVAILABLE;
}

/* Reports an attempt's outcome to the circuit breaker: answers 2xx are successes; 5xx,
 * timeouts and network errors failures; 429 and other 4xx neither (ACS answered: it is busy,
 * or the call was wrong). */
static void call_breaker_note(struct acs_client *c, struct acs_call *call, CURLcode cc,
                              long http_status)
{
    enum acs_breaker_outcome o = ACS_BREAKER_NEUTRAL;

    if (c->breaker == NULL)
        return;
    if (cc == CURLE_OPERATION_TIMEDOUT && call->attempt_cut) {
        /* The call's own deadline cut the attempt's timeout short: ACS may simply not have
         * answered yet, which is no failure. A probe cut short says nothing either. */
        if (call->breaker_probe)
            acs_breaker_abandon(c->breaker, clock_mono_ms());
        call->breaker_probe = 0;
        return;
    }
    if (cc != CURLE_OK || http_status >= 500)
        o = ACS_BREAKER_FAILURE;
    else if (http_status >= 200 && http_status < 300)
        o = ACS_BREAKER_SUCCESS;
    if (acs_breaker_record(c->breaker, clock_mono_ms(), call->breaker_probe, o) &&
        c->gate != NULL) {
        /* Calls of this client waiting in the budget would take slots at their turn only to
         * be refused by the open breaker: the budget gives them back now (they come back as
         * refused and end with the breaker's 503). */
        c->gate->cancel(c->gate->ctx, c);
    }
    call->breaker_probe = 0;
}

/* The refusal a gate verdict other than GO or WAIT stands for. */
static int refusal_kind(enum acs_gate_verdict v)
{
    return v == ACS_GATE_REFUSE_STORE ? ACS_BUDGET_REFUSED_STORE : ACS_BUDGET_REFUSED_QUOTA;
}

/* Ends a call the upstream budget could not serve: 503 with the budget's wait, and a message
 * saying why: no slot in time (ACS_BUDGET_REFUSED_QUOTA), or its store failing or too slow
 * (ACS_BUDGET_REFUSED_STORE: the quota itself may well have room). */
static void call_refuse(struct acs_call *call, int kind, int64_t retry_after_ms)
{
    char why[ACS_MESSAGE_MAX];

    call->res.retry_after_s = (long)ratelimit_retry_after_s(retry_after_ms);
    call->res.budget_refused = kind;
    call->res.http_status = 0;
    if (kind == ACS_BUDGET_REFUSED_STORE)
        snprintf(why, sizeof why,
                 "the store that keeps the ACS call budget (acs_budget) is failing or too slow; "
                 "no %s call was made; try again in about %ld s",
                 acs_op_name(call->op), call->res.retry_after_s);
    else
        snprintf(why, sizeof why,
                 "no slot of the ACS call budget (acs_budget) for %s within the call's deadline; "
                 "one frees in about %ld s",
                 acs_op_name(call->op), call->res.retry_after_s);
    call_finish(call, TV_ERR_UNAVAILABLE, why);
}

/* The upstream budget, before every attempt: 1 when the attempt may go now (a fresh slot is
 * held for it), 0 when the call waits for the gate's answer (it comes back through
 * acs_client_gate_answer) or has ended. A grant older than BUDGET_GRANT_TTL_MS (a busy engine)
 * is no longer covered by its slot's hold, so the call asks again: the stale slot is spent,
 * never stretched (an engine that slow makes fewer calls, never more than the budget). */
static int call_gate_pass(struct acs_client *c, struct acs_call *call)
{
    struct acs_gate_ask a;
    enum acs_gate_verdict v;
    int64_t retry_ms = 0, now;

    if (c->gate == NULL)
        return 1;
    now = clock_mono_ms();
    if (call->granted_mono_ms != 0) {
        if (now - call->granted_mono_ms <= BUDGET_GRANT_TTL_MS)
            return 1;
        call->granted_mono_ms = 0;
        log_attempt(LOGL_INFO, call, "acs budget grant went stale, asking again", LOG_START);
    }
    a = (struct acs_gate_ask){.client = c,
                              .call = call,
                              .op = call->op,
                              .caller = call->caller,
                              .deadline_mono_ms = call->deadline_ms};
    /* Set before asking: once kept, the call may be answered (on another thread) at once. */
    call->gate_waited = 1;
    v = c->gate->ask(c->gate->ctx, &a, &retry_ms);
    switch (v) {
    case ACS_GATE_GO:
        call->granted_mono_ms = now;
        return 1;
    case ACS_GATE_WAIT:
        return 0;
    default:
        call_refuse(call, refusal_kind(v), retry_ms);
        return 0;
    }
}

/* When a call waiting for a connection must be looked at: its grant going stale, else its
 * deadline. */
static int64_t held_due(const struct acs_call *call)
{
    if (call->granted_mono_ms != 0 &&
        call->granted_mono_ms + BUDGET_GRANT_TTL_MS < call->deadline_ms)
        return call->granted_mono_ms + BUDGET_GRANT_TTL_MS + 1;
    return call->deadline_ms;
}

/* Parks a call until the first Entra token comes (engine_main tries it again): the engine
 * never waits for it, and the call holds no connection and asks no budget meanwhile. Should
 * the deadline come first, the call ends with the reason prepare wrote (call_start's deadline
 * branch keeps res.rc and res.message). */
static void call_park(struct acs_client *c, struct acs_call *call, int rc)
{
    conn_release(c, call);
    call->res.rc = rc;
    call->next = NULL;
    if (c->parked_tail != NULL)
        c->parked_tail->next = call;
    else
        c->parked = call;
    c->parked_tail = call;
}

/* Starts the next attempt of call, or ends it when its deadline has passed. The order keeps
 * the budget's slots for calls that will really be sent: the breaker's fast check, the first
 * Entra token (keyless), a free connection, then the budget's slot; the breaker admits (and
 * may make the probe) only right before the send. */
static void call_start(struct acs_client *c, struct acs_call *call)
{
    int64_t left = call->deadline_ms - clock_mono_ms();
    int rc;

    if (left <= 0 && call->gate_waited) {
        /* Still waiting for the budget (its answer came late: a slow store): the same 503 as
         * the gate's own refusal at the deadline. */
        call_refuse(call, ACS_BUDGET_REFUSED_QUOTA, 1000);
        return;
    }
    if (left <= 0) {
        call_finish(call, call->res.rc != 0 ? call->res.rc : TV_ERR_UPSTREAM_TIMEOUT,
                    call->res.rc != 0 ? NULL : "the call's deadline passed before it started");
        return;
    }
    call->parked = 0;
    call->res.retry_after_s = 0; /* a hint is only for the outcome that set it */
    if (call_breaker_check(c, call) != 0)
        return;
    if (c->entra != NULL && c->gate != NULL && call->granted_mono_ms == 0 &&
        (rc = call_prepare_attempt(call, left)) != 0) {
        /* Keyless: no slot is asked for before there is a token to send the call with. */
        if (call->parked)
            call_park(c, call, rc);
        else
            call_finish(call, rc,
                        rc == TV_ERR_UNAVAILABLE ? NULL : "could not prepare the request");
        return;
    }
    if (!call_gate_pass(c, call))
        return;
    if (c->n_reserved >= c->max_connections) {
        /* Every connection is busy: wait here, not in curl's queue, where the request would
         * go out whenever a connection frees, long after its slot's hold. A grant that goes
         * stale meanwhile is asked for again (held_run). */
        call->next = NULL;
        if (c->held_tail != NULL)
            c->held_tail->next = call;
        else
            c->held = call;
        c->held_tail = call;
        if (c->held == call || held_due(call) < c->held_due_ms)
            c->held_due_ms = held_due(call);
        return;
    }
    left = call->deadline_ms - clock_mono_ms();
    if (left <= 0) {
        call_finish(call, TV_ERR_UPSTREAM_TIMEOUT, "the call's deadline passed before it started");
        return;
    }
    if ((rc = call_prepare_attempt(call, left)) != 0 && call->parked) {
        call_park(c, call, rc);
        return;
    }
    if (rc != 0) {
        /* No Entra token: prepare wrote why, and the retry hint, into the result. */
        call_finish(call, rc, rc == TV_ERR_UNAVAILABLE ? NULL : "could not prepare the request");
        return;
    }
    if (call_breaker_gate(c, call) != 0)
        return;
    call->conn_reserved = 1;
    c->n_reserved++;
    call->res.attempts++;
    call->send_grant_ms = c->gate != NULL ? call->granted_mono_ms : 0;
    call->send_stale = 0;
    call->granted_mono_ms = 0; /* a slot covers one attempt */
    call->gate_waited = 0;
    atomic_fetch_add_explicit(&c->n_attempts, 1, memory_order_relaxed);
    if (curl_multi_add_handle(c->multi, call->easy) != CURLM_OK) {
        call_finish(call, TV_ERR_INTERNAL, "curl_multi_add_handle failed");
        return;
    }
    running_add(c, call);
    log_attempt(LOGL_DEBUG, call, "acs attempt started", LOG_START);
}

/* Starts held calls while connections are free (first come, first served: the budget's
 * fair order), and takes out those whose grant went stale or whose deadline passed:
 * call_start asks the budget again for the former and ends the latter. */
static void held_run(struct acs_client *c)
{
    struct acs_call *call, **pp, *due = NULL, **due_tail = &due;
    int64_t now = clock_mono_ms();

    if (c->held != NULL && now >= c->held_due_ms) {
        c->held_due_ms = INT64_MAX;
        c->held_tail = NULL;
        for (pp = &c->held; (call = *pp) != NULL;) {
            if (held_due(call) <= now) {
                *pp = call->next;
                call->next = NULL;
                *due_tail = call;
                due_tail = &call->next;
                continue;
            }
            if (held_due(call) < c->held_due_ms)
                c->held_due_ms = held_due(call);
            c->held_tail = call;
            pp = &call->next;
        }
    }
    while (c->held != NULL && c->n_reserved < c->max_connections) {
        call = c->held;
        c->held = call->next;
        if (c->held == NULL)
            c->held_tail = NULL;
        call->next = NULL;
        call_start(c, call);
    }
    /* After the loop above: these may join the held list again. */
    while ((call = due) != NULL) {
        due = call->next;
        call->next = NULL;
        call_start(c, call);
    }
}

/* Whether the request of a failed transfer may have reached the server. Counting a finished
 * connect as "maybe sent" errs on the side of not repeating a create. */
static int request_maybe_sent(CURL *e, CURLcode cc)
{
    long req_size = 0;
    curl_off_t connect_us = 0;

    if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
        cc == CURLE_COULDNT_RESOLVE_PROXY)
        return 0;
    if (curl_easy_getinfo(e, CURLINFO_REQUEST_SIZE, &req_size) == CURLE_OK && req_size > 0)
        return 1;
    if (curl_easy_getinfo(e, CURLINFO_CONNECT_TIME_T, &connect_us) != CURLE_OK)
        return 1;
    return connect_us > 0;
}

/* Handles the end of one attempt: finishes the call or schedules its next attempt. */
static void call_attempt_done(struct acs_client *c, struct acs_call *call, CURLcode cc)
{
    struct acs_attempt a = {.curl_code = (int)cc, .idempotent = call->idempotent};
    char why[ACS_MESSAGE_MAX];
    int retryable, rc;
    int64_t now, server_ms, wait;
    long conns = 0;

    running_remove(c, call);
    curl_multi_remove_handle(c->multi, call->easy);
    if (curl_easy_getinfo(call->easy, CURLINFO_NUM_CONNECTS, &conns) == CURLE_OK && conns > 0)
        atomic_fetch_add_explicit(&c->n_connections, (uint64_t)conns, memory_order_relaxed);
    conn_release(c, call);
    if (cc == CURLE_ABORTED_BY_CALLBACK && call->send_stale) {
        /* The prereq check stopped the request before any byte was sent: its grant had run
         * out. Not an attempt, not a retry, no outcome for the breaker: the call asks the
         * budget again at once. A probe is given back (it would wait for a slot, its timer
         * running): the breaker admits again at the next send, as for any call. */
        call->send_stale = 0;
        if (call->breaker_probe) {
            acs_breaker_abandon(c->breaker, clock_mono_ms());
            call->breaker_probe = 0;
        }
        call->res.attempts--;
        atomic_fetch_sub_explicit(&c->n_attempts, 1, memory_order_relaxed);
        log_attempt(LOGL_INFO, call, "acs budget grant went stale before the send, asking again",
                    LOG_START);
        call->due_ms = clock_mono_ms();
        if (heap_push(c, call) != 0)
            call_finish(call, TV_ERR_NOMEM, NULL);
        return;
    }
    if (cc == CURLE_OK)
        curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &a.http_status);
    a.request_sent = request_maybe_sent(call->easy, cc);
    call_breaker_note(c, call, cc, a.http_status);
    if (call->hdr_request_id[0] != '\0')
        acs_strlcpy(call->res.request_id, call->hdr_request_id, sizeof(call->res.request_id));
    call->res.http_status = a.http_status;
    call->res.acs_code[0] = '\0';
    rc = acs_retry_classify(call->op, &a, &retryable);
    call->res.rc = rc;
    /* Sticky: a later attempt ACS refused (429, 503) says nothing about this one. */
    if (acs_retry_outcome_unknown(call->op, &a))
        call->res.outcome_unknown = 1;
    if (rc == 0) {
        rc = call_parse_success(call);
        /* ACS created the identity, but its id cannot be read from the answer. */
        if (rc != 0 && call->op == ACS_OP_CREATE)
            call->res.outcome_unknown = 1;
        call_finish(call, rc, NULL);
        return;
    }
    if (cc == CURLE_OK) {
        call_parse_error(call);
        if (rc == TV_ERR_UPSTREAM_UNKNOWN)
            snprintf(why, sizeof(why),
                     "ACS answered HTTP %ld to a create: %.380s; the "
                     "identity may have been created",
                     a.http_status, call->res.message);
        else
            acs_strlcpy(why, call->res.message, sizeof(why));
    } else if (rc == TV_ERR_UPSTREAM_UNKNOWN ||
               (rc == TV_ERR_UPSTREAM_TIMEOUT && call->res.outcome_unknown)) {
        snprintf(why, sizeof(why),
                 "the create request was sent but %s (%.256s); the identity may have been "
                 "created",
                 rc == TV_ERR_UPSTREAM_TIMEOUT ? "ACS did not answer in time" : "no answer came",
                 call->errbuf[0] ? call->errbuf : curl_easy_strerror(cc));
    } else {
        buf_copy_str(why, sizeof(why), call->errbuf[0] ? call->errbuf : curl_easy_strerror(cc));
    }
    acs_strlcpy(call->res.message, why, sizeof(call->res.message));
    if (!retryable || call->retries >= c->max_retries) {
        call_finish(call, rc, NULL);
        return;
    }
    now = clock_mono_ms();
    server_ms = cc == CURLE_OK ? call_server_wait_ms(call) : -1;
    if (server_ms > call->deadline_ms - now) {
        /* Retrying before the server's wait is over would only be refused again. */
        snprintf(why, sizeof(why), "%.400s (ACS asked to wait %lld ms, past the deadline)",
                 call->res.message, (long long)server_ms);
        call_finish(call, rc, why);
        return;
    }
    wait = acs_retry_wait_ms(
        acs_retry_backoff_ms(call->retries, c->backoff_base_ms, c->backoff_max_ms, rng_next(c)),
        server_ms);
    if (now + wait >= call->deadline_ms) {
        call_finish(call, rc, NULL);
        return;
    }
    call->retries++;
    atomic_fetch_add_explicit(&c->n_retries, 1, memory_order_relaxed);
    call->due_ms = now + wait;
    if (heap_push(c, call) != 0) {
        call_finish(call, rc, NULL);
        return;
    }
    log_attempt(LOGL_INFO, call, "acs attempt failed, retrying", wait);
}

/* ---- engine ---- */

static void engine_drain_messages(struct acs_client *c)
{
    CURLMsg *m;
    int left;

    while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
        struct acs_call *call = NULL;
        if (m->msg != CURLMSG_DONE)
            continue;
        CURLcode cc = m->data.result;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&call);
        /* m is invalid once its handle leaves the multi; everything needed is copied. */
        call_attempt_done(c, call, cc);
    }
}

static void engine_shutdown(struct acs_client *c, struct acs_call *queued)
{
    struct acs_call *call, *gated;

    /* The gate answers every call it keeps before this returns; they end with the rest. */
    if (c->gate != NULL)
        c->gate->cancel(c->gate->ctx, c);
    pthread_mutex_lock(&c->lock);
    gated = c->g_head;
    c->g_head = c->g_tail = NULL;
    pthread_mutex_unlock(&c->lock);
    while ((call = gated) != NULL) {
        gated = call->next;
        call_finish(call, TV_ERR_SHUTDOWN, "the ACS client is shutting down");
    }
    while ((call = queued) != NULL) {
        queued = call->next;
        call_finish(call, TV_ERR_SHUTDOWN, "the ACS client is shutting down");
    }
    while ((call = heap_pop(c)) != NULL)
        call_finish(call, TV_ERR_SHUTDOWN, "the ACS client is shutting down");
    while ((call = c->parked) != NULL) {
        c->parked = call->next;
        call_finish(call, TV_ERR_SHUTDOWN, "the ACS client is shutting down");
    }
    c->parked_tail = NULL;
    while ((call = c->held) != NULL) {
        c->held = call->next;
        call_finish(call, TV_ERR_SHUTDOWN, "the ACS client is shutting down");
    }
    c->held_tail = NULL;
    while ((call = c->running) != NULL) {
        running_remove(c, call);
        curl_multi_remove_handle(c->multi, call->easy);
        call_finish(call, TV_ERR_SHUTDOWN, "the ACS client is shutting down");
    }
}

static void *engine_main(void *arg)
{
    struct acs_client *c = arg;

    for (;;) {
        struct acs_call *taken, *gated, *call;
        int stop, still = 0;
        int64_t now, timeout = IDLE_POLL_MS;

        pthread_mutex_lock(&c->lock);
        taken = c->q_head;
        c->q_head = c->q_tail = NULL;
        gated = c->g_head;
        c->g_head = c->g_tail = NULL;
        stop = c->stopping;
        pthread_mutex_unlock(&c->lock);
        if (stop) {
            /* Calls the gate answered already end with the rest. */
            if (gated != NULL) {
                pthread_mutex_lock(&c->lock);
                if (c->g_tail != NULL)
                    c->g_tail->next = gated;
                else
                    c->g_head = gated;
                for (call = gated; call->next != NULL; call = call->next)
                    ;
                c->g_tail = call;
                pthread_mutex_unlock(&c->lock);
            }
            engine_shutdown(c, taken);
            break;
        }
        /* The gate's answers first: their slots are fresh now. */
        while ((call = gated) != NULL) {
            gated = call->next;
            call->next = NULL;
            if (call->gate_verdict == ACS_GATE_GO)
                call_start(c, call);
            else if (call_breaker_check(c, call) != 0)
                continue; /* the breaker ended it: its 503 rather than the budget's */
            else
                call_refuse(call, refusal_kind(call->gate_verdict), call->gate_retry_ms);
        }
        while ((call = taken) != NULL) {
            taken = call->next;
            call->next = NULL;
            call_start(c, call);
        }
        /* Parked calls try again when a fetch ended (the cache woke us), else every
         * PARKED_POLL_MS for the end of the first wait and their deadlines; in their order. */
        now = clock_mono_ms();
        if (c->parked != NULL &&
            (atomic_exchange(&c->parked_wake, 0) != 0 || now >= c->parked_due_ms)) {
            taken = c->parked;
            c->parked = c->parked_tail = NULL;
            c->parked_due_ms = now + PARKED_POLL_MS;
            while ((call = taken) != NULL) {
                taken = call->next;
                call->next = NULL;
                call_start(c, call);
            }
        }
        now = clock_mono_ms();
        while (c->heap_len > 0 && c->heap[0]->due_ms <= now)
            call_start(c, heap_pop(c));
        curl_multi_perform(c->multi, &still);
        engine_drain_messages(c);
        held_run(c); /* connections freed by the answers just read */
        if (c->heap_len > 0) {
            int64_t d = c->heap[0]->due_ms - clock_mono_ms();
            timeout = d < 0 ? 0 : (d < timeout ? d : timeout);
        }
        if (c->parked != NULL) {
            int64_t d = c->parked_due_ms - clock_mono_ms();
            timeout = d < 0 ? 0 : (d < timeout ? d : timeout);
        }
        if (c->held != NULL) {
            int64_t d = c->held_due_ms - clock_mono_ms();
            timeout = d < 0 ? 0 : (d < timeout ? d : timeout);
        }
        curl_multi_poll(c->multi, NULL, 0, (int)timeout, NULL);
    }
    return NULL;
}

/* ---- public API ---- */

static long opt_or(long v, long dflt)
{
    return v == 0 ? dflt : v;
}

static int api_version_ok(const char *s)
{
    size_t n = strnlen(s, ACS_API_VERSION_MAX);

    if (n == 0 || n >= ACS_API_VERSION_MAX)
        return 0;
    return strspn(s, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-.") == n;
}

void acs_client_opts_from_config(const struct config *cfg, struct acs_client_opts *out)
{
    struct ratelimit rl;

    *out = (struct acs_client_opts){
        .connection_string = cfg->acs_connection_string,
        .api_version = cfg->acs_api_version,
        .connect_timeout_ms = cfg->acs_connect_timeout_ms,
        .attempt_timeout_ms = cfg->acs_attempt_timeout_ms,
        .deadline_ms = cfg->acs_deadline_ms,
        .max_retries = (int)cfg->acs_max_retries,
        .backoff_base_ms = cfg->acs_backoff_base_ms,
        .backoff_max_ms = cfg->acs_backoff_max_ms,
        .max_connections = (size_t)cfg->acs_max_connections,
        .endpoint = cfg->acs_endpoint,
        .custom_id = cfg->acs_custom_id,
    };
    /* config_load validated it; "off" (or, defensively, a bad value) means no breaker. */
    if (cfg->breaker != NULL && ratelimit_parse(cfg->breaker, &rl, NULL, 0) == 0 && !rl.off) {
        out->breaker_threshold = (long)rl.burst;
        out->breaker_open_ms = (long)rl.window_ms;
    }
}

/* The Entra cache's fetch-ended callback (cache thread, cache lock held): wakes the engine so
 * parked calls try again at once. curl_multi_wakeup only writes to a socket pair. */
static void entra_fetch_ended(void *arg)
{
    struct acs_client *c = arg;

    atomic_store(&c->parked_wake, 1);
    curl_multi_wakeup(c->multi);
}

int acs_client_new(const struct acs_client_opts *opts, struct acs_client **out)
{
    struct acs_client *c = NULL;
    const char *api = opts->api_version ? opts->api_version : ACS_API_VERSION_DEFAULT;
    int rc = TV_ERR_CONFIG;
    int lock_ok = 0;

    if (curlx_init() != 0)
        return TV_ERR_INTERNAL;
    int keyless = opts->entra != NULL &&
                  (opts->connection_string == NULL || opts->connection_string[0] == '\0');

    if ((keyless ? opts->endpoint == NULL : opts->connection_string == NULL) ||
        !api_version_ok(api) || opts->connect_timeout_ms < 0 || opts->attempt_timeout_ms < 0 ||
        opts->deadline_ms < 0 || opts->backoff_base_ms < 0 || opts->backoff_max_ms < 0 ||
        (opts->custom_id && strcmp(api, ACS_API_VERSION_CUSTOM_ID) != 0))
        return TV_ERR_CONFIG;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return TV_ERR_NOMEM;
    if (keyless ? acs_endpoint_parse(opts->endpoint, &c->cs) != 0
                : acs_connstr_parse(opts->connection_string, &c->cs) != 0)
        goto fail;
    c->entra = keyless ? opts->entra : NULL;
    c->entra_owned = keyless && opts->entra_owned;
    acs_strlcpy(c->api_version, api, sizeof(c->api_version));
    c->connect_timeout_ms = opt_or(opts->connect_timeout_ms, 3000);
    c->attempt_timeout_ms = opt_or(opts->attempt_timeout_ms, 10000);
    c->deadline_ms = opt_or(opts->deadline_ms, 30000);
    c->max_retries = opts->max_retries < 0 ? 3 : opts->max_retries;
    c->backoff_base_ms = opt_or(opts->backoff_base_ms, 200);
    c->backoff_max_ms = opt_or(opts->backoff_max_ms, 5000);
    c->max_connections = opts->max_connections == 0 ? 64 : (long)opts->max_connections;
    c->custom_id = opts->custom_id != 0;
    c->gate = opts->gate;
    if (RAND_bytes((unsigned char *)&c->rng, sizeof(c->rng)) != 1 || c->rng == 0)
        c->rng = (uint64_t)clock_mono_ms() | 1;
    rc = TV_ERR_INTERNAL;
    if (pthread_mutex_init(&c->lock, NULL) != 0)
        goto fail;
    lock_ok = 1;
    c->multi = curl_multi_init();
    if (c->multi == NULL)
        goto fail;
    if (curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, c->max_connections) !=
            CURLM_OK ||
        curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, c->max_connections) != CURLM_OK)
        goto fail;
    /* Without the callback (every slot taken) parked calls still go on at the next poll. */
    if (c->entra != NULL)
        c->entra_listening = entra_cache_listen(c->entra, entra_fetch_ended, c) == 0;
    /* A probe whose report is lost is replaced after one attempt's time and a margin. */
    if (opts->breaker_threshold > 0 && opts->breaker_open_ms > 0 &&
        (rc = acs_breaker_new(opts->breaker_threshold, opts->breaker_open_ms,
                              c->attempt_timeout_ms + 1000, &c->breaker)) != 0)
        goto fail;
    rc = TV_ERR_INTERNAL;
    if (pthread_create(&c->thread, NULL, engine_main, c) != 0)
        goto fail;
    *out = c;
    return 0;
fail:
    if (c->entra_listening)
        entra_cache_unlisten(c->entra, entra_fetch_ended, c);
    if (c->multi != NULL)
        curl_multi_cleanup(c->multi);
    if (lock_ok)
        pthread_mutex_destroy(&c->lock);
    acs_breaker_free(c->breaker);
    acs_connstr_release(&c->cs);
    free(c);
    return rc;
}

void acs_client_free(struct acs_client *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->lock);
    c->stopping = 1;
    pthread_mutex_unlock(&c->lock);
    curl_multi_wakeup(c->multi);
    pthread_join(c->thread, NULL);
    /* Before the multi handle goes: the callback must not wake a freed handle. */
    if (c->entra_listening)
        entra_cache_unlisten(c->entra, entra_fetch_ended, c);
    curl_multi_cleanup(c->multi);
    pthread_mutex_destroy(&c->lock);
    acs_connstr_release(&c->cs);
    if (c->entra_owned)
        entra_cache_stop(c->entra);
    acs_breaker_free(c->breaker);
    free(c->heap);
    free(c);
}

void acs_client_gate_answer(struct acs_client *c, void *vcall, enum acs_gate_verdict v,
                            int64_t retry_after_ms, int64_t granted_mono_ms)
{
    struct acs_call *call = vcall;

    call->gate_verdict = v == ACS_GATE_GO || v == ACS_GATE_REFUSE_STORE ? v : ACS_GATE_REFUSE;
    call->gate_retry_ms = retry_after_ms;
    call->granted_mono_ms = v == ACS_GATE_GO ? granted_mono_ms : 0;
    call->next = NULL;
    pthread_mutex_lock(&c->lock);
    if (c->g_tail != NULL)
        c->g_tail->next = call;
    else
        c->g_head = call;
    c->g_tail = call;
    pthread_mutex_unlock(&c->lock);
    curl_multi_wakeup(c->multi);
}

int acs_client_submit(struct acs_client *c, const struct acs_request *req, acs_done_fn done,
                      void *arg)
{
    struct acs_call *call = NULL;
    int rc;

    if (c == NULL || req == NULL)
        return TV_ERR_INVALID;
    if ((rc = call_new(c, req, done, arg, &call)) != 0)
        return rc;
    /* The deadline runs from submission: time spent queued counts against it. */
    call->deadline_ms = clock_mono_ms() + c->deadline_ms;
    pthread_mutex_lock(&c->lock);
    if (c->stopping) {
        pthread_mutex_unlock(&c->lock);
        call_free(call);
        return TV_ERR_SHUTDOWN;
    }
    /* Counted before the engine can see it, so call_finish never takes it below zero. */
    atomic_fetch_add_explicit(&c->n_inflight, 1, memory_order_relaxed);
    if (c->q_tail != NULL)
        c->q_tail->next = call;
    else
        c->q_head = call;
    c->q_tail = call;
    pthread_mutex_unlock(&c->lock);
    curl_multi_wakeup(c->multi);
    return 0;
}

struct sync_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
    struct acs_result res;
};

static void sync_done(void *arg, struct acs_result *res)
{
    struct sync_wait *w = arg;

    pthread_mutex_lock(&w->lock);
    w->res = *res;
    w->done = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

int acs_client_call_sync(struct acs_client *c, const struct acs_request *req,
                         struct acs_result *res)
{
    struct sync_wait w = {.done = 0};
    int rc;

    memset(res, 0, sizeof(*res));
    res->op = req != NULL ? req->op : ACS_OP_CREATE;
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.cond, NULL);
    rc = acs_client_submit(c, req, sync_done, &w);
    if (rc != 0) {
        res->rc = rc;
        acs_strlcpy(res->message, err_message(rc), sizeof(res->message));
        goto out;
    }
    pthread_mutex_lock(&w.lock);
    while (!w.done)
        pthread_cond_wait(&w.cond, &w.lock);
    pthread_mutex_unlock(&w.lock);
    *res = w.res;
    rc = res->rc;
out:
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.lock);
    return rc;
}
