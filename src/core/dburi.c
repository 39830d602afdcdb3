/* The database setting's value (include/core/dburi.h): its form and a loggable copy. */
#include "core/dburi.h"

#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

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

static int puts_(char *out, size_t cap, size_t *len, const char *src)
{
    return put(out, cap, len, src, strlen(src));
}

/* Keywords whose values are secrets (libpq's own list: the password and the client key's). */
static int secret_keyword(const char *k)
{
    return strcmp(k, "password") == 0 || strcmp(k, "sslpassword") == 0;
}

/* The value libpq parsed for keyword k, or NULL when unset or empty. */
static const char *opt_value(const PQconninfoOption *info, const char *k)
{
    for (const PQconninfoOption *o = info; o->keyword != NULL; o++)
        if (strcmp(o->keyword, k) == 0)
            return o->val != NULL && o->val[0] != '\0' ? o->val : NULL;
    return NULL;
}

/* What libpq makes of s, or NULL when it cannot parse it. Free with PQconninfoFree. */
static PQconninfoOption *parse(const char *s)
{
    char *perr = NULL;
    PQconninfoOption *info = PQconninfoParse(s, &perr);

    /* libpq's message may quote the part it could not read, password included. */
    PQfreemem(perr);
    return info;
}

int dburi_is_conninfo(const char *db)
{
    PQconninfoOption *info;

    if (db == NULL || dburi_is_pg(db) || strchr(db, '=') == NULL)
        return 0;
    info = parse(db);
    PQconninfoFree(info);
    return info != NULL;
}

int dburi_has_secret(const char *db)
{
    PQconninfoOption *info;
    int secret;

    if (db == NULL || (!dburi_is_pg(db) && !dburi_is_conninfo(db)))
        return 0;
    info = parse(db);
    if (info == NULL)
        return 1; /* unreadable: it may hold anything */
    secret = opt_value(info, "password") != NULL || opt_value(info, "sslpassword") != NULL;
    PQconninfoFree(info);
    return secret;
}

/* Rebuilds what libpq understood from a URI: scheme://[user[:***]@]host[:port][/dbname] and
 * the other parameters as a query, secrets as ***. Built from the parsed values, never by
 * editing the text, so no spelling of a parameter (pass%77ord=) or stray '@' shows a secret. */
static int rebuild_uri(const char *uri, const PQconninfoOption *info, char *out, size_t cap)
{
    const char *user = opt_value(info, "user"), *host = opt_value(info, "host");
    const char *port = opt_value(info, "port"), *db = opt_value(info, "dbname");
    const char *sep = "?";
    size_t len = 0;

    if (puts_(out, cap, &len,
              strncmp(uri, "postgres://", 11) == 0 ? "postgres://" : "postgresql://"))
        return -1;
    if (user != NULL || opt_value(info, "password") != NULL) {
        if ((user != NULL && puts_(out, cap, &len, user)) ||
            (opt_value(info, "password") != NULL && puts_(out, cap, &len, ":***")) ||
            puts_(out, cap, &len, "@"))
            return -1;
    }
    if ((host != NULL && puts_(out, cap, &len, host)) ||
        (port != NULL && (puts_(out, cap, &len, ":") || puts_(out, cap, &len, port))) ||
        (db != NULL && (puts_(out, cap, &len, "/") || puts_(out, cap, &len, db))))
        return -1;
    for (const PQconninfoOption *o = info; o->keyword != NULL; o++) {
        const char *k = o->keyword;
        if (o->val == NULL || o->val[0] == '\0' || strcmp(k, "user") == 0 ||
            strcmp(k, "password") == 0 || strcmp(k, "host") == 0 || strcmp(k, "port") == 0 ||
            strcmp(k, "dbname") == 0)
            continue;
        if (puts_(out, cap, &len, sep) || puts_(out, cap, &len, k) || puts_(out, cap, &len, "=") ||
            puts_(out, cap, &len, secret_keyword(k) ? "***" : o->val))
            return -1;
        sep = "&";
    }
    return 0;
}

/* key=value form: every parameter libpq understood, secrets as ***. */
static int rebuild_conninfo(const PQconninfoOption *info, char *out, size_t cap)
{
    const char *sep = "";
    size_t len = 0;

    out[0] = '\0';
    for (const PQconninfoOption *o = info; o->keyword != NULL; o++) {
        if (o->val == NULL || o->val[0] == '\0')
            continue;
        if (puts_(out, cap, &len, sep) || puts_(out, cap, &len, o->keyword) ||
            puts_(out, cap, &len, "=") ||
            puts_(out, cap, &len, secret_keyword(o->keyword) ? "***" : o->val))
            return -1;
        sep = " ";
    }
    return 0;
}

int dburi_redact(const char *uri, char *out, size_t cap)
{
    PQconninfoOption *info;
    int bad;

    if (out == NULL || cap == 0)
        return TV_ERR_INVALID;
    out[0] = '\0';
    if (uri == NULL)
        return TV_ERR_INVALID;
    info = parse(uri);
    /* Unreadable, or more than one '@' (an unencoded '@' in a password leaves part of it in the
     * host or database name libpq reads): only the scheme is shown. */
    if (info == NULL || strchr(uri, '@') != strrchr(uri, '@')) {
        const char *msg = !dburi_is_pg(uri) ? "(not shown: not a connection string libpq reads)"
                          : info == NULL    ? "postgresql://(not shown: not a URI libpq reads)"
                                         : "postgresql://(not shown: more than one '@'; write '@' "
                                           "in a password as %40)";
        PQconninfoFree(info);
        if (strlen(msg) >= cap)
            return TV_ERR_TOO_LARGE;
        memcpy(out, msg, strlen(msg) + 1);
        return 0;
    }
    bad = dburi_is_pg(uri) ? rebuild_uri(uri, info, out, cap) : rebuild_conninfo(info, out, cap);
    PQconninfoFree(info);
    if (bad) {
        out[0] = '\0';
        return TV_ERR_TOO_LARGE;
    }
    return 0;
}

void dburi_display(const char *db, char *out, size_t cap)
{
    if (out == NULL || cap == 0)
        return;
    if (db == NULL) {
        out[0] = '\0';
        return;
    }
    if (!dburi_is_pg(db) && !dburi_is_conninfo(db)) {
        snprintf(out, cap, "%s", db);
        return;
    }
    if (dburi_redact(db, out, cap) != 0)
        snprintf(out, cap, "%s", "postgresql://<too long to show>");
}
