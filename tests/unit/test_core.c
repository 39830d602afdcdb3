/* Unit tests of src/core: error table, bounded buffer, base64, clocks, strict JSON, logging. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "core/b64.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/netaddr.h"

static void test_err_table(void **state)
{
    (void)state;
    assert_string_equal(err_name(TV_OK), "ok");
    assert_int_equal(err_http_status(TV_ERR_NOT_FOUND), 404);
    assert_int_equal(err_http_status(TV_ERR_UPSTREAM_TIMEOUT), 504);
    assert_string_equal(err_name(TV_ERR_ACS_THROTTLED), "acs_throttled");
    /* Unknown codes never index outside the table. */
    assert_string_equal(err_name(-1), "internal_error");
    assert_int_equal(err_http_status(TV_ERR__COUNT + 5), 500);
    for (int rc = 0; rc < TV_ERR__COUNT; rc++) {
        assert_non_null(err_message(rc));
        assert_true(err_http_status(rc) >= 200 && err_http_status(rc) <= 599);
    }
}

static void test_buf_ceiling(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 8);
    assert_string_equal(buf_cstr(&b), "");
    assert_int_equal(buf_append_str(&b, "abcd"), 0);
    assert_int_equal(buf_printf(&b, "%d", 1234), 0);
    assert_string_equal(buf_cstr(&b), "abcd1234");
    /* One byte past the ceiling fails and leaves the contents alone. */
    assert_int_equal(buf_append(&b, "x", 1), TV_ERR_TOO_LARGE);
    assert_int_equal(buf_printf(&b, "y"), TV_ERR_TOO_LARGE);
    assert_string_equal(buf_cstr(&b), "abcd1234");
    assert_int_equal(b.len, 8);
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(buf_append(&b, "0123456789", 10), TV_ERR_TOO_LARGE);
    buf_release_wipe(&b);
    assert_null(b.data);
    {
        char *p = buf_take(&b);
        assert_string_equal(p, "");
        free(p);
    }
}

/* The one bounded copy: cuts at cap - 1, always terminates, says when it cut. */
static void test_buf_copy_str(void **state)
{
    char d[6];

    (void)state;
    assert_int_equal(buf_copy_str(d, sizeof d, "abc"), 0);
    assert_string_equal(d, "abc");
    assert_int_equal(buf_copy_str(d, sizeof d, "abcde"), 0);
    assert_string_equal(d, "abcde");
    assert_int_equal(buf_copy_str(d, sizeof d, "abcdef"), TV_ERR_TOO_LARGE);
    assert_string_equal(d, "abcde");
    assert_int_equal(buf_copy_str(d, sizeof d, NULL), 0);
    assert_string_equal(d, "");
    assert_int_equal(buf_copy_str(d, 0, "x"), TV_ERR_TOO_LARGE);
}

/* The one percent-decoder (the router's path parameters and the emulator's use it). */
static void test_buf_pct_decode(void **state)
{
    char d[16];
    static const char *const bad[] = {"%", "%4", "%4g", "%g4", "a%00b", "%%41"};

    (void)state;
    assert_int_equal(buf_pct_decode("8%3Aacs%3a1%2Fx+y", 17, d, sizeof d), 0);
    assert_string_equal(d, "8:acs:1/x+y");
    assert_int_equal(buf_pct_decode("", 0, d, sizeof d), 0);
    assert_string_equal(d, "");
    /* Only len bytes are read: the escape cut off by len is incomplete. */
    assert_int_equal(buf_pct_decode("%41", 2, d, sizeof d), TV_ERR_INVALID);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(buf_pct_decode(bad[i], strlen(bad[i]), d, sizeof d), TV_ERR_INVALID);
    assert_int_equal(buf_pct_decode("abc", 3, d, 4), 0);
    assert_int_equal(buf_pct_decode("abcd", 4, d, 4), TV_ERR_TOO_LARGE);
    assert_int_equal(buf_pct_decode("%41%42%43", 9, d, 4), 0);
    assert_string_equal(d, "ABC");
    assert_int_equal(buf_pct_decode("", 0, d, 0), TV_ERR_TOO_LARGE);
}

static void test_b64_round_trip(void **state)
{
    static const struct {
        const char *plain, *std, *url;
    } rows[] = {
        {"", "", ""},
        {"f", "Zg==", "Zg"},
        {"fo", "Zm8=", "Zm8"},
        {"foo", "Zm9v", "Zm9v"},
        {"foob", "Zm9vYg==", "Zm9vYg"},
        {"\xfb\xff", "+/8=", "-_8"},
    };
    char out[32];
    uint8_t *dec;
    size_t n;

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        size_t len = strlen(rows[i].plain);
        b64_encode((const uint8_t *)rows[i].plain, len, out);
        assert_string_equal(out, rows[i].std);
        b64url_encode((const uint8_t *)rows[i].plain, len, out);
        assert_string_equal(out, rows[i].url);
        assert_int_equal(b64_decode(rows[i].std, strlen(rows[i].std), &dec, &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(dec, rows[i].plain, len);
        free(dec);
        assert_int_equal(b64url_decode(rows[i].url, strlen(rows[i].url), &dec, &n), 0);
        assert_int_equal(n, len);
        free(dec);
    }
}

static void test_b64_rejects(void **state)
{
    static const char *bad_std[] = {"Zg=", "Zg", "Z===", "Zh==", "Zm9v\n", "Zm 9", "Zm9-", "=Zg="};
    static const char *bad_url[] = {"Zg==", "Z", "Zh", "Zm9+", "Zm9/", "Zm9v="};
    uint8_t *dec = NULL;
    size_t n = 99;

    (void)state;
    for (size_t i = 0; i < sizeof(bad_std) / sizeof(bad_std[0]); i++)
        assert_int_equal(b64_decode(bad_std[i], strlen(bad_std[i]), &dec, &n), TV_ERR_PARSE);
    for (size_t i = 0; i < sizeof(bad_url) / sizeof(bad_url[0]); i++)
        assert_int_equal(b64url_decode(bad_url[i], strlen(bad_url[i]), &dec, &n), TV_ERR_PARSE);
    assert_null(dec);
    assert_int_equal(n, 99);
}

static void test_clock_formats(void **state)
{
    char http[CLOCK_HTTP_DATE_LEN], iso[CLOCK_ISO_LEN];
    time_t t;
    int64_t ms;

    (void)state;
    clock_http_date((time_t)1795772641, http); /* the test vectors' date */
    assert_string_equal(http, "Fri, 27 Nov 2026 09:44:01 GMT");
    assert_int_equal(clock_parse_http_date(http, &t), 0);
    assert_int_equal((int64_t)t, 1795772641);
    assert_int_equal(clock_parse_http_date("Fri, 27 Nov 2026 09:44:01 UTC", &t), TV_ERR_PARSE);
    assert_int_equal(clock_parse_http_date("Fri, 32 Nov 2026 09:44:01 GMT", &t), TV_ERR_PARSE);
    assert_int_equal(clock_parse_http_date("", &t), TV_ERR_PARSE);

    clock_iso8601(1795772641123, iso);
    assert_string_equal(iso, "2026-11-27T09:44:01.123Z");
    assert_int_equal(clock_parse_iso8601(iso, &ms), 0);
    assert_int_equal(ms, 1795772641123);
    /* ACS writes seven fraction digits and an explicit offset. */
    assert_int_equal(clock_parse_iso8601("2026-11-27T10:44:01.1234567+01:00", &ms), 0);
    assert_int_equal(ms, 1795772641123);
    assert_int_equal(clock_parse_iso8601("2026-11-27T09:44:01", &ms), TV_ERR_PARSE);
    assert_int_equal(clock_parse_iso8601("2026-13-27T09:44:01Z", &ms), TV_ERR_PARSE);
    assert_int_equal(clock_parse_iso8601("2026-11-27T09:44:01.Z", &ms), TV_ERR_PARSE);
    assert_int_equal(clock_parse_iso8601("2026-11-27T09:44:01Zjunk", &ms), TV_ERR_PARSE);
    assert_true(clock_mono_ms() > 0);
}

static int parse(const char *s, struct json_object **out)
{
    return jsonx_parse(s, strlen(s), 1024, out);
}

static void test_jsonx_accepts(void **state)
{
    static const char *good[] = {
        "{}",
        "[]",
        "0",
        "-1.5e3",
        "\"x\"",
        "true",
        " {\"a\":[1,2,{\"b\":null}]} \n",
        "{\"a\":\"\\u00e9\\ud83d\\ude00\"}",
        "{\"a\":\"caf\xc3\xa9\"}",
        "9223372036854775807",
    };
    struct json_object *o;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (parse(good[i], &o) != 0)
            fail_msg("rejected valid JSON #%zu: %s", i, good[i]);
        json_object_put(o);
    }
}

static void test_jsonx_rejects(void **state)
{
    static const char *bad[] = {
        "",
        "{} x",
        "{}{}",
        "{\"a\":1,\"a\":2}",
        "{\"a\":{\"b\":1},\"c\":{\"b\":1,\"b\":2}}",
        "{\"a\":1,\"\\u0061\":2}",
        "{\"a\":\"\\u0000\"}",
        "{\"a\":\"\\ud800\"}",
        "{\"a\":\"\xc3\"}",
        "{\"a\":\"\xc0\xaf\"}",
        "{\"a\":\"tab\there\"}",
        "{'a':1}",
        "{\"a\":01}",
        "{\"a\":1.}",
        "{\"a\":+1}",
        "[1,]",
        "{\"a\":1,}",
        "9223372036854775808",
        "1e999",
        "NaN",
        "null",
        "[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]",
    };
    struct json_object *o = NULL;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(bad[i], &o) != TV_ERR_PARSE)
            fail_msg("accepted invalid JSON #%zu: %s", i, bad[i]);
    }
    assert_null(o);
    assert_int_equal(jsonx_parse("[1,2,3]", 7, 6, &o), TV_ERR_TOO_LARGE);
}

static void test_jsonx_getters(void **state)
{
    struct json_object *o, *arr;
    const char *s;
    int64_t n;

    (void)state;
    assert_int_equal(
        parse("{\"s\":\"abc\",\"e\":\"\",\"n\":60,\"f\":60.0,\"q\":\"60\",\"a\":[1]}", &o), 0);
    assert_int_equal(jsonx_get_string(o, "s", 3, &s), 0);
    assert_string_equal(s, "abc");
    assert_int_equal(jsonx_get_string(o, "s", 2, &s), TV_ERR_INVALID);
    assert_int_equal(jsonx_get_string(o, "e", 10, &s), TV_ERR_INVALID);
    assert_int_equal(jsonx_get_string(o, "n", 10, &s), TV_ERR_INVALID);
    assert_int_equal(jsonx_get_string(o, "zz", 10, &s), TV_ERR_NOT_FOUND);
    assert_int_equal(jsonx_get_int(o, "n", 60, 1440, &n), 0);
    assert_int_equal(n, 60);
    assert_int_equal(jsonx_get_int(o, "n", 61, 1440, &n), TV_ERR_INVALID);
    assert_int_equal(jsonx_get_int(o, "f", 0, 1440, &n), TV_ERR_INVALID);
    assert_int_equal(jsonx_get_int(o, "q", 0, 1440, &n), TV_ERR_INVALID);
    assert_int_equal(jsonx_get_array(o, "a", &arr), 0);
    assert_int_equal(jsonx_get_array(o, "s", &arr), TV_ERR_INVALID);
    assert_string_equal(jsonx_compact(arr), "[1]");
    json_object_put(o);
}

static void test_log_lines(void **state)
{
    int fds[2];
    char out[4096];
    ssize_t n;
    struct json_object *fields, *line;
    enum log_level l;

    (void)state;
    assert_int_equal(pipe(fds), 0);
    log_setup(LOGL_INFO, fds[1]);
    log_msg(LOGL_DEBUG, NULL, "hidden");
    log_msg(LOGL_INFO, "rid-1", "quote \" and newline \n kept %d", 7);
    fields = json_object_new_object();
    json_object_object_add(fields, "status", json_object_new_int(503));
    log_fields(LOGL_WARN, NULL, "upstream", fields);
    json_object_put(fields);
    close(fds[1]);
    n = read(fds[0], out, sizeof(out) - 1);
    close(fds[0]);
    log_setup(LOGL_INFO, 2);
    assert_true(n > 0);
    out[n] = '\0';
    {
        /* Exactly two lines (the debug one filtered), each one JSON object. */
        size_t lines = 0;
        for (char *p = out; *p; p++)
            lines += *p == '\n';
        assert_int_equal(lines, 2);
        char *nl = strchr(out, '\n');
        assert_non_null(nl);
        *nl = '\0';
        line = json_tokener_parse(out);
        assert_non_null(line);
        assert_string_equal(json_object_get_string(json_object_object_get(line, "level")), "info");
        assert_string_equal(json_object_get_string(json_object_object_get(line, "request_id")),
                            "rid-1");
        assert_string_equal(json_object_get_string(json_object_object_get(line, "msg")),
                            "quote \" and newline \n kept 7");
        json_object_put(line);
        line = json_tokener_parse(nl + 1);
        assert_non_null(line);
        assert_int_equal(json_object_get_int(json_object_object_get(line, "status")), 503);
        json_object_put(line);
    }
    assert_int_equal(log_level_parse("WARNING", &l), 0);
    assert_int_equal(l, LOGL_WARN);
    assert_int_equal(log_level_parse("loud", &l), TV_ERR_INVALID);
}

/* Every byte a client can put into a logged string (a request target: issue 6) must leave a
 * line that strict UTF-8 JSON readers accept, and no field may be forged. */
static void test_log_json_clean(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"{\"path\":\"/plain\"}", "{\"path\":\"/plain\"}"},
        /* well-formed UTF-8 passes through */
        {"\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\"",
         "\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\""},
        /* stray bytes, an overlong '/', a surrogate, a truncated sequence: one U+FFFD per byte */
        {"\"\xFF\xFE\"", "\"\\ufffd\\ufffd\""},
        {"\"\xC0\xAF\"", "\"\\ufffd\\ufffd\""},
        {"\"\xED\xA0\x80\"", "\"\\ufffd\\ufffd\\ufffd\""},
        {"\"a\xE2\x82\"", "\"a\\ufffd\\ufffd\""},
        /* DEL and the C1 controls (as UTF-8) escaped; json-c has done the C0 ones already */
        {"\"\x7F\xC2\x85\xC2\x9F\xC2\xA0\"", "\"\\u007f\\u0085\\u009f\xC2\xA0\""},
        {"\"\x1B[31m\"", "\"\\u001b[31m\""},
    };
    char out[256];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t in_len = strlen(cases[i].in), want = strlen(cases[i].out);
        size_t n = log_json_clean(cases[i].in, in_len, out, sizeof(out));
        assert_int_equal(n, want);
        assert_memory_equal(out, cases[i].out, want);
        /* measuring writes nothing; a short buffer is filled, never overrun */
        assert_int_equal(log_json_clean(cases[i].in, in_len, NULL, 0), want);
        memset(out, 'Z', sizeof(out));
        assert_int_equal(log_json_clean(cases[i].in, in_len, out, 3), want);
        assert_memory_equal(out, cases[i].out, 3);
        assert_int_equal(out[3], 'Z');
    }
}

/* The logger end to end: a message and a field with bad bytes still give one strict JSON line
 * per call, with the replacement character where the bad bytes were. */
static void test_log_lines_strict(void **state)
{
    int fds[2];
    char out[4096];
    ssize_t n;
    struct json_object *fields, *line = NULL;
    const char *v = NULL;
    char *nl;

    (void)state;
    assert_int_equal(pipe(fds), 0);
    log_setup(LOGL_INFO, fds[1]);
    fields = json_object_new_object();
    json_object_object_add(fields, "path", json_object_new_string("/api/\xFF\xFE?x=\xC0\xAF"));
    json_object_object_add(fields, "remote",
                           json_object_new_string("a\",\"status\":200,\"x\":\"\x7F"));
    log_fields(LOGL_INFO, NULL, "req\xE2\x82\n", fields);
    json_object_put(fields);
    close(fds[1]);
    n = read(fds[0], out, sizeof(out) - 1);
    close(fds[0]);
    log_setup(LOGL_INFO, 2);
    assert_true(n > 0);
    out[n] = '\0';
    nl = strchr(out, '\n');
    assert_non_null(nl);
    assert_ptr_equal(nl, out + n - 1); /* one line */
    /* jsonx refuses bad UTF-8 and duplicate keys: it is the strict reader */
    assert_int_equal(jsonx_parse(out, (size_t)(nl - out), 65536, &line), 0);
    assert_int_equal(jsonx_get_string(line, "path", 1000, &v), 0);
    assert_string_equal(v, "/api/\xEF\xBF\xBD\xEF\xBF\xBD?x=\xEF\xBF\xBD\xEF\xBF\xBD");
    assert_int_equal(jsonx_get_string(line, "remote", 1000, &v), 0);
    assert_string_equal(v, "a\",\"status\":200,\"x\":\"\x7F");
    assert_false(json_object_object_get_ex(line, "status", NULL));
    assert_int_equal(jsonx_get_string(line, "msg", 1000, &v), 0);
    assert_string_equal(v, "req\xEF\xBF\xBD\xEF\xBF\xBD\n");
    json_object_put(line);
}

static void test_netaddr(void **state)
{
    static const char *bad[] = {"",
                                "8080",
                                ":8080",
                                "127.0.0.1:",
                                "127.0.0.1:65536",
                                "127.0.0.1:80x",
                                "[::1]8080",
                                "[::1",
                                "no-such-host.invalid:1"};
    struct sockaddr_storage ss;
    socklen_t len = 0;
    char host[64];

    (void)state;
    assert_int_equal(netaddr_parse("127.0.0.1:8080", &ss, &len, host, sizeof host), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)(void *)&ss)->sin_port), 8080);
    assert_int_equal(len, sizeof(struct sockaddr_in));
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(netaddr_parse("[::1]:0", &ss, NULL, host, sizeof host), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_string_equal(host, "[::1]");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (netaddr_parse(bad[i], &ss, NULL, NULL, 0) != TV_ERR_CONFIG)
            fail_msg("accepted listen address \"%s\"", bad[i]);
}

/* The one host:port parser, without resolving, and its inverse. */
static void test_netaddr_split(void **state)
{
    static const char *bad[] = {"",       "8080",  ":8080",  "h:",     "h:65536",
                                "h:80x",  "h: 80", "h:+80",  "h:0x10", "::1:80",
                                "[::1]8", "[::1",  "a b:80", "a/b:80", "h:000080"};
    char host[16], text[32];
    int port = -1;
    const char *why = NULL;

    (void)state;
    assert_int_equal(netaddr_split("127.0.0.1:8080", host, sizeof host, &port, &why), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8080);
    assert_int_equal(netaddr_split("[::1]:0", host, sizeof host, &port, NULL), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 0);
    assert_int_equal(netaddr_split("localhost:65535", host, sizeof host, &port, NULL), 0);
    assert_int_equal(port, 65535);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        if (netaddr_split(bad[i], host, sizeof host, &port, &why) != TV_ERR_CONFIG || why == NULL)
            fail_msg("accepted host:port \"%s\"", bad[i]);
    }
    /* A host longer than the room given is refused, not cut. */
    assert_int_equal(netaddr_split("abcdefghijklmnop:1", host, sizeof host, &port, NULL),
                     TV_ERR_CONFIG);
    assert_int_equal(netaddr_format("::1", 80, text, sizeof text), 0);
    assert_string_equal(text, "[::1]:80");
    assert_int_equal(netaddr_format("0.0.0.0", 8080, text, sizeof text), 0);
    assert_string_equal(text, "0.0.0.0:8080");
    assert_int_equal(netaddr_format("0.0.0.0", 8080, text, 8), TV_ERR_TOO_LARGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_table),        cmocka_unit_test(test_buf_ceiling),
        cmocka_unit_test(test_buf_copy_str),     cmocka_unit_test(test_buf_pct_decode),
        cmocka_unit_test(test_b64_round_trip),   cmocka_unit_test(test_b64_rejects),
        cmocka_unit_test(test_clock_formats),    cmocka_unit_test(test_jsonx_accepts),
        cmocka_unit_test(test_jsonx_rejects),    cmocka_unit_test(test_jsonx_getters),
        cmocka_unit_test(test_log_lines),        cmocka_unit_test(test_netaddr),
        cmocka_unit_test(test_netaddr_split),    cmocka_unit_test(test_log_json_clean),
        cmocka_unit_test(test_log_lines_strict),
    };
    return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
