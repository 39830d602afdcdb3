/* Integration tests of acs-emulator's stand-in Entra ID endpoint (`--entra`), run as a child
 * process: the client-credentials route with a secret and with a federated client assertion,
 * the App Service and IMDS managed-identity routes, JWKS and OpenID metadata (the tokens verify
 * against them with the project's own JWT code), the request log with secrets as lengths, and
 * injected faults. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <json-c/json.h>

#include "auth/jwk.h"
#include "auth/jwt.h"
#include "core/clock.h"
#include "core/log.h"
#include "emu.h"

#define TENANT "tenant-1"
#define CLIENT "client-1"
#define SECRET "s3cret-value"
#define IDHDR "identity-header-value"
#define FED_ISS "https://oidc.example.invalid/cluster"
#define AUD "https://communication.azure.com"
#define SCOPE_ENC "https%3A%2F%2Fcommunication.azure.com%2F%2F.default"
#define ATYPE_ENC "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"

static struct temu g_emu;

static int group_setup(void **state)
{
    const char *args[] = {"--entra", "--tenant",
                          TENANT,    "--client-id",
                          CLIENT,    "--client-secret",
                          SECRET,    "--identity-header",
                          IDHDR,     "--federated-issuer",
                          FED_ISS,   "--token-ttl-s",
                          "600",     NULL};

    (void)state;
    log_setup(LOGL_ERROR, 2);
    if (!temu_available())
        return -1;
    return temu_start(&g_emu, args);
}

static int group_teardown(void **state)
{
    (void)state;
    return temu_stop(&g_emu) == 0 ? 0 : -1;
}

static int test_setup(void **state)
{
    long st = 0;

    (void)state;
    if (temu_http(&g_emu, "DELETE", "/entra/faults", NULL, &st, NULL) != 0 || st != 204)
        return -1;
    if (temu_http(&g_emu, "DELETE", "/entra/requests", NULL, &st, NULL) != 0 || st != 204)
        return -1;
    return 0;
}

/* One request with an optional form body and one optional extra header; the parsed JSON
 * answer (NULL when none) and *status. */
static struct json_object *req(const char *method, const char *path, const char *form,
                               const char *header, long *status)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    struct temu_body a = {NULL, 0};
    char url[512];
    struct json_object *o = NULL;

    assert_non_null(c);
    snprintf(url, sizeof(url), "%s%s", g_emu.base_url, path);
    if (form)
        h = curl_slist_append(h, "Content-Type: application/x-www-form-urlencoded");
    if (header)
        h = curl_slist_append(h, header);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, temu_body_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, (void *)&a);
    if (form)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    if (a.data)
        o = json_tokener_parse(a.data);
    free(a.data);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return o;
}

static const char *str(struct json_object *o, const char *k)
{
    struct json_object *v = NULL;

    if (!json_object_object_get_ex(o, k, &v))
        return NULL;
    return json_object_get_string(v);
}

/* Checks that token verifies against the stand-in's JWKS, for the issuer its OpenID metadata
 * names and the ACS audience, with subject sub. */
static void check_token(const char *token, const char *sub)
{
    long st = 0;
    struct json_object *md =
        req("GET", "/" TENANT "/v2.0/.well-known/openid-configuration", NULL, NULL, &st);
    struct json_object *ks = req("GET", "/" TENANT "/discovery/v2.0/keys", NULL, NULL, &st);
    struct json_object *keys = NULL;
    struct jwk *k = NULL;
    struct jwt_claims cl;
    char iss[256];
    struct jwt_expect e = {.issuer = iss, .audience = AUD};

    assert_int_equal(st, 200);
    snprintf(iss, sizeof(iss), "%s/%s/v2.0", g_emu.base_url, TENANT);
    assert_string_equal(str(md, "issuer"), iss);
    assert_true(json_object_object_get_ex(ks, "keys", &keys));
    assert_int_equal(jwk_from_json(json_object_array_get_idx(keys, 0), &k), 0);
    memset(&cl, 0, sizeof(cl));
    assert_int_equal(jwt_verify(k, token, strlen(token), &e, &cl, NULL), 0);
    assert_string_equal(cl.user, sub);
    assert_true(cl.exp > clock_wall_ms() / 1000 + 500);
    assert_true(cl.exp <= clock_wall_ms() / 1000 + 601);
    jwt_claims_release(&cl);
    jwk_free(k);
    json_object_put(md);
    json_object_put(ks);
}

/* The last recorded request. */
static struct json_object *last_request(void)
{
    long st = 0;
    struct json_object *log = req("GET", "/entra/requests", NULL, NULL, &st);
    size_t n;
    struct json_object *last;

    assert_int_equal(st, 200);
    n = json_object_array_length(log);
    assert_true(n > 0);
    last = json_object_get(json_object_array_get_idx(log, n - 1));
    json_object_put(log);
    return last;
}

static void test_secret_happy(void **state)
{
    long st = 0;
    struct json_object *o = req("POST", "/" TENANT "/oauth2/v2.0/token",
                                "grant_type=client_credentials&client_id=" CLIENT
                                "&client_secret=" SECRET "&scope=" SCOPE_ENC,
                                NULL, &st);
    struct json_object *r, *f, *s = NULL;

    (void)state;
    assert_int_equal(st, 200);
    assert_string_equal(str(o, "token_type"), "Bearer");
    assert_string_equal(str(o, "expires_in"), "600");
    check_token(str(o, "access_token"), CLIENT);
    r = last_request();
    assert_string_equal(str(r, "route"), "token");
    assert_true(json_object_object_get_ex(r, "fields", &f));
    assert_string_equal(str(f, "grant_type"), "client_credentials");
    assert_string_equal(str(f, "scope"), "https://communication.azure.com//.default");
    assert_true(json_object_object_get_ex(f, "client_secret", &s));
    assert_string_equal(str(s, "length"), "12");
    /* The secret itself is nowhere in the log. */
    assert_null(strstr(json_object_to_json_string(r), SECRET));
    json_object_put(r);
    json_object_put(o);
}

static void expect_error(const char *form, long want, const char *code)
{
    long st = 0;
    struct json_object *o = req("POST", "/" TENANT "/oauth2/v2.0/token", form, NULL, &st);

    assert_int_equal(st, want);
    assert_non_null(o);
    assert_string_equal(str(o, "error"), code);
    assert_non_null(str(o, "error_description"));
    assert_null(str(o, "access_token"));
    json_object_put(o);
}

static void test_token_refusals(void **state)
{
    long st = 0;
    struct json_object *o;

    (void)state;
    expect_error("grant_type=client_credentials&client_id=" CLIENT
                 "&client_secret=wrong&scope=" SCOPE_ENC,
                 401, "invalid_client");
    expect_error("grant_type=client_credentials&client_id=" CLIENT "&client_secret=" SECRET
                 "&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default",
                 400, "invalid_scope");
    expect_error("grant_type=password&client_id=" CLIENT "&client_secret=" SECRET
                 "&scope=" SCOPE_ENC,
                 400, "unsupported_grant_type");
    expect_error("grant_type=client_credentials&client_id=other&client_secret=" SECRET
                 "&scope=" SCOPE_ENC,
                 400, "unauthorized_client");
    expect_error("grant_type=client_credentials&client_id=" CLIENT "&scope=" SCOPE_ENC, 400,
                 "invalid_request");
    expect_error("grant_type=client_credentials&grant_type=client_credentials&client_id=" CLIENT
                 "&client_secret=" SECRET "&scope=" SCOPE_ENC,
                 400, "invalid_request");
    /* Another tenant, and a JSON body instead of a form. */
    o = req("POST", "/other-tenant/oauth2/v2.0/token",
            "grant_type=client_credentials&client_id=" CLIENT "&client_secret=" SECRET
            "&scope=" SCOPE_ENC,
            NULL, &st);
    assert_int_equal(st, 400);
    json_object_put(o);
    assert_int_equal(temu_http(&g_emu, "POST", "/" TENANT "/oauth2/v2.0/token", "{}", &st, NULL),
                     0);
    assert_int_equal(st, 400);
}

static char *assertion(const char *aud, int64_t exp_delta, const char *iss)
{
    char payload[512];

    snprintf(payload, sizeof(payload),
             "{\"aud\":[\"%s\"],\"iss\":\"%s\",\"sub\":\"system:serviceaccount:ns:sa\","
             "\"exp\":%lld}",
             aud, iss, (long long)(clock_wall_ms() / 1000 + exp_delta));
    return temu_fake_jwt(payload);
}

static long post_assertion(const char *jwt, struct json_object **out)
{
    char form[4096];
    long st = 0;

    snprintf(form, sizeof(form),
             "grant_type=client_credentials&client_id=%s&scope=%s&client_assertion_type=%s"
             "&client_assertion=%s",
             CLIENT, SCOPE_ENC, ATYPE_ENC, jwt);
    *out = req("POST", "/" TENANT "/oauth2/v2.0/token", form, NULL, &st);
    return st;
}

static void test_assertion(void **state)
{
    struct json_object *o = NULL, *r, *f, *a = NULL;
    char *good = assertion("api://AzureADTokenExchange", 300, FED_ISS);
    char *bad_aud = assertion("api://Other", 300, FED_ISS);
    char *expired = assertion("api://AzureADTokenExchange", -10, FED_ISS);
    char *bad_iss = assertion("api://AzureADTokenExchange", 300, "https://evil.invalid");

    (void)state;
    assert_int_equal(post_assertion(good, &o), 200);
    check_token(str(o, "access_token"), CLIENT);
    json_object_put(o);
    r = last_request();
    assert_true(json_object_object_get_ex(r, "fields", &f));
    assert_string_equal(str(f, "client_assertion_type"),
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    assert_true(json_object_object_get_ex(f, "client_assertion", &a));
    assert_int_equal(json_object_get_int64(json_object_object_get(a, "length")),
                     (int64_t)strlen(good));
    json_object_put(r);
    assert_int_equal(post_assertion(bad_aud, &o), 401);
    assert_string_equal(str(o, "error"), "invalid_client");
    json_object_put(o);
    assert_int_equal(post_assertion(expired, &o), 401);
    json_object_put(o);
    assert_int_equal(post_assertion(bad_iss, &o), 401);
    json_object_put(o);
    assert_int_equal(post_assertion("not-a-jwt", &o), 401);
    json_object_put(o);
    free(good);
    free(bad_aud);
    free(expired);
    free(bad_iss);
}

static void test_msi(void **state)
{
    long st = 0;
    const char *path =
        "/msi/token?api-version=2019-08-01&resource=https%3A%2F%2Fcommunication.azure.com%2F";
    struct json_object *o = req("GET", path, NULL, "X-IDENTITY-HEADER: " IDHDR, &st);
    char *end = NULL;
    long long exp;

    (void)state;
    assert_int_equal(st, 200);
    assert_string_equal(str(o, "token_type"), "Bearer");
    exp = strtoll(str(o, "expires_on"), &end, 10);
    assert_true(*end == '\0' && exp > clock_wall_ms() / 1000);
    check_token(str(o, "access_token"), str(o, "client_id"));
    json_object_put(o);
    o = req("GET", path, NULL, "X-IDENTITY-HEADER: wrong", &st);
    assert_int_equal(st, 401);
    json_object_put(o);
    o = req("GET", path, NULL, NULL, &st);
    assert_int_equal(st, 401);
    json_object_put(o);
    o = req("GET", "/msi/token?api-version=2019-08-01&resource=https%3A%2F%2Fvault.azure.net", NULL,
            "X-IDENTITY-HEADER: " IDHDR, &st);
    assert_int_equal(st, 400);
    json_object_put(o);
    o = req("GET",
            "/msi/token?api-version=2017-09-01&resource=https%3A%2F%2Fcommunication.azure.com",
            NULL, "X-IDENTITY-HEADER: " IDHDR, &st);
    assert_int_equal(st, 400);
    json_object_put(o);
    o = last_request();
    assert_null(strstr(json_object_to_json_string(o), IDHDR));
    json_object_put(o);
}

static void test_imds(void **state)
{
    long st = 0;
    const char *path =
        "/metadata/identity/oauth2/"
        "token?api-version=2018-02-01&resource=https%3A%2F%2Fcommunication.azure.com";
    struct json_object *o = req("GET", path, NULL, "Metadata: true", &st);

    (void)state;
    assert_int_equal(st, 200);
    assert_string_equal(str(o, "expires_in"), "600");
    assert_non_null(str(o, "expires_on"));
    check_token(str(o, "access_token"), "00000000-0000-0000-0000-00000000a11d");
    json_object_put(o);
    o = req("GET", path, NULL, NULL, &st);
    assert_int_equal(st, 400);
    assert_non_null(str(o, "error"));
    json_object_put(o);
}

static void test_faults(void **state)
{
    long st = 0;
    const char *form = "grant_type=client_credentials&client_id=" CLIENT "&client_secret=" SECRET
                       "&scope=" SCOPE_ENC;
    struct json_object *o;

    (void)state;
    assert_int_equal(
        temu_http(&g_emu, "PUT", "/entra/faults", "{\"mode\":\"error\",\"status\":503}", &st, NULL),
        0);
    assert_int_equal(st, 204);
    o = req("POST", "/" TENANT "/oauth2/v2.0/token", form, NULL, &st);
    assert_int_equal(st, 503);
    json_object_put(o);
    o = req("GET", "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=x", NULL,
            "Metadata: true", &st);
    assert_int_equal(st, 503);
    json_object_put(o);
    assert_int_equal(temu_http(&g_emu, "PUT", "/entra/faults",
                               "{\"mode\":\"slow\",\"delay_ms\":200}", &st, NULL),
                     0);
    o = req("POST", "/" TENANT "/oauth2/v2.0/token", form, NULL, &st);
    assert_int_equal(st, 200);
    json_object_put(o);
    assert_int_equal(temu_http(&g_emu, "PUT", "/entra/faults", "{\"mode\":\"nope\"}", &st, NULL),
                     0);
    assert_int_equal(st, 400);
    assert_int_equal(temu_http(&g_emu, "DELETE", "/entra/faults", NULL, &st, NULL), 0);
    o = req("POST", "/" TENANT "/oauth2/v2.0/token", form, NULL, &st);
    assert_int_equal(st, 200);
    json_object_put(o);
}

/* A hung token route holds its request without stalling others (the client gives up). */
static void test_hang(void **state)
{
    long st = 0;
    CURL *c = curl_easy_init();
    char url[256];
    struct json_object *o;

    (void)state;
    assert_int_equal(temu_http(&g_emu, "PUT", "/entra/faults", "{\"mode\":\"hang\"}", &st, NULL),
                     0);
    snprintf(url, sizeof(url),
             "%s/metadata/identity/oauth2/token?api-version=2018-02-01&resource=x", g_emu.base_url);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 500L);
    assert_int_equal(curl_easy_perform(c), CURLE_OPERATION_TIMEDOUT);
    curl_easy_cleanup(c);
    o = req("GET", "/" TENANT "/discovery/v2.0/keys", NULL, NULL, &st);
    assert_int_equal(st, 200);
    json_object_put(o);
}

static void test_unknown_route(void **state)
{
    long st = 0;
    struct json_object *o = req("GET", "/nope", NULL, NULL, &st);

    (void)state;
    assert_int_equal(st, 404);
    assert_non_null(str(o, "error"));
    json_object_put(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_secret_happy, test_setup),
        cmocka_unit_test_setup(test_token_refusals, test_setup),
        cmocka_unit_test_setup(test_assertion, test_setup),
        cmocka_unit_test_setup(test_msi, test_setup),
        cmocka_unit_test_setup(test_imds, test_setup),
        cmocka_unit_test_setup(test_faults, test_setup),
        cmocka_unit_test_setup(test_hang, test_setup),
        cmocka_unit_test_setup(test_unknown_route, test_setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
