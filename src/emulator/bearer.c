/* Entra bearer verification for acs-emulator (see bearer.h). The signature and claims are the
 * project's JWT code (auth/jwks.h, auth/jwt.h); what is added here is the RS256-only rule and an
 * optional issuer: jwt_claims_check always compares iss, so without a configured issuer the
 * token's own iss is read from the signature-verified payload and passed back as the expected
 * one. */
#include "bearer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <json-c/json.h>

#include "auth/jwks.h"
#include "auth/jwt.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "core/log.h"

#define BEARER_WAIT_MS 5000
#define BEARER_ISS_MAX 1024

struct emu_bearer {
    struct jwks *set;
    char *issuer; /* NULL: any */
};

static int bearer_is_url(const char *s)
{
    return strncasecmp(s, "http://", 7) == 0 || strncasecmp(s, "https://", 8) == 0;
}

/* Reads a whole small file into a malloc'd NUL-terminated string. */
static int bearer_read_file(const char *path, char **out, size_t *len)
{
    int rc = TV_ERR_CONFIG;
    FILE *f = fopen(path, "rb");
    char *p = NULL;
    size_t n;

    if (!f)
        goto out;
    p = malloc(JWKS_MAX_BODY + 1);
    if (!p) {
        rc = TV_ERR_NOMEM;
        goto out;
    }
    n = fread(p, 1, JWKS_MAX_BODY + 1, f);
    if (ferror(f) || n > JWKS_MAX_BODY)
        goto out;
    p[n] = '\0';
    *out = p;
    *len = n;
    p = NULL;
    rc = 0;
out:
    if (f)
        fclose(f);
    free(p);
    return rc;
}

int emu_bearer_new(const char *source, const char *issuer, struct emu_bearer **out)
{
    int rc = TV_ERR_NOMEM;
    struct emu_bearer *b = calloc(1, sizeof(*b));
    struct jwks_opts o;
    char *text = NULL;
    size_t len = 0;

    if (!b)
        goto out;
    if (issuer) {
        b->issuer = strdup(issuer);
        if (!b->issuer)
            goto out;
    }
    memset(&o, 0, sizeof(o));
    /* The emulator runs on test networks: plain http to any host is allowed. */
    o.allow_insecure_http = 1;
    if (bearer_is_url(source))
        o.jwks_url = source;
    rc = jwks_new(&o, &b->set);
    if (rc != 0) {
        log_msg(LOGL_ERROR, NULL, "--entra-jwks %s: %s", source, err_message(rc));
        rc = rc == TV_ERR_NOMEM ? rc : TV_ERR_CONFIG;
        goto out;
    }
    if (bearer_is_url(source)) {
        if (jwks_wait(b->set, BEARER_WAIT_MS) != 0)
            log_msg(LOGL_WARN, NULL,
                    "--entra-jwks %s: no keys yet; bearer tokens are refused "
                    "until a fetch succeeds",
                    source);
    } else {
        rc = bearer_read_file(source, &text, &len);
        if (rc == 0)
            rc = jwks_load_json(b->set, text, len);
        if (rc != 0) {
            log_msg(LOGL_ERROR, NULL, "--entra-jwks %s: not a readable JWKS with a usable key",
                    source);
            rc = rc == TV_ERR_NOMEM ? rc : TV_ERR_CONFIG;
            goto out;
        }
    }
    *out = b;
    b = NULL;
    rc = 0;
out:
    free(text);
    emu_bearer_free(b);
    return rc;
}

void emu_bearer_free(struct emu_bearer *b)
{
    if (b) {
        jwks_free(b->set);
        free(b->issuer);
        free(b);
    }
}

int emu_bearer_is_bearer(const char *authorization)
{
    return authorization && strncasecmp(authorization, "Bearer ", 7) == 0;
}

static int bearer_fail(char *why, size_t why_len, const char *reason)
{
    if (why_len)
        snprintf(why, why_len, "The bearer token is not valid: %s.", reason);
    return TV_ERR_UNAUTHORIZED;
}

int emu_bearer_check(struct emu_bearer *b, const char *authorization, int64_t skew_s, char *why,
                     size_t why_len)
{
    int rc;
    const char *tok;
    size_t len;
    struct jwt_header h;
    struct jwk *key = NULL;
    uint8_t *payload = NULL;
    size_t plen = 0;
    struct json_object *p = NULL;
    const char *iss = NULL;
    const char *reason = "no usable key";
    struct jwt_claims cl;
    struct jwt_expect e;

    memset(&cl, 0, sizeof(cl));
    if (!emu_bearer_is_bearer(authorization)) {
        rc = bearer_fail(why, why_len, "not a Bearer authorization");
        goto out;
    }
    tok = authorization + 7;
    while (*tok == ' ')
        tok++;
    len = strlen(tok);
    if (jwt_header_peek(tok, len, &h) != 0) {
        rc = bearer_fail(why, why_len, "malformed");
        goto out;
    }
    if (h.alg != JWT_ALG_RS256) {
        rc = bearer_fail(why, why_len, "only RS256 is accepted");
        goto out;
    }
    if (jwks_key_for(b->set, tok, len, &key, &reason) != 0 ||
        jwt_jws_verify(key, tok, len, &payload, &plen) != 0) {
        rc = bearer_fail(why, why_len, key ? "bad signature" : reason);
        goto out;
    }
    if (b->issuer) {
        iss = b->issuer;
    } else if (jsonx_parse((const char *)payload, plen, JWT_MAX_LEN, &p) != 0 ||
               jsonx_get_string(p, "iss", BEARER_ISS_MAX, &iss) != 0) {
        rc = bearer_fail(why, why_len, "no iss claim");
        goto out;
    }
    memset(&e, 0, sizeof(e));
    e.issuer = iss;
    e.audience = EMU_BEARER_AUD;
    /* Entra-protected APIs allow a few minutes of clock skew, not the emulator's own (larger)
     * allowance for HMAC dates: an expired token must fail here as it would at ACS. */
    e.leeway_s = skew_s <= 0 ? -1 : skew_s < EMU_BEARER_LEEWAY_S ? skew_s : EMU_BEARER_LEEWAY_S;
    rc = jwt_claims_check((const char *)payload, plen, &e, &cl);
    if (rc != 0) {
        /* A v1 token for the resource "https://communication.azure.com/" (what the managed
         * identity endpoints are asked for) carries the resource with its slash as aud. */
        jwt_claims_release(&cl);
        e.audience = EMU_BEARER_AUD "/";
        rc = jwt_claims_check((const char *)payload, plen, &e, &cl);
    }
    if (rc != 0) {
        rc = bearer_fail(why, why_len, "wrong issuer or audience, expired, or not yet valid");
        goto out;
    }
    if (cl.exp - (cl.iat > 0 ? cl.iat : time(NULL)) > EMU_BEARER_LIFETIME_MAX_S) {
        rc = bearer_fail(why, why_len, "lifetime longer than Entra issues");
        goto out;
    }
    rc = 0;
out:
    jwt_claims_release(&cl);
    json_object_put(p);
    free(payload);
    jwk_free(key);
    return rc;
}
