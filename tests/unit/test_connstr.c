/* Unit tests for the ACS connection-string parser: a table of accepted strings with the
 * normalised fields expected, a table of rejected ones, and a check that no rejection logs the
 * key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "acs/connstr.h"
#include "core/err.h"
#include "core/log.h"

/* "SECRETSECRET": distinctive enough to grep the log for. */
#define KEY "U0VDUkVUU0VDUkVU"
#define KEY_BYTES "SECRETSECRET"

struct accept_case {
    const char *in;
    const char *endpoint;
    const char *scheme;
    const char *host;
    int port;
    const char *host_signed;
    const char *key; /* decoded bytes; NULL means KEY_BYTES */
    size_t key_len;
};

static const struct accept_case accept_cases[] = {
    {"endpoint=https://contoso.communication.azure.com/;accesskey=" KEY,
     "https://contoso.communication.azure.com", "https", "contoso.communication.azure.com", 443,
     "contoso.communication.azure.com", NULL, 0},
    /* Keys are case-insensitive. */
    {"ENDPOINT=https://h.example/;AccessKey=" KEY, "https://h.example", "https", "h.example", 443,
     "h.example", NULL, 0},
    {"EndPoint=https://h.example/;ACCESSKEY=" KEY, "https://h.example", "https", "h.example", 443,
     "h.example", NULL, 0},
    /* Any order, trailing slash optional, trailing ';' optional. */
    {"accesskey=" KEY ";endpoint=https://h.example/", "https://h.example", "https", "h.example",
     443, "h.example", NULL, 0},
    {"endpoint=https://h.example;accesskey=" KEY, "https://h.example", "https", "h.example", 443,
     "h.example", NULL, 0},
    {"endpoint=https://h.example/;accesskey=" KEY ";", "https://h.example", "https", "h.example",
     443, "h.example", NULL, 0},
    {"accesskey=" KEY ";endpoint=https://h.example;", "https://h.example", "https", "h.example",
     443, "h.example", NULL, 0},
    /* Explicit ports are kept, default ports dropped. */
    {"endpoint=https://h.example:8443/;accesskey=" KEY, "https://h.example:8443", "https",
     "h.example", 8443, "h.example:8443", NULL, 0},
    {"endpoint=https://h.example:443/;accesskey=" KEY, "https://h.example", "https", "h.example",
     443, "h.example", NULL, 0},
    {"endpoint=http://h.example:80;accesskey=" KEY, "http://h.example", "http", "h.example", 80,
     "h.example", NULL, 0},
    {"endpoint=http://h.example/;accesskey=" KEY, "http://h.example", "http", "h.example", 80,
     "h.example", NULL, 0},
    {"endpoint=http://h.example:443/;accesskey=" KEY, "http://h.example:443", "http", "h.example",
     443, "h.example:443", NULL, 0},
    {"endpoint=https://h.example:80/;accesskey=" KEY, "https://h.example:80", "https", "h.example",
     80, "h.example:80", NULL, 0},
    {"endpoint=http://127.0.0.1:36255/;accesskey=" KEY, "http://127.0.0.1:36255", "http",
     "127.0.0.1", 36255, "127.0.0.1:36255", NULL, 0},
    {"endpoint=http://localhost:65535/;accesskey=" KEY, "http://localhost:65535", "http",
     "localhost", 65535, "localhost:65535", NULL, 0},
    {"endpoint=http://localhost:00080/;accesskey=" KEY, "http://localhost", "http", "localhost", 80,
     "localhost", NULL, 0},
    /* Scheme and host lower-cased as a URL parser does. */
    {"endpoint=HTTPS://Contoso.Communication.Azure.COM/;accesskey=" KEY,
     "https://contoso.communication.azure.com", "https", "contoso.communication.azure.com", 443,
     "contoso.communication.azure.com", NULL, 0},
    /* IPv6: stored without brackets, signed with them, RFC 5952 form. */
    {"endpoint=http://[::1]:8090/;accesskey=" KEY, "http://[::1]:8090", "http", "::1", 8090,
     "[::1]:8090", NULL, 0},
    {"endpoint=https://[::1]/;accesskey=" KEY, "https://[::1]", "https", "::1", 443, "[::1]", NULL,
     0},
    {"endpoint=http://[0:0:0:0:0:0:0:1]:8090;accesskey=" KEY, "http://[::1]:8090", "http", "::1",
     8090, "[::1]:8090", NULL, 0},
    {"endpoint=https://[2001:DB8:0:0:1:0:0:1]:8443/;accesskey=" KEY,
     "https://[2001:db8::1:0:0:1]:8443", "https", "2001:db8::1:0:0:1", 8443,
     "[2001:db8::1:0:0:1]:8443", NULL, 0},
    /* A numeric host is an IPv4 address to a URL parser. */
    {"endpoint=http://127.1:8080/;accesskey=" KEY, "http://127.0.0.1:8080", "http", "127.0.0.1",
     8080, "127.0.0.1:8080", NULL, 0},
    /* Whitespace around parts and around '=' is ignored. */
    {"  endpoint = https://h.example/ ;\taccesskey= " KEY " ;\r\n", "https://h.example", "https",
     "h.example", 443, "h.example", NULL, 0},
    /* '=' padding in the key is kept: the part is split on its first '=' only. */
    {"endpoint=https://h.example/;accesskey=3q2+7w==", "https://h.example", "https", "h.example",
     443, "h.example", "\xde\xad\xbe\xef", 4},
    {"accesskey=AQI=;endpoint=https://h.example/", "https://h.example", "https", "h.example", 443,
     "h.example", "\x01\x02", 2},
    {"endpoint=https://h.example/;accesskey=AQ==", "https://h.example", "https", "h.example", 443,
     "h.example", "\x01", 1},
};

static const char *const reject_cases[] = {
    "",
    "   ",
    ";",
    "endpoint",
    "endpoint=https://h.example/",
    "accesskey=" KEY,
    "endpoint=;accesskey=" KEY,
    "endpoint=https://h.example/;accesskey=",
    "endpoint=https://h.example/;accesskey= ",
    /* Duplicates, in any spelling. */
    "endpoint=https://h.example/;endpoint=https://h.example/;accesskey=" KEY,
    "endpoint=https://h.example/;Endpoint=https://h.example/;accesskey=" KEY,
    "endpoint=https://h.example/;accesskey=" KEY ";ACCESSKEY=" KEY,
    /* Structure. */
    "endpoint=https://h.example/;;accesskey=" KEY,
    ";endpoint=https://h.example/;accesskey=" KEY,
    "endpoint=https://h.example/;accesskey=" KEY ";;",
    "endpoint=https://h.example/;accesskey=" KEY ";x",
    "endpoint=https://h.example/;accesskey=" KEY ";region=westus",
    "endpoint=https://h.example/;access key=" KEY,
    "endpoint=https://h.example/;accesskey=" KEY "\x01",
    "endpoint=https://h.\x7f"
    "example/;accesskey=" KEY,
    /* Scheme. */
    "endpoint=ftp://h.example/;accesskey=" KEY,
    "endpoint=https:/h.example/;accesskey=" KEY,
    "endpoint=https:h.example;accesskey=" KEY,
    "endpoint=h.example;accesskey=" KEY,
    "endpoint=//h.example/;accesskey=" KEY,
    "endpoint=httpss://h.example/;accesskey=" KEY,
    "endpoint=https:\\\\h.example/;accesskey=" KEY,
    /* Userinfo. */
    "endpoint=https://user@h.example/;accesskey=" KEY,
    "endpoint=https://user:pw@h.example/;accesskey=" KEY,
    "endpoint=https://@h.example/;accesskey=" KEY,
    /* Path, query, fragment. */
    "endpoint=https://h.example/path;accesskey=" KEY,
    "endpoint=https://h.example/path/;accesskey=" KEY,
    "endpoint=https://h.example//;accesskey=" KEY,
    "endpoint=https://h.example/?a=b;accesskey=" KEY,
    "endpoint=https://h.example?a=b;accesskey=" KEY,
    "endpoint=https://h.example/#frag;accesskey=" KEY,
    "endpoint=https://h.example#frag;accesskey=" KEY,
    /* Host. */
    "endpoint=https:///;accesskey=" KEY,
    "endpoint=https://;accesskey=" KEY,
    "endpoint=https://:443/;accesskey=" KEY,
    "endpoint=https://h example/;accesskey=" KEY,
    "endpoint=https://h%2Eexample/;accesskey=" KEY,
    "endpoint=https://h\xc3\xa9.example/;accesskey=" KEY,
    "endpoint=https://h.example\\/;accesskey=" KEY,
    "endpoint=http://1.2.3.4.5/;accesskey=" KEY,
    "endpoint=http://256.1.1.1/;accesskey=" KEY,
    /* IPv6. */
    "endpoint=http://[::1/;accesskey=" KEY,
    "endpoint=http://[]/;accesskey=" KEY,
    "endpoint=http://[zz::1]/;accesskey=" KEY,
    "endpoint=http://[::1]x/;accesskey=" KEY,
    "endpoint=http://[::1]:/;accesskey=" KEY,
    "endpoint=http://[::1]:0/;accesskey=" KEY,
    "endpoint=http://[fe80::1%25eth0]/;accesskey=" KEY,
    "endpoint=http://::1/;accesskey=" KEY,
    /* Port. */
    "endpoint=https://h.example:/;accesskey=" KEY,
    "endpoint=https://h.example:abc/;accesskey=" KEY,
    "endpoint=https://h.example:0/;accesskey=" KEY,
    "endpoint=https://h.example:00000/;accesskey=" KEY,
    "endpoint=https://h.example:65536/;accesskey=" KEY,
    "endpoint=https://h.example:99999/;accesskey=" KEY,
    "endpoint=https://h.example:123456/;accesskey=" KEY,
    "endpoint=https://h.example:-1/;accesskey=" KEY,
    "endpoint=https://h.example:+80/;accesskey=" KEY,
    "endpoint=https://h.example: 80/;accesskey=" KEY,
    "endpoint=https://h.example:80:81/;accesskey=" KEY,
    /* Key: strict padded base64. */
    "endpoint=https://h.example/;accesskey=abc",
    "endpoint=https://h.example/;accesskey=AQ=",
    "endpoint=https://h.example/;accesskey=AQ",
    "endpoint=https://h.example/;accesskey=AR==",
    "endpoint=https://h.example/;accesskey=A===",
    "endpoint=https://h.example/;accesskey====",
    "endpoint=https://h.example/;accesskey=====",
    "endpoint=https://h.example/;accesskey=AQ==AQ==",
    "endpoint=https://h.example/;accesskey=U0VD UkVU",
    "endpoint=https://h.example/;accesskey=U0VD!kVU",
    "endpoint=https://h.example/;accesskey=U0VD-kVU",
    "endpoint=https://h.example/;accesskey=" KEY "=",
};

static void test_accept_table(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(accept_cases) / sizeof(accept_cases[0]); i++) {
        const struct accept_case *c = &accept_cases[i];
        const char *kb = c->key ? c->key : KEY_BYTES;
        size_t kl = c->key ? c->key_len : strlen(KEY_BYTES);
        struct acs_connstr cs = {0};
        int rc = acs_connstr_parse(c->in, &cs);

        if (rc != 0)
            fail_msg("accept case %zu rejected (%s): %s", i, err_name(rc), c->in);
        if (strcmp(cs.endpoint, c->endpoint) || strcmp(cs.scheme, c->scheme) ||
            strcmp(cs.host, c->host) || cs.port != c->port ||
            strcmp(cs.host_signed, c->host_signed))
            fail_msg("accept case %zu: got endpoint=%s scheme=%s host=%s port=%d "
                     "host_signed=%s",
                     i, cs.endpoint, cs.scheme, cs.host, cs.port, cs.host_signed);
        if (cs.key_len != kl || memcmp(cs.key, kb, kl) != 0)
            fail_msg("accept case %zu: decoded key differs", i);
        acs_connstr_release(&cs);
        assert_null(cs.key);
        assert_null(cs.endpoint);
    }
}

static void test_reject_table(void **state)
{
    struct acs_connstr sentinel, cs;
    size_t i;

    (void)state;
    memset(&sentinel, 0xa5, sizeof(sentinel));
    for (i = 0; i < sizeof(reject_cases) / sizeof(reject_cases[0]); i++) {
        int rc;

        memcpy(&cs, &sentinel, sizeof(cs));
        rc = acs_connstr_parse(reject_cases[i], &cs);
        if (rc != TV_ERR_PARSE)
            fail_msg("reject case %zu returned %s: %s", i, err_name(rc), reject_cases[i]);
        if (memcmp(&cs, &sentinel, sizeof(cs)) != 0)
            fail_msg("reject case %zu changed *out: %s", i, reject_cases[i]);
    }
    printf("[ connstr ] %zu accepted and %zu rejected strings checked\n",
           sizeof(accept_cases) / sizeof(accept_cases[0]), i);
}

/* ACS_CONNSTR_MAX bytes are accepted, one more is not (trailing blanks are ignored otherwise). */
static void test_length_ceiling(void **state)
{
    static const char base[] = "endpoint=https://h.example/;accesskey=" KEY ";";
    char *s = malloc(ACS_CONNSTR_MAX + 2);
    struct acs_connstr cs = {0}, sentinel;

    (void)state;
    assert_non_null(s);
    memset(s, ' ', ACS_CONNSTR_MAX + 1);
    memcpy(s, base, sizeof(base) - 1);
    s[ACS_CONNSTR_MAX] = '\0';
    assert_int_equal(acs_connstr_parse(s, &cs), 0);
    acs_connstr_release(&cs);

    s[ACS_CONNSTR_MAX] = ' ';
    s[ACS_CONNSTR_MAX + 1] = '\0';
    memset(&sentinel, 0x5a, sizeof(sentinel));
    memcpy(&cs, &sentinel, sizeof(cs));
    assert_int_equal(acs_connstr_parse(s, &cs), TV_ERR_PARSE);
    assert_memory_equal(&cs, &sentinel, sizeof(cs));
    free(s);

    assert_int_equal(acs_connstr_parse(NULL, &cs), TV_ERR_PARSE);
    assert_int_equal(acs_connstr_parse(base, NULL), TV_ERR_PARSE);
}

static void test_release_zeroed(void **state)
{
    struct acs_connstr cs = {0};

    (void)state;
    acs_connstr_release(&cs);
    acs_connstr_release(&cs);
    acs_connstr_release(NULL);
}

/* Parsing failures are logged with a reason, never with the string, which holds the key. */
/* The keyless mode's endpoint: the connection string's URL rules, and https only except to
 * loopback, since a bearer token travels on it (review of issue 8). */
static void test_endpoint_keyless(void **state)
{
    static const char *const ok[] = {"https://r.communication.azure.com",
                                     "https://r.communication.azure.com/", "http://127.0.0.1:8090",
                                     "http://localhost:8090/", "http://[::1]:8090"};
    static const char *const bad[] = {"http://r.communication.azure.com", "http://10.255.255.1",
                                      "https://r.communication.azure.com/some/path?q=1",
                                      "https://u@r.communication.azure.com", "ftp://x"};
    (void)state;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct acs_connstr cs = {0};
        assert_int_equal(acs_endpoint_parse(ok[i], &cs), 0);
        assert_null(cs.key);
        acs_connstr_release(&cs);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct acs_connstr cs = {0};
        assert_int_equal(acs_endpoint_parse(bad[i], &cs), TV_ERR_PARSE);
    }
}

static void test_log_has_no_secret(void **state)
{
    char path[] = "/tmp/test_connstr_log_XXXXXX";
    char text[65536];
    int fd = mkstemp(path);
    size_t i, n = 0;
    ssize_t r;
    struct acs_connstr cs;

    (void)state;
    assert_true(fd >= 0);
    log_setup(LOGL_DEBUG, fd);
    for (i = 0; i < sizeof(reject_cases) / sizeof(reject_cases[0]); i++) {
        memset(&cs, 0, sizeof(cs));
        (void)acs_connstr_parse(reject_cases[i], &cs);
    }
    for (i = 0; i < sizeof(accept_cases) / sizeof(accept_cases[0]); i++) {
        memset(&cs, 0, sizeof(cs));
        if (acs_connstr_parse(accept_cases[i].in, &cs) == 0)
            acs_connstr_release(&cs);
    }
    log_setup(LOGL_OFF, 2);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    while (n < sizeof(text) - 1 && (r = read(fd, text + n, sizeof(text) - 1 - n)) > 0)
        n += (size_t)r;
    text[n] = '\0';
    close(fd);
    unlink(path);
    assert_true(n > 0);                      /* rejections are logged... */
    assert_null(strstr(text, "U0VD"));       /* ...without the key */
    assert_null(strstr(text, "SECRET"));     /* or its bytes */
    assert_null(strstr(text, "accesskey=")); /* or the string itself */
}

static int setup(void **state)
{
    (void)state;
    log_setup(LOGL_OFF, 2);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_table),      cmocka_unit_test(test_reject_table),
        cmocka_unit_test(test_length_ceiling),    cmocka_unit_test(test_release_zeroed),
        cmocka_unit_test(test_log_has_no_secret), cmocka_unit_test(test_endpoint_keyless),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
