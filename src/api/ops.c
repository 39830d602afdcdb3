/* Operations endpoints: liveness, readiness (the store takes a write, the service is not
 * shutting down, in keyless mode an Entra token for ACS is held, the OIDC signing keys have
 * loaded once and ACS has not refused the credential) and each listener's OpenAPI document, on
 * both listeners, never behind a credential, since orchestrators probe them and clients read the
 * contract without one; Prometheus metrics on the internal listener, behind an API key when
 * metrics_auth = apikey. */
#include <json-c/json.h>

#include <stdio.h>
#include <string.h>

#include "acs/client.h"
#include "acs/entra.h"
#include "api/openapi.h"
#include "api_int.h"
#include "auth/jwks.h"
#include "core/buf.h"
#include "core/err.h"
#include "service/credcheck.h"
#include "service/maint.h"
#include "service/upstream_budget.h"

#define METRICS_MAX (1024 * 1024)

void api_ops_healthz(struct http_req *req, void *ctx)
{
    struct json_object *o = json_object_new_object();
    (void)ctx;
    json_object_object_add(o, "status", json_object_new_string("ok"));
    http_reply_json(req, 200, o);
}

/* The listener's part of docs/openapi.yaml, embedded at build time. no-cache, not a lifetime:
 * the document changes with the binary, so a client revalidates instead of keeping an old
 * contract after an upgrade; nosniff, so a browser never reads it as anything but JSON. */
static void openapi_reply(struct http_req *req, const unsigned char *doc, size_t len)
{
    http_reply_header(req, "Cache-Control", "no-cache");
    http_reply_header(req, "X-Content-Type-Options", "nosniff");
    http_reply_data(req, 200, "application/json", doc, len);
}

void api_ops_openapi_public(struct http_req *req, void *ctx)
{
    (void)ctx;
    openapi_reply(req, api_openapi_public_json, api_openapi_public_json_len);
}

void api_ops_openapi_internal(struct http_req *req, void *ctx)
{
    (void)ctx;
    openapi_reply(req, api_openapi_internal_json, api_openapi_internal_json_len);
}

/* Keyless mode: not ready while no Entra token is handed out (the first fetch is under way, or
 * the token expired and the identity endpoint keeps failing): every ACS call would get 503.
 * The message names the credential kind and the fetch's reason, which never holds a secret. */
static int entra_not_ready(struct entra_cache *c, char *msg, size_t cap)
{
    struct entra_cache_stats st;

    memset(&st, 0, sizeof st);
    entra_cache_stats(c, &st);
    if (!st.have_token && st.fetches == 0)
        snprintf(msg, cap,
                 "no Microsoft Entra ID token for ACS yet (credential %s): the first fetch is "
                 "under way",
                 entra_kind_name(st.kind));
    else if (!st.have_token)
        snprintf(msg, cap,
                 "no Microsoft Entra ID token for ACS (credential %s): %s; next attempt in %ld s",
                 entra_kind_name(st.kind), st.last_err[0] ? st.last_err : "the token expired",
                 st.retry_after_s);
    return !st.have_token;
}

/* The ACS circuit breaker's state, for /readyz: an open breaker does not make the service
 * unready, since cached tokens are still served; the orchestrator is told, not alarmed. */
static void readyz_breaker_add(struct acs_client *acs, struct json_object *o)
{
    struct acs_breaker_stats st;
    struct json_object *b;

    if (acs == NULL || !acs_client_breaker_get(acs, &st))
        return;
    b = json_object_new_object();
    json_object_object_add(b, "state", json_object_new_string(acs_breaker_state_name(st.state)));
    json_object_object_add(b, "failures", json_object_new_int64(st.failures));
    json_object_object_add(b, "retryAfter", json_object_new_int64(st.retry_after_s));
    json_object_object_add(o, "breaker", b);
}

/* The checks past the store and the Entra token, as /readyz reports them in "checks": the OIDC
 * signing keys (when an issuer is configured) and the start-up ACS credential check. Fills the
 * object and returns 0, or returns non-zero with the sentence for the 503 in msg: a service
 * that cannot verify any bearer token, or whose ACS credential ACS refused, cannot work. */
static int readyz_checks(struct api_ctx *ctx, struct json_object *checks, char *msg, size_t cap)
{
    char why[JWKS_ERR_MAX], cred[CREDCHECK_TEXT_MAX];
    int bad = 0;

    if (ctx->jwks != NULL) {
        enum jwks_state js = jwks_state_get(ctx->jwks, why, sizeof why);
        if (js == JWKS_STATE_LOADING) {
            snprintf(msg, cap,
                     "not ready: oidcKeys loading (the first fetch of the OIDC signing "
                     "keys is under way)");
            bad = 1;
        } else if (js == JWKS_STATE_FAILED) {
            snprintf(msg, cap, "not ready: oidcKeys failed: %s (retried every %s s)", why,
                     JWKS_RETRY_AFTER_S);
            bad = 1;
        }
        json_object_object_add(checks, "oidcKeys", json_object_new_string("ok"));
    }
    if (!bad && ctx->credcheck != NULL) {
        enum credcheck_state cs = credcheck_get(ctx->credcheck, cred, sizeof cred);
        if (cs == CREDCHECK_REJECTED) {
            snprintf(msg, cap, "not ready: acsCredential %s: ACS refuses the configured credential",
                     cred);
            bad = 1;
        }
        /* Unchecked (ACS unreachable, throttled) is shown, not unready: the breaker says that. */
        json_object_object_add(checks, "acsCredential", json_object_new_string(cred));
    }
    return bad;
}

void api_ops_readyz(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    struct json_object *o, *checks;
    char msg[ENTRA_ERR_MAX + 160];
    int rc = service_ready(ctx->svc);

    if (rc != 0) {
        http_reply_error(req, TV_ERR_UNAVAILABLE,
                         rc == TV_ERR_SHUTDOWN ? "shutting down" : "the store is not writable");
        return;
    }
    if (ctx->entra != NULL && entra_not_ready(ctx->entra, msg, sizeof msg)) {
        http_reply_error(req, TV_ERR_UNAVAILABLE, msg);
        return;
    }
    checks = json_object_new_object();
    if (readyz_checks(ctx, checks, msg, sizeof msg) != 0) {
        json_object_put(checks);
        http_reply_error(req, TV_ERR_UNAVAILABLE, msg);
        return;
    }
    o = json_object_new_object();
    json_object_object_add(o, "status", json_object_new_string("ready"));
    /* Which credential reaches ACS, so an operator can tell the modes apart at a glance. */
    json_object_object_add(
        o, "acsCredential",
        json_object_new_string(ctx->entra != NULL ? entra_kind_name(entra_cache_kind(ctx->entra))
                                                  : "access_key"));
    json_object_object_add(o, "checks", checks);
    readyz_breaker_add(ctx->acs, o);
    http_reply_json(req, 200, o);
}

/* The Entra cache's counters (keyless mode). */
static int entra_metrics_write(struct entra_cache *c, struct buf *b)
{
    struct entra_cache_stats st;

    memset(&st, 0, sizeof st);
    entra_cache_stats(c, &st);
    return buf_printf(
        b,
        "# HELP tokenvend_entra_fetches_total Microsoft Entra ID token fetches "
        "attempted.\n"
        "# TYPE tokenvend_entra_fetches_total counter\n"
        "tokenvend_entra_fetches_total %ld\n"
        "# HELP tokenvend_entra_fetch_failures_total Entra token fetches that "
        "failed.\n"
        "# TYPE tokenvend_entra_fetch_failures_total counter\n"
        "tokenvend_entra_fetch_failures_total %ld\n"
        "# HELP tokenvend_entra_token_expires_in_seconds Seconds until the held Entra "
        "token expires (0 without one).\n"
        "# TYPE tokenvend_entra_token_expires_in_seconds gauge\n"
        "tokenvend_entra_token_expires_in_seconds %ld\n"
        "# HELP tokenvend_entra_token_usable Whether an Entra token is handed out "
        "(1) or not (0).\n"
        "# TYPE tokenvend_entra_token_usable gauge\n"
        "tokenvend_entra_token_usable %d\n",
        st.fetches, st.failures, st.expires_in_s, st.have_token ? 1 : 0);
}

/* The ACS circuit breaker (none when it is off). */
static int breaker_metrics_write(struct acs_client *acs, struct buf *b)
{
    struct acs_breaker_stats st;

    if (!acs_client_breaker_get(acs, &st))
        return 0;
    return buf_printf(b,
                      "# HELP tokenvend_acs_breaker_state ACS circuit breaker: 0 closed, 1 open, "
                      "2 half-open.\n"
                      "# TYPE tokenvend_acs_breaker_state gauge\n"
                      "tokenvend_acs_breaker_state %d\n"
                      "# HELP tokenvend_acs_breaker_opens_total Times the ACS circuit breaker "
                      "opened.\n"
                      "# TYPE tokenvend_acs_breaker_opens_total counter\n"
                      "tokenvend_acs_breaker_opens_total %llu\n"
                      "# HELP tokenvend_acs_breaker_rejected_total ACS attempts refused at once "
                      "while the breaker was open.\n"
                      "# TYPE tokenvend_acs_breaker_rejected_total counter\n"
                      "tokenvend_acs_breaker_rejected_total %llu\n",
                      (int)st.state, (unsigned long long)st.opens, (unsigned long long)st.rejected);
}

void api_ops_metrics(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    struct acs_client_stats st = {0};
    struct api_caller who;
    struct buf b;
    int rc = 0;

    /* The same check as every internal route (401 in the error shape, with the challenge). */
    if (ctx->metrics_apikey && api_auth_apikey(req, ctx, &who) != 0)
        return;
    buf_init(&b, METRICS_MAX);
    if (ctx->http != NULL)
        rc = http_server_metrics_write(ctx->http, &b);
    if (rc == 0)
        rc = service_metrics_write(ctx->svc, &b);
    if (rc == 0 && ctx->maint != NULL)
        rc = maint_metrics_write(ctx->maint, &b);
    if (rc == 0 && ctx->budget != NULL)
        rc = upstream_budget_metrics_write(ctx->budget, &b);
    if (rc == 0 && ctx->acs != NULL) {
        acs_client_stats_get(ctx->acs, &st);
        rc = buf_printf(&b,
                        "# HELP tokenvend_upstream_calls_total ACS calls finished.\n"
                        "# TYPE tokenvend_upstream_calls_total counter\n"
                        "tokenvend_upstream_calls_total %llu\n"
                        "# HELP tokenvend_upstream_errors_total ACS calls that failed.\n"
                        "# TYPE tokenvend_upstream_errors_total counter\n"
                        "tokenvend_upstream_errors_total %llu\n"
                        "# HELP tokenvend_upstream_attempts_total HTTP attempts to ACS.\n"
                        "# TYPE tokenvend_upstream_attempts_total counter\n"
                        "tokenvend_upstream_attempts_total %llu\n"
                        "# HELP tokenvend_upstream_retries_total ACS attempts that were retries.\n"
                        "# TYPE tokenvend_upstream_retries_total counter\n"
                        "tokenvend_upstream_retries_total %llu\n",
                        (unsigned long long)st.calls, (unsigned long long)st.failures,
                        (unsigned long long)st.attempts, (unsigned long long)st.retries);
        if (rc == 0)
            rc = buf_printf(&b,
                            "# HELP tokenvend_acs_inflight ACS calls under way (each holds one "
                            "curl handle until it ends).\n"
                            "# TYPE tokenvend_acs_inflight gauge\n"
                            "tokenvend_acs_inflight %llu\n"
                            "# HELP tokenvend_acs_connections_open Sockets to ACS open now, in "
                            "use or kept alive.\n"
                            "# TYPE tokenvend_acs_connections_open gauge\n"
                            "tokenvend_acs_connections_open %llu\n",
                            (unsigned long long)st.inflight, (unsigned long long)st.sockets_open);
    }
    if (rc == 0 && ctx->acs != NULL)
        rc = breaker_metrics_write(ctx->acs, &b);
    if (rc == 0 && ctx->entra != NULL)
        rc = entra_metrics_write(ctx->entra, &b);
    if (rc == 0)
        rc = api_limits_metrics_write(ctx->limits, &b);
    if (rc != 0)
        http_reply_error(req, rc, NULL);
    else
        http_reply_data(req, 200, "text/plain; version=0.0.4; charset=utf-8", buf_cstr(&b), b.len);
    buf_release(&b);
}
