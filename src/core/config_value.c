/* Value parsers behind the configuration loader: scope lists, host:port addresses, URLs and CORS
 * origin lists, booleans, and bounded reading of *_FILE values. Pure functions, thread-safe. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "config_int.h"
#include "core/acsnames.h"
#include "core/err.h"
#include "core/netaddr.h"

static const char *const scope_names[] = {ACS_SCOPES(ACS_NAME_ITEM, ) NULL};

_Static_assert(ACS_SCOPE_COUNT <= CONFIG_MAX_SCOPES, "a scope list can name every scope");

void config_list_release(struct config_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

const char *config_skip_blank(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Copies [p, p+n) without surrounding blanks into out (size outsz). 0, or -1 when too long. */
static int copy_trimmed(const char *p, size_t n, char *out, size_t outsz)
{
    while (n > 0 && (*p == ' ' || *p == '\t')) {
        p++;
        n--;
    }
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (n >= outsz)
        return -1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

int config_scopes_parse(const char *s, struct config_scopes *out, char *err, size_t errlen)
{
    struct config_scopes res = {0};
    const char *p = s;
    char item[64];

    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        const char *known = NULL;
        if (copy_trimmed(p, n, item, sizeof item) != 0) {
            snprintf(err, errlen, "scope name too long");
            return TV_ERR_INVALID;
        }
        if (item[0] == '\0') {
            snprintf(err, errlen, "empty scope in the list");
            return TV_ERR_INVALID;
        }
        for (size_t i = 0; scope_names[i] != NULL; i++) {
            if (strcmp(scope_names[i], item) == 0)
                known = scope_names[i];
        }
        if (known == NULL) {
            snprintf(err, errlen, "unknown scope '%s' (known: %s)", item, config_scope_names());
            return TV_ERR_INVALID;
        }
        int dup = 0;
        for (size_t i = 0; i < res.n; i++)
            dup |= res.items[i] == known;
        if (!dup) {
            if (res.n == CONFIG_MAX_SCOPES) {
                snprintf(err, errlen, "too many scopes");
                return TV_ERR_INVALID;
            }
            res.items[res.n++] = known;
        }
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    *out = res;
    return 0;
}

const char *config_scope_names(void)
{
    return ACS_SCOPE_LIST;
}

/* Parses "host:port" or "[v6]:port" (netaddr_split's rules). 0, or -1 with a reason in why. */
int config_addr_parse(const char *v, struct config_addr *out, const char **why)
{
    struct config_addr a;

    if (netaddr_split(v, a.host, sizeof a.host, &a.port, why) != 0)
        return -1;
    *out = a;
    return 0;
}

int config_url_ok(const char *v)
{
    const char *rest;
    if (strncmp(v, "https://", 8) == 0)
        rest = v + 8;
    else if (strncmp(v, "http://", 7) == 0)
        rest = v + 7;
    else
        return 0;
    if (rest[0] == '\0' || rest[0] == '/')
        return 0;
    for (const char *p = v; *p; p++) {
        if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p))
            return 0;
    }
    return 1;
}

/* A CORS origin is "*" or scheme://host[:port] with nothing after it. */
static int origin_ok(const char *v)
{
    if (strcmp(v, "*") == 0)
        return 1;
    if (!config_url_ok(v))
        return 0;
    const char *rest = strstr(v, "://") + 3;
    return strchr(rest, '/') == NULL;
}

int config_list_parse(const char *v, struct config_list *out, const char **bad, char *item,
                      size_t itemsz)
{
    struct config_list l = {0};
    const char *p = v;
    int rc = TV_ERR_INVALID;

    if (config_skip_blank(v)[0] == '\0') {
        *out = l;
        return 0;
    }
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (copy_trimmed(p, n, item, itemsz) != 0 || item[0] == '\0' || !origin_ok(item)) {
            *bad = "must be a comma-separated list of origins like https://app.example.com "
                   "(scheme://host[:port], no path) or *";
            goto fail;
        }
        char **grown = realloc(l.items, (l.n + 1) * sizeof *grown);
        if (grown == NULL) {
            rc = TV_ERR_NOMEM;
            goto fail;
        }
        l.items = grown;
        if ((l.items[l.n] = strdup(item)) == NULL) {
            rc = TV_ERR_NOMEM;
            goto fail;
        }
        l.n++;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    *out = l;
    return 0;
fail:
    config_list_release(&l);
    return rc;
}

int config_bool_parse(const char *v, int *out)
{
    static const char *const yes[] = {"on", "true", "yes", "1"};
    static const char *const no[] = {"off", "false", "no", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

int config_read_value_file(const char *path, size_t max, char **out, char *err, size_t errlen)
{
    int rc = TV_ERR_IO;
    int fd = -1;
    char *data = NULL;
    size_t len = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        goto done;
    }
    rc = TV_ERR_NOMEM;
    if ((data = malloc(max + 2)) == NULL)
        goto done;
    for (;;) {
        ssize_t n = read(fd, data + len, max + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = TV_ERR_IO;
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
            goto done;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max) {
            rc = TV_ERR_TOO_LARGE;
            snprintf(err, errlen, "%s is larger than %zu bytes", path, max);
            goto done;
        }
    }
    while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
        len--;
    data[len] = '\0';
    if (memchr(data, '\0', len) != NULL) {
        rc = TV_ERR_PARSE;
        snprintf(err, errlen, "%s holds a NUL byte", path);
        goto done;
    }
    *out = data;
    data = NULL;
    rc = 0;
done:
    if (data != NULL) {
        OPENSSL_cleanse(data, max + 2);
        free(data);
    }
    if (fd >= 0)
        close(fd);
    return rc;
}
