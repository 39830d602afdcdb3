/* The upstream budget's arithmetic (SPEC section 10, README "Upstream budget"): the setting
 * "op=N/Ws,..." and the rules of its slots. Each ACS operation has N slots; a slot holds the
 * time (ms since the epoch, on the store's clock) it was last used, stamped a little ahead ("hold")
 * to cover the way from the grant to ACS. A slot is free again once W has passed since that stamp,
 * so no interval of W sees more than N uses at ACS. The store keeps the slots (store/acs_budget.h)
 * and runs these rules in SQL; this module is their one definition, pure and thread-safe. */
#ifndef TV_CORE_BUDGET_H
#define TV_CORE_BUDGET_H

#include <stddef.h>
#include <stdint.h>

#include "core/acsnames.h"
#include "core/ratelimit.h"

/* The default: ACS's documented limits per resource. */
#define BUDGET_DEFAULT "create=1000/30s,issue=1000/30s,revoke=500/30s,delete=500/30s,teams=500/30s"
/* How far ahead of the grant a slot is stamped: it covers the grant's way to ACS (the engine
 * starts a granted attempt within BUDGET_GRANT_TTL_MS or asks again; the rest is the send). */
#define BUDGET_HOLD_MS 500
#define BUDGET_GRANT_TTL_MS 250
/* A stamp further ahead than now + hold + this is a wall clock that went backwards (or a
 * replica's clock far ahead): it is brought back to now + hold, so a jump never locks a slot
 * for more than W + hold + this. The tolerance keeps replicas with a little skew from pulling
 * each other's fresh stamps back. */
#define BUDGET_SKEW_MS 1000

/* The setting parsed: one limit per operation, in core/acsnames.h's ACS_OPS order. off = 1 in
 * the whole struct (the setting "off") or in one entry ("op=off") means no budget there. */
struct budget_cfg {
    int off;
    struct ratelimit op[ACS_OP_COUNT];
};

/* Parses "off" or a comma-separated list of "name=N/Ws" or "name=off", each name at most once
 * (names: create, issue, revoke, delete, teams; "teams_exchange" is the same as "teams");
 * an operation not named keeps its part of BUDGET_DEFAULT. 0, or TV_ERR_INVALID with a
 * one-line reason naming the bad part in err; *out untouched on failure. */
int budget_parse(const char *s, struct budget_cfg *out, char *err, size_t errlen);

/* The name the setting uses for op (ACS_OPS index): "create", ..., "teams". "?" out of range. */
const char *budget_op_name(int op);

/* a + b, saturating at INT64_MAX / INT64_MIN instead of overflowing. */
int64_t budget_add(int64_t a, int64_t b);

/* A slot's stamp as it should be kept at now (see BUDGET_SKEW_MS): used itself, or now + hold
 * when used lies beyond now + hold + BUDGET_SKEW_MS. */
int64_t budget_slot_normalize(int64_t used_ms, int64_t now_ms, int64_t hold_ms);

/* 1 when a slot stamped used_ms may be used at now under a window of window_ms: at least one
 * whole window has passed since the stamp (used <= now - W). */
int budget_slot_free(int64_t used_ms, int64_t now_ms, int64_t window_ms);

/* The stamp a slot taken at now gets: now + hold. */
int64_t budget_slot_stamp(int64_t now_ms, int64_t hold_ms);

/* When the slot with the oldest stamp oldest_ms frees: oldest + W. */
int64_t budget_next_free(int64_t oldest_ms, int64_t window_ms);

/* When a call that waits behind `ahead` others of the same operation gets a slot, at the
 * earliest: the next slot frees at next_free_ms (<= now: one is free now) and the N slots come
 * round once per window plus hold, so ahead / N such periods after it. Saturating. */
int64_t budget_fit_at(int64_t next_free_ms, int64_t now_ms, int64_t ahead,
                      const struct ratelimit *rl, int64_t hold_ms);

#endif
