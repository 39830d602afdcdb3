/* The audit log: who did what to which identity, when, with what outcome. Append-only for the
 * service; NEVER put a token, key or password in any field. Thread-safe. */
#ifndef TV_STORE_AUDIT_H
#define TV_STORE_AUDIT_H

#include <stdint.h>

#include "store/store.h"

#define STORE_AUDIT_REQUEST_ID_MAX 64
#define STORE_AUDIT_CALLER_MAX 127
#define STORE_AUDIT_ACTION_MAX 31
#define STORE_AUDIT_OUTCOME_MAX 63
#define STORE_AUDIT_DETAIL_MAX 255
#define STORE_PRUNE_MAX 10000 /* most rows one store_audit_prune call deletes */

/* Plain value type; every string may be "". */
struct store_audit {
    int64_t id;    /* set by the store (store_audit_list); ignored by store_audit_add */
    int64_t ts_ms; /* ms since the epoch */
    char request_id[STORE_AUDIT_REQUEST_ID_MAX + 1];
    char caller[STORE_AUDIT_CALLER_MAX + 1]; /* "user:alice", "apikey:backend1", "cli" */
    char action[STORE_AUDIT_ACTION_MAX +
                1]; /* create, issue, revoke, delete, teams_exchange, login */
    char app_user_id[STORE_ID_MAX + 1];
    char acs_id[STORE_ID_MAX + 1];
    char outcome[STORE_AUDIT_OUTCOME_MAX + 1]; /* "ok" or an err_name() */
    char detail[STORE_AUDIT_DETAIL_MAX + 1];   /* short, never a secret */
};

/* Appends one row (durable on return). 0 or an error. */
int store_audit_add(struct store *s, const struct store_audit *a);

/* Optional filters for store_audit_list: NULL / 0 fields match everything. */
struct store_audit_filter {
    int64_t before_id;       /* only rows with id < before_id (paging backwards); 0 = newest */
    const char *app_user_id; /* exact match */
    const char *acs_id;      /* exact match */
    const char *action;      /* exact match */
};

/* Up to limit (1..STORE_LIST_MAX) rows, NEWEST first, matching f (NULL = all); *n receives the
 * count. Filters scan the table (no index, to keep appends cheap): for tests and the CLI. */
int store_audit_list(struct store *s, const struct store_audit_filter *f, int limit,
                     struct store_audit *out, int *n);

/* Retention: deletes at most limit (1..STORE_PRUNE_MAX) of the rows with ts_ms < before_ms,
 * oldest first, in one short write transaction; *deleted (may be NULL) receives the count. A
 * count below limit means no such row is left (as of this call). Callers loop over batches so
 * the single writer is never held for long. An index on ts_ms makes a batch a range seek. 0,
 * TV_ERR_INVALID (limit out of range) or a store error (nothing deleted). */
int store_audit_prune(struct store *s, int64_t before_ms, int limit, int64_t *deleted);

#endif
