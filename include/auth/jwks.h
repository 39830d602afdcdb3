/* A caller-authentication key set (OIDC JWKS): keys cached by kid, fetched with blocking libcurl
 * from a JWKS URL or discovered via <issuer>/.well-known/openid-configuration. Thread-safe: any
 * number of threads may verify while one refetches; the last good key set survives a failed
 * fetch. Production should use https:// URLs; http:// is accepted for loopback tests. */
#ifndef TV_AUTH_JWKS_H
#define TV_AUTH_JWKS_H

#include <stddef.h>
#include <stdint.h>

#include "auth/jwt.h"

struct jwks;

#define JWKS_MAX_BODY (256 * 1024)    /* larger JWKS / discovery documents are refused */
#define JWKS_MAX_KEYS 64              /* keys beyond this are ignored */
#define JWKS_DEFAULT_REFETCH_MS 60000 /* unknown-kid refetch at most this often */

struct jwks_opts {
    const char *jwks_url;        /* NULL or "": discover it from the issuer */
    const char *issuer;          /* for discovery; may be NULL when jwks_url is set */
    int64_t refetch_interval_ms; /* 0 means JWKS_DEFAULT_REFETCH_MS */
    int64_t connect_timeout_ms;  /* 0 means 2000 */
    int64_t timeout_ms;          /* whole transfer; 0 means 5000 */
};

/* Creates an empty set (copies the strings; no network yet). With neither jwks_url nor issuer
 * the set only holds keys given by jwks_load_json. 0, TV_ERR_INVALID (URL not http(s)://) or
 * TV_ERR_NOMEM. */
int jwks_new(const struct jwks_opts *o, struct jwks **out);
/* Frees the set; keys still referenced by in-flight verifications stay alive until they end.
 * jwks_free(NULL) is a no-op. No verification may START after this is called. */
void jwks_free(struct jwks *s);

/* Fetches now (BLOCKS up to connect + total timeout, per request; discovery is two requests)
 * and replaces the keys when the document holds at least one usable key. Unusable keys (other
 * algorithms, "use":"enc", small RSA, ...) are skipped; a kid held by two keys is unusable.
 * 0, TV_ERR_UNAVAILABLE (network, HTTP status, oversized) or TV_ERR_PARSE (bad document or no
 * usable key); the previous keys are kept on failure. */
int jwks_refresh(struct jwks *s);
/* Replaces the keys with those of a JWKS document ({"keys":[...]}) or a single JWK given as
 * text (static configuration and tests). Same skipping rules. 0, TV_ERR_PARSE or TV_ERR_NOMEM. */
int jwks_load_json(struct jwks *s, const char *json, size_t len);
/* Test hook: changes the minimum interval between unknown-kid refetches (0 = every time). */
void jwks_set_refetch_interval_ms(struct jwks *s, int64_t ms);
/* Number of usable keys held now. */
size_t jwks_key_count(struct jwks *s);

/* Verifies token[0..len) with the key named by its kid (a token without kid is accepted only
 * when the set holds exactly one key) and checks its claims (jwt_verify). The first use, and an
 * unknown kid when the last fetch is older than the refetch interval, fetch the set: this call
 * then BLOCKS up to the fetch timeouts (concurrent callers wait for the same fetch).
 * On success *out holds the claims (jwt_claims_release them). *reason (optional) receives a
 * short static reason on failure for logs.
 * 0, TV_ERR_UNAUTHORIZED (any problem with the token, incl. unknown kid), TV_ERR_UNAVAILABLE (no
 * key has ever been fetched), TV_ERR_INVALID (expect incomplete) or TV_ERR_NOMEM. */
int jwks_verify_ex(struct jwks *s, const char *token, size_t len, const struct jwt_expect *expect,
                   struct jwt_claims *out, const char **reason);
int jwks_verify(struct jwks *s, const char *token, size_t len, const struct jwt_expect *expect,
                struct jwt_claims *out);
/* The key jwks_verify would use for token (same selection and fetching; verifies nothing but
 * the header's form). On success *out holds a reference (jwk_free it). Same codes. */
int jwks_key_for(struct jwks *s, const char *token, size_t len, struct jwk **out,
                 const char **reason);

#endif
