/* Periodic maintenance of tokenvend serve, off the request path: one thread that, at start and
 * then every interval, runs the housekeeping passes: the expired session refresh tokens are
 * deleted, and audit rows older than the retention are deleted in small batches, each its own short
 * write transaction, so the store's single writer is never held for long and requests' writes
 * interleave. It is not the delete outbox (service/service.h). Thread-safe. */
#ifndef TV_SERVICE_MAINT_H
#define TV_SERVICE_MAINT_H

#include <stdint.h>

struct maint;
struct store;
struct buf;

#define MAINT_DAY_MS (24LL * 60 * 60 * 1000)

struct maint_opts {
    struct store *store;       /* required; borrowed, must outlive the maint */
    long audit_retention_days; /* rows older than this many days go; 0 = keep every row */
    long interval_ms;          /* time between passes; 0 = one hour */
    int batch_rows; /* rows per transaction, 1..STORE_PRUNE_MAX; 0 = MAINT_BATCH_DEFAULT */
};

#define MAINT_BATCH_DEFAULT 1000

/* Creates the maintenance object (no thread yet). 0, TV_ERR_INVALID (no store, a negative
 * retention or interval, a batch out of range) or TV_ERR_NOMEM. *out untouched on failure. */
int maint_new(const struct maint_opts *o, struct maint **out);
/* Starts the thread; its first pass runs at once. 0 or TV_ERR_INTERNAL. */
int maint_start(struct maint *m);
/* Stops the thread: a pass in progress ends after its current batch. Blocks until the thread
 * has exited (a batch is one short transaction). Idempotent; a no-op before maint_start. */
void maint_stop(struct maint *m);
/* maint_stop, then frees. NULL is a no-op. */
void maint_free(struct maint *m);

/* Runs one pass now on the calling thread (the thread's own passes call it too; a concurrent
 * pass only finds fewer rows): with a retention, deletes the audit rows older than
 * now_ms - retention, batch by batch, until none is left or maint_stop is called. *pruned (may
 * be NULL) receives the rows deleted. Counts toward the metrics. 0 or the store's error (rows
 * of earlier batches stay deleted; the next pass goes on). Blocks on the store. */
int maint_run_once(struct maint *m, int64_t now_ms, int64_t *pruned);

/* Appends the Prometheus text of the maintenance counters: passes, audit rows pruned, prune
 * errors, the time of the last complete prune and the retention in force. 0 or the buf
 * error. */
int maint_metrics_write(struct maint *m, struct buf *out);

#endif
