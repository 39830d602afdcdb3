/* Operations endpoints: liveness and readiness (the store takes a write and the service is not
 * shutting down) on both listeners, never behind a credential, since orchestrators probe them
 * without one; Prometheus metrics on the internal listener, behind an API key when
 * metrics_auth = apikey. */
#include <json-c/json.h>

#include "acs/client.h"
#include "api_int.h"
#include "core/buf.h"
#include "core/err.h"
#include "service/maint.h"

#define METRICS_MAX (1024 * 1024)

void api_ops_healthz(struct http_req *req, void *ctx)
{
    struct json_object *o = json_object_new_object();
    (void)ctx;
    json_object_object_add(o, "status", json_object_new_string("ok"));
    http_reply_json(req, 200, o);
}

void api_ops_readyz(struct http_req *req, void *vctx)
{
    struct api_ctx *ctx = vctx;
    struct json_object *o;
    int rc = service_ready(ctx->svc);

    if (rc != 0) {
        http_reply_error(req, TV_ERR_UNAVAILABLE,
                         rc == TV_ERR_SHUTDOWN ? "shutting down" : "the store is not writable");
        return;
    }
    o = json_object_new_object();
    json_object_object_add(o, "status", json_object_new_string("ready"));
    http_reply_json(req, 200, o);
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
    }
    if (rc != 0)
        http_reply_error(req, rc, NULL);
    else
        http_reply_data(req, 200, "text/plain; version=0.0.4; charset=utf-8", buf_cstr(&b), b.len);
    buf_release(&b);
}
