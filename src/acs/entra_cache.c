/* The Entra token cache: one background thread owns every fetch, so any number of readers cause
 * one request to the identity endpoint per token life; readers only copy the current token under
 * a mutex. Deadlines use the monotonic clock (a wall-clock step must not expire or extend a
 * token); the wall clock only turns an expires_on answer into a lifetime, in entra_fetch. */
#include "acs/entra.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"

#define ENTRA_REFRESH_MARGIN_MAX_S 300 /* refresh when 5 minutes remain... */
#define ENTRA_REFRESH_LIFE_DIV 10      /* ...or a tenth of the life, whichever is less... */
/* ...but a token that lives longer than an hour (managed identities get 24 h ones) is refreshed
 * a tenth of its life ahead: 5 minutes of retries would be all an identity endpoint's outage
 * could take before the token ran out, where the Azure libraries refresh such tokens hours
 * ahead. */
#define ENTRA_REFRESH_LONG_LIFE_S 3600
/* Retry schedule after a failed fetch: an identity endpoint that is down is asked again within
 * seconds at first, then once a minute, well inside a token's usual hour. */
#define ENTRA_BACKOFF_BASE_MS 1000
#define ENTRA_BACKOFF_MAX_MS 60000

struct entra_cache {
    pthread_mutex_t mu;
    pthread_cond_t changed; /* a fetch ended, or stop was asked */
    pthread_condattr_t cattr;
    pthread_t thread;
    struct entra_desc desc;
    struct entra_cache_opts opts;
    struct entra_token token; /* guarded by mu */
    int have;                 /* token holds a fetched token */
    int64_t valid_until_ms;   /* monotonic: the token's expiry */
    int64_t usable_until_ms;  /* monotonic: valid_until_ms less the expiry margin */
    int64_t next_fetch_ms;    /* monotonic: the next refresh or retry */
    int64_t started_ms;       /* monotonic: bounds the first wait of entra_token_try */
    long fetches, failures;
    int consecutive_fail;
    atomic_int stop; /* also read by a fetch in flight, which it ends (entra_fetch_cancelable) */
    char last_err[ENTRA_ERR_MAX];
    struct {
        entra_notify_fn fn;
        void *arg;
    } listeners[ENTRA_LISTENERS_MAX]; /* guarded by mu */
};

/* Monotonic deadline -> the absolute timespec pthread_cond_timedwait wants (the condition
 * variable is set to CLOCK_MONOTONIC). */
static struct timespec mono_deadline(int64_t at_ms)
{
    struct timespec ts;
    int64_t now = clock_mono_ms();
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = (int64_t)ts.tv_nsec + (at_ms - now) * 1000000;
    if (ns < 0)
        ns = 0;
    ts.tv_sec += (time_t)(ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    return ts;
}

/* base * 2^(n-1), capped, then jittered down by up to half, so many replicas that failed together
 * do not retry together. */
static int64_t backoff_ms(const struct entra_cache_opts *o, int n)
{
    int64_t w = o->backoff_base_ms;
    unsigned char r = 0;
    for (int i = 1; i < n && w < o->backoff_max_ms; i++)
        w *= 2;
    if (w > o->backoff_max_ms)
        w = o->backoff_max_ms;
    (void)RAND_bytes(&r, 1);
    return w - (w / 2) * r / 255;
}

static int64_t refresh_margin_ms(int64_t lifetime_s)
{
    int64_t margin = lifetime_s * 1000 / ENTRA_REFRESH_LIFE_DIV;
    if (lifetime_s <= ENTRA_REFRESH_LONG_LIFE_S && margin > ENTRA_REFRESH_MARGIN_MAX_S * 1000)
        margin = ENTRA_REFRESH_MARGIN_MAX_S * 1000;
    return margin;
}

/* The expiry margin (see entra.h): 30 s or the attempt timeout, whichever is longer, at most a
 * quarter of the life. */
static int64_t expiry_margin_ms(const struct entra_cache *c, int64_t lifetime_s)
{
    int64_t margin = ENTRA_EXPIRY_MARGIN_S * 1000;
    int64_t cap = lifetime_s * 1000 / ENTRA_EXPIRY_LIFE_DIV;
    if (c->opts.fetch_timeout_ms > margin)
        margin = c->opts.fetch_timeout_ms;
    return margin < cap ? margin : cap;
}

/* Tells the listeners a fetch ended. Called with mu held. */
static void notify_locked(struct entra_cache *c)
{
    for (size_t i = 0; i < ENTRA_LISTENERS_MAX; i++)
        if (c->listeners[i].fn != NULL)
            c->listeners[i].fn(c->listeners[i].arg);
}

static void *worker(void *arg)
{
    struct entra_cache *c = arg;
    struct entra_token fresh;
    char err[ENTRA_ERR_MAX];
    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        int64_t now = clock_mono_ms();
        if (now < c->next_fetch_ms) {
            struct timespec ts = mono_deadline(c->next_fetch_ms);
            int w = pthread_cond_timedwait(&c->changed, &c->mu, &ts);
            (void)w; /* woken, timed out or spurious: the loop re-checks */
            continue;
        }
        pthread_mutex_unlock(&c->mu);
        int64_t start = clock_mono_ms();
        int rc = entra_fetch_cancelable(&c->desc, c->opts.fetch_timeout_ms, clock_wall_ms() / 1000,
                                        &c->stop, &fresh, err, sizeof(err));
        pthread_mutex_lock(&c->mu);
        c->fetches++;
        /* Lifetime counted from the start of the request: the token may be that old. A token
         * that arrives inside its expiry margin would never be handed out: a failed fetch,
         * retried with backoff rather than at once. */
        int64_t valid_until = rc == 0 ? start + fresh.lifetime_s * 1000 : 0;
        int64_t usable_until = rc == 0 ? valid_until - expiry_margin_ms(c, fresh.lifetime_s) : 0;
        if (rc == 0 && usable_until <= clock_mono_ms()) {
            rc = TV_ERR_UPSTREAM_PROTOCOL;
            snprintf(err, sizeof(err),
                     "identity endpoint: the token came with too little life left (%lld s)",
                     (long long)((valid_until - clock_mono_ms()) / 1000));
        }
        if (rc == 0) {
            c->token = fresh;
            c->have = 1;
            c->valid_until_ms = valid_until;
            c->usable_until_ms = usable_until;
            c->next_fetch_ms = usable_until - refresh_margin_ms(fresh.lifetime_s);
            c->consecutive_fail = 0;
            c->last_err[0] = '\0';
            log_msg(LOGL_INFO, NULL, "entra: token fetched, valid for %lld s",
                    (long long)fresh.lifetime_s);
        } else {
            c->failures++;
            c->consecutive_fail++;
            c->next_fetch_ms = clock_mono_ms() + backoff_ms(&c->opts, c->consecutive_fail);
            memcpy(c->last_err, err, sizeof(c->last_err));
            log_msg(LOGL_WARN, NULL, "entra: token fetch failed (%d in a row): %s",
                    c->consecutive_fail, err);
        }
        entra_token_clear(&fresh);
        pthread_cond_broadcast(&c->changed);
        notify_locked(c);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

int entra_cache_start(const struct entra_desc *d, const struct entra_cache_opts *o,
                      struct entra_cache **out)
{
    int rc = TV_ERR_NOMEM;
    char line[ENTRA_DESCRIBE_MAX];
    struct entra_cache *c = calloc(1, sizeof(*c));
    *out = NULL;
    if (c == NULL)
        goto out;
    rc = TV_ERR_INTERNAL;
    if (pthread_condattr_init(&c->cattr) != 0) {
        free(c);
        c = NULL;
        goto out;
    }
    pthread_condattr_setclock(&c->cattr, CLOCK_MONOTONIC);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->changed, &c->cattr);
    c->desc = *d;
    c->opts = *o;
    c->next_fetch_ms = 0; /* fetch at once */
    c->started_ms = clock_mono_ms();
    entra_desc_describe(d, line, sizeof(line));
    log_msg(LOGL_INFO, NULL, "entra: %s", line);
    if (pthread_create(&c->thread, NULL, worker, c) != 0) {
        entra_desc_clear(&c->desc);
        pthread_cond_destroy(&c->changed);
        pthread_condattr_destroy(&c->cattr);
        pthread_mutex_destroy(&c->mu);
        free(c);
        c = NULL;
        goto out;
    }
    *out = c;
    rc = 0;
out:
    return rc;
}

/* Seconds until the next fetch attempt, at least 1 (a Retry-After value). Called with mu held. */
static long retry_after_locked(const struct entra_cache *c, int64_t now)
{
    int64_t wait = c->next_fetch_ms - now;
    return wait <= 1000 ? 1 : (long)((wait + 999) / 1000);
}

/* The copy or the refusal of entra_token_get and entra_token_try. Called with mu held. */
static int token_copy_locked(struct entra_cache *c, char *out, size_t cap, long *retry_after_s,
                             char *err, size_t errlen)
{
    int rc = TV_ERR_UNAVAILABLE;
    int64_t now = clock_mono_ms();
    if (c->have && now < c->usable_until_ms) {
        size_t len = strlen(c->token.access_token);
        if (len >= cap) {
            rc = TV_ERR_TOO_LARGE;
            goto out;
        }
        memcpy(out, c->token.access_token, len + 1);
        rc = 0;
        goto out;
    }
    if (retry_after_s != NULL)
        *retry_after_s = retry_after_locked(c, now);
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "no Entra token for ACS: %s",
                 c->fetches == 0  ? "the first fetch is still under way"
                 : c->last_err[0] ? c->last_err
                                  : "the token expired");
out:
    return rc;
}

int entra_token_get(struct entra_cache *c, char *out, size_t cap, long *retry_after_s, char *err,
                    size_t errlen)
{
    int rc;
    pthread_mutex_lock(&c->mu);
    if (c->fetches == 0) {
        struct timespec ts = mono_deadline(clock_mono_ms() + c->opts.first_wait_ms);
        while (c->fetches == 0 && !c->stop) {
            if (pthread_cond_timedwait(&c->changed, &c->mu, &ts) == ETIMEDOUT)
                break;
        }
    }
    rc = token_copy_locked(c, out, cap, retry_after_s, err, errlen);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int entra_token_try(struct entra_cache *c, char *out, size_t cap, int *first_pending,
                    long *retry_after_s, char *err, size_t errlen)
{
    int rc;
    pthread_mutex_lock(&c->mu);
    rc = token_copy_locked(c, out, cap, retry_after_s, err, errlen);
    *first_pending = rc == TV_ERR_UNAVAILABLE && c->fetches == 0 && !c->stop &&
                     clock_mono_ms() < c->started_ms + c->opts.first_wait_ms;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int entra_cache_listen(struct entra_cache *c, entra_notify_fn fn, void *arg)
{
    int rc = TV_ERR_TOO_LARGE;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < ENTRA_LISTENERS_MAX; i++) {
        if (c->listeners[i].fn == NULL) {
            c->listeners[i].fn = fn;
            c->listeners[i].arg = arg;
            rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void entra_cache_unlisten(struct entra_cache *c, entra_notify_fn fn, void *arg)
{
    /* The callbacks run under mu: holding it here means none is running. */
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < ENTRA_LISTENERS_MAX; i++) {
        if (c->listeners[i].fn == fn && c->listeners[i].arg == arg) {
            c->listeners[i].fn = NULL;
            c->listeners[i].arg = NULL;
        }
    }
    pthread_mutex_unlock(&c->mu);
}

void entra_cache_stats(struct entra_cache *c, struct entra_cache_stats *out)
{
    int64_t now = clock_mono_ms();
    pthread_mutex_lock(&c->mu);
    out->fetches = c->fetches;
    out->failures = c->failures;
    out->consecutive_fail = c->consecutive_fail;
    out->have_token = c->have && now < c->usable_until_ms;
    out->kind = c->desc.kind;
    out->expires_in_s =
        c->have && now < c->valid_until_ms ? (long)((c->valid_until_ms - now) / 1000) : 0;
    out->retry_after_s = retry_after_locked(c, now);
    memcpy(out->last_err, c->last_err, sizeof(out->last_err));
    pthread_mutex_unlock(&c->mu);
}

enum entra_kind entra_cache_kind(const struct entra_cache *c)
{
    return c->desc.kind; /* set before the thread starts, never written after */
}

void entra_cache_stop(struct entra_cache *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_broadcast(&c->changed);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    entra_token_clear(&c->token);
    entra_desc_clear(&c->desc);
    pthread_cond_destroy(&c->changed);
    pthread_condattr_destroy(&c->cattr);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

int entra_cache_from_config(const struct config *cfg, struct entra_cache **out)
{
    struct entra_env env;
    struct entra_desc d;
    char err[ENTRA_ERR_MAX];
    int rc = 0;
    const struct entra_cache_opts o = {.fetch_timeout_ms = cfg->acs_attempt_timeout_ms,
                                       .backoff_base_ms = ENTRA_BACKOFF_BASE_MS,
                                       .backoff_max_ms = ENTRA_BACKOFF_MAX_MS,
                                       /* Past the fetch's own deadline, so a waiter
                                        * hears why the first fetch failed. */
                                       .first_wait_ms = cfg->acs_attempt_timeout_ms + 1000};
    *out = NULL;
    if (cfg->acs_connection_string[0] != '\0' || cfg->acs_endpoint[0] == '\0')
        goto out;
    entra_env_from_process(&env);
    rc = entra_select(&env, cfg->imds_endpoint, &d, err, sizeof(err));
    if (rc != 0) {
        log_msg(LOGL_ERROR, NULL, "keyless mode: %s", err);
        goto out;
    }
    rc = entra_cache_start(&d, &o, out);
    entra_desc_clear(&d);
out:
    return rc;
}
