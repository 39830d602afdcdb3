/* Construction of an acs-emulator instance. With --db, the signing key, the generated access
 * key and the resource id are stored beside the identities, so a restarted emulator keeps
 * validating its old tokens and keeps its connection string. */
#include "app.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "core/b64.h"
#include "core/err.h"
#include "core/log.h"
#include "bearer.h"
#include "persist.h"
#include "reuse.h"
#include "state.h"
#include "tokens.h"

#define APP_GENERATED_KEY_LEN 64

void emu_config_defaults(struct emu_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->listen = "127.0.0.1:0";
    emu_fault_set_clear(&cfg->faults);
    cfg->rate_limits[EMU_OP_CREATE] = 1000;
    cfg->rate_limits[EMU_OP_ISSUE] = 1000;
    cfg->rate_limits[EMU_OP_REVOKE] = 500;
    cfg->rate_limits[EMU_OP_DELETE] = 500;
    cfg->rate_limits[EMU_OP_TEAMS_EXCHANGE] = 1000;
    cfg->rate_window_s = 30;
    cfg->max_skew_s = 600;
}

static int app_keys(struct emu_app *app)
{
    int rc;
    char *pem = NULL;

    if (app->db) {
        rc = emu_persist_meta_get(app->db, "signing_key", &pem);
        if (rc == 0) {
            rc = emu_keys_from_pem(pem, strlen(pem), &app->keys);
            if (rc != 0)
                log_msg(LOGL_ERROR, NULL, "the stored signing key does not load");
            goto out;
        }
        if (rc != TV_ERR_NOT_FOUND)
            goto out;
    }
    rc = emu_keys_generate(&app->keys);
    if (rc != 0 || !app->db)
        goto out;
    rc = emu_keys_to_pem(app->keys, &pem);
    if (rc == 0)
        rc = emu_persist_meta_put(app->db, "signing_key", pem);
out:
    if (pem) {
        OPENSSL_cleanse(pem, strlen(pem));
        free(pem);
    }
    return rc;
}

static int app_access_key(struct emu_app *app, const struct emu_config *cfg)
{
    int rc = 0;
    char *stored = NULL;
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    char enc[128]; /* base64 of APP_GENERATED_KEY_LEN bytes */

    if (cfg->access_key) {
        if (cfg->access_key_len == 0 || cfg->access_key_len > sizeof(app->access_key))
            return TV_ERR_CONFIG;
        memcpy(app->access_key, cfg->access_key, cfg->access_key_len);
        app->access_key_len = cfg->access_key_len;
        return 0;
    }
    if (app->db) {
        rc = emu_persist_meta_get(app->db, "access_key", &stored);
        if (rc == 0) {
            if (b64_decode(stored, strlen(stored), &raw, &raw_len) != 0 || raw_len == 0 ||
                raw_len > sizeof(app->access_key)) {
                log_msg(LOGL_ERROR, NULL, "the stored access key is not valid base64");
                rc = TV_ERR_CONFIG;
                goto out;
            }
            memcpy(app->access_key, raw, raw_len);
            app->access_key_len = raw_len;
            goto out;
        }
        if (rc != TV_ERR_NOT_FOUND)
            goto out;
    }
    rc = TV_ERR_CRYPTO;
    if (RAND_bytes(app->access_key, APP_GENERATED_KEY_LEN) != 1)
        goto out;
    app->access_key_len = APP_GENERATED_KEY_LEN;
    rc = 0;
    if (app->db) {
        b64_encode(app->access_key, app->access_key_len, enc);
        rc = emu_persist_meta_put(app->db, "access_key", enc);
        OPENSSL_cleanse(enc, sizeof(enc));
    }
out:
    if (stored) {
        OPENSSL_cleanse(stored, strlen(stored));
        free(stored);
    }
    if (raw) {
        OPENSSL_cleanse(raw, raw_len);
        free(raw);
    }
    return rc;
}

static int app_resource_id(struct emu_app *app)
{
    int rc;
    char *stored = NULL;

    if (app->db) {
        rc = emu_persist_meta_get(app->db, "resource_id", &stored);
        if (rc == 0 && strlen(stored) == EMU_UUID_LEN - 1) {
            memcpy(app->resource_id, stored, EMU_UUID_LEN);
            free(stored);
            return 0;
        }
        free(stored);
        if (rc != 0 && rc != TV_ERR_NOT_FOUND)
            return rc;
    }
    rc = emu_uuid_random(app->resource_id);
    if (rc == 0 && app->db)
        rc = emu_persist_meta_put(app->db, "resource_id", app->resource_id);
    return rc;
}

int emu_app_init(struct emu_app *app, const struct emu_config *cfg)
{
    int rc;
    int64_t limits[EMU_OP__COUNT];

    memset(app, 0, sizeof(*app));
    app->token_ttl_s = cfg->token_ttl_s;
    app->max_skew_s = cfg->max_skew_s;
    if (cfg->db_path) {
        rc = emu_persist_open(cfg->db_path, &app->db);
        if (rc != 0)
            goto out;
    }
    rc = app_keys(app);
    if (rc != 0) {
        log_msg(LOGL_ERROR, NULL, "cannot set up the token signing key: %s", err_message(rc));
        goto out;
    }
    rc = app_access_key(app, cfg);
    if (rc != 0) {
        log_msg(LOGL_ERROR, NULL, "cannot set up the access key: %s", err_message(rc));
        goto out;
    }
    rc = app_resource_id(app);
    if (rc != 0)
        goto out;
    rc = emu_state_new(app->db, &app->state);
    if (rc != 0)
        goto out;
    rc = emu_faults_new(&cfg->faults, &app->faults);
    if (rc != 0)
        goto out;
    if (!cfg->no_rate_limits) {
        memcpy(limits, cfg->rate_limits, sizeof(limits));
        rc = emu_ratelimit_new(limits, cfg->rate_window_s * 1000, &app->ratelimit);
        if (rc != 0)
            goto out;
    }
    if (cfg->reuse_signed_token_s > 0) {
        rc = emu_reuse_new(cfg->reuse_signed_token_s, &app->reuse);
        if (rc != 0)
            goto out;
        log_msg(LOGL_WARN, NULL,
                "--reuse-signed-token-s %lld: repeated issues within a bucket get the same token "
                "(benchmarks only)",
                (long long)cfg->reuse_signed_token_s);
    }
    if (cfg->entra_jwks) {
        rc = emu_bearer_new(cfg->entra_jwks, cfg->entra_issuer, &app->bearer);
        if (rc != 0)
            goto out;
        app->entra_only = cfg->entra_only;
        if (!cfg->entra_issuer)
            log_msg(LOGL_WARN, NULL,
                    "--entra-jwks without --entra-issuer: a bearer token from any issuer signed by "
                    "those keys is accepted (ACS accepts its tenant's issuers only)");
    }
out:
    if (rc != 0)
        emu_app_release(app);
    return rc;
}

void emu_app_release(struct emu_app *app)
{
    emu_bearer_free(app->bearer);
    emu_reuse_free(app->reuse);
    emu_ratelimit_free(app->ratelimit);
    emu_faults_free(app->faults);
    emu_state_free(app->state);
    emu_keys_free(app->keys);
    emu_persist_close(app->db);
    OPENSSL_cleanse(app->access_key, sizeof(app->access_key));
    memset(app, 0, sizeof(*app));
}
