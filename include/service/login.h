/* The local-account login behind POST /api/login: the account lookup, the Argon2 password check
 * (or its dummy for an unknown name, and after a failure against a hash cheaper than the
 * current parameters as well, so failures cost the same for every name), the count of the
 * attempt (made before the check, taken back unless the password was wrong), the rehash of an
 * outdated hash and the session token, on the service's queue for plain blocking jobs. The HTTP
 * parts (parsing, the failed-login limit check before any work, admission per address and name, the
 * reply) stay in src/api. Thread-safe. */
#ifndef TV_SERVICE_LOGIN_H
#define TV_SERVICE_LOGIN_H

#include <stddef.h>
#include <stdint.h>

#include "service/service.h"

struct ratelimit;
struct session_key;
struct service_refresh_cfg;

/* One login. Everything is borrowed for the duration of service_login only (the strings are
 * copied), except limit and session, which must outlive the service. */
struct service_login_req {
    const char *username;          /* an account name the caller checked (core/ident.h) */
    const char *app_user_id;       /* "local:NAME", for the audit row */
    const char *password;          /* SECRET: copied, and the copy wiped */
    size_t pwlen;                  /* 1..PASSWORD_MAX_LEN */
    const struct ratelimit *limit; /* failed logins of the name are counted under it */
    const struct session_key *session;
    int64_t session_s; /* lifetime of the session token */
    /* Refresh tokens (service/refresh.h): a successful login begins a family; NULL: none. */
    const struct service_refresh_cfg *refresh;
};

/* The outcome: rc 0 with token (SECRET: valid only during the call, never log it) and, when
 * the request asked for one and the store took it, the first refresh token's value (SECRET, as
 * token; NULL otherwise) with its lifetime in seconds; or
 * TV_ERR_UNAUTHORIZED (wrong name or password), or TV_ERR_UNAVAILABLE (the store could not
 * count the attempt, so the password was not checked: answer 503 with Retry-After), or
 * TV_ERR_RATE_LIMITED (the name's failed-login limit filled up before this attempt could be
 * counted, so it was not checked: answer 429), or another error. Runs on a service thread. */
typedef void (*service_login_done_fn)(void *arg, int rc, const char *token, const char *refresh,
                                      int64_t refresh_expires_in_s);

/* Queues the login. 0: done(arg, ...) will run exactly once on a service thread. Else
 * TV_ERR_UNAVAILABLE (the queue is full: answer 503 with Retry-After), TV_ERR_SHUTDOWN,
 * TV_ERR_INVALID or TV_ERR_NOMEM, and done is never called. Every attempt is counted as a
 * failed login of the name under limit before the password is checked, and taken back unless
 * the password was wrong (fail closed: an attempt the store cannot count is never checked).
 * Audits every login ("login") and the failure that locks a name ("login_lockout"). */
int service_login(struct service *s, const struct service_call *c,
                  const struct service_login_req *r, service_login_done_fn done, void *arg);

#endif
