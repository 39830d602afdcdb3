/* Renewal and end of local-account sessions (POST /api/session/refresh and /logout): refresh
 * tokens, each a random id and a random secret (tv_refresh cookie "<id>.<secret>", base64url),
 * stored as the id and SHA-256 of the secret (store/refresh.h). Each use rotates the token;
 * presenting a used one again (reuse: likely theft) revokes its whole family. The store work
 * runs as a blocking job on the service's queue (service_defer), never on the caller's thread.
 * The HTTP parts (cookie parsing, origin and content checks, the reply) stay in src/api.
 * Thread-safe. */
#ifndef TV_SERVICE_REFRESH_H
#define TV_SERVICE_REFRESH_H

#include <stddef.h>
#include <stdint.h>

#include "service/service.h"

struct session_key;

#define REFRESH_ID_BYTES 16     /* 128 bits */
#define REFRESH_SECRET_BYTES 32 /* 256 bits */
#define REFRESH_ID_CHARS 22     /* base64url of REFRESH_ID_BYTES, unpadded */
#define REFRESH_SECRET_CHARS 43 /* base64url of REFRESH_SECRET_BYTES, unpadded */
/* "<id>.<secret>": the cookie's value, exactly this long. */
#define REFRESH_VALUE_LEN (REFRESH_ID_CHARS + 1 + REFRESH_SECRET_CHARS)

/* The lifetimes and the key a family's tokens are issued under; borrowed, must outlive the
 * service. */
struct service_refresh_cfg {
    const struct session_key *session; /* signs the session tokens a refresh returns */
    int64_t session_s;                 /* lifetime of those session tokens */
    int64_t ttl_s;                     /* idle lifetime of one refresh token (> 0) */
    int64_t max_s;                     /* absolute lifetime of a family from its login */
};

/* 1 when v (len bytes) has the shape of a refresh token value, else 0. Reads nothing else. */
int service_refresh_value_ok(const char *v, size_t len);

/* Begins a family for account (whose session epoch at this login is epoch): stores its first
 * token and writes its value (SECRET: wipe it) into value (REFRESH_VALUE_LEN + 1 bytes).
 * *expires_in_s receives its idle lifetime (never past the family's end). Blocks on the store:
 * for service jobs only (the login job). 0, TV_ERR_INVALID, TV_ERR_CRYPTO or a store error. */
int service_refresh_begin(struct service *s, const struct service_refresh_cfg *cfg,
                          const char *account, int64_t epoch, char *value, int64_t *expires_in_s);

/* The outcome of a refresh: rc 0 with a session token and the next refresh token value (both
 * SECRET, valid only during the call) and the seconds that value lives; or TV_ERR_UNAUTHORIZED
 * (unknown, expired, used, revoked, or the account is gone or its sessions were ended), or
 * another error (TV_ERR_UNAVAILABLE: the store). Runs on a service thread. */
typedef void (*service_refresh_done_fn)(void *arg, int rc, const char *token, const char *value,
                                        int64_t expires_in_s);

/* Queues the rotation of the token whose value (REFRESH_VALUE_LEN bytes, checked by
 * service_refresh_value_ok; copied, and the copy wiped) was presented. 0: done runs exactly
 * once on a service thread; else TV_ERR_UNAVAILABLE (queue full), TV_ERR_SHUTDOWN,
 * TV_ERR_INVALID or TV_ERR_NOMEM, and done is never called. Audits a reuse
 * ("login_refresh_reuse", which revokes the family) and a refusal for an ended account
 * ("login_refresh_ended": a token whose account is gone or whose epoch changed; its family is
 * revoked); when the store could not revoke the family the row says so (rc TV_ERR_UNAVAILABLE)
 * and the refresh is still refused. A token the store no longer has (`account logout` deletes
 * them) is refused without a row: its account is not known. */
int service_refresh_rotate(struct service *s, const struct service_call *c,
                           const struct service_refresh_cfg *cfg, const char *value,
                           service_refresh_done_fn done, void *arg);

/* The outcome of a logout: rc 0 (the family is gone, or there was none to end) or
 * TV_ERR_UNAVAILABLE (the store could not look the token up or revoke its family: nothing
 * ended). Runs on a service thread. */
typedef void (*service_logout_done_fn)(void *arg, int rc);

/* Queues the revocation of the family of the token whose value was presented (value NULL: no
 * token, done still runs, with 0). The secret must match for the family to end. Audits
 * "logout" for a matching token: rc 0 when its family ended, TV_ERR_UNAVAILABLE when the store
 * could not revoke it. Returns as service_refresh_rotate. */
int service_refresh_logout(struct service *s, const struct service_call *c, const char *value,
                           service_logout_done_fn done, void *arg);

#endif
