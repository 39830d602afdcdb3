/* The stand-in Entra ID endpoint (see entra.h). It runs its own small libmicrohttpd daemon, one
 * thread per connection, so that a request held by the "hang" fault never stalls another; the
 * traffic is a test's handful of token fetches, not the ACS emulator's load. Tokens are RS256
 * JWTs signed with a key made at start (tokens.c) whose issuer is the stand-in's own URL, so a
 * verifier can fetch the JWKS named by the OpenID metadata at that issuer. */
#include "entra.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <json-c/json.h>
#include <microhttpd.h>
#include <openssl/crypto.h>

#include "core/b64.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/netaddr.h"
#include "tokens.h"

#define ENTRA_BODY_MAX 16384
#define ENTRA_LOG_MAX 1000 /* recorded requests kept; older ones are dropped */
#define ENTRA_FIELD_MAX 8192
#define ENTRA_HANG_MAX_MS 120000
#define ENTRA_HOST_MAX 256
#define ENTRA_URL_MAX 512
#define ENTRA_AUD "https://communication.azure.com"
#define ENTRA_SCOPE "https://communication.azure.com//.default"
#define ENTRA_ASSERTION_TYPE "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#define ENTRA_FED_AUD "api://AzureADTokenExchange"
#define ENTRA_MI_SUBJECT "00000000-0000-0000-0000-00000000a11d" /* the managed identity's oid */

enum entra_fault { ENTRA_FAULT_NONE, ENTRA_FAULT_ERROR, ENTRA_FAULT_HANG, ENTRA_FAULT_SLOW };

struct emu_entra {
    const char *tenant;
    const char *client_id;        /* NULL: any */
    const char *client_secret;    /* NULL: any non-empty secret (secret) */
    const char *federated_issuer; /* NULL: any iss in a client assertion */
    const char *identity_header;  /* X-IDENTITY-HEADER value (secret); NULL: route refused */
    int64_t ttl_s;
    struct emu_keys *keys;
    char base[ENTRA_URL_MAX];   /* "http://HOST:PORT" (guarded by mu: see entra_addr) */
    char issuer[ENTRA_URL_MAX]; /* base + "/" + tenant + "/v2.0" (likewise) */
    pthread_mutex_t mu;         /* guards log, the fault settings, base and issuer */
    struct json_object *log;    /* array of recorded requests */
    enum entra_fault fault;
    int64_t fault_delay_ms;
    int fault_status;
    atomic_int stopping;
    struct MHD_Daemon *d;
};

struct entra_req {
    struct buf body;
    int too_large;
};

struct entra_reply {
    int status;
    char *body; /* malloc'd; may hold a token: wiped before free */
};

/* ---- replies ---- */

static void entra_reply_json(struct entra_reply *r, int status, struct json_object *o)
{
    r->status = status;
    r->body = strdup(jsonx_compact(o));
    json_object_put(o);
}

/* The Entra error shape: {"error","error_description"}. */
static void entra_reply_error(struct entra_reply *r, int status, const char *error,
                              const char *desc)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "error", json_object_new_string(error));
    json_object_object_add(o, "error_description", json_object_new_string(desc));
    entra_reply_json(r, status, o);
}

/* ---- the request log ---- */

static int entra_is_secret(const char *name)
{
    return strcmp(name, "client_secret") == 0 || strcmp(name, "client_assertion") == 0;
}

/* Adds value under name to fields, a secret as {"length":N} so that tests can see it was sent
 * without the log ever holding it. */
static void entra_field_add(struct json_object *fields, const char *name, const char *value)
{
    if (entra_is_secret(name)) {
        struct json_object *s = json_object_new_object();
        json_object_object_add(s, "length", json_object_new_int64((int64_t)strlen(value)));
        json_object_object_add(fields, name, s);
    } else {
        json_object_object_add(fields, name, json_object_new_string(value));
    }
}

static void entra_record(struct emu_entra *e, const char *route, const char *method,
                         struct json_object *fields, struct json_object *headers)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "route", json_object_new_string(route));
    json_object_object_add(o, "method", json_object_new_string(method));
    json_object_object_add(o, "fields", json_object_get(fields));
    json_object_object_add(o, "headers",
                           headers ? json_object_get(headers) : json_object_new_object());
    pthread_mutex_lock(&e->mu);
    if (json_object_array_length(e->log) >= ENTRA_LOG_MAX)
        json_object_array_del_idx(e->log, 0, 1);
    json_object_array_add(e->log, o);
    pthread_mutex_unlock(&e->mu);
}

/* ---- form and query parsing ---- */

/* Parses an application/x-www-form-urlencoded body into a new object of strings ('+' is a
 * space, escapes decoded). A repeated, empty-named or undecodable field is TV_ERR_INVALID. */
static int entra_form_parse(const char *body, size_t len, struct json_object **out)
{
    int rc = TV_ERR_INVALID;
    struct json_object *o = json_object_new_object();
    char *copy = NULL, *name = NULL, *value = NULL;
    size_t i = 0;

    copy = malloc(len + 1);
    name = malloc(len + 1);
    value = malloc(len + 1);
    if (!o || !copy || !name || !value) {
        rc = TV_ERR_NOMEM;
        goto out;
    }
    memcpy(copy, body, len);
    copy[len] = '\0';
    for (size_t k = 0; k < len; k++)
        if (copy[k] == '+')
            copy[k] = ' ';
    while (i < len) {
        size_t end = i, eq;
        while (end < len && copy[end] != '&')
            end++;
        eq = i;
        while (eq < end && copy[eq] != '=')
            eq++;
        if (end > i) {
            if (eq == i || eq == end)
                goto out;
            if (buf_pct_decode(copy + i, eq - i, name, len + 1) != 0 ||
                buf_pct_decode(copy + eq + 1, end - eq - 1, value, len + 1) != 0)
                goto out;
            if (json_object_object_get_ex(o, name, NULL))
                goto out;
            json_object_object_add(o, name, json_object_new_string(value));
        }
        i = end + 1;
    }
    *out = o;
    o = NULL;
    rc = 0;
out:
    if (copy)
        OPENSSL_cleanse(copy, len);
    if (value)
        OPENSSL_cleanse(value, len);
    free(copy);
    free(name);
    free(value);
    json_object_put(o);
    return rc;
}

static const char *entra_field(struct json_object *fields, const char *name)
{
    struct json_object *v = NULL;

    return json_object_object_get_ex(fields, name, &v) ? json_object_get_string(v) : NULL;
}

static enum MHD_Result entra_query_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                        const char *value)
{
    (void)kind;
    if (key && !json_object_object_get_ex(cls, key, NULL))
        entra_field_add(cls, key, value ? value : "");
    return MHD_YES;
}

/* ---- tokens ---- */

/* Copies base and issuer (either may be NULL). They are written once the daemon has told its
 * port, so after its threads started: the lock orders that write before these reads. */
static void entra_addr(struct emu_entra *e, char base[ENTRA_URL_MAX], char issuer[ENTRA_URL_MAX])
{
    pthread_mutex_lock(&e->mu);
    if (base)
        memcpy(base, e->base, ENTRA_URL_MAX);
    if (issuer)
        memcpy(issuer, e->issuer, ENTRA_URL_MAX);
    pthread_mutex_unlock(&e->mu);
}

/* Mints the access token for subject and app (client id) and answers the Entra token JSON. */
static int entra_mint(struct emu_entra *e, const char *subject, const char *appid, int64_t *exp_out,
                      char **tok)
{
    struct json_object *p = json_object_new_object();
    int64_t now = clock_wall_ms() / 1000;
    char issuer[ENTRA_URL_MAX];
    int rc;

    entra_addr(e, NULL, issuer);
    json_object_object_add(p, "aud", json_object_new_string(ENTRA_AUD));
    json_object_object_add(p, "iss", json_object_new_string(issuer));
    json_object_object_add(p, "iat", json_object_new_int64(now));
    json_object_object_add(p, "nbf", json_object_new_int64(now));
    json_object_object_add(p, "exp", json_object_new_int64(now + e->ttl_s));
    json_object_object_add(p, "tid", json_object_new_string(e->tenant));
    json_object_object_add(p, "sub", json_object_new_string(subject));
    json_object_object_add(p, "oid", json_object_new_string(subject));
    json_object_object_add(p, "appid", json_object_new_string(appid));
    json_object_object_add(p, "idtyp", json_object_new_string("app"));
    json_object_object_add(p, "ver", json_object_new_string("2.0"));
    rc = emu_keys_sign_json(e->keys, jsonx_compact(p), tok);
    json_object_put(p);
    *exp_out = now + e->ttl_s;
    return rc;
}

/* Loose checks of a federated client assertion (the workload identity's projected service
 * account token): three base64url parts, JSON header with a string alg, JSON payload with aud
 * (string or array) holding api://AzureADTokenExchange, a non-empty string sub, an integer exp
 * in the future, and iss equal to --federated-issuer when that is set. The signature is not
 * checked: the stand-in has no issuer keys. NULL when acceptable, else a reason. */
static const char *entra_assertion_check(const struct emu_entra *e, const char *jwt)
{
    const char *why = "client_assertion is not a JWT";
    const char *dot1 = strchr(jwt, '.');
    const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    uint8_t *hdr = NULL, *pl = NULL;
    size_t hlen = 0, plen = 0;
    struct json_object *h = NULL, *p = NULL, *aud = NULL;
    const char *s = NULL;
    int64_t exp = 0;
    int aud_ok = 0;

    if (!dot1 || !dot2 || strchr(dot2 + 1, '.') || dot1 == jwt || dot2 == dot1 + 1)
        goto out;
    if (b64url_decode(jwt, (size_t)(dot1 - jwt), &hdr, &hlen) != 0 ||
        b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &pl, &plen) != 0 ||
        jsonx_parse((const char *)hdr, hlen, hlen, &h) != 0 ||
        jsonx_parse((const char *)pl, plen, plen, &p) != 0 ||
        !json_object_is_type(h, json_type_object) || !json_object_is_type(p, json_type_object) ||
        jsonx_get_string(h, "alg", 32, &s) != 0)
        goto out;
    why = "client_assertion audience is not " ENTRA_FED_AUD;
    if (json_object_object_get_ex(p, "aud", &aud)) {
        if (json_object_is_type(aud, json_type_string))
            aud_ok = strcmp(json_object_get_string(aud), ENTRA_FED_AUD) == 0;
        else if (json_object_is_type(aud, json_type_array))
            for (size_t i = 0; i < json_object_array_length(aud); i++) {
                struct json_object *a = json_object_array_get_idx(aud, i);
                if (json_object_is_type(a, json_type_string) &&
                    strcmp(json_object_get_string(a), ENTRA_FED_AUD) == 0)
                    aud_ok = 1;
            }
    }
    if (!aud_ok)
        goto out;
    why = "client_assertion has no sub";
    if (jsonx_get_string(p, "sub", 1024, &s) != 0)
        goto out;
    why = "client_assertion is expired";
    if (jsonx_get_int(p, "exp", 0, INT64_MAX / 2, &exp) != 0 || exp <= clock_wall_ms() / 1000)
        goto out;
    why = "client_assertion issuer does not match the federated credential";
    if (e->federated_issuer &&
        (jsonx_get_string(p, "iss", 1024, &s) != 0 || strcmp(s, e->federated_issuer) != 0))
        goto out;
    why = NULL;
out:
    json_object_put(h);
    json_object_put(p);
    free(hdr);
    free(pl);
    return why;
}

static int entra_secret_ok(const struct emu_entra *e, const char *secret)
{
    size_t n = strlen(secret);

    /* Without --client-secret any non-empty secret will do (make run); with it, an exact
     * match compared in constant time. */
    return n > 0 && (!e->client_secret || (n == strlen(e->client_secret) &&
                                           CRYPTO_memcmp(secret, e->client_secret, n) == 0));
}

/* ---- routes ---- */

/* Why the token request in form is refused (an Entra error description, with *status and
 * *code set), or NULL when a token may be issued. */
static const char *entra_token_refusal(const struct emu_entra *e, struct json_object *form,
                                       int *status, const char **code)
{
    const char *grant = entra_field(form, "grant_type");
    const char *scope = entra_field(form, "scope");
    const char *cid = entra_field(form, "client_id");
    const char *secret = entra_field(form, "client_secret");
    const char *atype = entra_field(form, "client_assertion_type");
    const char *assertion = entra_field(form, "client_assertion");
    const char *why = NULL;

    *status = 400;
    *code = "invalid_request";
    if (!grant || strcmp(grant, "client_credentials") != 0) {
        *code = "unsupported_grant_type";
        why = "AADSTS70003: grant_type must be client_credentials";
    } else if (!scope || strcmp(scope, ENTRA_SCOPE) != 0) {
        *code = "invalid_scope";
        why = "AADSTS70011: scope must be " ENTRA_SCOPE;
    } else if (!cid || !*cid) {
        why = "AADSTS900144: client_id is missing";
    } else if (e->client_id && strcmp(cid, e->client_id) != 0) {
        *code = "unauthorized_client";
        why = "AADSTS700016: application not found in the directory";
    } else if ((secret != NULL) == (assertion != NULL)) {
        why = "AADSTS900144: exactly one of client_secret and client_assertion";
    } else if (secret) {
        if (!entra_secret_ok(e, secret)) {
            *status = 401;
            *code = "invalid_client";
            why = "AADSTS7000215: invalid client secret";
        }
    } else if (!atype || strcmp(atype, ENTRA_ASSERTION_TYPE) != 0) {
        why = "AADSTS50027: client_assertion_type must be " ENTRA_ASSERTION_TYPE;
    } else {
        why = entra_assertion_check(e, assertion);
        *status = 401;
        *code = "invalid_client";
    }
    return why;
}

static void entra_route_token(struct emu_entra *e, struct json_object *form, struct entra_reply *r)
{
    const char *cid = entra_field(form, "client_id");
    const char *code = NULL;
    const char *why;
    char *tok = NULL;
    int64_t exp = 0;
    int status = 0;
    struct json_object *o;

    why = entra_token_refusal(e, form, &status, &code);
    if (why) {
        entra_reply_error(r, status, code, why);
    } else if (entra_mint(e, cid, cid, &exp, &tok) != 0) {
        entra_reply_error(r, 500, "temporarily_unavailable", "signing failed");
    } else {
        o = json_object_new_object();
        json_object_object_add(o, "token_type", json_object_new_string("Bearer"));
        json_object_object_add(o, "expires_in", json_object_new_int64(e->ttl_s));
        json_object_object_add(o, "ext_expires_in", json_object_new_int64(e->ttl_s));
        json_object_object_add(o, "access_token", json_object_new_string(tok));
        OPENSSL_cleanse(tok, strlen(tok));
        free(tok);
        entra_reply_json(r, 200, o);
    }
}

static int entra_resource_ok(const char *res)
{
    /* The SDKs turn the scope into a resource by dropping "/.default", which leaves the
     * trailing slash; both spellings name the same resource. */
    return res && (strcmp(res, ENTRA_AUD) == 0 || strcmp(res, ENTRA_AUD "/") == 0);
}

/* Both managed-identity routes answer the same fields as strings of epoch seconds, as App
 * Service (2019-08-01) and IMDS (2018-02-01) do; imds adds expires_in and not_before. */
static void entra_route_mi(struct emu_entra *e, struct MHD_Connection *c, int imds,
                           struct entra_reply *r)
{
    const char *ver = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "api-version");
    const char *res = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "resource");
    const char *cid = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "client_id");
    const char *md = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Metadata");
    const char *ih = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-IDENTITY-HEADER");
    size_t ih_len = ih ? strlen(ih) : 0;
    const char *app = cid && *cid ? cid : ENTRA_MI_SUBJECT;
    char *tok = NULL;
    char num[32];
    int64_t exp = 0;
    struct json_object *o;

    if (imds && (!md || strcmp(md, "true") != 0)) {
        entra_reply_error(r, 400, "invalid_request", "Required metadata header not specified");
        goto out;
    }
    if (!imds && (!e->identity_header || !ih || ih_len != strlen(e->identity_header) ||
                  CRYPTO_memcmp(ih, e->identity_header, ih_len) != 0)) {
        entra_reply_error(r, 401, "invalid_request", "X-IDENTITY-HEADER missing or wrong");
        goto out;
    }
    if (!ver || strcmp(ver, imds ? "2018-02-01" : "2019-08-01") != 0) {
        entra_reply_error(r, 400, "invalid_request",
                          imds ? "api-version must be 2018-02-01"
                               : "api-version must be 2019-08-01");
        goto out;
    }
    if (!entra_resource_ok(res)) {
        entra_reply_error(r, 400, "invalid_resource", "resource must be " ENTRA_AUD);
        goto out;
    }
    if (entra_mint(e, ENTRA_MI_SUBJECT, app, &exp, &tok) != 0) {
        entra_reply_error(r, 500, "temporarily_unavailable", "signing failed");
        goto out;
    }
    o = json_object_new_object();
    json_object_object_add(o, "access_token", json_object_new_string(tok));
    snprintf(num, sizeof(num), "%lld", (long long)exp);
    json_object_object_add(o, "expires_on", json_object_new_string(num));
    json_object_object_add(o, "resource", json_object_new_string(res));
    json_object_object_add(o, "token_type", json_object_new_string("Bearer"));
    if (imds) {
        snprintf(num, sizeof(num), "%lld", (long long)e->ttl_s);
        json_object_object_add(o, "expires_in", json_object_new_string(num));
        snprintf(num, sizeof(num), "%lld", (long long)(exp - e->ttl_s));
        json_object_object_add(o, "not_before", json_object_new_string(num));
    } else {
        json_object_object_add(o, "client_id", json_object_new_string(app));
    }
    entra_reply_json(r, 200, o);
out:
    if (tok) {
        OPENSSL_cleanse(tok, strlen(tok));
        free(tok);
    }
}

static void entra_route_metadata(struct emu_entra *e, struct entra_reply *r)
{
    struct json_object *o = json_object_new_object();
    struct json_object *a = json_object_new_array();
    char url[ENTRA_URL_MAX * 2], base[ENTRA_URL_MAX], issuer[ENTRA_URL_MAX];

    entra_addr(e, base, issuer);
    json_object_object_add(o, "issuer", json_object_new_string(issuer));
    snprintf(url, sizeof(url), "%s/%s/oauth2/v2.0/token", base, e->tenant);
    json_object_object_add(o, "token_endpoint", json_object_new_string(url));
    snprintf(url, sizeof(url), "%s/%s/discovery/v2.0/keys", base, e->tenant);
    json_object_object_add(o, "jwks_uri", json_object_new_string(url));
    json_object_array_add(a, json_object_new_string("RS256"));
    json_object_object_add(o, "id_token_signing_alg_values_supported", a);
    a = json_object_new_array();
    json_object_array_add(a, json_object_new_string("client_credentials"));
    json_object_object_add(o, "grant_types_supported", a);
    entra_reply_json(r, 200, o);
}

/* Sleeps ms in short steps, ending early when the stand-in stops. */
static void entra_wait(struct emu_entra *e, int64_t ms)
{
    int64_t until = clock_mono_ms() + ms;

    while (!atomic_load(&e->stopping) && clock_mono_ms() < until)
        clock_sleep_ms(20);
}

/* Applies the injected fault to a token route. 1 when r now holds the answer. */
static int entra_apply_fault(struct emu_entra *e, struct entra_reply *r)
{
    enum entra_fault f;
    int64_t delay;
    int status;

    pthread_mutex_lock(&e->mu);
    f = e->fault;
    delay = e->fault_delay_ms;
    status = e->fault_status;
    pthread_mutex_unlock(&e->mu);
    if (f == ENTRA_FAULT_ERROR) {
        entra_reply_error(r, status, "temporarily_unavailable", "injected fault");
    } else if (f == ENTRA_FAULT_HANG) {
        entra_wait(e, ENTRA_HANG_MAX_MS);
        entra_reply_error(r, 504, "temporarily_unavailable", "injected hang ended");
    } else if (f == ENTRA_FAULT_SLOW) {
        entra_wait(e, delay);
    }
    return f == ENTRA_FAULT_ERROR || f == ENTRA_FAULT_HANG;
}

static int entra_fault_parse(const char *s, enum entra_fault *out)
{
    int rc = 0;

    if (strcmp(s, "none") == 0)
        *out = ENTRA_FAULT_NONE;
    else if (strcmp(s, "error") == 0)
        *out = ENTRA_FAULT_ERROR;
    else if (strcmp(s, "hang") == 0)
        *out = ENTRA_FAULT_HANG;
    else if (strcmp(s, "slow") == 0)
        *out = ENTRA_FAULT_SLOW;
    else
        rc = TV_ERR_INVALID;
    return rc;
}

/* PUT /entra/faults {"mode":"none|error|hang|slow","status":500..599,"delay_ms":0..120000}. */
static void entra_route_faults_put(struct emu_entra *e, const char *body, size_t len,
                                   struct entra_reply *r)
{
    struct json_object *o = NULL;
    const char *mode = NULL;
    enum entra_fault f = ENTRA_FAULT_NONE;
    int64_t status = 500, delay = 0;

    if (jsonx_parse(body, len, ENTRA_BODY_MAX, &o) != 0 ||
        !json_object_is_type(o, json_type_object) || jsonx_get_string(o, "mode", 16, &mode) != 0 ||
        entra_fault_parse(mode, &f) != 0) {
        entra_reply_error(r, 400, "invalid_request",
                          "body must be {\"mode\":\"none|error|hang|slow\"}");
        goto out;
    }
    /* Absent fields keep their defaults; present ones must be in range. */
    if (jsonx_get_int(o, "status", 500, 599, &status) == TV_ERR_INVALID ||
        jsonx_get_int(o, "delay_ms", 0, ENTRA_HANG_MAX_MS, &delay) == TV_ERR_INVALID) {
        entra_reply_error(r, 400, "invalid_request", "status is 500..599, delay_ms 0..120000");
        goto out;
    }
    pthread_mutex_lock(&e->mu);
    e->fault = f;
    e->fault_status = (int)status;
    e->fault_delay_ms = delay;
    pthread_mutex_unlock(&e->mu);
    r->status = 204;
    r->body = strdup("");
out:
    json_object_put(o);
}

/* Routes one complete request into r. */
static void entra_dispatch(struct emu_entra *e, struct MHD_Connection *c, const char *url,
                           const char *method, struct entra_req *q, struct entra_reply *r)
{
    size_t tl = strlen(e->tenant);
    const char *rest = NULL;
    struct json_object *fields = NULL, *headers = NULL;

    if (url[0] == '/' && strncmp(url + 1, e->tenant, tl) == 0 && url[1 + tl] == '/')
        rest = url + 1 + tl;
    if (strcmp(url, "/entra/requests") == 0) {
        if (strcmp(method, "GET") == 0) {
            pthread_mutex_lock(&e->mu);
            r->body = strdup(jsonx_compact(e->log));
            pthread_mutex_unlock(&e->mu);
            r->status = 200;
        } else if (strcmp(method, "DELETE") == 0) {
            pthread_mutex_lock(&e->mu);
            json_object_put(e->log);
            e->log = json_object_new_array();
            pthread_mutex_unlock(&e->mu);
            r->status = 204;
            r->body = strdup("");
        } else {
            entra_reply_error(r, 405, "invalid_request", "GET or DELETE");
        }
    } else if (strcmp(url, "/entra/faults") == 0) {
        if (strcmp(method, "PUT") == 0) {
            entra_route_faults_put(e, buf_cstr(&q->body), q->body.len, r);
        } else if (strcmp(method, "DELETE") == 0) {
            pthread_mutex_lock(&e->mu);
            e->fault = ENTRA_FAULT_NONE;
            pthread_mutex_unlock(&e->mu);
            r->status = 204;
            r->body = strdup("");
        } else {
            entra_reply_error(r, 405, "invalid_request", "PUT or DELETE");
        }
    } else if (strcmp(url, "/msi/token") == 0 ||
               strcmp(url, "/metadata/identity/oauth2/token") == 0) {
        int imds = url[1] == 'm' && url[2] == 'e';
        const char *ih = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-IDENTITY-HEADER");
        const char *md = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Metadata");
        fields = json_object_new_object();
        headers = json_object_new_object();
        MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, entra_query_iter, fields);
        if (ih)
            json_object_object_add(headers, "x-identity-header-length",
                                   json_object_new_int64((int64_t)strlen(ih)));
        if (md)
            json_object_object_add(headers, "metadata", json_object_new_string(md));
        entra_record(e, imds ? "imds" : "msi", method, fields, headers);
        if (strcmp(method, "GET") != 0)
            entra_reply_error(r, 405, "invalid_request", "GET only");
        else if (!entra_apply_fault(e, r))
            entra_route_mi(e, c, imds, r);
    } else if (rest && strcmp(rest, "/oauth2/v2.0/token") == 0) {
        const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
        struct json_object *form = NULL;
        int bad = strcmp(method, "POST") != 0 || !ct ||
                  strncmp(ct, "application/x-www-form-urlencoded", 33) != 0 ||
                  entra_form_parse(buf_cstr(&q->body), q->body.len, &form) != 0;
        fields = json_object_new_object();
        if (form) {
            json_object_object_foreach(form, k, v)
            {
                entra_field_add(fields, k, json_object_get_string(v));
            }
        }
        entra_record(e, "token", method, fields, NULL);
        if (bad)
            entra_reply_error(r, 400, "invalid_request",
                              "AADSTS900144: POST an application/x-www-form-urlencoded body");
        else if (!entra_apply_fault(e, r))
            entra_route_token(e, form, r);
        if (form) {
            json_object_object_foreach(form, k2, v2)
            {
                (void)k2;
                buf_wipe_const(json_object_get_string(v2), (size_t)json_object_get_string_len(v2));
            }
        }
        json_object_put(form);
    } else if (rest && strcmp(rest, "/discovery/v2.0/keys") == 0 && strcmp(method, "GET") == 0) {
        char *jwks = NULL;
        if (emu_keys_jwks(e->keys, &jwks) == 0) {
            r->status = 200;
            r->body = jwks;
        } else {
            entra_reply_error(r, 500, "temporarily_unavailable", "JWKS failed");
        }
    } else if (rest && strcmp(rest, "/v2.0/.well-known/openid-configuration") == 0 &&
               strcmp(method, "GET") == 0) {
        entra_route_metadata(e, r);
    } else if (url[0] == '/' && strstr(url + 1, "/oauth2/v2.0/token")) {
        entra_reply_error(r, 400, "invalid_request", "AADSTS90002: tenant not found");
    } else {
        entra_reply_error(r, 404, "not_found", "no such route on the Entra stand-in");
    }
    json_object_put(fields);
    json_object_put(headers);
}

/* libmicrohttpd's access handler: the first call makes the request's body buffer, the next ones
 * fill it (a body over ENTRA_BODY_MAX is kept out and answered 413), the last one answers. */
static enum MHD_Result entra_handler(void *cls, struct MHD_Connection *c, const char *url,
                                     const char *method, const char *version, const char *upload,
                                     size_t *upload_size, void **con_cls)
{
    struct emu_entra *e = cls;
    struct entra_req *q = *con_cls;
    struct entra_reply r = {0, NULL};
    struct MHD_Response *resp = NULL;
    enum MHD_Result ret = MHD_NO;

    (void)version;
    if (!q) {
        q = calloc(1, sizeof(*q));
        if (q) {
            buf_init(&q->body, ENTRA_BODY_MAX);
            *con_cls = q;
            ret = MHD_YES;
        }
        goto out;
    }
    if (*upload_size) {
        if (!q->too_large && buf_append(&q->body, upload, *upload_size) != 0)
            q->too_large = 1;
        *upload_size = 0;
        ret = MHD_YES;
        goto out;
    }
    if (q->too_large)
        entra_reply_error(&r, 413, "invalid_request", "body too large");
    else
        entra_dispatch(e, c, url, method, q, &r);
    if (!r.body) {
        r.status = 500;
        r.body = strdup(
            "{\"error\":\"temporarily_unavailable\",\"error_description\":\"out of memory\"}");
        if (!r.body)
            goto out;
    }
    /* libmicrohttpd copies the body (it may hold a token); ours is wiped at once. */
    resp = MHD_create_response_from_buffer(strlen(r.body), r.body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        goto out;
    if (r.status != 204)
        MHD_add_response_header(resp, "Content-Type", "application/json; charset=utf-8");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    ret = MHD_queue_response(c, (unsigned)r.status, resp);
out:
    if (resp)
        MHD_destroy_response(resp);
    if (r.body) {
        OPENSSL_cleanse(r.body, strlen(r.body));
        free(r.body);
    }
    return ret;
}

static void entra_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                            enum MHD_RequestTerminationCode toe)
{
    struct entra_req *q = *con_cls;

    (void)cls;
    (void)c;
    (void)toe;
    if (q) {
        buf_release_wipe(&q->body);
        free(q);
        *con_cls = NULL;
    }
}

int emu_entra_start(const struct emu_entra_opts *o, struct emu_entra **out)
{
    int rc = TV_ERR_CONFIG;
    struct emu_entra *e = NULL;
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    char host[ENTRA_HOST_MAX];
    const union MHD_DaemonInfo *info;

    if (netaddr_parse(o->listen, &ss, &sslen, host, sizeof(host)) != 0) {
        log_msg(LOGL_ERROR, NULL, "entra: --listen %s is not HOST:PORT", o->listen);
        goto out;
    }
    if (entra_fault_parse(o->fault ? o->fault : "none", &(enum entra_fault){0}) != 0) {
        log_msg(LOGL_ERROR, NULL, "entra: --fault is none, error, hang or slow");
        goto out;
    }
    rc = TV_ERR_NOMEM;
    e = calloc(1, sizeof(*e));
    if (!e)
        goto out;
    pthread_mutex_init(&e->mu, NULL);
    e->tenant = o->tenant;
    e->client_id = o->client_id;
    e->client_secret = o->client_secret;
    e->federated_issuer = o->federated_issuer;
    e->identity_header = o->identity_header;
    e->ttl_s = o->ttl_s;
    e->fault_status = 500;
    e->fault_delay_ms = o->fault_delay_ms;
    entra_fault_parse(o->fault ? o->fault : "none", &e->fault);
    e->log = json_object_new_array();
    if (!e->log)
        goto out;
    rc = emu_keys_generate(&e->keys);
    if (rc != 0)
        goto out;
    rc = TV_ERR_IO;
    /* libmicrohttpd opens an IPv4 socket unless told the address is IPv6. */
    e->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                                (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
                            0, NULL, NULL, entra_handler, e, MHD_OPTION_SOCK_ADDR,
                            (struct sockaddr *)&ss, MHD_OPTION_NOTIFY_COMPLETED, entra_completed, e,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_END);
    if (!e->d) {
        log_msg(LOGL_ERROR, NULL, "entra: cannot listen on %s", o->listen);
        goto out;
    }
    info = MHD_get_daemon_info(e->d, MHD_DAEMON_INFO_BIND_PORT);
    if (!info)
        goto out;
    pthread_mutex_lock(&e->mu);
    snprintf(e->base, sizeof(e->base), "http://%s:%u", host, (unsigned)info->port);
    int too_long = snprintf(e->issuer, sizeof(e->issuer), "%.*s/%.128s/v2.0", ENTRA_HOST_MAX + 16,
                            e->base, e->tenant) >= (int)sizeof(e->issuer);
    pthread_mutex_unlock(&e->mu);
    if (too_long)
        goto out;
    *out = e;
    e = NULL;
    rc = 0;
out:
    emu_entra_stop(e);
    return rc;
}

const char *emu_entra_base(const struct emu_entra *e)
{
    return e->base;
}

void emu_entra_stop(struct emu_entra *e)
{
    if (e) {
        atomic_store(&e->stopping, 1); /* ends a held ("hang") request within 20 ms */
        if (e->d)
            MHD_stop_daemon(e->d);
        emu_keys_free(e->keys);
        json_object_put(e->log);
        pthread_mutex_destroy(&e->mu);
        free(e);
    }
}
