/* What every API handler shares: caller authentication, the pending-request record that the
 * service's callback replies through, the reply shapes, and token-request parsing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include "api_int.h"
#include "token_json_int.h"
#include "auth/apikey.h"
#include "auth/jwks.h"
#include "auth/session.h"
#include "auth/vcache.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/ident.h"
#include "core/log.h"
#include "http/server.h"

/* Room for a token reply built on the stack (an ACS token is about 1 KB). */
#define TOKEN_REPLY_MAX 4096

_Static_assert(API_OID_MAX == VCACHE_OID_MAX, "the cache keeps the oid the caller record keeps");

/* The one bounded copy (core/buf.h), by the short name this file's call sites use. */
static void copy_str(char *dst, size_t cap, const char *src)
{
    (void)buf_copy_str(dst, cap, src);
}

void api_reply_error(struct http_req *req, int rc, const char *message)
{
    if (rc == TV_ERR_UNAUTHORIZED)
        http_reply_header(req, "WWW-Authenticate", "Bearer");
    http_reply_error(req, rc, message);
}

/* The token after "Bearer " in the Authorization header, or NULL. */
static const char *bearer(struct http_req *req, size_t *len)
{
    const char *h = http_req_header(req, "Authorization");

    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    *len = strlen(h);
    while (*len > 0 && h[*len - 1] == ' ')
        (*len)--;
    return *len > 0 ? h : NULL;
}

static void reply_unauthorized(struct http_req *req, const char *message, int invalid_token)
{
    http_reply_header(req, "WWW-Authenticate",
                      invalid_token ? "Bearer error=\"invalid_token\"" : "Bearer");
    http_reply_error(req, TV_ERR_UNAUTHORIZED, message);
}

/* The caller from a cached verification of the token with this key, when there is one;
 * *session_epoch receives a session token's epoch (*is_session 1), for the account check. */
static int auth_cached(struct api_ctx *ctx, const uint8_t *key, int64_t now_s,
                       struct api_caller *out, int *is_session, int64_t *session_epoch)
{
    struct vcache_claims vc;
    int rc;

    if (ctx->vcache == NULL)
        return TV_ERR_NOT_FOUND;
    rc = vcache_lookup(ctx->vcache, key, now_s, ctx->jwks != NULL ? jwks_generation(ctx->jwks) : 0,
                       ctx->session != NULL, &vc);
    if (rc == 0) {
        memset(out, 0, sizeof *out);
        copy_str(out->kind, sizeof out->kind, "user");
        copy_str(out->name, sizeof out->name, vc.user);
        copy_str(out->oid, sizeof out->oid, vc.oid);
        *is_session = vc.session;
        *session_epoch = vc.session_epoch;
    }
    return rc;
}

/* A session token stays good only while its account exists with the epoch it was issued
 * under (account passwd and remove end sessions). user is the caller's app user id,
 * "local:NAME". On failure it has replied. */
static int auth_session_account(struct http_req *req, struct api_ctx *ctx, const char *user,
                                int64_t epoch)
{
    int rc = TV_ERR_UNAUTHORIZED;

    if (strncmp(user, IDENT_LOCAL_PREFIX, IDENT_LOCAL_PREFIX_LEN) == 0)
        rc = api_session_account_check(ctx, user + IDENT_LOCAL_PREFIX_LEN, epoch);

    if (rc == TV_ERR_UNAUTHORIZED) {
        log_msg(LOGL_INFO, http_req_id(req),
                "bearer token rejected: session of an account "
                "that was removed or changed its password");
        reply_unauthorized(req, "the bearer token is not acceptable", 1);
    } else if (rc != 0) {
        http_reply_error(req, TV_ERR_UNAVAILABLE, "cannot verify tokens right now");
    }
    return rc;
}

/* The app user id of a verified token's user claim, by namespace: a session token's subject is a
 * local account NAME and becomes "local:NAME"; an OIDC claim is the id as it is, except that
 * the local namespace is refused to it, so no identity provider can name a local account's
 * user. 0, or TV_ERR_UNAUTHORIZED with *reason set. */
static int caller_user_id(const char *user, int session, char out[API_USER_MAX + 1],
                          const char **reason)
{
    if (session) {
        if (ident_local_user(user, out, API_USER_MAX + 1) != 0) {
            *reason = "session subject is not an account name";
            return TV_ERR_UNAUTHORIZED;
        }
        return 0;
    }
    if (strncmp(user, IDENT_LOCAL_PREFIX, IDENT_LOCAL_PREFIX_LEN) == 0) {
        *reason = "user claim starts with the reserved prefix \"" IDENT_LOCAL_PREFIX "\"";
        return TV_ERR_UNAUTHORIZED;
    }
    copy_str(out, API_USER_MAX + 1, user);
    return 0;
}

/* Verifies a token that is not in the verified-token cache: the session key decides only for
 * tokens that name its kid; everything else is an OIDC token, so a session token can never be
 * checked against the OIDC keys or vice versa. Fills claims (release them on 0), the verdict's
 * source and generation, and a session token's account epoch. 0 or an error with *reason. */
static int verify_fresh(struct api_ctx *ctx, const char *tok, size_t len, int64_t now_s,
                        struct jwt_claims *claims, struct vcache_verdict *verdict, int64_t *epoch,
                        const char **reason)
{
    struct jwt_header hdr;
    int rc;

    if (ctx->session != NULL && jwt_header_peek(tok, len, &hdr) == 0 &&
        strcmp(hdr.kid, session_key_kid(ctx->session)) == 0) {
        verdict->source = VCACHE_SRC_SESSION;
        rc = session_verify(ctx->session, tok, len, now_s, claims, reason);
        if (rc == 0 && session_epoch_get(claims, epoch) != 0) {
            jwt_claims_release(claims);
            rc = TV_ERR_UNAUTHORIZED;
            *reason = "session token without an account epoch";
        }
        return rc;
    }
    if (ctx->jwks != NULL) {
        struct jwt_expect e = {.issuer = ctx->issuer,
                               .audience = ctx->audience,
                               .user_claim = ctx->user_claim,
                               .now_s = now_s};
        /* Read before the key lookup: see jwks_generation. */
        verdict->source = VCACHE_SRC_OIDC;
        verdict->generation = jwks_generation(ctx->jwks);
        return jwks_verify_ex(ctx->jwks, tok, len, &e, claims, reason);
    }
    *reason = "no token issuer is configured";
    return TV_ERR_UNAUTHORIZED;
}

/* JWT_MAX_LEN as text, for the log line of a token refused for its size. */
#define JWT_MAX_LEN_TEXT "8192"
_Static_assert(JWT_MAX_LEN == 8192, "JWT_MAX_LEN_TEXT says JWT_MAX_LEN");

/* Replies to a token that did not verify: 401, or 503 while the keys cannot be had. The code
 * api_auth_user returns. */
static int reply_rejected(struct http_req *req, int rc, const char *reason)
{
    log_msg(LOGL_INFO, http_req_id(req), "bearer token rejected: %s (%s)",
            reason != NULL ? reason : "-", err_name(rc));
    if (rc == TV_ERR_UNAUTHORIZED || rc == TV_ERR_INVALID) {
        reply_unauthorized(req, "the bearer token is not acceptable", 1);
    } else {
        /* No key set yet: the fetcher retries in the background on this period. */
        if (rc == TV_ERR_UNAVAILABLE)
            http_reply_header(req, "Retry-After", JWKS_RETRY_AFTER_S);
        http_reply_error(req, rc == TV_ERR_NOMEM ? rc : TV_ERR_UNAVAILABLE,
                         "cannot verify tokens right now");
    }
    return rc == TV_ERR_INVALID ? TV_ERR_UNAUTHORIZED : rc;
}

/* Remembers a verified token's outcome in the verified-token cache (best effort). */
static void remember_verdict(struct api_ctx *ctx, const uint8_t *key, int64_t now_s,
                             struct vcache_verdict *verdict, const struct jwt_claims *claims,
                             const struct api_caller *who, int64_t epoch)
{
    struct vcache_claims vc = {.session_epoch = epoch};

    /* Both verifiers use the default leeway (session_verify always, and the OIDC expectation
     * in verify_fresh leaves leeway_s at 0); the cache applies the same rule on hits. */
    verdict->exp = claims->exp;
    verdict->nbf = claims->nbf;
    verdict->leeway_s = JWT_DEFAULT_LEEWAY_S;
    copy_str(vc.user, sizeof vc.user, who->name);
    copy_str(vc.oid, sizeof vc.oid, who->oid);
    (void)vcache_insert(ctx->vcache, key, now_s, verdict, &vc);
}

int api_auth_user(struct http_req *req, struct api_ctx *ctx, struct api_caller *out)
{
    struct jwt_claims claims;
    struct vcache_verdict verdict;
    uint8_t key[VCACHE_KEY_LEN] = {0};
    const char *reason = NULL, *oid = NULL;
    size_t len = 0;
    const char *tok = bearer(req, &len);
    int64_t now_s = clock_wall_ms() / 1000, epoch = 0;
    int is_session = 0;
    int rc;

    memset(&claims, 0, sizeof claims);
    memset(&verdict, 0, sizeof verdict);
    /* Before any verification: a flood from one address costs a hash, not a signature. */
    if (api_limit_ip(req, ctx) != 0)
        return TV_ERR_RATE_LIMITED;
    if (tok == NULL) {
        reply_unauthorized(req, "a bearer token is required", 0);
        return TV_ERR_UNAUTHORIZED;
    }
    /* Refused unparsed, but with its reason in the log like every other refusal: an Entra ID
     * user in many groups meets this one with a genuine token. */
    if (len > JWT_MAX_LEN)
        return reply_rejected(req, TV_ERR_UNAUTHORIZED, "larger than " JWT_MAX_LEN_TEXT " bytes");
    /* A token that verified a moment ago skips the signature check; only successes are ever
     * cached, so a bad token always takes the full path below. */
    if (ctx->vcache != NULL) {
        vcache_key(tok, len, key);
        if (auth_cached(ctx, key, now_s, out, &is_session, &epoch) == 0) {
            rc = is_session ? auth_session_account(req, ctx, out->name, epoch) : 0;
            goto done;
        }
    }
    rc = verify_fresh(ctx, tok, len, now_s, &claims, &verdict, &epoch, &reason);
    if (rc == 0) {
        memset(out, 0, sizeof *out);
        rc = caller_user_id(claims.user, verdict.source == VCACHE_SRC_SESSION, out->name, &reason);
        if (rc != 0)
            jwt_claims_release(&claims);
    }
    if (rc != 0) {
        rc = reply_rejected(req, rc, reason);
        goto done;
    }
    copy_str(out->kind, sizeof out->kind, "user");
    /* An oid that breaks the id rule is unusable, as one of the wrong type or length: the caller
     * then has none (the Teams exchange answers 403), and it never travels on. */
    if (jwt_claims_get_string(&claims, "oid", API_OID_MAX, &oid) == 0 &&
        ident_check_str(oid, API_OID_MAX) == IDENT_OK)
        copy_str(out->oid, sizeof out->oid, oid);
    if (verdict.source == VCACHE_SRC_SESSION &&
        (rc = auth_session_account(req, ctx, out->name, epoch)) != 0) {
        jwt_claims_release(&claims);
        goto done;
    }
    if (ctx->vcache != NULL)
        remember_verdict(ctx, key, now_s, &verdict, &claims, out, epoch);
    jwt_claims_release(&claims);
    rc = 0;
done:
    if (rc == 0)
        rc = api_limit_caller(req, ctx, out);
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}

int api_auth_apikey(struct http_req *req, struct api_ctx *ctx, struct api_caller *out)
{
    char name[APIKEY_NAME_MAX];
    char key[APIKEY_MAX + 1];
    size_t len = 0;
    const char *tok = bearer(req, &len);
    int rc;

    if (tok == NULL) {
        reply_unauthorized(req, "an API key is required (Authorization: Bearer <key>)", 0);
        return TV_ERR_UNAUTHORIZED;
    }
    if (len > APIKEY_LEN) {
        reply_unauthorized(req, "the API key is not valid", 1);
        return TV_ERR_UNAUTHORIZED;
    }
    memcpy(key, tok, len);
    key[len] = '\0';
    rc = apikey_verify(ctx->store, key, name);
    OPENSSL_cleanse(key, sizeof key);
    if (rc == TV_ERR_UNAUTHORIZED) {
        reply_unauthorized(req, "the API key is not valid", 1);
        return rc;
    }
    if (rc != 0) {
        http_reply_error(req, TV_ERR_UNAVAILABLE, "cannot verify API keys right now");
        return rc;
    }
    memset(out, 0, sizeof *out);
    copy_str(out->kind, sizeof out->kind, "apikey");
    copy_str(out->name, sizeof out->name, name);
    return api_limit_caller(req, ctx, out);
}

void api_call_init(struct service_call *c, struct http_req *req, const struct api_caller *who)
{
    service_call_init(c, http_req_id(req), who != NULL ? who->kind : NULL,
                      who != NULL ? who->name : NULL);
}

/* ---- pending requests and reply shapes ---- */

struct pending {
    struct http_req *req;
    enum api_shape shape;
};

void *api_pending_new(struct http_req *req, enum api_shape shape)
{
    struct pending *p = calloc(1, sizeof *p);
    if (p == NULL) {
        http_reply_error(req, TV_ERR_NOMEM, NULL);
        return NULL;
    }
    p->req = req;
    p->shape = shape;
    return p;
}

static void put_time(struct json_object *o, const char *key, int64_t ms)
{
    char iso[CLOCK_ISO_LEN];
    if (ms <= 0) {
        json_object_object_add(o, key, NULL);
        return;
    }
    clock_iso8601(ms, iso);
    json_object_object_add(o, key, json_object_new_string(iso));
}

struct json_object *api_user_json(const struct store_user *u)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "userId", json_object_new_string(u->app_user_id));
    json_object_object_add(o, "acsUserIdentity", json_object_new_string(u->acs_id));
    json_object_object_add(o, "resource", json_object_new_string(u->resource));
    put_time(o, "createdAt", u->created_ms);
    put_time(o, "lastIssuedAt", u->last_issued_ms);
    put_time(o, "revokedAt", u->revoked_ms);
    return o;
}

/* Replies 200 with the token: the fast serialiser when it can, json-c otherwise. */
static void reply_token(struct http_req *req, const struct service_result *r, int with_user)
{
    char body[TOKEN_REPLY_MAX];
    const char *acs_id = with_user ? r->acs_id : NULL;
    size_t len = api_token_json_fast(r->token, r->expires_on, acs_id, body, sizeof body);

    if (len > 0)
        http_reply_data(req, 200, "application/json", body, len);
    else
        http_reply_json(req, 200, api_token_json(r->token, r->expires_on, acs_id));
    /* The stack copy held the token (a secret); a refused build may have written anywhere. */
    OPENSSL_cleanse(body, len > 0 ? len : sizeof body);
}

void api_pending_done(void *arg, const struct service_result *r)
{
    struct pending *p = arg;
    struct http_req *req = p->req;
    struct json_object *o;
    int status;

    if (r->rc != 0) {
        char secs[24];
        if (r->retry_after_s > 0) {
            snprintf(secs, sizeof secs, "%ld", r->retry_after_s);
            http_reply_header(req, "Retry-After", secs);
        }
        api_reply_error(req, r->rc, r->message);
        goto done;
    }
    switch (p->shape) {
    case SHAPE_TOKEN:
    case SHAPE_TEAMS:
        if (r->token == NULL) {
            http_reply_error(req, TV_ERR_INTERNAL, "no token came back");
            break;
        }
        http_reply_header(req, "Cache-Control", "no-store");
        http_reply_header(req, "Pragma", "no-cache");
        reply_token(req, r, p->shape == SHAPE_TOKEN);
        break;
    case SHAPE_PUBLIC_USER:
        o = json_object_new_object();
        json_object_object_add(o, "acsUserIdentity", json_object_new_string(r->acs_id));
        put_time(o, "createdAt", r->user != NULL ? r->user->created_ms : 0);
        http_reply_json(req, r->created ? 201 : 200, o);
        break;
    case SHAPE_INTERNAL_USER:
        if (r->user == NULL) {
            http_reply_error(req, TV_ERR_INTERNAL, NULL);
            break;
        }
        http_reply_json(req, r->created ? 201 : 200, api_user_json(r->user));
        break;
    case SHAPE_IDENTITY:
        o = json_object_new_object();
        json_object_object_add(o, "user", api_comm_user_json(r->acs_id));
        put_time(o, "createdAt", r->user != NULL ? r->user->created_ms : 0);
        if (r->token != NULL) {
            json_object_object_add(o, "token", json_object_new_string(r->token));
            json_object_object_add(o, "expiresOn",
                                   json_object_new_string(r->expires_on ? r->expires_on : ""));
        }
        http_reply_header(req, "Cache-Control", "no-store");
        http_reply_json(req, 201, o);
        break;
    case SHAPE_EMPTY:
        http_reply_empty(req, 204);
        break;
    case SHAPE_DELETE:
        status = r->pending ? 202 : 204;
        http_reply_empty(req, status);
        break;
    }
done:
    free(p);
}

int api_token_req(struct http_req *req, struct api_ctx *ctx, struct policy_token_req *out)
{
    char msg[POLICY_MSG_MAX];
    size_t len = 0;
    const char *body = http_req_body(req, &len);
    int rc;

    msg[0] = '\0';
    rc = policy_token_req_parse(service_policy(ctx->svc), body, len, out, msg, sizeof msg);
    if (rc != 0)
        http_reply_error(req, rc, msg[0] != '\0' ? msg : NULL);
    return rc;
}
