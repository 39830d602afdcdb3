/* acs-emulator request handling: the ACS identity operations behind HMAC authentication and
 * the unauthenticated /emulator test control plane. Replies follow the ACS wire format:
 * CommunicationErrorResponse bodies, 201 for create, 204 for revoke and delete. */
#include "routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "app.h"
#include "auth.h"
#include "bearer.h"
#include "reqparse.h"
#include "reuse.h"
#include "state.h"
#include "tokens.h"

#define ROUTES_WHY_MAX 256
#define ROUTES_SCP_ACS 1792
#define ROUTES_SCP_TEAMS 1024
#define ROUTES_TEAMS_MAX_S (24 * 3600)

void emu_reply_release(struct emu_reply *rep)
{
    free(rep->body);
    rep->body = NULL;
}

static void reply_set(struct emu_reply *rep, int status, char *body)
{
    free(rep->body);
    rep->status = status;
    rep->body = body;
}

/* {"error":{"code":...,"message":...}} (json-c escapes the message). */
static void reply_error(struct emu_reply *rep, int status, const char *code, const char *message)
{
    struct json_object *o = json_object_new_object();
    struct json_object *e = json_object_new_object();
    char *body = NULL;

    if (o && e) {
        json_object_object_add(e, "code", json_object_new_string(code));
        json_object_object_add(e, "message", json_object_new_string(message));
        json_object_object_add(o, "error", e);
        e = NULL;
        body = strdup(jsonx_compact(o));
    }
    json_object_put(e);
    json_object_put(o);
    if (!body)
        status = 500; /* out of memory: an empty 500 is all that is left to say */
    reply_set(rep, status, body);
}

static void reply_json(struct emu_reply *rep, int status, struct json_object *o)
{
    char *body = o ? strdup(jsonx_compact(o)) : NULL;

    if (!body) {
        reply_error(rep, 500, "InternalServerError", "Out of memory.");
        return;
    }
    reply_set(rep, status, body);
}

static const char *reply_code_for(int status)
{
    switch (status) {
    case 500:
        return "InternalServerError";
    case 502:
        return "BadGateway";
    case 503:
        return "ServiceUnavailable";
    case 504:
        return "GatewayTimeout";
    default:
        return "ServerError";
    }
}

/* Splits target into the route and, for /identities/{id}..., the decoded id. Returns the route
 * and sets *method_ok when method is the one the route takes. */
static enum emu_route routes_match(const char *method, const char *path, size_t path_len,
                                   char id[EMU_ID_MAX], int *method_ok)
{
    static const char ident[] = "/identities/";
    enum emu_route r = EMU_ROUTE_NONE;
    const char *want = "POST";

#define ROUTES_IS(lit) (path_len == sizeof(lit) - 1 && memcmp(path, lit, sizeof(lit) - 1) == 0)
    if (ROUTES_IS("/identities")) {
        r = EMU_ROUTE_CREATE;
    } else if (path_len > sizeof(ident) - 1 && memcmp(path, ident, sizeof(ident) - 1) == 0) {
        const char *seg = path + sizeof(ident) - 1;
        const char *end = path + path_len;
        const char *slash = memchr(seg, '/', (size_t)(end - seg));
        char action[32];

        if (!slash) {
            r = EMU_ROUTE_DELETE;
            want = "DELETE";
            slash = end;
        } else if (emu_pct_decode(slash + 1, (size_t)(end - slash - 1), action, sizeof(action)) !=
                   0) {
            r = EMU_ROUTE_NONE;
        } else if (strcmp(action, ":issueAccessToken") == 0) {
            r = EMU_ROUTE_ISSUE;
        } else if (strcmp(action, ":revokeAccessTokens") == 0) {
            r = EMU_ROUTE_REVOKE;
        }
        if (r != EMU_ROUTE_NONE &&
            (slash == seg || emu_pct_decode(seg, (size_t)(slash - seg), id, EMU_ID_MAX) != 0))
            r = EMU_ROUTE_NONE; /* an empty or undecodable id names no identity */
    } else if (ROUTES_IS("/teamsUser/:exchangeAccessToken")) {
        r = EMU_ROUTE_TEAMS;
    } else if (path_len >= sizeof("/access/teamsExtension/") - 1 &&
               memcmp(path, "/access/teamsExtension/", sizeof("/access/teamsExtension/") - 1) ==
                   0) {
        r = EMU_ROUTE_TEAMS_EXTENSION;
        want = method; /* GET, PUT, DELETE and POST exist there; all answer alike */
    } else if (ROUTES_IS("/emulator/jwks")) {
        r = EMU_ROUTE_JWKS;
        want = "GET";
    } else if (ROUTES_IS("/emulator/validate")) {
        r = EMU_ROUTE_VALIDATE;
    } else if (ROUTES_IS("/emulator/stats")) {
        r = EMU_ROUTE_STATS;
        want = "GET";
    } else if (ROUTES_IS("/emulator/stats/reset")) {
        r = EMU_ROUTE_STATS_RESET;
    } else if (ROUTES_IS("/emulator/faults")) {
        r = EMU_ROUTE_FAULTS;
        want = (strcmp(method, "GET") == 0 || strcmp(method, "PUT") == 0 ||
                strcmp(method, "DELETE") == 0)
                   ? method
                   : "GET";
    }
#undef ROUTES_IS
    *method_ok = strcmp(method, want) == 0;
    return r;
}

static int routes_op(enum emu_route r, enum emu_op *op)
{
    switch (r) {
    case EMU_ROUTE_CREATE:
        *op = EMU_OP_CREATE;
        return 1;
    case EMU_ROUTE_ISSUE:
        *op = EMU_OP_ISSUE;
        return 1;
    case EMU_ROUTE_REVOKE:
        *op = EMU_OP_REVOKE;
        return 1;
    case EMU_ROUTE_DELETE:
        *op = EMU_OP_DELETE;
        return 1;
    case EMU_ROUTE_TEAMS:
        *op = EMU_OP_TEAMS_EXCHANGE;
        return 1;
    default:
        return 0;
    }
}

/* {"token","expiresOn"} for tok expiring at exp_s into a new json object; counts the token. */
static int routes_token_obj(struct emu_app *app, const char *tok, int64_t exp_s,
                            struct json_object **out)
{
    char iso[CLOCK_ISO_LEN];
    struct json_object *o = json_object_new_object();

    clock_iso8601(exp_s * 1000, iso);
    if (!o || json_object_object_add(o, "token", json_object_new_string(tok)) ||
        json_object_object_add(o, "expiresOn", json_object_new_string(iso))) {
        json_object_put(o);
        return TV_ERR_NOMEM;
    }
    emu_state_count_token(app->state);
    *out = o;
    return 0;
}

/* Mints a token for skypeid and fills {"token","expiresOn"} into a new json object. exp_s is
 * the wanted expiry; --token-ttl-seconds overrides it. With a reuse key (ACS identities only,
 * and only under --reuse-signed-token-s) the new token is also remembered for later issues. */
static int routes_mint(struct emu_app *app, const char *skypeid, const char *acs_scope, int64_t scp,
                       int64_t now_ms, int64_t exp_s, uint64_t gen,
                       const struct emu_reuse_key *reuse_key, struct json_object **out)
{
    int rc;
    struct emu_claims c;
    char *tok = NULL;

    memset(&c, 0, sizeof(c));
    (void)buf_copy_str(c.skypeid, sizeof(c.skypeid), skypeid);
    (void)buf_copy_str(c.acs_scope, sizeof(c.acs_scope), acs_scope);
    memcpy(c.resource_id, app->resource_id, sizeof(c.resource_id));
    c.scp = scp;
    c.iat = now_ms / 1000;
    c.exp = app->token_ttl_s > 0 ? (now_ms + app->token_ttl_s * 1000) / 1000 : exp_s;
    c.gen = gen;
    rc = emu_uuid_random(c.jti);
    if (rc != 0)
        goto out;
    rc = emu_token_mint(app->keys, &c, &tok);
    if (rc != 0)
        goto out;
    if (app->reuse && reuse_key)
        emu_reuse_put(app->reuse, reuse_key, now_ms / 1000, tok, c.exp);
    rc = routes_token_obj(app, tok, c.exp, out);
out:
    if (tok) {
        OPENSSL_cleanse(tok, strlen(tok));
        free(tok);
    }
    return rc;
}

/* Under --reuse-signed-token-s: the token signed earlier in this bucket for the same request,
 * as {"token","expiresOn"}. 0 on a hit, otherwise non-zero (then mint). */
static int routes_reuse(struct emu_app *app, const struct emu_reuse_key *k, int64_t now_ms,
                        struct json_object **out)
{
    char *tok = NULL;
    int64_t exp_s = 0;
    int rc;

    if (!app->reuse)
        return TV_ERR_NOT_FOUND;
    rc = emu_reuse_get(app->reuse, k, now_ms / 1000, &tok, &exp_s);
    if (rc != 0)
        return rc;
    rc = routes_token_obj(app, tok, exp_s, out);
    if (rc == 0)
        emu_state_count_reused(app->state);
    OPENSSL_cleanse(tok, strlen(tok));
    free(tok);
    return rc;
}

/* Wipes the token inside a reply body built from a json object holding one. */
static void routes_reply_secret(struct emu_reply *rep, int status, struct json_object *o)
{
    reply_json(rep, status, o);
    json_object_put(o); /* json-c does not wipe; the token text is short-lived heap */
}

static void routes_create(struct emu_app *app, const struct emu_http_req *req,
                          struct emu_route_ctx *ctx, struct emu_reply *rep)
{
    char why[ROUTES_WHY_MAX];
    struct emu_token_req tr;
    char id[EMU_ID_MAX];
    char scope[EMU_SCOPE_STR_MAX];
    int64_t now_ms = clock_wall_ms();
    struct emu_reuse_key rk;
    struct json_object *o = NULL, *ident = NULL, *tok = NULL;
    uint64_t gen = 0;
    int existed = 0;
    int rc;

    if (emu_req_create(req->body, req->body_len, ctx->apiver, &tr, why, sizeof(why)) != 0) {
        reply_error(rep, 400, "ValidationError", why);
        return;
    }
    rc = emu_state_create_custom(app->state, app->resource_id, tr.custom_id, now_ms, id, &gen,
                                 &existed);
    if (rc != 0) {
        reply_error(rep, 500, "InternalServerError", "The identity could not be stored.");
        return;
    }
    o = json_object_new_object();
    ident = json_object_new_object();
    if (!o || !ident || json_object_object_add(ident, "id", json_object_new_string(id)))
        goto oom;
    if (tr.custom_id[0] &&
        json_object_object_add(ident, "customId", json_object_new_string(tr.custom_id)))
        goto oom;
    json_object_object_add(o, "identity", ident);
    ident = NULL;
    if (tr.want_token) {
        /* Under --reuse-signed-token-s a new identity's first token is remembered for the
         * issues that follow; an existing one (same customId) may have one to reuse. */
        emu_scopes_str(tr.scopes, scope);
        rk.id = id;
        rk.acs_scope = scope;
        rk.expires_in_minutes = tr.expires_in_minutes;
        rk.gen = gen;
        if ((!existed || routes_reuse(app, &rk, now_ms, &tok) != 0) &&
            routes_mint(app, id + 2, scope, ROUTES_SCP_ACS, now_ms,
                        now_ms / 1000 + tr.expires_in_minutes * 60, gen, &rk, &tok) != 0)
            goto oom;
        json_object_object_add(o, "accessToken", tok);
    }
    /* ACS: 201 for a new identity, 200 with the existing one for a known customId. */
    routes_reply_secret(rep, existed ? 200 : 201, o);
    return;
oom:
    json_object_put(ident);
    json_object_put(o);
    reply_error(rep, 500, "InternalServerError", "The token could not be minted.");
}

static void routes_issue(struct emu_app *app, const struct emu_http_req *req,
                         struct emu_route_ctx *ctx, struct emu_reply *rep)
{
    char why[ROUTES_WHY_MAX];
    struct emu_token_req tr;
    char scope[EMU_SCOPE_STR_MAX];
    int64_t now_ms = clock_wall_ms();
    uint64_t gen;
    struct emu_reuse_key rk;
    struct json_object *tok = NULL;

    if (emu_req_issue(req->body, req->body_len, ctx->apiver, &tr, why, sizeof(why)) != 0) {
        reply_error(rep, 400, "ValidationError", why);
        return;
    }
    if (strncmp(ctx->id, "8:acs:", 6) != 0 || emu_state_issue(app->state, ctx->id, &gen) != 0) {
        reply_error(rep, 404, "IdentityNotFound", "The identity does not exist.");
        return;
    }
    emu_scopes_str(tr.scopes, scope);
    rk.id = ctx->id;
    rk.acs_scope = scope;
    rk.expires_in_minutes = tr.expires_in_minutes;
    rk.gen = gen;
    if (routes_reuse(app, &rk, now_ms, &tok) != 0 &&
        routes_mint(app, ctx->id + 2, scope, ROUTES_SCP_ACS, now_ms,
                    now_ms / 1000 + tr.expires_in_minutes * 60, gen, &rk, &tok) != 0) {
        reply_error(rep, 500, "InternalServerError", "The token could not be minted.");
        return;
    }
    routes_reply_secret(rep, 200, tok);
}

static void routes_revoke_delete(struct emu_app *app, struct emu_route_ctx *ctx,
                                 struct emu_reply *rep, int deleting)
{
    int64_t now_ms = clock_wall_ms();
    int rc = deleting ? emu_state_delete(app->state, ctx->id, now_ms)
                      : emu_state_revoke(app->state, ctx->id, now_ms);

    if (rc == TV_ERR_NOT_FOUND)
        reply_error(rep, 404, "IdentityNotFound", "The identity does not exist.");
    else if (rc != 0)
        reply_error(rep, 500, "InternalServerError", "The change could not be stored.");
    else
        reply_set(rep, 204, NULL);
}

static void routes_teams(struct emu_app *app, const struct emu_http_req *req, struct emu_reply *rep)
{
    char why[ROUTES_WHY_MAX];
    struct emu_teams_req tr;
    int64_t now_ms = clock_wall_ms();
    char skypeid[EMU_SKYPEID_MAX];
    struct json_object *tok = NULL;
    int64_t exp;
    int rc = emu_req_teams(req->body, req->body_len, now_ms / 1000, &tr, why, sizeof(why));

    if (rc == TV_ERR_UNAUTHORIZED) {
        reply_error(rep, 401, "InvalidAccessToken", why);
        return;
    }
    if (rc != 0) {
        reply_error(rep, 400, "ValidationError", why);
        return;
    }
    /* The ACS token matches the Entra token's lifetime, capped at the ACS maximum. */
    exp = tr.exp_s;
    if (exp > now_ms / 1000 + ROUTES_TEAMS_MAX_S)
        exp = now_ms / 1000 + ROUTES_TEAMS_MAX_S;
    snprintf(skypeid, sizeof(skypeid), "orgid:%s", tr.oid);
    if (routes_mint(app, skypeid, "voip", ROUTES_SCP_TEAMS, now_ms, exp, 0, NULL, &tok) != 0) {
        reply_error(rep, 500, "InternalServerError", "The token could not be minted.");
        return;
    }
    routes_reply_secret(rep, 200, tok);
}

static void routes_validate(struct emu_app *app, const struct emu_http_req *req,
                            struct emu_reply *rep)
{
    struct json_object *in = NULL, *o = NULL;
    const char *token;
    struct emu_claims c;
    enum emu_token_reason r;
    char id[EMU_ID_MAX + 8];
    char iso[CLOCK_ISO_LEN];

    if (jsonx_parse(req->body, req->body_len, EMU_BODY_MAX, &in) != 0 ||
        !json_object_is_type(in, json_type_object) ||
        jsonx_get_string(in, "token", EMU_BODY_MAX, &token) != 0) {
        reply_error(rep, 400, "ValidationError", "The body must be {\"token\":\"<jwt>\"}.");
        goto out;
    }
    r = emu_token_verify(app->keys, token, strlen(token), &c);
    if (r == EMU_TOKEN_OK && strncmp(c.skypeid, "acs:", 4) == 0) {
        snprintf(id, sizeof(id), "8:%s", c.skypeid);
        r = emu_state_check(app->state, id, c.gen);
    }
    if (r == EMU_TOKEN_OK && c.exp <= clock_wall_ms() / 1000)
        r = EMU_TOKEN_EXPIRED;
    o = json_object_new_object();
    if (!o)
        goto oom;
    json_object_object_add(o, "valid", json_object_new_boolean(r == EMU_TOKEN_OK));
    json_object_object_add(o, "reason", json_object_new_string(emu_token_reason_name(r)));
    if (c.skypeid[0]) {
        snprintf(id, sizeof(id), "8:%s", c.skypeid);
        json_object_object_add(o, "identity", json_object_new_string(id));
        clock_iso8601(c.exp * 1000, iso);
        json_object_object_add(o, "expiresOn", json_object_new_string(iso));
    }
    reply_json(rep, 200, o);
    goto out;
oom:
    reply_error(rep, 500, "InternalServerError", "Out of memory.");
out:
    json_object_put(o);
    json_object_put(in);
}

static void routes_faults(struct emu_app *app, const struct emu_http_req *req,
                          struct emu_reply *rep)
{
    struct emu_fault_set fs;
    char why[ROUTES_WHY_MAX];
    char *body = NULL;

    if (strcmp(req->method, "DELETE") == 0) {
        emu_fault_set_clear(&fs);
        emu_faults_set(app->faults, &fs);
        reply_set(rep, 204, NULL);
        return;
    }
    if (strcmp(req->method, "PUT") == 0) {
        if (emu_fault_set_parse(req->body, req->body_len, &fs, why, sizeof(why)) != 0) {
            reply_error(rep, 400, "ValidationError", why);
            return;
        }
        emu_faults_set(app->faults, &fs);
    }
    emu_faults_get(app->faults, &fs);
    if (emu_fault_set_json(&fs, &body) != 0) {
        reply_error(rep, 500, "InternalServerError", "Out of memory.");
        return;
    }
    reply_set(rep, 200, body);
}

/* The /emulator control plane: no HMAC, no faults, no rate limits. */
static void routes_control(struct emu_app *app, const struct emu_http_req *req,
                           struct emu_route_ctx *ctx, struct emu_reply *rep)
{
    char *body = NULL;

    switch (ctx->route) {
    case EMU_ROUTE_JWKS:
        if (emu_keys_jwks(app->keys, &body) == 0)
            reply_set(rep, 200, body);
        else
            reply_error(rep, 500, "InternalServerError", "The JWKS could not be built.");
        break;
    case EMU_ROUTE_VALIDATE:
        routes_validate(app, req, rep);
        break;
    case EMU_ROUTE_STATS:
        if (emu_state_stats_json(app->state, &body) == 0)
            reply_set(rep, 200, body);
        else
            reply_error(rep, 500, "InternalServerError", "Out of memory.");
        break;
    case EMU_ROUTE_STATS_RESET:
        emu_state_stats_reset(app->state);
        reply_set(rep, 204, NULL);
        break;
    case EMU_ROUTE_FAULTS:
        routes_faults(app, req, rep);
        break;
    default:
        reply_error(rep, 404, "NotFound", "No such route.");
        break;
    }
}

int emu_routes_begin(struct emu_app *app, const struct emu_http_req *req, struct emu_route_ctx *ctx,
                     struct emu_reply *rep)
{
    const char *q = strchr(req->target, '?');
    size_t path_len = q ? (size_t)(q - req->target) : strlen(req->target);
    int method_ok = 0;
    char why[ROUTES_WHY_MAX];
    char ver[32];
    struct emu_auth_input ai;
    int rc;

    memset(ctx, 0, sizeof(*ctx));
    memset(rep, 0, sizeof(*rep));
    ctx->route = routes_match(req->method, req->target, path_len, ctx->id, &method_ok);
    if (ctx->route == EMU_ROUTE_NONE) {
        reply_error(rep, 404, "NotFound", "The requested resource does not exist.");
        return 1;
    }
    if (!method_ok) {
        reply_error(rep, 405, "MethodNotAllowed", "The method is not allowed on this resource.");
        return 1;
    }
    if (req->body_too_large) {
        reply_error(rep, 413, "RequestEntityTooLarge", "The request body is too large.");
        return 1;
    }
    if (ctx->route >= EMU_ROUTE_JWKS) {
        routes_control(app, req, ctx, rep);
        return 1;
    }

    memset(&ai, 0, sizeof(ai));
    ai.method = req->method;
    ai.path_and_query = req->target;
    ai.host = req->host;
    ai.x_ms_date = req->x_ms_date;
    ai.date = req->date;
    ai.content_sha256 = req->content_sha256;
    ai.authorization = req->authorization;
    ai.body = req->body ? req->body : "";
    ai.body_len = req->body_len;
    /* With --entra-jwks, an Entra bearer token stands in for the HMAC signature. */
    if (app->bearer && emu_bearer_is_bearer(req->authorization)) {
        if (emu_bearer_check(app->bearer, req->authorization, app->max_skew_s, why, sizeof(why)) !=
            0) {
            reply_error(rep, 401, "Denied", why);
            return 1;
        }
    } else if (app->entra_only) {
        reply_error(rep, 401, "Denied",
                    "this emulator accepts only Microsoft Entra bearer tokens (--entra-only)");
        return 1;
    } else if (emu_auth_check(app->access_key, app->access_key_len, &ai, clock_wall_ms() / 1000,
                              app->max_skew_s, why, sizeof(why)) != 0) {
        reply_error(rep, 401, "Denied", why);
        return 1;
    }
    ctx->has_op = routes_op(ctx->route, &ctx->op);
    if (ctx->has_op)
        emu_state_count_request(app->state, ctx->op);

    rc = emu_query_param(q ? q + 1 : NULL, "api-version", ver, sizeof(ver));
    if (rc == TV_ERR_NOT_FOUND) {
        reply_error(rep, 400, "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all "
                    "requests.");
        return 1;
    }
    if (rc != 0 || emu_apiver_parse(ver, &ctx->apiver) != 0) {
        snprintf(why, sizeof(why), "The api-version is not supported; supported versions: %s.",
                 emu_apiver_list());
        reply_error(rep, 400, "UnsupportedApiVersion", why);
        return 1;
    }
    if (ctx->route == EMU_ROUTE_TEAMS && ctx->apiver < EMU_API_2022_06_01) {
        reply_error(rep, 404, "NotFound",
                    "The Teams token exchange needs api-version 2022-06-01 or later.");
        return 1;
    }
    if (ctx->route == EMU_ROUTE_TEAMS_EXTENSION) {
        if (ctx->apiver < EMU_API_2025_06_30)
            reply_error(rep, 404, "NotFound", "The requested resource does not exist.");
        else
            reply_error(rep, 501, "NotImplemented",
                        "acs-emulator does not implement the Teams Phone extension routes.");
        return 1;
    }
    if (emu_faults_decide(app->faults, ctx->op, &ctx->fault))
        emu_state_count_fault(app->state);
    if (ctx->fault.latency_ms > 0)
        return 0;
    emu_routes_finish(app, req, ctx, rep);
    return 1;
}

void emu_routes_finish(struct emu_app *app, const struct emu_http_req *req,
                       struct emu_route_ctx *ctx, struct emu_reply *rep)
{
    int64_t retry_ms = 0;
    char msg[128];

    if (ctx->fault.kind == EMU_FAULT_THROTTLE) {
        reply_error(rep, 429, "TooManyRequests", "Injected fault: too many requests.");
        rep->retry_after_ms = ctx->fault.retry_after_ms > 0 ? ctx->fault.retry_after_ms : 1;
        return;
    }
    if (ctx->fault.kind == EMU_FAULT_ERROR) {
        snprintf(msg, sizeof(msg), "Injected fault: status %d.", ctx->fault.status);
        reply_error(rep, ctx->fault.status, reply_code_for(ctx->fault.status),
                    ctx->fault.message[0] != '\0' ? ctx->fault.message : msg);
        return;
    }
    if (app->ratelimit &&
        emu_ratelimit_take(app->ratelimit, ctx->op, clock_mono_ms(), &retry_ms) != 0) {
        reply_error(rep, 429, "TooManyRequests",
                    "The rate limit of this operation is exhausted; retry after the given time.");
        rep->retry_after_ms = retry_ms;
        return;
    }
    switch (ctx->route) {
    case EMU_ROUTE_CREATE:
        routes_create(app, req, ctx, rep);
        break;
    case EMU_ROUTE_ISSUE:
        routes_issue(app, req, ctx, rep);
        break;
    case EMU_ROUTE_REVOKE:
        routes_revoke_delete(app, ctx, rep, 0);
        break;
    case EMU_ROUTE_DELETE:
        routes_revoke_delete(app, ctx, rep, 1);
        break;
    case EMU_ROUTE_TEAMS:
        routes_teams(app, req, rep);
        break;
    default:
        reply_error(rep, 404, "NotFound", "The requested resource does not exist.");
        break;
    }
    /* A drop loses the answer of an operation that did take effect, as a real network would. */
    if (ctx->fault.kind == EMU_FAULT_DROP)
        rep->drop = 1;
    else if (ctx->has_op && rep->status >= 200 && rep->status < 300)
        emu_state_count_success(app->state, ctx->op);
}
