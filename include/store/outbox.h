/* The outbox: upstream ACS operations that must eventually succeed (today: deleting an
 * identity whose mapping is gone). Rows survive restarts; a worker takes due rows, calls ACS,
 * and marks them done or schedules a retry. Thread-safe.
 *
 * Leases: several processes (replicas) may share the database. A process works on a row only
 * while it holds the row's lease: leased_by = store_instance(s) and next_attempt_ms = the
 * lease's end, so the row is not due for anyone else meanwhile. store_outbox_take hands out
 * due rows atomically (never one row to two takers), store_outbox_lease leases a row the
 * caller just wrote. A lease whose holder died runs out, the row falls due again and another
 * process takes it over; from then on the old holder's done, retry_later, lease and release
 * fail with TV_ERR_NOT_FOUND (the row is not its to finish any more: drop it). A row nobody
 * leases (leased_by "": written by store_outbox_add or store_user_delete_begin*, or
 * rescheduled) may be finished, rescheduled or leased by whoever holds its id, e.g. the admin
 * CLI that writes a row and calls ACS at once. Leases must outlast the ACS call they cover
 * (the service uses its ACS deadline plus a margin); the operations are idempotent, so a call
 * repeated after a lease ran out early is harmless. */
#ifndef TV_STORE_OUTBOX_H
#define TV_STORE_OUTBOX_H

#include <stdint.h>

#include "store/store.h"

#define STORE_OUTBOX_OP_MAX 15
#define STORE_OUTBOX_ERROR_MAX 255
#define STORE_OUTBOX_LEASER_MAX 64 /* bytes of leased_by (the column's CHECK) */

/* Plain value type. */
struct store_outbox_row {
    int64_t id;
    char acs_id[STORE_ID_MAX + 1];
    char resource[STORE_ID_MAX + 1];             /* ACS resource host the identity lives in */
    char op[STORE_OUTBOX_OP_MAX + 1];            /* "delete" (or "revoke") */
    int attempts;                                /* failed attempts so far */
    int64_t next_attempt_ms;                     /* not due before this (ms since the epoch) */
    char last_error[STORE_OUTBOX_ERROR_MAX + 1]; /* "" until an attempt failed */
    int64_t created_ms;
    char app_user_id[STORE_ID_MAX + 1]; /* whose identity it was; "" when none or unknown */
    char leased_by[STORE_OUTBOX_LEASER_MAX + 1]; /* store_instance of the lease holder, or "" */
};

/* Queues an operation directly (e.g. the ACS delete of an identity that has no mapping).
 * op is "delete" or "revoke". *id (may be NULL) receives the new row's id. Normal deletes use
 * store_user_delete_begin, which does this atomically with removing the mapping. */
int store_outbox_add(struct store *s, const char *acs_id, const char *resource, const char *op,
                     int64_t now_ms, int64_t *id);

/* Up to limit (1..STORE_LIST_MAX) rows with next_attempt_ms <= now_ms, oldest due first, into
 * rows (room for limit); *n receives the count. A read only (listing, tests): rows are not
 * leased; a worker takes rows with store_outbox_take. */
int store_outbox_due(struct store *s, int64_t now_ms, int limit, struct store_outbox_row *rows,
                     int *n);

/* Takes up to limit (1..STORE_LIST_MAX) rows due at now_ms (next_attempt_ms <= now_ms, the
 * oldest due first) and leases each to this process until now_ms + lease_ms (lease_ms >= 1),
 * in one atomic step: concurrent takers, in this process or another, never get the same row
 * while its lease is current. The rows (as leased: next_attempt_ms is the lease's end,
 * leased_by this process) go to rows (room for limit) in no particular order; *n receives the
 * count. Attempts are not counted. */
int store_outbox_take(struct store *s, int64_t now_ms, int64_t lease_ms, int limit,
                      struct store_outbox_row *rows, int *n);

/* Removes row id after the operation succeeded (ACS 404 counts as success for a delete), when
 * it is this process's lease or nobody's. 0 or TV_ERR_NOT_FOUND (gone, or another process
 * holds it). */
int store_outbox_done(struct store *s, int64_t id);

/* Records a failed attempt on a row this process leases (or nobody does): attempts + 1,
 * next_attempt_ms = next_ms, last_error (NULL = ""; truncated to STORE_OUTBOX_ERROR_MAX bytes;
 * never put a token in it), and the lease ends (leased_by ""), so whoever is alive when it is
 * due takes it. 0 or TV_ERR_NOT_FOUND (gone, or another process holds it). */
int store_outbox_retry_later(struct store *s, int64_t id, int64_t next_ms, const char *last_error);

/* *found = 1 when a row for acs_id is pending (any op), else 0. */
int store_outbox_pending_for(struct store *s, const char *acs_id, int *found);

/* *found = 1 when a delete queued for app_user_id's identity is pending, else 0 (rows written by
 * store_user_delete_begin*; those queued before schema version 2 have no app user). acs_id (may
 * be NULL; room for STORE_ID_MAX + 1) receives the identity of the oldest such row. */
int store_outbox_pending_for_user(struct store *s, const char *app_user_id, int *found,
                                  char *acs_id);

/* Leases row id to this process until until_ms (next_attempt_ms = until_ms, attempts
 * unchanged) when it is nobody's or already this process's: for a row the caller just wrote
 * and sends at once, or to renew a lease before sending, so the row is not due (nor a reason to
 * wake up) while the call is in flight. 0 or TV_ERR_NOT_FOUND (finished meanwhile, or another
 * process holds it). */
int store_outbox_lease(struct store *s, int64_t id, int64_t until_ms);

/* Gives back this process's lease on row id without counting an attempt: next_attempt_ms =
 * due_ms, leased_by "" (e.g. nothing was sent: due again at once for anyone). 0 or
 * TV_ERR_NOT_FOUND (gone, or another process holds it). */
int store_outbox_release(struct store *s, int64_t id, int64_t due_ms);

/* Number of pending rows (for metrics and tests). */
int store_outbox_count(struct store *s, int64_t *n);

/* Earliest next_attempt_ms of any pending row, so a worker can sleep until then: *found = 0
 * (and *next_ms untouched) when the outbox is empty. */
int store_outbox_next_due(struct store *s, int64_t *next_ms, int *found);

/* Row id (any state). 0, TV_ERR_NOT_FOUND or TV_ERR_INVALID (id < 1). */
int store_outbox_get(struct store *s, int64_t id, struct store_outbox_row *out);

/* What store_outbox_retry_now found and did, counted in one transaction. */
struct store_outbox_retry {
    int64_t matched;  /* rows it was about: the row (0 or 1), or every pending row */
    int64_t made_due; /* rows that waited for a later attempt and are due at now_ms now */
    int64_t leased;   /* rows left alone: another process holds a current lease on them */
};

/* Makes row id (id >= 1), or every row (id 0), due at now_ms so that an outbox worker takes it
 * at its next pass (the admin's "retry now"): next_attempt_ms = now_ms for rows nobody leases
 * that are not due yet; attempts and last_error are kept. A row whose lease is current
 * (leased_by set, next_attempt_ms > now_ms) is left to its holder and counted in leased; a row
 * already due (also one whose lease ran out) stays as it is. 0 (matched 0: no such row) or a
 * store error; *out on success only. */
int store_outbox_retry_now(struct store *s, int64_t id, int64_t now_ms,
                           struct store_outbox_retry *out);

#endif
