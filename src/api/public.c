/* The public API (README "Public API"): frontend apps, the caller authenticated by a bearer JWT
 * (OIDC, or the service's own session token for local accounts). Paths follow Microsoft's
 * "authentication hero" sample. */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include "api_int.h"
#include "auth/password.h"
#include "auth/session.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "store/accounts.h"

#define LOGIN_BODY_MAX 4096
/* Seconds a refused login (queue full) is told to wait: the queue drains in about that. */
#define LOGIN_RETRY_AFTER_S "1"

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

/* ---- POST /api/login (local accounts) ---- */

struct login {
    struct http_req *req;
    struct api_ctx *ctx;
    struct service_call call;
    char username[STORE_NAME_MAX + 1];
    char *password; /* secret copy, wiped */
    size_t pwlen;
};

static void login_free(struct login *l)
{
    if (l->password != NULL) {
        OPENSSL_cleanse(l->password, l->pwlen);
        free(l->password);
    }
    free(l);
}

/* Worker thread: Argon2 verification takes ~100 ms, too long for a server thread. */
static void login_run(void *arg)
{
    struct login *l = arg;
    struct store_account acct;
    struct json_object *o;
    char *token = NULL;
    int64_t exp = 0;
    int rc;

    memset(&acct, 0, sizeof acct);
    rc = store_account_get(l->ctx->store, l->username, &acct);
    if (rc == 0) {
        rc = password_verify(acct.password_hash, l->password, l->pwlen);
    } else if (rc == TV_ERR_NOT_FOUND || rc == TV_ERR_INVALID) {
        /* Same time as a real check, so the answer does not reveal which names exist. */
        rc = password_verify_dummy(l->password, l->pwlen);
    }
    OPENSSL_cleanse(&acct, sizeof acct);
    if (rc == 0)
        rc = session_issue(l->ctx->session, l->username, 0, l->ctx->session_minutes * 60, &token,
                           &exp);
    service_audit(l->ctx->svc, &l->call, "login", l->username, "", rc, NULL);
    if (rc == TV_ERR_UNAUTHORIZED) {
        api_reply_error(l->req, rc, "invalid username or password");
    } else if (rc != 0) {
        http_reply_error(l->req, rc, NULL);
    } else {
        o = json_object_new_object();
        json_object_object_add(o, "access_token", json_object_new_string(token));
        json_object_object_add(o, "token_type", json_object_new_string("Bearer"));
        json_object_object_add(o, "expires_in",
                               json_object_new_int64(l->ctx->session_minutes * 60));
        http_reply_header(l->req, "Cache-Control", "no-store");
        http_reply_header(l->req, "Pragma", "no-cache");
        http_reply_json(l->req, 200, o);
    }
    if (token != NULL) {
        OPENSSL_cleanse(token, strlen(token));
        free(token);
    }
    login_free(l);
}

static void login(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    struct json_object *root = NULL;
    const char *user = NULL, *pw = NULL;
    size_t len = 0;
    const char *body = http_req_body(req, &len);
    struct login *l = NULL;
    int rc;

    if (ctx->session == NULL) {
        http_reply_error(req, TV_ERR_NOT_FOUND, "local accounts are not enabled");
        return;
    }
    if (jsonx_parse(body, len, LOGIN_BODY_MAX, &root) != 0 ||
        !json_object_is_type(root, json_type_object)) {
        http_reply_error(req, TV_ERR_PARSE, "the body must be a JSON object");
        goto done;
    }
    if (jsonx_get_string(root, "username", STORE_NAME_MAX, &user) != 0 ||
        jsonx_get_string(root, "password", PASSWORD_MAX_LEN, &pw) != 0) {
        http_reply_error(req, TV_ERR_INVALID,
                         "username (1..64 bytes) and password (1..1024 bytes) are required");
        goto done;
    }
    if ((l = calloc(1, sizeof *l)) == NULL || (l->password = strdup(pw)) == NULL) {
        free(l);
        l = NULL;
        http_reply_error(req, TV_ERR_NOMEM, NULL);
        goto done;
    }
    l->req = req;
    l->ctx = ctx;
    l->pwlen = strlen(pw);
    snprintf(l->username, sizeof l->username, "%s", user);
    {
        struct api_caller who = {.kind = "user"};
        snprintf(who.name, sizeof who.name, "%s", user);
        api_call_init(&l->call, req, &who);
    }
    rc = service_defer(ctx->svc, login_run, l);
    if (rc == TV_ERR_UNAVAILABLE) {
        /* The password-check queue is full (a flood of logins): refuse at once rather than
         * make this caller wait behind all of them. */
        login_free(l);
        http_reply_header(req, "Retry-After", LOGIN_RETRY_AFTER_S);
        http_reply_error(req, rc, "too many logins in progress; try again shortly");
    } else if (rc != 0) {
        login_free(l);
        http_reply_error(req, rc, NULL);
    }
done:
    /* Wipe the copies of the password this handler saw: json-c's parsed string and the raw
     * body (both heap buffers nobody reads after this point). */
    if (pw != NULL)
        buf_wipe_const(pw, strlen(pw));
    if (len > 0)
        buf_wipe_const(body, len);
    json_object_put(root);
}

static const struct http_route public_routes[] = {
    {"GET", "/api/token", get_token},
    {"POST", "/api/token", post_token},
    {"POST", "/api/token/revoke", revoke_token},
    {"GET", "/api/token/teams", teams_token},
    {"GET", "/api/user", get_user},
    {"POST", "/api/user", post_user},
    {"DELETE", "/api/user", delete_user},
    {"POST", "/api/login", login},
    {"GET", "/healthz", api_ops_healthz},
    {"GET", "/readyz", api_ops_readyz},
    /* No /metrics here: it shows mapping and outbox counts and costs table scans, so it is
     * served on the internal listener only, where the scraper lives. */
};

const struct http_route *api_public_routes(size_t *n)
{
    *n = sizeof public_routes / sizeof public_routes[0];
    return public_routes;
}
