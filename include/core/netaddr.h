/* Listen addresses: "host:port" or "[v6]:port" resolved to a socket address. Thread-safe;
 * may block on name resolution for a host name (numeric addresses do not). */
#ifndef TV_CORE_NETADDR_H
#define TV_CORE_NETADDR_H

#include <stddef.h>
#include <sys/socket.h>

/* Parses addr (port 0..65535, 0 = any) into *ss and, when non-NULL, its length into *len and
 * the host as written (IPv6 in brackets) into host_out[host_cap]. 0 or TV_ERR_CONFIG; outputs
 * are unspecified on failure. */
int netaddr_parse(const char *addr, struct sockaddr_storage *ss, socklen_t *len, char *host_out,
                  size_t host_cap);

#endif
