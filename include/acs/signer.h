/* HMAC-SHA256 request signing exactly as the Azure Communication SDKs do it, and the matching
 * verifier used by acs-emulator. string-to-sign = METHOD "\n" path_and_query "\n"
 * date ";" host ";" content_sha256. Thread-safe, no allocation on the heap. */
#ifndef TV_ACS_SIGNER_H
#define TV_ACS_SIGNER_H

#include <stddef.h>
#include <stdint.h>

#define ACS_SHA256_B64_LEN 45 /* 44 base64 chars + NUL */
#define ACS_AUTH_MAX 128      /* "HMAC-SHA256 SignedHeaders=...&Signature=<44>" + NUL */

/* Base64 SHA-256 of body[0..len) (the x-ms-content-sha256 header). */
void acs_content_sha256(const void *body, size_t len, char out[ACS_SHA256_B64_LEN]);

/* Computes the x-ms-content-sha256 and authorization headers for one request.
 * method "POST"; path_and_query as sent ("/identities?api-version=2023-10-01"); host as signed
 * ("host" or "host:port"); date an RFC 1123 x-ms-date. body may be NULL when body_len is 0.
 * 0, TV_ERR_INVALID (a NULL argument, an empty key or method, a field over its ceiling - method
 * 16, path 8192, host 300, date 64 bytes - or a field holding '\n', or ';' in date or host,
 * which would make the string-to-sign ambiguous) or TV_ERR_CRYPTO. Outputs untouched on
 * failure. */
int acs_sign(const uint8_t *key, size_t key_len, const char *method, const char *path_and_query,
             const char *host, const char *date, const void *body, size_t body_len,
             char content_sha256[ACS_SHA256_B64_LEN], char authorization[ACS_AUTH_MAX]);

/* Checks a received request: the content hash must match the body and the authorization must
 * be the one acs_sign produces (compared in constant time, lengths first). Any argument
 * acs_sign would refuse also fails. 0 or TV_ERR_UNAUTHORIZED. */
int acs_sign_verify(const uint8_t *key, size_t key_len, const char *method,
                    const char *path_and_query, const char *host, const char *date,
                    const void *body, size_t body_len, const char *content_sha256,
                    const char *authorization);

#endif
