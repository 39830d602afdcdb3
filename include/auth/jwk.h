/* JSON Web Keys (RFC 7517) for signature verification: RSA (>= 2048 bits) and EC P-256 public
 * keys, and which of RS256/PS256/ES256 each may verify. A struct jwk is immutable once built and
 * reference-counted, so threads may share it and verify with it concurrently. */
#ifndef TV_AUTH_JWK_H
#define TV_AUTH_JWK_H

#include <stddef.h>
#include <stdint.h>

struct json_object;
struct evp_pkey_st; /* OpenSSL's EVP_PKEY */
struct jwk;

#define JWK_KID_MAX 128 /* longest "kid" accepted, in bytes */
#define JWK_RSA_MIN_BITS 2048

/* The only algorithms this project verifies. 0 is never a valid algorithm. */
enum jwt_alg { JWT_ALG_RS256 = 1, JWT_ALG_PS256 = 2, JWT_ALG_ES256 = 3 };

/* "RS256", "PS256" or "ES256" (NULL for anything else). */
const char *jwt_alg_name(enum jwt_alg alg);
/* Parses an algorithm name; 0 or TV_ERR_INVALID (unsupported, incl. "none" and HS*). */
int jwt_alg_parse(const char *name, enum jwt_alg *out);

/* Builds a verification key from one JWK object. The key type decides the algorithms: kty "RSA"
 * allows RS256 and PS256, kty "EC" with crv "P-256" allows ES256; an "alg" member narrows that
 * to itself and must be one of the allowed ones. "use", when present, must be "sig"; "key_ops",
 * when present, must contain "verify". RSA: n >= 2048 bits, e odd and > 1. EC: the point must
 * lie on the curve. Private members ("d", ...) are ignored: only the public half is kept.
 * On success *out holds one reference (jwk_free it).
 * 0, TV_ERR_INVALID (unsupported or malformed key), TV_ERR_NOMEM or TV_ERR_CRYPTO. */
int jwk_from_json(struct json_object *obj, struct jwk **out);
/* As jwk_from_json, from JSON text of at most 64 KiB (parsed strictly). Also TV_ERR_PARSE. */
int jwk_parse(const char *text, size_t len, struct jwk **out);
/* Wraps an OpenSSL key (public or private; only used to verify) with the given kid (NULL for
 * none). Takes its own reference on pkey. Same key checks as jwk_from_json.
 * 0, TV_ERR_INVALID or TV_ERR_NOMEM. */
int jwk_from_pkey(struct evp_pkey_st *pkey, const char *kid, struct jwk **out);
/* Adds a reference and returns k. */
struct jwk *jwk_ref(struct jwk *k);
/* Drops a reference; the last one frees the key. jwk_free(NULL) is a no-op. */
void jwk_free(struct jwk *k);
/* The key's kid, "" when it has none. Borrowed; lives as long as the key. */
const char *jwk_kid(const struct jwk *k);
/* Non-zero when k may verify signatures made with alg. */
int jwk_allows(const struct jwk *k, enum jwt_alg alg);
/* Verifies sig over a SHA-256 digest with k under alg (RS256: PKCS#1 v1.5; PS256: PSS, MGF1
 * SHA-256, 32-byte salt; ES256: sig is a DER ECDSA-Sig-Value). Uses a context prepared when the
 * key was built, so no algorithm is fetched per call. Thread-safe.
 * 0, TV_ERR_UNAUTHORIZED (bad signature or alg not allowed) or TV_ERR_NOMEM. */
/* SHA-256 of data[0..len) into out. The implementation is fetched from OpenSSL once per
 * process: SHA256() looks it up again on every call, a visible cost per cached-token request.
 * Thread-safe. */
void jwk_sha256(const void *data, size_t len, uint8_t out[32]);
int jwk_verify_sha256(const struct jwk *k, enum jwt_alg alg, const uint8_t digest[32],
                      const uint8_t *sig, size_t sig_len);
/* The OpenSSL key (borrowed; never modify it). */
struct evp_pkey_st *jwk_pkey(const struct jwk *k);

#endif
