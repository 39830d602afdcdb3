/* Internals shared by the api module's files: caller authentication, the pending-request
 * record that carries a request to the service's callback, and the reply shapes. */
#ifndef TV_API_API_INT_H
#define TV_API_API_INT_H

#include <stddef.h>
#include <stdint.h>

#include "api/api.h"
#include "auth/jwt.h"
#include "service/service.h"

struct buf;
struct json_object;

#define API_USER_MAX JWT_USER_MAX
#define API_OID_MAX 128

/* An authenticated caller. */
struct api_caller {
    char kind[16];               /* "user" or "apikey" */
    char name[API_USER_MAX + 1]; /* app user id or API key name */
    char oid[API_OID_MAX + 1];   /* the bearer token's "oid" claim, "" when absent */
};

/* How a service result becomes a reply. */
enum api_shape {
    SHAPE_TOKEN,         /* 200 {"token","expiresOn","user":{"communicationUserId"}} */
    SHAPE_TEAMS,         /* 200 {"token","expiresOn"} */
    SHAPE_PUBLIC_USER,   /* 201/200 {"acsUserIdentity","createdAt"} */
    SHAPE_INTERNAL_USER, /* 201/200 the internal mapping object */
    SHAPE_IDENTITY, /* 201 {"user":{"communicationUserId"},"createdAt"[,"token","expiresOn"]} */
    SHAPE_EMPTY,    /* 204 */
    SHAPE_DELETE,   /* 204, or 202 while the outbox finishes */
};

/* Authenticates a public-API caller from "Authorization: Bearer <JWT>" (OIDC, or a session
 * token when local accounts are on). On failure it has replied (401 with WWW-Authenticate, or
 * 503) and returns non-zero. */
int api_auth_user(struct http_req *req, struct api_ctx *ctx, struct api_caller *out);
/* Authenticates an internal caller from "Authorization: Bearer <api key>"; replies on failure. */
int api_auth_apikey(struct http_req *req, struct api_ctx *ctx, struct api_caller *out);

/* The per-address limit of the public API (limits.c), before the bearer token is verified:
 * 0, or non-zero after replying 429 with Retry-After. */
int api_limit_ip(struct http_req *req, struct api_ctx *ctx);
/* The client address of req as text, as the per-address counts see it: through the trusted
 * proxies (X-Forwarded-For) when the peer is one, else the peer (INET6_ADDRSTRLEN bytes do). */
void api_client_addr(struct http_req *req, struct api_ctx *ctx, char *out, size_t cap);
/* The per-caller limit of an authenticated caller: per app user ("user") or per API key
 * ("apikey"). 0, or non-zero after replying 429 with Retry-After. */
int api_limit_caller(struct http_req *req, struct api_ctx *ctx, const struct api_caller *who);
/* Appends the limits' Prometheus counters; 0 or the buf error. */
int api_limits_metrics_write(struct api_limits *l, struct buf *out);

/* Starts waiting for the service: returns a done callback argument that replies to req in the
 * given shape, or NULL after replying 500 (out of memory). */
void *api_pending_new(struct http_req *req, enum api_shape shape);
/* The service callback matching api_pending_new. */
void api_pending_done(void *arg, const struct service_result *r);
/* Fills a service_call for req and caller. */
void api_call_init(struct service_call *c, struct http_req *req, const struct api_caller *who);

/* The shape of the service calls that take one user or identity id and nothing else
 * (service_user_ensure, _revoke, _delete, service_identity_revoke, _delete). */
typedef void (*api_id_call_fn)(struct service *s, const struct service_call *c, const char *id,
                               service_done_fn done, void *arg);

/* Replies with an error built from a service result or a code. */
void api_reply_error(struct http_req *req, int rc, const char *message);
/* A mapping as the internal API shows it (new reference). */
struct json_object *api_user_json(const struct store_user *u);
/* Parses a token request body against the policy; replies 400/403 on failure (non-zero). */
int api_token_req(struct http_req *req, struct api_ctx *ctx, struct policy_token_req *out);

/* POST /api/login (login.c). */
void api_login(struct http_req *req, void *ctx);
/* The client address as the per-address login cap counts it, into out (cap bytes): IPv4 as
 * is, IPv6 by its /64 ("2001:db8:1:2::/64"). */
void api_login_client_key(const char *addr, char *out, size_t cap);
/* The per-use check of a verified session token for account name carrying epoch: the
 * account exists and its session epoch is still epoch (an account state read from the store
 * at most every 0.5 s per name). 0, TV_ERR_UNAUTHORIZED or TV_ERR_UNAVAILABLE (store). */
int api_session_account_check(struct api_ctx *ctx, const char *name, int64_t epoch);

/* POST /api/session/refresh and /api/session/logout (session.c). */
void api_session_refresh(struct http_req *req, void *ctx);
void api_session_logout(struct http_req *req, void *ctx);
/* Sets the tv_refresh cookie to value (SECRET: the server wipes its copy of the reply's
 * headers) for max_age_s seconds, or clears it (Max-Age=0). */
void api_session_cookie_set(struct http_req *req, const char *value, int64_t max_age_s);
void api_session_cookie_clear(struct http_req *req);
/* Whether the request may act on the tv_refresh cookie, or receive one: no Origin header, this
 * listener's own origin, or an origin named in cors_origins (a "*" entry does not count). */
int api_session_origin_ok(struct http_req *req);
/* 1 when ct is "application/json", optionally with parameters ("; charset=utf-8"). */
int api_json_type_ok(const char *ct);
/* Finds the cookie called name in the Cookie header lines[0..n): *value and *len name its value
 * (borrowed from lines, up to the next ';' or the line's end, trailing spaces and tabs left
 * out; leading ones are part of it, so such a value is not a valid token). Spaces before a
 * cookie's name are skipped. Other cookies, of any shape, are skipped.
 * 0, TV_ERR_NOT_FOUND, TV_ERR_CONFLICT (name came more than once) or TV_ERR_INVALID (more than
 * 8 lines, or a line over 8 KiB). */
int api_cookie_find(const char *const *lines, size_t n, const char *name, const char **value,
                    size_t *len);

/* Operations endpoints (ops.c), on both listeners. */
void api_ops_healthz(struct http_req *req, void *ctx);
void api_ops_readyz(struct http_req *req, void *ctx);
void api_ops_metrics(struct http_req *req, void *ctx);
/* GET /openapi.json: that listener's part of docs/openapi.yaml (build/gen/openapi.c). */
void api_ops_openapi_public(struct http_req *req, void *ctx);
void api_ops_openapi_internal(struct http_req *req, void *ctx);

#endif
