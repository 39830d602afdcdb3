/* Bench-only reuse of signed tokens (--reuse-signed-token-s N): remembers the last token issued
 * for (identity, acsScope, expiresInMinutes, revocation generation) within one N-second bucket
 * of the wall clock, so repeated issues skip the RSA signature. Not an ACS behaviour: it lets a
 * benchmark treat the emulator like an ACS whose signing cost is not on the measured machine.
 * One mutex over a fixed open-addressing table; thread-safe. Holds tokens: wiped on eviction. */
#ifndef TV_EMULATOR_REUSE_H
#define TV_EMULATOR_REUSE_H

#include <stdint.h>

#define EMU_REUSE_MAX_S 3600 /* a bucket longer than the shortest token lifetime makes no sense */

struct emu_reuse;

/* What a reused token must match exactly. The generation keys out every token signed before
 * a revoke; deletion is the caller's (a deleted identity gets no token at all). */
struct emu_reuse_key {
    const char *id;        /* "8:acs:..." */
    const char *acs_scope; /* the token's acsScope text ("chat,voip") */
    int64_t expires_in_minutes;
    uint64_t gen;
};

/* Creates an empty cache with buckets of bucket_s (1..EMU_REUSE_MAX_S) seconds.
 * 0, TV_ERR_INVALID or TV_ERR_NOMEM. */
int emu_reuse_new(int64_t bucket_s, struct emu_reuse **out);
/* Wipes every stored token and frees the cache. NULL is a no-op. */
void emu_reuse_free(struct emu_reuse *r);
/* Looks k up for wall-clock second now_s. On a hit (same key and bucket, and more than bucket_s
 * seconds of the token's life left) returns 0 with a copy of the token in *token (malloc'd; the
 * caller wipes and frees it) and its exp in *exp_s. TV_ERR_NOT_FOUND on a miss, TV_ERR_NOMEM;
 * the out-params are untouched then. */
int emu_reuse_get(struct emu_reuse *r, const struct emu_reuse_key *k, int64_t now_s, char **token,
                  int64_t *exp_s);
/* Remembers token (expiring at exp_s, minted at now_s) for k, replacing any older token of the
 * same identity, scopes and minutes. Best effort: out of memory it stores nothing. */
void emu_reuse_put(struct emu_reuse *r, const struct emu_reuse_key *k, int64_t now_s,
                   const char *token, int64_t exp_s);

#endif
