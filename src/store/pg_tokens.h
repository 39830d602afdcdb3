/* Private to src/store: the PostgreSQL halves of the kept token cache (pg_tokens.c); the public
 * functions in tokens.c check their arguments and call these when s->kind is STORE_PG. */
#ifndef TV_STORE_PG_TOKENS_H
#define TV_STORE_PG_TOKENS_H

#include <stdint.h>

#include "store/tokens.h"

int pgstore_token_put(struct store *s, const struct store_token *t);
int pgstore_token_get(struct store *s, const char *acs_id, const char *scopes, int minutes,
                      struct store_token *out);
int pgstore_token_purge(struct store *s, const char *acs_id, int64_t *removed);
int pgstore_token_prune(struct store *s, int64_t before_ms, int limit, int64_t *removed);
int pgstore_token_count(struct store *s, int64_t *n);

#endif
