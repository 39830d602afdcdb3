/* GCRA over one int64 per key. With interval T = ceil(W/N) and tolerance tau = (N-1)*T, an
 * event at time t fits when max(tat, t) - t <= tau, and then moves tat to max(tat, t) + T.
 * After N events at one instant tat = t + N*T, so the (N+1)th has to wait T; the bucket is
 * full again once t >= tat. Every sum saturates, so no input can overflow. */
#include "core/ratelimit.h"

#include <stdio.h>
#include <string.h>

#include "core/err.h"

static int64_t sat_add(int64_t a, int64_t b)
{
    /* b is never negative here. */
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

/* Reads 1..max as decimal digits at *s (no sign, no blanks), advancing *s. */
static int parse_bounded(const char **s, int64_t max, int64_t *out)
{
    int64_t v = 0;
    int digits = 0;

    while (**s >= '0' && **s <= '9') {
        if (++digits > 9)
            return TV_ERR_INVALID;
        v = v * 10 + (**s - '0');
        (*s)++;
    }
    if (digits == 0 || v < 1 || v > max)
        return TV_ERR_INVALID;
    *out = v;
    return 0;
}

int ratelimit_parse(const char *s, struct ratelimit *out, char *err, size_t errlen)
{
    struct ratelimit r = {0};
    const char *p = s;
    int64_t n = 0, w = 0;

    if (s != NULL && strcmp(s, "off") == 0) {
        r.off = 1;
        *out = r;
        return 0;
    }
    if (p == NULL || parse_bounded(&p, RATELIMIT_BURST_MAX, &n) != 0 || *p++ != '/' ||
        parse_bounded(&p, RATELIMIT_WINDOW_S_MAX, &w) != 0 || *p++ != 's' || *p != '\0') {
        if (errlen > 0)
            snprintf(err, errlen,
                     "want N/Ws (a burst of N, 1..%d, refilled over W seconds, 1..%d) or off",
                     RATELIMIT_BURST_MAX, RATELIMIT_WINDOW_S_MAX);
        return TV_ERR_INVALID;
    }
    if (n > w * 1000) {
        /* The state counts whole milliseconds: one event refills in at least 1 ms, so a burst
         * larger than W's milliseconds would refill over N ms rather than W s. */
        if (errlen > 0)
            snprintf(err, errlen,
                     "N/Ws refills at most 1000 events a second (N <= 1000 x W); for more, "
                     "give a longer window (e.g. %lld/%llds)",
                     (long long)n, (long long)((n + 999) / 1000));
        return TV_ERR_INVALID;
    }
    r.burst = n;
    r.window_ms = w * 1000;
    r.interval_ms = (r.window_ms + n - 1) / n;
    *out = r;
    return 0;
}

/* The largest tat a key can legitimately have at now is a full window (N*T) ahead. */
int64_t ratelimit_normalize(const struct ratelimit *rl, int64_t tat, int64_t now_ms)
{
    int64_t ceiling;

    if (rl->off)
        return tat;
    ceiling = sat_add(now_ms, rl->burst * rl->interval_ms);
    return tat > ceiling ? ceiling : tat;
}

/* The normalized state, with a past tat read as "now" (a full bucket). */
static int64_t tat_clamp(const struct ratelimit *rl, int64_t tat, int64_t now_ms)
{
    tat = ratelimit_normalize(rl, tat, now_ms);
    return tat < now_ms ? now_ms : tat;
}

int ratelimit_fits(const struct ratelimit *rl, int64_t tat, int64_t now_ms, int64_t *retry_after_ms)
{
    int64_t tau, ahead;

    if (rl->off)
        return 1;
    tau = (rl->burst - 1) * rl->interval_ms;
    ahead = tat_clamp(rl, tat, now_ms) - now_ms; /* 0..N*T, no overflow */
    if (ahead <= tau)
        return 1;
    if (retry_after_ms != NULL)
        *retry_after_ms = ahead - tau;
    return 0;
}

int64_t ratelimit_take(const struct ratelimit *rl, int64_t tat, int64_t now_ms)
{
    int64_t next, ceiling;

    if (rl->off)
        return 0;
    next = sat_add(tat_clamp(rl, tat, now_ms), rl->interval_ms);
    ceiling = sat_add(now_ms, rl->burst * rl->interval_ms);
    return next > ceiling ? ceiling : next;
}

int ratelimit_idle(int64_t tat, int64_t now_ms)
{
    return tat <= now_ms;
}

int64_t ratelimit_retry_after_s(int64_t ms)
{
    if (ms <= 1000)
        return 1;
    return ms / 1000 + (ms % 1000 != 0);
}
