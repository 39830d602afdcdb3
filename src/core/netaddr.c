/* Listen-address parsing shared by the service's HTTP layer and acs-emulator, and the loopback
 * test of URLs that decides where plain http is acceptable. */
#include "core/netaddr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"

static int split_fail(const char **why, const char *reason)
{
    if (why != NULL)
        *why = reason;
    return TV_ERR_CONFIG;
}

int netaddr_split(const char *addr, char *host, size_t host_cap, int *port, const char **why)
{
    const char *colon, *h = addr;
    size_t hostlen;
    unsigned long pn;
    char *end;

    if (addr == NULL)
        return split_fail(why, "must be host:port");
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (close == NULL || close[1] != ':')
            return split_fail(why, "must be [ipv6]:port");
        h = addr + 1;
        hostlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        if ((colon = strrchr(addr, ':')) == NULL)
            return split_fail(why, "must be host:port");
        hostlen = (size_t)(colon - addr);
        if (memchr(addr, ':', hostlen) != NULL)
            return split_fail(why, "an IPv6 address must be written in brackets: [addr]:port");
    }
    if (hostlen == 0 || hostlen >= host_cap)
        return split_fail(why, "must be host:port with a non-empty host");
    for (size_t i = 0; i < hostlen; i++) {
        if (isspace((unsigned char)h[i]) || h[i] == '/')
            return split_fail(why, "has an invalid host");
    }
    /* Digits only: strtoul alone would take blanks, a sign or "0x". */
    if (strspn(colon + 1, "0123456789") != strlen(colon + 1) || colon[1] == '\0' ||
        strlen(colon + 1) > 5)
        return split_fail(why, "has a port that is not a number in 0..65535");
    pn = strtoul(colon + 1, &end, 10);
    if (pn > 65535)
        return split_fail(why, "has a port that is not a number in 0..65535");
    memcpy(host, h, hostlen);
    host[hostlen] = '\0';
    *port = (int)pn;
    return 0;
}

int netaddr_format(const char *host, int port, char *out, size_t cap)
{
    int n = snprintf(out, cap, strchr(host, ':') != NULL ? "[%s]:%d" : "%s:%d", host, port);

    return n < 0 || (size_t)n >= cap ? TV_ERR_TOO_LARGE : 0;
}

int netaddr_parse(const char *addr, struct sockaddr_storage *ss, socklen_t *len, char *host_out,
                  size_t host_cap)
{
    char host[256];
    int port;
    struct addrinfo hints, *res = NULL;
    int rc = TV_ERR_CONFIG;

    if (netaddr_split(addr, host, sizeof host, &port, NULL) != 0)
        return TV_ERR_CONFIG;
    if (host_out != NULL)
        snprintf(host_out, host_cap, strchr(host, ':') != NULL ? "[%s]" : "%s", host);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res || res->ai_addrlen > sizeof(*ss))
        goto out;
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    if (len)
        *len = res->ai_addrlen;
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)(void *)ss)->sin_port = htons((uint16_t)port);
    else if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)(void *)ss)->sin6_port = htons((uint16_t)port);
    else
        goto out;
    rc = 0;
out:
    if (res)
        freeaddrinfo(res);
    return rc;
}

int netaddr_url_is_loopback(const char *url)
{
    char host[64];
    const char *auth, *end, *at, *h, *hend;
    struct in_addr a4;
    struct in6_addr a6;
    size_t n;

    if (url == NULL)
        return 0;
    if (strncasecmp(url, "https://", 8) == 0)
        auth = url + 8;
    else if (strncasecmp(url, "http://", 7) == 0)
        auth = url + 7;
    else
        return 0;
    end = auth + strcspn(auth, "/?#");
    /* The host follows the last '@' of the authority (userinfo may not hold one unescaped). */
    h = auth;
    for (at = auth; at < end; at++) {
        if (*at == '@')
            h = at + 1;
    }
    if (h < end && *h == '[') {
        hend = memchr(h, ']', (size_t)(end - h));
        if (hend == NULL)
            return 0;
        h++;
    } else {
        hend = h;
        while (hend < end && *hend != ':')
            hend++;
    }
    n = (size_t)(hend - h);
    if (n == 0 || n >= sizeof host)
        return 0;
    memcpy(host, h, n);
    host[n] = '\0';
    if (strcasecmp(host, "localhost") == 0)
        return 1;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return 0;
}

int netaddr_url_transport_ok(const char *url, int allow_http)
{
    if (url == NULL)
        return 0;
    if (strncasecmp(url, "https://", 8) == 0)
        return 1;
    return strncasecmp(url, "http://", 7) == 0 && (allow_http || netaddr_url_is_loopback(url));
}
