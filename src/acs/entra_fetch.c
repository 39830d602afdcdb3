/* One Entra token fetch with libcurl: builds the form body or headers from a description, sends
 * it once within a deadline, and parses the answer strictly (jsonx). Secrets (client secret,
 * federated assertion, identity header, the token in the answer) are wiped from every buffer
 * this file owns before it returns.
 *
 * Answer facts relied on: the Entra token endpoint and IMDS give expires_in (seconds; IMDS as a
 * string of digits), the App Service protocol gives expires_on (Unix seconds, as a string). */
#include "acs/entra.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <openssl/crypto.h>

#include "core/curlx.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "entra_int.h"

/* Form body: the largest description plus the assertion, each value percent-encoded (x3). */
#define ENTRA_BODY_MAX                                                                             \
    ((ENTRA_FIELDS_MAX + 1) * (ENTRA_NAME_MAX + 3 * ENTRA_VALUE_MAX) + 3 * ENTRA_ASSERTION_MAX)
/* Lifetimes outside this are refused: a token valid for over a day is not what Entra issues. */
#define ENTRA_LIFETIME_MAX_S (2 * 86400)

struct resp {
    char *buf;
    size_t len;
    int overflow;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct resp *r = ud;
    size_t n = size * nmemb;
    if (r->len + n > ENTRA_RESPONSE_MAX) {
        r->overflow = 1;
        return 0; /* aborts the transfer */
    }
    memcpy(r->buf + r->len, ptr, n);
    r->len += n;
    return n;
}

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errlen, const char *fmt,
                                                          ...)
{
    va_list ap;
    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Appends name=value (value percent-encoded) to body. 0, or -1 when full. */
static int form_add(char *body, size_t cap, size_t *len, const char *name, const char *value)
{
    size_t nlen = strlen(name);
    if (*len + nlen + 2 >= cap)
        return -1;
    if (*len > 0)
        body[(*len)++] = '&';
    memcpy(body + *len, name, nlen);
    *len += nlen;
    body[(*len)++] = '=';
    return entra_pct_append(body, cap, len, value);
}

/* Reads the federated token file (re-read every fetch: Kubernetes rotates it), trailing
 * whitespace dropped. 0, or TV_ERR_IO. */
static int read_assertion(const char *path, char *out, size_t cap)
{
    int rc = TV_ERR_IO;
    size_t len = 0;
    struct stat st;
    /* Non-blocking, and a regular file only: a FIFO or a device would block the fetch past its
     * deadline (and the cache's stop with it). */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size >= (off_t)cap)
        goto out;
    for (;;) {
        ssize_t n = read(fd, out + len, cap - 1 - len);
        if (n < 0)
            goto out;
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == cap - 1)
            goto out; /* too long to be a token */
    }
    while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == '\r' || out[len - 1] == ' ' ||
                       out[len - 1] == '\t'))
        len--;
    out[len] = '\0';
    if (len > 0)
        rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (rc != 0)
        OPENSSL_cleanse(out, cap);
    return rc;
}

/* A lifetime member as a JSON integer or a string of 1..12 digits. 0 or TV_ERR_INVALID /
 * TV_ERR_NOT_FOUND. */
static int get_seconds(struct json_object *o, const char *key, int64_t *out)
{
    const char *s = NULL;
    int rc = jsonx_get_int(o, key, 0, INT64_C(1) << 40, out);
    if (rc != TV_ERR_INVALID)
        return rc;
    rc = jsonx_get_string(o, key, 12, &s);
    if (rc != 0)
        return TV_ERR_INVALID;
    *out = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return TV_ERR_INVALID;
        *out = *out * 10 + (*p - '0');
    }
    return 0;
}

/* A token goes into an Authorization header: visible ASCII only. */
static int token_chars_ok(const char *t)
{
    for (const char *p = t; *p; p++) {
        if (*p <= ' ' || *p > '~')
            return 0;
    }
    return 1;
}

static int parse_answer(const struct entra_desc *d, const struct resp *r, int64_t now_s,
                        struct entra_token *out, char *err, size_t errlen)
{
    struct json_object *o = NULL;
    const char *tok = NULL, *type = NULL;
    int64_t secs = 0;
    int rc = TV_ERR_UPSTREAM_PROTOCOL;
    if (jsonx_parse(r->buf, r->len, ENTRA_RESPONSE_MAX, &o) != 0 ||
        !json_object_is_type(o, json_type_object)) {
        set_err(err, errlen, "identity endpoint answered 200 without a JSON object");
        goto out;
    }
    if (jsonx_get_string(o, "access_token", ENTRA_TOKEN_MAX - 1, &tok) != 0 ||
        !token_chars_ok(tok)) {
        set_err(err, errlen, "identity endpoint answer has no usable access_token");
        goto out;
    }
    if (jsonx_get_string(o, "token_type", 32, &type) == 0 && strcasecmp(type, "Bearer") != 0) {
        set_err(err, errlen, "identity endpoint answered a token_type other than Bearer");
        goto out;
    }
    if (get_seconds(o, d->expires_on ? "expires_on" : "expires_in", &secs) != 0) {
        set_err(err, errlen, "identity endpoint answer has no valid %s",
                d->expires_on ? "expires_on" : "expires_in");
        goto out;
    }
    out->expires_at = d->expires_on ? secs : now_s + secs;
    out->lifetime_s = out->expires_at - now_s;
    if (out->lifetime_s <= 0 || out->lifetime_s > ENTRA_LIFETIME_MAX_S) {
        set_err(err, errlen, "identity endpoint gave a token lifetime of %ld s",
                (long)out->lifetime_s);
        goto out;
    }
    snprintf(out->access_token, sizeof(out->access_token), "%s", tok);
    rc = 0;
out:
    if (o != NULL)
        jsonx_put_wiped(o); /* it held the access token */
    if (rc != 0)
        entra_token_clear(out);
    return rc;
}

/* A failed answer's `error` member (an OAuth error code such as invalid_client), if short and
 * plain, for the message; never error_description, which may echo request parts. */
static void error_code(const struct resp *r, char *out, size_t cap)
{
    struct json_object *o = NULL;
    const char *code = NULL;
    out[0] = '\0';
    if (jsonx_parse(r->buf, r->len, ENTRA_RESPONSE_MAX, &o) == 0 &&
        json_object_is_type(o, json_type_object) &&
        jsonx_get_string(o, "error", cap - 1, &code) == 0) {
        size_t i = 0;
        for (; code[i] && i + 1 < cap; i++)
            out[i] = (code[i] == '_' || (code[i] >= 'a' && code[i] <= 'z') ||
                      (code[i] >= 'A' && code[i] <= 'Z') || (code[i] >= '0' && code[i] <= '9'))
                         ? code[i]
                         : '?';
        out[i] = '\0';
    }
    if (o != NULL)
        json_object_put(o);
}

static void wipe_slist(struct curl_slist *l)
{
    for (struct curl_slist *p = l; p != NULL; p = p->next)
        OPENSSL_cleanse(p->data, strlen(p->data));
    curl_slist_free_all(l);
}

/* libcurl's progress callback: a non-zero return aborts the transfer when the owner stops. */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    const atomic_int *cancel = ud;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return atomic_load(cancel) != 0;
}

static CURLcode set_options(CURL *e, const struct entra_desc *d, long timeout_ms,
                            struct curl_slist *hdrs, const char *body, size_t body_len, char *cerr,
                            struct resp *r, const atomic_int *cancel)
{
    CURLcode cc = curl_easy_setopt(e, CURLOPT_URL, d->url);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    /* The managed-identity endpoints are local to the host (App Service's token service, IMDS's
     * link-local address): never through a proxy from http_proxy and friends, which would
     * receive the identity header. The authority host may need the proxy, as the SDKs allow. */
    if (cc == CURLE_OK && !d->post)
        cc = curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(e, CURLOPT_ERRORBUFFER, cerr);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)r);
    if (cc == CURLE_OK)
        cc = curlx_tls_wipe(e); /* the answer is the access token */
    if (cc == CURLE_OK && cancel != NULL) {
        cc = curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
        if (cc == CURLE_OK)
            cc = curl_easy_setopt(e, CURLOPT_XFERINFODATA, (void *)(uintptr_t)cancel);
        if (cc == CURLE_OK)
            cc = curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    }
    if (cc == CURLE_OK && d->post) {
        cc = curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        if (cc == CURLE_OK)
            cc = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)body_len);
    }
    return cc;
}

int entra_fetch(const struct entra_desc *d, long timeout_ms, int64_t now_s, struct entra_token *out,
                char *err, size_t errlen)
{
    return entra_fetch_cancelable(d, timeout_ms, now_s, NULL, out, err, errlen);
}

int entra_fetch_cancelable(const struct entra_desc *d, long timeout_ms, int64_t now_s,
                           const atomic_int *cancel, struct entra_token *out, char *err,
                           size_t errlen)
{
    int rc = TV_ERR_UNAVAILABLE;
    CURL *e = NULL;
    struct curl_slist *hdrs = NULL;
    char *body = NULL, *assertion = NULL;
    size_t body_len = 0;
    struct resp r = {0};
    char line[ENTRA_NAME_MAX + ENTRA_VALUE_MAX + 4];
    char cerr[CURL_ERROR_SIZE] = "";
    long status = 0;
    CURLcode cc;

    memset(out, 0, sizeof(*out));
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    r.buf = malloc(ENTRA_RESPONSE_MAX);
    e = curlx_init() == 0 ? curl_easy_init() : NULL;
    if (r.buf == NULL || e == NULL) {
        rc = TV_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < d->n_headers; i++) {
        struct curl_slist *n;
        snprintf(line, sizeof(line), "%s: %s", d->headers[i].name, d->headers[i].value);
        n = curl_slist_append(hdrs, line);
        OPENSSL_cleanse(line, sizeof(line));
        if (n == NULL) {
            rc = TV_ERR_NOMEM;
            goto out;
        }
        hdrs = n;
    }
    if (d->post) {
        body = malloc(ENTRA_BODY_MAX);
        if (body == NULL) {
            rc = TV_ERR_NOMEM;
            goto out;
        }
        body[0] = '\0';
        for (size_t i = 0; i < d->n_fields; i++) {
            if (form_add(body, ENTRA_BODY_MAX, &body_len, d->fields[i].name, d->fields[i].value) !=
                0) {
                rc = TV_ERR_INTERNAL;
                goto out;
            }
        }
        if (d->kind == ENTRA_WORKLOAD_IDENTITY) {
            assertion = malloc(ENTRA_ASSERTION_MAX);
            if (assertion == NULL) {
                rc = TV_ERR_NOMEM;
                goto out;
            }
            if (read_assertion(d->assertion_file, assertion, ENTRA_ASSERTION_MAX) != 0) {
                rc = TV_ERR_IO;
                set_err(err, errlen,
                        "AZURE_FEDERATED_TOKEN_FILE %s: not a readable regular file, empty, or "
                        "over %ld "
                        "bytes",
                        d->assertion_file, (long)ENTRA_ASSERTION_MAX - 1);
                goto out;
            }
            if (form_add(body, ENTRA_BODY_MAX, &body_len, "client_assertion", assertion) != 0) {
                rc = TV_ERR_INTERNAL;
                goto out;
            }
        }
    }
    if (set_options(e, d, timeout_ms, hdrs, body, body_len, cerr, &r, cancel) != CURLE_OK) {
        rc = TV_ERR_INTERNAL;
        goto out;
    }
    cc = curl_easy_perform(e);
    if (cc != CURLE_OK) {
        rc = r.overflow ? TV_ERR_UPSTREAM_PROTOCOL : TV_ERR_UNAVAILABLE;
        set_err(err, errlen, "identity endpoint: %s (curl %d)",
                r.overflow ? "answer too large" : curl_easy_strerror(cc), (int)cc);
        goto out;
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        char code[64];
        error_code(&r, code, sizeof(code));
        rc = TV_ERR_UNAVAILABLE;
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "identity endpoint answered HTTP %ld%s%s", status,
                     code[0] ? ": " : "", code);
        goto out;
    }
    rc = parse_answer(d, &r, now_s, out, err, errlen);
out:
    if (e != NULL)
        curl_easy_cleanup(e);
    wipe_slist(hdrs);
    if (body != NULL) {
        OPENSSL_cleanse(body, ENTRA_BODY_MAX);
        free(body);
    }
    if (assertion != NULL) {
        OPENSSL_cleanse(assertion, ENTRA_ASSERTION_MAX);
        free(assertion);
    }
    if (r.buf != NULL) {
        OPENSSL_cleanse(r.buf, ENTRA_RESPONSE_MAX);
        free(r.buf);
    }
    return rc;
}

void entra_token_clear(struct entra_token *t)
{
    if (t != NULL)
        OPENSSL_cleanse(t, sizeof(*t));
}
