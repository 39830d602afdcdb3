/* Tests for one Entra token fetch against a stand-in identity endpoint (tests/lib/fake_idp.h):
 * each credential kind sends the right method, form fields, query and headers; the answer's
 * lifetime is read from expires_in or expires_on (number or string); failures (HTTP errors, an
 * endpoint that is down or hangs, malformed answers, a FIFO as the token file) give clear errors
 * without secrets; a managed-identity request bypasses proxies; a fetch can be cancelled. */
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

static void test_client_secret_form(void **state)
{
    (void)state;
    char url[64], err[ENTRA_ERR_MAX];
    struct entra_desc d;
    struct entra_token t;
    fake_idp_base_url(url, sizeof(url));
    struct entra_env e = {.tenant_id = "tenant-1",
                          .client_id = "cid-1",
                          .client_secret = "s3cr3t+/=&",
                          .authority_host = url};
    select_ok(&e, &d);
    assert_int_equal(entra_fetch(&d, 5000, 1000000, &t, err, sizeof(err)), 0);
    assert_string_equal(t.access_token, "eyJ0.e30.sig");
    assert_int_equal(t.expires_at, 1000000 + 3599);
    assert_int_equal(t.lifetime_s, 3599);
    assert_string_equal(fake_idp.method, "POST");
    assert_string_equal(fake_idp.path, "/tenant-1/oauth2/v2.0/token");
    assert_string_equal(fake_idp.body, "grant_type=client_credentials&client_id=cid-1"
                                       "&scope=https%3A%2F%2Fcommunication.azure.com%2F%2F.default"
                                       "&client_secret=s3cr3t%2B%2F%3D%26");
    entra_token_clear(&t);
    assert_int_equal(t.access_token[0], 0);
    entra_desc_clear(&d);
}

static void test_workload_assertion_reread(void **state)
{
    (void)state;
    char url[64], path[] = "/tmp/tv-entra-XXXXXX";
    struct entra_desc d;
    struct entra_token t;
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "assert-one\n", 11), 11);
    close(fd);
    fake_idp_base_url(url, sizeof(url));
    struct entra_env e = {.tenant_id = "tenant-1",
                          .client_id = "cid-1",
                          .federated_token_file = path,
                          .authority_host = url};
    select_ok(&e, &d);
    assert_int_equal(entra_fetch(&d, 5000, 1000, &t, NULL, 0), 0);
    assert_string_equal(fake_idp.body,
                        "grant_type=client_credentials&client_id=cid-1"
                        "&scope=https%3A%2F%2Fcommunication.azure.com%2F%2F.default"
                        "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-"
                        "assertion-type%3Ajwt-bearer&client_assertion=assert-one");
    /* Kubernetes rotates the file: the next fetch sends the new assertion. */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("assert-two", f);
    fclose(f);
    assert_int_equal(entra_fetch(&d, 5000, 1000, &t, NULL, 0), 0);
    assert_non_null(strstr(fake_idp.body, "&client_assertion=assert-two"));
    /* A missing file is a clear local error; nothing is sent. */
    int before = fake_idp.requests;
    char err[ENTRA_ERR_MAX];
    unlink(path);
    assert_int_equal(entra_fetch(&d, 5000, 1000, &t, err, sizeof(err)), TV_ERR_IO);
    assert_non_null(strstr(err, "AZURE_FEDERATED_TOKEN_FILE"));
    assert_int_equal(fake_idp.requests, before);
    entra_desc_clear(&d);
}

static void test_managed_appsvc(void **state)
{
    (void)state;
    char url[96];
    struct entra_desc d;
    struct entra_token t;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/msi/token", fake_idp.port);
    struct entra_env e = {.identity_endpoint = url, .identity_header = "hdr-s3cr3t"};
    select_ok(&e, &d);
    fake_idp_answer(200,
                    "{\"access_token\":\"tok-appsvc\",\"expires_on\":\"1700003600\","
                    "\"resource\":\"https://communication.azure.com/\",\"token_type\":\"Bearer\"}");
    assert_int_equal(entra_fetch(&d, 5000, 1700000000, &t, NULL, 0), 0);
    assert_string_equal(t.access_token, "tok-appsvc");
    assert_int_equal(t.expires_at, 1700003600);
    assert_int_equal(t.lifetime_s, 3600);
    assert_string_equal(fake_idp.method, "GET");
    assert_string_equal(fake_idp.path, "/msi/token");
    assert_string_equal(fake_idp.api_version, "2019-08-01");
    assert_string_equal(fake_idp.resource, "https://communication.azure.com/");
    assert_string_equal(fake_idp.client_id, "");
    assert_string_equal(fake_idp.identity_header, "hdr-s3cr3t");
    entra_desc_clear(&d);
}

static void test_managed_imds(void **state)
{
    (void)state;
    struct entra_desc d;
    struct entra_token t;
    struct entra_env e = {.client_id = "user-assigned-1"};
    select_ok(&e, &d);
    fake_idp_answer(200,
                    "{\"access_token\":\"tok-imds\",\"expires_in\":\"86399\",\"expires_on\":\"1\","
                    "\"token_type\":\"Bearer\"}");
    assert_int_equal(entra_fetch(&d, 5000, 50, &t, NULL, 0), 0);
    assert_string_equal(t.access_token, "tok-imds");
    assert_int_equal(t.expires_at, 50 + 86399);
    assert_string_equal(fake_idp.method, "GET");
    assert_string_equal(fake_idp.path, "/metadata/identity/oauth2/token");
    assert_string_equal(fake_idp.api_version, "2018-02-01");
    assert_string_equal(fake_idp.resource, "https://communication.azure.com/");
    assert_string_equal(fake_idp.client_id, "user-assigned-1");
    assert_string_equal(fake_idp.metadata, "true");
    entra_desc_clear(&d);
}

static void test_http_error_is_clear_and_secret_free(void **state)
{
    (void)state;
    char url[64], err[ENTRA_ERR_MAX];
    struct entra_desc d;
    struct entra_token t;
    fake_idp_base_url(url, sizeof(url));
    struct entra_env e = {.tenant_id = "tenant-1",
                          .client_id = "cid-1",
                          .client_secret = "s3cr3t",
                          .authority_host = url};
    select_ok(&e, &d);
    fake_idp_answer(401, "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: bad "
                         "secret s3cr3t\"}");
    assert_int_equal(entra_fetch(&d, 5000, 0, &t, err, sizeof(err)), TV_ERR_UNAVAILABLE);
    assert_string_equal(err, "identity endpoint answered HTTP 401: invalid_client");
    assert_null(strstr(err, "s3cr3t"));
    assert_int_equal(t.access_token[0], 0);
    entra_desc_clear(&d);
}

static void test_malformed_answers(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "not json",
        "[]",
        "{\"expires_in\":3599}",
        "{\"access_token\":\"\",\"expires_in\":3599}",
        "{\"access_token\":\"a b\",\"expires_in\":3599}",
        "{\"access_token\":\"t\",\"expires_in\":3599,\"token_type\":\"pop\"}",
        "{\"access_token\":\"t\"}",
        "{\"access_token\":\"t\",\"expires_in\":\"12x\"}",
        "{\"access_token\":\"t\",\"expires_in\":0}",
        "{\"access_token\":\"t\",\"expires_in\":-5}",
        "{\"access_token\":\"t\",\"expires_in\":99999999}",
        "{\"access_token\":\"t\",\"expires_in\":3599,\"access_token\":\"u\"}",
        "{\"access_token\":\"t\",\"expires_in\":3599} trailing",
    };
    struct entra_desc d;
    struct entra_token t;
    char err[ENTRA_ERR_MAX];
    struct entra_env e = {0};
    select_ok(&e, &d);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        fake_idp_answer(200, bad[i]);
        assert_int_equal(entra_fetch(&d, 5000, 0, &t, err, sizeof(err)), TV_ERR_UPSTREAM_PROTOCOL);
        assert_non_null(strstr(err, "identity endpoint"));
        assert_int_equal(t.access_token[0], 0);
    }
    entra_desc_clear(&d);
}

static void test_endpoint_down(void **state)
{
    (void)state;
    char url[64], err[ENTRA_ERR_MAX];
    struct entra_desc d;
    struct entra_token t;
    /* A port that was just free and has no listener: the connection is refused. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    close(s);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(a.sin_port));
    struct entra_env e = {0};
    assert_int_equal(entra_select(&e, url, &d, NULL, 0), 0);
    assert_int_equal(entra_fetch(&d, 5000, 0, &t, err, sizeof(err)), TV_ERR_UNAVAILABLE);
    assert_non_null(strstr(err, "identity endpoint: "));
    entra_desc_clear(&d);
}

static void test_endpoint_hangs(void **state)
{
    (void)state;
    char err[ENTRA_ERR_MAX];
    struct entra_desc d;
    struct entra_token t;
    struct entra_env e = {0};
    select_ok(&e, &d);
    pthread_mutex_lock(&fake_idp.mu);
    fake_idp.delay_ms = 3000;
    pthread_mutex_unlock(&fake_idp.mu);
    /* The deadline bounds the fetch: it gives up with a timeout instead of waiting 3 s. */
    assert_int_equal(entra_fetch(&d, 200, 0, &t, err, sizeof(err)), TV_ERR_UNAVAILABLE);
    assert_non_null(strstr(err, "(curl 28)"));
    entra_desc_clear(&d);
}

/* A FIFO (or any non-regular file) as the federated token file is refused at once: reading it
 * would block the fetch past its deadline. */
static void test_workload_fifo_refused(void **state)
{
    (void)state;
    char url[64], path[] = "/tmp/tv-entra-fifo-XXXXXX", err[ENTRA_ERR_MAX];
    struct entra_desc d;
    struct entra_token t;
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    assert_int_equal(mkfifo(path, 0600), 0);
    fake_idp_base_url(url, sizeof(url));
    struct entra_env e = {.tenant_id = "tenant-1",
                          .client_id = "cid-1",
                          .federated_token_file = path,
                          .authority_host = url};
    select_ok(&e, &d);
    assert_int_equal(entra_fetch(&d, 5000, 1000, &t, err, sizeof(err)), TV_ERR_IO);
    assert_non_null(strstr(err, "regular file"));
    assert_int_equal(fake_idp.requests, 0);
    unlink(path);
    entra_desc_clear(&d);
}

/* http_proxy does not carry a managed-identity request (the identity header) to the proxy. */
static void test_managed_identity_bypasses_proxy(void **state)
{
    (void)state;
    char url[64];
    struct entra_desc d;
    struct entra_token t;
    fake_idp_base_url(url, sizeof(url));
    strcat(url, "/msi/token");
    struct entra_env e = {.identity_endpoint = url, .identity_header = "hdr-s3cr3t"};
    select_ok(&e, &d);
    /* A proxy that does not exist: going through it would fail the fetch. */
    setenv("http_proxy", "http://127.0.0.1:9", 1);
    setenv("HTTP_PROXY", "http://127.0.0.1:9", 1);
    setenv("NO_PROXY", "", 1);
    fake_idp_answer(200, "{\"access_token\":\"tok-msi\",\"expires_on\":\"2000\"}");
    int rc = entra_fetch(&d, 5000, 1000, &t, NULL, 0);
    unsetenv("http_proxy");
    unsetenv("HTTP_PROXY");
    unsetenv("NO_PROXY");
    assert_int_equal(rc, 0);
    assert_string_equal(fake_idp.identity_header, "hdr-s3cr3t");
    entra_token_clear(&t);
    entra_desc_clear(&d);
}

struct cancel_arg {
    atomic_int *flag;
};

static void *cancel_soon(void *arg)
{
    struct cancel_arg *a = arg;
    usleep(300 * 1000);
    atomic_store(a->flag, 1);
    return NULL;
}

/* A stop ends a fetch to a hung endpoint well before its deadline. */
static void test_fetch_cancel(void **state)
{
    (void)state;
    char err[ENTRA_ERR_MAX];
    struct entra_desc d;
    struct entra_token t;
    struct entra_env e = {0};
    atomic_int flag = 0;
    struct cancel_arg a = {.flag = &flag};
    pthread_t th;
    select_ok(&e, &d);
    pthread_mutex_lock(&fake_idp.mu);
    fake_idp.delay_ms = 4000;
    pthread_mutex_unlock(&fake_idp.mu);
    assert_int_equal(pthread_create(&th, NULL, cancel_soon, &a), 0);
    /* Without the cancel this waits for the answer 4 s later and succeeds; with it, it ends
     * when the flag is set, aborted by the callback (curl 42). */
    assert_int_equal(entra_fetch_cancelable(&d, 60000, 0, &flag, &t, err, sizeof(err)),
                     TV_ERR_UNAVAILABLE);
    assert_non_null(strstr(err, "(curl 42)"));
    pthread_join(th, NULL);
    entra_desc_clear(&d);
}

int main(void)
{
    curlx_init();
    log_setup(LOGL_ERROR, 2); /* the cache's info lines are noise here; one test reads them */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_client_secret_form, setup, teardown),
        cmocka_unit_test_setup_teardown(test_workload_assertion_reread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_managed_appsvc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_managed_imds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_error_is_clear_and_secret_free, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_endpoint_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_endpoint_hangs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_workload_fifo_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_managed_identity_bypasses_proxy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_cancel, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
