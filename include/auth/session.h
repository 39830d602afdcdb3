/* The service's own short-lived login tokens (POST /api/login): ES256 over a P-256 key that the
 * caller persists (e.g. in the store's meta table) as PKCS#8 DER or PEM bytes. A session key is
 * immutable once made, so threads may issue and verify with it concurrently. */
#ifndef TV_AUTH_SESSION_H
#define TV_AUTH_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "auth/jwt.h"

struct session_key;

#define SESSION_ISSUER "tokenvend"
#define SESSION_AUDIENCE "tokenvend-local"
#define SESSION_DEFAULT_TTL_S 900 /* 15 minutes */
#define SESSION_KEY_MAX 4096      /* ceiling on exported/imported key bytes */
#define SESSION_EPOCH_CLAIM "sep" /* the account's session epoch (see session_issue_epoch) */

/* Generates a fresh P-256 key. Its kid is the RFC 7638 JWK thumbprint (base64url SHA-256).
 * 0, TV_ERR_CRYPTO or TV_ERR_NOMEM. */
int session_key_generate(struct session_key **out);
/* Loads a private P-256 key from PKCS#8 DER or PEM bytes (at most SESSION_KEY_MAX).
 * 0, TV_ERR_INVALID (not a P-256 private key), TV_ERR_NOMEM. */
int session_key_import(const uint8_t *data, size_t len, struct session_key **out);
/* Exports the private key as PKCS#8 DER into *out (malloc'd; SECRET: the caller wipes it with
 * OPENSSL_cleanse and frees it) and sets *out_len. 0, TV_ERR_CRYPTO or TV_ERR_NOMEM. */
int session_key_export(const struct session_key *k, uint8_t **out, size_t *out_len);
/* As session_key_export, PEM text ("-----BEGIN PRIVATE KEY-----"), NUL-terminated. */
int session_key_export_pem(const struct session_key *k, char **out, size_t *out_len);
/* Frees (and wipes) the key. session_key_free(NULL) is a no-op. */
void session_key_free(struct session_key *k);
/* The key's kid (borrowed). */
const char *session_key_kid(const struct session_key *k);
/* The public half as a verification key (borrowed; jwk_ref it to keep it beyond k). */
const struct jwk *session_key_jwk(const struct session_key *k);

/* Signs {"iss":SESSION_ISSUER,"aud":SESSION_AUDIENCE,"sub":sub,"iat":now,"exp":now+ttl} with
 * header {"alg":"ES256","typ":"JWT","kid":kid}. sub: 1..JWT_USER_MAX bytes; now_s 0 = wall
 * clock; ttl_s 0 = SESSION_DEFAULT_TTL_S. *token is malloc'd (caller frees; a bearer secret:
 * never log it); *exp_s (optional) receives exp.
 * 0, TV_ERR_INVALID, TV_ERR_CRYPTO or TV_ERR_NOMEM. */
int session_issue(const struct session_key *k, const char *sub, int64_t now_s, int64_t ttl_s,
                  char **token, int64_t *exp_s);
/* As session_issue, and the token also carries the account's session epoch as claim
 * SESSION_EPOCH_CLAIM (a decimal string), which session_epoch_get reads back. */
int session_issue_epoch(const struct session_key *k, const char *sub, int64_t epoch, int64_t now_s,
                        int64_t ttl_s, char **token, int64_t *exp_s);
/* The epoch claim of verified session claims. 0, or TV_ERR_UNAUTHORIZED when the token has
 * none (issued before epochs existed) or a malformed one. */
int session_epoch_get(const struct jwt_claims *c, int64_t *epoch);

/* Verifies a session token with the same verifier as OIDC tokens (jwt_verify): ES256 with this
 * key, iss SESSION_ISSUER, aud SESSION_AUDIENCE, exp with JWT_DEFAULT_LEEWAY_S, user claim
 * "sub". now_s 0 = wall clock. *reason as in jwt_verify.
 * 0, TV_ERR_UNAUTHORIZED or TV_ERR_NOMEM. */
int session_verify(const struct session_key *k, const char *token, size_t len, int64_t now_s,
                   struct jwt_claims *out, const char **reason);

#endif
