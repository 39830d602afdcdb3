/* The local-account login (service/login.h): a plain blocking job, never a flow. */
#include "service/login.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth/password.h"
#include "auth/session.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/ratelimit.h"
#include "service/refresh.h"
#include "service_int.h"
#include "store/accounts.h"
#include "store/login_failures.h"

struct login_job {
    struct service *s;
    struct service_call call;
    char username[STORE_NAME_MAX + 1];
    char app_user_id[STORE_ID_MAX + 1];
    char *password; /* secret copy, wiped */
    size_t pwlen;
    const struct ratelimit *limit;
    const struct session_key *session;
    int64_t session_s;
    const struct service_refresh_cfg *refresh;
    service_login_done_fn done;
    void *arg;
};

static void login_job_free(struct login_job *j)
{
    if (j->password != NULL) {
        OPENSSL_cleanse(j->password, j->pwlen);
        free(j->password);
    }
    free(j);
}

/* Counts this attempt as a failed login of j's name before its password is checked (a login
 * that does not end in a wrong password takes it back): when the store cannot record it the
 * attempt stops here, unchecked, since a guess that is not counted escapes the failed-login
 * limit, and answering it at all would tell a wrong password from a right one. *tat receives
 * the name's state after the count (0 for an off limit). 0, TV_ERR_RATE_LIMITED or
 * TV_ERR_UNAVAILABLE. */
static int login_charge(struct login_job *j, int64_t *tat)
{
    int rc = store_login_failure_add(j->s->store, j->username, j->limit, clock_wall_ms(), tat);

    /* Full already (another attempt for the name was counted since the caller's check): not
     * checked, answered as the limit answers. */
    if (rc == 0 || rc == TV_ERR_RATE_LIMITED)
        return rc;
    log_msg(LOGL_ERROR, j->call.request_id, "login: refused, the attempt cannot be counted: %s",
            err_name(rc));
    return TV_ERR_UNAVAILABLE;
}

/* After the check of a counted attempt (rc): a wrong password stays counted, and the one that
 * locks the name is audited; any other outcome (success, a store error) is taken back. */
static void login_settle(struct login_job *j, int rc, int64_t tat)
{
    int64_t now = clock_wall_ms();

    if (rc == TV_ERR_UNAUTHORIZED) {
        if (!ratelimit_fits(j->limit, tat, now, NULL))
            service_audit(j->s, &j->call, "login_lockout", j->app_user_id, "", TV_ERR_RATE_LIMITED,
                          "failed-login limit reached");
        return;
    }
    /* Left counted, it costs the name one failure of its allowance until it refills: the safe
     * side, so only logged. */
    rc = store_login_failure_refund(j->s->store, j->username, j->limit, now);
    if (rc != 0)
        log_msg(LOGL_WARN, j->call.request_id, "login: counted attempt not taken back: %s",
                err_name(rc));
}

/* Stores a fresh hash of the (just verified) password when the stored one was made with other
 * Argon2 parameters, so every account comes to cost the same to check. Best effort. */
static void login_rehash(struct login_job *j, const char *old_hash)
{
    char fresh[PASSWORD_HASH_MAX];
    int rc = password_hash(j->password, j->pwlen, fresh, sizeof fresh);

    if (rc == 0)
        rc = store_account_rehash(j->s->store, j->username, old_hash, fresh);
    if (rc == 0)
        log_msg(LOGL_INFO, j->call.request_id,
                "login: password hash of an account updated to "
                "the current Argon2 parameters");
    else if (rc != TV_ERR_CONFLICT) /* a concurrent passwd won: nothing to do */
        log_msg(LOGL_WARN, j->call.request_id, "login: rehash not stored: %s", err_name(rc));
    OPENSSL_cleanse(fresh, sizeof fresh);
}

/* Worker thread: Argon2 verification takes ~100 ms, too long for a server thread. */
static void login_run(void *arg)
{
    struct login_job *j = arg;
    struct store_account acct;
    char *token = NULL;
    char refresh[REFRESH_VALUE_LEN + 1] = "";
    int64_t exp = 0, tat = 0, refresh_s = 0;
    int rc, src = TV_ERR_INVALID;

    memset(&acct, 0, sizeof acct);
    if ((rc = login_charge(j, &tat)) == 0) {
        rc = store_account_get(j->s->store, j->username, &acct);
        if (rc == 0) {
            int64_t t0 = clock_mono_ms();

            rc = password_verify(acct.password_hash, j->password, j->pwlen);
            /* A hash of older parameters fails in its own time, not an unknown name's or a
             * current hash's: padded to the current cost, it does not single out the account. */
            if (rc == TV_ERR_UNAUTHORIZED)
                password_pad_failure(acct.password_hash, t0);
        } else if (rc == TV_ERR_NOT_FOUND || rc == TV_ERR_INVALID) {
            /* Same time as a real check, so the answer does not reveal which names exist. */
            rc = password_verify_dummy(j->password, j->pwlen);
        }
        login_settle(j, rc, tat);
    }
    if (rc == 0 && password_needs_rehash(acct.password_hash))
        login_rehash(j, acct.password_hash);
    if (rc == 0)
        rc = session_issue_epoch(j->session, j->username, acct.session_epoch, 0, j->session_s,
                                 &token, &exp);
    /* A login whose refresh token cannot be stored still succeeds, without the cookie: the
     * session token alone is what logins gave before refresh tokens existed. */
    if (rc == 0 && j->refresh != NULL) {
        src = service_refresh_begin(j->s, j->refresh, j->username, acct.session_epoch, refresh,
                                    &refresh_s);
        if (src != 0)
            log_msg(LOGL_WARN, j->call.request_id, "login: no refresh token: %s", err_name(src));
    }
    OPENSSL_cleanse(&acct, sizeof acct);
    service_audit(j->s, &j->call, "login", j->app_user_id, "", rc, NULL);
    j->done(j->arg, rc, rc == 0 ? token : NULL, rc == 0 && src == 0 ? refresh : NULL, refresh_s);
    OPENSSL_cleanse(refresh, sizeof refresh);
    if (token != NULL) {
        OPENSSL_cleanse(token, strlen(token));
        free(token);
    }
    login_job_free(j);
}

int service_login(struct service *s, const struct service_call *c,
                  const struct service_login_req *r, service_login_done_fn done, void *arg)
{
    struct login_job *j;
    int rc;

    if (r == NULL || r->username == NULL || r->password == NULL || r->limit == NULL ||
        r->session == NULL || done == NULL || strlen(r->username) > STORE_NAME_MAX)
        return TV_ERR_INVALID;
    if ((j = calloc(1, sizeof *j)) == NULL)
        return TV_ERR_NOMEM;
    if ((j->password = malloc(r->pwlen + 1)) == NULL) {
        free(j);
        return TV_ERR_NOMEM;
    }
    memcpy(j->password, r->password, r->pwlen);
    j->password[r->pwlen] = '\0';
    j->pwlen = r->pwlen;
    j->s = s;
    if (c != NULL)
        j->call = *c;
    service_copy_str(j->username, sizeof j->username, r->username);
    service_copy_str(j->app_user_id, sizeof j->app_user_id, r->app_user_id);
    j->limit = r->limit;
    j->session = r->session;
    j->session_s = r->session_s;
    j->refresh = r->refresh;
    j->done = done;
    j->arg = arg;
    if ((rc = service_defer(s, login_run, j)) != 0)
        login_job_free(j);
    return rc;
}
