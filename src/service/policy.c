/* Token policy checks. The order of checks is part of the contract: a malformed body is a 400
 * even when it also names a forbidden scope, so that callers fix syntax before policy. */
#include "service/policy.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "core/err.h"
#include "core/jsonx.h"

#define SCOPE_NAME_MAX 32

/* The members a token request body may have (README "Public API"). */
static const char *const body_members[] = {"scopes", "expiresInMinutes", NULL};

static void say(char *msg, size_t msglen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(char *msg, size_t msglen, const char *fmt, ...)
{
    va_list ap;
    if (msg == NULL || msglen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
}

void policy_from_config(struct policy *p, const struct config *cfg)
{
    memset(p, 0, sizeof *p);
    p->allowed = cfg->allowed_scopes;
    p->defaults = cfg->default_scopes;
    p->default_minutes = (int)cfg->token_minutes;
    p->min_minutes = (int)cfg->token_min_minutes;
    p->max_minutes = (int)cfg->token_max_minutes;
    p->auto_create = cfg->auto_create;
}

void policy_token_req_default(const struct policy *p, struct policy_token_req *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < p->defaults.n && i < CONFIG_MAX_SCOPES; i++)
        out->scopes[out->nscopes++] = p->defaults.items[i];
    out->minutes = p->default_minutes;
}

static int scope_allowed(const struct policy *p, const char *name)
{
    for (size_t i = 0; i < p->allowed.n; i++) {
        if (strcmp(p->allowed.items[i], name) == 0)
            return 1;
    }
    return 0;
}

/* The policy's scopes as "a, b" (for the caller who named an unknown one: what they may ask
 * for, not every ACS scope). */
static void scopes_join(const struct config_scopes *l, char *out, size_t cap)
{
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = 0; i < l->n; i++) {
        int n = snprintf(out + used, cap - used, "%s%s", i ? ", " : "", l->items[i]);
        if (n < 0 || (size_t)n >= cap - used)
            break;
        used += (size_t)n;
    }
}

/* Reads the "scopes" array into r. Syntax problems are reported before policy ones. */
static int parse_scopes(const struct policy *p, struct json_object *arr, struct policy_token_req *r,
                        char *msg, size_t msglen)
{
    size_t n = json_object_array_length(arr);
    const char *forbidden = NULL;

    if (n == 0) {
        say(msg, msglen, "scopes must name at least one scope");
        return TV_ERR_INVALID;
    }
    if (n > CONFIG_MAX_SCOPES) {
        say(msg, msglen, "scopes may name at most %d scopes", CONFIG_MAX_SCOPES);
        return TV_ERR_INVALID;
    }
    r->nscopes = 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *it = json_object_array_get_idx(arr, i);
        struct config_scopes one;
        char why[128];
        const char *name;
        size_t len;

        if (!json_object_is_type(it, json_type_string)) {
            say(msg, msglen, "scopes must be an array of strings");
            return TV_ERR_INVALID;
        }
        name = json_object_get_string(it);
        len = (size_t)json_object_get_string_len(it);
        if (len == 0 || len > SCOPE_NAME_MAX || strlen(name) != len || strchr(name, ',') != NULL ||
            config_scopes_parse(name, &one, why, sizeof why) != 0 || one.n != 1) {
            char shown[SCOPE_NAME_MAX + 4];
            char allowed[POLICY_MSG_MAX];
            jsonx_excerpt(name, SCOPE_NAME_MAX, shown, sizeof shown);
            scopes_join(&p->allowed, allowed, sizeof allowed);
            say(msg, msglen, "unknown scope \"%s\"; allowed: %s", shown, allowed);
            return TV_ERR_INVALID;
        }
        if (forbidden == NULL && !scope_allowed(p, one.items[0]))
            forbidden = one.items[0];
        int dup = 0;
        for (size_t j = 0; j < r->nscopes; j++)
            dup |= r->scopes[j] == one.items[0];
        if (!dup)
            r->scopes[r->nscopes++] = one.items[0];
    }
    if (forbidden != NULL) {
        say(msg, msglen, "scope '%s' is not allowed by the policy", forbidden);
        return TV_ERR_FORBIDDEN;
    }
    return 0;
}

int policy_token_req_parse(const struct policy *p, const char *body, size_t len,
                           struct policy_token_req *out, char *msg, size_t msglen)
{
    struct json_object *root = NULL, *arr = NULL;
    struct policy_token_req r;
    int64_t minutes;
    int rc;

    policy_token_req_default(p, &r);
    if (len == 0) {
        *out = r;
        return 0;
    }
    rc = jsonx_parse(body, len, POLICY_BODY_MAX, &root);
    if (rc != 0) {
        say(msg, msglen, "the body is not valid JSON");
        rc = rc == TV_ERR_TOO_LARGE ? TV_ERR_INVALID : TV_ERR_PARSE;
        goto done;
    }
    if (!json_object_is_type(root, json_type_object)) {
        say(msg, msglen, "the body must be a JSON object");
        rc = TV_ERR_PARSE;
        goto done;
    }
    /* A misspelt member would otherwise be ignored and the defaults served in its place
     * (a 24-hour token where 60 minutes were meant): the first unknown one is a 400. */
    rc = jsonx_check_members(root, body_members, msg, msglen);
    if (rc != 0)
        goto done;
    /* The lifetime is checked first: both are syntax-level problems, and a forbidden scope
     * must not hide a malformed lifetime. */
    rc = jsonx_get_int(root, "expiresInMinutes", INT32_MIN, INT32_MAX, &minutes);
    if (rc == 0) {
        if (minutes < 60 || minutes > 1440 || minutes < p->min_minutes ||
            minutes > p->max_minutes) {
            say(msg, msglen, "expiresInMinutes must be an integer in %d..%d", p->min_minutes,
                p->max_minutes);
            rc = TV_ERR_INVALID;
            goto done;
        }
        r.minutes = (int)minutes;
    } else if (rc != TV_ERR_NOT_FOUND) {
        say(msg, msglen, "expiresInMinutes must be an integer in %d..%d", p->min_minutes,
            p->max_minutes);
        rc = TV_ERR_INVALID;
        goto done;
    }
    rc = jsonx_get_array(root, "scopes", &arr);
    if (rc == 0) {
        rc = parse_scopes(p, arr, &r, msg, msglen);
        if (rc != 0)
            goto done;
    } else if (rc != TV_ERR_NOT_FOUND) {
        say(msg, msglen, "scopes must be an array of strings");
        rc = TV_ERR_INVALID;
        goto done;
    }
    *out = r;
    rc = 0;
done:
    json_object_put(root);
    return rc;
}

void policy_scopes_format(const struct policy_token_req *r, char *out, size_t cap)
{
    size_t used = 0;
    if (cap == 0)
        return;
    out[0] = '\0';
    for (size_t i = 0; i < r->nscopes; i++) {
        int n = snprintf(out + used, cap - used, "%s%s", i ? "," : "", r->scopes[i]);
        if (n < 0 || (size_t)n >= cap - used)
            break;
        used += (size_t)n;
    }
}
