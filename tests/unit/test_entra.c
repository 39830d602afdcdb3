/* Unit tests for the Entra credential selection: each kind's request (URL, form fields, headers),
 * the precedence between kinds, malformed variables, and that descriptions never show a secret. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "acs/entra.h"
#include "core/err.h"

static const char *field(const struct entra_field *arr, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(arr[i].name, name) == 0)
            return arr[i].value;
    }
    return NULL;
}

static int field_secret(const struct entra_field *arr, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(arr[i].name, name) == 0)
            return arr[i].secret;
    }
    return -1;
}

static const struct entra_env all_set = {
    .tenant_id = "72f988bf-86f1-41af-91ab-2d7cd011db47",
    .client_id = "cid-1",
    .client_secret = "s3cr3t-value",
    .federated_token_file = "/var/run/secrets/azure/tokens/azure-identity-token",
    .authority_host = NULL,
    .identity_endpoint = "http://localhost:42356/msi/token",
    .identity_header = "hdr-s3cr3t",
};

static void test_client_secret(void **state)
{
    (void)state;
    struct entra_desc d;
    char err[128];
    assert_int_equal(entra_select(&all_set, NULL, &d, err, sizeof(err)), 0);
    assert_int_equal(d.kind, ENTRA_CLIENT_SECRET);
    assert_true(d.post);
    assert_string_equal(d.url, "https://login.microsoftonline.com/"
                               "72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token");
    assert_string_equal(field(d.fields, d.n_fields, "grant_type"), "client_credentials");
    assert_string_equal(field(d.fields, d.n_fields, "client_id"), "cid-1");
    assert_string_equal(field(d.fields, d.n_fields, "scope"),
                        "https://communication.azure.com//.default");
    assert_string_equal(field(d.fields, d.n_fields, "client_secret"), "s3cr3t-value");
    assert_int_equal(field_secret(d.fields, d.n_fields, "client_secret"), 1);
    assert_null(field(d.fields, d.n_fields, "client_assertion_type"));
    assert_int_equal(d.n_headers, 0);
    assert_int_equal(d.expires_on, 0);
    assert_string_equal(d.assertion_file, "");
    entra_desc_clear(&d);
    assert_int_equal(d.fields[0].value[0], 0);
}

static void test_authority_host(void **state)
{
    (void)state;
    struct entra_desc d;
    struct entra_env e = all_set;
    e.authority_host = "https://login.microsoftonline.us/";
    assert_int_equal(entra_select(&e, NULL, &d, NULL, 0), 0);
    assert_string_equal(d.url, "https://login.microsoftonline.us/"
                               "72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token");
    /* Loopback http is accepted (tests, the emulator's stand-in)... */
    e.authority_host = "http://127.0.0.1:4567";
    assert_int_equal(entra_select(&e, NULL, &d, NULL, 0), 0);
    assert_string_equal(d.url, "http://127.0.0.1:4567/"
                               "72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token");
    /* ...plain http elsewhere is not: the secret would travel in clear. */
    char err[160];
    e.authority_host = "http://login.example.com";
    assert_int_equal(entra_select(&e, NULL, &d, err, sizeof(err)), TV_ERR_CONFIG);
    assert_non_null(strstr(err, "AZURE_AUTHORITY_HOST"));
    assert_int_equal(d.kind, ENTRA_NONE);
    entra_desc_clear(&d);
}

static void test_workload_identity(void **state)
{
    (void)state;
    struct entra_desc d;
    struct entra_env e = all_set;
    e.client_secret = "";
    assert_int_equal(entra_select(&e, NULL, &d, NULL, 0), 0);
    assert_int_equal(d.kind, ENTRA_WORKLOAD_IDENTITY);
    assert_true(d.post);
    assert_string_equal(d.url, "https://login.microsoftonline.com/"
                               "72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token");
    assert_string_equal(field(d.fields, d.n_fields, "grant_type"), "client_credentials");
    assert_string_equal(field(d.fields, d.n_fields, "client_id"), "cid-1");
    assert_string_equal(field(d.fields, d.n_fields, "scope"),
                        "https://communication.azure.com//.default");
    assert_string_equal(field(d.fields, d.n_fields, "client_assertion_type"),
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    assert_null(field(d.fields, d.n_fields, "client_secret"));
    /* The assertion itself is read from the file at each fetch, never kept here. */
    assert_null(field(d.fields, d.n_fields, "client_assertion"));
    assert_string_equal(d.assertion_file, "/var/run/secrets/azure/tokens/azure-identity-token");
    entra_desc_clear(&d);
}

static void test_managed_appsvc(void **state)
{
    (void)state;
    struct entra_desc d;
    struct entra_env e = all_set;
    e.client_secret = NULL;
    e.federated_token_file = NULL;
    e.tenant_id = NULL;
    assert_int_equal(entra_select(&e, NULL, &d, NULL, 0), 0);
    assert_int_equal(d.kind, ENTRA_MANAGED_APPSVC);
    assert_false(d.post);
    /* AZURE_CLIENT_ID selects a user-assigned identity, as DefaultAzureCredential does. */
    assert_string_equal(d.url, "http://localhost:42356/msi/token?api-version=2019-08-01"
                               "&resource=https%3A%2F%2Fcommunication.azure.com%2F"
                               "&client_id=cid-1");
    assert_int_equal(d.n_fields, 0);
    assert_string_equal(field(d.headers, d.n_headers, "X-IDENTITY-HEADER"), "hdr-s3cr3t");
    assert_int_equal(field_secret(d.headers, d.n_headers, "X-IDENTITY-HEADER"), 1);
    assert_int_equal(d.expires_on, 1);
    /* System-assigned: no client_id. */
    e.client_id = "";
    assert_int_equal(entra_select(&e, NULL, &d, NULL, 0), 0);
    assert_string_equal(d.url, "http://localhost:42356/msi/token?api-version=2019-08-01"
                               "&resource=https%3A%2F%2Fcommunication.azure.com%2F");
    entra_desc_clear(&d);
}

static void test_managed_imds(void **state)
{
    (void)state;
    struct entra_desc d;
    struct entra_env e = {0};
    assert_int_equal(entra_select(&e, NULL, &d, NULL, 0), 0);
    assert_int_equal(d.kind, ENTRA_MANAGED_IMDS);
    assert_false(d.post);
    assert_string_equal(d.url, "http://169.254.169.254/metadata/identity/oauth2/token"
                               "?api-version=2018-02-01"
                               "&resource=https%3A%2F%2Fcommunication.azure.com%2F");
    assert_string_equal(field(d.headers, d.n_headers, "Metadata"), "true");
    assert_int_equal(d.expires_on, 0);
    /* The address is a setting (tests point it at loopback). */
    e.client_id = "a b&c";
    assert_int_equal(entra_select(&e, "http://127.0.0.1:9999/", &d, NULL, 0), 0);
    assert_string_equal(d.url, "http://127.0.0.1:9999/metadata/identity/oauth2/token"
                               "?api-version=2018-02-01"
                               "&resource=https%3A%2F%2Fcommunication.azure.com%2F"
                               "&client_id=a%20b%26c");
    entra_desc_clear(&d);
}

/* First match wins: each kind needs all of its variables, else the next one is tried. */
static void test_precedence(void **state)
{
    (void)state;
    struct entra_desc d;
    struct entra_env e = all_set;
    assert_int_equal(entra_select(&e, NULL, &d, NULL, 0), 0);
    assert_int_equal(d.kind, ENTRA_CLIENT_SECRET);
    e.tenant_id = NULL; /* neither Entra kind without a tenant */
    assert_int_equal(entra_select(&e, NULL, &d, NULL, 0), 0);
    assert_int_equal(d.kind, ENTRA_MANAGED_APPSVC);
    e = all_set;
    e.client_id = ""; /* nor without a client id */
    assert_int_equal(entra_select(&e, NULL, &d, NULL, 0), 0);
    assert_int_equal(d.kind, ENTRA_MANAGED_APPSVC);
    e = all_set;
    e.client_secret = NULL;
    e.federated_token_file = NULL;
    e.identity_header = NULL; /* the App Service endpoint needs its header */
    assert_int_equal(entra_select(&e, NULL, &d, NULL, 0), 0);
    assert_int_equal(d.kind, ENTRA_MANAGED_IMDS);
    e.identity_header = "h";
    e.identity_endpoint = NULL;
    assert_int_equal(entra_select(&e, NULL, &d, NULL, 0), 0);
    assert_int_equal(d.kind, ENTRA_MANAGED_IMDS);
    e = all_set;
    e.client_secret = NULL;
    e.identity_endpoint = NULL;
    assert_int_equal(entra_select(&e, NULL, &d, NULL, 0), 0);
    assert_int_equal(d.kind, ENTRA_WORKLOAD_IDENTITY);
    entra_desc_clear(&d);
}

static void test_malformed(void **state)
{
    (void)state;
    struct entra_desc d;
    char err[160];
    struct entra_env e = all_set;
    static const char *const bad_tenants[] = {"a/b", "..", "x?y", "t#", "t%2F", "a b", ".x"};
    for (size_t i = 0; i < sizeof(bad_tenants) / sizeof(bad_tenants[0]); i++) {
        e.tenant_id = bad_tenants[i];
        assert_int_equal(entra_select(&e, NULL, &d, err, sizeof(err)), TV_ERR_CONFIG);
        assert_non_null(strstr(err, "AZURE_TENANT_ID"));
        assert_int_equal(d.kind, ENTRA_NONE);
    }
    static char longv[ENTRA_VALUE_MAX + 8];
    memset(longv, 'a', sizeof(longv) - 1);
    e = all_set;
    e.client_secret = longv;
    assert_int_equal(entra_select(&e, NULL, &d, err, sizeof(err)), TV_ERR_CONFIG);
    /* The message names the variable kind, never the value. */
    assert_null(strstr(err, "aaaa"));
    e = all_set;
    e.client_secret = NULL;
    e.federated_token_file = NULL;
    e.identity_endpoint = "file:///etc/passwd";
    assert_int_equal(entra_select(&e, NULL, &d, err, sizeof(err)), TV_ERR_CONFIG);
    assert_non_null(strstr(err, "IDENTITY_ENDPOINT"));
    assert_int_equal(entra_select(&(struct entra_env){0}, "ftp://x", &d, err, sizeof(err)),
                     TV_ERR_CONFIG);
}

/* Values that would send the request or the secret somewhere other than they appear to, or
 * add header lines of their own (review of issue 8). */
static void test_url_and_header_shapes(void **state)
{
    (void)state;
    struct entra_desc d;
    char err[200];
    struct entra_env e = all_set;
    static const char *const bad_authorities[] = {"https://login.microsoftonline.com@evil.example",
                                                  "https://evil.example/x?y=",
                                                  "https://evil.example/#",
                                                  "https://evil.example/path",
                                                  "https:// evil.example",
                                                  "https://",
                                                  "https://a.example\r\nX: y"};
    for (size_t i = 0; i < sizeof(bad_authorities) / sizeof(bad_authorities[0]); i++) {
        e.authority_host = bad_authorities[i];
        assert_int_equal(entra_select(&e, NULL, &d, err, sizeof(err)), TV_ERR_CONFIG);
        assert_non_null(strstr(err, "AZURE_AUTHORITY_HOST"));
    }
    e.authority_host = "HTTPS://login.microsoftonline.us:443/";
    assert_int_equal(entra_select(&e, NULL, &d, err, sizeof(err)), 0);

    e = all_set;
    e.client_secret = NULL;
    e.federated_token_file = NULL;
    e.identity_header = "hdr\r\nX-Injected: yes";
    assert_int_equal(entra_select(&e, NULL, &d, err, sizeof(err)), TV_ERR_CONFIG);
    assert_non_null(strstr(err, "IDENTITY_HEADER"));
    assert_null(strstr(err, "Injected"));
    e.identity_header = "hdr with space";
    assert_int_equal(entra_select(&e, NULL, &d, err, sizeof(err)), TV_ERR_CONFIG);
    e.identity_header = "hdr-s3cr3t";
    static const char *const bad_endpoints[] = {"http://localhost:42356/msi/token#frag",
                                                "http://user@localhost:42356/msi/token",
                                                "http:///msi/token", "http://h/a b"};
    for (size_t i = 0; i < sizeof(bad_endpoints) / sizeof(bad_endpoints[0]); i++) {
        e.identity_endpoint = bad_endpoints[i];
        assert_int_equal(entra_select(&e, NULL, &d, err, sizeof(err)), TV_ERR_CONFIG);
        assert_non_null(strstr(err, "IDENTITY_ENDPOINT"));
    }
    /* A path and a query are what the platforms give. */
    e.identity_endpoint = "http://localhost:42356/MSI/token?x=1";
    assert_int_equal(entra_select(&e, NULL, &d, err, sizeof(err)), 0);
    assert_non_null(strstr(d.url, "/MSI/token?x=1&api-version=2019-08-01&resource="));

    assert_int_equal(
        entra_select(&(struct entra_env){0}, "http://127.0.0.1:9/x", &d, err, sizeof(err)),
        TV_ERR_CONFIG);
    assert_non_null(strstr(err, "imds_endpoint"));
    assert_int_equal(
        entra_select(&(struct entra_env){0}, "http://127.0.0.1:9/", &d, err, sizeof(err)), 0);
    entra_desc_clear(&d);
}

/* A variable of a credential tokenvend lacks is named in the description as ignored. */
static void test_unsupported_named(void **state)
{
    (void)state;
    struct entra_desc d;
    char line[ENTRA_DESCRIBE_MAX];
    struct entra_env e = {0};
    setenv("MSI_ENDPOINT", "http://127.0.0.1:9/msi", 1);
    entra_env_from_process(&e);
    unsetenv("MSI_ENDPOINT");
    assert_non_null(e.unsupported);
    assert_string_equal(e.unsupported, "MSI_ENDPOINT");
    assert_int_equal(entra_select(&e, NULL, &d, NULL, 0), 0);
    entra_desc_describe(&d, line, sizeof(line));
    assert_non_null(strstr(line, "ignored: MSI_ENDPOINT is set"));
    entra_env_from_process(&e);
    assert_null(e.unsupported);
    entra_desc_clear(&d);
}

static void test_describe_hides_secrets(void **state)
{
    (void)state;
    struct entra_desc d;
    char line[ENTRA_DESCRIBE_MAX];
    struct entra_env e = all_set;
    assert_int_equal(entra_select(&e, NULL, &d, NULL, 0), 0);
    entra_desc_describe(&d, line, sizeof(line));
    assert_non_null(strstr(line, "credential=client_secret POST https://login."));
    assert_non_null(strstr(line, "client_secret=***"));
    assert_non_null(strstr(line, "client_id=cid-1"));
    assert_null(strstr(line, "s3cr3t"));
    e.client_secret = NULL;
    e.federated_token_file = NULL;
    assert_int_equal(entra_select(&e, NULL, &d, NULL, 0), 0);
    entra_desc_describe(&d, line, sizeof(line));
    assert_non_null(strstr(line, "credential=managed_identity GET http://localhost:42356/"));
    assert_non_null(strstr(line, "X-IDENTITY-HEADER=***"));
    assert_null(strstr(line, "s3cr3t"));
    /* A tiny buffer truncates, never overflows. */
    char small[8];
    entra_desc_describe(&d, small, sizeof(small));
    assert_int_equal(strlen(small), sizeof(small) - 1);
    entra_desc_clear(&d);
    assert_string_equal(entra_kind_name(ENTRA_MANAGED_IMDS), "managed_identity_imds");
    assert_string_equal(entra_kind_name(ENTRA_NONE), "none");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_secret),
        cmocka_unit_test(test_authority_host),
        cmocka_unit_test(test_workload_identity),
        cmocka_unit_test(test_managed_appsvc),
        cmocka_unit_test(test_managed_imds),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_describe_hides_secrets),
        cmocka_unit_test(test_url_and_header_shapes),
        cmocka_unit_test(test_unsupported_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
