/* Token policy: which scopes and lifetimes callers may ask for, and the parser of a token
 * request body ({"scopes":[...],"expiresInMinutes":N}) that applies it. Pure functions over an
 * immutable struct: thread-safe. */
#ifndef TV_SERVICE_POLICY_H
#define TV_SERVICE_POLICY_H

#include <stddef.h>

#include "core/config.h"

#define POLICY_BODY_MAX (16 * 1024) /* a token request body is tiny; refuse anything larger */
#define POLICY_MSG_MAX 160

/* What the operator allows. Scope items point at the static names of config_scopes_parse. */
struct policy {
    struct config_scopes allowed;
    struct config_scopes defaults;
    int default_minutes; /* within [min_minutes, max_minutes] */
    int min_minutes;     /* 60..1440 */
    int max_minutes;
    int auto_create; /* bool: first token request of a user creates the identity */
};

/* A checked token request: scopes (static names, no duplicates, all allowed) and a lifetime. */
struct policy_token_req {
    const char *scopes[CONFIG_MAX_SCOPES];
    size_t nscopes;
    int minutes;
};

/* Fills p from the loaded configuration (allowed/default scopes, token_minutes and its bounds,
 * auto_create). */
void policy_from_config(struct policy *p, const struct config *cfg);
/* The request a caller gets when it names nothing: default scopes and lifetime. */
void policy_token_req_default(const struct policy *p, struct policy_token_req *out);
/* Parses and checks a token request body. An empty body (len 0) means the defaults; otherwise
 * it must be one JSON object whose optional "scopes" is an array of 1..8 known scope names and
 * whose optional "expiresInMinutes" is an integer; any other member is a 400 naming it.
 * Missing parts take the defaults.
 * 0; TV_ERR_PARSE (not JSON / not an object), TV_ERR_INVALID (unknown member, wrong types,
 * empty or unknown scope, lifetime outside 60..1440 or the configured bounds) -> 400;
 * TV_ERR_FORBIDDEN (a known scope the policy does not allow) -> 403. On failure msg (may be NULL)
 * gets one sentence for the caller and *out is untouched. */
int policy_token_req_parse(const struct policy *p, const char *body, size_t len,
                           struct policy_token_req *out, char *msg, size_t msglen);
/* Writes the scopes as "a,b" into out (for audit details). */
void policy_scopes_format(const struct policy_token_req *r, char *out, size_t cap);

#endif
