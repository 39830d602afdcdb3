/* One ACS call's HTTP exchange: validating the request, building path and body, signing each
 * attempt, collecting headers and body, and reading the answer into the result. Runs on the
 * engine thread, except call_new() which runs on the submitting thread. */
#include "client_int.h"

#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "retry_int.h"
#include "acs/entra.h"
#include "acs/signer.h"
#include "core/b64.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/curlx.h"
#include "core/err.h"
#include "core/jsonx.h"

#define TEAMS_FIELD_MAX (16 * 1024) /* Entra tokens are a few KiB */
#define SCOPE_MAX 64
#define EXPIRES_ON_MAX 39

void acs_strlcpy(char *dst, const char *src, size_t cap)
{
    size_t n = strnlen(src, cap - 1);

    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Appends s as a JSON string literal. Bytes >= 0x80 pass through: the caller hands UTF-8. */
static int json_append_string(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    int rc = buf_append(b, "\"", 1);

    for (; rc == 0 && *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            char esc[2] = {'\\', (char)ch};
            rc = buf_append(b, esc, 2);
        } else if (ch < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
            rc = buf_append(b, esc, 6);
        } else {
            rc = buf_append(b, s, 1);
        }
    }
    if (rc == 0)
        rc = buf_append(b, "\"", 1);
    return rc;
}

/* Appends the identity id percent-encoded as encodeURIComponent does (the SDKs sign that). */
static int path_append_id(struct buf *b, const char *id)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = 0;

    if (id == NULL)
        return TV_ERR_INVALID;
    for (; rc == 0 && *id != '\0'; id++) {
        unsigned char ch = (unsigned char)*id;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            strchr("-_.!~*'()", ch) != NULL) {
            rc = buf_append(b, id, 1);
        } else {
            char esc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            rc = buf_append(b, esc, 3);
        }
    }
    return rc;
}

/* A field of at most max-1 bytes, not empty. */
static int field_ok(const char *s, size_t max)
{
    return s != NULL && s[0] != '\0' && strnlen(s, max) < max;
}

/* Request ids go into a header: printable ASCII without blanks only. */
static int request_id_ok(const char *s)
{
    size_t n = strnlen(s, ACS_REQUEST_ID_MAX);

    if (n == 0 || n >= ACS_REQUEST_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= 0x20 || s[i] >= 0x7f)
            return 0;
    return 1;
}

static int uuid_v4(char out[37])
{
    unsigned char r[16];

    if (RAND_bytes(r, sizeof(r)) != 1)
        return TV_ERR_CRYPTO;
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0],
             r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13],
             r[14], r[15]);
    return 0;
}

static int request_valid(const struct acs_request *req)
{
    if (req->nscopes > ACS_MAX_SCOPES || req->expires_in_minutes < 0)
        return 0;
    for (size_t i = 0; i < req->nscopes; i++)
        if (!field_ok(req->scopes[i], SCOPE_MAX))
            return 0;
    if (req->request_id != NULL && !request_id_ok(req->request_id))
        return 0;
    switch (req->op) {
    case ACS_OP_CREATE:
        return 1;
    case ACS_OP_ISSUE:
        return req->nscopes > 0 && field_ok(req->identity_id, ACS_ID_MAX);
    case ACS_OP_REVOKE:
    case ACS_OP_DELETE:
        return field_ok(req->identity_id, ACS_ID_MAX);
    case ACS_OP_TEAMS_EXCHANGE:
        return field_ok(req->teams_token, TEAMS_FIELD_MAX) &&
               field_ok(req->teams_app_id, TEAMS_FIELD_MAX) &&
               field_ok(req->teams_user_id, TEAMS_FIELD_MAX);
    }
    return 0;
}

int acs_custom_id(const char *resource, const char *user, char out[ACS_CUSTOM_ID_LEN])
{
    static const char domain[] = "tokenvend/acs-custom-id/v1";
    unsigned char md[32];
    unsigned int mdlen = 0;
    char enc[48]; /* b64_encoded_size(32) = 45 */
    EVP_MD_CTX *ctx;
    int rc = TV_ERR_CRYPTO;

    if (resource == NULL || user == NULL)
        return TV_ERR_INVALID;
    ctx = EVP_MD_CTX_new();
    /* NUL separators (sizeof includes each string's): "a" + "bc" never hashes as "ab" + "c". */
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, domain, sizeof(domain)) != 1 ||
        EVP_DigestUpdate(ctx, resource, strlen(resource) + 1) != 1 ||
        EVP_DigestUpdate(ctx, user, strlen(user)) != 1 ||
        EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != sizeof(md))
        goto out;
    b64url_encode(md, sizeof(md), enc);
    memcpy(out, "tv1_", 4);
    memcpy(out + 4, enc, 44); /* 43 characters and the NUL */
    rc = 0;
out:
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* Builds "{"<key>":[...]<,"expiresInMinutes":N><,"customId":"..."}>}", "{"customId":"..."}" or
 * "" when there are neither scopes nor a customId. */
static int body_scopes(struct buf *b, const char *key, const struct acs_request *req,
                       const char *custom_id)
{
    int rc = 0;

    if (req->nscopes == 0) {
        if (custom_id == NULL)
            return 0;
        rc = buf_append_str(b, "{\"customId\":");
        if (rc == 0)
            rc = json_append_string(b, custom_id);
        if (rc == 0)
            rc = buf_append_str(b, "}");
        return rc;
    }
    rc = buf_printf(b, "{\"%s\":[", key);
    for (size_t i = 0; rc == 0 && i < req->nscopes; i++) {
        if (i > 0)
            rc = buf_append(b, ",", 1);
        if (rc == 0)
            rc = json_append_string(b, req->scopes[i]);
    }
    if (rc == 0)
        rc = buf_append(b, "]", 1);
    if (rc == 0 && req->expires_in_minutes > 0)
        rc = buf_printf(b, ",\"expiresInMinutes\":%d", req->expires_in_minutes);
    if (rc == 0 && custom_id != NULL) {
        rc = buf_append_str(b, ",\"customId\":");
        if (rc == 0)
            rc = json_append_string(b, custom_id);
    }
    if (rc == 0)
        rc = buf_append(b, "}", 1);
    return rc;
}

static int body_teams(struct buf *b, const struct acs_request *req)
{
    int rc = buf_append_str(b, "{\"token\":");

    if (rc == 0)
        rc = json_append_string(b, req->teams_token);
    if (rc == 0)
        rc = buf_append_str(b, ",\"appId\":");
    if (rc == 0)
        rc = json_append_string(b, req->teams_app_id);
    if (rc == 0)
        rc = buf_append_str(b, ",\"userId\":");
    if (rc == 0)
        rc = json_append_string(b, req->teams_user_id);
    if (rc == 0)
        rc = buf_append_str(b, "}");
    return rc;
}

/* Path and query of the call as the SDKs send it. */
static int path_build(struct acs_client *c, const struct acs_request *req, struct buf *p)
{
    int rc = 0;

    switch (req->op) {
    case ACS_OP_CREATE:
        rc = buf_append_str(p, "/identities");
        break;
    case ACS_OP_ISSUE:
    case ACS_OP_REVOKE:
    case ACS_OP_DELETE:
        rc = buf_append_str(p, "/identities/");
        if (rc == 0)
            rc = path_append_id(p, req->identity_id);
        if (rc == 0 && req->op == ACS_OP_ISSUE)
            rc = buf_append_str(p, "/:issueAccessToken");
        if (rc == 0 && req->op == ACS_OP_REVOKE)
            rc = buf_append_str(p, "/:revokeAccessTokens");
        break;
    case ACS_OP_TEAMS_EXCHANGE:
        rc = buf_append_str(p, "/teamsUser/:exchangeAccessToken");
        break;
    }
    if (rc == 0)
        rc = buf_printf(p, "?api-version=%s", c->api_version);
    return rc;
}

/* Keeps the headers we act on; a new status line (after 1xx or a redirect) starts afresh. */
static size_t on_header(char *data, size_t size, size_t nitems, void *userp)
{
    struct acs_call *call = userp;
    size_t n = size * nitems;
    const char *colon;
    char value[ACS_HDR_VALUE_MAX];
    size_t name_len, vlen;
    const char *v;

    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        call->hdr_retry_after_ms[0] = '\0';
        call->hdr_x_retry_after_ms[0] = '\0';
        call->hdr_retry_after[0] = '\0';
        call->hdr_request_id[0] = '\0';
        return n;
    }
    colon = memchr(data, ':', n);
    if (colon == NULL)
        return n;
    name_len = (size_t)(colon - data);
    v = colon + 1;
    vlen = n - name_len - 1;
    while (vlen > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
    }
    while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
        vlen--;
    if (vlen >= sizeof(value))
        return n; /* longer than any value we use: ignore it */
    memcpy(value, v, vlen);
    value[vlen] = '\0';
#define HDR_IS(lit) (name_len == sizeof(lit) - 1 && strncasecmp(data, lit, name_len) == 0)
    if (HDR_IS("retry-after-ms"))
        acs_strlcpy(call->hdr_retry_after_ms, value, sizeof(call->hdr_retry_after_ms));
    else if (HDR_IS("x-ms-retry-after-ms"))
        acs_strlcpy(call->hdr_x_retry_after_ms, value, sizeof(call->hdr_x_retry_after_ms));
    else if (HDR_IS("retry-after"))
        acs_strlcpy(call->hdr_retry_after, value, sizeof(call->hdr_retry_after));
    else if (HDR_IS("x-ms-client-request-id") && request_id_ok(value))
        acs_strlcpy(call->hdr_request_id, value, sizeof(call->hdr_request_id));
#undef HDR_IS
    return n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    struct acs_call *call = userp;
    size_t n = size * nmemb;

    /* Returning less than n aborts the transfer with CURLE_WRITE_ERROR: the body is too big. */
    if (buf_append(&call->resp, data, n) != 0)
        return 0;
    return n;
}

/* libcurl calls this when the connection is ready and the request is about to be written.
 * A granted slot covers BUDGET_HOLD_MS from its grant; a request that would reach ACS later
 * (it waited in curl, or the connect was slow) is aborted before any byte is sent, and the
 * engine asks the budget again: a late send could meet the slot's next use within W. */
static int on_prereq(void *userp, char *primary_ip, char *local_ip, int primary_port,
                     int local_port)
{
    struct acs_call *call = userp;

    (void)primary_ip;
    (void)local_ip;
    (void)primary_port;
    (void)local_port;
    if (call->send_grant_ms != 0 && clock_mono_ms() - call->send_grant_ms > ACS_SEND_MAX_AGE_MS) {
        call->send_stale = 1;
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}

/* Every socket curl opens to ACS comes from here and goes through acs_socket_close, so the
 * client counts the open ones (acs_client_stats.sockets_open): connections in use and kept
 * alive alike. A black-holed call must leave none behind once it ends. */
static curl_socket_t acs_socket_open(void *clientp, curlsocktype purpose,
                                     struct curl_sockaddr *address)
{
    struct acs_client *c = clientp;
    curl_socket_t fd;

    (void)purpose;
    fd = socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
    if (fd != CURL_SOCKET_BAD)
        atomic_fetch_add_explicit(&c->n_sockets, 1, memory_order_relaxed);
    return fd;
}

static int acs_socket_close(void *clientp, curl_socket_t fd)
{
    struct acs_client *c = clientp;

    atomic_fetch_sub_explicit(&c->n_sockets, 1, memory_order_relaxed);
    return close(fd);
}

static int easy_setup(struct acs_call *call)
{
    CURL *e = call->easy;
    CURLcode cc = CURLE_OK;

#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (cc == CURLE_OK)                                                                        \
            cc = curl_easy_setopt(e, opt, val);                                                    \
    } while (0)
    SET(CURLOPT_URL, call->url);
    SET(CURLOPT_PRIVATE, (void *)call);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_ERRORBUFFER, call->errbuf);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, (void *)call);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, (void *)call);
    SET(CURLOPT_PREREQFUNCTION, on_prereq);
    SET(CURLOPT_PREREQDATA, (void *)call);
    SET(CURLOPT_OPENSOCKETFUNCTION, acs_socket_open);
    SET(CURLOPT_OPENSOCKETDATA, (void *)call->client);
    SET(CURLOPT_CLOSESOCKETFUNCTION, acs_socket_close);
    SET(CURLOPT_CLOSESOCKETDATA, (void *)call->client);
    if (cc == CURLE_OK)
        cc = curlx_tls_wipe(e); /* ACS answers carry tokens */
    /* libcurl silently re-sends a request once when a reused connection closes without an
     * answer. The server may have acted on it already, so a create, which is not idempotent
     * without a customId, then always opens a connection of its own, and closes it after: kept
     * alive, every such create would add one idle socket to curl's pool (up to
     * max_connections after a storm of failing creates). */
    if (call->op == ACS_OP_CREATE && !call->idempotent) {
        SET(CURLOPT_FRESH_CONNECT, 1L);
        SET(CURLOPT_FORBID_REUSE, 1L);
    }
    if (strcmp(call->method, "DELETE") == 0) {
        SET(CURLOPT_CUSTOMREQUEST, "DELETE");
    } else {
        SET(CURLOPT_POST, 1L);
        SET(CURLOPT_POSTFIELDS, buf_cstr(&call->body));
        SET(CURLOPT_POSTFIELDSIZE, (long)call->body.len);
    }
#undef SET
    return cc == CURLE_OK ? 0 : TV_ERR_INTERNAL;
}

int call_new(struct acs_client *c, const struct acs_request *req, acs_done_fn done, void *arg,
             struct acs_call **out)
{
    struct acs_call *call = NULL;
    struct buf path, url;
    char custom_id[ACS_CUSTOM_ID_LEN] = {0};
    int rc = TV_ERR_INVALID;

    buf_init(&path, 4 * ACS_ID_MAX);
    buf_init(&url, 8 * ACS_ID_MAX);
    if (done == NULL || !request_valid(req))
        goto fail;
    rc = TV_ERR_NOMEM;
    call = calloc(1, sizeof(*call));
    if (call == NULL)
        goto fail;
    call->client = c;
    call->op = req->op;
    call->done = done;
    call->arg = arg;
    call->method = req->op == ACS_OP_DELETE ? "DELETE" : "POST";
    call->with_token = req->op == ACS_OP_CREATE && req->nscopes > 0;
    buf_init(&call->body, ACS_REQUEST_MAX);
    buf_init(&call->resp, ACS_RESPONSE_MAX);
    call->res.op = req->op;
    if (req->caller != NULL)
        acs_strlcpy(call->caller, req->caller, sizeof(call->caller));
    call->expect_status = req->expect_status;
    if (req->identity_id != NULL && req->op != ACS_OP_CREATE)
        acs_strlcpy(call->res.identity_id, req->identity_id, sizeof(call->res.identity_id));
    if (req->request_id != NULL)
        acs_strlcpy(call->request_id, req->request_id, sizeof(call->request_id));
    else if ((rc = uuid_v4(call->request_id)) != 0)
        goto fail;
    acs_strlcpy(call->res.request_id, call->request_id, sizeof(call->res.request_id));

    if ((rc = path_build(c, req, &path)) != 0)
        goto fail;
    if (req->op == ACS_OP_CREATE && c->custom_id && req->custom_id_user != NULL) {
        if ((rc = acs_custom_id(c->cs.host_signed, req->custom_id_user, custom_id)) != 0)
            goto fail;
        call->idempotent = 1;
        acs_strlcpy(call->res.custom_id, custom_id, sizeof(call->res.custom_id));
    }
    if (req->op == ACS_OP_CREATE)
        rc = body_scopes(&call->body, "createTokenWithScopes", req,
                         call->idempotent ? custom_id : NULL);
    else if (req->op == ACS_OP_ISSUE)
        rc = body_scopes(&call->body, "scopes", req, NULL);
    else if (req->op == ACS_OP_TEAMS_EXCHANGE)
        rc = body_teams(&call->body, req);
    if (rc == 0)
        rc = buf_printf(&url, "%s%s", c->cs.endpoint, buf_cstr(&path));
    if (rc != 0) {
        rc = rc == TV_ERR_TOO_LARGE ? TV_ERR_INVALID : rc;
        goto fail;
    }
    rc = TV_ERR_NOMEM;
    call->path = buf_take(&path);
    call->url = buf_take(&url);
    call->easy = curl_easy_init();
    if (call->path == NULL || call->url == NULL || call->easy == NULL)
        goto fail;
    if ((rc = easy_setup(call)) != 0)
        goto fail;
    *out = call;
    return 0;
fail:
    buf_release(&path);
    buf_release(&url);
    call_free(call);
    return rc;
}

static void wipe_header_list(struct curl_slist *l);

void call_free(struct acs_call *call)
{
    if (call == NULL)
        return;
    if (call->easy != NULL)
        curl_easy_cleanup(call->easy);
    wipe_header_list(call->headers);
    buf_release_wipe(&call->body);
    buf_release_wipe(&call->resp);
    free(call->path);
    free(call->url);
    free(call);
}

/* Frees a header list after wiping it: in keyless mode it holds the bearer token. */
static void wipe_header_list(struct curl_slist *l)
{
    for (struct curl_slist *p = l; p != NULL; p = p->next)
        OPENSSL_cleanse(p->data, strlen(p->data));
    curl_slist_free_all(l);
}

/* Keyless mode's headers: the fixed ones, `Authorization: Bearer <Entra token>` and the request
 * id, in place of the HMAC signature's. Without a token the call ends with TV_ERR_UNAVAILABLE,
 * the reason and the cache's retry hint in the result; while the very first token is still
 * being fetched, call->parked says so instead and the engine tries again later. Reading the
 * cache never blocks (entra_token_try): this runs on the engine thread, which every other call
 * needs. */
static int bearer_headers(struct acs_call *call, const char *const *fixed, size_t nfixed,
                          struct curl_slist **out)
{
    enum { PREFIX = sizeof("Authorization: Bearer ") - 1 };
    struct curl_slist *h = NULL, *t;
    char rid[ACS_REQUEST_ID_MAX + 32];
    char *line = malloc(PREFIX + ENTRA_TOKEN_MAX);
    long retry = 0;
    int first_pending = 0;
    int rc = TV_ERR_NOMEM;
    if (line == NULL)
        goto out;
    memcpy(line, "Authorization: Bearer ", PREFIX);
    rc = entra_token_try(call->client->entra, line + PREFIX, ENTRA_TOKEN_MAX, &first_pending,
                         &retry, call->res.message, sizeof(call->res.message));
    call->parked = first_pending;
    if (rc != 0) {
        call->res.retry_after_s = retry;
        rc = TV_ERR_UNAVAILABLE;
        goto out;
    }
    rc = TV_ERR_NOMEM;
    for (size_t i = 0; i < nfixed; i++) {
        if ((t = curl_slist_append(h, fixed[i])) == NULL)
            goto out;
        h = t;
    }
    snprintf(rid, sizeof(rid), "x-ms-client-request-id: %s", call->request_id);
    if ((t = curl_slist_append(h, line)) == NULL)
        goto out;
    h = t;
    if ((t = curl_slist_append(h, rid)) == NULL)
        goto out;
    h = t;
    *out = h;
    h = NULL;
    rc = 0;
out:
    wipe_header_list(h);
    if (line != NULL) {
        OPENSSL_cleanse(line, PREFIX + ENTRA_TOKEN_MAX);
        free(line);
    }
    return rc;
}

int call_prepare_attempt(struct acs_call *call, int64_t left_ms)
{
    struct acs_client *c = call->client;
    char date[CLOCK_HTTP_DATE_LEN];
    char sha[ACS_SHA256_B64_LEN];
    char auth[ACS_AUTH_MAX];
    char line[ACS_AUTH_MAX + 64];
    const char *fixed[] = {"Content-Type: application/json", "Accept: application/json",
                           "User-Agent: tokenvend/0.1", "Expect:"};
    const char *signed_hdrs[][2] = {{"x-ms-date", date},
                                    {"x-ms-content-sha256", sha},
                                    {"Authorization", auth},
                                    {"x-ms-client-request-id", call->request_id}};
    struct curl_slist *h = NULL, *t;
    long attempt_ms = c->attempt_timeout_ms < left_ms ? c->attempt_timeout_ms : (long)left_ms;
    long connect_ms = c->connect_timeout_ms < attempt_ms ? c->connect_timeout_ms : attempt_ms;
    int rc = TV_ERR_CRYPTO;

    call->attempt_cut = attempt_ms < c->attempt_timeout_ms;
    if (c->entra != NULL) {
        rc = bearer_headers(call, fixed, sizeof(fixed) / sizeof(fixed[0]), &h);
        if (rc != 0)
            goto out;
        goto headers_done;
    }
    clock_http_date(time(NULL), date);
    if (acs_sign(c->cs.key, c->cs.key_len, call->method, call->path, c->cs.host_signed, date,
                 buf_cstr(&call->body), call->body.len, sha, auth) != 0)
        goto out;
    rc = TV_ERR_NOMEM;
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if ((t = curl_slist_append(h, fixed[i])) == NULL)
            goto out;
        h = t;
    }
    for (size_t i = 0; i < sizeof(signed_hdrs) / sizeof(signed_hdrs[0]); i++) {
        snprintf(line, sizeof(line), "%s: %s", signed_hdrs[i][0], signed_hdrs[i][1]);
        if ((t = curl_slist_append(h, line)) == NULL)
            goto out;
        h = t;
    }
headers_done:
    wipe_header_list(call->headers);
    call->headers = h;
    h = NULL;
    buf_release_wipe(&call->resp);
    call->hdr_retry_after_ms[0] = call->hdr_x_retry_after_ms[0] = '\0';
    call->hdr_retry_after[0] = call->hdr_request_id[0] = '\0';
    call->errbuf[0] = '\0';
    rc = TV_ERR_INTERNAL;
    if (curl_easy_setopt(call->easy, CURLOPT_HTTPHEADER, call->headers) != CURLE_OK ||
        curl_easy_setopt(call->easy, CURLOPT_TIMEOUT_MS, attempt_ms) != CURLE_OK ||
        curl_easy_setopt(call->easy, CURLOPT_CONNECTTIMEOUT_MS, connect_ms) != CURLE_OK)
        goto out;
    rc = 0;
out:
    wipe_header_list(h);
    OPENSSL_cleanse(line, sizeof(line));
    OPENSSL_cleanse(auth, sizeof(auth));
    return rc;
}

/* Overwrites a string json-c holds before the object is freed: json-c cannot wipe on its own.
 * The storage is json-c's own heap memory, so writing to it is sound despite the const. */
static void json_wipe_string(const char *s)
{
    if (s != NULL)
        buf_wipe_const(s, strlen(s));
}

/* Reads {"token","expiresOn"} of obj into the result. */
static int parse_token(struct acs_call *call, struct json_object *obj)
{
    const char *token = NULL, *exp = NULL;
    int rc = TV_ERR_UPSTREAM_PROTOCOL;

    if (obj == NULL || !json_object_is_type(obj, json_type_object))
        goto out;
    if (jsonx_get_string(obj, "token", ACS_TOKEN_MAX, &token) != 0 ||
        jsonx_get_string(obj, "expiresOn", EXPIRES_ON_MAX, &exp) != 0 ||
        clock_parse_iso8601(exp, &call->res.expires_on_ms) != 0)
        goto out;
    acs_strlcpy(call->res.expires_on, exp, sizeof(call->res.expires_on));
    rc = TV_ERR_NOMEM;
    call->res.token = strdup(token);
    if (call->res.token != NULL)
        rc = 0;
out:
    json_wipe_string(token);
    return rc;
}

int call_parse_success(struct acs_call *call)
{
    struct json_object *root = NULL, *ident = NULL, *tok = NULL;
    const char *id;
    int rc = TV_ERR_UPSTREAM_PROTOCOL;

    if (call->op == ACS_OP_REVOKE || call->op == ACS_OP_DELETE)
        return 0; /* 204, nothing to read */
    if (jsonx_parse(buf_cstr(&call->resp), call->resp.len, ACS_RESPONSE_MAX, &root) != 0 ||
        !json_object_is_type(root, json_type_object))
        goto out;
    if (call->op == ACS_OP_CREATE) {
        if (!json_object_object_get_ex(root, "identity", &ident) ||
            !json_object_is_type(ident, json_type_object) ||
            jsonx_get_string(ident, "id", ACS_ID_MAX - 1, &id) != 0)
            goto out;
        acs_strlcpy(call->res.identity_id, id, sizeof(call->res.identity_id));
        if (call->with_token) {
            if (!json_object_object_get_ex(root, "accessToken", &tok))
                goto out;
            rc = parse_token(call, tok);
            goto out;
        }
        rc = 0;
        goto out;
    }
    rc = parse_token(call, root);
out:
    if (rc == TV_ERR_UPSTREAM_PROTOCOL)
        snprintf(call->res.message, sizeof(call->res.message),
                 "ACS answered %ld with a body that does not match the API", call->res.http_status);
    json_object_put(root);
    return rc;
}

void call_parse_error(struct acs_call *call)
{
    struct json_object *root = NULL, *err = NULL;
    const char *s;

    int64_t wait_ms = call_server_wait_ms(call);

    call->res.acs_code[0] = '\0';
    /* ACS's own wait (bounded by the parsers) travels with the outcome, so the caller's
     * Retry-After can pass it on when it is the longer one. */
    if (wait_ms > 0)
        call->res.retry_after_s = (long)((wait_ms + 999) / 1000);
    snprintf(call->res.message, sizeof(call->res.message), "ACS answered HTTP %ld",
             call->res.http_status);
    if (jsonx_parse(buf_cstr(&call->resp), call->resp.len, ACS_RESPONSE_MAX, &root) != 0)
        return;
    if (json_object_is_type(root, json_type_object) &&
        json_object_object_get_ex(root, "error", &err) &&
        json_object_is_type(err, json_type_object)) {
        if (jsonx_get_string(err, "code", ACS_RESPONSE_MAX, &s) == 0)
            acs_strlcpy(call->res.acs_code, s, sizeof(call->res.acs_code));
        if (jsonx_get_string(err, "message", ACS_RESPONSE_MAX, &s) == 0)
            acs_strlcpy(call->res.message, s, sizeof(call->res.message));
    }
    json_object_put(root);
}

int64_t call_server_wait_ms(const struct acs_call *call)
{
    int64_t ms;

    if (call->hdr_retry_after_ms[0] != '\0' &&
        acs_retry_parse_ms(call->hdr_retry_after_ms, &ms) == 0)
        return ms;
    if (call->hdr_x_retry_after_ms[0] != '\0' &&
        acs_retry_parse_ms(call->hdr_x_retry_after_ms, &ms) == 0)
        return ms;
    if (call->hdr_retry_after[0] != '\0' &&
        acs_retry_parse_retry_after(call->hdr_retry_after, clock_wall_ms(), &ms) == 0)
        return ms;
    return -1;
}
