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

#include <curl/curl.h>

/* 0, or TV_ERR_INTERNAL when libcurl cannot be initialised. Thread-safe; the work is done once. */
int curlx_init(void);

/* Sets up e's TLS so that OpenSSL wipes what it decrypted once it has been read
 * (SSL_OP_CLEANSE_PLAINTEXT, through CURLOPT_SSL_CTX_FUNCTION): libcurl's allocator does not
 * reach OpenSSL's record buffer, which otherwise keeps an answer's plaintext (an Entra token, an
 * ACS token) until it is freed unwiped. CURLE_OK, also when the TLS backend offers no such hook
 * (nothing to set), else the setopt error. */
CURLcode curlx_tls_wipe(CURL *e);

/* The CURLOPT_SSL_CTX_FUNCTION curlx_tls_wipe installs; ssl_ctx is an OpenSSL SSL_CTX *.
 * Exposed for tests. */
CURLcode curlx_ssl_ctx_wipe(CURL *e, void *ssl_ctx, void *arg);

#endif
