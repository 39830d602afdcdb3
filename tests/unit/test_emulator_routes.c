/* Unit tests of the emulator's request handling without the HTTP server: routing (404, 405),
 * HMAC (401 Denied), api-version (400), every ACS operation's status and body shape, the
 * /emulator control plane (validate, faults, stats), fault and rate-limit answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "acs/signer.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "emulator/app.h"
#include "emulator/routes.h"

#define HOST "127.0.0.1:8090"
#define Q "?api-version=2023-10-01"

static const uint8_t key[] = "routes-test-key-routes-test-key-";
static struct emu_app app;

struct call {
    struct emu_route_ctx ctx;
    struct emu_reply rep;
    struct json_object *json; /* parsed rep.body or NULL */
};

static int setup(void **state)
{
    struct emu_config cfg;

    (void)state;
    log_setup(LOGL_OFF, 2);
    emu_config_defaults(&cfg);
    cfg.access_key = key;
    cfg.access_key_len = sizeof(key) - 1;
    cfg.rate_limits[EMU_OP_REVOKE] = 3;
    return emu_app_init(&app, &cfg) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    emu_app_release(&app);
    return 0;
}

static void call_release(struct call *c)
{
    emu_reply_release(&c->rep);
    json_object_put(c->json);
    memset(c, 0, sizeof(*c));
}

/* Runs one request (signed with `k` when k_len > 0) through both steps. */
static void run_key(struct call *c, const uint8_t *k, size_t k_len, const char *method,
                    const char *target, const char *body)
{
    char date[CLOCK_HTTP_DATE_LEN];
    char hash[ACS_SHA256_B64_LEN];
    char auth[ACS_AUTH_MAX];
    struct emu_http_req req;

    memset(c, 0, sizeof(*c));
    memset(&req, 0, sizeof(req));
    body = body ? body : "";
    req.method = method;
    req.target = target;
    req.host = HOST;
    req.body = body;
    req.body_len = strlen(body);
    if (k_len > 0) {
        clock_http_date(time(NULL), date);
        assert_int_equal(
            acs_sign(k, k_len, method, target, HOST, date, body, strlen(body), hash, auth), 0);
        req.x_ms_date = date;
        req.content_sha256 = hash;
        req.authorization = auth;
    }
    if (!emu_routes_begin(&app, &req, &c->ctx, &c->rep))
        emu_routes_finish(&app, &req, &c->ctx, &c->rep);
    if (c->rep.body)
        c->json = json_tokener_parse(c->rep.body);
}

static void run(struct call *c, const char *method, const char *target, const char *body)
{
    run_key(c, key, sizeof(key) - 1, method, target, body);
}

static const char *jstr(struct json_object *o, const char *a, const char *b)
{
    struct json_object *v;

    if (!o || !json_object_object_get_ex(o, a, &v))
        return NULL;
    if (b && !json_object_object_get_ex(v, b, &v))
        return NULL;
    return json_object_get_string(v);
}

static void expect_error(struct call *c, int status, const char *code)
{
    assert_int_equal(c->rep.status, status);
    assert_non_null(c->json);
    assert_string_equal(jstr(c->json, "error", "code"), code);
    assert_non_null(jstr(c->json, "error", "message"));
}

/* Creates an identity and returns its id percent-encoded for a path. */
static void create(char *id, size_t id_len, char *enc, size_t enc_len)
{
    struct call c;
    const char *s;
    size_t o = 0;

    run(&c, "POST", "/identities" Q, NULL);
    assert_int_equal(c.rep.status, 201);
    s = jstr(c.json, "identity", "id");
    assert_non_null(s);
    snprintf(id, id_len, "%s", s);
    for (; *s && o + 4 < enc_len; s++)
        o += (size_t)(*s == ':' ? snprintf(enc + o, enc_len - o, "%%3A")
                                : snprintf(enc + o, enc_len - o, "%c", *s));
    call_release(&c);
}

static void test_routing_and_auth(void **state)
{
    struct call c;

    (void)state;
    run(&c, "POST", "/nothing" Q, NULL);
    expect_error(&c, 404, "NotFound");
    call_release(&c);
    run(&c, "GET", "/identities" Q, NULL);
    expect_error(&c, 405, "MethodNotAllowed");
    call_release(&c);
    run(&c, "POST", "/identities/x" Q, NULL);
    expect_error(&c, 405, "MethodNotAllowed");
    call_release(&c);
    run_key(&c, NULL, 0, "POST", "/identities" Q, NULL);
    expect_error(&c, 401, "Denied");
    call_release(&c);
    run_key(&c, (const uint8_t *)"wrong", 5, "POST", "/identities" Q, NULL);
    expect_error(&c, 401, "Denied");
    call_release(&c);
    run(&c, "POST", "/identities", NULL);
    expect_error(&c, 400, "MissingApiVersionParameter");
    call_release(&c);
    run(&c, "POST", "/identities?api-version=2020-01-01", NULL);
    expect_error(&c, 400, "UnsupportedApiVersion");
    call_release(&c);
    run(&c, "POST", "/teamsUser/:exchangeAccessToken?api-version=2021-03-07", "{}");
    expect_error(&c, 404, "NotFound");
    call_release(&c);
    run(&c, "GET", "/access/teamsExtension/tenants/t/assignments/o?api-version=2025-06-30", NULL);
    expect_error(&c, 501, "NotImplemented");
    call_release(&c);
}

static void test_operations(void **state)
{
    struct call c;
    char id[EMU_ID_MAX], enc[3 * EMU_ID_MAX], path[512], body[4096];
    char *t_old;

    (void)state;
    create(id, sizeof(id), enc, sizeof(enc));
    assert_int_equal(strncmp(id, "8:acs:", 6), 0);
    assert_non_null(strstr(id, app.resource_id));

    run(&c, "POST", "/identities" Q,
        "{\"createTokenWithScopes\":[\"chat\"],\"expiresInMinutes\":60}");
    assert_int_equal(c.rep.status, 201);
    assert_non_null(jstr(c.json, "accessToken", "token"));
    assert_non_null(jstr(c.json, "accessToken", "expiresOn"));
    call_release(&c);

    snprintf(path, sizeof(path), "/identities/%s/:issueAccessToken" Q, enc);
    run(&c, "POST", path, "{\"scopes\":[\"voip\"],\"expiresInMinutes\":59}");
    expect_error(&c, 400, "ValidationError");
    call_release(&c);
    run(&c, "POST", path, "{\"scopes\":[\"voip\"]}");
    assert_int_equal(c.rep.status, 200);
    t_old = strdup(jstr(c.json, "token", NULL));
    assert_non_null(jstr(c.json, "expiresOn", NULL));
    call_release(&c);

    snprintf(body, sizeof(body), "{\"token\":\"%s\"}", t_old);
    run(&c, "POST", "/emulator/validate", body);
    assert_int_equal(c.rep.status, 200);
    assert_string_equal(jstr(c.json, "reason", NULL), "ok");
    assert_string_equal(jstr(c.json, "identity", NULL), id);
    call_release(&c);

    snprintf(path, sizeof(path), "/identities/%s/:revokeAccessTokens" Q, enc);
    run(&c, "POST", path, NULL);
    assert_int_equal(c.rep.status, 204);
    assert_null(c.rep.body);
    call_release(&c);
    run(&c, "POST", "/emulator/validate", body);
    assert_string_equal(jstr(c.json, "reason", NULL), "revoked");
    call_release(&c);

    snprintf(path, sizeof(path), "/identities/%s" Q, enc);
    run(&c, "DELETE", path, NULL);
    assert_int_equal(c.rep.status, 204);
    call_release(&c);
    run(&c, "DELETE", path, NULL);
    expect_error(&c, 404, "IdentityNotFound");
    call_release(&c);
    run(&c, "POST", "/emulator/validate", body);
    assert_string_equal(jstr(c.json, "reason", NULL), "deleted");
    call_release(&c);
    snprintf(path, sizeof(path), "/identities/%s/:issueAccessToken" Q, enc);
    run(&c, "POST", path, "{\"scopes\":[\"voip\"]}");
    expect_error(&c, 404, "IdentityNotFound");
    call_release(&c);
    free(t_old);

    run(&c, "POST", "/emulator/validate", "{\"token\":\"x.y.z\"}");
    assert_string_equal(jstr(c.json, "reason", NULL), "malformed");
    call_release(&c);
    run(&c, "POST", "/emulator/validate", "{}");
    expect_error(&c, 400, "ValidationError");
    call_release(&c);
    run(&c, "GET", "/emulator/jwks", NULL);
    assert_int_equal(c.rep.status, 200);
    call_release(&c);
}

#define QP "?api-version=2025-03-02-preview"

/* customId (2025-03-02-preview): 201 and the customId for a new identity, 200 with the same
 * identity (and a token that validates) for the same customId, a new identity for another; a
 * token asked for with a known customId is valid; older and GA versions refuse the field. */
static void test_custom_id(void **state)
{
    struct call c;
    char first[EMU_ID_MAX], body[4096];

    (void)state;
    run(&c, "POST", "/identities" QP, "{\"customId\":\"routes-alice\"}");
    assert_int_equal(c.rep.status, 201);
    assert_string_equal(jstr(c.json, "identity", "customId"), "routes-alice");
    snprintf(first, sizeof(first), "%s", jstr(c.json, "identity", "id"));
    call_release(&c);

    run(&c, "POST", "/identities" QP,
        "{\"customId\":\"routes-alice\",\"createTokenWithScopes\":[\"voip\"]}");
    assert_int_equal(c.rep.status, 200);
    assert_string_equal(jstr(c.json, "identity", "id"), first);
    assert_string_equal(jstr(c.json, "identity", "customId"), "routes-alice");
    snprintf(body, sizeof(body), "{\"token\":\"%s\"}", jstr(c.json, "accessToken", "token"));
    call_release(&c);
    run(&c, "POST", "/emulator/validate", body);
    assert_string_equal(jstr(c.json, "reason", NULL), "ok");
    assert_string_equal(jstr(c.json, "identity", NULL), first);
    call_release(&c);

    run(&c, "POST", "/identities" QP, "{\"customId\":\"routes-bob\"}");
    assert_int_equal(c.rep.status, 201);
    assert_string_not_equal(jstr(c.json, "identity", "id"), first);
    call_release(&c);
    /* Without a customId the preview creates a new identity, and says nothing of one. */
    run(&c, "POST", "/identities" QP, NULL);
    assert_int_equal(c.rep.status, 201);
    assert_null(jstr(c.json, "identity", "customId"));
    call_release(&c);

    run(&c, "POST", "/identities" Q, "{\"customId\":\"routes-alice\"}");
    expect_error(&c, 400, "ValidationError");
    call_release(&c);
    run(&c, "POST", "/identities?api-version=2025-06-30", "{\"customId\":\"routes-alice\"}");
    expect_error(&c, 400, "ValidationError");
    call_release(&c);
}

static void test_faults_and_limits(void **state)
{
    struct call c;
    char id[EMU_ID_MAX], enc[3 * EMU_ID_MAX], path[512];
    struct emu_http_req big;
    struct emu_route_ctx ctx;
    struct emu_reply rep;

    (void)state;
    run(&c, "PUT", "/emulator/faults", "{\"throttle_rate\":1,\"retry_after_ms\":300,\"count\":1}");
    assert_int_equal(c.rep.status, 200);
    call_release(&c);
    run(&c, "POST", "/identities" Q, NULL);
    expect_error(&c, 429, "TooManyRequests");
    assert_int_equal(c.rep.retry_after_ms, 300);
    call_release(&c);
    run(&c, "POST", "/identities" Q, NULL);
    assert_int_equal(c.rep.status, 201);
    call_release(&c);

    run(&c, "PUT", "/emulator/faults", "{\"error_rate\":1,\"error_status\":500,\"count\":1}");
    call_release(&c);
    run(&c, "POST", "/identities" Q, NULL);
    expect_error(&c, 500, "InternalServerError");
    call_release(&c);

    run(&c, "PUT", "/emulator/faults", "{\"drop_rate\":1,\"count\":1,\"ops\":[\"create\"]}");
    call_release(&c);
    run(&c, "POST", "/identities" Q, NULL);
    assert_int_equal(c.rep.drop, 1);
    call_release(&c);

    /* Latency: the first step hands back a wait, the second answers. */
    run(&c, "PUT", "/emulator/faults", "{\"latency_ms\":50,\"count\":1}");
    call_release(&c);
    {
        char date[CLOCK_HTTP_DATE_LEN], hash[ACS_SHA256_B64_LEN], auth[ACS_AUTH_MAX];
        struct emu_http_req req = {0};
        clock_http_date(time(NULL), date);
        acs_sign(key, sizeof(key) - 1, "POST", "/identities" Q, HOST, date, "", 0, hash, auth);
        req =
            (struct emu_http_req){"POST", "/identities" Q, HOST, date, NULL, hash, auth, "", 0, 0};
        assert_int_equal(emu_routes_begin(&app, &req, &ctx, &rep), 0);
        assert_int_equal(ctx.fault.latency_ms, 50);
        emu_routes_finish(&app, &req, &ctx, &rep);
        assert_int_equal(rep.status, 201);
        emu_reply_release(&rep);
    }
    run(&c, "DELETE", "/emulator/faults", NULL);
    assert_int_equal(c.rep.status, 204);
    call_release(&c);
    run(&c, "GET", "/emulator/faults", NULL);
    assert_int_equal(c.rep.status, 200);
    assert_non_null(strstr(c.rep.body, "\"count\":null"));
    call_release(&c);
    run(&c, "PUT", "/emulator/faults", "{\"drop_rate\":2}");
    expect_error(&c, 400, "ValidationError");
    call_release(&c);

    /* The revoke limit of this app is 3 per 30 s window. */
    create(id, sizeof(id), enc, sizeof(enc));
    snprintf(path, sizeof(path), "/identities/%s/:revokeAccessTokens" Q, enc);
    /* test_operations used one unit of the window already. */
    for (int i = 0; i < 2; i++) {
        run(&c, "POST", path, NULL);
        assert_int_equal(c.rep.status, 204);
        call_release(&c);
    }
    run(&c, "POST", path, NULL);
    expect_error(&c, 429, "TooManyRequests");
    assert_true(c.rep.retry_after_ms > 0 && c.rep.retry_after_ms <= 30000);
    call_release(&c);

    memset(&big, 0, sizeof(big));
    big.method = "POST";
    big.target = "/identities" Q;
    big.host = HOST;
    big.body = "";
    big.body_too_large = 1;
    assert_int_equal(emu_routes_begin(&app, &big, &ctx, &rep), 1);
    assert_int_equal(rep.status, 413);
    emu_reply_release(&rep);
}

static void test_stats(void **state)
{
    struct call c;
    struct json_object *v;

    (void)state;
    run(&c, "POST", "/emulator/stats/reset", NULL);
    assert_int_equal(c.rep.status, 204);
    call_release(&c);
    run(&c, "POST", "/identities" Q, NULL);
    call_release(&c);
    run(&c, "POST", "/identities" Q, "{\"createTokenWithScopes\":[\"bogus\"]}");
    call_release(&c);
    run_key(&c, NULL, 0, "POST", "/identities" Q, NULL); /* unauthenticated: not counted */
    call_release(&c);
    run(&c, "GET", "/emulator/stats", NULL);
    assert_int_equal(c.rep.status, 200);
    assert_true(json_object_object_get_ex(c.json, "requests", &v));
    assert_true(json_object_object_get_ex(v, "create", &v));
    assert_int_equal(json_object_get_int(v), 2);
    assert_true(json_object_object_get_ex(c.json, "succeeded", &v));
    assert_true(json_object_object_get_ex(v, "create", &v));
    assert_int_equal(json_object_get_int(v), 1);
    call_release(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routing_and_auth),
        cmocka_unit_test(test_operations),
        cmocka_unit_test(test_custom_id),
        cmocka_unit_test(test_faults_and_limits),
        cmocka_unit_test(test_stats),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
