/* Listen addresses: "host:port" or "[v6]:port" parsed (the only parser of them: configuration,
 * listeners and acs-emulator all come here), printed, and resolved to a socket address.
 * Thread-safe; may block on name resolution for a host name (numeric addresses do not). */
#ifndef TV_CORE_NETADDR_H
#define TV_CORE_NETADDR_H

#include <stddef.h>
#include <sys/socket.h>

/* The one host:port parser. Splits "host:port" or "[v6]:port" without resolving anything: the
 * host (brackets removed; non-empty, no blanks or '/', and an IPv6 address only in brackets) into
 * host[host_cap], the port (decimal, 0..65535) into *port. 0, or TV_ERR_CONFIG with *why (when
 * why is not NULL) set to a static reason such as "must be host:port". */
int netaddr_split(const char *addr, char *host, size_t host_cap, int *port, const char **why);
/* Writes host and port back as text: "host:port", or "[host]:port" when host holds a ':'.
 * 0, or TV_ERR_TOO_LARGE when out[cap] is too small (out then holds a cut string). */
int netaddr_format(const char *host, int port, char *out, size_t cap);

/* Splits addr with netaddr_split (port 0: any) and resolves it into *ss and, when non-NULL, its
 * length into *len and the host as written (IPv6 in brackets) into host_out[host_cap]. 0 or
 * TV_ERR_CONFIG; outputs are unspecified on failure. */
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
