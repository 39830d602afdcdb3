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
    };
    make_secret();
    freecheck_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
