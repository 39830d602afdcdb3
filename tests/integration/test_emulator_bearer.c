/* Integration tests of acs-emulator's `--entra-jwks`: ACS routes accept an Entra bearer token
 * instead of the HMAC signature when it is RS256, signed by a key of the configured JWKS (a file
 * here, or the stand-in Entra endpoint's URL), for https://communication.azure.com, unexpired
 * and already valid, and from --entra-issuer when that is set; anything else is a 401 in the ACS
 * error shape. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <json-c/json.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "acs/client.h"
#include "auth/jwt.h"
#include "core/b64.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "emu.h"

#define AUD "https://communication.azure.com"
#define KID "test-key-1"
#define CREATE "/identities?api-version=2023-10-01"

static struct temu g_entra;   /* the stand-in Entra endpoint */
static struct temu g_file;    /* ACS emulator trusting a JWKS file of g_key */
static struct temu g_url;     /* ACS emulator trusting g_entra's JWKS URL, its issuer */
static struct temu g_wrongis; /* ACS emulator trusting g_entra's JWKS URL, another issuer */
static EVP_PKEY *g_key, *g_other;
static char g_jwks_path[64] = "";

static char *b64u_bn(EVP_PKEY *k, const char *param)
{
    BIGNUM *bn = NULL;
    uint8_t raw[600];
    int n;
    char *s;

    assert_true(EVP_PKEY_get_bn_param(k, param, &bn));
    n = BN_bn2bin(bn, raw);
    BN_free(bn);
    s = malloc(b64_encoded_size((size_t)n));
    assert_non_null(s);
    b64url_encode(raw, (size_t)n, s);
    return s;
}

static int write_jwks(void)
{
    char *n = b64u_bn(g_key, OSSL_PKEY_PARAM_RSA_N), *e = b64u_bn(g_key, OSSL_PKEY_PARAM_RSA_E);
    int fd;
    FILE *f;

    snprintf(g_jwks_path, sizeof(g_jwks_path), "/tmp/tv-bearer-jwks-XXXXXX");
    fd = mkstemp(g_jwks_path);
    if (fd < 0)
        return -1;
    f = fdopen(fd, "w");
    fprintf(
        f,
        "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"%s\",\"use\":\"sig\",\"n\":\"%s\",\"e\":\"%s\"}]}",
        KID, n, e);
    fclose(f);
    free(n);
    free(e);
    return 0;
}

static int group_setup(void **state)
{
    const char *entra[] = {"--entra", "--tenant", "t1", "--token-ttl-s", "600", NULL};
    const char *file[] = {"--no-rate-limits", "--entra-jwks", g_jwks_path, NULL};
    char jwks_url[128], iss[128];
    const char *url[] = {"--no-rate-limits", "--entra-jwks", jwks_url, "--entra-issuer", iss, NULL};
    const char *wrong[] = {"--no-rate-limits",
                           "--entra-jwks",
                           jwks_url,
                           "--entra-issuer",
                           "https://login.microsoftonline.com/other/v2.0",
                           NULL};

    (void)state;
    log_setup(LOGL_ERROR, 2);
    g_key = EVP_RSA_gen(2048);
    g_other = EVP_RSA_gen(2048);
    if (!g_key || !g_other || !temu_available() || write_jwks() != 0)
        return -1;
    if (temu_start(&g_entra, entra) != 0 || temu_start(&g_file, file) != 0)
        return -1;
    snprintf(jwks_url, sizeof(jwks_url), "%s/t1/discovery/v2.0/keys", g_entra.base_url);
    snprintf(iss, sizeof(iss), "%s/t1/v2.0", g_entra.base_url);
    if (temu_start(&g_url, url) != 0 || temu_start(&g_wrongis, wrong) != 0)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    temu_stop(&g_url);
    temu_stop(&g_wrongis);
    temu_stop(&g_file);
    temu_stop(&g_entra);
    if (g_jwks_path[0])
        unlink(g_jwks_path);
    EVP_PKEY_free(g_key);
    EVP_PKEY_free(g_other);
    return 0;
}

/* POSTs body to e's path with the given Authorization (NULL: none) and Content-Type; returns
 * the status, the error code of a refusal in code[64] ("" when none). */
static long post(const struct temu *e, const char *path, const char *ctype, const char *body,
                 const char *token, char code[64])
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    struct temu_body a = {NULL, 0};
    char url[256], auth[8192], ct[128];
    long st = 0;
    struct json_object *o, *err = NULL, *cd = NULL;

    snprintf(url, sizeof(url), "%s%s", e->base_url, path);
    snprintf(ct, sizeof(ct), "Content-Type: %s", ctype);
    h = curl_slist_append(h, ct);
    if (token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, temu_body_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, (void *)&a);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
    code[0] = '\0';
    o = a.data ? json_tokener_parse(a.data) : NULL;
    if (o && json_object_object_get_ex(o, "error", &err) &&
        json_object_object_get_ex(err, "code", &cd))
        snprintf(code, 64, "%s", json_object_get_string(cd));
    json_object_put(o);
    free(a.data);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return st;
}

static long create(const struct temu *e, const char *token, char code[64])
{
    return post(e, CREATE, "application/json", "{}", token, code);
}

/* A token signed by key with alg, with the given aud and exp/nbf offsets from now. */
static char *mint(EVP_PKEY *key, enum jwt_alg alg, const char *aud, int64_t exp_d, int64_t nbf_d)
{
    char payload[512];
    char *out = NULL;
    int64_t now = clock_wall_ms() / 1000;

    snprintf(
        payload, sizeof(payload),
        "{\"iss\":\"https://login.microsoftonline.com/t1/v2.0\",\"aud\":\"%s\",\"sub\":\"app-1\","
        "\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld}",
        aud, (long long)now, (long long)(now + nbf_d), (long long)(now + exp_d));
    assert_int_equal(jwt_sign(key, alg, KID, payload, &out), 0);
    return out;
}

static void expect_refused(const struct temu *e, char *tok)
{
    char code[64];

    assert_int_equal(create(e, tok, code), 401);
    assert_string_equal(code, "Denied");
    free(tok);
}

static void test_file_accepts_good_token(void **state)
{
    char code[64];
    char *tok = mint(g_key, JWT_ALG_RS256, AUD, 600, 0);

    (void)state;
    assert_int_equal(create(&g_file, tok, code), 201);
    free(tok);
}

/* An HMAC-signed create (the access key) through the project's ACS client: its error code. */
static int hmac_create(const struct temu *e)
{
    struct acs_client_opts o = {.connection_string = e->connstr,
                                .connect_timeout_ms = 1000,
                                .attempt_timeout_ms = 5000,
                                .deadline_ms = 10000,
                                .max_retries = 0};
    struct acs_client *c = NULL;
    struct acs_request req = {.op = ACS_OP_CREATE};
    struct acs_result res;
    int rc;

    assert_int_equal(acs_client_new(&o, &c), 0);
    rc = acs_client_call_sync(c, &req, &res);
    acs_result_release(&res);
    acs_client_free(c);
    return rc;
}

/* --entra-only: the access key's signature is refused, a bearer token still works (make run
 * KEYLESS=1 uses it to show the service really runs keyless). Without it both work. */
static void test_entra_only(void **state)
{
    const char *only[] = {"--no-rate-limits", "--entra-jwks", g_jwks_path, "--entra-only", NULL};
    struct temu e;
    char code[64];
    char *tok = mint(g_key, JWT_ALG_RS256, AUD, 600, 0);

    (void)state;
    assert_int_equal(hmac_create(&g_file), 0);
    assert_int_equal(temu_start(&e, only), 0);
    assert_int_equal(hmac_create(&e), TV_ERR_ACS_DENIED);
    assert_int_equal(create(&e, tok, code), 201);
    temu_stop(&e);
    free(tok);
}

/* A v1 token names the resource with its trailing slash. */
static void test_file_accepts_resource_audience(void **state)
{
    char code[64];
    char *tok = mint(g_key, JWT_ALG_RS256, AUD "/", 600, 0);

    (void)state;
    assert_int_equal(create(&g_file, tok, code), 201);
    free(tok);
}

static void test_file_refusals(void **state)
{
    char code[64];

    (void)state;
    /* Past exp by more than the emulator's 600 s skew, and nbf as far in the future. */
    expect_refused(&g_file, mint(g_key, JWT_ALG_RS256, AUD, -3600, -7200));
    expect_refused(&g_file, mint(g_key, JWT_ALG_RS256, AUD, 7200, 3600));
    expect_refused(&g_file, mint(g_key, JWT_ALG_RS256, "https://graph.microsoft.com", 600, 0));
    expect_refused(&g_file, mint(g_other, JWT_ALG_RS256, AUD, 600, 0));
    expect_refused(&g_file, mint(g_key, JWT_ALG_PS256, AUD, 600, 0));
    expect_refused(&g_file, strdup("not.a.jwt"));
    /* Within the emulator's 600 s HMAC skew but beyond an Entra-protected API's 300 s: expired 9
     * minutes ago, or valid only 9 minutes from now. */
    expect_refused(&g_file, mint(g_key, JWT_ALG_RS256, AUD, -540, -3600));
    expect_refused(&g_file, mint(g_key, JWT_ALG_RS256, AUD, 3600, 540));
    /* A lifetime no Entra token has. */
    expect_refused(&g_file, mint(g_key, JWT_ALG_RS256, AUD, 3 * 86400, 0));
    /* No Authorization at all: the HMAC check, as before. */
    assert_int_equal(create(&g_file, NULL, code), 401);
}

/* A client-credentials token from the stand-in Entra endpoint. */
static char *entra_token(void)
{
    CURL *c = curl_easy_init();
    struct temu_body a = {NULL, 0};
    char url[256];
    struct json_object *o, *t = NULL;
    char *tok;
    long st = 0;

    snprintf(url, sizeof(url), "%s/t1/oauth2/v2.0/token", g_entra.base_url);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS,
                     "grant_type=client_credentials&client_id=c1&client_secret=s1"
                     "&scope=https%3A%2F%2Fcommunication.azure.com%2F%2F.default");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, temu_body_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, (void *)&a);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
    assert_int_equal(st, 200);
    o = json_tokener_parse(a.data);
    assert_true(json_object_object_get_ex(o, "access_token", &t));
    tok = strdup(json_object_get_string(t));
    json_object_put(o);
    free(a.data);
    curl_easy_cleanup(c);
    return tok;
}

static void test_url_with_standin(void **state)
{
    char code[64];
    char *tok = entra_token();

    (void)state;
    assert_int_equal(create(&g_url, tok, code), 201);
    /* The same token where another issuer is required, or other keys are trusted. */
    assert_int_equal(create(&g_wrongis, tok, code), 401);
    assert_string_equal(code, "Denied");
    assert_int_equal(create(&g_file, tok, code), 401);
    free(tok);
    /* A token of a key the URL's set does not hold. */
    expect_refused(&g_url, mint(g_key, JWT_ALG_RS256, AUD, 600, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_accepts_good_token),
        cmocka_unit_test(test_file_refusals),
        cmocka_unit_test(test_file_accepts_resource_audience),
        cmocka_unit_test(test_entra_only),
        cmocka_unit_test(test_url_with_standin),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
