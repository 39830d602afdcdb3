/* Strict JWS compact verification (RS256, PS256, ES256 only) and JWT claim checks, plus signing
 * for the service's own tokens. The key, never the token's "alg", decides the algorithm family.
 * All functions are thread-safe: they share nothing but the (immutable) keys passed in. */
#ifndef TV_AUTH_JWT_H
#define TV_AUTH_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "auth/jwk.h"

struct json_object;

/* A longer compact token is refused before any parsing. 8 KiB is above what identity providers
 * issue and fits, with room for other headers, in the default 16 KiB of header memory per
 * connection (setting header_limit), so an oversized token earns our 401 rather than the HTTP
 * layer's 431. */
#define JWT_MAX_LEN 8192
#define JWT_USER_MAX 256        /* longest user claim value accepted, in bytes */
#define JWT_DEFAULT_LEEWAY_S 60 /* clock skew tolerated on exp and nbf */

/* What a token must satisfy. Strings are borrowed for the duration of the call. */
struct jwt_expect {
    const char *issuer;     /* required: "iss" must equal it exactly */
    const char *audience;   /* required: "aud" (string or array) must be or contain it */
    const char *user_claim; /* claim naming the user; NULL means "sub" */
    int64_t leeway_s;       /* 0 means JWT_DEFAULT_LEEWAY_S; negative means no leeway */
    int64_t now_s;          /* 0 means the wall clock (tests pin it) */
};

/* The decoded header fields that matter, read WITHOUT verifying anything. */
struct jwt_header {
    enum jwt_alg alg;
    char kid[JWK_KID_MAX + 1]; /* "" when absent */
};

/* A verified token's claims: a plain value type. Release with jwt_claims_release. */
struct jwt_claims {
    char user[JWT_USER_MAX + 1]; /* value of the user claim: passes the id rule */
    char kid[JWK_KID_MAX + 1];   /* header kid, "" when absent */
    enum jwt_alg alg;
    int64_t exp;                 /* seconds since the epoch */
    int64_t nbf, iat;            /* 0 when absent */
    struct json_object *payload; /* the whole payload object (one reference owned here) */
};

/* Drops the payload reference and zeroes c. Safe on a zeroed or already released struct. */
void jwt_claims_release(struct jwt_claims *c);
/* String claim `name` of 1..max_len bytes from the payload (e.g. "oid"); *out borrows from c.
 * 0, TV_ERR_NOT_FOUND or TV_ERR_INVALID (wrong type or length). */
int jwt_claims_get_string(const struct jwt_claims *c, const char *name, size_t max_len,
                          const char **out);

/* Reads the protected header of token[0..len) without verifying it: exactly three base64url
 * parts, total <= JWT_MAX_LEN, a strict JSON object header with a supported "alg", a string
 * "kid" if any, "typ" absent or "JWT"/"at+jwt" (case-insensitive), no "crit". "jku", "x5u",
 * "jwk" and "x5c" are ignored: keys never come from the token itself.
 * 0 or TV_ERR_UNAUTHORIZED (anything malformed, oversized or unsupported). */
int jwt_header_peek(const char *token, size_t len, struct jwt_header *out);

/* Verifies only the JWS signature of token[0..len) with key: jwt_header_peek's checks, header
 * alg allowed by the key (jwk_allows), RSA PKCS#1 v1.5 / PSS (MGF1 SHA-256, salt 32 bytes) or
 * ECDSA P-256 with a raw 64-byte r||s signature. The payload may be any bytes.
 * On success *payload is a malloc'd NUL-terminated copy (caller frees), *payload_len its length.
 * 0, TV_ERR_UNAUTHORIZED or TV_ERR_NOMEM. Outputs untouched on failure. */
int jwt_jws_verify(const struct jwk *key, const char *token, size_t len, uint8_t **payload,
                   size_t *payload_len);

/* Checks a payload's claims against e: a strict JSON object (duplicate names rejected), "iss"
 * exact, "aud" string or array containing e->audience, "exp" integer required and
 * now < exp + leeway, "nbf" if present integer and now >= nbf - leeway, "iat" if present an
 * integer, user claim a string passing the id rule (core/ident.h: 1..JWT_USER_MAX bytes of
 * UTF-8 without control characters). Fills all of *out but
 * kid and alg. 0, TV_ERR_UNAUTHORIZED, TV_ERR_INVALID (e incomplete) or TV_ERR_NOMEM. */
int jwt_claims_check(const char *payload, size_t len, const struct jwt_expect *e,
                     struct jwt_claims *out);

/* jwt_jws_verify then jwt_claims_check. *reason (optional) receives a short static English
 * reason on failure ("expired", "bad signature", ...) for logs; it never holds token bytes.
 * Every problem with the token itself (oversized too) is TV_ERR_UNAUTHORIZED, so callers answer
 * 401 for all of them. 0, TV_ERR_UNAUTHORIZED, TV_ERR_INVALID (e incomplete) or TV_ERR_NOMEM. */
int jwt_verify(const struct jwk *key, const char *token, size_t len, const struct jwt_expect *e,
               struct jwt_claims *out, const char **reason);

/* Signs payload_json (used as is) into a compact JWS with header {"alg","typ":"JWT","kid"}.
 * priv is an RSA (RS256/PS256) or EC P-256 (ES256) private key matching alg; kid may be NULL.
 * *out is malloc'd and NUL-terminated (caller frees). 0, TV_ERR_INVALID, TV_ERR_TOO_LARGE,
 * TV_ERR_CRYPTO or TV_ERR_NOMEM. */
int jwt_sign(struct evp_pkey_st *priv, enum jwt_alg alg, const char *kid, const char *payload_json,
             char **out);

#endif
