/* Unit tests of the per-address connection cap (src/http/peers.c): which client a connection
 * counts under (IPv4 address; IPv4-mapped IPv6 as its IPv4 address; IPv6 by its /64), and the
 * counting itself (refusal at the cap, release, the race past the accept check). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/un.h>

#include <cmocka.h>

#include "../../src/http/http_int.h"

static struct sockaddr_storage sa_of(const char *text)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (strchr(text, ':')) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(40000);
        assert_int_equal(inet_pton(AF_INET6, text, &a6->sin6_addr), 1);
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        a4->sin_family = AF_INET;
        a4->sin_port = htons(40000);
        assert_int_equal(inet_pton(AF_INET, text, &a4->sin_addr), 1);
    }
    return ss;
}

static struct http_peer_key key_of(const char *text)
{
    struct sockaddr_storage ss = sa_of(text);
    struct http_peer_key k;

    assert_int_equal(http_peer_key_of((const struct sockaddr *)&ss, &k), 1);
    return k;
}

static int same(const char *a, const char *b)
{
    struct http_peer_key ka = key_of(a), kb = key_of(b);
    return memcmp(&ka, &kb, sizeof(ka)) == 0;
}

static void test_peer_keys(void **state)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    struct http_peer_key k;

    (void)state;
    /* IPv4: each address counts alone. */
    assert_true(same("127.0.0.2", "127.0.0.2"));
    assert_false(same("127.0.0.2", "127.0.0.3"));
    assert_false(same("203.0.113.7", "203.0.113.8"));
    /* IPv6: every address of one /64 is one client; another /64 is another. */
    assert_true(same("2001:db8:1:2::1", "2001:db8:1:2:aaaa:bbbb:cccc:dddd"));
    assert_true(same("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"));
    assert_false(same("2001:db8:1:2::1", "2001:db8:1:3::1"));
    assert_false(same("2001:db8:1:2::1", "2001:db9:1:2::1"));
    /* IPv4-mapped: the IPv4 address counts, not the /64 (which holds every IPv4 address). */
    assert_true(same("::ffff:192.0.2.1", "192.0.2.1"));
    assert_false(same("::ffff:192.0.2.1", "::ffff:192.0.2.2"));
    assert_false(same("::ffff:192.0.2.1", "::ffff:0:0"));
    /* An IPv4 address and an IPv6 one with the same leading bytes differ. */
    assert_false(same("192.0.2.1", "c000:201::"));
    /* Other families are not counted. */
    assert_int_equal(http_peer_key_of((const struct sockaddr *)&un, &k), 0);
    assert_int_equal(k.family, 0);
    assert_int_equal(http_peer_key_of(NULL, &k), 0);
}

static void test_peer_counts(void **state)
{
    struct http_listener l;
    struct sockaddr_storage a = sa_of("2001:db8:1:2::1"), b = sa_of("2001:db8:1:2::99"),
                            other = sa_of("2001:db8:1:3::1");
    struct http_peer_key ka = key_of("2001:db8:1:2::1"), kb = key_of("2001:db8:1:2::99");
    const struct sockaddr *pa = (const struct sockaddr *)&a, *pb = (const struct sockaddr *)&b,
                          *po = (const struct sockaddr *)&other;

    (void)state;
    memset(&l, 0, sizeof(l));
    assert_int_equal(http_peers_new(&l, 2), 0);
    assert_int_equal(http_peers_admit(&l, pa, sizeof(a)), MHD_YES);
    assert_int_equal(http_peers_add(&l, &ka), 0);
    assert_int_equal(http_peers_add(&l, &kb), 0); /* same /64: the second of two */
    /* The /64 is full: any address of it is refused, another /64 is not. */
    assert_int_equal(http_peers_admit(&l, pa, sizeof(a)), MHD_NO);
    assert_int_equal(http_peers_admit(&l, pb, sizeof(b)), MHD_NO);
    assert_int_equal(http_peers_admit(&l, po, sizeof(other)), MHD_YES);
    /* Two accepts that both passed the check: the later one is counted and reported over. */
    assert_int_equal(http_peers_add(&l, &ka), 1);
    http_peers_del(&l, &ka);
    /* A connection closes: there is room again. */
    http_peers_del(&l, &kb);
    assert_int_equal(http_peers_admit(&l, pb, sizeof(b)), MHD_YES);
    http_peers_del(&l, &ka);
    http_peers_free(&l);
    assert_null(l.peers);
    http_peers_free(&l); /* no-op */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peer_keys),
        cmocka_unit_test(test_peer_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
