/* The HTTP API of tokenvend serve: route tables for the public listener (README "Public API"),
 * the internal listener ("Internal API") and the operations endpoints on both ("The service"),
 * plus caller authentication.
 * Handlers parse the request, call the service and reply (from the service's callback when ACS
 * is involved). Thread-safe: the context is read-only once the server runs. */
#ifndef TV_API_API_H
#define TV_API_API_H

#include <stddef.h>

#include "http/server.h"

struct service;
struct store;
struct jwks;
struct maint;
struct upstream_budget;
struct session_key;
struct service_refresh_cfg;
struct acs_client;
struct entra_cache;
struct vcache;
struct api_login;
struct api_limits;
struct credcheck;

/* Password checks (POST /api/login) admitted at once: the size of the service's deferred
 * queue (service_opts.defer_max_pending's default). */
#define API_LOGIN_SLOTS 32
/* Of those, the most one user name may hold: a guesser aiming at one account cannot slow
 * every other account's logins, and its owner still gets a slot. */
#define API_LOGIN_PER_USER 2
/* Of those, the slots only a client address holding none may take (when the per-address cap
 * is on): addresses already checking passwords share the other 24, so at 4 per address it takes
 * at least 14 addresses, not 8, to hold every slot, and a lone new client still gets in. */
#define API_LOGIN_RESERVE (API_LOGIN_SLOTS / 4)

/* Settings of the login state (api_login_new). */
struct api_login_opts {
    struct store *store;
    const char *login_limit; /* "N/Ws" or "off" (TOKENVEND_LOGIN_LIMIT) */
    unsigned per_addr;       /* logins in progress per client address (0: no cap) */
    unsigned per_user;       /* logins in progress per user name (>= 1) */
};

/* Settings of the caller limits (api_limits_new): "N/Ws" or "off" each (core/ratelimit.h). */
struct api_limits_opts {
    const char *user;            /* per app user on the public API (TOKENVEND_LIMIT_USER) */
    const char *apikey;          /* per API key on the internal API (TOKENVEND_LIMIT_APIKEY) */
    const char *ip;              /* per client address on the public API (TOKENVEND_LIMIT_IP) */
    const char *trusted_proxies; /* whose X-Forwarded-For names the client (core/proxies.h) */
};

/* Everything the handlers need; filled by app.c, borrowed by the handlers. */
struct api_ctx {
    struct service *svc;
    struct store *store;
    struct jwks *jwks;           /* OIDC key set, NULL when no issuer is configured */
    struct session_key *session; /* local-account login key, NULL when local accounts are off */
    struct vcache *vcache;       /* verified bearer tokens, NULL when that cache is off */
    struct api_login *login;     /* login limits and admission, NULL when local accounts off */
    const char *issuer;          /* OIDC iss and aud, user claim (borrowed from the config) */
    const char *audience;
    const char *user_claim;
    long session_minutes;
    /* Session refresh tokens (service/refresh.h); NULL when off (no local accounts, or
     * session_refresh_ttl = 0): no cookie at login, and /api/session/... answer 404. */
    const struct service_refresh_cfg *refresh;
    struct http_server *http;  /* for /metrics; set once the server exists */
    struct acs_client *acs;    /* for /metrics (may be NULL in tests) */
    struct entra_cache *entra; /* keyless mode: /readyz and /metrics; NULL with an access key */
    struct maint *maint;       /* for /metrics: the audit retention (may be NULL) */
    struct upstream_budget *budget; /* for /metrics: the upstream budget (may be NULL) */
    int metrics_apikey;             /* GET /metrics needs an API key (metrics_auth = apikey) */
    struct api_limits *limits;      /* caller limits (limits.c); NULL: none */
    struct credcheck *credcheck;    /* the ACS credential check, for /readyz; NULL: none */
};

/* The caller limits: per-process tables (core/climit.h) for each limit that is not off.
 * Thread-safe. 0, TV_ERR_CONFIG (a bad setting; logged) or TV_ERR_NOMEM. */
int api_limits_new(const struct api_limits_opts *o, struct api_limits **out);
/* api_limits_free(NULL) is a no-op. */
void api_limits_free(struct api_limits *l);

/* The state of POST /api/login: the failed-login limit, admission of password checks per
 * client address and per user name, and the account-state cache of session checks.
 * Thread-safe. 0, TV_ERR_INVALID, TV_ERR_CONFIG (bad login_limit) or TV_ERR_NOMEM. */
int api_login_new(const struct api_login_opts *o, struct api_login **out);
/* api_login_free(NULL) is a no-op; no login may be in progress. */
void api_login_free(struct api_login *l);

/* Route tables (static arrays); *n receives the count. */
const struct http_route *api_public_routes(size_t *n);
const struct http_route *api_internal_routes(size_t *n);

#endif
