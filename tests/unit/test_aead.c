/* Unit tests of src/core/aead.c: round trips, and that another key, another purpose, any
 * altered byte, a truncation or an unknown version is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/aead.h"
#include "core/err.h"

static const uint8_t key1[AEAD_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
static const uint8_t key2[AEAD_KEY_LEN] = {9, 8, 7, 6, 5, 4, 3, 2, 1};
static const char AD[] = "tokenvend/test/v1";

static void test_round_trip(void **state)
{
    static const size_t sizes[] = {0, 1, 15, 16, 17, 138, 4096};
    (void)state;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint8_t *pt = malloc(sizes[i] + 1), *blob = NULL, *back = NULL, *blob2 = NULL;
        size_t blen = 0, back_len = 99, blen2 = 0;
        for (size_t j = 0; j < sizes[i]; j++)
            pt[j] = (uint8_t)(j * 7 + 3);
        assert_int_equal(aead_seal(key1, AD, pt, sizes[i], &blob, &blen), 0);
        assert_int_equal(blen, sizes[i] + AEAD_OVERHEAD);
        assert_true(aead_is_sealed(blob, blen));
        assert_int_equal(aead_open(key1, AD, blob, blen, &back, &back_len), 0);
        assert_int_equal(back_len, sizes[i]);
        assert_memory_equal(back, pt, sizes[i]);
        /* A fresh nonce every time: the same plaintext never seals to the same bytes. */
        assert_int_equal(aead_seal(key1, AD, pt, sizes[i], &blob2, &blen2), 0);
        assert_memory_not_equal(blob, blob2, blen);
        free(pt);
        free(blob);
        free(blob2);
        free(back);
    }
}

static void test_refusals(void **state)
{
    static const uint8_t pt[] = "a private key, say";
    uint8_t *blob = NULL, *out = NULL;
    size_t blen = 0, olen = 0;

    (void)state;
    assert_int_equal(aead_seal(key1, AD, pt, sizeof pt, &blob, &blen), 0);
    assert_int_equal(aead_open(key2, AD, blob, blen, &out, &olen), TV_ERR_UNAUTHORIZED);
    assert_int_equal(aead_open(key1, "tokenvend/other/v1", blob, blen, &out, &olen),
                     TV_ERR_UNAUTHORIZED);
    for (size_t i = 1; i < blen; i++) { /* every byte after the version, one bit each */
        blob[i] ^= 0x10;
        assert_int_equal(aead_open(key1, AD, blob, blen, &out, &olen), TV_ERR_UNAUTHORIZED);
        blob[i] ^= 0x10;
    }
    assert_int_equal(aead_open(key1, AD, blob, blen - 1, &out, &olen), TV_ERR_UNAUTHORIZED);
    assert_int_equal(aead_open(key1, AD, blob, AEAD_OVERHEAD - 1, &out, &olen), TV_ERR_INVALID);
    blob[0] = 0x02;
    assert_false(aead_is_sealed(blob, blen));
    assert_int_equal(aead_open(key1, AD, blob, blen, &out, &olen), TV_ERR_INVALID);
    blob[0] = AEAD_VERSION;
    assert_null(out);
    assert_int_equal(aead_open(key1, AD, blob, blen, &out, &olen), 0);
    assert_memory_equal(out, pt, sizeof pt);
    /* A DER key (SEQUENCE, 0x30) is never mistaken for a sealed blob. */
    assert_false(aead_is_sealed((const uint8_t *)"\x30\x81\x87", 3));
    free(blob);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
