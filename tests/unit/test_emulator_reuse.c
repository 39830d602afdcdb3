/* Unit tests of the bench-only signed-token reuse (--reuse-signed-token-s): the cache on its
 * own (bucket, generation, scopes and minutes in the key; remaining-life guard; replacement)
 * and through the emulator's routes (same token within a bucket, a new one after revoke, none
 * after delete, stats counting every request, a create-with-token's token reused by issues). */
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
#include "emulator/reuse.h"
#include "emulator/routes.h"

#define HOST "127.0.0.1:8090"
#define Q "?api-version=2023-10-01"
#define BUCKET_S 600

static const uint8_t key[] = "reuse-test-key-reuse-test-key-12";
static struct emu_app app;

/* ---- the cache alone ---------------------------------------------------------------------- */

static char *get(struct emu_reuse *r, const struct emu_reuse_key *k, int64_t now_s, int64_t *exp_s)
{
    char *tok = NULL;
    int rc = emu_reuse_get(r, k, now_s, &tok, exp_s);

    if (rc != 0) {
        assert_int_equal(rc, TV_ERR_NOT_FOUND);
        return NULL;
    }
    return tok;
}

static void test_cache(void **state)
{
    struct emu_reuse *r = NULL;
    struct emu_reuse_key k = {"8:acs:r_a", "chat,voip", 60, 0};
    struct emu_reuse_key other;
    int64_t exp = 0;
    char *tok;
    /* 6000 is the start of bucket 100 of 60 s. */
    const int64_t t0 = 6000;

    (void)state;
    assert_int_equal(emu_reuse_new(0, &r), TV_ERR_INVALID);
    assert_int_equal(emu_reuse_new(EMU_REUSE_MAX_S + 1, &r), TV_ERR_INVALID);
    assert_int_equal(emu_reuse_new(60, &r), 0);
    assert_null(get(r, &k, t0, &exp));

    emu_reuse_put(r, &k, t0, "tok-gen0", t0 + 3600);
    tok = get(r, &k, t0 + 59, &exp);
    assert_non_null(tok);
    assert_string_equal(tok, "tok-gen0");
    assert_int_equal(exp, t0 + 3600);
    free(tok);
    /* The next bucket signs again. */
    assert_null(get(r, &k, t0 + 60, &exp));

    /* Each part of the key matters. */
    other = k;
    other.acs_scope = "chat";
    assert_null(get(r, &other, t0 + 1, &exp));
    other = k;
    other.expires_in_minutes = 120;
    assert_null(get(r, &other, t0 + 1, &exp));
    other = k;
    other.id = "8:acs:r_b";
    assert_null(get(r, &other, t0 + 1, &exp));
    /* A revoke raised the generation: the old token is never handed out again. */
    other = k;
    other.gen = 1;
    assert_null(get(r, &other, t0 + 1, &exp));
    emu_reuse_put(r, &other, t0 + 1, "tok-gen1", t0 + 3601);
    tok = get(r, &other, t0 + 2, &exp);
    assert_non_null(tok);
    assert_string_equal(tok, "tok-gen1");
    free(tok);
    assert_null(get(r, &k, t0 + 2, &exp));

    /* A token with no more than a bucket of life left is not reused. */
    other = k;
    other.id = "8:acs:r_short";
    emu_reuse_put(r, &other, t0, "tok-short", t0 + 70);
    tok = get(r, &other, t0 + 5, &exp);
    assert_non_null(tok);
    free(tok);
    assert_null(get(r, &other, t0 + 10, &exp));

    /* Many identities share the table without losing each other. */
    for (int i = 0; i < 2000; i++) {
        char id[32];
        char t[32];
        snprintf(id, sizeof(id), "8:acs:r_%d", i);
        snprintf(t, sizeof(t), "tok-%d", i);
        other = k;
        other.id = id;
        emu_reuse_put(r, &other, t0, t, t0 + 3600);
    }
    for (int i = 0; i < 2000; i++) {
        char id[32];
        char t[32];
        snprintf(id, sizeof(id), "8:acs:r_%d", i);
        snprintf(t, sizeof(t), "tok-%d", i);
        other = k;
        other.id = id;
        tok = get(r, &other, t0 + 1, &exp);
        assert_non_null(tok);
        assert_string_equal(tok, t);
        free(tok);
    }
    emu_reuse_free(r);
    emu_reuse_free(NULL);
}

/* ---- through the issue route ---------------------------------------------------------------- */

struct call {
    struct emu_route_ctx ctx;
    struct emu_reply rep;
    struct json_object *json;
};

static int setup(void **state)
{
    struct emu_config cfg;

    (void)state;
    log_setup(LOGL_OFF, 2);
    emu_config_defaults(&cfg);
    cfg.access_key = key;
    cfg.access_key_len = sizeof(key) - 1;
    cfg.no_rate_limits = 1;
    cfg.reuse_signed_token_s = BUCKET_S;
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

static void run(struct call *c, const char *method, const char *target, const char *body)
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
    clock_http_date(time(NULL), date);
    assert_int_equal(
        acs_sign(key, sizeof(key) - 1, method, target, HOST, date, body, strlen(body), hash, auth),
        0);
    req.x_ms_date = date;
    req.content_sha256 = hash;
    req.authorization = auth;
    if (!emu_routes_begin(&app, &req, &c->ctx, &c->rep))
        emu_routes_finish(&app, &req, &c->ctx, &c->rep);
    if (c->rep.body)
        c->json = json_tokener_parse(c->rep.body);
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

static int64_t stat_get(const char *a, const char *b)
{
    struct emu_http_req req;
    struct call c;
    const char *s;
    int64_t v;

    memset(&req, 0, sizeof(req));
    memset(&c, 0, sizeof(c));
    req.method = "GET";
    req.target = "/emulator/stats";
    req.host = HOST;
    req.body = "";
    assert_int_equal(emu_routes_begin(&app, &req, &c.ctx, &c.rep), 1);
    c.json = json_tokener_parse(c.rep.body);
    s = jstr(c.json, a, b);
    assert_non_null(s);
    v = strtoll(s, NULL, 10);
    call_release(&c);
    return v;
}

/* The identity's path prefix "/identities/8%3Aacs%3A..." for id. */
static void id_path(const char *id, char *out, size_t cap)
{
    size_t o = (size_t)snprintf(out, cap, "/identities/");

    for (; *id && o + 4 < cap; id++)
        o += (size_t)(*id == ':' ? snprintf(out + o, cap - o, "%%3A")
                                 : snprintf(out + o, cap - o, "%c", *id));
}

/* Issues a token; *tok and *exp receive malloc'd copies. Returns the HTTP status. */
static int issue(const char *path, const char *body, char **tok, char **exp)
{
    char target[512];
    struct call c;
    int status;

    snprintf(target, sizeof(target), "%s/:issueAccessToken" Q, path);
    run(&c, "POST", target, body);
    status = c.rep.status;
    if (status == 200) {
        assert_non_null(jstr(c.json, "token", NULL));
        *tok = strdup(jstr(c.json, "token", NULL));
        *exp = strdup(jstr(c.json, "expiresOn", NULL));
    }
    call_release(&c);
    return status;
}

static void post(const char *path, const char *action, int want)
{
    char target[512];
    struct call c;

    snprintf(target, sizeof(target), "%s%s" Q, path, action);
    run(&c, action[0] ? "POST" : "DELETE", target, NULL);
    assert_int_equal(c.rep.status, want);
    call_release(&c);
}

static const char *validate(const char *tok)
{
    static char reason[32];
    struct emu_http_req req;
    struct call c;
    struct json_object *b = json_object_new_object();

    json_object_object_add(b, "token", json_object_new_string(tok));
    memset(&req, 0, sizeof(req));
    memset(&c, 0, sizeof(c));
    req.method = "POST";
    req.target = "/emulator/validate";
    req.host = HOST;
    req.body = json_object_to_json_string(b);
    req.body_len = strlen(req.body);
    assert_int_equal(emu_routes_begin(&app, &req, &c.ctx, &c.rep), 1);
    c.json = json_tokener_parse(c.rep.body);
    snprintf(reason, sizeof(reason), "%s", jstr(c.json, "reason", NULL));
    call_release(&c);
    json_object_put(b);
    return reason;
}

#define BODY_60 "{\"scopes\":[\"chat\",\"voip\"],\"expiresInMinutes\":60}"

/* Two issues of the same request, retried once when a bucket boundary fell between them. */
static void issue_twice(const char *path, const char *body, char **t1, char **e1, char **t2,
                        char **e2)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        int64_t b0 = clock_wall_ms() / 1000 / BUCKET_S;
        assert_int_equal(issue(path, body, t1, e1), 200);
        assert_int_equal(issue(path, body, t2, e2), 200);
        if (clock_wall_ms() / 1000 / BUCKET_S == b0)
            return;
        free(*t1);
        free(*e1);
        free(*t2);
        free(*e2);
    }
    fail_msg("two bucket boundaries in a row");
}

static void test_issue_route(void **state)
{
    struct call c;
    char path[256];
    char *t1, *e1, *t2, *e2, *t3, *e3;
    int64_t issues0, ok0, tokens0, reused0;

    (void)state;
    run(&c, "POST", "/identities" Q, NULL);
    assert_int_equal(c.rep.status, 201);
    id_path(jstr(c.json, "identity", "id"), path, sizeof(path));
    call_release(&c);
    issues0 = stat_get("requests", "issue");
    ok0 = stat_get("succeeded", "issue");
    tokens0 = stat_get("tokens_issued", NULL);
    reused0 = stat_get("tokens_reused", NULL);

    /* Within a bucket: the same signed token and expiry, still a valid RS256 JWT. */
    issue_twice(path, BODY_60, &t1, &e1, &t2, &e2);
    assert_string_equal(t1, t2);
    assert_string_equal(e1, e2);
    assert_string_equal(validate(t1), "ok");
    assert_int_equal(stat_get("requests", "issue") - issues0, 2);
    assert_int_equal(stat_get("succeeded", "issue") - ok0, 2);
    assert_int_equal(stat_get("tokens_issued", NULL) - tokens0, 2);
    assert_int_equal(stat_get("tokens_reused", NULL) - reused0, 1);

    /* Other scopes or minutes are other requests. */
    assert_int_equal(issue(path, "{\"scopes\":[\"chat\"],\"expiresInMinutes\":60}", &t3, &e3), 200);
    assert_string_not_equal(t3, t1);
    free(t3);
    free(e3);
    assert_int_equal(
        issue(path, "{\"scopes\":[\"chat\",\"voip\"],\"expiresInMinutes\":120}", &t3, &e3), 200);
    assert_string_not_equal(t3, t1);
    assert_string_not_equal(e3, e1);
    free(t3);
    free(e3);

    /* After a revoke the pre-revoke token is not handed out again; the new one is reused. */
    post(path, "/:revokeAccessTokens", 204);
    assert_string_equal(validate(t1), "revoked");
    free(t2);
    free(e2);
    issue_twice(path, BODY_60, &t2, &e2, &t3, &e3);
    assert_string_not_equal(t2, t1);
    assert_string_equal(t2, t3);
    assert_string_equal(validate(t2), "ok");
    free(t3);
    free(e3);

    /* After a delete there is no token at all. */
    post(path, "", 204);
    assert_int_equal(issue(path, BODY_60, &t3, &e3), 404);
    assert_string_equal(validate(t2), "deleted");
    free(t1);
    free(e1);
    free(t2);
    free(e2);
}

/* The token of a create-with-token is the one the following issues of that request reuse. */
static void test_create_with_token(void **state)
{
    struct call c;
    char path[256];
    char *created, *t1, *e1;

    (void)state;
    for (int attempt = 0; attempt < 2; attempt++) {
        int64_t b0 = clock_wall_ms() / 1000 / BUCKET_S;
        run(&c, "POST", "/identities" Q,
            "{\"createTokenWithScopes\":[\"voip\",\"chat\"],\"expiresInMinutes\":60}");
        assert_int_equal(c.rep.status, 201);
        id_path(jstr(c.json, "identity", "id"), path, sizeof(path));
        created = strdup(jstr(c.json, "accessToken", "token"));
        call_release(&c);
        assert_int_equal(issue(path, BODY_60, &t1, &e1), 200);
        if (clock_wall_ms() / 1000 / BUCKET_S == b0)
            break;
        free(created);
        free(t1);
        free(e1);
        created = t1 = e1 = NULL;
    }
    assert_non_null(created);
    assert_string_equal(t1, created);
    assert_string_equal(validate(t1), "ok");
    free(created);
    free(t1);
    free(e1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache),
        cmocka_unit_test_setup_teardown(test_issue_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_with_token, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
