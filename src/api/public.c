/* The public API (README "Public API"): frontend apps, the caller authenticated by a bearer JWT
 * (OIDC, or the service's own session token for local accounts). Paths follow Microsoft's
 * "authentication hero" sample. */
#include <stdlib.h>
#include <string.h>

#include "api_int.h"
#include "core/err.h"

static void token_common(struct http_req *req, struct api_ctx *ctx, int with_body)
{
    struct policy_token_req treq;
    struct service_call call;
    struct api_caller who;
    void *p;

    if (api_auth_user(req, ctx, &who) != 0)
        return;
    if (with_body) {
        if (api_token_req(req, ctx, &treq) != 0)
            return;
    } else {
        policy_token_req_default(service_policy(ctx->svc), &treq);
    }
    if ((p = api_pending_new(req, SHAPE_TOKEN)) == NULL)
        return;
    api_call_init(&call, req, &who);
    service_user_token(ctx->svc, &call, who.name, &treq, service_policy(ctx->svc)->auto_create,
                       api_pending_done, p);
}

static void get_token(struct http_req *req, void *ctx)
{
    token_common(req, ctx, 0);
}

static void post_token(struct http_req *req, void *ctx)
{
    token_common(req, ctx, 1);
}

/* Authenticates the user, then runs fn for them, replying in shape. */
static void for_user(struct http_req *req, struct api_ctx *ctx, enum api_shape shape,
                     api_id_call_fn fn)
{
    struct service_call call;
    struct api_caller who;
    void *p;

    if (api_auth_user(req, ctx, &who) != 0)
        return;
    if ((p = api_pending_new(req, shape)) == NULL)
        return;
    api_call_init(&call, req, &who);
    fn(ctx->svc, &call, who.name, api_pending_done, p);
}

static void revoke_token(struct http_req *req, void *ctx)
{
    for_user(req, ctx, SHAPE_EMPTY, service_user_revoke);
}

static void get_user(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    struct api_caller who;
    struct store_user u;
    char msg[320];
    int rc;

    if (api_auth_user(req, ctx, &who) != 0)
        return;
    msg[0] = '\0';
    rc = service_user_get(ctx->svc, who.name, &u, msg, sizeof msg);
    if (rc != 0) {
        api_reply_error(req, rc,
                        msg[0] != '\0'           ? msg
                        : rc == TV_ERR_NOT_FOUND ? "no ACS identity for this user"
                                                 : NULL);
        return;
    }
    struct service_result r = {.user = &u, .acs_id = u.acs_id};
    void *p = api_pending_new(req, SHAPE_PUBLIC_USER);
    if (p != NULL)
        api_pending_done(p, &r);
}

static void post_user(struct http_req *req, void *ctx)
{
    for_user(req, ctx, SHAPE_PUBLIC_USER, service_user_ensure);
}

static void delete_user(struct http_req *req, void *ctx)
{
    for_user(req, ctx, SHAPE_DELETE, service_user_delete);
}

static void teams_token(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    struct service_call call;
    struct api_caller who;
    void *p;

    if (api_auth_user(req, ctx, &who) != 0)
        return;
    if ((p = api_pending_new(req, SHAPE_TEAMS)) == NULL)
        return;
    api_call_init(&call, req, &who);
    /* The header is read here, during the handler, and copied by the service. */
    service_teams_exchange(ctx->svc, &call, who.oid, http_req_header(req, "teams-user-aad-token"),
                           api_pending_done, p);
}

static const struct http_route public_routes[] = {
    {"GET", "/api/token", get_token},
    {"POST", "/api/token", post_token},
    {"POST", "/api/token/revoke", revoke_token},
    {"GET", "/api/token/teams", teams_token},
    {"GET", "/api/user", get_user},
    {"POST", "/api/user", post_user},
    {"DELETE", "/api/user", delete_user},
    {"POST", "/api/login", api_login},
    {"POST", "/api/session/refresh", api_session_refresh},
    {"POST", "/api/session/logout", api_session_logout},
    {"GET", "/healthz", api_ops_healthz},
    {"GET", "/readyz", api_ops_readyz},
    {"GET", "/openapi.json", api_ops_openapi_public},
    /* No /metrics here: it shows mapping and outbox counts and costs table scans, so it is
     * served on the internal listener only, where the scraper lives. */
};

const struct http_route *api_public_routes(size_t *n)
{
    *n = sizeof public_routes / sizeof public_routes[0];
    return public_routes;
}
