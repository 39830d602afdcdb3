/* libFuzzer harness for the JWT verifier. The input is tried three ways: as a compact token
 * verified against a fixed ES256 key (seeds are valid tokens for it), as a claims payload for
 * jwt_claims_check, and as a JWK. Besides memory safety it checks that whatever is accepted
 * meets the contract (user claim 1..256 bytes, exp in the future, the header's kid) and that
 * verification is deterministic. */
/* clang-format off */
/* fuzz-sources: src/auth/jwt.c src/auth/jwk.c src/core/b64.c src/core/jsonx.c src/core/ident.c src/core/err.c src/core/clock.c src/core/log.c */
/* clang-format on */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwk.h"
#include "auth/jwt.h"
#include "core/err.h"
#include "core/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Public half of the key that signed the seed tokens in scripts/fuzz.sh. */
static const char fuzz_jwk[] = "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"fz\","
                               "\"x\":\"AEjxc9GmKXaKegLmoSeHLHhqVzYjjS-tGnpGavNWcwM\","
                               "\"y\":\"g8gE10Pm450p27rRd8W6kCzI5oj3WNeWjfssAxhAT5c\"}";
static struct jwk *key;

static const struct jwt_expect expect = {
    .issuer = "https://issuer.example/",
    .audience = "api://tokenvend",
    .user_claim = "sub",
    .leeway_s = 0,
    .now_s = 1800000000,
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_setup(LOGL_OFF, 2);
    if (jwk_parse(fuzz_jwk, strlen(fuzz_jwk), &key) != 0)
        abort();
    return 0;
}

static void check_claims(const struct jwt_claims *c)
{
    size_t n = strlen(c->user);

    if (n == 0 || n > JWT_USER_MAX || !c->payload || c->exp + JWT_DEFAULT_LEEWAY_S <= expect.now_s)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct jwt_claims c, c2;
    struct jwt_header h;
    struct jwk *k = NULL;
    const char *why = NULL;
    int rc, rc2;

    rc = jwt_verify(key, s, size, &expect, &c, &why);
    if (rc == 0) {
        check_claims(&c);
        if (c.alg != JWT_ALG_ES256 || jwt_header_peek(s, size, &h) != 0 ||
            strcmp(h.kid, c.kid) != 0)
            abort();
        jwt_claims_release(&c);
    } else if (rc != TV_ERR_UNAUTHORIZED && rc != TV_ERR_NOMEM) {
        abort();
    } else if (!why) {
        abort(); /* every refusal names its reason */
    }
    rc2 = jwt_verify(key, s, size, &expect, &c2, NULL);
    if (rc2 != rc)
        abort();
    if (rc2 == 0)
        jwt_claims_release(&c2);

    rc = jwt_claims_check(s, size, &expect, &c);
    if (rc == 0) {
        check_claims(&c);
        jwt_claims_release(&c);
    }

    if (jwk_parse(s, size, &k) == 0) {
        if (!jwk_allows(k, JWT_ALG_RS256) && !jwk_allows(k, JWT_ALG_PS256) &&
            !jwk_allows(k, JWT_ALG_ES256))
            abort();
        jwk_free(k);
    }
    return 0;
}
