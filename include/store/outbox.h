/* The outbox: upstream ACS operations that must eventually succeed (today: deleting an
 * identity whose mapping is gone). Rows survive restarts; a worker takes due rows, calls ACS,
 * and marks them done or schedules a retry. Thread-safe. */
#ifndef TV_STORE_OUTBOX_H
#define TV_STORE_OUTBOX_H

#include <stdint.h>

#include "store/store.h"

#define STORE_OUTBOX_OP_MAX 15
#define STORE_OUTBOX_ERROR_MAX 255

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
};

/* Queues an operation directly (e.g. the ACS delete of an identity that has no mapping).
 * op is "delete" or "revoke". *id (may be NULL) receives the new row's id. Normal deletes use
 * store_user_delete_begin, which does this atomically with removing the mapping. */
int store_outbox_add(struct store *s, const char *acs_id, const char *resource, const char *op,
                     int64_t now_ms, int64_t *id);

/* Up to limit (1..STORE_LIST_MAX) rows with next_attempt_ms <= now_ms, oldest due first, into
 * rows (room for limit); *n receives the count. Rows are not locked or claimed: one worker per
 * process should take them (a second process at worst repeats an idempotent ACS delete). */
int store_outbox_due(struct store *s, int64_t now_ms, int limit, struct store_outbox_row *rows,
                     int *n);

/* Removes row id after the operation succeeded (ACS 404 counts as success for a delete).
 * 0 or TV_ERR_NOT_FOUND. */
int store_outbox_done(struct store *s, int64_t id);

/* Records a failed attempt: attempts + 1, next_attempt_ms = next_ms, last_error (NULL = "";
 * truncated to STORE_OUTBOX_ERROR_MAX bytes; never put a token in it). 0 or TV_ERR_NOT_FOUND. */
int store_outbox_retry_later(struct store *s, int64_t id, int64_t next_ms, const char *last_error);

/* *found = 1 when a row for acs_id is pending (any op), else 0. */
int store_outbox_pending_for(struct store *s, const char *acs_id, int *found);

/* *found = 1 when a delete queued for app_user_id's identity is pending, else 0 (rows written by
 * store_user_delete_begin*; those queued before schema version 2 have no app user). acs_id (may
 * be NULL; room for STORE_ID_MAX + 1) receives the identity of the oldest such row. */
int store_outbox_pending_for_user(struct store *s, const char *app_user_id, int *found,
                                  char *acs_id);

/* Claims row id until until_ms: next_attempt_ms = until_ms, attempts unchanged. A worker calls it
 * before sending the row's ACS call, so the row is not due (nor a reason to wake up) while the
 * call is in flight, and a row finished meanwhile is seen: TV_ERR_NOT_FOUND. */
int store_outbox_lease(struct store *s, int64_t id, int64_t until_ms);

/* Number of pending rows (for metrics and tests). */
int store_outbox_count(struct store *s, int64_t *n);

/* Earliest next_attempt_ms of any pending row, so a worker can sleep until then: *found = 0
 * (and *next_ms untouched) when the outbox is empty. */
int store_outbox_next_due(struct store *s, int64_t *next_ms, int *found);

#endif
