/* OIDC key set: a reader-writer-locked array of reference-counted keys. Verifiers take a key
 * reference under the read lock and verify outside it, so a refetch (done under a separate
 * mutex, one at a time, with the network I/O outside every lock the verifiers take) never
 * stalls verification with known keys. */
#include "auth/jwks.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"

#define JWKS_URL_MAX 2048
#define JWKS_UNLOADED_RETRY_MS 5000 /* retry sooner while no key set was ever loaded */

struct jwks {
    pthread_rwlock_t lock; /* guards keys, nkeys, loaded, generation */
    struct jwk **keys;
    size_t nkeys;
    int loaded;          /* a key set has been installed at least once */
    uint64_t generation; /* bumped on every install */

    pthread_mutex_t fetch_lock; /* one fetch at a time; guards the fields below */
    int64_t last_fetch_ms;      /* monotonic time of the last attempt */
    int fetched_once;
    char *discovered_url; /* jwks_uri from the discovery document */

    atomic_int_least64_t interval_ms;
    char *jwks_url; /* configured; NULL when discovered or static */
    char *issuer;
    long connect_ms, timeout_ms;
};

static int jwks_url_ok(const char *u)
{
    size_t n = strlen(u);

    /* http:// is accepted for loopback tests; deployments should configure https://. */
    return n > 0 && n <= JWKS_URL_MAX &&
           (strncasecmp(u, "https://", 8) == 0 || strncasecmp(u, "http://", 7) == 0) &&
           !strpbrk(u, " \t\r\n");
}

int jwks_new(const struct jwks_opts *o, struct jwks **out)
{
    struct jwks *s;
    int rc = TV_ERR_INVALID;

    if (!o || !out)
        return TV_ERR_INVALID;
    if (o->jwks_url && *o->jwks_url && !jwks_url_ok(o->jwks_url))
        return TV_ERR_INVALID;
    if (o->issuer && *o->issuer && (!o->jwks_url || !*o->jwks_url) && !jwks_url_ok(o->issuer))
        return TV_ERR_INVALID;
    s = calloc(1, sizeof *s);
    if (!s)
        return TV_ERR_NOMEM;
    if (pthread_rwlock_init(&s->lock, NULL) != 0) {
        free(s);
        return TV_ERR_NOMEM;
    }
    if (pthread_mutex_init(&s->fetch_lock, NULL) != 0) {
        pthread_rwlock_destroy(&s->lock);
        free(s);
        return TV_ERR_NOMEM;
    }
    atomic_init(&s->interval_ms,
                o->refetch_interval_ms > 0 ? o->refetch_interval_ms : JWKS_DEFAULT_REFETCH_MS);
    s->connect_ms = o->connect_timeout_ms > 0 ? (long)o->connect_timeout_ms : 2000;
    s->timeout_ms = o->timeout_ms > 0 ? (long)o->timeout_ms : 5000;
    rc = TV_ERR_NOMEM;
    if (o->jwks_url && *o->jwks_url && !(s->jwks_url = strdup(o->jwks_url)))
        goto fail;
    if (o->issuer && *o->issuer && !(s->issuer = strdup(o->issuer)))
        goto fail;
    *out = s;
    return 0;
fail:
    jwks_free(s);
    return rc;
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
    jwks_keys_free(s->keys, s->nkeys);
    pthread_rwlock_destroy(&s->lock);
    pthread_mutex_destroy(&s->fetch_lock);
    free(s->discovered_url);
    free(s->jwks_url);
    free(s->issuer);
    free(s);
}

void jwks_set_refetch_interval_ms(struct jwks *s, int64_t ms)
{
    atomic_store(&s->interval_ms, ms < 0 ? 0 : ms);
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
    s->generation++;
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

/* Blocking GET of url into body (at most JWKS_MAX_BODY). 0 or TV_ERR_UNAVAILABLE. */
static int jwks_http_get(const struct jwks *s, const char *url, struct buf *body)
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
    cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        log_msg(LOGL_WARN, NULL, "jwks: GET %s failed: %s", url,
                errbuf[0] ? errbuf : curl_easy_strerror(cc));
        goto cleanup;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        log_msg(LOGL_WARN, NULL, "jwks: GET %s answered HTTP %ld", url, status);
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
        goto cleanup;
    }
    /* OpenID Connect Discovery 1.0 section 4.3: the document must name the same issuer. */
    if (jsonx_get_string(doc, "issuer", JWKS_URL_MAX, &iss) != 0 || strcmp(iss, s->issuer) != 0 ||
        jsonx_get_string(doc, "jwks_uri", JWKS_URL_MAX, &uri) != 0 || !jwks_url_ok(uri)) {
        log_msg(LOGL_WARN, NULL, "jwks: %s lacks a matching issuer or a usable jwks_uri",
                buf_cstr(&url));
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

    s->last_fetch_ms = clock_mono_ms();
    s->fetched_once = 1;
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
        else
            log_msg(LOGL_WARN, NULL, "jwks: %s holds no usable key; keeping the previous set", url);
    }
    if (rc != 0 && !s->jwks_url) {
        /* The issuer may have moved its keys: discover again next time. */
        free(s->discovered_url);
        s->discovered_url = NULL;
    }
    buf_release(&body);
    return rc;
}

int jwks_refresh(struct jwks *s)
{
    int rc;

    if (!s)
        return TV_ERR_INVALID;
    pthread_mutex_lock(&s->fetch_lock);
    rc = jwks_fetch_locked(s);
    pthread_mutex_unlock(&s->fetch_lock);
    return rc;
}

/* Looks up the key for kid ("" = the only key) under the read lock; takes a reference. */
static struct jwk *jwks_lookup(struct jwks *s, const char *kid, uint64_t *gen, int *loaded)
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
    *gen = s->generation;
    *loaded = s->loaded;
    pthread_rwlock_unlock(&s->lock);
    return k;
}

/* Fetches when due: the first time, then at most once per interval (sooner while nothing was
 * ever loaded). Callers arriving during a fetch wait for it instead of starting their own. */
static void jwks_fetch_if_due(struct jwks *s, uint64_t seen_gen)
{
    int64_t interval = atomic_load(&s->interval_ms);
    uint64_t gen;
    int loaded;

    if (!s->jwks_url && !s->issuer)
        return;
    pthread_mutex_lock(&s->fetch_lock);
    pthread_rwlock_rdlock(&s->lock);
    gen = s->generation;
    loaded = s->loaded;
    pthread_rwlock_unlock(&s->lock);
    if (!loaded && interval > JWKS_UNLOADED_RETRY_MS)
        interval = JWKS_UNLOADED_RETRY_MS;
    if (gen == seen_gen && (!s->fetched_once || clock_mono_ms() - s->last_fetch_ms >= interval))
        (void)jwks_fetch_locked(s);
    pthread_mutex_unlock(&s->fetch_lock);
}

int jwks_key_for(struct jwks *s, const char *token, size_t len, struct jwk **out,
                 const char **reason)
{
    struct jwt_header hdr;
    struct jwk *k;
    uint64_t gen;
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
    k = jwks_lookup(s, hdr.kid, &gen, &loaded);
    if (!k) {
        jwks_fetch_if_due(s, gen);
        k = jwks_lookup(s, hdr.kid, &gen, &loaded);
    }
    if (!k) {
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
