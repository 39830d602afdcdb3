/* Listen-address parsing shared by the service's HTTP layer and acs-emulator. */
#include "core/netaddr.h"

#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

int netaddr_parse(const char *addr, struct sockaddr_storage *ss, socklen_t *len, char *host_out,
                  size_t host_cap)
{
    char host[256];
    const char *port_s;
    char *end;
    unsigned long port;
    struct addrinfo hints, *res = NULL;
    int rc = TV_ERR_CONFIG;

    if (!addr || strlen(addr) >= sizeof(host))
        return TV_ERR_CONFIG;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':')
            return TV_ERR_CONFIG;
        snprintf(host, sizeof(host), "%.*s", (int)(close - addr - 1), addr + 1);
        port_s = close + 2;
        if (host_out)
            snprintf(host_out, host_cap, "[%s]", host);
    } else {
        const char *colon = strrchr(addr, ':');
        if (!colon || colon == addr)
            return TV_ERR_CONFIG;
        snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
        port_s = colon + 1;
        if (host_out)
            snprintf(host_out, host_cap, "%s", host);
    }
    port = strtoul(port_s, &end, 10);
    if (!*port_s || *end || port > 65535)
        return TV_ERR_CONFIG;
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
