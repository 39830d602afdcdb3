/* Refresh tokens of local-account sessions (service/refresh.h): issue at login, rotation, reuse
 * detection and logout, as plain blocking jobs on the service's queue. */
#include "service/refresh.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "auth/session.h"
#include "core/b64.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/ident.h"
#include "core/log.h"
#include "service_int.h"
#include "store/accounts.h"
#include "store/refresh.h"

struct refresh_job {
    struct service *s;
    struct service_call call;
    const struct service_refresh_cfg *cfg; /* NULL for a logout */
    char value[REFRESH_VALUE_LEN + 1];     /* SECRET: wiped; "" = none presented */
    service_refresh_done_fn done;
    service_logout_done_fn logout_done;
    void *arg;
};

static int b64url_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

int service_refresh_value_ok(const char *v, size_t len)
{
    if (v == NULL || len != REFRESH_VALUE_LEN || v[REFRESH_ID_CHARS] != '.')
        return 0;
    for (size_t i = 0; i < len; i++)
        if (i != REFRESH_ID_CHARS && !b64url_char(v[i]))
            return 0;
    return 1;
}

/* SHA-256 of the secret part of value (its text form: 256 random bits either way). */
static int secret_hash(const char *value, unsigned char hash[STORE_REFRESH_HASH_LEN])
{
    unsigned int n = 0;

    if (EVP_Digest(value + REFRESH_ID_CHARS + 1, REFRESH_SECRET_CHARS, hash, &n, EVP_sha256(),
                   NULL) != 1 ||
        n != STORE_REFRESH_HASH_LEN)
        return TV_ERR_CRYPTO;
    return 0;
}

/* n random bytes as unpadded base64url into out (b64_encoded_size(n) + 1 bytes). */
static int random_b64url(size_t n, char *out)
{
    unsigned char raw[REFRESH_SECRET_BYTES];
    int rc = 0;

    if (n > sizeof raw || RAND_bytes(raw, (int)n) != 1)
        rc = TV_ERR_CRYPTO;
    else
        b64url_encode(raw, n, out);
    OPENSSL_cleanse(raw, sizeof raw);
    return rc;
}

/* A fresh token of r's family: new id and secret into r->id and value, the hash into r->hash,
 * created now, idle end now + ttl (never past the family's end). */
static int token_make(const struct service_refresh_cfg *cfg, int64_t now_ms,
                      struct store_refresh *r, char value[REFRESH_VALUE_LEN + 1])
{
    char id[REFRESH_ID_CHARS + 4], secret[REFRESH_SECRET_CHARS + 4];
    int rc = random_b64url(REFRESH_ID_BYTES, id);

    if (rc == 0)
        rc = random_b64url(REFRESH_SECRET_BYTES, secret);
    if (rc == 0 && (strlen(id) != REFRESH_ID_CHARS || strlen(secret) != REFRESH_SECRET_CHARS))
        rc = TV_ERR_INTERNAL;
    if (rc == 0) {
        memcpy(value, id, REFRESH_ID_CHARS);
        value[REFRESH_ID_CHARS] = '.';
        memcpy(value + REFRESH_ID_CHARS + 1, secret, REFRESH_SECRET_CHARS);
        value[REFRESH_VALUE_LEN] = '\0';
        service_copy_str(r->id, sizeof r->id, id);
        rc = secret_hash(value, r->hash);
    }
    r->created_ms = now_ms;
    r->used_ms = 0;
    r->expires_ms = now_ms + cfg->ttl_s * 1000;
    if (r->expires_ms > r->family_expires_ms)
        r->expires_ms = r->family_expires_ms;
    OPENSSL_cleanse(secret, sizeof secret);
    if (rc != 0)
        OPENSSL_cleanse(value, REFRESH_VALUE_LEN + 1);
    return rc;
}

int service_refresh_begin(struct service *s, const struct service_refresh_cfg *cfg,
                          const char *account, int64_t epoch, char *value, int64_t *expires_in_s)
{
    struct store_refresh r;
    char family[REFRESH_ID_CHARS + 4];
    int64_t now = clock_wall_ms();
    int rc = TV_ERR_INVALID;

    if (cfg == NULL || cfg->ttl_s <= 0 || cfg->max_s <= 0 || account == NULL || value == NULL)
        return rc;
    memset(&r, 0, sizeof r);
    service_copy_str(r.account, sizeof r.account, account);
    r.session_epoch = epoch;
    r.family_expires_ms = now + cfg->max_s * 1000;
    rc = random_b64url(REFRESH_ID_BYTES, family);
    if (rc == 0) {
        service_copy_str(r.family, sizeof r.family, family);
        rc = token_make(cfg, now, &r, value);
    }
    if (rc == 0)
        rc = store_refresh_insert(s->store, &r);
    if (rc == 0 && expires_in_s != NULL)
        *expires_in_s = (r.expires_ms - now) / 1000;
    if (rc != 0)
        OPENSSL_cleanse(value, REFRESH_VALUE_LEN + 1);
    OPENSSL_cleanse(&r, sizeof r);
    return rc;
}

/* The stored token the job's value names, when its secret matches: 0, TV_ERR_UNAUTHORIZED (no
 * such token, or another secret) or TV_ERR_UNAVAILABLE (store). */
static int token_find(struct refresh_job *j, struct store_refresh *out)
{
    char id[REFRESH_ID_CHARS + 1];
    unsigned char hash[STORE_REFRESH_HASH_LEN];
    int rc;

    memcpy(id, j->value, REFRESH_ID_CHARS);
    id[REFRESH_ID_CHARS] = '\0';
    rc = store_refresh_get(j->s->store, id, out);
    if (rc == TV_ERR_NOT_FOUND)
        return TV_ERR_UNAUTHORIZED;
    if (rc != 0) {
        log_msg(LOGL_ERROR, j->call.request_id, "session refresh: token lookup failed: %s",
                err_name(rc));
        return TV_ERR_UNAVAILABLE;
    }
    rc = secret_hash(j->value, hash);
    if (rc == 0 && CRYPTO_memcmp(hash, out->hash, sizeof hash) != 0)
        rc = TV_ERR_UNAUTHORIZED;
    OPENSSL_cleanse(hash, sizeof hash);
    return rc;
}

/* Ends t's family, with an audit row naming why (action; NULL: none), rc and detail; when the
 * store could not revoke it, the row says so (failed_detail) and carries TV_ERR_UNAVAILABLE
 * instead. Returns 0 or TV_ERR_UNAVAILABLE. */
static int family_end(struct refresh_job *j, const struct store_refresh *t, const char *action,
                      int rc, const char *detail, const char *failed_detail)
{
    char app_user[IDENT_LOCAL_ID_CAP];
    int64_t n = 0;
    int src = store_refresh_revoke_family(j->s->store, t->family, &n);

    if (src != 0) {
        log_msg(LOGL_ERROR, j->call.request_id, "session refresh: cannot revoke a family: %s",
                err_name(src));
        src = TV_ERR_UNAVAILABLE;
    }
    if (action != NULL) {
        if (ident_local_user(t->account, app_user, sizeof app_user) != 0)
            app_user[0] = '\0';
        service_audit(j->s, &j->call, action, app_user, "", src != 0 ? src : rc,
                      src != 0 ? failed_detail : detail);
    }
    return src;
}

/* The account behind t still exists and has not ended its sessions since t's family began:
 * 0, TV_ERR_UNAUTHORIZED or TV_ERR_UNAVAILABLE. */
static int account_check(struct refresh_job *j, const struct store_refresh *t)
{
    int64_t epoch = 0;
    int rc = store_account_epoch(j->s->store, t->account, &epoch);

    if (rc == TV_ERR_NOT_FOUND || (rc == 0 && epoch != t->session_epoch))
        return TV_ERR_UNAUTHORIZED;
    return rc == 0 ? 0 : TV_ERR_UNAVAILABLE;
}

static void job_free(struct refresh_job *j)
{
    OPENSSL_cleanse(j->value, sizeof j->value);
    free(j);
}

/* Worker thread: one rotation. */
static void rotate_run(void *arg)
{
    struct refresh_job *j = arg;
    struct store_refresh cur, next;
    char value[REFRESH_VALUE_LEN + 1] = "";
    char *token = NULL;
    int64_t now = clock_wall_ms(), expires_in = 0;
    int rc;

    memset(&cur, 0, sizeof cur);
    memset(&next, 0, sizeof next);
    rc = token_find(j, &cur);
    if (rc == 0 && cur.used_ms != 0) {
        /* A rotated token presented again: one of the two holders is not the user. */
        family_end(j, &cur, "login_refresh_reuse", TV_ERR_UNAUTHORIZED,
                   "a used refresh token was presented again; its family is revoked",
                   "a used refresh token was presented again; revoking its family failed");
        rc = TV_ERR_UNAUTHORIZED;
    } else if (rc == 0 && (cur.expires_ms <= now || cur.family_expires_ms <= now)) {
        rc = TV_ERR_UNAUTHORIZED;
    } else if (rc == 0 && (rc = account_check(j, &cur)) == TV_ERR_UNAUTHORIZED) {
        /* The account was removed or its sessions ended since this family began. */
        family_end(j, &cur, "login_refresh_ended", rc,
                   "refresh refused: the account is gone or its sessions were ended",
                   "refresh refused: the account is gone or its sessions were ended;"
                   " revoking the family failed");
    }
    if (rc == 0) {
        next = cur;
        rc = token_make(j->cfg, now, &next, value);
    }
    if (rc == 0) {
        rc = store_refresh_rotate(j->s->store, cur.id, now, &next);
        if (rc == TV_ERR_CONFLICT) {
            /* Another request rotated it first (or it expired or was revoked meanwhile). */
            family_end(j, &cur, "login_refresh_reuse", TV_ERR_UNAUTHORIZED,
                       "a refresh token was rotated twice at once; its family is revoked",
                       "a refresh token was rotated twice at once; revoking its family failed");
            rc = TV_ERR_UNAUTHORIZED;
        } else if (rc != 0) {
            log_msg(LOGL_ERROR, j->call.request_id, "session refresh: rotation failed: %s",
                    err_name(rc));
            rc = TV_ERR_UNAVAILABLE;
        }
    }
    if (rc == 0)
        rc = session_issue_epoch(j->cfg->session, cur.account, cur.session_epoch, 0,
                                 j->cfg->session_s, &token, NULL);
    if (rc == 0)
        expires_in = (next.expires_ms - now) / 1000;
    j->done(j->arg, rc, rc == 0 ? token : NULL, rc == 0 ? value : NULL, expires_in);
    if (token != NULL) {
        OPENSSL_cleanse(token, strlen(token));
        free(token);
    }
    OPENSSL_cleanse(value, sizeof value);
    OPENSSL_cleanse(&cur, sizeof cur);
    OPENSSL_cleanse(&next, sizeof next);
    job_free(j);
}

/* Worker thread: one logout. */
static void logout_run(void *arg)
{
    struct refresh_job *j = arg;
    struct store_refresh cur;
    int rc = 0;

    memset(&cur, 0, sizeof cur);
    if (j->value[0] != '\0') {
        rc = token_find(j, &cur);
        if (rc == 0)
            rc = family_end(j, &cur, "logout", 0, "refresh token family revoked",
                            "logout failed: the refresh token family could not be revoked");
        if (rc == TV_ERR_UNAUTHORIZED)
            rc = 0; /* nothing of ours to end */
    }
    j->logout_done(j->arg, rc);
    OPENSSL_cleanse(&cur, sizeof cur);
    job_free(j);
}

static int job_queue(struct service *s, const struct service_call *c, const char *value,
                     struct refresh_job *j, void (*run)(void *))
{
    int rc;

    j->s = s;
    if (c != NULL)
        j->call = *c;
    if (value != NULL)
        memcpy(j->value, value, REFRESH_VALUE_LEN);
    if ((rc = service_defer(s, run, j)) != 0)
        job_free(j);
    return rc;
}

int service_refresh_rotate(struct service *s, const struct service_call *c,
                           const struct service_refresh_cfg *cfg, const char *value,
                           service_refresh_done_fn done, void *arg)
{
    struct refresh_job *j;

    if (cfg == NULL || cfg->session == NULL || cfg->ttl_s <= 0 || done == NULL || value == NULL ||
        !service_refresh_value_ok(value, strlen(value)))
        return TV_ERR_INVALID;
    if ((j = calloc(1, sizeof *j)) == NULL)
        return TV_ERR_NOMEM;
    j->cfg = cfg;
    j->done = done;
    j->arg = arg;
    return job_queue(s, c, value, j, rotate_run);
}

int service_refresh_logout(struct service *s, const struct service_call *c, const char *value,
                           service_logout_done_fn done, void *arg)
{
    struct refresh_job *j;

    if (done == NULL || (value != NULL && !service_refresh_value_ok(value, strlen(value))))
        return TV_ERR_INVALID;
    if ((j = calloc(1, sizeof *j)) == NULL)
        return TV_ERR_NOMEM;
    j->logout_done = done;
    j->arg = arg;
    return job_queue(s, c, value, j, logout_run);
}
