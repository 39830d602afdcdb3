/* Route patterns ("/a/{}/b"), percent-decoding of path parameters, request ids and the CORS
 * origin allow-list. Pure functions over their arguments; thread-safe. */
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "core/buf.h"
#include "core/err.h"
#include "http_int.h"

int http_pattern_check(const char *pattern)
{
    size_t nseg = 0, nparams = 0;
    const char *p = pattern;

    if (!p || p[0] != '/')
        return TV_ERR_CONFIG;
    if (strcmp(p, "/") == 0)
        return 0;
    while (*p == '/') {
        const char *seg = p + 1;
        const char *end = strchr(seg, '/');
        size_t len = end ? (size_t)(end - seg) : strlen(seg);

        if (len == 0 || ++nseg > HTTP_MAX_SEGMENTS)
            return TV_ERR_CONFIG; /* empty segment or trailing slash */
        if (memchr(seg, '{', len) || memchr(seg, '}', len)) {
            /* A parameter fills a whole segment; "{id}" style names would be unused text. */
            if (len != 2 || seg[0] != '{' || seg[1] != '}' || ++nparams > HTTP_MAX_PARAMS)
                return TV_ERR_CONFIG;
        }
        p = seg + len;
    }
    return *p == '\0' ? 0 : TV_ERR_CONFIG;
}

int http_pattern_match(const char *pattern, const char *path, size_t len,
                       struct http_span params[HTTP_MAX_PARAMS], size_t *nparams)
{
    const char *p = pattern;
    size_t i = 0, n = 0;

    if (strcmp(pattern, "/") == 0) {
        *nparams = 0;
        return len == 1 && path[0] == '/';
    }
    /* Walk both segment by segment; each step starts on a '/'. */
    while (*p == '/') {
        const char *pseg = p + 1;
        const char *pend = strchr(pseg, '/');
        size_t plen = pend ? (size_t)(pend - pseg) : strlen(pseg);
        size_t s, slen;

        if (i >= len || path[i] != '/')
            return 0;
        s = ++i;
        while (i < len && path[i] != '/')
            i++;
        slen = i - s;
        if (plen == 2 && pseg[0] == '{' && pseg[1] == '}') {
            if (slen == 0 || n >= HTTP_MAX_PARAMS)
                return 0;
            params[n].off = s;
            params[n].len = slen;
            n++;
        } else if (plen != slen || memcmp(pseg, path + s, slen) != 0) {
            return 0;
        }
        p = pseg + plen;
    }
    if (i != len)
        return 0;
    *nparams = n;
    return 1;
}

int http_percent_decode(const char *s, size_t len, char **out)
{
    char *d;

    if (len > HTTP_PARAM_MAX)
        return TV_ERR_PARSE;
    if ((d = malloc(len + 1)) == NULL)
        return TV_ERR_NOMEM;
    /* len + 1 bytes always hold the result: any failure is a bad escape or a NUL. */
    if (buf_pct_decode(s, len, d, len + 1) != 0) {
        free(d);
        return TV_ERR_PARSE;
    }
    *out = d;
    return 0;
}

int http_req_id_valid(const char *id)
{
    size_t n = 0;

    if (!id)
        return 0;
    for (; id[n]; n++) {
        char c = id[n];
        if (n >= HTTP_REQ_ID_MAX)
            return 0;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return n > 0;
}

/* Random bytes for request ids, drawn from OpenSSL's generator a batch at a time: one
 * RAND_bytes call costs about as much for 512 bytes as for 16, and a call per request was a
 * visible share of a cheap request's CPU. Per thread, so no lock; the ids are as random as
 * before. */
#define UUID_POOL_IDS 32

static _Thread_local unsigned char uuid_pool[UUID_POOL_IDS * 16];
static _Thread_local size_t uuid_pool_used = UUID_POOL_IDS * 16;

void http_uuid_new(char out[37])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    size_t i, j = 0;

    if (uuid_pool_used >= sizeof(uuid_pool)) {
        if (RAND_bytes(uuid_pool, sizeof(uuid_pool)) == 1) {
            uuid_pool_used = 0;
        } else {
            /* Ids only correlate log lines; uniqueness matters, secrecy does not. */
            for (i = 0; i < sizeof(b); i++)
                b[i] = (unsigned char)rand();
        }
    }
    if (uuid_pool_used < sizeof(uuid_pool)) {
        memcpy(b, uuid_pool + uuid_pool_used, sizeof(b));
        uuid_pool_used += sizeof(b);
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[j++] = '-';
        out[j++] = hex[b[i] >> 4];
        out[j++] = hex[b[i] & 15];
    }
    out[j] = '\0';
}

int http_cors_parse(struct http_listener *l, const char *list)
{
    const char *p = list;

    l->origins = NULL;
    l->norigins = 0;
    l->any_origin = 0;
    if (!p)
        return 0;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *s = p;
        char **grown;

        while (len > 0 && (*s == ' ' || *s == '\t')) {
            s++;
            len--;
        }
        while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
            len--;
        p = end ? end + 1 : p + strlen(p);
        if (len == 0)
            continue;
        if (len >= HTTP_ORIGIN_MAX)
            return TV_ERR_CONFIG;
        if (len == 1 && s[0] == '*') {
            l->any_origin = 1;
            continue;
        }
        grown = realloc(l->origins, (l->norigins + 1) * sizeof(*grown));
        if (!grown)
            return TV_ERR_NOMEM;
        l->origins = grown;
        l->origins[l->norigins] = strndup(s, len);
        if (!l->origins[l->norigins])
            return TV_ERR_NOMEM;
        l->norigins++;
    }
    return 0;
}

int http_cors_listed(const struct http_listener *l, const char *origin)
{
    size_t i;

    if (!origin || !*origin || strlen(origin) >= HTTP_ORIGIN_MAX)
        return 0;
    /* Exact, case-sensitive comparison: browsers send the serialised origin verbatim. */
    for (i = 0; i < l->norigins; i++)
        if (strcmp(l->origins[i], origin) == 0)
            return 1;
    return 0;
}

int http_cors_allowed(const struct http_listener *l, const char *origin)
{
    if (!origin || !*origin || strlen(origin) >= HTTP_ORIGIN_MAX)
        return 0;
    return l->any_origin || http_cors_listed(l, origin);
}
