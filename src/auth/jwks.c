/* OIDC key set: a reader-writer-locked array of reference-counted keys. Verifiers take a key
 * reference under the read lock and verify outside it. Keys are fetched by one background thread
 * per set (at startup, when a verifier meets an unknown kid, and periodically), never by a
 * verifier, so a slow or silent JWKS server cannot hold a request thread. */
#include "auth/jwks.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/curlx.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/netaddr.h"

struct jwks {
    pthread_rwlock_t lock; /* guards keys, nkeys, loaded; generation is written under it */
    struct jwk **keys;
    size_t nkeys;
    int loaded; /* a key set has been installed at least once */
    /* Bumped on every install, after the keys are swapped and under the write lock, so a
     * verifier that reads it BEFORE its key lookup never pairs a new number with an old key. */
    atomic_uint_least64_t generation;

    pthread_mutex_t fetch_lock;   /* one fetch at a time, held across the network I/O */
    char *discovered_url;         /* jwks_uri from the discovery document (under fetch_lock) */
    char fetch_err[JWKS_ERR_MAX]; /* why the fetch in progress failed (under fetch_lock) */

    /* The fetcher's schedule. mu is only ever held briefly, never across I/O, so a verifier
     * that asks for a fetch waits for nothing but this bookkeeping. */
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* CLOCK_MONOTONIC; signalled on a wish, on stop, after each attempt */
    int wanted;          /* a verifier met an unknown kid while a fetch was due */
    int inflight;        /* fetches running now (the fetcher's and jwks_refresh's) */
    int stopping;        /* jwks_free has begun */
    int attempts;        /* fetch attempts ended so far */
    int64_t last_end_ms; /* monotonic end of the last attempt (rate limits start from here) */
    int64_t last_ok_ms;  /* monotonic end of the last successful attempt */
    int last_failed;     /* the last attempt failed */
    char last_err[JWKS_ERR_MAX]; /* its reason, for /readyz (under mu) */
    int has_fetcher;
    pthread_t fetcher;
    atomic_int abort_io; /* makes a transfer in progress give up (shutdown) */

    atomic_int_least64_t interval_ms;
    int64_t refresh_every_ms;
    char *jwks_url; /* configured; NULL when discovered or static */
    char *issuer;
    long connect_ms, timeout_ms;
    int allow_http; /* jwks_opts.allow_insecure_http */
};

/* An http(s) URL without blanks, https unless the host is loopback or the set allows http (the
 * same rule config_load applies to the configured URLs; here it also covers a discovered one). */
static int jwks_url_ok(const char *u, int allow_http)
{
    size_t n = strlen(u);

    return n > 0 && n <= JWKS_URL_MAX && netaddr_url_transport_ok(u, allow_http) &&
           !strpbrk(u, " \t\r\n");
}

/* One URL setting of jwks_opts_check: 0 or TV_ERR_INVALID with the reason in why. */
static int jwks_url_check(const char *name, const char *u, int fetched, int allow_http, char *why,
                          size_t cap)
{
    size_t n = strlen(u);
    const char *reason = NULL;

    /* An issuer longer than this could never equal a discovered one (read up to JWKS_URL_MAX)
     * and its discovery URL would not fit: refused even when a key set URL is configured. */
    if (n > JWKS_URL_MAX)
        reason = "longer than the longest URL accepted";
    else if (!fetched)
        return 0; /* an issuer only compared with the tokens' iss claim */
    else if (strpbrk(u, " \t\r\n") != NULL)
        reason = "holds a blank";
    else if (!netaddr_url_transport_ok(u, allow_http))
        reason = "must be https:// (http:// only to a loopback host, or with "
                 "oidc_allow_insecure_http)";
    if (reason == NULL)
        return 0;
    if (cap > 0)
        snprintf(why, cap, "%s: %s (%zu bytes; at most %d)", name, reason, n, JWKS_URL_MAX);
    return TV_ERR_INVALID;
}

int jwks_opts_check(const struct jwks_opts *o, char *why, size_t cap)
{
    int allow = o->allow_insecure_http;
    int has_url = o->jwks_url != NULL && o->jwks_url[0] != '\0';

    if (has_url && jwks_url_check("oidc_jwks_url", o->jwks_url, 1, allow, why, cap) != 0)
        return TV_ERR_INVALID;
    /* Without a key set URL the issuer is fetched from (discovery). */
    if (o->issuer != NULL && o->issuer[0] != '\0' &&
        jwks_url_check("oidc_issuer", o->issuer, !has_url, allow, why, cap) != 0)
        return TV_ERR_INVALID;
    return 0;
}

static void *jwks_fetcher_main(void *arg);

int jwks_new(const struct jwks_opts *o, struct jwks **out)
{
    struct jwks *s;
    pthread_condattr_t ca;
    int rc = TV_ERR_INVALID;

    if (!o || !out || jwks_opts_check(o, NULL, 0) != 0)
        return TV_ERR_INVALID;
    s = calloc(1, sizeof *s);
    if (!s)
        return TV_ERR_NOMEM;
    if (pthread_rwlock_init(&s->lock, NULL) != 0)
        goto fail_alloc;
    if (pthread_mutex_init(&s->fetch_lock, NULL) != 0)
        goto fail_rwlock;
    if (pthread_mutex_init(&s->mu, NULL) != 0)
        goto fail_fetch_lock;
    if (pthread_condattr_init(&ca) != 0)
        goto fail_mu;
    /* A monotonic condvar: a wall-clock jump must not stall or hurry the fetcher. */
    rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 && pthread_cond_init(&s->cv, &ca) == 0
             ? 0
             : TV_ERR_NOMEM;
    pthread_condattr_destroy(&ca);
    if (rc != 0)
        goto fail_mu;
    atomic_init(&s->interval_ms,
                o->refetch_interval_ms > 0 ? o->refetch_interval_ms : JWKS_DEFAULT_REFETCH_MS);
    atomic_init(&s->abort_io, 0);
    atomic_init(&s->generation, 0);
    s->refresh_every_ms = o->refresh_every_ms > 0 ? o->refresh_every_ms : JWKS_DEFAULT_REFRESH_MS;
    s->connect_ms = o->connect_timeout_ms > 0 ? (long)o->connect_timeout_ms : 2000;
    s->timeout_ms = o->timeout_ms > 0 ? (long)o->timeout_ms : 5000;
    s->allow_http = o->allow_insecure_http != 0;
    rc = TV_ERR_NOMEM;
    if (o->jwks_url && *o->jwks_url && !(s->jwks_url = strdup(o->jwks_url)))
        goto fail;
    if (o->issuer && *o->issuer && !(s->issuer = strdup(o->issuer)))
        goto fail;
    if (s->jwks_url || s->issuer) {
        (void)curlx_init(); /* a failure shows as curl_easy_init's */
        if (pthread_create(&s->fetcher, NULL, jwks_fetcher_main, s) != 0)
            goto fail;
        s->has_fetcher = 1;
    }
    *out = s;
    return 0;
fail:
    jwks_free(s);
    return rc;
fail_mu:
    pthread_mutex_destroy(&s->mu);
fail_fetch_lock:
    pthread_mutex_destroy(&s->fetch_lock);
fail_rwlock:
    pthread_rwlock_destroy(&s->lock);
fail_alloc:
    free(s);
    return TV_ERR_NOMEM;
}

static void jwks_keys_free(struct jwk **keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        jwk_free(keys[i]);
    free(keys);
}

void jwks_free(struct jwks *s)
{
    if (!s)
        return;
    if (s->has_fetcher) {
        pthread_mutex_lock(&s->mu);
        s->stopping = 1;
        atomic_store(&s->abort_io, 1);
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        /* The fetcher's transfer sees abort_io within about a second (curl's progress
         * callback), so this does not wait out the fetch timeouts. */
        pthread_join(s->fetcher, NULL);
    }
    jwks_keys_free(s->keys, s->nkeys);
    pthread_rwlock_destroy(&s->lock);
    pthread_mutex_destroy(&s->fetch_lock);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s->discovered_url);
    free(s->jwks_url);
    free(s->issuer);
    free(s);
}

void jwks_set_refetch_interval_ms(struct jwks *s, int64_t ms)
{
    atomic_store(&s->interval_ms, ms < 0 ? 0 : ms);
}

uint64_t jwks_generation(struct jwks *s)
{
    return (uint64_t)atomic_load_explicit(&s->generation, memory_order_acquire);
}

size_t jwks_key_count(struct jwks *s)
{
    size_t n;

    pthread_rwlock_rdlock(&s->lock);
    n = s->nkeys;
    pthread_rwlock_unlock(&s->lock);
    return n;
}

/* Builds the usable keys of a JWKS ({"keys":[...]}) or single-JWK document. Keys sharing a kid
 * are all dropped: which one a token means would be ambiguous. */
static int jwks_parse_doc(const char *json, size_t len, struct jwk ***out, size_t *out_n)
{
    struct json_object *doc = NULL, *arr = NULL;
    struct jwk **keys = NULL;
    size_t n = 0, total;
    int rc = TV_ERR_PARSE;

    if (jsonx_parse(json, len, JWKS_MAX_BODY, &doc) != 0 ||
        !json_object_is_type(doc, json_type_object))
        goto cleanup;
    if (json_object_object_get_ex(doc, "keys", &arr)) {
        if (!json_object_is_type(arr, json_type_array))
            goto cleanup;
        total = json_object_array_length(arr);
    } else {
        total = 1;
    }
    if (total > JWKS_MAX_KEYS)
        total = JWKS_MAX_KEYS;
    rc = TV_ERR_NOMEM;
    keys = calloc(total ? total : 1, sizeof *keys);
    if (!keys)
        goto cleanup;
    for (size_t i = 0; i < total; i++) {
        struct json_object *jk = arr ? json_object_array_get_idx(arr, i) : doc;
        struct jwk *k = NULL;
        int krc = jwk_from_json(jk, &k);
        if (krc == TV_ERR_NOMEM)
            goto cleanup;
        if (krc == 0)
            keys[n++] = k;
    }
    {
        unsigned char drop[JWKS_MAX_KEYS] = {0};
        size_t m = 0;

        for (size_t i = 0; i < n; i++)
            for (size_t j = i + 1; j < n; j++)
                if (*jwk_kid(keys[i]) && strcmp(jwk_kid(keys[i]), jwk_kid(keys[j])) == 0)
                    drop[i] = drop[j] = 1;
        for (size_t i = 0; i < n; i++) {
            if (drop[i])
                jwk_free(keys[i]);
            else
                keys[m++] = keys[i];
        }
        n = m;
    }
    rc = TV_ERR_PARSE;
    if (n == 0)
        goto cleanup;
    *out = keys;
    *out_n = n;
    keys = NULL;
    n = 0;
    rc = 0;
cleanup:
    if (keys)
        jwks_keys_free(keys, n);
    json_object_put(doc);
    return rc;
}

static void jwks_install(struct jwks *s, struct jwk **keys, size_t n)
{
    struct jwk **old;
    size_t old_n;

    pthread_rwlock_wrlock(&s->lock);
    old = s->keys;
    old_n = s->nkeys;
    s->keys = keys;
    s->nkeys = n;
    s->loaded = 1;
    atomic_fetch_add_explicit(&s->generation, 1, memory_order_release);
    pthread_rwlock_unlock(&s->lock);
    /* In-flight verifications hold their own references, so freeing here is safe. */
    jwks_keys_free(old, old_n);
}

int jwks_load_json(struct jwks *s, const char *json, size_t len)
{
    struct jwk **keys = NULL;
    size_t n = 0;
    int rc;

    if (!s || !json)
        return TV_ERR_INVALID;
    rc = jwks_parse_doc(json, len, &keys, &n);
    if (rc == 0)
        jwks_install(s, keys, n);
    return rc;
}

static size_t jwks_curl_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct buf *b = ud;
    size_t n = size * nmemb;

    /* Returning less than n aborts the transfer: that is how the body ceiling is enforced. */
    return buf_append(b, ptr, n) == 0 ? n : 0;
}

static int jwks_curl_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                              curl_off_t ulnow)
{
    struct jwks *s = ud;

    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    /* Non-zero aborts the transfer: jwks_free must not wait for a silent server. */
    return atomic_load(&s->abort_io);
}

/* Blocking GET of url into body (at most JWKS_MAX_BODY). 0 or TV_ERR_UNAVAILABLE. */
static int jwks_http_get(struct jwks *s, const char *url, struct buf *body)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    CURL *c = curl_easy_init();
    CURLcode cc;
    long status = 0;
    int rc = TV_ERR_UNAVAILABLE;

    if (!c)
        return TV_ERR_NOMEM;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    /* No redirects: a JWKS endpoint has a fixed address, and following one would let the
     * document's host steer us to arbitrary (internal) URLs. */
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, s->connect_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, s->timeout_ms);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)JWKS_MAX_BODY);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, jwks_curl_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "tokenvend-jwks");
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, jwks_curl_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, s);
    cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        log_msg(LOGL_WARN, NULL, "jwks: GET %s failed: %s", url,
                errbuf[0] ? errbuf : curl_easy_strerror(cc));
        /* Both parts bounded to fit the 256-byte field: curl's message is cut, never the
         * build (-O1 sees an unbounded %s into it as a possible truncation). */
        snprintf(s->fetch_err, sizeof s->fetch_err, "GET %.150s: %.90s", url,
                 errbuf[0] ? errbuf : curl_easy_strerror(cc));
        goto cleanup;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        log_msg(LOGL_WARN, NULL, "jwks: GET %s answered HTTP %ld", url, status);
        snprintf(s->fetch_err, sizeof s->fetch_err, "GET %.160s: HTTP %ld", url, status);
        goto cleanup;
    }
    rc = 0;
cleanup:
    curl_easy_cleanup(c);
    return rc;
}

/* Finds jwks_uri in <issuer>/.well-known/openid-configuration (caller holds fetch_lock). */
static int jwks_discover(struct jwks *s)
{
    struct buf url, body;
    struct json_object *doc = NULL;
    const char *iss, *uri;
    size_t ilen = strlen(s->issuer);
    int rc;

    buf_init(&url, JWKS_URL_MAX + 64);
    buf_init(&body, JWKS_MAX_BODY);
    while (ilen > 0 && s->issuer[ilen - 1] == '/')
        ilen--;
    rc = buf_printf(&url, "%.*s/.well-known/openid-configuration", (int)ilen, s->issuer);
    if (rc != 0)
        goto cleanup;
    rc = jwks_http_get(s, buf_cstr(&url), &body);
    if (rc != 0)
        goto cleanup;
    rc = TV_ERR_PARSE;
    if (jsonx_parse(buf_cstr(&body), body.len, JWKS_MAX_BODY, &doc) != 0 ||
        !json_object_is_type(doc, json_type_object)) {
        log_msg(LOGL_WARN, NULL, "jwks: %s is not a JSON object", buf_cstr(&url));
        snprintf(s->fetch_err, sizeof s->fetch_err, "%.160s is not a JSON object", buf_cstr(&url));
        goto cleanup;
    }
    /* OpenID Connect Discovery 1.0 section 4.3: the document must name the same issuer. */
    if (jsonx_get_string(doc, "issuer", JWKS_URL_MAX, &iss) != 0 || strcmp(iss, s->issuer) != 0 ||
        jsonx_get_string(doc, "jwks_uri", JWKS_URL_MAX, &uri) != 0 ||
        !jwks_url_ok(uri, s->allow_http)) {
        log_msg(LOGL_WARN, NULL,
                "jwks: %s lacks a matching issuer or a usable jwks_uri (https://, or http:// to a "
                "loopback host unless oidc_allow_insecure_http is on)",
                buf_cstr(&url));
        snprintf(s->fetch_err, sizeof s->fetch_err,
                 "%.160s lacks a matching issuer or a usable jwks_uri", buf_cstr(&url));
        goto cleanup;
    }
    rc = TV_ERR_NOMEM;
    free(s->discovered_url);
    s->discovered_url = strdup(uri);
    if (s->discovered_url)
        rc = 0;
cleanup:
    json_object_put(doc);
    buf_release(&body);
    buf_release(&url);
    return rc;
}

/* One fetch attempt (caller holds fetch_lock). */
static int jwks_fetch_locked(struct jwks *s)
{
    struct buf body;
    struct jwk **keys = NULL;
    size_t n = 0;
    const char *url = s->jwks_url;
    int rc;

    if (!url) {
        if (!s->issuer)
            return TV_ERR_UNAVAILABLE; /* a static set: nothing to fetch */
        if (!s->discovered_url && (rc = jwks_discover(s)) != 0)
            return rc == TV_ERR_NOMEM ? rc : TV_ERR_UNAVAILABLE;
        url = s->discovered_url;
    }
    buf_init(&body, JWKS_MAX_BODY);
    rc = jwks_http_get(s, url, &body);
    if (rc == 0) {
        rc = jwks_parse_doc(buf_cstr(&body), body.len, &keys, &n);
        if (rc == 0)
            jwks_install(s, keys, n);
        else {
            log_msg(LOGL_WARN, NULL, "jwks: %s holds no usable key; keeping the previous set", url);
            snprintf(s->fetch_err, sizeof s->fetch_err, "%.160s holds no usable key", url);
        }
    }
    if (rc != 0 && !s->jwks_url) {
        /* The issuer may have moved its keys: discover again next time. */
        free(s->discovered_url);
        s->discovered_url = NULL;
    }
    buf_release(&body);
    return rc;
}

/* Runs one attempt that the caller has already counted in s->inflight (under mu), then stamps
 * its end: the rate limits count from the END, so callers that asked during a slow fetch do
 * not start another one the moment it gives up. */
static int jwks_attempt(struct jwks *s)
{
    int rc;

    char why[JWKS_ERR_MAX];

    pthread_mutex_lock(&s->fetch_lock);
    s->fetch_err[0] = '\0';
    rc = jwks_fetch_locked(s);
    snprintf(why, sizeof why, "%s", s->fetch_err[0] ? s->fetch_err : err_name(rc));
    pthread_mutex_unlock(&s->fetch_lock);
    pthread_mutex_lock(&s->mu);
    if (rc != 0)
        memcpy(s->last_err, why, sizeof why);
    s->inflight--;
    s->attempts++;
    s->last_end_ms = clock_mono_ms();
    if (rc == 0)
        s->last_ok_ms = s->last_end_ms;
    s->last_failed = rc != 0;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int jwks_refresh(struct jwks *s)
{
    if (!s)
        return TV_ERR_INVALID;
    pthread_mutex_lock(&s->mu);
    s->inflight++;
    s->wanted = 0; /* this fetch answers any pending wish */
    pthread_mutex_unlock(&s->mu);
    return jwks_attempt(s);
}

static int jwks_is_loaded(struct jwks *s)
{
    int loaded;

    pthread_rwlock_rdlock(&s->lock);
    loaded = s->loaded;
    pthread_rwlock_unlock(&s->lock);
    return loaded;
}

/* The unknown-kid refetch interval; shorter while nothing was ever loaded (caller holds mu). */
static int64_t jwks_wish_interval(struct jwks *s, int loaded)
{
    int64_t interval = atomic_load(&s->interval_ms);

    return !loaded && interval > JWKS_UNLOADED_RETRY_MS ? JWKS_UNLOADED_RETRY_MS : interval;
}

/* Monotonic time at which the fetcher should next fetch (caller holds mu): at once the first
 * time; every JWKS_UNLOADED_RETRY_MS while nothing loaded; refresh_every_ms after the last
 * success (a failed refresh is retried after the refetch interval, at least
 * JWKS_UNLOADED_RETRY_MS); and a verifier's wish as soon as the refetch interval allows. */
static int64_t jwks_next_fetch(struct jwks *s, int loaded)
{
    int64_t next, retry;

    if (s->attempts == 0)
        return 0;
    if (!loaded) {
        next = s->last_end_ms + JWKS_UNLOADED_RETRY_MS;
    } else {
        retry = atomic_load(&s->interval_ms);
        if (retry < JWKS_UNLOADED_RETRY_MS)
            retry = JWKS_UNLOADED_RETRY_MS;
        next = s->last_ok_ms + s->refresh_every_ms;
        if (s->last_failed && next < s->last_end_ms + retry)
            next = s->last_end_ms + retry;
    }
    if (s->wanted && s->last_end_ms + jwks_wish_interval(s, loaded) < next)
        next = s->last_end_ms + jwks_wish_interval(s, loaded);
    return next;
}

static void *jwks_fetcher_main(void *arg)
{
    struct jwks *s = arg;

    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        int loaded = jwks_is_loaded(s);
        int64_t now = clock_mono_ms(), next = jwks_next_fetch(s, loaded);
        struct timespec ts;

        /* A jwks_refresh in progress will install the newest set; wait for it instead. */
        if (next <= now && s->inflight == 0) {
            s->inflight++;
            s->wanted = 0;
            pthread_mutex_unlock(&s->mu);
            (void)jwks_attempt(s);
            pthread_mutex_lock(&s->mu);
            continue;
        }
        if (next <= now)
            next = now + 1000; /* woken by the attempt's broadcast well before this */
        ts.tv_sec = (time_t)(next / 1000);
        ts.tv_nsec = (long)(next % 1000) * 1000000L;
        (void)pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

enum jwks_state jwks_state_get(struct jwks *s, char *reason, size_t cap)
{
    enum jwks_state st;

    if (reason != NULL && cap > 0)
        reason[0] = '\0';
    /* Once loaded, always ok: a failed refresh keeps the last good set, which still verifies. */
    if (jwks_is_loaded(s))
        return JWKS_STATE_OK;
    pthread_mutex_lock(&s->mu);
    if (!s->has_fetcher) {
        st = JWKS_STATE_FAILED;
        if (reason != NULL && cap > 0)
            snprintf(reason, cap, "no key set and nothing to fetch it from");
    } else if (s->attempts == 0) {
        st = JWKS_STATE_LOADING;
    } else {
        st = JWKS_STATE_FAILED;
        if (reason != NULL && cap > 0)
            snprintf(reason, cap, "%s", s->last_err);
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

int jwks_wait(struct jwks *s, int64_t timeout_ms)
{
    int64_t deadline;
    int loaded;

    if (!s)
        return TV_ERR_INVALID;
    deadline = clock_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    pthread_mutex_lock(&s->mu);
    while (s->has_fetcher && s->attempts == 0 && !s->stopping && clock_mono_ms() < deadline) {
        struct timespec ts = {.tv_sec = (time_t)(deadline / 1000),
                              .tv_nsec = (long)(deadline % 1000) * 1000000L};
        (void)pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    loaded = jwks_is_loaded(s);
    return loaded ? 0 : TV_ERR_UNAVAILABLE;
}

/* Looks up the key for kid ("" = the only key) under the read lock; takes a reference. */
static struct jwk *jwks_lookup(struct jwks *s, const char *kid, int *loaded)
{
    struct jwk *k = NULL;

    pthread_rwlock_rdlock(&s->lock);
    if (!*kid) {
        if (s->nkeys == 1)
            k = jwk_ref(s->keys[0]);
    } else {
        for (size_t i = 0; i < s->nkeys; i++) {
            if (strcmp(jwk_kid(s->keys[i]), kid) == 0) {
                k = jwk_ref(s->keys[i]);
                break;
            }
        }
    }
    *loaded = s->loaded;
    pthread_rwlock_unlock(&s->lock);
    return k;
}

/* A verifier missed a key: asks the fetcher for a fetch when one is due (none running, and the
 * last one ended at least the refetch interval ago) and returns at once. Never waits for the
 * network, so a request thread is held only for this bookkeeping. */
static void jwks_nudge(struct jwks *s, int loaded)
{
    if (!s->has_fetcher)
        return;
    pthread_mutex_lock(&s->mu);
    if (!s->stopping && !s->wanted && s->inflight == 0 &&
        (s->attempts == 0 || clock_mono_ms() - s->last_end_ms >= jwks_wish_interval(s, loaded))) {
        s->wanted = 1;
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
}

int jwks_key_for(struct jwks *s, const char *token, size_t len, struct jwk **out,
                 const char **reason)
{
    struct jwt_header hdr;
    struct jwk *k;
    int loaded, rc;
    const char *why = "malformed token";

    if (!s || !out) {
        rc = TV_ERR_INVALID;
        goto done;
    }
    rc = jwt_header_peek(token, len, &hdr);
    if (rc != 0) {
        if (len > JWT_MAX_LEN)
            why = "token too large";
        goto done;
    }
    k = jwks_lookup(s, hdr.kid, &loaded);
    if (!k) {
        jwks_nudge(s, loaded);
        rc = loaded ? TV_ERR_UNAUTHORIZED : TV_ERR_UNAVAILABLE;
        why = loaded ? (hdr.kid[0] ? "unknown kid" : "no kid and several keys")
                     : "no signing keys available";
        goto done;
    }
    *out = k;
    rc = 0;
done:
    if (reason)
        *reason = rc == 0 ? NULL : why;
    return rc;
}

int jwks_verify_ex(struct jwks *s, const char *token, size_t len, const struct jwt_expect *expect,
                   struct jwt_claims *out, const char **reason)
{
    struct jwk *k = NULL;
    int rc = jwks_key_for(s, token, len, &k, reason);

    if (rc != 0)
        return rc;
    rc = jwt_verify(k, token, len, expect, out, reason);
    jwk_free(k);
    return rc;
}

int jwks_verify(struct jwks *s, const char *token, size_t len, const struct jwt_expect *expect,
                struct jwt_claims *out)
{
    return jwks_verify_ex(s, token, len, expect, out, NULL);
}
