/* Review 10b (adversarial): a damaged row of the kept token cache must mean a fresh token,
 * never an error (issue 10, part 5), and so never undefined behaviour either. tkeep_lookup
 * computes row.expires_ms - now_ms (src/service/tkeep.c, "the cheap rules first") before the
 * row is authenticated, so a row whose expires_ms is near INT64_MIN (a damaged or edited row:
 * the column is a plain INTEGER/BIGINT) overflows a signed subtraction. Under `make asan`
 * (UBSan, -fno-sanitize-recover=all) this test aborts; fixed (compare expires_ms against
 * now_ms + min_remaining with saturation, or reject rows with expires_ms <= now_ms first), it
 * is a plain miss. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/err.h"
#include "service/tkeep_int.h"
#include "store/store.h"
#include "store/tokens.h"
#include "store_fx.h"

static const uint8_t KEY[AEAD_KEY_LEN] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                          12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                          23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static void test_damaged_expiry_is_a_miss(void **state)
{
    struct store_fx *sx = *state;
    char dir[64], path[128], p[160];
    struct store *st = NULL;
    struct tkeep *k = NULL;
    struct tcache_hit hit;
    struct tkeep_id id = {"res.example:443", "8:acs:damaged", "chat", 60, 1000, 3601000};
    struct store_token w;
    uint8_t blob[64];

    (void)sx;
    snprintf(dir, sizeof(dir), "/tmp/tv-r10b-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/tv.db", dir);
    {
        struct store_fx fx;
        assert_int_equal(store_fx_new(&fx, path), 0);
        assert_int_equal(store_fx_open(&fx, 1, &st), 0);
        assert_int_equal(tkeep_new(KEY, st, 30 * 60000LL, &k), 0);
        memset(&w, 0, sizeof(w));
        snprintf(w.acs_id, sizeof(w.acs_id), "%s", id.acs_id);
        snprintf(w.scopes, sizeof(w.scopes), "%s", id.scopes);
        snprintf(w.resource, sizeof(w.resource), "%s", id.resource);
        memset(blob, 0x5a, sizeof(blob));
        w.minutes = id.minutes;
        w.issued_ms = 1000;
        w.expires_ms = INT64_MIN + 1; /* damaged */
        w.sealed = blob;
        w.sealed_len = sizeof(blob);
        assert_int_equal(store_token_put(st, &w), 0);
        memset(&hit, 0, sizeof(hit));
        assert_int_equal(tkeep_lookup(k, &id, 1800000000000LL, 0, NULL, &hit), TV_ERR_NOT_FOUND);
        assert_null(hit.token);
        tkeep_free(k);
        store_close(st);
        store_fx_drop(&fx);
    }
    unlink(path);
    snprintf(p, sizeof(p), "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", path);
    unlink(p);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_damaged_expiry_is_a_miss),
    };
    return cmocka_run_group_tests(tests, store_fx_group_setup, store_fx_group_teardown);
}
