/* Who the client of a request is, for per-address limits: the peer address, or, when the peer
 * is a trusted proxy (TOKENVEND_TRUSTED_PROXIES), the address the proxies recorded in
 * X-Forwarded-For. The header is read right to left (each proxy appends the address it
 * received from), skipping hops that are themselves trusted proxies; the first untrusted hop
 * is the client. Everything to its left was written by the client and is not believed.
 *
 * A client is named as the per-address connection cap names it: an IPv4 address (an
 * IPv4-mapped IPv6 address counts as its IPv4 address) or an IPv6 /64. Thread-safe once
 * built; never resolves names. */
#ifndef TV_CORE_PROXIES_H
#define TV_CORE_PROXIES_H

#include <stddef.h>
#include <stdint.h>

#define PROXIES_MAX 64           /* entries in a trusted-proxy list */
#define PROXIES_HOPS_MAX 32      /* X-Forwarded-For hops looked at, right to left */
#define PROXIES_CLIENT_KEY_LEN 9 /* family byte + 8 address bytes */

/* An address as text is parsed into this; prefix-free (a host). */
struct proxies_addr {
    int v6; /* 0: IPv4 (also from an IPv4-mapped IPv6 address), 1: IPv6 */
    uint8_t b[16];
};

struct proxies;

/* Parses a comma-separated list of IPv4/IPv6 addresses and CIDR prefixes ("10.0.0.0/8,
 * 192.0.2.7, ::1, 2001:db8::/32"; blanks around items allowed; "" = none) into *out (NULL for
 * an empty list). 0, or TV_ERR_INVALID with a one-line reason in err (errlen may be 0), or
 * TV_ERR_NOMEM. */
int proxies_parse(const char *list, struct proxies **out, char *err, size_t errlen);
void proxies_free(struct proxies *p);

/* Parses one address: IPv4 dotted quad, or IPv6 bare or in brackets, with no port. 0 or
 * TV_ERR_INVALID. */
int proxies_addr_parse(const char *s, size_t len, struct proxies_addr *out);
/* Whether a is in the list (NULL = empty list: never). */
int proxies_trusted(const struct proxies *p, const struct proxies_addr *a);

/* The client of a request from peer (its address as text) and the values of its
 * X-Forwarded-For header lines in the order they came (xff[0..n); NULL entries skipped), into
 * out. Without trusted proxies, or when the peer is not one, the peer. A hop that is not an
 * address ends the walk at the last trusted hop; so does PROXIES_HOPS_MAX hops; when every
 * hop is trusted, the leftmost is the client. 0, or TV_ERR_INVALID when peer itself does not
 * parse. */
int proxies_client(const struct proxies *p, const char *peer, const char *const *xff, size_t n,
                   struct proxies_addr *out);

/* The key the per-address limit counts a client under: a family byte and the IPv4 address or
 * the IPv6 /64, zero-padded, into key[PROXIES_CLIENT_KEY_LEN]. */
void proxies_client_key(const struct proxies_addr *a, uint8_t key[PROXIES_CLIENT_KEY_LEN]);

#endif
