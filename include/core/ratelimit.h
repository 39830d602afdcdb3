/* Rate limits written "N/Ws" (a burst of N events, refilled evenly over W seconds) or "off",
 * and the arithmetic of one limited key as GCRA (the generic cell rate algorithm): the whole
 * state of a key is one int64, its theoretical arrival time ("tat", wall-clock ms), so a
 * caller can keep it anywhere (memory, a database row). Pure functions; thread-safe. */
#ifndef TV_CORE_RATELIMIT_H
#define TV_CORE_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#define RATELIMIT_BURST_MAX 1000000     /* N */
#define RATELIMIT_WINDOW_S_MAX 31536000 /* W: one year */
#define RATELIMIT_TEXT_MAX 24           /* "1000000/31536000s" + NUL, with room */

/* A parsed limit. off = 1 means "no limit" (the other fields are then 0). */
struct ratelimit {
    int off;
    int64_t burst;       /* N, 1..RATELIMIT_BURST_MAX */
    int64_t window_ms;   /* W in ms */
    int64_t interval_ms; /* time one event takes to refill: ceil(W / N), >= 1 */
};

/* Parses "N/Ws" (decimal digits only, no blanks, N 1..RATELIMIT_BURST_MAX, W
 * 1..RATELIMIT_WINDOW_S_MAX) or "off". 0, or TV_ERR_INVALID with a one-line reason in err
 * (errlen may be 0); *out is untouched on failure. */
int ratelimit_parse(const char *s, struct ratelimit *out, char *err, size_t errlen);

/* A key's state as it should be kept at now_ms (>= 0): a tat further ahead than one whole
 * window (possible only when the wall clock went backwards) becomes exactly one window ahead.
 * Callers that store the state store this value when it differs from tat, so a clock jump
 * never locks a key for longer than W after it. */
int64_t ratelimit_normalize(const struct ratelimit *rl, int64_t tat, int64_t now_ms);

/* Whether one more event for a key whose state is tat fits at now_ms (>= 0). tat 0 (or any
 * tat at or before now) is a full bucket; tat is normalized first. Returns 1 (fits) or 0
 * (over the limit; then *retry_after_ms, when not NULL, receives the wait until one event
 * fits, >= 1). An off limit always fits. */
int ratelimit_fits(const struct ratelimit *rl, int64_t tat, int64_t now_ms,
                   int64_t *retry_after_ms);

/* The state after one more event at now_ms (call it only after ratelimit_fits said 1; it
 * saturates instead of overflowing either way). An off limit returns 0. */
int64_t ratelimit_take(const struct ratelimit *rl, int64_t tat, int64_t now_ms);

/* 1 when a key with this state is back to a full bucket at now_ms (its record may then be
 * forgotten: a missing record means the same), else 0. */
int ratelimit_idle(int64_t tat, int64_t now_ms);

/* Whole seconds to announce in Retry-After for a wait of ms: rounded up, at least 1. */
int64_t ratelimit_retry_after_s(int64_t ms);

#endif
