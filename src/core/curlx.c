/* See curlx.h. The wiping allocator relies on malloc_usable_size (glibc, and the sanitizer
 * runtimes, which intercept it): the whole block is wiped, not only the bytes libcurl asked for. */
#include "core/curlx.h"

#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "core/err.h"

static pthread_once_t curlx_once = PTHREAD_ONCE_INIT;
static int curlx_rc = TV_ERR_INTERNAL;

static void *curlx_malloc(size_t n)
{
    return malloc(n);
}

static void curlx_free(void *p)
{
    if (p != NULL) {
        OPENSSL_cleanse(p, malloc_usable_size(p));
        free(p);
    }
}

/* A block that must grow is copied to a new one and the old one wiped: glibc's realloc would
 * release the old block unwiped. Shrinking or growing within the block keeps it. */
static void *curlx_realloc(void *p, size_t n)
{
    size_t have;
    void *q;
    if (p == NULL)
        return malloc(n);
    have = malloc_usable_size(p);
    if (n <= have && n > 0)
        return p;
    if (n == 0) {
        curlx_free(p);
        return NULL;
    }
    q = malloc(n);
    if (q == NULL)
        return NULL;
    memcpy(q, p, have);
    curlx_free(p);
    return q;
}

static char *curlx_strdup(const char *s)
{
    return strdup(s);
}

static void *curlx_calloc(size_t n, size_t size)
{
    return calloc(n, size);
}

static void curlx_init_once(void)
{
    curlx_rc = curl_global_init_mem(CURL_GLOBAL_DEFAULT, curlx_malloc, curlx_free, curlx_realloc,
                                    curlx_strdup, curlx_calloc) == CURLE_OK
                   ? 0
                   : TV_ERR_INTERNAL;
}

int curlx_init(void)
{
    pthread_once(&curlx_once, curlx_init_once);
    return curlx_rc;
}

CURLcode curlx_ssl_ctx_wipe(CURL *e, void *ssl_ctx, void *arg)
{
    (void)e;
    (void)arg;
    SSL_CTX_set_options((SSL_CTX *)ssl_ctx, SSL_OP_CLEANSE_PLAINTEXT);
    return CURLE_OK;
}

CURLcode curlx_tls_wipe(CURL *e)
{
    CURLcode cc = curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, curlx_ssl_ctx_wipe);
    return cc == CURLE_NOT_BUILT_IN || cc == CURLE_UNKNOWN_OPTION ? CURLE_OK : cc;
}
