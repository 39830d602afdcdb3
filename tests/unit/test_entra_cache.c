/* Tests for the Entra token cache and the keyless ACS client against a stand-in identity endpoint
 * (tests/lib/fake_idp.h): 200 concurrent readers cause one fetch, a token near expiry is replaced
 * in the background, the refresh lead and expiry margin, an expired token with a failing
 * endpoint gives a clear error with a retry hint, the log never holds a secret, and the ACS
 * client sends the bearer token without the engine ever waiting for the first one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/stat.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <pthread.h>

#include "acs/client.h"
#include "acs/entra.h"
#include "core/curlx.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "fake_idp.h"

static int setup(void **state)
{
    (void)state;
    return fake_idp_start();
}

static int teardown(void **state)
{
    (void)state;
    fake_idp_stop();
    return 0;
}

static void select_ok(const struct entra_env *e, struct entra_desc *d)
{
    char url[64];
    fake_idp_base_url(url, sizeof(url));
    assert_int_equal(entra_select(e, url, d, NULL, 0), 0);
}

static const struct entra_cache_opts test_opts = {
    .fetch_timeout_ms = 5000, .backoff_base_ms = 50, .backoff_max_ms = 200, .first_wait_ms = 10000};

struct reader {
    pthread_t t;
    struct entra_cache *c;
    int rc;
    char tok[64];
};

static void *read_once(void *arg)
{
    struct reader *r = arg;
    r->rc = entra_token_get(r->c, r->tok, sizeof(r->tok), NULL, NULL, 0);
    return NULL;
}

static void test_cache_one_fetch_for_200_readers(void **state)
{
    (void)state;
    enum { N = 200 };
    static struct reader readers[N];
    struct entra_desc d;
    struct entra_cache *c;
    struct entra_cache_stats st;
    struct entra_env e = {0};
    select_ok(&e, &d);
    fake_idp_delay(300); /* the readers arrive while the first fetch is under way */
    assert_int_equal(entra_cache_start(&d, &test_opts, &c), 0);
    entra_desc_clear(&d); /* the cache keeps its own copy */
    for (int i = 0; i < N; i++) {
        readers[i].c = c;
        assert_int_equal(pthread_create(&readers[i].t, NULL, read_once, &readers[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(readers[i].t, NULL);
        assert_int_equal(readers[i].rc, 0);
        assert_string_equal(readers[i].tok, "eyJ0.e30.sig");
    }
    entra_cache_stats(c, &st);
    assert_int_equal(st.fetches, 1);
    assert_int_equal(fake_idp_requests(), 1);
    assert_true(st.have_token);
    entra_cache_stop(c);
}

static void test_cache_refreshes_near_expiry(void **state)
{
    (void)state;
    struct entra_desc d;
    struct entra_cache *c;
    char tok[64];
    struct entra_env e = {0};
    select_ok(&e, &d);
    /* Two seconds of life: refreshed when a tenth (0.2 s) remains. */
    fake_idp_answer(200, "{\"access_token\":\"tok-1\",\"expires_in\":2}");
    assert_int_equal(entra_cache_start(&d, &test_opts, &c), 0);
    assert_int_equal(entra_token_get(c, tok, sizeof(tok), NULL, NULL, 0), 0);
    assert_string_equal(tok, "tok-1");
    fake_idp_answer(200, "{\"access_token\":\"tok-2\",\"expires_in\":3600}");
    /* Nobody asks: the background task fetches on its own. */
    for (int i = 0; i < 200 && fake_idp_requests() < 2; i++)
        clock_sleep_ms(50);
    assert_int_equal(fake_idp_requests(), 2);
    /* The fake counts the request when it arrives; the cache stores the answer a moment later
     * (a loaded machine, a sanitizer build): wait for it, boundedly. */
    for (int i = 0; i < 100; i++) {
        assert_int_equal(entra_token_get(c, tok, sizeof(tok), NULL, NULL, 0), 0);
        if (strcmp(tok, "tok-2") == 0)
            break;
        clock_sleep_ms(50);
    }
    assert_string_equal(tok, "tok-2");
    /* A long-lived token is not fetched again soon. */
    clock_sleep_ms(300);
    assert_int_equal(fake_idp_requests(), 2);
    entra_cache_stop(c);
    entra_desc_clear(&d);
}

/* The next refresh of a held token: 5 minutes before the expiry margin for an hour's token, a
 * tenth of the life for a managed identity's 24 h one (review of issue 8: 5 minutes of retries
 * were all an outage of the identity endpoint could take). */
static void test_cache_refresh_lead(void **state)
{
    (void)state;
    /* An attempt timeout longer than 30 s widens the expiry margin to it: a token handed out
     * outlives the attempt that carries it. */
    static const struct entra_cache_opts slow_opts = {.fetch_timeout_ms = 60000,
                                                      .backoff_base_ms = 50,
                                                      .backoff_max_ms = 200,
                                                      .first_wait_ms = 10000};
    static const struct {
        const char *answer;
        const struct entra_cache_opts *opts;
        long lo, hi; /* seconds until the next fetch */
    } cases[] = {
        {"{\"access_token\":\"tok-h\",\"expires_in\":3600}", &test_opts, 3260, 3270},
        {"{\"access_token\":\"tok-d\",\"expires_in\":86400}", &test_opts, 77720, 77730},
        {"{\"access_token\":\"tok-s\",\"expires_in\":3600}", &slow_opts, 3230, 3240},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct entra_desc d;
        struct entra_cache *c;
        struct entra_cache_stats st;
        char tok[64];
        struct entra_env e = {0};
        select_ok(&e, &d);
        fake_idp_answer(200, cases[i].answer);
        assert_int_equal(entra_cache_start(&d, cases[i].opts, &c), 0);
        assert_int_equal(entra_token_get(c, tok, sizeof(tok), NULL, NULL, 0), 0);
        entra_cache_stats(c, &st);
        assert_in_range(st.retry_after_s, cases[i].lo, cases[i].hi);
        entra_cache_stop(c);
        entra_desc_clear(&d);
    }
}

static void test_cache_expired_and_failing(void **state)
{
    (void)state;
    struct entra_desc d;
    struct entra_cache *c;
    struct entra_cache_stats st = {0};
    char tok[64], err[ENTRA_ERR_MAX];
    long retry = 0;
    struct entra_env e = {0};
    select_ok(&e, &d);
    fake_idp_answer(200, "{\"access_token\":\"tok-short\",\"expires_in\":1}");
    assert_int_equal(entra_cache_start(&d, &test_opts, &c), 0);
    assert_int_equal(entra_token_get(c, tok, sizeof(tok), NULL, NULL, 0), 0);
    fake_idp_answer(500, "{\"error\":\"temporarily_unavailable\"}");
    for (int i = 0; i < 200; i++) {
        entra_cache_stats(c, &st);
        if (!st.have_token && st.failures >= 2)
            break;
        clock_sleep_ms(50);
    }
    assert_false(st.have_token);
    assert_true(st.failures >= 2); /* retried with backoff */
    assert_int_equal(entra_token_get(c, tok, sizeof(tok), &retry, err, sizeof(err)),
                     TV_ERR_UNAVAILABLE);
    assert_true(retry >= 1);
    assert_string_equal(err, "no Entra token for ACS: identity endpoint answered HTTP 500: "
                             "temporarily_unavailable");
    /* The endpoint recovers: so does the cache, without a restart. */
    fake_idp_answer(200, "{\"access_token\":\"tok-back\",\"expires_in\":3600}");
    for (int i = 0; i < 200; i++) {
        if (entra_token_get(c, tok, sizeof(tok), NULL, NULL, 0) == 0)
            break;
        clock_sleep_ms(50);
    }
    assert_string_equal(tok, "tok-back");
    entra_cache_stop(c);
    entra_desc_clear(&d);
}

/* A token whose life is mostly gone when it arrives (2 s, 1.7 s of it spent on the way) falls
 * inside its expiry margin (a quarter of a life under 2 minutes): never handed out, counted as a
 * failed fetch and retried. */
static void test_cache_token_inside_margin(void **state)
{
    (void)state;
    struct entra_desc d;
    struct entra_cache *c;
    struct entra_cache_stats st = {0};
    char tok[64], err[ENTRA_ERR_MAX];
    long retry = 0;
    struct entra_env e = {0};
    select_ok(&e, &d);
    fake_idp_answer(200, "{\"access_token\":\"tok-late\",\"expires_in\":2}");
    fake_idp_delay(1700);
    assert_int_equal(entra_cache_start(&d, &test_opts, &c), 0);
    assert_int_equal(entra_token_get(c, tok, sizeof(tok), &retry, err, sizeof(err)),
                     TV_ERR_UNAVAILABLE);
    assert_non_null(strstr(err, "too little life left"));
    assert_true(retry >= 1);
    entra_cache_stats(c, &st);
    assert_true(st.failures >= 1);
    assert_false(st.have_token);
    fake_idp_delay(0);
    fake_idp_answer(200, "{\"access_token\":\"tok-ok\",\"expires_in\":3600}");
    for (int i = 0; i < 400 && entra_token_get(c, tok, sizeof(tok), NULL, NULL, 0) != 0; i++)
        clock_sleep_ms(50);
    assert_string_equal(tok, "tok-ok");
    entra_cache_stats(c, &st);
    assert_true(st.have_token);
    assert_true(st.expires_in_s > 3500);
    entra_cache_stop(c);
    entra_desc_clear(&d);
}

static void test_cache_endpoint_down_no_hang(void **state)
{
    (void)state;
    char url[64], tok[64], err[ENTRA_ERR_MAX];
    struct entra_desc d;
    struct entra_cache *c;
    long retry = 0;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    close(s);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(a.sin_port));
    struct entra_env e = {0};
    assert_int_equal(entra_select(&e, url, &d, NULL, 0), 0);
    assert_int_equal(entra_cache_start(&d, &test_opts, &c), 0);
    /* The first reader waits for the first fetch only, which fails at once: a clear error. */
    assert_int_equal(entra_token_get(c, tok, sizeof(tok), &retry, err, sizeof(err)),
                     TV_ERR_UNAVAILABLE);
    assert_non_null(strstr(err, "no Entra token for ACS: identity endpoint: "));
    assert_true(retry >= 1);
    entra_cache_stop(c);
    entra_desc_clear(&d);
}

static void test_cache_log_has_no_secret(void **state)
{
    (void)state;
    char url[64], tok[64], logpath[] = "/tmp/tv-entra-log-XXXXXX", text[16384];
    struct entra_desc d;
    struct entra_cache *c;
    int fd = mkstemp(logpath);
    assert_true(fd >= 0);
    log_setup(LOGL_DEBUG, fd);
    fake_idp_base_url(url, sizeof(url));
    struct entra_env e = {.tenant_id = "tenant-1",
                          .client_id = "cid-1",
                          .client_secret = "S3CR3T-in-env",
                          .authority_host = url};
    select_ok(&e, &d);
    fake_idp_answer(401, "{\"error\":\"invalid_client\",\"error_description\":\"S3CR3T-in-env\"}");
    assert_int_equal(entra_cache_start(&d, &test_opts, &c), 0);
    assert_int_equal(entra_token_get(c, tok, sizeof(tok), NULL, NULL, 0), TV_ERR_UNAVAILABLE);
    fake_idp_answer(200, "{\"access_token\":\"TOKEN-VALUE\",\"expires_in\":3600}");
    for (int i = 0; i < 200; i++) {
        if (entra_token_get(c, tok, sizeof(tok), NULL, NULL, 0) == 0)
            break;
        clock_sleep_ms(50);
    }
    assert_string_equal(tok, "TOKEN-VALUE");
    entra_cache_stop(c);
    entra_desc_clear(&d);
    log_setup(LOGL_ERROR, 2);
    ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
    close(fd);
    unlink(logpath);
    assert_true(n > 0);
    text[n] = '\0';
    assert_non_null(strstr(text, "credential=client_secret"));
    assert_non_null(strstr(text, "client_secret=***"));
    assert_non_null(strstr(text, "invalid_client"));
    assert_null(strstr(text, "S3CR3T"));
    assert_null(strstr(text, "TOKEN-VALUE"));
}

/* Keyless mode: the ACS client sends the cached Entra token as a bearer token, no HMAC. */
static void test_acs_client_bearer(void **state)
{
    (void)state;
    char url[64];
    struct entra_desc d;
    struct entra_cache *cache;
    struct acs_client *client;
    struct acs_result res = {0};
    struct acs_request req = {.op = ACS_OP_CREATE};
    struct entra_env e = {0};
    select_ok(&e, &d);
    fake_idp_base_url(url, sizeof(url));
    assert_int_equal(entra_cache_start(&d, &test_opts, &cache), 0);
    struct acs_client_opts o = {
        .connection_string = "", .endpoint = url, .entra = cache, .max_retries = 0};
    assert_int_equal(acs_client_new(&o, &client), 0);
    assert_string_equal(acs_client_resource(client), url + strlen("http://"));
    assert_int_equal(acs_client_call_sync(client, &req, &res), 0);
    assert_string_equal(res.identity_id, "8:acs:r_u1");
    acs_result_release(&res);
    pthread_mutex_lock(&fake_idp.mu);
    assert_int_equal(fake_idp.acs_requests, 1);
    assert_string_equal(fake_idp.authorization, "Bearer eyJ0.e30.sig");
    assert_string_equal(fake_idp.content_sha, ""); /* no HMAC signature */
    pthread_mutex_unlock(&fake_idp.mu);
    acs_client_free(client);
    entra_cache_stop(cache);
    /* An endpoint is required, and a connection string still wins over the keyless mode. */
    o.endpoint = NULL;
    o.entra = (struct entra_cache *)&o; /* never dereferenced: rejected first */
    assert_int_equal(acs_client_new(&o, &client), TV_ERR_CONFIG);
    entra_desc_clear(&d);
}

struct parked_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct entra_cache *cache;
    int done, rc;
    long retry, fetches_then;
};

static void parked_done(void *arg, struct acs_result *res)
{
    struct parked_wait *w = arg;
    struct entra_cache_stats st = {0};
    entra_cache_stats(w->cache, &st);
    pthread_mutex_lock(&w->mu);
    w->rc = res->rc;
    w->retry = res->retry_after_s;
    w->fetches_then = st.fetches;
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    acs_result_release(res);
}

/* While the very first token is being fetched the engine does not wait for it: a call whose
 * deadline (300 ms) comes first ends with 503's code and a retry hint before the fetch ends,
 * and a call with time to spare goes on once the token arrives. */
static void test_acs_client_first_token_does_not_hold_engine(void **state)
{
    (void)state;
    char url[64];
    struct entra_desc d;
    struct acs_client *client, *patient;
    struct acs_result res = {0};
    struct acs_request req = {.op = ACS_OP_CREATE};
    struct parked_wait w = {.done = 0};
    struct entra_env e = {0};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    select_ok(&e, &d);
    fake_idp_base_url(url, sizeof(url));
    fake_idp_delay(3000);
    assert_int_equal(entra_cache_start(&d, &test_opts, &w.cache), 0);
    struct acs_client_opts o = {.connection_string = "",
                                .endpoint = url,
                                .entra = w.cache,
                                .max_retries = 0,
                                .deadline_ms = 300};
    assert_int_equal(acs_client_new(&o, &client), 0);
    o.deadline_ms = 20000;
    assert_int_equal(acs_client_new(&o, &patient), 0);
    assert_int_equal(acs_client_submit(client, &req, parked_done, &w), 0);
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu); /* the fetch ends within its 5 s deadline anyway */
    pthread_mutex_unlock(&w.mu);
    assert_int_equal(w.rc, TV_ERR_UNAVAILABLE);
    assert_int_equal(w.fetches_then, 0); /* answered before the first fetch ended */
    assert_true(w.retry >= 1);
    /* Closing a client with a call waiting for the token does not wait for the fetch either. */
    struct parked_wait w2 = {.cache = w.cache};
    struct acs_client *doomed;
    pthread_mutex_init(&w2.mu, NULL);
    pthread_cond_init(&w2.cv, NULL);
    assert_int_equal(acs_client_new(&o, &doomed), 0);
    assert_int_equal(acs_client_submit(doomed, &req, parked_done, &w2), 0);
    acs_client_free(doomed);
    assert_true(w2.done);
    assert_int_equal(w2.rc, TV_ERR_SHUTDOWN);
    assert_int_equal(w2.fetches_then, 0);
    pthread_cond_destroy(&w2.cv);
    pthread_mutex_destroy(&w2.mu);
    assert_int_equal(acs_client_call_sync(patient, &req, &res), 0);
    assert_string_equal(res.identity_id, "8:acs:r_u1");
    acs_result_release(&res);
    acs_client_free(client);
    acs_client_free(patient);
    entra_cache_stop(w.cache);
    entra_desc_clear(&d);
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
}

/* Keyless mode with the identity endpoint down: the ACS call fails at once with 503's code, the
 * reason and a retry hint, and nothing reaches ACS. */
static void test_acs_client_no_token(void **state)
{
    (void)state;
    char url[64], dead[64];
    struct entra_desc d;
    struct entra_cache *cache;
    struct acs_client *client;
    struct acs_result res = {0};
    struct acs_request req = {.op = ACS_OP_CREATE};
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    close(s);
    snprintf(dead, sizeof(dead), "http://127.0.0.1:%d", ntohs(a.sin_port));
    struct entra_env e = {0};
    assert_int_equal(entra_select(&e, dead, &d, NULL, 0), 0);
    assert_int_equal(entra_cache_start(&d, &test_opts, &cache), 0);
    fake_idp_base_url(url, sizeof(url));
    struct acs_client_opts o = {
        .connection_string = "", .endpoint = url, .entra = cache, .max_retries = 0};
    assert_int_equal(acs_client_new(&o, &client), 0);
    assert_int_equal(acs_client_call_sync(client, &req, &res), TV_ERR_UNAVAILABLE);
    assert_non_null(strstr(res.message, "no Entra token for ACS: identity endpoint"));
    assert_true(res.retry_after_s >= 1);
    acs_result_release(&res);
    assert_int_equal(fake_idp.acs_requests, 0);
    acs_client_free(client);
    entra_cache_stop(cache);
    entra_desc_clear(&d);
}

/* The mode comes from the configuration: a connection string wins; an endpoint alone selects the
 * keyless mode with the credential from the process environment. */
static void test_cache_from_config(void **state)
{
    (void)state;
    char url[64], tok[64];
    struct entra_cache *cache = (struct entra_cache *)1;
    struct config cfg = {0};
    char connstr[] = "endpoint=https://x.communication.azure.com/;accesskey=AA==";
    char endpoint[] = "https://x.communication.azure.com", empty[] = "";
    fake_idp_base_url(url, sizeof(url));
    cfg.acs_connection_string = connstr;
    cfg.acs_endpoint = endpoint;
    cfg.imds_endpoint = url;
    cfg.acs_attempt_timeout_ms = 5000;
    assert_int_equal(entra_cache_from_config(&cfg, &cache), 0);
    assert_null(cache);
    cfg.acs_connection_string = empty;
    cfg.acs_endpoint = empty;
    assert_int_equal(entra_cache_from_config(&cfg, &cache), 0);
    assert_null(cache);
    cfg.acs_endpoint = endpoint;
    /* No AZURE_* / IDENTITY_* variables in the test's environment: IMDS, here the fake. */
    static const char *const vars[] = {"AZURE_TENANT_ID",     "AZURE_CLIENT_ID",
                                       "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE",
                                       "IDENTITY_ENDPOINT",   "IDENTITY_HEADER"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
    assert_int_equal(entra_cache_from_config(&cfg, &cache), 0);
    assert_non_null(cache);
    assert_int_equal(entra_token_get(cache, tok, sizeof(tok), NULL, NULL, 0), 0);
    assert_string_equal(tok, "eyJ0.e30.sig");
    assert_string_equal(fake_idp.metadata, "true");
    entra_cache_stop(cache);
    /* A malformed variable is a configuration error, not a silent fallback. */
    setenv("AZURE_TENANT_ID", "a/b", 1);
    setenv("AZURE_CLIENT_ID", "c", 1);
    setenv("AZURE_CLIENT_SECRET", "s", 1);
    assert_int_equal(entra_cache_from_config(&cfg, &cache), TV_ERR_CONFIG);
    assert_null(cache);
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
}

int main(void)
{
    curlx_init();
    log_setup(LOGL_ERROR, 2); /* the cache's info lines are noise here; one test reads them */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cache_one_fetch_for_200_readers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_refreshes_near_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_refresh_lead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_expired_and_failing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_token_inside_margin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_endpoint_down_no_hang, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_log_has_no_secret, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acs_client_bearer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acs_client_first_token_does_not_hold_engine, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_acs_client_no_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_from_config, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
