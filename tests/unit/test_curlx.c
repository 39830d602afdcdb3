/* curlx_init: libcurl's memory comes back wiped (tests/lib/freecheck.h watches every free), also
 * the old blocks of a buffer that grows by realloc; and the set-up is done once however many
 * threads ask. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <curl/mprintf.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "core/curlx.h"
#include "freecheck.h"

static char secret[4096];

/* A long printable secret: libcurl's printf buffer grows several times while writing it. */
static void make_secret(void)
{
    for (size_t i = 0; i < sizeof secret - 1; i++)
        secret[i] = (char)('a' + (i * 7 + i / 26) % 26);
    memcpy(secret, "tv-curlx-", 9);
    secret[sizeof secret - 1] = '\0';
}

static void *init_thread(void *arg)
{
    *(int *)arg = curlx_init();
    return NULL;
}

static void test_init_once_from_threads(void **state)
{
    pthread_t t[8];
    int rc[8];
    (void)state;
    for (int i = 0; i < 8; i++)
        assert_int_equal(pthread_create(&t[i], NULL, init_thread, &rc[i]), 0);
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(rc[i], 0);
    }
}

/* curl_maprintf grows its buffer with realloc, and curl_free releases it: no copy is freed
 * unwiped. */
static void test_blocks_wiped(void **state)
{
    char *p, *q;
    (void)state;
    assert_int_equal(curlx_init(), 0);
    freecheck_begin(secret);
    p = curl_maprintf("Authorization: Bearer %s", secret);
    assert_non_null(p);
    q = curl_easy_escape(NULL, secret, 0);
    assert_non_null(q);
    curl_free(p);
    curl_free(q);
    assert_int_equal(freecheck_end(), 0);
}

/* ---- TLS: OpenSSL's record buffer, which libcurl's allocator does not reach ---- */

/* A self-signed P-256 server context for "localhost". */
static SSL_CTX *server_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *crt = X509_new();
    assert_non_null(ctx);
    assert_non_null(key);
    assert_non_null(crt);
    ASN1_INTEGER_set(X509_get_serialNumber(crt), 1);
    X509_gmtime_adj(X509_getm_notBefore(crt), 0);
    X509_gmtime_adj(X509_getm_notAfter(crt), 3600);
    X509_set_pubkey(crt, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(crt), "CN", MBSTRING_ASC,
                               (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(crt, X509_get_subject_name(crt));
    assert_true(X509_sign(crt, key, EVP_sha256()) > 0);
    assert_int_equal(SSL_CTX_use_certificate(ctx, crt), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
    X509_free(crt);
    EVP_PKEY_free(key);
    return ctx;
}

/* A TLS connection over an in-memory BIO pair: the server sends the secret, the client reads it
 * (and wipes its own copy); then the client side is freed with the check watching. The client's
 * context goes through curlx_ssl_ctx_wipe when wipe is set. The number of unwiped frees. */
static long tls_leftovers(int wipe)
{
    SSL_CTX *sctx = server_ctx(), *cctx = SSL_CTX_new(TLS_client_method());
    SSL *srv, *cli;
    BIO *sb = NULL, *cb = NULL;
    static char got[sizeof secret];
    size_t total = 0;
    assert_non_null(cctx);
    if (wipe)
        assert_int_equal(curlx_ssl_ctx_wipe(NULL, cctx, NULL), CURLE_OK);
    srv = SSL_new(sctx);
    cli = SSL_new(cctx);
    assert_int_equal(BIO_new_bio_pair(&sb, 0, &cb, 0), 1);
    SSL_set_bio(srv, sb, sb);
    SSL_set_bio(cli, cb, cb);
    SSL_set_accept_state(srv);
    SSL_set_connect_state(cli);
    for (int i = 0; i < 100 && (!SSL_is_init_finished(srv) || !SSL_is_init_finished(cli)); i++) {
        (void)SSL_do_handshake(cli);
        (void)SSL_do_handshake(srv);
    }
    assert_true(SSL_is_init_finished(cli));
    assert_int_equal(SSL_write(srv, secret, (int)strlen(secret)), (int)strlen(secret));
    while (total < strlen(secret)) {
        int n = SSL_read(cli, got + total, (int)(sizeof got - 1 - total));
        assert_true(n > 0);
        total += (size_t)n;
    }
    assert_memory_equal(got, secret, total);
    memset(got, 0, sizeof got);
    SSL_free(srv); /* the sender's side is not what is checked */
    SSL_CTX_free(sctx);
    freecheck_begin(secret);
    SSL_free(cli);
    SSL_CTX_free(cctx);
    return freecheck_end();
}

static void test_tls_plaintext_wiped(void **state)
{
    (void)state;
    /* Without the option OpenSSL frees the decrypted record unwiped: the check can fail. */
    assert_true(tls_leftovers(0) >= 1);
    assert_int_equal(tls_leftovers(1), 0);
}

/* The detector sees what a plain free leaves. */
static void test_detector(void **state)
{
    char *p = strdup(secret);
    (void)state;
    freecheck_begin(secret);
    free(p);
    assert_int_equal(freecheck_end(), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_once_from_threads),
        cmocka_unit_test(test_blocks_wiped),
        cmocka_unit_test(test_detector),
        cmocka_unit_test(test_tls_plaintext_wiped),
    };
    make_secret();
    freecheck_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
