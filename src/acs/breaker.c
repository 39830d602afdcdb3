/* Circuit breaker state machine. Times are kept as "since" stamps plus durations rather than
 * deadlines, so a clock that went backwards (not expected of a monotonic clock, but cheap to
 * survive) never stretches a wait beyond one open period, and no sum can overflow. */
#include "acs/breaker.h"

#include <pthread.h>
#include <stdlib.h>

#include "core/err.h"

/* Wait announced to attempts refused while the probe is out: its outcome usually comes within
 * one ACS round trip, so one second (the smallest Retry-After) is the honest answer. */
#define PROBE_WAIT_MS 1000

struct acs_breaker {
    pthread_mutex_t lock;
    int64_t threshold;
    int64_t open_ms;
    int64_t probe_timeout_ms;
    /* Guarded by lock. */
    enum acs_breaker_state state; /* CLOSED, OPEN or HALF_OPEN (with a probe out) */
    int64_t failures;             /* consecutive, while closed */
    int64_t opened_ms;            /* OPEN: when it opened */
    int64_t probe_ms;             /* HALF_OPEN: when the probe was admitted */
    uint64_t opens;
    uint64_t rejected;
};

const char *acs_breaker_state_name(enum acs_breaker_state s)
{
    switch (s) {
    case ACS_BREAKER_CLOSED:
        return "closed";
    case ACS_BREAKER_OPEN:
        return "open";
    case ACS_BREAKER_HALF_OPEN:
        return "half_open";
    }
    return "unknown";
}

int acs_breaker_new(int64_t threshold, int64_t open_ms, int64_t probe_timeout_ms,
                    struct acs_breaker **out)
{
    struct acs_breaker *b;

    if (out == NULL || threshold < 1 || open_ms < 1 || probe_timeout_ms < 1)
        return TV_ERR_INVALID;
    b = calloc(1, sizeof(*b));
    if (b == NULL)
        return TV_ERR_NOMEM;
    if (pthread_mutex_init(&b->lock, NULL) != 0) {
        free(b);
        return TV_ERR_NOMEM;
    }
    b->threshold = threshold;
    b->open_ms = open_ms;
    b->probe_timeout_ms = probe_timeout_ms;
    b->state = ACS_BREAKER_CLOSED;
    *out = b;
    return 0;
}

void acs_breaker_free(struct acs_breaker *b)
{
    if (b == NULL)
        return;
    pthread_mutex_destroy(&b->lock);
    free(b);
}

/* Time elapsed since `since`, never negative (a clock seen going backwards counts as none). */
static int64_t elapsed(int64_t now_ms, int64_t since_ms)
{
    return now_ms > since_ms ? now_ms - since_ms : 0;
}

/* Lock held. Opens (or opens again) the breaker at now_ms. */
static void breaker_open(struct acs_breaker *b, int64_t now_ms)
{
    b->state = ACS_BREAKER_OPEN;
    b->opened_ms = now_ms;
    b->failures = 0;
    b->opens++;
}

int acs_breaker_admit(struct acs_breaker *b, int64_t now_ms, int *probe, int64_t *retry_after_ms)
{
    int64_t wait = 0;
    int go = 0;

    *probe = 0;
    pthread_mutex_lock(&b->lock);
    switch (b->state) {
    case ACS_BREAKER_CLOSED:
        go = 1;
        break;
    case ACS_BREAKER_OPEN: {
        int64_t e = elapsed(now_ms, b->opened_ms);
        if (e < b->open_ms) {
            wait = b->open_ms - e;
            break;
        }
        b->state = ACS_BREAKER_HALF_OPEN;
        b->probe_ms = now_ms;
        *probe = 1;
        go = 1;
        break;
    }
    case ACS_BREAKER_HALF_OPEN:
        if (elapsed(now_ms, b->probe_ms) >= b->probe_timeout_ms) {
            /* The probe's report was lost: this attempt takes its place. */
            b->probe_ms = now_ms;
            *probe = 1;
            go = 1;
            break;
        }
        wait = PROBE_WAIT_MS;
        break;
    }
    if (!go)
        b->rejected++;
    pthread_mutex_unlock(&b->lock);
    if (!go && retry_after_ms != NULL)
        *retry_after_ms = wait;
    return go;
}

int acs_breaker_check(struct acs_breaker *b, int64_t now_ms, int64_t *retry_after_ms)
{
    int64_t wait = 0;
    int go = 0;

    pthread_mutex_lock(&b->lock);
    switch (b->state) {
    case ACS_BREAKER_CLOSED:
        go = 1;
        break;
    case ACS_BREAKER_OPEN: {
        int64_t e = elapsed(now_ms, b->opened_ms);
        go = e >= b->open_ms;
        wait = go ? 0 : b->open_ms - e;
        break;
    }
    case ACS_BREAKER_HALF_OPEN:
        go = elapsed(now_ms, b->probe_ms) >= b->probe_timeout_ms;
        wait = PROBE_WAIT_MS;
        break;
    }
    if (!go)
        b->rejected++;
    pthread_mutex_unlock(&b->lock);
    if (!go && retry_after_ms != NULL)
        *retry_after_ms = wait;
    return go;
}

int acs_breaker_record(struct acs_breaker *b, int64_t now_ms, int probe,
                       enum acs_breaker_outcome outcome)
{
    uint64_t opens;

    pthread_mutex_lock(&b->lock);
    opens = b->opens;
    if (probe) {
        /* A probe given up for lateness may still report; only one that is still the probe
         * (the breaker half-open) decides. */
        if (b->state == ACS_BREAKER_HALF_OPEN) {
            if (outcome == ACS_BREAKER_FAILURE) {
                breaker_open(b, now_ms);
            } else {
                b->state = ACS_BREAKER_CLOSED;
                b->failures = 0;
            }
        }
    } else if (b->state == ACS_BREAKER_CLOSED) {
        if (outcome == ACS_BREAKER_SUCCESS)
            b->failures = 0;
        else if (outcome == ACS_BREAKER_FAILURE && ++b->failures >= b->threshold)
            breaker_open(b, now_ms);
    }
    opens = b->opens - opens;
    pthread_mutex_unlock(&b->lock);
    return opens != 0;
}

void acs_breaker_abandon(struct acs_breaker *b, int64_t now_ms)
{
    pthread_mutex_lock(&b->lock);
    if (b->state == ACS_BREAKER_HALF_OPEN) {
        /* Back to "open, period over": the next admit makes the next probe. */
        b->state = ACS_BREAKER_OPEN;
        b->opened_ms = now_ms - b->open_ms;
    }
    pthread_mutex_unlock(&b->lock);
}

void acs_breaker_stats_get(struct acs_breaker *b, int64_t now_ms, struct acs_breaker_stats *out)
{
    pthread_mutex_lock(&b->lock);
    out->state = b->state;
    out->failures = b->failures;
    out->retry_after_s = 0;
    if (b->state == ACS_BREAKER_OPEN) {
        int64_t e = elapsed(now_ms, b->opened_ms);
        if (e >= b->open_ms)
            out->state = ACS_BREAKER_HALF_OPEN; /* the next attempt is the probe */
        else
            out->retry_after_s = (b->open_ms - e + 999) / 1000;
    }
    out->opens = b->opens;
    out->rejected = b->rejected;
    pthread_mutex_unlock(&b->lock);
}
