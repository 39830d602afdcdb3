/* Trusted proxies and the X-Forwarded-For walk (core/proxies.h). Addresses are parsed with
 * inet_pton only: no name is ever resolved, and nothing but an address is believed. */
#include "core/proxies.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* Room for the longest IPv6 text (45 characters) in brackets with a port, and some. */
#define PROXIES_TEXT_MAX 64

struct proxies_net {
    struct proxies_addr a;
    int bits; /* prefix length: 0..32 or 0..128 */
};

struct proxies {
    size_t n;
    struct proxies_net nets[PROXIES_MAX];
};

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Trims blanks off [*s, *s + *len). */
static void trim(const char **s, size_t *len)
{
    while (*len > 0 && is_blank(**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && is_blank((*s)[*len - 1]))
        (*len)--;
}

static int parse_plain(const char *text, struct proxies_addr *out)
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    uint8_t b[16];

    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, text, b) == 1) {
        memcpy(out->b, b, 4);
        return 0;
    }
    if (inet_pton(AF_INET6, text, b) != 1)
        return TV_ERR_INVALID;
    if (memcmp(b, v4mapped, sizeof v4mapped) == 0) {
        memcpy(out->b, b + 12, 4);
        return 0;
    }
    out->v6 = 1;
    memcpy(out->b, b, 16);
    return 0;
}

/* Whether s[0..len) is ":" and 1..5 digits (a port some proxies append to each hop). */
static int is_port(const char *s, size_t len)
{
    if (len < 2 || len > 6 || s[0] != ':')
        return 0;
    for (size_t i = 1; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

int proxies_addr_parse(const char *s, size_t len, struct proxies_addr *out)
{
    char text[PROXIES_TEXT_MAX];
    const char *colon, *close;

    if (len == 0 || len >= sizeof text || memchr(s, '\0', len) != NULL)
        return TV_ERR_INVALID;
    if (s[0] == '[') {
        /* "[v6]" or "[v6]:port": only an IPv6 address goes in brackets. */
        close = memchr(s, ']', len);
        if (close == NULL || close == s + 1)
            return TV_ERR_INVALID;
        if ((size_t)(close - s) + 1 != len && !is_port(close + 1, len - (size_t)(close - s) - 1))
            return TV_ERR_INVALID;
        memcpy(text, s + 1, (size_t)(close - s) - 1);
        text[close - s - 1] = '\0';
        if (strchr(text, ':') == NULL)
            return TV_ERR_INVALID;
        return parse_plain(text, out);
    }
    memcpy(text, s, len);
    text[len] = '\0';
    colon = strchr(text, ':');
    if (colon != NULL && strchr(colon + 1, ':') == NULL) {
        /* One colon: "a.b.c.d:port". */
        if (!is_port(colon, strlen(colon)))
            return TV_ERR_INVALID;
        text[colon - text] = '\0';
        if (parse_plain(text, out) != 0 || out->v6)
            return TV_ERR_INVALID;
        return 0;
    }
    return parse_plain(text, out);
}

/* One list item: an address, optionally "/bits". */
static int parse_net(const char *s, size_t len, struct proxies_net *out)
{
    const char *slash = memchr(s, '/', len);
    size_t alen = slash != NULL ? (size_t)(slash - s) : len;
    const char *colon = memchr(s, ':', alen);
    int bits = -1, max;

    /* The list names hosts and prefixes: no brackets, no ports (one colon is a port). */
    if (alen == 0 || s[0] == '[' ||
        (colon != NULL && memchr(colon + 1, ':', alen - (size_t)(colon - s) - 1) == NULL) ||
        proxies_addr_parse(s, alen, &out->a) != 0)
        return TV_ERR_INVALID;
    max = out->a.v6 ? 128 : 32;
    if (slash != NULL) {
        size_t i = alen + 1;
        if (i == len || len - i > 3)
            return TV_ERR_INVALID;
        bits = 0;
        for (; i < len; i++) {
            if (s[i] < '0' || s[i] > '9')
                return TV_ERR_INVALID;
            bits = bits * 10 + (s[i] - '0');
        }
        /* An IPv4-mapped prefix counts in IPv4 bits. */
        if (!out->a.v6 && memchr(s, ':', alen) != NULL)
            bits -= 96;
        if (bits < 0 || bits > max)
            return TV_ERR_INVALID;
    }
    out->bits = bits < 0 ? max : bits;
    return 0;
}

int proxies_parse(const char *list, struct proxies **out, char *err, size_t errlen)
{
    struct proxies *p = NULL;
    const char *s = list != NULL ? list : "";
    int rc = TV_ERR_INVALID;

    *out = NULL;
    while (is_blank(*s))
        s++;
    if (*s == '\0')
        return 0;
    p = calloc(1, sizeof *p);
    if (p == NULL)
        return TV_ERR_NOMEM;
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t len = comma != NULL ? (size_t)(comma - s) : strlen(s);
        const char *item = s;
        trim(&item, &len);
        if (p->n == PROXIES_MAX) {
            if (errlen > 0)
                snprintf(err, errlen, "more than %d entries", PROXIES_MAX);
            goto out;
        }
        if (len == 0 || parse_net(item, len, &p->nets[p->n]) != 0) {
            if (errlen > 0)
                snprintf(err, errlen,
                         "'%.*s' is not an IPv4/IPv6 address or CIDR prefix (a.b.c.d[/n], "
                         "v6[/n])",
                         (int)(len < 60 ? len : 60), item);
            goto out;
        }
        p->n++;
        if (comma == NULL)
            break;
        s = comma + 1;
    }
    *out = p;
    p = NULL;
    rc = 0;
out:
    free(p);
    return rc;
}

void proxies_free(struct proxies *p)
{
    free(p);
}

static int in_net(const struct proxies_net *n, const struct proxies_addr *a)
{
    int full = n->bits / 8, rest = n->bits % 8;

    if (n->a.v6 != a->v6 || memcmp(n->a.b, a->b, (size_t)full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    return ((n->a.b[full] ^ a->b[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

int proxies_trusted(const struct proxies *p, const struct proxies_addr *a)
{
    if (p == NULL)
        return 0;
    for (size_t i = 0; i < p->n; i++)
        if (in_net(&p->nets[i], a))
            return 1;
    return 0;
}

int proxies_client(const struct proxies *p, const char *peer, const char *const *xff, size_t n,
                   struct proxies_addr *out)
{
    struct proxies_addr cur, hop;
    unsigned hops = 0;

    if (peer == NULL || proxies_addr_parse(peer, strlen(peer), &cur) != 0)
        return TV_ERR_INVALID;
    *out = cur;
    if (!proxies_trusted(p, &cur))
        return 0;
    /* Right to left over the lines, then over each line's comma-separated hops. */
    for (size_t line = n; line-- > 0;) {
        const char *v = xff[line];
        size_t end = v != NULL ? strlen(v) : 0;
        while (v != NULL) {
            size_t start = end;
            const char *item;
            size_t len;
            while (start > 0 && v[start - 1] != ',')
                start--;
            item = v + start;
            len = end - start;
            trim(&item, &len);
            if (++hops > PROXIES_HOPS_MAX)
                goto done;
            if (len > 0) {
                if (proxies_addr_parse(item, len, &hop) != 0)
                    goto done; /* not an address: the last trusted hop is all we know */
                cur = hop;
                if (!proxies_trusted(p, &cur))
                    goto done;
            }
            if (start == 0)
                break;
            end = start - 1;
        }
    }
done:
    *out = cur;
    return 0;
}

void proxies_client_key(const struct proxies_addr *a, uint8_t key[PROXIES_CLIENT_KEY_LEN])
{
    memset(key, 0, PROXIES_CLIENT_KEY_LEN);
    key[0] = a->v6 ? 6 : 4;
    memcpy(key + 1, a->b, a->v6 ? 8 : 4);
}
