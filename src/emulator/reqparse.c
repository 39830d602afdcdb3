/* Request parsing for acs-emulator. Error texts follow the wording of the ACS service where it
 * is known and are safe to return to the client (they never echo a token). */
#include "reqparse.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include "core/acsnames.h"
#include "core/b64.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/jsonx.h"

#define REQ_TEAMS_TOKEN_MAX 16384

static const struct {
    const char *name;
    unsigned bit;
} req_scopes[] = {
#define REQ_SCOPE_ITEM(id, name) {name, EMU_SCOPE_##id},
    ACS_SCOPES(REQ_SCOPE_ITEM, )
#undef REQ_SCOPE_ITEM
};
#define REQ_NSCOPES (sizeof(req_scopes) / sizeof(req_scopes[0]))

static void req_why(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void req_why(char *why, size_t why_len, const char *fmt, ...)
{
    va_list ap;

    if (why_len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
}

void emu_scopes_str(unsigned scopes, char out[EMU_SCOPE_STR_MAX])
{
    size_t off = 0;

    out[0] = '\0';
    for (size_t i = 0; i < REQ_NSCOPES; i++) {
        if (scopes & req_scopes[i].bit)
            off += (size_t)snprintf(out + off, EMU_SCOPE_STR_MAX - off, "%s%s", off ? "," : "",
                                    req_scopes[i].name);
    }
}

/* True when only JSON whitespace is in body: the SDK sends an empty body for a plain create. */
static int req_blank(const char *body, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (body[i] != ' ' && body[i] != '\t' && body[i] != '\r' && body[i] != '\n')
            return 0;
    }
    return 1;
}

static int req_object(const char *body, size_t len, struct json_object **out, char *why,
                      size_t why_len)
{
    struct json_object *o = NULL;

    if (jsonx_parse(body, len, EMU_BODY_MAX, &o) != 0 ||
        !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        req_why(why, why_len, "%s", "The request body is not a valid JSON object.");
        return TV_ERR_INVALID;
    }
    *out = o;
    return 0;
}

/* Present and not null. */
static int req_has(struct json_object *o, const char *key)
{
    struct json_object *v;

    return json_object_object_get_ex(o, key, &v) && v != NULL;
}

static int req_scopes_parse(struct json_object *o, const char *key, unsigned *out, char *why,
                            size_t why_len)
{
    struct json_object *arr;
    unsigned bits = 0;
    size_t n;

    if (jsonx_get_array(o, key, &arr) != 0) {
        req_why(why, why_len, "The %s field must be an array of scopes.", key);
        return TV_ERR_INVALID;
    }
    n = json_object_array_length(arr);
    if (n == 0 || n > 16) {
        req_why(why, why_len, "The %s field must list between 1 and 16 scopes.", key);
        return TV_ERR_INVALID;
    }
    for (size_t i = 0; i < n; i++) {
        struct json_object *e = json_object_array_get_idx(arr, i);
        const char *s;
        size_t j;

        if (!json_object_is_type(e, json_type_string)) {
            req_why(why, why_len, "Every entry of %s must be a string.", key);
            return TV_ERR_INVALID;
        }
        s = json_object_get_string(e);
        for (j = 0; j < REQ_NSCOPES; j++) {
            if (strcmp(s, req_scopes[j].name) == 0)
                break;
        }
        if (j == REQ_NSCOPES) {
            /* Say which value, but keep the echo short and printable. */
            char shown[40];
            size_t k;
            for (k = 0; k + 1 < sizeof(shown) && s[k]; k++)
                shown[k] = isprint((unsigned char)s[k]) && s[k] != '"' ? s[k] : '?';
            shown[k] = '\0';
            req_why(why, why_len, "The scope \"%s\" is not valid; use " ACS_SCOPE_LIST ".", shown);
            return TV_ERR_INVALID;
        }
        bits |= req_scopes[j].bit;
    }
    *out = bits;
    return 0;
}

static int req_expires(struct json_object *o, enum emu_apiver v, int64_t *out, char *why,
                       size_t why_len)
{
    int64_t m;

    *out = EMU_EXPIRES_MAX;
    if (!req_has(o, "expiresInMinutes"))
        return 0;
    if (v < EMU_API_2022_10_01) {
        req_why(why, why_len, "The expiresInMinutes field needs api-version %s or later.",
                "2022-10-01");
        return TV_ERR_INVALID;
    }
    if (jsonx_get_int(o, "expiresInMinutes", INT32_MIN, INT32_MAX, &m) != 0) {
        req_why(why, why_len, "%s", "The expiresInMinutes field must be an integer.");
        return TV_ERR_INVALID;
    }
    if (m < EMU_EXPIRES_MIN || m > EMU_EXPIRES_MAX) {
        req_why(why, why_len, "%s",
                "The field ExpiresInMinutes must be between 60 and 1440 minutes.");
        return TV_ERR_INVALID;
    }
    *out = m;
    return 0;
}

/* customId of a create. Only the api-version that defines it takes it: a client sending it to
 * another one expects a guarantee (same customId, same identity) that version does not give, so
 * it hears so instead of getting a fresh identity every time. */
static int req_custom_id(struct json_object *o, enum emu_apiver v, char out[EMU_CUSTOM_ID_MAX + 1],
                         char *why, size_t why_len)
{
    const char *s = NULL;

    out[0] = '\0';
    if (!req_has(o, "customId"))
        return 0;
    if (v != EMU_API_2025_03_02_PREVIEW) {
        req_why(why, why_len, "The customId field needs api-version %s.",
                ACS_API_VERSION_CUSTOM_ID);
        return TV_ERR_INVALID;
    }
    if (jsonx_get_string(o, "customId", EMU_CUSTOM_ID_MAX, &s) != 0 || s[0] == '\0') {
        req_why(why, why_len, "The customId field must be a string of 1 to %d characters.",
                EMU_CUSTOM_ID_MAX);
        return TV_ERR_INVALID;
    }
    memcpy(out, s, strlen(s) + 1);
    return 0;
}

int emu_req_create(const char *body, size_t len, enum emu_apiver v, struct emu_token_req *out,
                   char *why, size_t why_len)
{
    int rc;
    struct json_object *o = NULL;
    struct emu_token_req r = {0, 0, EMU_EXPIRES_MAX, ""};

    if (req_blank(body, len)) {
        *out = r;
        return 0;
    }
    rc = req_object(body, len, &o, why, why_len);
    if (rc != 0)
        goto out;
    if (req_has(o, "createTokenWithScopes")) {
        rc = req_scopes_parse(o, "createTokenWithScopes", &r.scopes, why, why_len);
        if (rc != 0)
            goto out;
        r.want_token = 1;
    }
    rc = req_expires(o, v, &r.expires_in_minutes, why, why_len);
    if (rc != 0)
        goto out;
    rc = req_custom_id(o, v, r.custom_id, why, why_len);
    if (rc != 0)
        goto out;
    *out = r;
out:
    json_object_put(o);
    return rc;
}

int emu_req_issue(const char *body, size_t len, enum emu_apiver v, struct emu_token_req *out,
                  char *why, size_t why_len)
{
    int rc;
    struct json_object *o = NULL;
    struct emu_token_req r = {1, 0, EMU_EXPIRES_MAX, ""};

    if (req_blank(body, len)) {
        req_why(why, why_len, "%s", "The request body is required and must list scopes.");
        return TV_ERR_INVALID;
    }
    rc = req_object(body, len, &o, why, why_len);
    if (rc != 0)
        goto out;
    if (!req_has(o, "scopes")) {
        req_why(why, why_len, "%s", "The scopes field is required.");
        rc = TV_ERR_INVALID;
        goto out;
    }
    rc = req_scopes_parse(o, "scopes", &r.scopes, why, why_len);
    if (rc != 0)
        goto out;
    rc = req_expires(o, v, &r.expires_in_minutes, why, why_len);
    if (rc != 0)
        goto out;
    *out = r;
out:
    json_object_put(o);
    return rc;
}

/* Object ids are GUIDs; accept the characters a GUID can hold so the derived identity is safe
 * to put in a URL, a JSON string and a log line. */
static int req_oid_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > EMU_OID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)s[i]) && s[i] != '-')
            return 0;
    }
    return 1;
}

/* Decodes the payload segment of an unverified JWT. 0 or TV_ERR_PARSE. */
static int req_jwt_payload(const char *tok, struct json_object **out)
{
    int rc = TV_ERR_PARSE;
    const char *d1 = strchr(tok, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    struct json_object *o = NULL;

    if (!d1 || !d2 || d1 == tok || d2 == d1 + 1 || strchr(d2 + 1, '.'))
        goto out;
    if (b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &raw, &raw_len) != 0)
        goto out;
    if (jsonx_parse((const char *)raw, raw_len, REQ_TEAMS_TOKEN_MAX, &o) != 0 ||
        !json_object_is_type(o, json_type_object))
        goto out;
    *out = o;
    o = NULL;
    rc = 0;
out:
    json_object_put(o);
    if (raw) {
        OPENSSL_cleanse(raw, raw_len);
        free(raw);
    }
    return rc;
}

int emu_req_teams(const char *body, size_t len, int64_t now_s, struct emu_teams_req *out, char *why,
                  size_t why_len)
{
    int rc;
    struct json_object *o = NULL, *p = NULL;
    const char *token, *app_id, *user_id, *oid, *appid;
    int64_t exp;

    rc = req_object(body, len, &o, why, why_len);
    if (rc != 0)
        goto out;
    rc = TV_ERR_INVALID;
    if (jsonx_get_string(o, "token", REQ_TEAMS_TOKEN_MAX, &token) != 0 ||
        jsonx_get_string(o, "appId", 256, &app_id) != 0 ||
        jsonx_get_string(o, "userId", 256, &user_id) != 0) {
        req_why(why, why_len, "%s", "The token, appId and userId fields are required strings.");
        goto out;
    }
    if (!req_oid_ok(user_id)) {
        req_why(why, why_len, "%s", "The userId field must be an Entra object id.");
        goto out;
    }
    rc = TV_ERR_UNAUTHORIZED;
    if (req_jwt_payload(token, &p) != 0) {
        req_why(why, why_len, "%s", "The Entra ID token is malformed.");
        goto out;
    }
    if (jsonx_get_int(p, "exp", 0, INT64_MAX / 1000, &exp) != 0 ||
        jsonx_get_string(p, "oid", 256, &oid) != 0) {
        req_why(why, why_len, "%s", "The Entra ID token lacks the exp or oid claim.");
        goto out;
    }
    if (exp <= now_s) {
        req_why(why, why_len, "%s", "The Entra ID token has expired.");
        goto out;
    }
    if (jsonx_get_string(p, "appid", 256, &appid) != 0 &&
        jsonx_get_string(p, "azp", 256, &appid) != 0) {
        req_why(why, why_len, "%s", "The Entra ID token lacks the appid claim.");
        goto out;
    }
    rc = TV_ERR_INVALID;
    if (strcasecmp(oid, user_id) != 0) {
        req_why(why, why_len, "%s", "The userId does not match the oid claim of the token.");
        goto out;
    }
    if (strcasecmp(appid, app_id) != 0) {
        req_why(why, why_len, "%s", "The appId does not match the appid claim of the token.");
        goto out;
    }
    for (size_t i = 0; user_id[i]; i++)
        out->oid[i] = (char)tolower((unsigned char)user_id[i]);
    out->oid[strlen(user_id)] = '\0';
    out->exp_s = exp;
    rc = 0;
out:
    json_object_put(p);
    json_object_put(o);
    return rc;
}

int emu_pct_decode(const char *in, size_t len, char *out, size_t out_len)
{
    return buf_pct_decode(in, len, out, out_len) != 0 ? TV_ERR_INVALID : 0;
}

int emu_query_param(const char *query, const char *name, char *out, size_t out_len)
{
    int rc = TV_ERR_NOT_FOUND;
    size_t nlen = strlen(name);
    const char *p = query;

    while (p && *p) {
        const char *amp = strchr(p, '&');
        size_t seg = amp ? (size_t)(amp - p) : strlen(p);
        if (seg > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            if (rc == 0)
                return TV_ERR_INVALID; /* given twice: refuse rather than guess */
            if (emu_pct_decode(p + nlen + 1, seg - nlen - 1, out, out_len) != 0)
                return TV_ERR_INVALID;
            rc = 0;
        } else if (seg == nlen && strncmp(p, name, nlen) == 0) {
            return TV_ERR_INVALID; /* present without a value */
        }
        p = amp ? amp + 1 : NULL;
    }
    return rc;
}
