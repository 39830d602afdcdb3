/* POST /api/session/refresh and POST /api/session/logout (issue 12): the tv_refresh cookie that
 * POST /api/login sets, read strictly, checked against the request's origin and content type,
 * and handed to the service (service/refresh.h), which does the store work on its queue. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include "api_int.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "service/refresh.h"

#define REFRESH_COOKIE "tv_refresh"
#define COOKIE_PATH "; Path=/api/session"
#define COOKIE_ATTRS "; HttpOnly; Secure; SameSite=Strict"
/* A cookie header past these is refused (400) before it is read any further. */
#define COOKIE_LINES_MAX 8
#define COOKIE_LINE_MAX 8192
#define SESSION_BODY_MAX 64
#define ORIGIN_MAX 512

/* The members of a refresh or logout body: none. */
static const char *const no_members[] = {NULL};

void api_session_cookie_set(struct http_req *req, const char *value, int64_t max_age_s)
{
    char c[sizeof REFRESH_COOKIE + REFRESH_VALUE_LEN + sizeof COOKIE_PATH + sizeof COOKIE_ATTRS +
           48];

    /* The attributes in the order the contract with the example page writes them. */
    snprintf(c, sizeof c, REFRESH_COOKIE "=%s" COOKIE_PATH "; Max-Age=%lld" COOKIE_ATTRS, value,
             (long long)max_age_s);
    http_reply_header(req, "Set-Cookie", c);
    OPENSSL_cleanse(c, sizeof c);
}

void api_session_cookie_clear(struct http_req *req)
{
    http_reply_header(req, "Set-Cookie", REFRESH_COOKIE "=" COOKIE_PATH "; Max-Age=0" COOKIE_ATTRS);
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

int api_cookie_find(const char *const *lines, size_t n, const char *name, const char **value,
                    size_t *len)
{
    size_t nlen = strlen(name);
    int found = 0;

    if (n > COOKIE_LINES_MAX)
        return TV_ERR_INVALID;
    for (size_t i = 0; i < n; i++) {
        const char *p = lines[i], *end;

        if (strlen(p) > COOKIE_LINE_MAX)
            return TV_ERR_INVALID;
        end = p + strlen(p);
        while (p < end) {
            const char *semi = memchr(p, ';', (size_t)(end - p));
            const char *pe = semi != NULL ? semi : end, *eq;

            while (p < pe && is_ows(*p))
                p++;
            eq = memchr(p, '=', (size_t)(pe - p));
            /* Other applications on this host may set cookies of any shape: only ours is
             * read, and only an exact name match counts. */
            if (eq != NULL && (size_t)(eq - p) == nlen && memcmp(p, name, nlen) == 0) {
                const char *v = eq + 1, *ve = pe;

                while (ve > v && is_ows(ve[-1]))
                    ve--;
                if (found++)
                    return TV_ERR_CONFLICT; /* two of ours: which one is the browser's? */
                *value = v;
                *len = (size_t)(ve - v);
            }
            p = semi != NULL ? semi + 1 : end;
        }
    }
    return found ? 0 : TV_ERR_NOT_FOUND;
}

/* Whether the request may act on (or, for a login, receive) the cookie: no Origin (not a browser's
 * cross-origin call), this listener's own origin (scheme and Host), or an origin named in
 * cors_origins. A wildcard "*" does not count: a refresh or logout from any site is what SameSite
 * and this check exist to stop. */
int api_session_origin_ok(struct http_req *req)
{
    const char *origin = http_req_header(req, "Origin"), *host = http_req_header(req, "Host");
    char own[ORIGIN_MAX];

    if (origin == NULL || http_req_origin_listed(req))
        return 1;
    if (host == NULL || host[0] == '\0' || strlen(host) > ORIGIN_MAX - 16)
        return 0;
    snprintf(own, sizeof own, "http://%s", host);
    if (strcmp(origin, own) == 0)
        return 1;
    snprintf(own, sizeof own, "https://%s", host);
    return strcmp(origin, own) == 0;
}

int api_json_type_ok(const char *ct)
{
    size_t n = strlen("application/json");

    if (ct == NULL || strncasecmp(ct, "application/json", n) != 0)
        return 0;
    ct += n;
    while (is_ows(*ct))
        ct++;
    return *ct == '\0' || *ct == ';';
}

/* The checks both routes share, in order: enabled, the per-address limit, origin, content
 * type, body (empty or {}), cookie. 0 with *value (borrowed from the request; NULL when no
 * cookie came) or non-zero after replying. */
static int session_req(struct http_req *req, struct api_ctx *ctx, const char **value)
{
    struct json_object *root = NULL;
    const char *lines[COOKIE_LINES_MAX + 1];
    const char *v = NULL;
    size_t blen = 0, vlen = 0, n;
    const char *body = http_req_body(req, &blen);
    char msg[160];
    int rc;

    *value = NULL;
    if (ctx->refresh == NULL) {
        http_reply_error(req, TV_ERR_NOT_FOUND, "session refresh is not enabled");
        return TV_ERR_NOT_FOUND;
    }
    if (api_limit_ip(req, ctx) != 0)
        return TV_ERR_RATE_LIMITED;
    if (!api_session_origin_ok(req)) {
        http_reply_error(req, TV_ERR_FORBIDDEN, "origin not allowed");
        return TV_ERR_FORBIDDEN;
    }
    if (!api_json_type_ok(http_req_header(req, "Content-Type"))) {
        http_reply_error(req, TV_ERR_MEDIA_TYPE, "Content-Type must be application/json");
        return TV_ERR_MEDIA_TYPE;
    }
    if (blen > 0) {
        rc = jsonx_parse(body, blen, SESSION_BODY_MAX, &root);
        if (rc != 0 || !json_object_is_type(root, json_type_object)) {
            json_object_put(root);
            http_reply_error(req, TV_ERR_PARSE, "the body must be empty or {}");
            return TV_ERR_PARSE;
        }
        rc = jsonx_check_members(root, no_members, msg, sizeof msg);
        json_object_put(root);
        if (rc != 0) {
            http_reply_error(req, TV_ERR_INVALID, msg);
            return TV_ERR_INVALID;
        }
    }
    n = http_req_header_all(req, "Cookie", lines, COOKIE_LINES_MAX + 1);
    rc = api_cookie_find(lines, n, REFRESH_COOKIE, &v, &vlen);
    if (rc == TV_ERR_CONFLICT || rc == TV_ERR_INVALID) {
        api_session_cookie_clear(req);
        http_reply_error(req, TV_ERR_INVALID,
                         rc == TV_ERR_CONFLICT ? "more than one tv_refresh cookie"
                                               : "the Cookie header is too large");
        return TV_ERR_INVALID;
    }
    if (rc == 0 && service_refresh_value_ok(v, vlen))
        *value = v;
    return 0;
}

/* A refresh or logout handed to the service. */
struct session_call {
    struct http_req *req;
    struct api_ctx *ctx;
};

/* The value (REFRESH_VALUE_LEN bytes at v) as a string the service copies. */
static void value_copy(char out[REFRESH_VALUE_LEN + 1], const char *v)
{
    memcpy(out, v, REFRESH_VALUE_LEN);
    out[REFRESH_VALUE_LEN] = '\0';
}

/* Replies for a job the service could not take (busy: the message for its 503) or that failed
 * in the store (busy NULL): 503 with Retry-After, or rc's own status. */
static void reply_failed(struct http_req *req, int rc, const char *busy)
{
    if (rc == TV_ERR_UNAVAILABLE)
        http_reply_header(req, "Retry-After", "1");
    http_reply_error(req, rc, rc == TV_ERR_UNAVAILABLE ? busy : NULL);
}

static void refresh_done(void *arg, int rc, const char *token, const char *value,
                         int64_t expires_in_s)
{
    struct session_call *sc = arg;
    struct json_object *o;

    if (rc == TV_ERR_UNAUTHORIZED) {
        api_session_cookie_clear(sc->req);
        api_reply_error(sc->req, rc, "no valid session refresh token");
    } else if (rc != 0) {
        reply_failed(sc->req, rc, NULL);
    } else {
        api_session_cookie_set(sc->req, value, expires_in_s);
        o = json_object_new_object();
        json_object_object_add(o, "access_token", json_object_new_string(token));
        json_object_object_add(o, "token_type", json_object_new_string("Bearer"));
        json_object_object_add(o, "expires_in",
                               json_object_new_int64(sc->ctx->session_minutes * 60));
        json_object_object_add(o, "refresh_expires_in", json_object_new_int64(expires_in_s));
        http_reply_header(sc->req, "Cache-Control", "no-store");
        http_reply_header(sc->req, "Pragma", "no-cache");
        http_reply_json(sc->req, 200, o);
    }
    free(sc);
}

static void logout_done(void *arg, int rc)
{
    struct session_call *sc = arg;

    if (rc != 0) {
        /* Nothing was revoked: the cookie stays, so the page can log out again. */
        reply_failed(sc->req, rc, NULL);
    } else {
        api_session_cookie_clear(sc->req);
        http_reply_header(sc->req, "Cache-Control", "no-store");
        http_reply_empty(sc->req, 204);
    }
    free(sc);
}

/* The job's context, and its caller for the audit rows: the client's address (no account is
 * known before the job). NULL after replying when out of memory. */
static struct session_call *session_call_new(struct http_req *req, struct api_ctx *ctx,
                                             struct service_call *call)
{
    struct api_caller who = {.kind = "session"};
    struct session_call *sc = calloc(1, sizeof *sc);

    if (sc == NULL) {
        http_reply_error(req, TV_ERR_NOMEM, NULL);
        return NULL;
    }
    sc->req = req;
    sc->ctx = ctx;
    snprintf(who.name, sizeof who.name, "%s", http_req_remote(req));
    api_call_init(call, req, &who);
    return sc;
}

/* After handing sc to the service: when it could not take the job, sc back and the reply. */
static void session_call_submitted(struct http_req *req, struct session_call *sc, int rc)
{
    if (rc != 0) {
        free(sc);
        reply_failed(req, rc, "too busy; try again shortly");
    }
}

void api_session_refresh(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    struct service_call call;
    struct session_call *sc;
    char value[REFRESH_VALUE_LEN + 1];
    const char *v = NULL;
    int rc;

    if (session_req(req, ctx, &v) != 0)
        return;
    if (v == NULL) {
        api_session_cookie_clear(req);
        api_reply_error(req, TV_ERR_UNAUTHORIZED, "no valid session refresh token");
        return;
    }
    if ((sc = session_call_new(req, ctx, &call)) == NULL)
        return;
    value_copy(value, v);
    rc = service_refresh_rotate(ctx->svc, &call, ctx->refresh, value, refresh_done, sc);
    OPENSSL_cleanse(value, sizeof value);
    session_call_submitted(req, sc, rc);
}

void api_session_logout(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    struct service_call call;
    struct session_call *sc;
    char value[REFRESH_VALUE_LEN + 1];
    const char *v = NULL;
    int rc;

    if (session_req(req, ctx, &v) != 0)
        return;
    if ((sc = session_call_new(req, ctx, &call)) == NULL)
        return;
    if (v != NULL)
        value_copy(value, v);
    rc = service_refresh_logout(ctx->svc, &call, v != NULL ? value : NULL, logout_done, sc);
    OPENSSL_cleanse(value, sizeof value);
    session_call_submitted(req, sc, rc);
}
