/* Mappings from an app user to the ACS identity created for it (or a standalone "guest"
 * identity with no app user), bound to the ACS resource it was created in. Deleting a mapping
 * queues the ACS delete in the outbox (outbox.h) in the same transaction. Thread-safe. */
#ifndef TV_STORE_USERS_H
#define TV_STORE_USERS_H

#include <stdint.h>

#include "store/store.h"

/* Plain value type. */
struct store_user {
    char app_user_id[STORE_ID_MAX + 1]; /* "" for a standalone identity */
    char acs_id[STORE_ID_MAX + 1];
    char resource[STORE_ID_MAX + 1]; /* ACS resource host it belongs to ("host[:port]") */
    int64_t created_ms;              /* ms since the epoch */
    int64_t last_issued_ms;          /* 0 = never */
    int64_t revoked_ms;              /* when its tokens were last revoked; 0 = never */
};

/* The mapping of app_user_id (non-empty). 0, TV_ERR_NOT_FOUND or TV_ERR_INVALID (empty or
 * longer than STORE_ID_MAX). *out untouched on failure. */
int store_user_get(struct store *s, const char *app_user_id, struct store_user *out);

/* The mapping (app user or standalone) of an ACS identity id. 0, TV_ERR_NOT_FOUND,
 * TV_ERR_INVALID. */
int store_user_get_by_acs(struct store *s, const char *acs_id, struct store_user *out);

/* Inserts u (acs_id and resource required and non-empty; app_user_id "" for a standalone
 * identity). Durable before it returns (committed to the WAL). TV_ERR_CONFLICT when the
 * app_user_id (non-empty) or the acs_id already has a mapping - the UNIQUE constraints are the
 * backstop for concurrent first requests; TV_ERR_INVALID for an over-long or missing field. */
int store_user_insert(struct store *s, const struct store_user *u);

/* Records that a token was issued for acs_id at ms. 0 or TV_ERR_NOT_FOUND. */
int store_user_touch_issued(struct store *s, const char *acs_id, int64_t ms);

/* Records that acs_id's tokens were revoked at ms. 0 or TV_ERR_NOT_FOUND. */
int store_user_set_revoked(struct store *s, const char *acs_id, int64_t ms);

/* Tells every process sharing the database to drop what it caches for acs_id's mapping (its
 * tokens, the mapping), without changing the row: PostgreSQL notifies as a revoke does; a
 * SQLite store has no other process to tell (0). 0 or a store error (nothing mapped: 0). */
int store_user_invalidate(struct store *s, const char *acs_id);

/* Up to limit (1..STORE_LIST_MAX) app-user mappings (standalone identities excluded) ordered by
 * app_user_id (byte order), starting after the cursor `after` (exclusive; NULL or "" = from
 * the start). out holds at least limit entries; *n receives the count (< limit: last page).
 * The next page's cursor is out[*n - 1].app_user_id. TV_ERR_INVALID for a bad limit. */
int store_user_list(struct store *s, const char *after, int limit, struct store_user *out, int *n);

/* Decides whether store_user_list_kept returns a row: non-zero keeps it. ctx is the caller's. */
typedef int (*store_user_keep_fn)(const struct store_user *u, void *ctx);

/* store_user_list, counting only the rows keep() accepts: the others are passed over (keep may
 * note them) and the listing goes on behind them, so the page holds limit kept rows unless the
 * table ends first (*n < limit then means the last page, as for store_user_list). The next
 * page's cursor is still out[*n - 1].app_user_id. Reads as many rows as that takes (a table
 * full of passed-over rows is read through), limit rows of scratch memory. TV_ERR_INVALID for a
 * bad limit or a NULL keep, TV_ERR_NOMEM, or a store error. */
int store_user_list_kept(struct store *s, const char *after, int limit, store_user_keep_fn keep,
                         void *ctx, struct store_user *out, int *n);

/* Number of mappings, standalone identities included (for metrics). */
int store_user_count(struct store *s, int64_t *n);

/* Delete, step one: in ONE transaction removes the mapping of acs_id (so it stops issuing at
 * once) and inserts an outbox row {acs_id, its resource, its app user id (NULL for a standalone
 * identity), op "delete", next attempt now_ms}.
 * *outbox_id (may be NULL) receives the row's id for store_outbox_done/retry_later. 0 or
 * TV_ERR_NOT_FOUND when acs_id has no mapping (check store_outbox_pending_for to tell "already
 * being deleted" from "never existed"). */
int store_user_delete_begin(struct store *s, const char *acs_id, int64_t now_ms,
                            int64_t *outbox_id);
/* The same, with the row first due at due_ms (>= now_ms): a caller that attempts the ACS delete
 * itself leases the row for its attempt's deadline, so an outbox worker only takes it if that
 * attempt never reports (crash, restart); on failure the caller reschedules it sooner. */
int store_user_delete_begin_due(struct store *s, const char *acs_id, int64_t now_ms, int64_t due_ms,
                                int64_t *outbox_id);

#endif
