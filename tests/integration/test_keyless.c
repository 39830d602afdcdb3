/* `tokenvend serve` in keyless mode (SPEC section 11, issue 8), in-process (app.c, the objects
 * serve builds), against child processes: the stand-in Entra ID endpoint (`acs-emulator entra`)
 * and an ACS emulator that accepts bearer tokens from it (`--entra-jwks`, `--entra-issuer`). The
 * credential is the client secret one, AZURE_AUTHORITY_HOST pointing at the stand-in. Shown:
 * ACS is reached with the bearer token and 200 token requests cause one token fetch; with the
 * identity endpoint down at start, /readyz says so and the API answers 503 with Retry-After at
 * once (no hang), and both recover when the endpoint does; a token that expires while the
 * endpoint fails gives the same 503. Waits are bounded polls; nothing asserts on time. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "app.h"
#include "auth/apikey.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "emu.h"
#include "store/apikeys.h"
#include "store/store.h"

#define TENANT "t1"
#define SECRET "kl-S3CR3T-value"
#define WAIT_MS 90000 /* a ceiling that only stops a hung run (the cache backs off up to 60 s) */

struct fx {
    char dir[64];
    char db[128];
    struct store *st;
    struct config cfg;
    struct app *app;
    char key[APIKEY_MAX];
    struct temu entra; /* the stand-in identity endpoint */
    struct temu acs;   /* ACS emulator trusting entra's keys */
};

struct resp {
    long status;
    char body[256 * 1024];
    size_t len;
    char retry_after[32];
};

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
    struct resp *r = arg;
    size_t take = sz * n;

    if (take > sizeof r->body - 1 - r->len)
        take = sizeof r->body - 1 - r->len;
    memcpy(r->body + r->len, p, take);
    r->len += take;
    r->body[r->len] = '\0';
    return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg)
{
    struct resp *r = arg;
    size_t len = sz * n;
    static const char name[] = "retry-after:";

    if (len > sizeof name - 1 && strncasecmp(p, name, sizeof name - 1) == 0)
        snprintf(r->retry_after, sizeof r->retry_after, "%.*s",
                 (int)strcspn(p + sizeof name - 1, "\r\n"), p + sizeof name - 1);
    return len;
}

/* One request to serve's internal listener; fails the test when no answer comes. */
static void call(struct fx *f, const char *method, const char *path, struct resp *r)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    char url[160], auth[160];

    memset(r, 0, sizeof *r);
    assert_non_null(c);
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", app_port(f->app, 1), path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", f->key);
    h = curl_slist_append(h, auth);
    h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (strcmp(method, "POST") == 0)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{}");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    if (curl_easy_perform(c) != CURLE_OK)
        fail_msg("%s %s: no answer (hung?)", method, url);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

/* The value of metric `name` in Prometheus text, or -1 when absent. */
static double metric(const char *text, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = text; p != NULL && *p != '\0';) {
        if (strncmp(p, name, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return -1;
}

/* Token requests the stand-in saw (its request log, route "token"). */
static int entra_token_requests(struct fx *f)
{
    long st = 0;
    char *body = NULL;
    struct json_object *log;
    int n = 0;

    assert_int_equal(temu_http(&f->entra, "GET", "/entra/requests", NULL, &st, &body), 0);
    assert_int_equal(st, 200);
    log = json_tokener_parse(body);
    assert_non_null(log);
    for (size_t i = 0; i < json_object_array_length(log); i++) {
        struct json_object *route;
        if (json_object_object_get_ex(json_object_array_get_idx(log, i), "route", &route) &&
            strcmp(json_object_get_string(route), "token") == 0)
            n++;
    }
    json_object_put(log);
    free(body);
    return n;
}

static void entra_fault(struct fx *f, const char *json)
{
    long st = 0;

    if (json != NULL)
        assert_int_equal(temu_http(&f->entra, "PUT", "/entra/faults", json, &st, NULL), 0);
    else
        assert_int_equal(temu_http(&f->entra, "DELETE", "/entra/faults", NULL, &st, NULL), 0);
    assert_true(st == 200 || st == 204);
}

/* The stand-in issuing tokens of ttl seconds, and an ACS emulator that trusts it. */
static void endpoints_start(struct fx *f, const char *ttl)
{
    const char *entra[] = {"--entra", "--tenant", TENANT, "--token-ttl-s", ttl, NULL};
    char jwks[128], iss[128];
    const char *acs[] = {"--no-rate-limits", "--entra-jwks", jwks, "--entra-issuer", iss, NULL};

    assert_int_equal(temu_start(&f->entra, entra), 0);
    snprintf(jwks, sizeof jwks, "%s/%s/discovery/v2.0/keys", f->entra.base_url, TENANT);
    snprintf(iss, sizeof iss, "%s/%s/v2.0", f->entra.base_url, TENANT);
    assert_int_equal(temu_start(&f->acs, acs), 0);
}

/* Loads the configuration as `tokenvend serve` does (no file; the credential from the
 * environment, as on Azure) and starts the service. The token cache is off, so that every
 * token request reaches ACS. */
static void serve(struct fx *f)
{
    char err[CONFIG_ERR_MAX];
    static const char *const unset[] = {"AZURE_FEDERATED_TOKEN_FILE", "IDENTITY_ENDPOINT",
                                        "IDENTITY_HEADER", "COMMUNICATION_SERVICES_ENDPOINT"};

    for (size_t i = 0; i < sizeof unset / sizeof unset[0]; i++)
        unsetenv(unset[i]);
    setenv("AZURE_TENANT_ID", TENANT, 1);
    setenv("AZURE_CLIENT_ID", "tokenvend-test", 1);
    setenv("AZURE_CLIENT_SECRET", SECRET, 1);
    setenv("AZURE_AUTHORITY_HOST", f->entra.base_url, 1);
    struct config_flag flags[] = {
        {"db", f->db, "--set"},
        {"public_addr", "127.0.0.1:0", "--set"},
        {"internal_addr", "127.0.0.1:0", "--set"},
        {"acs_endpoint", f->acs.base_url, "--set"},
        {"cache", "off", "--set"},
        {"log_level", "error", "--set"},
    };
    struct config_overrides ov = {
        .default_path = "", .flags = flags, .nflags = sizeof flags / sizeof flags[0]};
    if (config_load(&ov, &f->cfg, err, sizeof err) != 0)
        fail_msg("config: %s", err);
    assert_int_equal(app_new(&f->cfg, &f->app), 0);
    assert_int_equal(app_start(f->app), 0);
}

/* Polls GET /readyz until it answers want with body text `has` (NULL: any). */
static void wait_ready(struct fx *f, long want, const char *has, struct resp *r)
{
    for (int64_t end = clock_mono_ms() + WAIT_MS; clock_mono_ms() < end; clock_sleep_ms(50)) {
        call(f, "GET", "/readyz", r);
        if (r->status == want && (has == NULL || strstr(r->body, has) != NULL))
            return;
    }
    fail_msg("/readyz never answered %ld with \"%s\": %ld %s", want, has ? has : "", r->status,
             r->body);
}

/* A 503 in the error shape with a Retry-After of at least 1 s, naming the identity endpoint,
 * never the secret. */
static void assert_no_token_503(const struct resp *r)
{
    assert_int_equal(r->status, 503);
    assert_non_null(strstr(r->body, "\"code\":\"unavailable\""));
    assert_non_null(strstr(r->body, "identity endpoint"));
    assert_null(strstr(r->body, SECRET));
    assert_true(r->retry_after[0] != '\0');
    assert_true(atol(r->retry_after) >= 1);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    struct store_apikey k;

    if (f == NULL || !temu_available())
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/tv-keyless-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->db, sizeof f->db, "%s/tv.db", f->dir);
    if (store_open(f->db, STORE_MIGRATE_YES, &f->st) != 0)
        return -1;
    memset(&k, 0, sizeof k);
    snprintf(k.name, sizeof k.name, "backend");
    k.created_ms = clock_wall_ms();
    if (apikey_generate(f->key, sizeof f->key, k.key_id, k.hash) != 0 ||
        store_apikey_insert(f->st, &k) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char p[160];

    app_free(f->app);
    config_release(&f->cfg);
    store_close(f->st);
    temu_stop(&f->acs);
    temu_stop(&f->entra);
    unlink(f->db);
    snprintf(p, sizeof p, "%s-wal", f->db);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", f->db);
    unlink(p);
    rmdir(f->dir);
    OPENSSL_cleanse(f->key, sizeof f->key);
    free(f);
    return 0;
}

/* ACS is reached with the bearer token (the emulator refuses anything else: no access key
 * exists here), and 200 token requests, each an ACS call, cause exactly one token fetch. */
static void test_keyless_reaches_acs_with_one_fetch(void **state)
{
    struct fx *f = *state;
    struct resp *r = calloc(1, sizeof *r);

    assert_non_null(r);
    endpoints_start(f, "3600");
    serve(f);
    wait_ready(f, 200, NULL, r);
    assert_non_null(strstr(r->body, "\"acsCredential\":\"client_secret\""));
    /* The start-up credential check works keyless too: its revoke carried the Entra token
     * (serve has no access key here) and the emulator answered 404 for the made-up identity. */
    wait_ready(f, 200, "\"checks\":{\"acsCredential\":\"ok\"}", r);
    for (int i = 0; i < 200; i++) {
        call(f, "POST", "/internal/users/alice/token", r);
        if (r->status != 200)
            fail_msg("token request %d: %ld %s", i, r->status, r->body);
        assert_non_null(strstr(r->body, "\"token\":\""));
    }
    assert_int_equal(entra_token_requests(f), 1);
    call(f, "GET", "/metrics", r);
    assert_int_equal(r->status, 200);
    assert_true(metric(r->body, "tokenvend_entra_fetches_total") == 1);
    assert_true(metric(r->body, "tokenvend_entra_fetch_failures_total") == 0);
    assert_true(metric(r->body, "tokenvend_entra_token_usable") == 1);
    assert_true(metric(r->body, "tokenvend_entra_token_expires_in_seconds") > 3000);
    /* The first is a create that brings its token along, the other 199 are issues. */
    assert_true(metric(r->body, "tokenvend_upstream_calls_total") >= 200);
    /* The check's expected 404 is no upstream error. */
    assert_true(metric(r->body, "tokenvend_upstream_errors_total") == 0);
    free(r);
}

/* The identity endpoint is down when serve starts: /readyz says so (credential kind and reason),
 * a token request is answered 503 + Retry-After at once, and both recover when it comes back. */
static void test_keyless_endpoint_down_at_start(void **state)
{
    struct fx *f = *state;
    struct resp *r = calloc(1, sizeof *r);

    assert_non_null(r);
    endpoints_start(f, "3600");
    entra_fault(f, "{\"mode\":\"error\",\"status\":503}");
    serve(f);
    wait_ready(f, 503, "HTTP 503", r);
    assert_non_null(strstr(r->body, "\"code\":\"unavailable\""));
    assert_non_null(strstr(r->body, "credential client_secret"));
    assert_null(strstr(r->body, SECRET));
    call(f, "POST", "/internal/users/bob/token", r);
    assert_no_token_503(r);
    entra_fault(f, NULL);
    wait_ready(f, 200, "client_secret", r);
    call(f, "POST", "/internal/users/bob/token", r);
    assert_int_equal(r->status, 200);
    assert_true(r->retry_after[0] == '\0');
    call(f, "GET", "/metrics", r);
    assert_true(metric(r->body, "tokenvend_entra_fetch_failures_total") >= 1);
    assert_true(metric(r->body, "tokenvend_entra_token_usable") == 1);
    free(r);
}

struct stopper {
    struct app *app;
    atomic_int done;
};

static void *stop_app(void *arg)
{
    struct stopper *s = arg;
    app_free(s->app);
    atomic_store(&s->done, 1);
    return NULL;
}

/* Stopping the service while the identity endpoint holds the first fetch (a hang, and a fetch
 * deadline of 60 s): the stop abandons the fetch instead of waiting it out, as an orchestrator's
 * grace period (30 s on Kubernetes) demands (review of issue 8). */
static void test_keyless_stop_during_hung_fetch(void **state)
{
    struct fx *f = *state;
    struct stopper s = {0};
    pthread_t th;
    int i;

    endpoints_start(f, "3600");
    entra_fault(f, "{\"mode\":\"hang\"}");
    setenv("TOKENVEND_ACS_ATTEMPT_TIMEOUT_MS", "60000", 1);
    setenv("TOKENVEND_ACS_DEADLINE_MS", "60000", 1);
    serve(f);
    unsetenv("TOKENVEND_ACS_ATTEMPT_TIMEOUT_MS");
    unsetenv("TOKENVEND_ACS_DEADLINE_MS");
    for (i = 0; i < 400 && entra_token_requests(f) < 1; i++)
        clock_sleep_ms(50);
    assert_int_equal(entra_token_requests(f), 1); /* the fetch is held by the stand-in */
    s.app = f->app;
    f->app = NULL;
    assert_int_equal(pthread_create(&th, NULL, stop_app, &s), 0);
    /* A generous ceiling, only to fail instead of hanging: far below the fetch's 60 s. */
    for (i = 0; i < 400 && !atomic_load(&s.done); i++)
        clock_sleep_ms(50);
    assert_true(atomic_load(&s.done));
    pthread_join(th, NULL);
    entra_fault(f, NULL);
}

/* Short-lived tokens (6 s: a 1.5 s expiry margin) and an endpoint that starts failing: once the
 * token is past its margin, /readyz is 503 and token requests get 503 + Retry-After, not a call
 * to ACS with a token about to expire; recovery follows the endpoint's. */
static void test_keyless_expiry_with_failing_endpoint(void **state)
{
    struct fx *f = *state;
    struct resp *r = calloc(1, sizeof *r);

    assert_non_null(r);
    endpoints_start(f, "6");
    serve(f);
    wait_ready(f, 200, NULL, r);
    call(f, "POST", "/internal/users/carol/token", r);
    assert_int_equal(r->status, 200);
    entra_fault(f, "{\"mode\":\"error\",\"status\":500}");
    wait_ready(f, 503, "HTTP 500", r);
    call(f, "POST", "/internal/users/carol/token", r);
    assert_no_token_503(r);
    call(f, "GET", "/metrics", r);
    assert_true(metric(r->body, "tokenvend_entra_token_usable") == 0);
    entra_fault(f, NULL);
    wait_ready(f, 200, NULL, r);
    call(f, "POST", "/internal/users/carol/token", r);
    assert_int_equal(r->status, 200);
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keyless_reaches_acs_with_one_fetch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keyless_endpoint_down_at_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keyless_expiry_with_failing_endpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keyless_stop_during_hung_fetch, setup, teardown),
    };
    int rc;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    log_setup(LOGL_ERROR, 2);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
