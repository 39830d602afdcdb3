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
struct session_key;
struct acs_client;
struct vcache;

/* Everything the handlers need; filled by app.c, borrowed by the handlers. */
struct api_ctx {
    struct service *svc;
    struct store *store;
    struct jwks *jwks;           /* OIDC key set, NULL when no issuer is configured */
    struct session_key *session; /* local-account login key, NULL when local accounts are off */
    struct vcache *vcache;       /* verified bearer tokens, NULL when that cache is off */
    const char *issuer;          /* OIDC iss and aud, user claim (borrowed from the config) */
    const char *audience;
    const char *user_claim;
    long session_minutes;
    struct http_server *http; /* for /metrics; set once the server exists */
    struct acs_client *acs;   /* for /metrics (may be NULL in tests) */
};

/* Route tables (static arrays); *n receives the count. */
const struct http_route *api_public_routes(size_t *n);
const struct http_route *api_internal_routes(size_t *n);

#endif
