/* A caller-authentication key set (OIDC JWKS): keys cached by kid, fetched by a background thread
 * from a JWKS URL or discovered via <issuer>/.well-known/openid-configuration. Thread-safe, and
 * verification never waits for the network; the last good key set survives a failed fetch.
 * URLs must be https://, except http:// to a loopback host or when allow_insecure_http is set. */
#ifndef TV_AUTH_JWKS_H
#define TV_AUTH_JWKS_H

#include <stddef.h>
#include <stdint.h>

#include "auth/jwt.h"

struct jwks;

#define JWKS_MAX_BODY (256 * 1024)      /* larger JWKS / discovery documents are refused */
#define JWKS_MAX_KEYS 64                /* keys beyond this are ignored */
#define JWKS_DEFAULT_REFETCH_MS 60000   /* unknown-kid refetch at most this often */
#define JWKS_DEFAULT_REFRESH_MS 3600000 /* periodic refetch, to pick up rotations */
#define JWKS_UNLOADED_RETRY_MS 5000     /* retry interval while no key set was ever loaded */
#define JWKS_RETRY_AFTER_S "5"          /* the same, as an HTTP Retry-After value */
#define JWKS_ERR_MAX 256                /* a failed fetch's reason, NUL included */
#define JWKS_URL_MAX 2048               /* longest issuer or key set URL, in bytes */

struct jwks_opts {
    const char *jwks_url;        /* NULL or "": discover it from the issuer */
    const char *issuer;          /* for discovery; may be NULL when jwks_url is set */
    int64_t refetch_interval_ms; /* 0 means JWKS_DEFAULT_REFETCH_MS */
    int64_t connect_timeout_ms;  /* 0 means 2000 */
    int64_t timeout_ms;          /* whole transfer; 0 means 5000 */
    int64_t refresh_every_ms;    /* periodic refetch after a success; 0 means 1 hour */
    /* Accept http:// URLs to non-loopback hosts (configured and discovered ones); off means
     * https:// only, or http:// to 127.0.0.0/8, [::1] or localhost. */
    int allow_insecure_http;
};

/* Creates an empty set (copies the strings). With a jwks_url or an issuer it starts the set's
 * fetcher thread, which fetches at once (without blocking this call), retries every
 * JWKS_UNLOADED_RETRY_MS until a key set loads, refetches when a verifier meets an unknown kid
 * (at most once per refetch interval, counted from the end of the last fetch) and every
 * refresh_every_ms. With neither, the set only holds keys given by jwks_load_json and never
 * touches the network. 0, TV_ERR_INVALID (URL not https:// under the rule of allow_insecure_http)
 * or TV_ERR_NOMEM. */
int jwks_new(const struct jwks_opts *o, struct jwks **out);
/* The checks jwks_new makes of o's URLs, with the reason: the issuer and the key set URL at most
 * JWKS_URL_MAX bytes, without blanks, and https:// under the rule of allow_insecure_http. 0, or
 * TV_ERR_INVALID with one line naming the setting (oidc_issuer or oidc_jwks_url) in why[cap].
 * Start-up runs it before anything is opened, so a set jwks_new would refuse stops the start
 * first. */
int jwks_opts_check(const struct jwks_opts *o, char *why, size_t cap);
/* Stops and joins the fetcher (aborting a transfer in progress within about a second) and frees
 * the set; keys still referenced by in-flight verifications stay alive until they end.
 * jwks_free(NULL) is a no-op. No verification may START after this is called. */
void jwks_free(struct jwks *s);

/* Fetches now on the calling thread (BLOCKS up to connect + total timeout, per request;
 * discovery is two requests; for the CLI, startup and tests, never a request thread) and replaces
 * the keys when the document holds at least one usable key. Unusable keys (other algorithms,
 * "use":"enc", small RSA, ...) are skipped; a kid held by two keys is unusable. 0,
 * TV_ERR_UNAVAILABLE (network, HTTP status, oversized) or TV_ERR_PARSE (bad document or no usable
 * key); the previous keys are kept on failure. */
int jwks_refresh(struct jwks *s);
/* Replaces the keys with those of a JWKS document ({"keys":[...]}) or a single JWK given as
 * text (static configuration and tests). Same skipping rules. 0, TV_ERR_PARSE or TV_ERR_NOMEM. */
int jwks_load_json(struct jwks *s, const char *json, size_t len);
/* Test hook: changes the minimum interval between unknown-kid refetches (0 = every time). */
void jwks_set_refetch_interval_ms(struct jwks *s, int64_t ms);
/* Waits (BLOCKS up to timeout_ms) until the fetcher's first attempt has ended, so startup can
 * give the keys a moment before serving. 0 when keys are held, else TV_ERR_UNAVAILABLE (also at
 * once for a set without fetcher and no keys). */
int jwks_wait(struct jwks *s, int64_t timeout_ms);
/* Whether the set can verify: JWKS_STATE_OK once a key set has been installed (also while a
 * later refresh fails: the last good set is kept), JWKS_STATE_LOADING before the fetcher's first
 * attempt has ended, JWKS_STATE_FAILED when no attempt has loaded a set yet (reason, cap bytes,
 * may be NULL, gets the last attempt's cause: "GET <url>: HTTP 500"; never a secret) or when a
 * set without a fetcher holds no keys. For /readyz; never blocks on the network. */
enum jwks_state { JWKS_STATE_LOADING, JWKS_STATE_OK, JWKS_STATE_FAILED };
enum jwks_state jwks_state_get(struct jwks *s, char *reason, size_t cap);
/* The key set's generation: bumped each time a key set is installed (jwks_load_json, any
 * successful fetch), never otherwise. A cache of verification results reads it BEFORE
 * verifying and trusts a result only while it is unchanged, so a removed key stops working as
 * soon as the set without it is installed. Lock-free. */
uint64_t jwks_generation(struct jwks *s);
/* Number of usable keys held now. */
size_t jwks_key_count(struct jwks *s);

/* Verifies token[0..len) with the key named by its kid (a token without kid is accepted only
 * when the set holds exactly one key) and checks its claims (jwt_verify). Never blocks on the
 * network: a missing key asks the fetcher for a refetch when one is due (see jwks_new) and the
 * call answers at once with the keys held now, so a rotated-in kid is accepted once that
 * refetch has ended.
 * On success *out holds the claims (jwt_claims_release them). *reason (optional) receives a
 * short static reason on failure for logs.
 * 0, TV_ERR_UNAUTHORIZED (any problem with the token, incl. unknown kid), TV_ERR_UNAVAILABLE (no
 * key set loaded yet; worth a retry after JWKS_UNLOADED_RETRY_MS), TV_ERR_INVALID (expect
 * incomplete) or TV_ERR_NOMEM. */
int jwks_verify_ex(struct jwks *s, const char *token, size_t len, const struct jwt_expect *expect,
                   struct jwt_claims *out, const char **reason);
int jwks_verify(struct jwks *s, const char *token, size_t len, const struct jwt_expect *expect,
                struct jwt_claims *out);
/* The key jwks_verify would use for token (same selection and refetch wish; verifies nothing but
 * the header's form). On success *out holds a reference (jwk_free it). Same codes. */
int jwks_key_for(struct jwks *s, const char *token, size_t len, struct jwk **out,
                 const char **reason);

#endif
