/* The Teams exchange flow: checks that the caller's Teams token (a JWT, not verified here; ACS
 * does that) belongs to the authenticated caller, then asks ACS to exchange it. Runs like the
 * other flows (flows.c): entry on the caller's thread, the ACS outcome on a service worker. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include "core/b64.h"
#include "core/err.h"
#include "core/jsonx.h"
#include "service_int.h"

#define TEAMS_TOKEN_MAX (16 * 1024)

void flow_teams_done(struct flow *f)
{
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
    snprintf(detail, sizeof detail, "oid=%.90s appid=%.90s", f->teams_oid, f->teams_app);
    service_audit(s, &f->call, "teams_exchange", "", rc == 0 ? f->res.identity_id : "", rc, detail);
    flow_finish(f, rc, msg);
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
    struct flow *f = flow_start(s, FK_TEAMS, c, "-", done, arg);
    struct acs_request rq;
    size_t len;
    int rc;

    if (f == NULL)
        return;
    f->key[0] = '\0';
    len = teams_token != NULL ? strlen(teams_token) : 0;
    if (len == 0 || len > TEAMS_TOKEN_MAX) {
        flow_finish(f, TV_ERR_INVALID,
                    "header teams-user-aad-token must hold the Teams user's token");
        return;
    }
    if (teams_claims(teams_token, f->teams_oid, f->teams_app) != 0) {
        flow_finish(f, TV_ERR_INVALID,
                    "teams-user-aad-token is not a JWT with oid and appid (or azp) claims");
        return;
    }
    if (bearer_oid == NULL || bearer_oid[0] == '\0') {
        flow_finish(f, TV_ERR_FORBIDDEN, "the caller's token has no oid claim");
        return;
    }
    if (strlen(bearer_oid) != strlen(f->teams_oid) ||
        CRYPTO_memcmp(bearer_oid, f->teams_oid, strlen(bearer_oid)) != 0) {
        flow_finish(f, TV_ERR_FORBIDDEN, "the Teams token belongs to another user (oid differs)");
        return;
    }
    if ((f->teams_token = strdup(teams_token)) == NULL) {
        flow_finish(f, TV_ERR_NOMEM, NULL);
        return;
    }
    memset(&rq, 0, sizeof rq);
    rq.op = ACS_OP_TEAMS_EXCHANGE;
    rq.teams_token = f->teams_token;
    rq.teams_app_id = f->teams_app;
    rq.teams_user_id = f->teams_oid;
    rc = flow_submit(f, &rq);
    if (rc != 0) {
        service_audit(s, &f->call, "teams_exchange", "", "", rc, NULL);
        flow_finish(f, rc, NULL);
    }
}
