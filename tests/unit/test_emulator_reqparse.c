/* Unit tests of the emulator's request parsing: scopes, expiresInMinutes 59/60/1440/1441 and
 * its api-version gate, body shapes of create and issue, the Teams exchange checks, query
 * parameters and percent-decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/b64.h"
#include "core/err.h"
#include "emulator/reqparse.h"

#define V23 EMU_API_2023_10_01

static int issue(const char *body, struct emu_token_req *r)
{
    char why[200];

    return emu_req_issue(body, strlen(body), V23, r, why, sizeof(why));
}

static void test_expires_bounds(void **state)
{
    struct emu_token_req r;
    char why[200];
    const char *b;

    (void)state;
    assert_int_equal(issue("{\"scopes\":[\"chat\"],\"expiresInMinutes\":59}", &r), TV_ERR_INVALID);
    assert_int_equal(issue("{\"scopes\":[\"chat\"],\"expiresInMinutes\":60}", &r), 0);
    assert_int_equal(r.expires_in_minutes, 60);
    assert_int_equal(issue("{\"scopes\":[\"chat\"],\"expiresInMinutes\":1440}", &r), 0);
    assert_int_equal(r.expires_in_minutes, 1440);
    assert_int_equal(issue("{\"scopes\":[\"chat\"],\"expiresInMinutes\":1441}", &r),
                     TV_ERR_INVALID);
    assert_int_equal(issue("{\"scopes\":[\"chat\"],\"expiresInMinutes\":60.5}", &r),
                     TV_ERR_INVALID);
    assert_int_equal(issue("{\"scopes\":[\"chat\"],\"expiresInMinutes\":\"60\"}", &r),
                     TV_ERR_INVALID);
    assert_int_equal(issue("{\"scopes\":[\"chat\"],\"expiresInMinutes\":99999999999999}", &r),
                     TV_ERR_INVALID);
    /* Default is 1440; null counts as absent. */
    assert_int_equal(issue("{\"scopes\":[\"chat\"]}", &r), 0);
    assert_int_equal(r.expires_in_minutes, 1440);
    assert_int_equal(issue("{\"scopes\":[\"chat\"],\"expiresInMinutes\":null}", &r), 0);
    /* Custom lifetimes came with 2022-10-01. */
    b = "{\"scopes\":[\"chat\"],\"expiresInMinutes\":60}";
    assert_int_equal(emu_req_issue(b, strlen(b), EMU_API_2022_06_01, &r, why, sizeof(why)),
                     TV_ERR_INVALID);
    assert_non_null(strstr(why, "2022-10-01"));
    assert_int_equal(emu_req_issue(b, strlen(b), EMU_API_2022_10_01, &r, why, sizeof(why)), 0);
}

static void test_scopes(void **state)
{
    struct emu_token_req r;
    char s[EMU_SCOPE_STR_MAX];

    (void)state;
    assert_int_equal(issue("{\"scopes\":[\"voip\",\"chat\",\"chat\"]}", &r), 0);
    assert_int_equal(r.scopes, EMU_SCOPE_CHAT | EMU_SCOPE_VOIP);
    emu_scopes_str(r.scopes, s);
    assert_string_equal(s, "chat,voip");
    assert_int_equal(issue("{\"scopes\":[\"chat.join\",\"chat.join.limited\",\"voip.join\"]}", &r),
                     0);
    emu_scopes_str(r.scopes, s);
    assert_string_equal(s, "chat.join,chat.join.limited,voip.join");
    assert_int_equal(issue("{\"scopes\":[]}", &r), TV_ERR_INVALID);
    assert_int_equal(issue("{\"scopes\":[\"Chat\"]}", &r), TV_ERR_INVALID);
    assert_int_equal(issue("{\"scopes\":[\"pstn\"]}", &r), TV_ERR_INVALID);
    assert_int_equal(issue("{\"scopes\":[1]}", &r), TV_ERR_INVALID);
    assert_int_equal(issue("{\"scopes\":\"chat\"}", &r), TV_ERR_INVALID);
    assert_int_equal(issue("{\"scopes\":null}", &r), TV_ERR_INVALID);
    assert_int_equal(issue("{}", &r), TV_ERR_INVALID);
    assert_int_equal(issue("", &r), TV_ERR_INVALID);
    assert_int_equal(issue("[\"chat\"]", &r), TV_ERR_INVALID);
    assert_int_equal(issue("{\"scopes\":[\"chat\"]} x", &r), TV_ERR_INVALID);
    assert_int_equal(issue("{\"scopes\":[\"chat\"],\"scopes\":[\"voip\"]}", &r), TV_ERR_INVALID);
}

static void test_create(void **state)
{
    struct emu_token_req r;
    char why[200];
    const char *b;

    (void)state;
    /* The SDK sends no body for a plain createUser. */
    assert_int_equal(emu_req_create("", 0, V23, &r, why, sizeof(why)), 0);
    assert_int_equal(r.want_token, 0);
    assert_int_equal(emu_req_create("{}", 2, V23, &r, why, sizeof(why)), 0);
    assert_int_equal(r.want_token, 0);
    b = "{\"createTokenWithScopes\":[\"chat\",\"voip\"],\"expiresInMinutes\":120}";
    assert_int_equal(emu_req_create(b, strlen(b), V23, &r, why, sizeof(why)), 0);
    assert_int_equal(r.want_token, 1);
    assert_int_equal(r.scopes, EMU_SCOPE_CHAT | EMU_SCOPE_VOIP);
    assert_int_equal(r.expires_in_minutes, 120);
    b = "{\"createTokenWithScopes\":[]}";
    assert_int_equal(emu_req_create(b, strlen(b), V23, &r, why, sizeof(why)), TV_ERR_INVALID);
    b = "{\"createTokenWithScopes\":[\"voip\"],\"expiresInMinutes\":59}";
    assert_int_equal(emu_req_create(b, strlen(b), V23, &r, why, sizeof(why)), TV_ERR_INVALID);
    b = "{\"createTokenWithScopes\":\"voip\"}";
    assert_int_equal(emu_req_create(b, strlen(b), V23, &r, why, sizeof(why)), TV_ERR_INVALID);
    b = "nonsense";
    assert_int_equal(emu_req_create(b, strlen(b), V23, &r, why, sizeof(why)), TV_ERR_INVALID);
}

/* customId: taken with 2025-03-02-preview only; refused elsewhere, empty, too long or not a
 * string. */
static void test_create_custom_id(void **state)
{
    struct emu_token_req r;
    char why[200];
    char big[EMU_CUSTOM_ID_MAX + 40];
    const char *b;
    const enum emu_apiver pv = EMU_API_2025_03_02_PREVIEW;

    (void)state;
    b = "{\"customId\":\"alice@contoso.com\",\"createTokenWithScopes\":[\"voip\"]}";
    assert_int_equal(emu_req_create(b, strlen(b), pv, &r, why, sizeof(why)), 0);
    assert_string_equal(r.custom_id, "alice@contoso.com");
    assert_int_equal(r.want_token, 1);
    assert_int_equal(emu_req_create("", 0, pv, &r, why, sizeof(why)), 0);
    assert_string_equal(r.custom_id, "");
    for (enum emu_apiver v = 0; v < EMU_API__COUNT; v++) {
        if (v == pv)
            continue;
        b = "{\"customId\":\"alice\"}";
        assert_int_equal(emu_req_create(b, strlen(b), v, &r, why, sizeof(why)), TV_ERR_INVALID);
        assert_non_null(strstr(why, "2025-03-02-preview"));
    }
    b = "{\"customId\":\"\"}";
    assert_int_equal(emu_req_create(b, strlen(b), pv, &r, why, sizeof(why)), TV_ERR_INVALID);
    b = "{\"customId\":42}";
    assert_int_equal(emu_req_create(b, strlen(b), pv, &r, why, sizeof(why)), TV_ERR_INVALID);
    snprintf(big, sizeof(big), "{\"customId\":\"%0*d\"}", EMU_CUSTOM_ID_MAX, 7);
    assert_int_equal(emu_req_create(big, strlen(big), pv, &r, why, sizeof(why)), 0);
    assert_int_equal(strlen(r.custom_id), EMU_CUSTOM_ID_MAX);
    snprintf(big, sizeof(big), "{\"customId\":\"%0*d\"}", EMU_CUSTOM_ID_MAX + 1, 7);
    assert_int_equal(emu_req_create(big, strlen(big), pv, &r, why, sizeof(why)), TV_ERR_INVALID);
}

/* An unsigned JWT with the given payload JSON. */
static char *fake_jwt(const char *payload)
{
    static const char hdr[] = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
    size_t n = b64_encoded_size(sizeof(hdr)) + b64_encoded_size(strlen(payload)) + 8;
    char *out = malloc(n);
    char *p = out;

    assert_non_null(out);
    b64url_encode((const uint8_t *)hdr, sizeof(hdr) - 1, p);
    p += strlen(p);
    *p++ = '.';
    b64url_encode((const uint8_t *)payload, strlen(payload), p);
    p += strlen(p);
    strcpy(p, ".c2ln");
    return out;
}

static int teams(const char *payload, const char *app, const char *user, struct emu_teams_req *out)
{
    char *tok = payload ? fake_jwt(payload) : strdup("not-a-jwt");
    char body[2048];
    char why[200];
    int rc;

    snprintf(body, sizeof(body), "{\"token\":\"%s\",\"appId\":\"%s\",\"userId\":\"%s\"}", tok, app,
             user);
    rc = emu_req_teams(body, strlen(body), 1000, out, why, sizeof(why));
    free(tok);
    return rc;
}

static void test_teams(void **state)
{
    struct emu_teams_req t;
    char why[200];

    (void)state;
    assert_int_equal(
        teams("{\"oid\":\"AB-12\",\"appid\":\"app\",\"exp\":2000}", "app", "ab-12", &t), 0);
    assert_string_equal(t.oid, "ab-12");
    assert_int_equal(t.exp_s, 2000);
    /* azp stands in for appid. */
    assert_int_equal(teams("{\"oid\":\"u\",\"azp\":\"app\",\"exp\":2000}", "app", "u", &t), 0);
    assert_int_equal(teams("{\"oid\":\"u\",\"appid\":\"app\",\"exp\":2000}", "app", "v", &t),
                     TV_ERR_INVALID);
    assert_int_equal(teams("{\"oid\":\"u\",\"appid\":\"app\",\"exp\":2000}", "other", "u", &t),
                     TV_ERR_INVALID);
    assert_int_equal(teams("{\"oid\":\"u\",\"appid\":\"app\",\"exp\":1000}", "app", "u", &t),
                     TV_ERR_UNAUTHORIZED);
    assert_int_equal(teams("{\"oid\":\"u\",\"appid\":\"app\"}", "app", "u", &t),
                     TV_ERR_UNAUTHORIZED);
    assert_int_equal(teams(NULL, "app", "u", &t), TV_ERR_UNAUTHORIZED);
    assert_int_equal(teams("{\"oid\":\"u\",\"appid\":\"app\",\"exp\":2000}", "app", "u/../x", &t),
                     TV_ERR_INVALID);
    assert_int_equal(emu_req_teams("{\"token\":\"a.b.c\"}", 17, 1000, &t, why, sizeof(why)),
                     TV_ERR_INVALID);
}

static void test_query_and_decode(void **state)
{
    char v[32];
    char out[16];

    (void)state;
    assert_int_equal(emu_query_param("api-version=2023-10-01", "api-version", v, sizeof(v)), 0);
    assert_string_equal(v, "2023-10-01");
    assert_int_equal(emu_query_param("a=1&api-version=2021-03-07&b", "api-version", v, sizeof(v)),
                     0);
    assert_string_equal(v, "2021-03-07");
    assert_int_equal(emu_query_param("api-version=2023%2D10-01", "api-version", v, sizeof(v)), 0);
    assert_string_equal(v, "2023-10-01");
    assert_int_equal(emu_query_param(NULL, "api-version", v, sizeof(v)), TV_ERR_NOT_FOUND);
    assert_int_equal(emu_query_param("xapi-version=1", "api-version", v, sizeof(v)),
                     TV_ERR_NOT_FOUND);
    assert_int_equal(emu_query_param("api-version=1&api-version=2", "api-version", v, sizeof(v)),
                     TV_ERR_INVALID);
    assert_int_equal(emu_query_param("api-version=%zz", "api-version", v, sizeof(v)),
                     TV_ERR_INVALID);
    assert_int_equal(emu_pct_decode("8%3Aacs%3Ax", 11, out, sizeof(out)), 0);
    assert_string_equal(out, "8:acs:x");
    assert_int_equal(emu_pct_decode("a%00b", 5, out, sizeof(out)), TV_ERR_INVALID);
    assert_int_equal(emu_pct_decode("a%4", 3, out, sizeof(out)), TV_ERR_INVALID);
    assert_int_equal(emu_pct_decode("0123456789abcdefg", 17, out, sizeof(out)), TV_ERR_INVALID);
}

static void test_names(void **state)
{
    enum emu_apiver v;
    enum emu_op op;

    (void)state;
    assert_int_equal(emu_apiver_parse("2025-06-30", &v), 0);
    assert_int_equal(v, EMU_API_2025_06_30);
    assert_int_equal(emu_apiver_parse("2023-10-01-preview", &v), TV_ERR_INVALID);
    assert_int_equal(emu_op_parse("teams_exchange", &op), 0);
    assert_int_equal(op, EMU_OP_TEAMS_EXCHANGE);
    assert_string_equal(emu_op_name(EMU_OP_REVOKE), "revoke");
    assert_int_equal(emu_op_parse("Create", &op), TV_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expires_bounds), cmocka_unit_test(test_scopes),
        cmocka_unit_test(test_create),         cmocka_unit_test(test_create_custom_id),
        cmocka_unit_test(test_teams),          cmocka_unit_test(test_query_and_decode),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
