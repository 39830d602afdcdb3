/* ACS connection-string parser. The endpoint is normalised the way a WHATWG URL parser (which the
 * Azure SDK uses) would: scheme and host lower-cased, IPv6 in RFC 5952 form, default port
 * dropped, so that host_signed matches what the SDK puts into its signature. */
#include "acs/connstr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/b64.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/netaddr.h"

#define CONNSTR_HOST_MAX 253 /* longest DNS name; IPv6 text is shorter */

/* One "key=value" part of the string, as offsets into the caller's text. */
struct connstr_part {
    const char *val;
    size_t val_len;
    int seen;
};

/* The endpoint URL split into its normalised pieces. */
struct connstr_url {
    char scheme[6];                  /* "http" or "https" */
    char host[CONNSTR_HOST_MAX + 1]; /* lower-cased; IPv6 without brackets */
    int is_ipv6;
    int port; /* explicit or default */
    int default_port;
};

static int connstr_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static char connstr_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Case-insensitive comparison of p[0..n) against a lower-case literal. */
static int connstr_key_is(const char *p, size_t n, const char *lit)
{
    size_t i;

    if (strlen(lit) != n)
        return 0;
    for (i = 0; i < n; i++)
        if (connstr_lower(p[i]) != lit[i])
            return 0;
    return 1;
}

/* Only the reason is logged, never the text: the string carries the access key. */
static int connstr_fail(const char *why)
{
    log_msg(LOGL_WARN, NULL, "invalid ACS connection string: %s", why);
    return TV_ERR_PARSE;
}

/* Writes the RFC 5952 text of a 16-byte IPv6 address (as WHATWG URL serialises it: lower-case
 * hex, the first longest run of two or more zero groups compressed, no embedded IPv4). */
static void connstr_ipv6_text(const unsigned char a[16], char *out, size_t out_size)
{
    unsigned g[8];
    int i, best = -1, best_len = 0, run = -1, run_len = 0;
    size_t o = 0;

    for (i = 0; i < 8; i++)
        g[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
    for (i = 0; i < 8; i++) {
        if (g[i] == 0) {
            if (run < 0) {
                run = i;
                run_len = 0;
            }
            run_len++;
            if (run_len > best_len) {
                best = run;
                best_len = run_len;
            }
        } else {
            run = -1;
        }
    }
    if (best_len < 2)
        best = -1;
    for (i = 0; i < 8; i++) {
        if (i == best) {
            o += (size_t)snprintf(out + o, out_size - o, i == 0 ? "::" : ":");
            i += best_len - 1;
            continue;
        }
        o += (size_t)snprintf(out + o, out_size - o, "%x%s", g[i], i < 7 ? ":" : "");
    }
}

/* Host name characters accepted: ASCII letters, digits, '-', '.', '_'. Anything else (percent
 * escapes, non-ASCII names the SDK would punycode) is refused rather than half-normalised. */
static int connstr_host_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
}

/* True when the last dot-separated label is a number (decimal or 0x hex), which makes the
 * whole host an IPv4 address for a URL parser. */
static int connstr_host_is_numeric(const char *h)
{
    const char *last = strrchr(h, '.');
    size_t i, n;

    last = last ? last + 1 : h;
    n = strlen(last);
    if (n == 0)
        return 0;
    if (n >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X')) {
        for (i = 2; i < n; i++)
            if (!strchr("0123456789abcdefABCDEF", last[i]))
                return 0;
        return 1;
    }
    for (i = 0; i < n; i++)
        if (last[i] < '0' || last[i] > '9')
            return 0;
    return 1;
}

/* Parses the port text p[0..n): 1-5 digits, value 1..65535. */
static int connstr_port_parse(const char *p, size_t n, int *out)
{
    long v = 0;
    size_t i;

    if (n == 0 || n > 5)
        return connstr_fail("bad port");
    for (i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return connstr_fail("bad port");
        v = v * 10 + (p[i] - '0');
    }
    if (v < 1 || v > 65535)
        return connstr_fail("port out of range");
    *out = (int)v;
    return 0;
}

/* Splits and normalises the endpoint URL u[0..n). */
static int connstr_url_parse(const char *u, size_t n, struct connstr_url *url)
{
    const char *sep, *auth, *end = u + n, *auth_end, *host, *host_end, *port = NULL;
    size_t i, hn;

    sep = memchr(u, ':', n);
    if (!sep || end - sep < 3 || sep[1] != '/' || sep[2] != '/')
        return connstr_fail("endpoint is not an absolute URL");
    if (connstr_key_is(u, (size_t)(sep - u), "https")) {
        buf_copy_str(url->scheme, sizeof url->scheme, "https");
        url->default_port = 443;
    } else if (connstr_key_is(u, (size_t)(sep - u), "http")) {
        buf_copy_str(url->scheme, sizeof url->scheme, "http");
        url->default_port = 80;
    } else {
        return connstr_fail("endpoint scheme is not http or https");
    }
    auth = sep + 3;
    auth_end = auth;
    while (auth_end < end && *auth_end != '/' && *auth_end != '?' && *auth_end != '#')
        auth_end++;
    /* The only path allowed is "/": the client appends its own paths to the endpoint. */
    if (auth_end < end && !(*auth_end == '/' && auth_end + 1 == end))
        return connstr_fail("endpoint has a path, query or fragment");
    if (memchr(auth, '@', (size_t)(auth_end - auth)))
        return connstr_fail("endpoint has user information");
    if (auth < auth_end && *auth == '[') {
        const char *close = memchr(auth, ']', (size_t)(auth_end - auth));
        char tmp[64];
        unsigned char addr[16];

        if (!close)
            return connstr_fail("unterminated IPv6 address");
        host = auth + 1;
        host_end = close;
        hn = (size_t)(host_end - host);
        if (hn == 0 || hn >= sizeof(tmp))
            return connstr_fail("bad IPv6 address");
        memcpy(tmp, host, hn);
        tmp[hn] = '\0';
        if (inet_pton(AF_INET6, tmp, addr) != 1)
            return connstr_fail("bad IPv6 address");
        connstr_ipv6_text(addr, url->host, sizeof(url->host));
        url->is_ipv6 = 1;
        if (close + 1 < auth_end) {
            if (close[1] != ':')
                return connstr_fail("junk after IPv6 address");
            port = close + 2;
        }
    } else {
        host = auth;
        host_end = memchr(auth, ':', (size_t)(auth_end - auth));
        if (host_end)
            port = host_end + 1;
        else
            host_end = auth_end;
        hn = (size_t)(host_end - host);
        if (hn == 0)
            return connstr_fail("endpoint has no host");
        if (hn > CONNSTR_HOST_MAX)
            return connstr_fail("endpoint host too long");
        for (i = 0; i < hn; i++) {
            if (!connstr_host_char_ok(host[i]))
                return connstr_fail("endpoint host has a character outside [A-Za-z0-9._-]");
            url->host[i] = connstr_lower(host[i]);
        }
        url->host[hn] = '\0';
        url->is_ipv6 = 0;
        if (connstr_host_is_numeric(url->host)) {
            /* WHATWG reads a host ending in a number as IPv4 ("127.1", "0x7f.0.0.1") and signs
             * the dotted quad; inet_aton accepts the same legacy forms. */
            struct in_addr a4;
            if (inet_aton(url->host, &a4) == 0)
                return connstr_fail("bad IPv4 address");
            if (!inet_ntop(AF_INET, &a4, url->host, sizeof(url->host)))
                return connstr_fail("bad IPv4 address");
        }
    }
    url->port = url->default_port;
    if (port)
        return connstr_port_parse(port, (size_t)(auth_end - port), &url->port);
    return 0;
}

/* Finds the parts of s, trimmed of surrounding whitespace, and records endpoint and key. */
static int connstr_split(const char *s, size_t len, struct connstr_part *ep,
                         struct connstr_part *key)
{
    const char *p = s, *end = s + len;

    while (p <= end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *pe = semi ? semi : end, *eq, *k, *ke, *v, *ve;
        struct connstr_part *slot;

        k = p;
        ve = pe;
        while (k < ve && connstr_is_space(*k))
            k++;
        while (ve > k && connstr_is_space(ve[-1]))
            ve--;
        if (k == ve) {
            /* Only the last part may be empty: that is the optional trailing ';'. */
            if (p == s)
                return connstr_fail("empty");
            if (semi)
                return connstr_fail("empty part");
            break;
        }
        eq = memchr(k, '=', (size_t)(ve - k));
        if (!eq)
            return connstr_fail("part without '='");
        ke = eq;
        while (ke > k && connstr_is_space(ke[-1]))
            ke--;
        v = eq + 1;
        while (v < ve && connstr_is_space(*v))
            v++;
        if (connstr_key_is(k, (size_t)(ke - k), "endpoint"))
            slot = ep;
        else if (connstr_key_is(k, (size_t)(ke - k), "accesskey"))
            slot = key;
        else
            return connstr_fail("unknown key (expected endpoint and accesskey)");
        if (slot->seen)
            return connstr_fail("duplicate key");
        slot->seen = 1;
        slot->val = v;
        slot->val_len = (size_t)(ve - v);
        if (!semi)
            break;
        p = semi + 1;
    }
    if (!ep->seen || ep->val_len == 0)
        return connstr_fail("missing endpoint");
    if (!key->seen || key->val_len == 0)
        return connstr_fail("missing accesskey");
    return 0;
}

/* Fills the endpoint fields of cs from a parsed URL. 0 or TV_ERR_NOMEM (cs then holds what was
 * allocated: release it). */
static int connstr_fill(const struct connstr_url *url, struct acs_connstr *cs)
{
    char hostport[CONNSTR_HOST_MAX + 16];
    size_t n;
    if (url->port == url->default_port)
        snprintf(hostport, sizeof(hostport), url->is_ipv6 ? "[%s]" : "%s", url->host);
    else
        snprintf(hostport, sizeof(hostport), url->is_ipv6 ? "[%s]:%d" : "%s:%d", url->host,
                 url->port);
    n = strlen(url->scheme) + 3 + strlen(hostport) + 1;
    cs->scheme = strdup(url->scheme);
    cs->host = strdup(url->host);
    cs->host_signed = strdup(hostport);
    cs->endpoint = malloc(n);
    if (!cs->scheme || !cs->host || !cs->host_signed || !cs->endpoint)
        return TV_ERR_NOMEM;
    snprintf(cs->endpoint, n, "%s://%s", url->scheme, hostport);
    cs->port = url->port;
    return 0;
}

int acs_connstr_parse(const char *s, struct acs_connstr *out)
{
    struct connstr_part ep = {0}, kp = {0};
    struct connstr_url url = {0};
    struct acs_connstr cs = {0};
    size_t len, i;
    int rc = TV_ERR_PARSE;

    if (!s || !out)
        goto done;
    len = strnlen(s, ACS_CONNSTR_MAX + 1);
    if (len > ACS_CONNSTR_MAX) {
        rc = connstr_fail("longer than ACS_CONNSTR_MAX");
        goto done;
    }
    for (i = 0; i < len; i++) {
        /* Control bytes other than the whitespace trimmed below have no place here. */
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && !connstr_is_space((char)c)) || c == 0x7f) {
            rc = connstr_fail("control character");
            goto done;
        }
    }
    rc = connstr_split(s, len, &ep, &kp);
    if (rc)
        goto done;
    rc = connstr_url_parse(ep.val, ep.val_len, &url);
    if (rc)
        goto done;
    rc = b64_decode(kp.val, kp.val_len, &cs.key, &cs.key_len);
    if (rc == TV_ERR_PARSE) {
        rc = connstr_fail("accesskey is not valid base64");
        goto done;
    }
    if (rc)
        goto done;
    if (cs.key_len == 0) {
        rc = connstr_fail("accesskey is empty");
        goto release;
    }
    rc = connstr_fill(&url, &cs);
    if (rc)
        goto release;
    *out = cs;
    rc = 0;
    goto done;
release:
    acs_connstr_release(&cs);
done:
    return rc;
}

int acs_endpoint_parse(const char *s, struct acs_connstr *out)
{
    struct connstr_url url = {0};
    struct acs_connstr cs = {0};
    size_t len;
    int rc = TV_ERR_PARSE;

    if (!s || !out)
        goto done;
    len = strnlen(s, ACS_CONNSTR_MAX + 1);
    if (len > ACS_CONNSTR_MAX) {
        rc = connstr_fail("endpoint longer than ACS_CONNSTR_MAX");
        goto done;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f) {
            rc = connstr_fail("control character or space in the endpoint");
            goto done;
        }
    }
    rc = connstr_url_parse(s, len, &url);
    if (rc)
        goto done;
    /* A bearer token is not bound to one request as the HMAC signature is: its audience is every
     * ACS resource the identity has a role on. It travels over https only (plain http to
     * loopback alone: the emulator), as the Azure SDKs' bearer policy demands. */
    if (strcmp(url.scheme, "https") != 0 && !netaddr_url_transport_ok(s, 0)) {
        log_msg(LOGL_WARN, NULL,
                "invalid ACS endpoint: keyless mode needs https:// (plain "
                "http:// only to loopback)");
        rc = TV_ERR_PARSE;
        goto done;
    }
    rc = connstr_fill(&url, &cs);
    if (rc) {
        acs_connstr_release(&cs);
        goto done;
    }
    *out = cs;
done:
    return rc;
}

int acs_endpoint_check(const char *s)
{
    struct acs_connstr cs = {0};
    int rc = acs_endpoint_parse(s, &cs);
    acs_connstr_release(&cs);
    return rc;
}

void acs_connstr_release(struct acs_connstr *cs)
{
    if (!cs)
        return;
    if (cs->key) {
        OPENSSL_cleanse(cs->key, cs->key_len);
        free(cs->key);
    }
    free(cs->endpoint);
    free(cs->scheme);
    free(cs->host);
    free(cs->host_signed);
    memset(cs, 0, sizeof(*cs));
}
