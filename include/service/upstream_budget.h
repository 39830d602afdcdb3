/* The upstream budget (SPEC section 10, README "Upstream budget"): the ACS client's gate
 * (acs/client.h, struct acs_gate) backed by the store's slots (store/acs_budget.h), so every
 * process on the store together makes at most N calls of an operation in any W seconds.
 *
 * Asking never blocks the ACS engine: every ask joins a queue of its operation and a thread of
 * the budget's own takes slots from the store for the queue, in batches, and hands each call
 * back to the engine with its slot. The queue is fair between callers (acs_request.caller):
 * each operation serves its callers in turn, one call each, so one caller's burst cannot push
 * the others back. It is bounded: a call whose estimated turn comes after its deadline, a
 * caller holding more than its share, or a queue at its cap, is refused at once (503 with a
 * Retry-After saying when a slot frees); a call still queued when too little time is left for a
 * useful attempt is refused then, by a thread of its own that never waits for the store. */
#ifndef TV_SERVICE_UPSTREAM_BUDGET_H
#define TV_SERVICE_UPSTREAM_BUDGET_H

#include <stddef.h>
#include <stdint.h>

#include "acs/client.h"
#include "core/budget.h"
#include "core/buf.h"
#include "store/store.h"

struct upstream_budget;

struct upstream_budget_opts {
    struct store *store;   /* required; borrowed, must outlive the budget */
    struct budget_cfg cfg; /* budget_parse's result */
    /* The ACS client's deadline of one call (0: 30000): the queue of an operation holds what
     * its budget can serve within it, N * (deadline / (W + hold) + 1), at least 64 and at most
     * 100000, unless queue_max says otherwise; one caller holds at most a quarter of that (at
     * least 1), unless caller_max says otherwise. */
    long deadline_ms;
    size_t queue_max;
    size_t caller_max;
    int64_t hold_ms; /* 0: BUDGET_HOLD_MS */
    /* A useful attempt's time (0: 1000 ms; the service gives min(acs_attempt_timeout_ms,
     * 1000)): a call is never granted a slot that would leave it less than this before its
     * deadline (nor less than half of what it had when it asked); it is refused instead. */
    int64_t min_attempt_ms;
    /* The wall clock the store's slots are stamped with (tests: a fake one); NULL: real. */
    int64_t (*clock)(void *arg);
    void *clock_arg;
};

/* Creates the budget and starts its thread. With cfg.off the gate says GO to everything and
 * no thread runs. 0, TV_ERR_INVALID, TV_ERR_NOMEM or TV_ERR_INTERNAL; *out untouched on
 * failure. */
int upstream_budget_new(const struct upstream_budget_opts *o, struct upstream_budget **out);
/* The gate to give the ACS client (acs_client_opts.gate); valid until upstream_budget_free. */
const struct acs_gate *upstream_budget_gate(struct upstream_budget *b);
/* Stops the thread and frees. Every ACS client using the gate must be freed first (its
 * shutdown takes back the calls the budget keeps). NULL is a no-op. */
void upstream_budget_free(struct upstream_budget *b);

/* Per operation, for /metrics and tests. */
struct upstream_budget_stats {
    int64_t used;          /* slots used within the last window, by every process (last seen) */
    int64_t limit;         /* N; 0 when the operation has no budget */
    uint64_t queued;       /* calls waiting now */
    uint64_t granted;      /* slots taken by this process */
    uint64_t waits;        /* calls that waited because no slot was free */
    uint64_t refusals;     /* calls refused (503) */
    uint64_t store_errors; /* takes the store failed */
};
void upstream_budget_stats_get(struct upstream_budget *b, int op,
                               struct upstream_budget_stats *out);
/* Appends the tokenvend_acs_budget_* metrics (Prometheus text). 0 or TV_ERR_NOMEM/TOO_LARGE. */
int upstream_budget_metrics_write(struct upstream_budget *b, struct buf *out);

#endif
