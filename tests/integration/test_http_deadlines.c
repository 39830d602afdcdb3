/* Integration tests of the HTTP server's slow-client defences (issue 6, review of item 4), on
 * loopback with raw sockets: the head deadline counts from accept on a new connection (so a
 * client dripping its request line is cut as soon as one dripping its headers), it never
 * exceeds the idle timeout, and the per-address cap counts an IPv6 client too. The waits are
 * ceilings that stop a hung run, well above the deadlines under test; nothing asserts how fast
 * anything happened. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/clock.h"
#include "core/log.h"
#include "http/server.h"

#define CEILING_MS 12000 /* far above the 2 s deadlines below, far below the old 30 s / 60 s */

static void h_hello(struct http_req *req, void *ctx)
{
    (void)ctx;
    http_reply_data(req, 200, "text/plain", "hi", 2);
}

static const struct http_route routes[] = {{"GET", "/hello", h_hello}};

static struct http_server *start(const char *addr, struct http_server_opts o)
{
    static struct http_listener_opts lo;
    struct http_server *s = NULL;

    lo = (struct http_listener_opts){
        .name = "slow", .addr = addr, .routes = routes, .nroutes = 1, .threads = 1};
    o.listeners = &lo;
    o.nlisteners = 1;
    assert_int_equal(http_server_new(&o, &s), 0);
    assert_int_equal(http_server_start(s), 0);
    return s;
}

/* Connects to the listener (IPv4 or IPv6 loopback); -1 when refused at once. */
static int connect_to(int family, uint16_t port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd = socket(family, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    memset(&ss, 0, sizeof(ss));
    if (family == AF_INET6) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        a6->sin6_addr = in6addr_loopback;
        len = sizeof(*a6);
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof(*a4);
    }
    if (connect(fd, (struct sockaddr *)&ss, len) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Sends `first`, then one byte of `drip` every 200 ms until the server closes the connection
 * or ceiling_ms pass. 1 when the server closed it (without an answer), else 0. */
static int dripped_until_closed(int fd, const char *first, char drip, int64_t ceiling_ms)
{
    int64_t end = clock_mono_ms() + ceiling_ms;
    char buf[256];

    if (send(fd, first, strlen(first), MSG_NOSIGNAL) != (ssize_t)strlen(first))
        return 1;
    while (clock_mono_ms() < end) {
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            return 1;
        if (n > 0)
            return 0; /* an answer to an incomplete request: wrong either way */
        if (send(fd, &drip, 1, MSG_NOSIGNAL) != 1)
            return 1;
        clock_sleep_ms(200);
    }
    return 0;
}

/* Only the idle timeout is set (2 s); the head deadline keeps its default (10 s) and so does
 * the request deadline (30 s). A client dripping its headers used to be kept for the request
 * deadline, 15 times longer than an idle client; the head deadline is now capped at the idle
 * timeout. */
static void test_head_deadline_capped_by_idle_timeout(void **state)
{
    struct http_server *s = start("127.0.0.1:0", (struct http_server_opts){.conn_timeout_s = 2});
    uint16_t port = http_server_port(s, 0);
    int line = connect_to(AF_INET, port), head = connect_to(AF_INET, port);

    (void)state;
    assert_true(line >= 0 && head >= 0);
    assert_true(
        dripped_until_closed(head, "GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: ", 'x', CEILING_MS));
    assert_true(dripped_until_closed(line, "GET /hel", 'l', CEILING_MS));
    close(line);
    close(head);
    http_server_free(s);
}

/* A long idle timeout (60 s) and a short head deadline (2 s): a new connection dripping its
 * request line is cut at the head deadline, counted from accept, not at the idle timeout. A
 * kept-alive connection still gets the idle timeout between requests, and a request that
 * completes in time is answered; but once it starts dripping its next request line, the head
 * deadline runs from those first bytes. */
static void test_request_line_counts_to_head(void **state)
{
    struct http_server *s =
        start("127.0.0.1:0", (struct http_server_opts){.conn_timeout_s = 60, .head_timeout_s = 2});
    uint16_t port = http_server_port(s, 0);
    int fd = connect_to(AF_INET, port);
    const char *req = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
    char buf[512];
    ssize_t n;

    (void)state;
    assert_true(dripped_until_closed(fd, "GET /hel", 'l', CEILING_MS));
    close(fd);
    /* Kept alive and idle past the head deadline: the next request is still served. */
    fd = connect_to(AF_INET, port);
    assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    n = recv(fd, buf, sizeof(buf) - 1, 0);
    assert_true(n > 12 && memcmp(buf, "HTTP/1.1 200", 12) == 0);
    clock_sleep_ms(3500);
    assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    n = recv(fd, buf, sizeof(buf) - 1, 0);
    assert_true(n > 12 && memcmp(buf, "HTTP/1.1 200", 12) == 0);
    /* The same kept-alive connection now drips its next request line: cut at the head deadline
     * from its first bytes, not kept for the 60 s idle timeout. */
    clock_sleep_ms(500);
    assert_true(dripped_until_closed(fd, "G", 'E', CEILING_MS));
    close(fd);
    http_server_free(s);
}

/* The per-address cap counts IPv6 clients (by their /64; ::1 is the only loopback address, so
 * the grouping itself is unit-tested in test_http_peers): with a cap of 2, a third connection
 * from ::1 is closed unanswered, and one closing makes room again. */
static void test_ipv6_cap(void **state)
{
    struct http_server *s = NULL;
    uint16_t port;
    int a, b, c;
    char ch;
    struct timeval tv = {.tv_sec = CEILING_MS / 1000};

    (void)state;
    {
        int probe = socket(AF_INET6, SOCK_STREAM, 0);
        struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
        int ok = probe >= 0 && bind(probe, (struct sockaddr *)&a6, sizeof(a6)) == 0;
        if (probe >= 0)
            close(probe);
        if (!ok)
            skip(); /* no IPv6 loopback on this machine */
    }
    s = start("[::1]:0", (struct http_server_opts){.per_ip_limit = 2, .conn_timeout_s = 60});
    port = http_server_port(s, 0);
    a = connect_to(AF_INET6, port);
    b = connect_to(AF_INET6, port);
    assert_true(a >= 0 && b >= 0);
    send(a, "GET /hel", 8, MSG_NOSIGNAL);
    send(b, "GET /hel", 8, MSG_NOSIGNAL);
    clock_sleep_ms(300); /* let the server take both */
    c = connect_to(AF_INET6, port);
    if (c >= 0) {
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        send(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", 32, MSG_NOSIGNAL);
        assert_true(recv(c, &ch, 1, 0) <= 0); /* closed unanswered */
        close(c);
    }
    close(a);
    clock_sleep_ms(300); /* let the server see the close */
    c = connect_to(AF_INET6, port);
    assert_true(c >= 0);
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    send(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", 32, MSG_NOSIGNAL);
    assert_int_equal(recv(c, &ch, 1, 0), 1);
    assert_int_equal(ch, 'H');
    close(c);
    close(b);
    http_server_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_deadline_capped_by_idle_timeout),
        cmocka_unit_test(test_request_line_counts_to_head),
        cmocka_unit_test(test_ipv6_cap),
    };
    log_setup(LOGL_WARN, 2);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
