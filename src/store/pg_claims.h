/* Private to src/store: the PostgreSQL halves of the create-claim functions (pg_claims.c); the
 * public functions in claims.c check their arguments and call these when s->kind is STORE_PG. */
#ifndef TV_STORE_PG_CLAIMS_H
#define TV_STORE_PG_CLAIMS_H

#include <stdint.h>

#include "store/claims.h"

int pgstore_claim_take(struct store *s, const char *app_user_id, int64_t now_ms, int64_t expires_ms,
                       struct store_claim *out);
int pgstore_claim_release(struct store *s, const char *app_user_id);
int pgstore_claim_commit(struct store *s, const struct store_user *u);

#endif
