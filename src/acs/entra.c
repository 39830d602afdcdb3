/* Entra credential selection: environment snapshot -> description of the token request.
 *
 * Facts relied on (Azure Identity libraries and the Microsoft identity platform docs):
 * - Client credentials: POST {authority}/{tenant}/oauth2/v2.0/token, form-encoded, fields
 *   grant_type=client_credentials, client_id, scope, and client_secret; with a federated token
 *   (workload identity) client_assertion_type=urn:ietf:params:oauth:client-assertion-type:
 *   jwt-bearer and client_assertion=<the file's token> instead of client_secret. The answer has
 *   access_token and expires_in (seconds).
 * - App Service / Container Apps managed identity: GET {IDENTITY_ENDPOINT}?api-version=2019-08-01
 *   &resource=<scope without /.default>[&client_id=...], header X-IDENTITY-HEADER:
 *   {IDENTITY_HEADER}. The answer has expires_on (Unix seconds, sent as a string).
 * - IMDS: GET http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01
 *   &resource=...[&client_id=...], header Metadata: true. expires_in comes as a string.
 * - DefaultAzureCredential passes AZURE_CLIENT_ID to the managed identity as the user-assigned
 *   identity's client id. */
#include "acs/entra.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "core/err.h"
#include "core/netaddr.h"
#include "entra_int.h"

static int is_set(const char *v)
{
    return v != NULL && v[0] != '\0';
}

static int fits(const char *v)
{
    return v == NULL || strlen(v) < ENTRA_VALUE_MAX;
}

/* A tenant goes into the URL path, so it must be a plain name or GUID: nothing that could
 * change the path (/, ?, #, %, ..). */
static int tenant_ok(const char *t)
{
    if (t[0] == '.' || strlen(t) > 256)
        return 0;
    for (const char *p = t; *p; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '.';
        if (!ok)
            return 0;
    }
    return 1;
}

/* Visible ASCII only (0x21..0x7e): a value that goes into a header line or a URL as is. */
static int visible_ascii(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p < 0x21 || *p > 0x7e)
            return 0;
    }
    return 1;
}

/* The shape of a base URL from the environment: http:// or https://, visible ASCII, a non-empty
 * authority without user information, no fragment; with path_ok 0 nothing after the authority
 * but one "/" (an authority host or the IMDS address, to which the client appends its own path).
 * Stops "https://login.microsoftonline.com@evil.example" or ".../x?y=" from sending the secret
 * somewhere else than it appears to. */
static int base_url_ok(const char *u, int path_ok)
{
    const char *auth, *end;
    if (strncasecmp(u, "https://", 8) == 0)
        auth = u + 8;
    else if (strncasecmp(u, "http://", 7) == 0)
        auth = u + 7;
    else
        return 0;
    if (!visible_ascii(u) || strchr(u, '#') != NULL)
        return 0;
    end = auth + strcspn(auth, "/?");
    if (end == auth || memchr(auth, '@', (size_t)(end - auth)) != NULL)
        return 0;
    return path_ok || end[0] == '\0' || strcmp(end, "/") == 0;
}

int entra_pct_append(char *buf, size_t cap, size_t *len, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~';
        size_t need = plain ? 1 : 3;
        if (*len + need >= cap)
            return -1;
        if (plain) {
            buf[(*len)++] = (char)*p;
        } else {
            buf[(*len)++] = '%';
            buf[(*len)++] = hex[*p >> 4];
            buf[(*len)++] = hex[*p & 15];
        }
    }
    buf[*len] = '\0';
    return 0;
}

static int append_raw(char *buf, size_t cap, size_t *len, const char *s)
{
    size_t n = strlen(s);
    if (*len + n >= cap)
        return -1;
    memcpy(buf + *len, s, n + 1);
    *len += n;
    return 0;
}

static void add_pair(struct entra_field *arr, size_t *n, const char *name, const char *value,
                     int secret)
{
    /* Callers check lengths first (fits()); the arrays are sized for the most any kind adds. */
    struct entra_field *f = &arr[(*n)++];
    snprintf(f->name, sizeof(f->name), "%s", name);
    snprintf(f->value, sizeof(f->value), "%s", value);
    f->secret = secret;
}

/* url = base (trailing slashes dropped) + path + "?api-version=..&resource=..[&client_id=..]". */
static int build_mi_url(char *url, const char *base, const char *path, const char *api_version,
                        const char *client_id)
{
    size_t len = 0;
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    if (blen >= ENTRA_URL_MAX)
        return -1;
    memcpy(url, base, blen);
    url[blen] = '\0';
    len = blen;
    if (append_raw(url, ENTRA_URL_MAX, &len, path) != 0 ||
        append_raw(url, ENTRA_URL_MAX, &len,
                   strchr(base, '?') ? "&api-version=" : "?api-version=") != 0 ||
        entra_pct_append(url, ENTRA_URL_MAX, &len, api_version) != 0 ||
        append_raw(url, ENTRA_URL_MAX, &len, "&resource=") != 0 ||
        entra_pct_append(url, ENTRA_URL_MAX, &len, ENTRA_RESOURCE) != 0)
        return -1;
    if (is_set(client_id) && (append_raw(url, ENTRA_URL_MAX, &len, "&client_id=") != 0 ||
                              entra_pct_append(url, ENTRA_URL_MAX, &len, client_id) != 0))
        return -1;
    return 0;
}

static int fail(char *err, size_t errlen, const char *msg)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s", msg);
    return TV_ERR_CONFIG;
}

/* Variables of DefaultAzureCredential's other credentials, which tokenvend does not implement. */
static const char *const unsupported_vars[] = {
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_USERNAME",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "IMDS_ENDPOINT",
    "IDENTITY_SERVER_THUMBPRINT",
};

void entra_env_from_process(struct entra_env *env)
{
    env->tenant_id = getenv("AZURE_TENANT_ID");
    env->client_id = getenv("AZURE_CLIENT_ID");
    env->client_secret = getenv("AZURE_CLIENT_SECRET");
    env->federated_token_file = getenv("AZURE_FEDERATED_TOKEN_FILE");
    env->authority_host = getenv("AZURE_AUTHORITY_HOST");
    env->identity_endpoint = getenv("IDENTITY_ENDPOINT");
    env->identity_header = getenv("IDENTITY_HEADER");
    env->unsupported = NULL;
    for (size_t i = 0; i < sizeof(unsupported_vars) / sizeof(unsupported_vars[0]); i++) {
        const char *v = getenv(unsupported_vars[i]);
        if (is_set(v)) {
            env->unsupported = unsupported_vars[i];
            break;
        }
    }
}

/* Kinds 1 and 2: the token URL and the fields they share. */
static int describe_entra(const struct entra_env *env, struct entra_desc *d, char *err,
                          size_t errlen)
{
    const char *authority =
        is_set(env->authority_host) ? env->authority_host : ENTRA_AUTHORITY_DEFAULT;
    size_t len;
    if (!tenant_ok(env->tenant_id))
        return fail(err, errlen,
                    "AZURE_TENANT_ID: must be a tenant id or domain ([A-Za-z0-9.-] only)");
    /* The secret or assertion travels to this host: https only, plain http to loopback alone
     * (tests), as for the OIDC URLs. */
    if (!base_url_ok(authority, 0) || !netaddr_url_transport_ok(authority, 0))
        return fail(err, errlen,
                    "AZURE_AUTHORITY_HOST: must be https://host[:port] with no user information, "
                    "path, query or fragment (http:// only to loopback)");
    len = strlen(authority);
    while (len > 0 && authority[len - 1] == '/')
        len--;
    if (len + strlen(env->tenant_id) + 32 >= ENTRA_URL_MAX)
        return fail(err, errlen, "AZURE_AUTHORITY_HOST: too long");
    snprintf(d->url, sizeof(d->url), "%.*s/%s/oauth2/v2.0/token", (int)len, authority,
             env->tenant_id);
    d->post = 1;
    add_pair(d->fields, &d->n_fields, "grant_type", "client_credentials", 0);
    add_pair(d->fields, &d->n_fields, "client_id", env->client_id, 0);
    add_pair(d->fields, &d->n_fields, "scope", ENTRA_SCOPE, 0);
    return 0;
}

int entra_select(const struct entra_env *env, const char *imds_endpoint, struct entra_desc *out,
                 char *err, size_t errlen)
{
    int rc = 0;
    const char *imds = is_set(imds_endpoint) ? imds_endpoint : ENTRA_IMDS_DEFAULT;
    memset(out, 0, sizeof(*out));
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (!fits(env->tenant_id) || !fits(env->client_id) || !fits(env->client_secret) ||
        !fits(env->federated_token_file) || !fits(env->authority_host) ||
        !fits(env->identity_endpoint) || !fits(env->identity_header)) {
        rc = fail(err, errlen, "an AZURE_* or IDENTITY_* variable is longer than 1023 bytes");
        goto out;
    }
    if (is_set(env->tenant_id) && is_set(env->client_id) && is_set(env->client_secret)) {
        out->kind = ENTRA_CLIENT_SECRET;
        rc = describe_entra(env, out, err, errlen);
        if (rc != 0)
            goto out;
        add_pair(out->fields, &out->n_fields, "client_secret", env->client_secret, 1);
    } else if (is_set(env->federated_token_file) && is_set(env->tenant_id) &&
               is_set(env->client_id)) {
        out->kind = ENTRA_WORKLOAD_IDENTITY;
        rc = describe_entra(env, out, err, errlen);
        if (rc != 0)
            goto out;
        add_pair(out->fields, &out->n_fields, "client_assertion_type", ENTRA_CLIENT_ASSERTION_TYPE,
                 0);
        snprintf(out->assertion_file, sizeof(out->assertion_file), "%s", env->federated_token_file);
    } else if (is_set(env->identity_endpoint) && is_set(env->identity_header)) {
        out->kind = ENTRA_MANAGED_APPSVC;
        out->expires_on = 1;
        /* The endpoint is the platform's local token service (http://localhost:port/...), so
         * plain http is what it is; only a URL shape is demanded. */
        if (!base_url_ok(env->identity_endpoint, 1)) {
            rc = fail(err, errlen,
                      "IDENTITY_ENDPOINT: must be an http(s):// URL of visible ASCII with no user "
                      "information or fragment");
            goto out;
        }
        /* It goes into a header line as is: a CR or LF would add headers of its own. */
        if (!visible_ascii(env->identity_header)) {
            rc = fail(err, errlen,
                      "IDENTITY_HEADER: must be visible ASCII (no spaces or control "
                      "characters)");
            goto out;
        }
        if (build_mi_url(out->url, env->identity_endpoint, "", ENTRA_APPSVC_API_VERSION,
                         env->client_id) != 0) {
            rc = fail(err, errlen, "IDENTITY_ENDPOINT: too long");
            goto out;
        }
        add_pair(out->headers, &out->n_headers, "X-IDENTITY-HEADER", env->identity_header, 1);
    } else {
        out->kind = ENTRA_MANAGED_IMDS;
        if (!base_url_ok(imds, 0)) {
            rc = fail(err, errlen,
                      "imds_endpoint: must be http(s)://host[:port] with no user information, "
                      "path, query or fragment");
            goto out;
        }
        if (build_mi_url(out->url, imds, "/metadata/identity/oauth2/token", ENTRA_IMDS_API_VERSION,
                         env->client_id) != 0) {
            rc = fail(err, errlen, "imds_endpoint: too long");
            goto out;
        }
        add_pair(out->headers, &out->n_headers, "Metadata", "true", 0);
    }
out:
    if (rc != 0)
        entra_desc_clear(out);
    else
        out->ignored = env->unsupported;
    return rc;
}

const char *entra_kind_name(enum entra_kind kind)
{
    switch (kind) {
    case ENTRA_CLIENT_SECRET:
        return "client_secret";
    case ENTRA_WORKLOAD_IDENTITY:
        return "workload_identity";
    case ENTRA_MANAGED_APPSVC:
        return "managed_identity";
    case ENTRA_MANAGED_IMDS:
        return "managed_identity_imds";
    case ENTRA_NONE:
    default:
        return "none";
    }
}

static void describe_pairs(const struct entra_field *arr, size_t n, const char *label, char *out,
                           size_t cap, size_t *len)
{
    for (size_t i = 0; i < n && *len < cap; i++) {
        int w = snprintf(out + *len, cap - *len, " %s %s=%s", label, arr[i].name,
                         arr[i].secret ? "***" : arr[i].value);
        if (w < 0)
            return;
        *len += (size_t)w;
    }
}

void entra_desc_describe(const struct entra_desc *d, char *out, size_t cap)
{
    size_t len;
    int w;
    if (out == NULL || cap == 0)
        return;
    w = snprintf(out, cap, "credential=%s %s %s", entra_kind_name(d->kind),
                 d->post ? "POST" : "GET", d->url);
    len = w < 0 ? 0 : (size_t)w;
    describe_pairs(d->fields, d->n_fields, "field", out, cap, &len);
    describe_pairs(d->headers, d->n_headers, "header", out, cap, &len);
    if (d->assertion_file[0] != '\0' && len < cap) {
        w = snprintf(out + len, cap - len, " field client_assertion=<%s>", d->assertion_file);
        len += w < 0 ? 0 : (size_t)w;
    }
    if (d->ignored != NULL && len < cap)
        snprintf(out + len, cap - len,
                 " (ignored: %s is set, but that credential is not supported)", d->ignored);
}

void entra_desc_clear(struct entra_desc *d)
{
    if (d == NULL)
        return;
    /* Everything, not only the secret fields: cheaper to reason about than picking. */
    OPENSSL_cleanse(d, sizeof(*d));
}
