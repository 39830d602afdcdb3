/* Private to src/store: the PostgreSQL implementations of the table functions, one
 * pg_<table>.c per table file. Each public store_* function checks its arguments (the shared
 * validation, so both backends refuse the same input), then calls its pgstore_* twin when
 * s->kind is STORE_PG; the twins take arguments already checked and behave as the SQLite code
 * does (same results, same error codes). */
#ifndef TV_STORE_PG_TABLES_H
#define TV_STORE_PG_TABLES_H

#include <stdint.h>

#include "store/outbox.h"
#include "store/users.h"

/* pg_users.c */
int pgstore_user_get(struct store *s, const char *app_user_id, struct store_user *out);
int pgstore_user_get_by_acs(struct store *s, const char *acs_id, struct store_user *out);
int pgstore_user_insert(struct store *s, const struct store_user *u);
int pgstore_user_touch_issued(struct store *s, const char *acs_id, int64_t ms);
int pgstore_user_set_revoked(struct store *s, const char *acs_id, int64_t ms);
int pgstore_user_list(struct store *s, const char *after, int limit, struct store_user *out,
                      int *n);
int pgstore_user_count(struct store *s, int64_t *n);
int pgstore_user_delete_begin_due(struct store *s, const char *acs_id, int64_t now_ms,
                                  int64_t due_ms, int64_t *outbox_id);

/* pg_outbox.c */
int pgstore_outbox_add(struct store *s, const char *acs_id, const char *resource, const char *op,
                       int64_t now_ms, int64_t *id);
int pgstore_outbox_due(struct store *s, int64_t now_ms, int limit, struct store_outbox_row *rows,
                       int *n);
int pgstore_outbox_done(struct store *s, int64_t id);
int pgstore_outbox_retry_later(struct store *s, int64_t id, int64_t next_ms, const char *err);
int pgstore_outbox_pending_for(struct store *s, const char *acs_id, int *found);
int pgstore_outbox_pending_for_user(struct store *s, const char *app_user_id, int *found,
                                    char *acs_id);
int pgstore_outbox_lease(struct store *s, int64_t id, int64_t until_ms);
int pgstore_outbox_count(struct store *s, int64_t *n);
int pgstore_outbox_next_due(struct store *s, int64_t *next_ms, int *found);

#endif
