/* The internal API (README "Internal API"): backends on their own listener, authenticated by an
 * API key. User routes name the app user exactly as the public API sees it: an OIDC user by its
 * claim's value, a local account NAME as "local:NAME". Identity routes name an ACS identity id
 * (standalone "guest" identities included). Every id passes the id rule (core/ident.h) before
 * anything else looks at it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "api_int.h"
#include "core/err.h"
#include "core/ident.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "store/store.h"

#define LIST_DEFAULT 100

/* Authenticates, then fills the call. 0 or non-zero after replying. */
static int begin(struct http_req *req, struct api_ctx *ctx, struct service_call *call)
{
    struct api_caller who;
    if (api_auth_apikey(req, ctx, &who) != 0)
        return -1;
    api_call_init(call, req, &who);
    return 0;
}

/* The id in the path (parameter 0) when it passes the id rule; else replies 400 naming what is
 * wrong (never quoting the bytes) and returns NULL. */
static const char *path_id(struct http_req *req, const char *what)
{
    const char *id = http_req_param(req, 0);
    enum ident_fault f = ident_check_str(id, IDENT_MAX);
    char msg[128];

    if (f == IDENT_OK)
        return id;
    http_reply_error(req, TV_ERR_INVALID, ident_explain(f, what, IDENT_MAX, msg, sizeof msg));
    return NULL;
}

/* The path parameter's name in the route table's order: users, then identities. */
static const char *param_name(struct http_req *req)
{
    return strncmp(http_req_route(req), "/internal/users/", 16) == 0 ? "userId" : "acsId";
}

/* Authenticates, checks the id in the path, then runs fn for it, replying in shape. */
static void for_id(struct http_req *req, struct api_ctx *ctx, enum api_shape shape,
                   api_id_call_fn fn)
{
    struct service_call call;
    const char *id;
    void *p;

    if (begin(req, ctx, &call) != 0 || (id = path_id(req, param_name(req))) == NULL ||
        (p = api_pending_new(req, shape)) == NULL)
        return;
    fn(ctx->svc, &call, id, api_pending_done, p);
}

static void put_user(struct http_req *req, void *ctx)
{
    for_id(req, ctx, SHAPE_INTERNAL_USER, service_user_ensure);
}

static void get_user(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    struct service_call call;
    struct store_user u;
    const char *id;
    char msg[320];
    int rc;

    if (begin(req, ctx, &call) != 0 || (id = path_id(req, "userId")) == NULL)
        return;
    msg[0] = '\0';
    rc = service_user_get(ctx->svc, id, &u, msg, sizeof msg);
    if (rc == TV_ERR_INVALID)
        msg[0] = '\0';
    if (rc != 0) {
        api_reply_error(req, rc,
                        msg[0] != '\0'           ? msg
                        : rc == TV_ERR_NOT_FOUND ? "no ACS identity for this user"
                                                 : NULL);
        return;
    }
    http_reply_json(req, 200, api_user_json(&u));
}

/* Parses a decimal query parameter within [min, max]; def when absent. */
static int query_int(struct http_req *req, const char *name, long min, long max, long def,
                     long *out)
{
    const char *v = http_req_query(req, name);
    char *end;
    long n;

    if (v == NULL || v[0] == '\0') {
        *out = def;
        return 0;
    }
    errno = 0;
    n = strtol(v, &end, 10);
    if (*end != '\0' || errno != 0 || n < min || n > max || v[0] == '+' || v[0] == '-' ||
        v[0] == ' ')
        return TV_ERR_INVALID;
    *out = n;
    return 0;
}

static void list_users(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    struct service_call call;
    struct store_user *rows = NULL;
    struct json_object *o, *arr;
    const char *after;
    enum ident_fault f;
    char msg[128];
    long limit;
    int n = 0, skipped = 0, rc;

    if (begin(req, ctx, &call) != 0)
        return;
    if (query_int(req, "limit", 1, STORE_LIST_MAX, LIST_DEFAULT, &limit) != 0) {
        http_reply_error(req, TV_ERR_INVALID, "limit must be an integer in 1..1000");
        return;
    }
    /* The cursor is a user id the previous page handed out: the same rule as any id ("" is
     * the start, as an absent one). */
    after = http_req_query(req, "after");
    if (after != NULL && after[0] != '\0' && (f = ident_check_str(after, IDENT_MAX)) != IDENT_OK) {
        http_reply_error(req, TV_ERR_INVALID,
                         ident_explain(f, "after (a user id)", IDENT_MAX, msg, sizeof msg));
        return;
    }
    if ((rows = calloc((size_t)limit, sizeof *rows)) == NULL) {
        http_reply_error(req, TV_ERR_NOMEM, NULL);
        return;
    }
    rc = service_user_list(ctx->svc, after, (int)limit, rows, &n, &skipped);
    if (rc != 0) {
        http_reply_error(req, rc, NULL);
        goto done;
    }
    if (skipped > 0)
        log_msg(LOGL_WARN, http_req_id(req),
                "user list: passed over %d mapping(s) whose app user id breaks the id rule "
                "(stored before ids were checked); `tokenvend identity list` names their ACS "
                "identities",
                skipped);
    o = json_object_new_object();
    arr = json_object_new_array();
    for (int i = 0; i < n; i++)
        json_object_array_add(arr, api_user_json(&rows[i]));
    json_object_object_add(o, "users", arr);
    json_object_object_add(
        o, "next", n == limit && n > 0 ? json_object_new_string(rows[n - 1].app_user_id) : NULL);
    http_reply_json(req, 200, o);
done:
    free(rows);
}

static void user_token(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    struct policy_token_req treq;
    struct service_call call;
    const char *id;
    void *p;

    if (begin(req, ctx, &call) != 0 || (id = path_id(req, "userId")) == NULL ||
        api_token_req(req, ctx, &treq) != 0 || (p = api_pending_new(req, SHAPE_TOKEN)) == NULL)
        return;
    service_user_token(ctx->svc, &call, id, &treq, 1, api_pending_done, p);
}

static void user_revoke(struct http_req *req, void *ctx)
{
    for_id(req, ctx, SHAPE_EMPTY, service_user_revoke);
}

static void user_delete(struct http_req *req, void *ctx)
{
    for_id(req, ctx, SHAPE_DELETE, service_user_delete);
}

static size_t body_len(struct http_req *req)
{
    size_t len = 0;

    (void)http_req_body(req, &len);
    return len;
}

/* Whether a body asks for a token: it names scopes or expiresInMinutes. */
static int wants_token(struct http_req *req)
{
    struct json_object *root = NULL, *v;
    size_t len = 0;
    const char *body = http_req_body(req, &len);
    int want = 0;

    if (len == 0)
        return 0;
    if (jsonx_parse(body, len, POLICY_BODY_MAX, &root) != 0)
        return 1; /* let the policy parser report the syntax error */
    want = !json_object_is_type(root, json_type_object) ||
           json_object_object_get_ex(root, "scopes", &v) ||
           json_object_object_get_ex(root, "expiresInMinutes", &v);
    json_object_put(root);
    return want;
}

static void identity_create(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    struct policy_token_req treq;
    struct service_call call;
    int want;
    void *p;

    if (begin(req, ctx, &call) != 0)
        return;
    want = wants_token(req);
    /* Any body is checked, also one that asks for no token: a misspelt member must be a 400,
     * not an identity created without the token the caller meant to ask for. */
    if (body_len(req) > 0 && api_token_req(req, ctx, &treq) != 0)
        return;
    if ((p = api_pending_new(req, SHAPE_IDENTITY)) == NULL)
        return;
    service_identity_create(ctx->svc, &call, want ? &treq : NULL, api_pending_done, p);
}

static void identity_token(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    struct policy_token_req treq;
    struct service_call call;
    const char *id;
    void *p;

    if (begin(req, ctx, &call) != 0 || (id = path_id(req, "acsId")) == NULL ||
        api_token_req(req, ctx, &treq) != 0 || (p = api_pending_new(req, SHAPE_TOKEN)) == NULL)
        return;
    service_identity_token(ctx->svc, &call, id, &treq, api_pending_done, p);
}

static void identity_revoke(struct http_req *req, void *ctx)
{
    for_id(req, ctx, SHAPE_EMPTY, service_identity_revoke);
}

static void identity_delete(struct http_req *req, void *ctx)
{
    for_id(req, ctx, SHAPE_DELETE, service_identity_delete);
}

static const struct http_route internal_routes[] = {
    {"GET", "/internal/users", list_users},
    {"PUT", "/internal/users/{}", put_user},
    {"GET", "/internal/users/{}", get_user},
    {"DELETE", "/internal/users/{}", user_delete},
    {"POST", "/internal/users/{}/token", user_token},
    {"POST", "/internal/users/{}/revoke", user_revoke},
    {"POST", "/internal/identities", identity_create},
    {"POST", "/internal/identities/{}/token", identity_token},
    {"POST", "/internal/identities/{}/revoke", identity_revoke},
    {"DELETE", "/internal/identities/{}", identity_delete},
    {"GET", "/healthz", api_ops_healthz},
    {"GET", "/readyz", api_ops_readyz},
    {"GET", "/metrics", api_ops_metrics},
    {"GET", "/openapi.json", api_ops_openapi_internal},
};

const struct http_route *api_internal_routes(size_t *n)
{
    *n = sizeof internal_routes / sizeof internal_routes[0];
    return internal_routes;
}
