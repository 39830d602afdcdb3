/* Request-level HMAC check of acs-emulator: required headers present, the signature (via
 * acs_sign_verify) and the body hash right, and the signed date within the allowed clock skew.
 * Pure function of its inputs; thread-safe. */
#ifndef TV_EMULATOR_AUTH_H
#define TV_EMULATOR_AUTH_H

#include <stddef.h>
#include <stdint.h>

/* One received request as the verifier sees it. Header values are NULL when absent. */
struct emu_auth_input {
    const char *method;         /* "POST" */
    const char *path_and_query; /* raw request target as received ("/identities?api-version=...") */
    const char *host;           /* Host header as received */
    const char *x_ms_date;      /* x-ms-date header */
    const char *date;           /* Date header (used when the signature names "date") */
    const char *content_sha256; /* x-ms-content-sha256 header */
    const char *authorization;  /* Authorization header */
    const void *body;
    size_t body_len;
};

/* Checks in against key. now_s is the wall clock in seconds; a signed date further than
 * max_skew_s from it in either direction is stale. On failure writes a one-sentence reason
 * (no secret in it) into why (why_len bytes, may be 0). 0 or TV_ERR_UNAUTHORIZED. */
int emu_auth_check(const uint8_t *key, size_t key_len, const struct emu_auth_input *in,
                   int64_t now_s, int64_t max_skew_s, char *why, size_t why_len);

#endif
