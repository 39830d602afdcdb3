/* The Teams exchange flow: checks that the caller's Teams token (a JWT, not verified here; ACS
 * does that) belongs to the authenticated caller, then asks ACS to exchange it. Runs like the
 * other flows (reqflow.c): entry on the caller's thread, the ACS outcome on a service worker. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include "core/b64.h"
#include "core/err.h"
#include "core/ident.h"
#include "core/jsonx.h"
#include "flow_int.h"
#include "service_int.h"

#define TEAMS_TOKEN_MAX (16 * 1024)
#define TEAMS_OID_MAX 128
#define TEAMS_APP_MAX 128

struct teams_flow {
    struct flow base; /* first: steps get &base */
    char *token;      /* a copy (secret, wiped) */
    char oid[TEAMS_OID_MAX + 1];
    char app[TEAMS_APP_MAX + 1];
    service_done_fn done;
    void *arg;
};

/* Reports the outcome to the caller exactly once and frees t (and its secrets). */
static void teams_finish(struct teams_flow *t, int rc, const char *msg)
{
    struct flow *f = &t->base;
    struct service_result r;

    memset(&r, 0, sizeof r);
    r.rc = rc;
    r.message = msg;
    r.acs_id = "";
    r.retry_after_s = flow_retry_after(f, rc);
    if (rc == 0) {
        r.acs_id = f->res.identity_id;
        r.token = f->res.token;
        r.expires_on = f->res.token != NULL ? f->res.expires_on : NULL;
        r.expires_on_ms = f->res.token != NULL ? f->res.expires_on_ms : 0;
    } else {
        atomic_fetch_add(&f->s->m_flow_errors, 1);
    }
    if (t->done != NULL)
        t->done(t->arg, &r);
    flow_release(f);
    if (t->token != NULL) {
        OPENSSL_cleanse(t->token, strlen(t->token));
        free(t->token);
    }
    free(t);
}

static void teams_done(struct flow *f)
{
    struct teams_flow *t = (struct teams_flow *)(void *)f;
    struct service *s = f->s;
    char detail[200];
    int rc = f->res.rc;
    const char *msg = rc == 0 ? NULL : flow_acs_message(f);

    /* ACS answers 401 for a Teams token it cannot accept (expired, malformed): that is the
     * caller's token, not our credentials (those fail with code "Denied"). */
    if (rc != 0 && f->res.http_status == 401 && strcmp(f->res.acs_code, "Denied") != 0) {
        rc = TV_ERR_UNAUTHORIZED;
        msg = "ACS did not accept the Teams token";
    }
    if (rc == 0)
        atomic_fetch_add(&s->m_exchanged, 1);
    /* Each claim cut to 90 bytes on a character boundary: a cut inside one would leave the
     * detail ill-formed, and PostgreSQL refuses such text (the row would be lost). */
    snprintf(detail, sizeof detail, "oid=%.*s appid=%.*s", (int)ident_utf8_prefix(t->oid, 90),
             t->oid, (int)ident_utf8_prefix(t->app, 90), t->app);
    service_audit(s, &f->call, "teams_exchange", "", rc == 0 ? f->res.identity_id : "", rc, detail);
    teams_finish(t, rc, msg);
}

/* Reads oid and appid/azp from the payload of a JWT without verifying it. 0 or TV_ERR_INVALID. */
static int teams_claims(const char *token, char oid[TEAMS_OID_MAX + 1], char app[TEAMS_APP_MAX + 1])
{
    const char *d1 = strchr(token, '.'), *d2;
    struct json_object *payload = NULL;
    uint8_t *raw = NULL;
    size_t rawlen = 0;
    const char *v;
    int rc = TV_ERR_INVALID;

    if (d1 == NULL || (d2 = strchr(d1 + 1, '.')) == NULL || strchr(d2 + 1, '.') != NULL ||
        d1 == token || d2 == d1 + 1)
        goto done;
    if (b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &raw, &rawlen) != 0)
        goto done;
    if (jsonx_parse((const char *)raw, rawlen, TEAMS_TOKEN_MAX, &payload) != 0 ||
        !json_object_is_type(payload, json_type_object))
        goto done;
    if (jsonx_get_string(payload, "oid", TEAMS_OID_MAX, &v) != 0)
        goto done;
    service_copy_str(oid, TEAMS_OID_MAX + 1, v);
    if (jsonx_get_string(payload, "appid", TEAMS_APP_MAX, &v) != 0 &&
        jsonx_get_string(payload, "azp", TEAMS_APP_MAX, &v) != 0)
        goto done;
    service_copy_str(app, TEAMS_APP_MAX + 1, v);
    rc = 0;
done:
    json_object_put(payload);
    if (raw != NULL) {
        OPENSSL_cleanse(raw, rawlen);
        free(raw);
    }
    return rc;
}

void service_teams_exchange(struct service *s, const struct service_call *c, const char *bearer_oid,
                            const char *teams_token, service_done_fn done, void *arg)
{
    struct teams_flow *t = calloc(1, sizeof *t);
    struct acs_request rq;
    size_t len;
    int rc;

    if (t == NULL) {
        struct service_result r = {.rc = TV_ERR_NOMEM, .acs_id = ""};
        if (done != NULL)
            done(arg, &r);
        return;
    }
    flow_init(&t->base, s, c);
    t->done = done;
    t->arg = arg;
    len = teams_token != NULL ? strlen(teams_token) : 0;
    if (len == 0 || len > TEAMS_TOKEN_MAX) {
        teams_finish(t, TV_ERR_INVALID,
                     "header teams-user-aad-token must hold the Teams user's token");
        return;
    }
    if (teams_claims(teams_token, t->oid, t->app) != 0) {
        teams_finish(t, TV_ERR_INVALID,
                     "teams-user-aad-token is not a JWT with oid and appid (or azp) claims");
        return;
    }
    if (bearer_oid == NULL || bearer_oid[0] == '\0') {
        teams_finish(t, TV_ERR_FORBIDDEN, "the caller's token has no oid claim");
        return;
    }
    if (strlen(bearer_oid) != strlen(t->oid) ||
        CRYPTO_memcmp(bearer_oid, t->oid, strlen(bearer_oid)) != 0) {
        teams_finish(t, TV_ERR_FORBIDDEN, "the Teams token belongs to another user (oid differs)");
        return;
    }
    if ((t->token = strdup(teams_token)) == NULL) {
        teams_finish(t, TV_ERR_NOMEM, NULL);
        return;
    }
    memset(&rq, 0, sizeof rq);
    rq.op = ACS_OP_TEAMS_EXCHANGE;
    rq.teams_token = t->token;
    rq.teams_app_id = t->app;
    rq.teams_user_id = t->oid;
    rc = flow_submit(&t->base, &rq, teams_done);
    if (rc != 0) {
        service_audit(s, &t->base.call, "teams_exchange", "", "", rc, NULL);
        teams_finish(t, rc, NULL);
    }
}
