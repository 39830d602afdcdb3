/* libcurl's process-wide set-up, done once for every module that uses libcurl (the ACS client,
 * the JWKS fetcher, the Entra credential): curl_global_init is not thread-safe, and each used to
 * call it from its own once-guard, so two first uses on two threads could race.
 *
 * libcurl is given allocation functions that wipe every block before it goes back to the
 * allocator (including the old block of a realloc that moves): its buffers hold what tokenvend
 * sends and receives, which in keyless mode means the client secret, the identity header, the
 * federated assertion and every Authorization: Bearer line. */
#ifndef TV_CORE_CURLX_H
#define TV_CORE_CURLX_H

/* 0, or TV_ERR_INTERNAL when libcurl cannot be initialised. Thread-safe; the work is done once. */
int curlx_init(void);

#endif
