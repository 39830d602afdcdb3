/* Private to src/store: the PostgreSQL implementations of the table functions, one
 * pg_<table>.c per table file. Each public store_* function checks its arguments (the shared
 * validation, so both backends refuse the same input), then calls its pgstore_* twin when
 * s->kind is STORE_PG; the twins take arguments already checked and behave as the SQLite code
 * does (same results, same error codes). */
#ifndef TV_STORE_PG_TABLES_H
#define TV_STORE_PG_TABLES_H

#include <stddef.h>
#include <stdint.h>

#include "store/accounts.h"
#include "store/acs_budget.h"
#include "store/apikeys.h"
#include "store/audit.h"
#include "store/login_failures.h"
#include "store/outbox.h"
#include "store/refresh.h"
#include "store/users.h"

/* pg_users.c */
int pgstore_user_get(struct store *s, const char *app_user_id, struct store_user *out);
int pgstore_user_get_by_acs(struct store *s, const char *acs_id, struct store_user *out);
int pgstore_user_insert(struct store *s, const struct store_user *u);
int pgstore_user_touch_issued(struct store *s, const char *acs_id, int64_t ms);
int pgstore_user_set_revoked(struct store *s, const char *acs_id, int64_t ms);
int pgstore_user_invalidate(struct store *s, const char *acs_id);
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
int pgstore_outbox_take(struct store *s, int64_t now_ms, int64_t until_ms, int limit,
                        struct store_outbox_row *rows, int *n);
int pgstore_outbox_done(struct store *s, int64_t id);
int pgstore_outbox_retry_later(struct store *s, int64_t id, int64_t next_ms, const char *err);
int pgstore_outbox_pending_for(struct store *s, const char *acs_id, int *found);
int pgstore_outbox_pending_for_user(struct store *s, const char *app_user_id, int *found,
                                    char *acs_id);
int pgstore_outbox_lease(struct store *s, int64_t id, int64_t until_ms);
int pgstore_outbox_release(struct store *s, int64_t id, int64_t due_ms);
int pgstore_outbox_count(struct store *s, int64_t *n);
int pgstore_outbox_next_due(struct store *s, int64_t *next_ms, int *found);
int pgstore_outbox_get(struct store *s, int64_t id, struct store_outbox_row *out);
int pgstore_outbox_retry_now(struct store *s, int64_t id, int64_t now_ms,
                             struct store_outbox_retry *out);

/* pg_apikeys.c */
int pgstore_apikey_insert(struct store *s, const struct store_apikey *k);
int pgstore_apikey_get_by_key_id(struct store *s, const char *key_id, struct store_apikey *out);
int pgstore_apikey_get(struct store *s, const char *name, struct store_apikey *out);
int pgstore_apikey_list(struct store *s, const char *after, int limit, struct store_apikey *out,
                        int *n);
int pgstore_apikey_revoke(struct store *s, const char *name, int64_t ms);
int pgstore_apikey_last_used(struct store *s, const char *key_id, int64_t *last, int *has);
int pgstore_apikey_touch(struct store *s, const char *key_id, int64_t ms);
int pgstore_apikey_rotate(struct store *s, const char *name, const char *cur_key_id,
                          const struct store_apikey *next, int64_t prev_expires_ms);

/* pg_accounts.c */
int pgstore_account_upsert(struct store *s, const struct store_account *a, int *created);
int pgstore_account_get(struct store *s, const char *name, struct store_account *out);
int pgstore_account_passwd(struct store *s, const char *name, const char *password_hash,
                           int64_t updated_ms);
int pgstore_account_rehash(struct store *s, const char *name, const char *old_hash,
                           const char *new_hash);
int pgstore_account_epoch(struct store *s, const char *name, int64_t *epoch, int *has);
int pgstore_account_delete(struct store *s, const char *name);
int pgstore_account_list(struct store *s, const char *after, int limit, struct store_account *out,
                         int *n);
int pgstore_account_logout(struct store *s, const char *name);
/* pg_refresh.c */
int pgstore_refresh_insert(struct store *s, const struct store_refresh *r);
int pgstore_refresh_get(struct store *s, const char *id, struct store_refresh *out);
int pgstore_refresh_rotate(struct store *s, const char *old_id, int64_t now_ms,
                           const struct store_refresh *next);
int pgstore_refresh_revoke_family(struct store *s, const char *family, int64_t *removed);
int pgstore_refresh_revoke_account(struct store *s, const char *account, int64_t *removed);
int pgstore_refresh_prune(struct store *s, int64_t now_ms, int64_t *removed);
int pgstore_refresh_count(struct store *s, int64_t *n);

/* pg_meta.c */
int pgstore_meta_get(struct store *s, const char *key, void *buf, size_t cap, size_t *len);
int pgstore_meta_put(struct store *s, const char *key, const void *data, size_t len);
int pgstore_meta_put_if_absent(struct store *s, const char *key, const void *data, size_t len,
                               int *inserted);
int pgstore_meta_delete(struct store *s, const char *key);

/* pg_login_failures.c */
int pgstore_login_failure_get(struct store *s, const char *name, int64_t *tat_ms);
int pgstore_login_failure_add(struct store *s, const char *name, const struct ratelimit *rl,
                              int64_t now_ms, int64_t *tat_ms);
int pgstore_login_failure_refund(struct store *s, const char *name, const struct ratelimit *rl,
                                 int64_t now_ms);
int pgstore_login_failure_normalize(struct store *s, const char *name, const struct ratelimit *rl,
                                    int64_t now_ms);
int pgstore_login_failure_prune(struct store *s, int64_t now_ms, int *removed);
int pgstore_login_failure_count(struct store *s, int64_t *n);

/* pg_audit.c */
int pgstore_audit_add(struct store *s, const struct store_audit *a);
int pgstore_audit_list(struct store *s, const struct store_audit_filter *f, int limit,
                       struct store_audit *out, int *n);
int pgstore_audit_prune(struct store *s, int64_t before_ms, int limit, int64_t *deleted);

/* pg_acs_budget.c */
int pgstore_acs_budget_take(struct store *s, struct store_budget_take *t);

#endif
