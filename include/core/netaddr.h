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

/* Whether url ("http://" or "https://", any case) names a loopback host: an IPv4 address in
 * 127.0.0.0/8, [::1], or localhost (any case). The host is read after any userinfo ("user@");
 * one written in any other way (percent-escapes, a trailing dot, unusual characters) counts as
 * not loopback, so the answer errs on the safe side. Never resolves names. */
int netaddr_url_is_loopback(const char *url);
/* Whether url may carry what must not be read or changed on the way (OIDC discovery and keys):
 * https://, or http:// to a loopback host (see netaddr_url_is_loopback), or any http:// when
 * allow_http is set. 1 or 0. */
int netaddr_url_transport_ok(const char *url, int allow_http);

#endif
