/* Secrets on the reply path: a reply marked Cache-Control: no-store (a token, a session) must
 * leave no copy of its body in memory the allocator takes back, on either path a body takes
 * (http_reply_data's copy; http_reply_json's json-c tree, its serialisation and the copy handed
 * to libmicrohttpd). Observed with tests/lib/freecheck.h, which is how json-c's growing
 * serialisation buffer was caught (the old block of a realloc that moved). */
#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "freecheck.h"
#include "http/server.h"

/* Long enough that no unrelated block holds it by chance; printable, so json-c copies it as is. */
static const char SECRET[] = "tv-secret-4b1f9e0c7d2a6e3f5a8c1b9d0e7f2a4c6b8d0e1f3a5c7e9b";
#define SECRET_LEN (sizeof SECRET - 1)

static atomic_long body_seen; /* handler calls, to show the replies ran */
static long unwiped;          /* unwiped frees seen by the last serve_and_count */

/* ---- handlers: the two reply paths, marked secret as api/common.c and api/login.c do ---- */

static void h_data(struct http_req *req, void *ctx)
{
    (void)ctx;
    atomic_fetch_add(&body_seen, 1);
    http_reply_header(req, "Cache-Control", "no-store");
    http_reply_data(req, 200, "application/json", SECRET, SECRET_LEN);
}

static void h_json(struct http_req *req, void *ctx)
{
    struct json_object *o = json_object_new_object(), *inner = json_object_new_array();

    (void)ctx;
    atomic_fetch_add(&body_seen, 1);
    json_object_object_add(o, "token", json_object_new_string(SECRET));
    json_object_array_add(inner, json_object_new_string(SECRET));
    json_object_object_add(o, "nested", inner);
    json_object_object_add(o, "expires_in", json_object_new_int(3600));
    http_reply_header(req, "Cache-Control", "no-store");
    http_reply_json(req, 200, o);
}

static const struct http_route routes[] = {
    {"GET", "/data", h_data},
    {"GET", "/json", h_json},
};

/* ---- a raw client: its buffer is static, so the client itself frees no copy ---- */

static char raw[64 * 1024];

static size_t get(uint16_t port, const char *path)
{
    struct sockaddr_in a;
    char line[256];
    size_t len = 0;
    ssize_t n;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    n = snprintf(line, sizeof line, "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                 path);
    assert_int_equal(send(fd, line, (size_t)n, MSG_NOSIGNAL), n);
    while (len < sizeof raw - 1 && (n = recv(fd, raw + len, sizeof raw - 1 - len, 0)) > 0)
        len += (size_t)n;
    raw[len] = '\0';
    close(fd);
    return len;
}

/* Serves `path` `times` times with the interposer watching, then stops the server: after
 * http_server_free every response libmicrohttpd held is destroyed, so every body is freed. */
static void serve_and_count(const char *path, int times)
{
    struct http_listener_opts lo = {.name = "public",
                                    .addr = "127.0.0.1:0",
                                    .routes = routes,
                                    .nroutes = sizeof routes / sizeof routes[0],
                                    .threads = 1};
    struct http_server_opts o = {.listeners = &lo, .nlisteners = 1};
    struct http_server *s = NULL;
    int i;

    assert_int_equal(http_server_new(&o, &s), 0);
    assert_int_equal(http_server_start(s), 0);
    atomic_store(&body_seen, 0);
    freecheck_begin(SECRET);
    for (i = 0; i < times; i++) {
        get(http_server_port(s, 0), path);
        assert_non_null(strstr(raw, "HTTP/1.1 200 "));
        assert_non_null(strstr(raw, "Cache-Control: no-store"));
        assert_non_null(strstr(raw, SECRET)); /* the secret did travel */
        memset(raw, 0, sizeof raw);           /* not the heap, but keep it tidy */
    }
    http_server_free(s);
    unwiped = freecheck_end();
    assert_int_equal(atomic_load(&body_seen), times);
}

/* The detector itself: a block freed with the secret in it is counted. */
static void test_detector_sees_unwiped_free(void **state)
{
    char *p;

    (void)state;
    p = malloc(256);
    assert_non_null(p);
    memcpy(p + 100, SECRET, SECRET_LEN);
    freecheck_begin(SECRET);
    free(p);
    assert_int_equal(freecheck_end(), 1);
}

/* The reply path named by *state leaves no unwiped copy of its secret body behind. */
static void test_reply_wiped(void **state)
{
    serve_and_count(*state, 3);
    assert_int_equal(unwiped, 0);
}

static char path_data[] = "/data"; /* http_reply_data */
static char path_json[] = "/json"; /* http_reply_json */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detector_sees_unwiped_free),
        cmocka_unit_test_prestate(test_reply_wiped, path_data),
        cmocka_unit_test_prestate(test_reply_wiped, path_json),
    };
    freecheck_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
