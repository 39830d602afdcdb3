/* The database setting's value (include/core/dburi.h): its form and a loggable copy. */
#include "core/dburi.h"

#include <stdio.h>
#include <string.h>

#include "core/err.h"

int dburi_is_pg(const char *uri)
{
    return uri != NULL &&
           (strncmp(uri, "postgresql://", 13) == 0 || strncmp(uri, "postgres://", 11) == 0);
}

/* Appends src[0..n) to out at *len when it fits. */
static int put(char *out, size_t cap, size_t *len, const char *src, size_t n)
{
    if (*len + n >= cap)
        return -1;
    memcpy(out + *len, src, n);
    *len += n;
    out[*len] = '\0';
    return 0;
}

/* Replaces the value of every password= parameter in s[0..n) (at the start, or after '?',
 * '&' or a space) while copying it. */
static int put_redacting_params(char *out, size_t cap, size_t *len, const char *s, size_t n)
{
    static const char key[] = "password=";
    size_t i = 0;

    while (i < n) {
        int at_param = i == 0 || s[i - 1] == '?' || s[i - 1] == '&' || s[i - 1] == ' ';
        if (at_param && n - i >= sizeof(key) - 1 && strncmp(s + i, key, sizeof(key) - 1) == 0) {
            if (put(out, cap, len, key, sizeof(key) - 1) != 0 || put(out, cap, len, "***", 3) != 0)
                return -1;
            i += sizeof(key) - 1;
            while (i < n && s[i] != '&' && s[i] != ' ')
                i++;
            continue;
        }
        if (put(out, cap, len, s + i, 1) != 0)
            return -1;
        i++;
    }
    return 0;
}

int dburi_redact(const char *uri, char *out, size_t cap)
{
    const char *rest, *at, *colon;
    size_t len = 0;
    int rc = TV_ERR_TOO_LARGE;

    if (out == NULL || cap == 0)
        return TV_ERR_INVALID;
    out[0] = '\0';
    if (uri == NULL)
        return TV_ERR_INVALID;
    rest = strstr(uri, "://");
    if (rest == NULL) {
        /* Not a URI (key=value words, or nonsense): only password= can be found in it. */
        if (put_redacting_params(out, cap, &len, uri, strlen(uri)) != 0)
            goto fail;
        return 0;
    }
    rest += 3;
    if (put(out, cap, &len, uri, (size_t)(rest - uri)) != 0)
        goto fail;
    /* The user information ends at the last '@': a password with an unencoded '@' or '/' then
     * hides more than it must, never less. */
    at = strrchr(rest, '@');
    if (at != NULL) {
        colon = memchr(rest, ':', (size_t)(at - rest));
        if (colon != NULL) {
            if (put(out, cap, &len, rest, (size_t)(colon - rest)) != 0 ||
                put(out, cap, &len, ":***", 4) != 0)
                goto fail;
        } else if (put(out, cap, &len, rest, (size_t)(at - rest)) != 0) {
            goto fail;
        }
        rest = at;
    }
    if (put_redacting_params(out, cap, &len, rest, strlen(rest)) != 0)
        goto fail;
    return 0;
fail:
    out[0] = '\0';
    return rc;
}

void dburi_display(const char *db, char *out, size_t cap)
{
    if (out == NULL || cap == 0)
        return;
    if (db == NULL) {
        out[0] = '\0';
        return;
    }
    if (!dburi_is_pg(db)) {
        snprintf(out, cap, "%s", db);
        return;
    }
    if (dburi_redact(db, out, cap) != 0)
        snprintf(out, cap, "%s", "postgresql://<too long to show>");
}
