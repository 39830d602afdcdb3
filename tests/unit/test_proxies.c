/* Unit tests of src/core/proxies.c: the trusted-proxy list parser, address parsing, and the
 * X-Forwarded-For walk under hostile headers (forged hops, garbage, huge and many-hop values,
 * IPv6, ports, blanks, several header lines). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>

#include "core/err.h"
#include "core/proxies.h"

static void test_list_parse(void **state)
{
    static const struct {
        const char *in;
        int ok;
    } cases[] = {
        {"", 1},
        {"   ", 1},
        {"10.0.0.0/8", 1},
        {"10.0.0.0/8, 192.0.2.7 ,::1,2001:db8::/32", 1},
        {"0.0.0.0/0", 1},
        {"::/0", 1},
        {"::ffff:10.0.0.0/104", 1},
        {"10.0.0.0/33", 0},
        {"2001:db8::/129", 0},
        {"10.0.0.0/", 0},
        {"10.0.0.0/8x", 0},
        {"10.0.0.0/-1", 0},
        {"10.0.0.0/0008", 0},
        {"10.0.0.1:80", 0},
        {"[::1]", 0},
        {"localhost", 0},
        {"10.0.0", 0},
        {"10.0.0.0/8,", 0},
        {",10.0.0.0/8", 0},
        {"10.0.0.0/8,,::1", 0},
        {"fe80::1%eth0", 0},
        {"1.2.3.4 5.6.7.8", 0},
    };
    char err[160];
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct proxies *p = (struct proxies *)1;
        int rc = proxies_parse(cases[i].in, &p, err, sizeof err);
        if (rc != (cases[i].ok ? 0 : TV_ERR_INVALID))
            fail_msg("'%s': rc %d", cases[i].in, rc);
        if (!cases[i].ok)
            assert_non_null(strstr(err, "not an IPv4/IPv6 address"));
        proxies_free(cases[i].ok ? p : NULL);
    }
}

static void test_list_too_long(void **state)
{
    char list[PROXIES_MAX * 16 + 32], err[160];
    struct proxies *p = NULL;
    size_t n = 0;
    (void)state;
    for (int i = 0; i <= PROXIES_MAX; i++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s10.0.%d.1", i ? "," : "", i);
    assert_int_equal(proxies_parse(list, &p, err, sizeof err), TV_ERR_INVALID);
    assert_non_null(strstr(err, "more than"));
}

static struct proxies_addr addr(const char *s)
{
    struct proxies_addr a;
    assert_int_equal(proxies_addr_parse(s, strlen(s), &a), 0);
    return a;
}

static void test_addr_parse(void **state)
{
    static const char *const bad[] = {
        "",
        " 1.2.3.4",
        "1.2.3.4 ",
        "1.2.3",
        "1.2.3.4.5",
        "256.1.1.1",
        "1.2.3.4:",
        "1.2.3.4:123456",
        "1.2.3.4:x",
        "[1.2.3.4]",
        "[::1",
        "[]",
        "::1]",
        "[::1]x",
        "[::1]:",
        "host.example",
        "unknown",
        "_hidden",
        "::1:80:",
        "1.2.3.4/8",
        "fe80::1%eth0",
        "0000000000000000000000000000000000000000000000000000000000000000000000001.2.3.4",
    };
    struct proxies_addr a;
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (proxies_addr_parse(bad[i], strlen(bad[i]), &a) == 0)
            fail_msg("'%s' parsed", bad[i]);
    assert_int_equal(proxies_addr_parse("1.2.3.4\0x", 9, &a), TV_ERR_INVALID);
    a = addr("192.0.2.1:8080");
    assert_int_equal(a.v6, 0);
    assert_memory_equal(a.b, "\xc0\x00\x02\x01", 4);
    a = addr("[2001:db8::1]:443");
    assert_int_equal(a.v6, 1);
    a = addr("::ffff:192.0.2.1");
    assert_int_equal(a.v6, 0);
    assert_memory_equal(a.b, "\xc0\x00\x02\x01", 4);
}

/* The client of peer + XFF lines under list. */
static const char *client(const char *list, const char *peer, const char *const *xff, size_t n)
{
    static char out[INET6_ADDRSTRLEN];
    struct proxies *p = NULL;
    struct proxies_addr a;
    assert_int_equal(proxies_parse(list, &p, NULL, 0), 0);
    assert_int_equal(proxies_client(p, peer, xff, n, &a), 0);
    inet_ntop(a.v6 ? AF_INET6 : AF_INET, a.b, out, sizeof out);
    proxies_free(p);
    return out;
}

static void test_walk(void **state)
{
    static const struct {
        const char *list, *peer, *xff, *want;
    } cases[] = {
        /* No trusted proxies: the peer, whatever the header says. */
        {"", "203.0.113.9", "1.1.1.1", "203.0.113.9"},
        /* The peer is not trusted: its header is not believed. */
        {"10.0.0.0/8", "203.0.113.9", "1.1.1.1", "203.0.113.9"},
        /* One trusted proxy: the hop it appended. */
        {"10.0.0.0/8", "10.0.0.2", "198.51.100.7", "198.51.100.7"},
        /* The client forged hops on the left: only the rightmost untrusted one counts. */
        {"10.0.0.0/8", "10.0.0.2", "1.1.1.1, 2.2.2.2, 198.51.100.7", "198.51.100.7"},
        /* Two proxies in a chain. */
        {"10.0.0.0/8", "10.0.0.2", "1.1.1.1, 198.51.100.7, 10.0.0.5", "198.51.100.7"},
        /* Blanks, tabs and ports. */
        {"10.0.0.0/8", "10.0.0.2", " 1.1.1.1 ,\t198.51.100.7:5555 ,  10.0.0.5 ", "198.51.100.7"},
        /* Empty hops are skipped. */
        {"10.0.0.0/8", "10.0.0.2", "198.51.100.7,,  ,", "198.51.100.7"},
        /* Garbage right of the client ends the walk at the last trusted hop. */
        {"10.0.0.0/8", "10.0.0.2", "198.51.100.7, unknown", "10.0.0.2"},
        {"10.0.0.0/8", "10.0.0.2", "198.51.100.7, 10.0.0.9, <script>", "10.0.0.2"},
        {"10.0.0.0/8", "10.0.0.2", "198.51.100.7, garbage, 10.0.0.9", "10.0.0.9"},
        /* Every hop trusted: the leftmost. */
        {"10.0.0.0/8", "10.0.0.2", "10.1.1.1, 10.0.0.5", "10.1.1.1"},
        /* No header from a trusted peer: the peer. */
        {"10.0.0.0/8", "10.0.0.2", NULL, "10.0.0.2"},
        {"10.0.0.0/8", "10.0.0.2", "", "10.0.0.2"},
        /* IPv6 proxies and clients, with brackets and ports; mapped IPv4 peers. */
        {"2001:db8::/32", "2001:db8::1", "2001:db8:ffff::7, [2001:db8::2]:443", "2001:db8:ffff::7"},
        {"2001:db8::/32", "2001:db8::1", "[2001:db9::7]:1234", "2001:db9::7"},
        {"10.0.0.0/8", "::ffff:10.0.0.2", "198.51.100.7", "198.51.100.7"},
        {"::ffff:10.0.0.0/104", "10.0.0.2", "198.51.100.7", "198.51.100.7"},
        /* A prefix that is not byte-aligned. */
        {"192.0.2.0/25", "192.0.2.100", "198.51.100.7", "198.51.100.7"},
        {"192.0.2.0/25", "192.0.2.200", "198.51.100.7", "192.0.2.200"},
        /* 0.0.0.0/0 trusts every IPv4 hop: the leftmost IPv4 one, or the first IPv6. */
        {"0.0.0.0/0", "10.0.0.2", "2001:db8::9, 1.1.1.1", "2001:db8::9"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *xff[1] = {cases[i].xff};
        const char *got = client(cases[i].list, cases[i].peer, xff, cases[i].xff ? 1 : 0);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("case %zu (%s | %s): got %s, want %s", i, cases[i].peer,
                     cases[i].xff ? cases[i].xff : "-", got, cases[i].want);
    }
}

/* Several header lines count as one list in their order: the last line's last hop first. */
static void test_walk_lines(void **state)
{
    const char *xff[3] = {"1.1.1.1", NULL, "198.51.100.7, 10.0.0.3"};
    const char *forged[2] = {"6.6.6.6", "198.51.100.8"};
    (void)state;
    assert_string_equal(client("10.0.0.0/8", "10.0.0.2", xff, 3), "198.51.100.7");
    assert_string_equal(client("10.0.0.0/8", "10.0.0.2", forged, 2), "198.51.100.8");
    const char *trusted_only[2] = {"5.5.5.5", "10.0.0.3"};
    assert_string_equal(client("10.0.0.0/8", "10.0.0.2", trusted_only, 2), "5.5.5.5");
}

/* A huge header of trusted hops: the walk stops after PROXIES_HOPS_MAX hops at the last
 * trusted one, in time linear in the header. A huge single hop is garbage. */
static void test_walk_hostile_sizes(void **state)
{
    size_t cap = 200000, n = 0;
    char *big = malloc(cap);
    const char *xff[1] = {big};
    (void)state;
    assert_non_null(big);
    n += (size_t)snprintf(big, cap, "198.51.100.7");
    while (n + 16 < cap)
        n += (size_t)snprintf(big + n, cap - n, ", 10.0.%u.%u", (unsigned)(n / 251) % 250,
                              (unsigned)n % 250);
    const char *got = client("10.0.0.0/8", "10.0.0.2", xff, 1);
    assert_true(strncmp(got, "10.", 3) == 0);
    memset(big, '1', cap - 1);
    big[cap - 1] = '\0';
    assert_string_equal(client("10.0.0.0/8", "10.0.0.2", xff, 1), "10.0.0.2");
    memset(big, ',', cap - 1);
    assert_string_equal(client("10.0.0.0/8", "10.0.0.2", xff, 1), "10.0.0.2");
    free(big);
    /* Just within the hop limit, the client is found. */
    char few[PROXIES_HOPS_MAX * 12 + 32];
    n = (size_t)snprintf(few, sizeof few, "198.51.100.7");
    for (int i = 0; i < PROXIES_HOPS_MAX - 1; i++)
        n += (size_t)snprintf(few + n, sizeof few - n, ",10.0.0.%d", i + 1);
    xff[0] = few;
    assert_string_equal(client("10.0.0.0/8", "10.0.0.2", xff, 1), "198.51.100.7");
}

static void test_peer_unparsable(void **state)
{
    struct proxies_addr a;
    (void)state;
    assert_int_equal(proxies_client(NULL, "nonsense", NULL, 0, &a), TV_ERR_INVALID);
    assert_int_equal(proxies_client(NULL, NULL, NULL, 0, &a), TV_ERR_INVALID);
}

/* IPv4 by address, IPv6 by /64: two addresses of one /64 share a key, another /64 does not,
 * and an IPv4 address never meets an IPv6 one. */
static void test_client_key(void **state)
{
    uint8_t k1[PROXIES_CLIENT_KEY_LEN], k2[PROXIES_CLIENT_KEY_LEN];
    struct proxies_addr a;
    (void)state;
    a = addr("2001:db8:1:2::1");
    proxies_client_key(&a, k1);
    a = addr("2001:db8:1:2:ffff:ffff:ffff:ffff");
    proxies_client_key(&a, k2);
    assert_memory_equal(k1, k2, sizeof k1);
    a = addr("2001:db8:1:3::1");
    proxies_client_key(&a, k2);
    assert_memory_not_equal(k1, k2, sizeof k1);
    a = addr("192.0.2.1");
    proxies_client_key(&a, k1);
    a = addr("192.0.2.2");
    proxies_client_key(&a, k2);
    assert_memory_not_equal(k1, k2, sizeof k1);
    a = addr("::c000:201"); /* the same four bytes as IPv6 */
    proxies_client_key(&a, k2);
    assert_memory_not_equal(k1, k2, sizeof k1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_parse),      cmocka_unit_test(test_list_too_long),
        cmocka_unit_test(test_addr_parse),      cmocka_unit_test(test_walk),
        cmocka_unit_test(test_walk_lines),      cmocka_unit_test(test_walk_hostile_sizes),
        cmocka_unit_test(test_peer_unparsable), cmocka_unit_test(test_client_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
