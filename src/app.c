/* The object graph of tokenvend serve and its lifecycle. Teardown order matters: the HTTP
 * server drains first (in-flight requests still get their ACS answers), then the service stops
 * submitting, the ACS client completes what is left, the service runs the last completions,
 * and only then is the store closed. */
#include "app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include "acs/client.h"
#include "acs/entra.h"
#include "api/api.h"
#include "app_int.h"
#include "auth/jwks.h"
#include "auth/password.h"
#include "auth/session.h"
#include "auth/vcache.h"
#include "core/aead.h"
#include "core/b64.h"
#include "core/budget.h"
#include "core/config.h"
#include "core/err.h"
#include "core/fsperm.h"
#include "core/log.h"
#include "core/netaddr.h"
#include "http/server.h"
#include "service/credcheck.h"
#include "service/maint.h"
#include "service/refresh.h"
#include "service/service.h"
#include "service/upstream_budget.h"
#include "store/meta.h"
#include "store/store.h"

#define APP_JWKS_STARTUP_WAIT_MS 2000 /* see app_start */

struct app {
    const struct config *cfg;
    struct store *store;
    struct acs_client *acs;
    struct upstream_budget *budget; /* the ACS client's gate; outlives the client */
    struct entra_cache *entra;      /* keyless mode only */
    struct jwks *jwks;
    struct session_key *session;
    struct api_login *login;
    struct vcache *vcache;
    struct api_limits *limits; /* caller limits */
    struct service *svc;
    struct maint *maint;         /* audit retention, off the request path */
    struct credcheck *credcheck; /* the ACS credential check of start-up, for /readyz */
    struct http_server *http;
    struct api_ctx api;
    struct service_refresh_cfg refresh; /* session refresh tokens, when local accounts are on */
    struct http_listener_opts listeners[2];
    char public_addr[ADDR_MAX];
    char internal_addr[ADDR_MAX];
    char *cors; /* comma-joined allow-list */
    int started, stopped;
};

static void addr_format(const struct config_addr *a, char *out, size_t cap)
{
    (void)netaddr_format(a->host, a->port, out, cap);
}

static int submit_acs(void *ctx, const struct acs_request *req, acs_done_fn done, void *arg)
{
    return acs_client_submit(ctx, req, done, arg);
}

/* The stored form of a fresh key: sealed under secret when there is one, else PKCS#8 DER. */
static int session_key_stored_form(const struct session_key *k, const uint8_t *secret,
                                   uint8_t **out, size_t *out_len)
{
    uint8_t *der = NULL;
    size_t derlen = 0;
    int rc = session_key_export(k, &der, &derlen);

    if (rc != 0)
        return rc;
    if (secret == NULL) {
        *out = der;
        *out_len = derlen;
        return 0;
    }
    rc = aead_seal(secret, SESSION_KEY_AD, der, derlen, out, out_len);
    OPENSSL_clear_free(der, derlen);
    return rc;
}

/* Turns the stored bytes into a key: opens them under secret when sealed; seals a clear key
 * in place when a secret is configured. A sealed key without the secret, or one the secret
 * does not open, is a configuration error: never a silent new key, which would end every
 * session and hide the mistake. */
static int session_key_from_stored(struct store *st, const uint8_t *stored, size_t len,
                                   const uint8_t *secret, struct session_key **out)
{
    uint8_t *plain = NULL, *sealed = NULL;
    size_t plen = 0, slen = 0;
    int rc;

    if (aead_is_sealed(stored, len)) {
        if (secret == NULL) {
            log_msg(LOGL_ERROR, NULL,
                    "the session signing key in the database is encrypted: set "
                    "TOKENVEND_SECRET_KEY (or TOKENVEND_SECRET_KEY_FILE) to the key it was "
                    "encrypted with");
            return TV_ERR_CONFIG;
        }
        rc = aead_open(secret, SESSION_KEY_AD, stored, len, &plain, &plen);
        if (rc == TV_ERR_UNAUTHORIZED || rc == TV_ERR_INVALID) {
            log_msg(LOGL_ERROR, NULL,
                    "TOKENVEND_SECRET_KEY does not decrypt the session signing key in the "
                    "database (another key?)");
            return TV_ERR_CONFIG;
        }
        if (rc != 0)
            return rc;
        rc = session_key_import(plain, plen, out);
        OPENSSL_clear_free(plain, plen);
        return rc;
    }
    if ((rc = session_key_import(stored, len, out)) != 0 || secret == NULL)
        return rc;
    /* A clear key from before the secret was set: seal it where it is. Two processes doing
     * this at once write the same key, so either write may win. */
    rc = aead_seal(secret, SESSION_KEY_AD, stored, len, &sealed, &slen);
    if (rc == 0)
        rc = store_meta_put(st, SESSION_META_KEY, sealed, slen);
    free(sealed);
    if (rc != 0) {
        session_key_free(*out);
        *out = NULL;
        return rc;
    }
    log_msg(LOGL_INFO, NULL,
            "the session signing key in the database is now encrypted with "
            "TOKENVEND_SECRET_KEY");
    return 0;
}

/* Loads the session signing key from the store, creating it on first use (sealed under the
 * configured secret key, if any). Two processes that start together agree on one key through
 * put_if_absent. */
static int session_key_load(struct store *st, const char *secret_b64, struct session_key **out)
{
    uint8_t *stored = NULL, buf[SESSION_KEY_MAX + AEAD_OVERHEAD], *secret = NULL;
    size_t slen = 0, len = 0;
    struct session_key *k = NULL;
    int inserted = 0, rc;

    if (secret_b64 != NULL && secret_b64[0] != '\0') {
        size_t n = 0;
        /* config_load checked it is the base64 of 32 bytes. */
        if ((rc = b64_decode(secret_b64, strlen(secret_b64), &secret, &n)) != 0)
            goto done;
        if (n != AEAD_KEY_LEN) {
            rc = TV_ERR_CONFIG;
            OPENSSL_clear_free(secret, n);
            secret = NULL;
            goto done;
        }
    }
    rc = store_meta_get(st, SESSION_META_KEY, buf, sizeof buf, &len);
    if (rc == TV_ERR_NOT_FOUND) {
        if ((rc = session_key_generate(&k)) != 0 ||
            (rc = session_key_stored_form(k, secret, &stored, &slen)) != 0)
            goto done;
        if ((rc = store_meta_put_if_absent(st, SESSION_META_KEY, stored, slen, &inserted)) != 0)
            goto done;
        if (inserted) {
            *out = k;
            k = NULL;
            goto done;
        }
        rc = store_meta_get(st, SESSION_META_KEY, buf, sizeof buf, &len);
    }
    if (rc != 0)
        goto done;
    rc = session_key_from_stored(st, buf, len, secret, out);
done:
    OPENSSL_cleanse(buf, sizeof buf);
    if (stored != NULL)
        OPENSSL_clear_free(stored, slen);
    if (secret != NULL)
        OPENSSL_clear_free(secret, AEAD_KEY_LEN);
    session_key_free(k);
    return rc;
}

static char *join_list(const struct config_list *l)
{
    size_t n = 1;
    char *s;

    for (size_t i = 0; i < l->n; i++)
        n += strlen(l->items[i]) + 1;
    if ((s = calloc(1, n)) == NULL)
        return NULL;
    /* Sized above: every item and its separator fit, with the NUL calloc left at the end. */
    for (size_t i = 0, at = 0; i < l->n; i++) {
        size_t len = strlen(l->items[i]);
        if (i > 0)
            s[at++] = ',';
        memcpy(s + at, l->items[i], len);
        at += len;
    }
    return s;
}

/* Local accounts: the session signing key, the login admission, the dummy hash. */
static int app_local_accounts_new(struct app *a)
{
    const struct config *cfg = a->cfg;
    struct api_login_opts lo = {
        .store = a->store,
        .login_limit = cfg->login_limit,
        .per_addr = (unsigned)cfg->login_per_address,
        .per_user = API_LOGIN_PER_USER,
    };
    int rc;

    if ((rc = session_key_load(a->store, cfg->secret_key, &a->session)) != 0) {
        log_msg(LOGL_ERROR, NULL, "cannot load or create the session signing key: %s",
                err_name(rc));
        return rc;
    }
    if ((rc = api_login_new(&lo, &a->login)) != 0)
        return rc;
    /* The dummy hash for unknown names costs one hash: pay it now, not in a login. */
    if ((rc = password_dummy_prepare()) != 0)
        log_msg(LOGL_ERROR, NULL, "cannot prepare password checks: %s", err_name(rc));
    return rc;
}

/* The callers' authentication: OIDC keys, local accounts, the verified-token cache. */
static int app_auth_new(struct app *a)
{
    const struct config *cfg = a->cfg;
    int rc;

    if (cfg->oidc_issuer[0] != '\0') {
        struct jwks_opts jo = {.jwks_url = cfg->oidc_jwks_url,
                               .issuer = cfg->oidc_issuer,
                               .allow_insecure_http = cfg->oidc_allow_insecure_http};
        if ((rc = jwks_new(&jo, &a->jwks)) != 0) {
            log_msg(LOGL_ERROR, NULL, "cannot set up the OIDC key set: %s", err_name(rc));
            /* A URL it refuses is the operator's to change (app_check_oidc saw it first). */
            return rc == TV_ERR_INVALID ? TV_ERR_CONFIG : rc;
        }
    }
    if (cfg->local_accounts && (rc = app_local_accounts_new(a)) != 0)
        return rc;
    if (cfg->auth_cache_max_entries > 0 && (a->jwks != NULL || a->session != NULL) &&
        (rc = vcache_new((size_t)cfg->auth_cache_max_entries, VCACHE_TTL_S, &a->vcache)) != 0) {
        log_msg(LOGL_ERROR, NULL, "cannot set up the verified-token cache: %s", err_name(rc));
        return rc;
    }
    return 0;
}

/* The domain: the service (over the store and the ACS client) and the maintenance thread. */
static int app_service_new(struct app *a)
{
    const struct config *cfg = a->cfg;
    struct service_opts so = {
        .store = a->store,
        .submit = submit_acs,
        .submit_ctx = a->acs,
        .resource = acs_client_resource(a->acs),
        .outbox_interval_ms = cfg->outbox_interval_ms,
        .outbox_backoff_max_ms = cfg->outbox_backoff_max_ms,
        /* A request's own ACS delete may take the whole ACS deadline; only after that (and a
         * margin) may the outbox worker treat the row as abandoned and retry it. */
        .outbox_lease_ms = cfg->acs_deadline_ms + 15000,
        .acs_deadline_ms = cfg->acs_deadline_ms,
        .cache = cfg->cache,
        .cache_min_remaining_minutes = cfg->cache_min_remaining_minutes,
        .cache_max_entries = cfg->cache_max_entries,
    };
    struct maint_opts mo = {
        .store = a->store,
        .audit_retention_days = cfg->audit_retention_days,
        .interval_ms = cfg->audit_prune_interval_ms,
    };
    uint8_t *cache_key = NULL;
    size_t cache_key_len = 0;
    int rc;

    policy_from_config(&so.policy, cfg);
    /* config_load checked it is the base64 of AEAD_KEY_LEN bytes; the service copies it. */
    if (cfg->cache && cfg->cache_key[0] != '\0') {
        if (b64_decode(cfg->cache_key, strlen(cfg->cache_key), &cache_key, &cache_key_len) != 0 ||
            cache_key_len != AEAD_KEY_LEN) {
            log_msg(LOGL_ERROR, NULL, "cache_key: not the base64 of 32 bytes");
            OPENSSL_clear_free(cache_key, cache_key_len);
            return TV_ERR_CONFIG;
        }
        so.cache_key = cache_key;
    }
    rc = service_new(&so, &a->svc);
    OPENSSL_clear_free(cache_key, cache_key_len);
    if (rc != 0)
        return rc;
    if ((rc = maint_new(&mo, &a->maint)) != 0)
        log_msg(LOGL_ERROR, NULL, "cannot set up the maintenance thread: %s", err_name(rc));
    return rc;
}

/* The caller limits and the HTTP server with its two listeners, not yet bound; the listeners'
 * context (a->api) is filled by app_api_fill once everything it points at exists. */
static int app_http_new(struct app *a)
{
    const struct config *cfg = a->cfg;
    const struct api_limits_opts lim = {.user = cfg->limit_user,
                                        .apikey = cfg->limit_apikey,
                                        .ip = cfg->limit_ip,
                                        .trusted_proxies = cfg->trusted_proxies};
    int rc;

    if ((rc = api_limits_new(&lim, &a->limits)) != 0)
        return rc;
    if ((a->cors = join_list(&cfg->cors_origins)) == NULL)
        return TV_ERR_NOMEM;
    addr_format(&cfg->public_addr, a->public_addr, sizeof a->public_addr);
    addr_format(&cfg->internal_addr, a->internal_addr, sizeof a->internal_addr);
    a->listeners[0] = (struct http_listener_opts){
        .name = "public", .addr = a->public_addr, .ctx = &a->api, .cors_origins = a->cors};
    a->listeners[0].routes = api_public_routes(&a->listeners[0].nroutes);
    a->listeners[1] =
        (struct http_listener_opts){.name = "internal", .addr = a->internal_addr, .ctx = &a->api};
    a->listeners[1].routes = api_internal_routes(&a->listeners[1].nroutes);
    struct http_server_opts ho = {
        .listeners = a->listeners,
        .nlisteners = 2,
        .body_max = (size_t)cfg->body_limit,
        /* The default leaves room for a bearer token just past JWT_MAX_LEN plus ordinary
         * headers, so an oversized token is refused by the verifier with 401, not with 431. */
        .header_mem = (size_t)cfg->header_limit,
        .conn_limit = (unsigned)cfg->max_connections,
        .per_ip_limit = (unsigned)cfg->max_connections_per_ip,
        .conn_timeout_s = (unsigned)cfg->connection_timeout_s,
        .request_timeout_s = (unsigned)cfg->request_timeout_s,
        .head_timeout_s = (unsigned)cfg->header_timeout_s,
    };
    if ((rc = http_server_new(&ho, &a->http)) != 0) {
        log_msg(LOGL_ERROR, NULL, "cannot set up the HTTP server: %s", err_name(rc));
        return rc;
    }
    return 0;
}

/* The API context every handler gets; read only once the server serves (app_start). */
static void app_api_fill(struct app *a)
{
    const struct config *cfg = a->cfg;

    a->refresh = (struct service_refresh_cfg){
        .session = a->session,
        .session_s = (int64_t)cfg->session_minutes * 60,
        .ttl_s = cfg->session_refresh_ttl_s,
        .max_s = cfg->session_refresh_max_s,
    };
    a->api = (struct api_ctx){
        .svc = a->svc,
        .store = a->store,
        .jwks = a->jwks,
        .session = a->session,
        .login = a->login,
        .vcache = a->vcache,
        .issuer = cfg->oidc_issuer,
        .audience = cfg->oidc_audience,
        .user_claim = cfg->oidc_user_claim,
        .session_minutes = cfg->session_minutes,
        .refresh = a->session != NULL && cfg->session_refresh_ttl_s > 0 ? &a->refresh : NULL,
        .acs = a->acs,
        .entra = a->entra,
        .maint = a->maint,
        .budget = a->budget,
        .metrics_apikey = strcmp(cfg->metrics_auth, "apikey") == 0,
        .limits = a->limits,
        .http = a->http,
    };
}

/* The upstream budget on the store (README "Upstream budget"); with acs_budget = off its gate
 * is NULL and the client asks nothing. */
static int app_budget_new(struct app *a)
{
    struct upstream_budget_opts bo = {.store = a->store, .deadline_ms = a->cfg->acs_deadline_ms};
    char why[300];
    int rc;

    if (budget_parse(a->cfg->acs_budget, &bo.cfg, why, sizeof why) != 0) {
        log_msg(LOGL_ERROR, NULL, "acs_budget: %s", why); /* config_load checked it already */
        return TV_ERR_CONFIG;
    }
    /* A grant must leave time for one useful attempt (README "Upstream budget"). */
    bo.min_attempt_ms =
        a->cfg->acs_attempt_timeout_ms < 1000 ? a->cfg->acs_attempt_timeout_ms : 1000;
    if ((rc = upstream_budget_new(&bo, &a->budget)) != 0) {
        log_msg(LOGL_ERROR, NULL, "cannot set up the ACS call budget: %s", err_name(rc));
        return rc;
    }
    return 0;
}

int app_new(const struct config *cfg, struct app **out)
{
    struct app *a = calloc(1, sizeof *a);
    int rc = TV_ERR_NOMEM;

    if (a == NULL)
        return rc;
    a->cfg = cfg;
    {
        struct app_check chk;
        if ((rc = app_config_check(cfg, &chk)) != 0) {
            log_msg(LOGL_ERROR, NULL, "%s", chk.why);
            goto fail;
        }
    }
    /* The listeners are bound before the store is opened: a port in use or a privileged one
     * stops the start with its reason before a database file is created or migrated. */
    if ((rc = app_http_new(a)) != 0)
        goto fail;
    if (http_server_bind(a->http) != 0) {
        rc = TV_ERR_CONFIG; /* the address is the operator's to change: exit 2, like a bad one */
        goto fail;
    }

    {
        struct store_opts so;
        char why[512];
        store_opts_from_config(cfg, &so);
        if ((rc = store_open_opts(&so, STORE_MIGRATE_YES, &a->store, why, sizeof why)) != 0) {
            log_msg(LOGL_ERROR, NULL, "cannot open the database: %s", why);
            goto fail;
        }
    }
    /* After the open, so the -wal and -shm files exist and are checked too. */
    (void)fsperm_warn_config(cfg);

    struct acs_client_opts ao;
    if ((rc = entra_cache_from_config(cfg, &a->entra)) != 0) {
        log_msg(LOGL_ERROR, NULL, "cannot set up the Entra credential: %s", err_name(rc));
        goto fail;
    }
    acs_client_opts_from_config(cfg, &ao);
    ao.entra = a->entra;
    if ((rc = app_budget_new(a)) != 0)
        goto fail;
    ao.gate = upstream_budget_gate(a->budget);
    if ((rc = acs_client_new(&ao, &a->acs)) != 0) {
        log_msg(LOGL_ERROR, NULL, "cannot set up the ACS client: %s", err_name(rc));
        goto fail;
    }

    if ((rc = app_auth_new(a)) != 0 || (rc = app_service_new(a)) != 0)
        goto fail;
    app_api_fill(a);
    *out = a;
    return 0;
fail:
    app_free(a);
    return rc;
}

int app_start(struct app *a)
{
    struct json_object *f;
    char pub[ADDR_MAX], in[ADDR_MAX];
    int rc;

    if ((rc = service_start(a->svc)) != 0)
        return rc;
    a->started = 1;
    if ((rc = maint_start(a->maint)) != 0)
        return rc;
    /* One harmless ACS call tells a wrong credential from a right one (README "/readyz"). */
    {
        struct credcheck_opts co = {.acs = a->acs, .store = a->store};
        if ((rc = credcheck_new(&co, &a->credcheck)) != 0)
            return rc;
        a->api.credcheck = a->credcheck;
    }
    /* The key set is fetched in the background from jwks_new on; give that first fetch a short
     * moment so the first bearer requests do not meet an empty set. An identity provider that
     * is down only delays the start by this much; bearer requests then get 503 until the keys
     * load (the fetcher keeps retrying). */
    if (a->jwks != NULL && jwks_wait(a->jwks, APP_JWKS_STARTUP_WAIT_MS) != 0)
        log_msg(LOGL_WARN, NULL, "OIDC signing keys not loaded yet; bearer requests get 503");
    if ((rc = http_server_start(a->http)) != 0)
        return rc;
    /* Report the ports actually bound (the configuration may say 0). */
    (void)netaddr_format(a->cfg->public_addr.host, (int)http_server_port(a->http, 0), pub,
                         sizeof pub);
    (void)netaddr_format(a->cfg->internal_addr.host, (int)http_server_port(a->http, 1), in,
                         sizeof in);
    f = json_object_new_object();
    json_object_object_add(f, "public_addr", json_object_new_string(pub));
    json_object_object_add(f, "internal_addr", json_object_new_string(in));
    json_object_object_add(f, "acs_resource", json_object_new_string(acs_client_resource(a->acs)));
    json_object_object_add(f, "oidc", json_object_new_boolean(a->jwks != NULL));
    json_object_object_add(f, "local_accounts", json_object_new_boolean(a->session != NULL));
    json_object_object_add(f, "token_cache", json_object_new_boolean(a->cfg->cache));
    json_object_object_add(f, "audit_retention_days",
                           json_object_new_int64(a->cfg->audit_retention_days));
    json_object_object_add(f, "metrics_auth", json_object_new_string(a->cfg->metrics_auth));
    log_fields(LOGL_INFO, NULL, "listening", f);
    json_object_put(f);
    return 0;
}

unsigned app_port(const struct app *a, int which)
{
    return a->started && a->http != NULL ? (unsigned)http_server_port(a->http, which) : 0;
}

void app_stop(struct app *a)
{
    if (a == NULL || a->stopped)
        return;
    a->stopped = 1;
    if (a->http != NULL)
        http_server_stop(a->http, (int)a->cfg->shutdown_drain_ms);
    /* Ends after at most the batch in progress (one short transaction). */
    if (a->maint != NULL)
        maint_stop(a->maint);
    /* No new ACS calls from here; the client then completes the ones in flight. */
    credcheck_stop(a->credcheck);
    service_stop(a->svc);
    acs_client_free(a->acs);
    a->acs = NULL;
    a->api.acs = NULL;
    /* After the client, whose shutdown took back the calls the budget kept. */
    upstream_budget_free(a->budget);
    a->budget = NULL;
    a->api.budget = NULL;
    entra_cache_stop(a->entra); /* after the client: it reads the cache to its last call */
    a->entra = NULL;
    a->api.entra = NULL;
    /* Only a service that served has requests to drain: a start refused on the way says its
     * reason alone. */
    if (a->started)
        log_msg(LOGL_INFO, NULL, "stopped: requests drained, ACS client closed");
}

void app_free(struct app *a)
{
    if (a == NULL)
        return;
    app_stop(a);
    service_free(a->svc);
    credcheck_free(a->credcheck); /* after the ACS client, which may still have run its call */
    maint_free(a->maint);
    http_server_free(a->http);
    jwks_free(a->jwks);
    session_key_free(a->session);
    api_login_free(a->login);
    vcache_free(a->vcache);
    api_limits_free(a->limits);
    store_close(a->store);
    free(a->cors);
    free(a);
}
