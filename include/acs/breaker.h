/* Circuit breaker of the ACS client (SPEC section 10): a pure state machine over attempt
 * outcomes. It reads no clock (every call takes the monotonic time in ms) and does no I/O;
 * one mutex makes every call thread-safe. Per process: replicas each keep their own. */
#ifndef TV_ACS_BREAKER_H
#define TV_ACS_BREAKER_H

#include <stdint.h>

struct acs_breaker;

enum acs_breaker_state {
    ACS_BREAKER_CLOSED = 0,    /* calls go through; consecutive failures are counted */
    ACS_BREAKER_OPEN = 1,      /* calls fail fast until the open period ends */
    ACS_BREAKER_HALF_OPEN = 2, /* the open period ended: one probe decides */
};

/* What one upstream attempt ended in, as far as the breaker cares. */
enum acs_breaker_outcome {
    ACS_BREAKER_SUCCESS, /* a 2xx answer */
    ACS_BREAKER_FAILURE, /* a 5xx answer, a timeout or a network error */
    ACS_BREAKER_NEUTRAL, /* 429 and other 4xx: ACS answered; it is busy or the call was wrong */
};

struct acs_breaker_stats {
    enum acs_breaker_state state; /* HALF_OPEN also once the open period ended, probe or not */
    int64_t failures;             /* consecutive failures counted while closed */
    int64_t retry_after_s;        /* OPEN: seconds left, rounded up, >= 1; else 0 */
    uint64_t opens;               /* times it opened (from closed, or after a failed probe) */
    uint64_t rejected;            /* attempts refused while open or half-open */
};

/* A breaker that opens after `threshold` consecutive failures (>= 1) for open_ms (>= 1), then
 * lets one probe through. A probe that reports nothing within probe_timeout_ms (>= 1; e.g. the
 * attempt timeout) is given up and the next attempt becomes the probe, so a lost report cannot
 * keep the breaker half-open for ever. 0, TV_ERR_INVALID or TV_ERR_NOMEM; *out untouched on
 * failure. Free with acs_breaker_free. */
int acs_breaker_new(int64_t threshold, int64_t open_ms, int64_t probe_timeout_ms,
                    struct acs_breaker **out);
/* NULL is a no-op. */
void acs_breaker_free(struct acs_breaker *b);

/* Whether an attempt may start at now_ms. Returns 1 (go) or 0 (refused: *retry_after_ms, when
 * not NULL, gets the wait in ms, >= 1: the rest of the open period, or 1000 while a probe is
 * out, whose outcome is not known yet). On 1, *probe is set to 1 when this attempt is the
 * half-open probe: its caller must then report it with acs_breaker_record(probe = 1) or give
 * it up with acs_breaker_abandon, else 0. */
int acs_breaker_admit(struct acs_breaker *b, int64_t now_ms, int *probe, int64_t *retry_after_ms);

/* Whether acs_breaker_admit at now_ms could let an attempt go, without changing the state
 * (no probe is taken): 1 or 0 (refused, counted in `rejected`; *retry_after_ms as for admit).
 * For the check before a call waits for something else (the upstream budget): the probe is
 * only admitted right before the send, so waiting for a slot never runs down its timer. */
int acs_breaker_check(struct acs_breaker *b, int64_t now_ms, int64_t *retry_after_ms);

/* Reports the outcome of an admitted attempt. The probe's outcome decides: success or neutral
 * (ACS answered) closes the breaker, failure opens it again for open_ms. Outcomes of other
 * attempts count only while closed: a failure adds one (the threshold-th opens the breaker), a
 * success resets the count, neutral leaves it; while open or half-open they are ignored (they
 * were admitted before the breaker opened, and the probe alone decides). Returns 1 when this
 * outcome opened the breaker (from closed or after the probe), else 0. */
int acs_breaker_record(struct acs_breaker *b, int64_t now_ms, int probe,
                       enum acs_breaker_outcome outcome);

/* Gives back the probe slot of an attempt admitted as the probe that never started or whose
 * outcome says nothing about ACS (e.g. its deadline passed first, shutdown): the next attempt
 * becomes the probe. */
void acs_breaker_abandon(struct acs_breaker *b, int64_t now_ms);

/* The state as seen at now_ms. */
void acs_breaker_stats_get(struct acs_breaker *b, int64_t now_ms, struct acs_breaker_stats *out);

/* "closed", "open" or "half_open". */
const char *acs_breaker_state_name(enum acs_breaker_state s);

#endif
