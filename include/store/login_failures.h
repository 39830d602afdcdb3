/* Failed logins per user name, kept as the GCRA state of the login limit (core/ratelimit.h)
 * in the database, so several processes sharing it share one allowance. One row per name;
 * rows whose bucket is full again are pruned. Thread-safe; every call blocks on the store. */
#ifndef TV_STORE_LOGIN_FAILURES_H
#define TV_STORE_LOGIN_FAILURES_H

#include <stdint.h>

#include "core/ratelimit.h"
#include "store/store.h"

/* The state of name: *tat_ms receives its tat, 0 when it has no row (a full bucket).
 * 0, TV_ERR_INVALID (name not 1..STORE_NAME_MAX bytes) or a store error. */
int store_login_failure_get(struct store *s, const char *name, int64_t *tat_ms);

/* Counts one failed login of name at now_ms under rl, in one transaction: reads the row,
 * refuses when its bucket has no room (ratelimit_fits), else advances it with ratelimit_take,
 * writes it back, and drops the rows (of any name) whose bucket is full again at now_ms.
 * *tat_ms (may be NULL) receives the new state, or the unchanged one when refused.
 * 0, TV_ERR_RATE_LIMITED (nothing counted), TV_ERR_INVALID or a store error. A no-op for an
 * off limit. */
int store_login_failure_add(struct store *s, const char *name, const struct ratelimit *rl,
                            int64_t now_ms, int64_t *tat_ms);

/* Takes back one event store_login_failure_add counted for name (a login counted before its
 * check, which then succeeded): tat moves back by one interval, and the row goes when that
 * leaves a full bucket at now_ms. 0 (also when name has no row), TV_ERR_INVALID or a store
 * error. A no-op for an off limit. */
int store_login_failure_refund(struct store *s, const char *name, const struct ratelimit *rl,
                               int64_t now_ms);

/* Stores name's state as ratelimit_normalize says at now_ms, when it differs (after the wall
 * clock went backwards). 0, TV_ERR_INVALID or a store error. */
int store_login_failure_normalize(struct store *s, const char *name, const struct ratelimit *rl,
                                  int64_t now_ms);

/* Drops every row whose bucket is full again at now_ms; *removed (may be NULL) receives how
 * many. For periodic work and tests. */
int store_login_failure_prune(struct store *s, int64_t now_ms, int *removed);

/* Rows held now (tests, metrics). */
int store_login_failure_count(struct store *s, int64_t *n);

#endif
