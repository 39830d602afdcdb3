/* Integration tests of the request-head checks (issue-6 review findings) over real loopback
 * sockets: a raw NUL or another control byte in the request target (libmicrohttpd hands the
 * target over as a C string but parses arguments from its full length), obs-fold lines on any
 * header, Transfer-Encoding in an HTTP/1.0 request, a bare CR or a raw NUL in a header value,
 * each answered at once with 400 (or 414) in the error shape and the connection closed, no
 * handler run; ordinary heads in all their legal forms still served; and access-log lines that
 * stay strict UTF-8 JSON whatever bytes the target holds. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "core/buf.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "http/server.h"

/* ---- a raw client: bytes exactly as given, NULs included ---- */

struct resp {
    int status;
    char raw[64 * 1024];
    size_t len;
    const char *body;
};

static int tcp_connect(uint16_t port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* Sends n bytes and reads until the server closes, or for at most 10 s: a server that leaves
 * the request unanswered (the finding's hang lasts until the 30 s request deadline) fails the
 * check instead of blocking the suite. The wait bounds a failure, it is not a timing check. */
static void exchange(uint16_t port, const void *req, size_t n, struct resp *r)
{
    struct timeval tv = {.tv_sec = 10};
    int fd = tcp_connect(port);
    const char *c = req, *sep;
    ssize_t k;

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (n > 0 && (k = send(fd, c, n, MSG_NOSIGNAL)) > 0) {
        c += k;
        n -= (size_t)k;
    }
    r->len = 0;
    while (r->len < sizeof(r->raw) - 1 &&
           (k = recv(fd, r->raw + r->len, sizeof(r->raw) - 1 - r->len, 0)) > 0)
        r->len += (size_t)k;
    close(fd);
    r->raw[r->len] = '\0';
    r->status = 0;
    if (r->len > 12 && strncmp(r->raw, "HTTP/1.1 ", 9) == 0)
        r->status = atoi(r->raw + 9);
    sep = strstr(r->raw, "\r\n\r\n");
    r->body = sep ? sep + 4 : "";
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* True when r is exactly one answer `status` with the error shape {"error":{code,message}} of
 * `code`, Connection: close, and the connection closed (exchange returned at EOF). */
static int refused_as(const struct resp *r, int status, const char *code)
{
    struct json_object *j = NULL, *e;
    const char *c = NULL;
    int ok;

    if (r->status != status || count_of(r->raw, "HTTP/1.1 ") != 1 ||
        !strcasestr(r->raw, "\r\nConnection: close\r\n") ||
        !strcasestr(r->raw, "\r\nContent-Type: application/json\r\n") ||
        jsonx_parse(r->body, strlen(r->body), 65536, &j) != 0)
        return 0;
    ok = json_object_object_get_ex(j, "error", &e) && json_object_object_length(j) == 1 &&
         json_object_object_length(e) == 2 && jsonx_get_string(e, "code", 100, &c) == 0 &&
         strcmp(c, code) == 0;
    json_object_put(j);
    return ok;
}

/* ---- the server under test ---- */

static int handled; /* handler calls: a refused request must run none */

static void h_hello(struct http_req *req, void *ctx)
{
    struct json_object *o = json_object_new_object();
    const char *q = http_req_query(req, "q"), *x = http_req_header(req, "X-Val");

    (void)ctx;
    __atomic_add_fetch(&handled, 1, __ATOMIC_SEQ_CST);
    json_object_object_add(o, "q", json_object_new_string(q ? q : ""));
    json_object_object_add(o, "x", json_object_new_string(x ? x : ""));
    http_reply_json(req, 200, o);
}

static void h_echo(struct http_req *req, void *ctx)
{
    size_t len = 0;
    const char *b = http_req_body(req, &len);

    (void)ctx;
    __atomic_add_fetch(&handled, 1, __ATOMIC_SEQ_CST);
    http_reply_data(req, 200, "application/octet-stream", b, len);
}

static const struct http_route routes[] = {
    {"GET", "/hello", h_hello},
    {"POST", "/echo", h_echo},
};

static int setup(void **state)
{
    struct http_listener_opts lo = {.name = "public",
                                    .addr = "127.0.0.1:0",
                                    .routes = routes,
                                    .nroutes = sizeof(routes) / sizeof(routes[0]),
                                    .threads = 1};
    struct http_server_opts o = {
        .listeners = &lo, .nlisteners = 1, .body_max = 1024, .header_mem = 8192};
    struct http_server *s = NULL;

    assert_int_equal(http_server_new(&o, &s), 0);
    assert_int_equal(http_server_start(s), 0);
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    http_server_free(*state);
    return 0;
}

#define PORT(state) http_server_port(*(struct http_server **)(state), 0)

/* A request given as a C literal with embedded NULs: its size without the literal's own. */
struct raw_case {
    const char *name;
    const char *bytes;
    size_t len;
    int status;
    const char *code;
};
#define RAW(name, lit, status, code)                                                               \
    {                                                                                              \
        name, lit, sizeof(lit) - 1, status, code                                                   \
    }

/* Runs every case, reports each, then fails if any went wrong. */
static void run_refused(void **state, const struct raw_case *cases, size_t n)
{
    static struct resp r;
    int failed = 0;

    for (size_t i = 0; i < n; i++) {
        int before = __atomic_load_n(&handled, __ATOMIC_SEQ_CST), ok;
        exchange(PORT(state), cases[i].bytes, cases[i].len, &r);
        ok = refused_as(&r, cases[i].status, cases[i].code) &&
             __atomic_load_n(&handled, __ATOMIC_SEQ_CST) == before;
        print_message("%-34s -> %d, handler %s: %s\n", cases[i].name, r.status,
                      __atomic_load_n(&handled, __ATOMIC_SEQ_CST) == before ? "not run" : "RAN",
                      ok ? "ok" : "WRONG");
        if (!ok)
            print_message("%s\n", r.raw);
        failed += !ok;
    }
    assert_int_equal(failed, 0);
}

/* ---- tests ---- */

#define ARGS20 "a0=1&a1=1&a2=1&a3=1&a4=1&a5=1&a6=1&a7=1&a8=1&a9=1&b0=1&b1=1&b2=1&b3=1&b4=1&b5=1"
#define ARGS100 ARGS20 "&" ARGS20 "&" ARGS20 "&" ARGS20 "&" ARGS20 "&" ARGS20
#define ARGS300 ARGS100 "&" ARGS100 "&" ARGS100 "&" ARGS100

/* Finding 1: a raw NUL in the target hid the query from the guard (strchr stopped at it while
 * libmicrohttpd parses arguments over the full length): 300 arguments after it hung the
 * connection until the request deadline, and "/hello\0?a=1" was served 200. Now every control
 * byte (NUL included) or space in the target is a prompt 400; a target that imitates the line's
 * end to hide its query from the guard is refused too, 400, or 414 when its arguments overflow. */
static void test_target_control_bytes(void **state)
{
    static const struct raw_case cases[] = {
        RAW("NUL, then 300 arguments", "GET /hello\0?" ARGS300 " HTTP/1.1\r\nHost: x\r\n\r\n", 400,
            "invalid_request"),
        RAW("NUL, then one argument", "GET /hello\0?a=1 HTTP/1.1\r\nHost: x\r\n\r\n", 400,
            "invalid_request"),
        RAW("NUL, bare LF line ends", "GET /hello\0?" ARGS300 " HTTP/1.1\nHost: x\n\n", 400,
            "invalid_request"),
        RAW("NUL, no query", "GET /hello\0abc HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_request"),
        RAW("imitated line end, one argument",
            "GET /hello\0HTTP/1.1\0?a=1 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_request"),
        RAW("imitated line end, 300 arguments",
            "GET /hello\0HTTP/1.1\0?" ARGS300 " HTTP/1.1\r\nHost: x\r\n\r\n", 414, "too_large"),
        RAW("imitated line end, bare LF, 300",
            "GET /hello\0HTTP/1.1\0?" ARGS300 " HTTP/1.1\nHost: x\n\n", 414, "too_large"),
        RAW("control byte", "GET /hel\x01lo HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_request"),
        RAW("tab", "GET /hello\t HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_request"),
        RAW("bare CR", "GET /hello\r?a=1 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_request"),
        RAW("DEL", "GET /hello\x7f HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_request"),
        RAW("space", "GET /hello x HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_request"),
        RAW("NUL in the method", "GE\0T /hello HTTP/1.1\r\nHost: x\r\n\r\n", 400,
            "invalid_request"),
        RAW("two spaces after the method", "GET  /hello HTTP/1.1\r\nHost: x\r\n\r\n", 400,
            "invalid_request"),
    };

    run_refused(state, cases, sizeof(cases) / sizeof(cases[0]));
}

/* Finding 2: an obs-fold line (starting with SP or HTAB) continuing an ordinary header was
 * accepted, the folded field silently renamed. RFC 9112 section 5.2: 400. */
static void test_obs_fold_refused(void **state)
{
    static const struct raw_case cases[] = {
        RAW("fold after a value", "GET /hello HTTP/1.1\r\nHost: x\r\nX-Val: abc\r\n def\r\n\r\n",
            400, "invalid_request"),
        RAW("fold after an empty value", "GET /hello HTTP/1.1\r\nHost: x\r\nX-Val:\r\n abc\r\n\r\n",
            400, "invalid_request"),
        RAW("fold with a tab", "GET /hello HTTP/1.1\r\nHost: x\r\nX-Val: abc\r\n\tdef\r\n\r\n", 400,
            "invalid_request"),
        RAW("fold of the last field, bare LF", "GET /hello HTTP/1.1\nHost: x\nX-Val: a\n d\n\n",
            400, "invalid_request"),
        RAW("two fold lines", "GET /hello HTTP/1.1\r\nX-Val: a\r\n b\r\n c\r\nHost: x\r\n\r\n", 400,
            "invalid_request"),
    };

    run_refused(state, cases, sizeof(cases) / sizeof(cases[0]));
}

/* Finding 3: Transfer-Encoding in an HTTP/1.0 request was served (RFC 9112 section 6.1: faulty
 * framing, answer and close); a bare CR in a header value was accepted. Sweep: a raw NUL in a
 * value hid the rest of it (libmicrohttpd keeps the value as a C string); other controls too. */
static void test_faulty_framing_refused(void **state)
{
    static const struct raw_case cases[] = {
        RAW("HTTP/1.0 with chunked",
            "POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n", 400,
            "invalid_request"),
        RAW("bare CR in a value", "GET /hello HTTP/1.1\r\nHost: x\r\nX-Val: a\rInjected: 1\r\n\r\n",
            400, "invalid_request"),
        RAW("NUL in a value", "GET /hello HTTP/1.1\r\nHost: x\r\nX-Val: a\0b\r\n\r\n", 400,
            "invalid_request"),
        RAW("NUL in the last value", "GET /hello HTTP/1.1\r\nX-Val: ab\0\r\n\r\n", 400,
            "invalid_request"),
        RAW("NUL hides a framing field",
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\0\r\nTransfer-Encoding: chunked"
            "\r\n\r\nhi",
            400, "invalid_request"),
        RAW("control byte in a value", "GET /hello HTTP/1.1\r\nHost: x\r\nX-Val: a\x1b[2J\r\n\r\n",
            400, "invalid_request"),
        /* RFC 9112 section 3.2: an HTTP/1.1 request without Host, or with two, gets 400 (the
         * reliability run's hostile input found the first one served). */
        RAW("HTTP/1.1 without Host", "GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n", 400,
            "invalid_request"),
        RAW("two Host fields", "GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400,
            "invalid_request"),
    };

    run_refused(state, cases, sizeof(cases) / sizeof(cases[0]));
}

/* Sweep: libmicrohttpd decodes "%00" in a query argument and keeps the length, while handlers
 * read arguments as C strings: "q=a%00b" read as "a". Refused with 400 (not a framing fault:
 * the connection may stay open). */
static void test_query_nul_refused(void **state)
{
    static const char *const cases[] = {
        "GET /hello?q=a%00b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /hello?q%00x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /hello?x=1&q=%00 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    };
    static struct resp r;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int before = __atomic_load_n(&handled, __ATOMIC_SEQ_CST);
        exchange(PORT(state), cases[i], strlen(cases[i]), &r);
        if (!refused_as(&r, 400, "invalid_request") ||
            __atomic_load_n(&handled, __ATOMIC_SEQ_CST) != before)
            fail_msg("case %zu: %s", i, r.raw);
    }
}

/* The checks read the head's exact layout: every legal form of it must still be served. */
static void test_ordinary_heads_served(void **state)
{
    static const struct {
        const char *req, *want;
    } cases[] = {
        {"GET /hello?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
         "{\"q\":\"1\",\"x\":\"\"}"},
        {"GET /hello HTTP/1.1\nHost: x\nX-Val: lf\nConnection: close\n\n", "\"x\":\"lf\""},
        {"GET /hello HTTP/1.1\r\nHost:x\r\nX-Val:\t  spaced out\t\r\nConnection: close\r\n\r\n",
         "\"x\":\"spaced out\\t\""},
        {"GET /hello HTTP/1.1\r\nHost: x\r\nX-Val:\r\nConnection: close\r\n\r\n", "\"x\":\"\""},
        {"\r\nGET /hello?q=%41%20b+c HTTP/1.1\r\nHost: x\r\nCookie: a=b; c=d\r\nX-Val: caf\xc3\xa9"
         "\r\nConnection: close\r\n\r\n",
         "\"q\":\"A b c\""},
        {"GET /hello HTTP/1.0\r\nX-Val: 1.0\r\n\r\n", "\"x\":\"1.0\""},
        {"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\n", "\"q\":\"\""},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
         "2\r\nhi\r\n0\r\n\r\n",
         "hi"},
    };
    static struct resp r;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        exchange(PORT(state), cases[i].req, strlen(cases[i].req), &r);
        if (r.status != 200 || !strstr(r.body, cases[i].want))
            fail_msg("case %zu: %d %s", i, r.status, r.raw);
    }
    /* Kept alive and pipelined, with bare-LF and CRLF heads mixed. */
    {
        const char *two = "GET /hello?q=a HTTP/1.1\nHost: x\n\n"
                          "GET /hello?q=b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        exchange(PORT(state), two, strlen(two), &r);
        assert_int_equal(count_of(r.raw, "HTTP/1.1 200"), 2);
    }
}

/* Finding 4: raw bytes of the target reached the access log, making lines strict readers
 * reject. Every line the server logs for hostile targets must parse as strict UTF-8 JSON. */
static void test_access_log_strict(void **state)
{
    static const char *const targets[] = {
        "GET /api/\xff\xfe?x=\xc0\xaf HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /\xed\xa0\x80\xc2\x85\x7f HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /hel\x01lo\",\"status\":200 HTTP/1.1\r\nHost: x\r\n\r\n",
    };
    static struct resp r;
    static char out[64 * 1024];
    int fds[2];
    size_t len = 0, lines = 0;
    ssize_t n;

    assert_int_equal(pipe(fds), 0);
    log_setup(LOGL_INFO, fds[1]);
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        exchange(PORT(state), targets[i], strlen(targets[i]), &r);
        assert_true(r.status == 404 || r.status == 400);
    }
    /* The access line is written when libmicrohttpd completes the request, which may follow
     * the client's EOF by a moment: the server's shutdown completes every request first. */
    http_server_free(*state);
    *state = NULL;
    log_setup(LOGL_INFO, 2);
    close(fds[1]);
    while (len < sizeof(out) - 1 && (n = read(fds[0], out + len, sizeof(out) - 1 - len)) > 0)
        len += (size_t)n;
    close(fds[0]);
    out[len] = '\0';
    for (char *line = out, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        struct json_object *j = NULL;
        const char *msg = NULL;
        if (jsonx_parse(line, (size_t)(nl - line), 65536, &j) != 0)
            fail_msg("not strict JSON: %.*s", (int)(nl - line), line);
        if (jsonx_get_string(j, "msg", 100, &msg) == 0 && strcmp(msg, "request") == 0) {
            const char *status = json_object_get_string(json_object_object_get(j, "status"));
            assert_true(strcmp(status, "404") == 0 || strcmp(status, "400") == 0);
            lines++;
        }
        json_object_put(j);
    }
    assert_int_equal(lines, sizeof(targets) / sizeof(targets[0]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_target_control_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_obs_fold_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_faulty_framing_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_nul_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ordinary_heads_served, setup, teardown),
        cmocka_unit_test_setup_teardown(test_access_log_strict, setup, teardown),
    };
    log_setup(LOGL_WARN, 2);
    return cmocka_run_group_tests_name("http_head", tests, NULL, NULL);
}
