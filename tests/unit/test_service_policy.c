/* Token policy: the body parser and its 400/403 decisions, table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/err.h"
#include "service/policy.h"

static void policy_make(struct policy *p, const char *allowed, const char *defaults, int def,
                        int min, int max)
{
    char err[128];
    memset(p, 0, sizeof *p);
    assert_int_equal(config_scopes_parse(allowed, &p->allowed, err, sizeof err), 0);
    assert_int_equal(config_scopes_parse(defaults, &p->defaults, err, sizeof err), 0);
    p->default_minutes = def;
    p->min_minutes = min;
    p->max_minutes = max;
    p->auto_create = 1;
}

struct case_ {
    const char *body;
    int rc;
    const char *scopes; /* expected "a,b" on success */
    int minutes;
};

static void test_parse_table(void **state)
{
    static const struct case_ cases[] = {
        {"", 0, "chat,voip", 1440},
        {"{}", 0, "chat,voip", 1440},
        {"{\"scopes\":[\"chat\"]}", 0, "chat", 1440},
        {"{\"scopes\":[\"voip\",\"chat\",\"voip\"]}", 0, "voip,chat", 1440},
        {"{\"expiresInMinutes\":60}", 0, "chat,voip", 60},
        {"{\"expiresInMinutes\":1440,\"scopes\":[\"chat\"]}", 0, "chat", 1440},
        /* 400: syntax, types, unknown scope, lifetime */
        {"not json", TV_ERR_PARSE, NULL, 0},
        {"[1]", TV_ERR_PARSE, NULL, 0},
        {"{\"scopes\":\"chat\"}", TV_ERR_INVALID, NULL, 0},
        {"{\"scopes\":[]}", TV_ERR_INVALID, NULL, 0},
        {"{\"scopes\":[1]}", TV_ERR_INVALID, NULL, 0},
        {"{\"scopes\":[\"bogus\"]}", TV_ERR_INVALID, NULL, 0},
        {"{\"scopes\":[\"chat,voip\"]}", TV_ERR_INVALID, NULL, 0},
        {"{\"expiresInMinutes\":59}", TV_ERR_INVALID, NULL, 0},
        {"{\"expiresInMinutes\":1441}", TV_ERR_INVALID, NULL, 0},
        {"{\"expiresInMinutes\":\"60\"}", TV_ERR_INVALID, NULL, 0},
        {"{\"expiresInMinutes\":60.5}", TV_ERR_INVALID, NULL, 0},
        {"{\"expiresInMinutes\":99999999999999999999}", TV_ERR_PARSE, NULL, 0},
        {"{\"scopes\":[\"chat\"],\"scopes\":[\"voip\"]}", TV_ERR_PARSE, NULL, 0},
        /* an unknown member is a 400, whatever else the body holds */
        {"{\"other\":true,\"expiresInMinutes\":120}", TV_ERR_INVALID, NULL, 0},
        {"{\"scope\":[\"chat\"],\"expiresInMinute\":60}", TV_ERR_INVALID, NULL, 0},
        {"{\"scopes\":[\"chat\"],\"expiresInMinute\":60}", TV_ERR_INVALID, NULL, 0},
        {"{\"scopes\":[\"voip.join\"],\"x\":1}", TV_ERR_INVALID, NULL, 0},
        /* a malformed lifetime wins over a forbidden scope */
        {"{\"scopes\":[\"voip.join\"],\"expiresInMinutes\":10}", TV_ERR_INVALID, NULL, 0},
        /* 403: a real ACS scope the policy does not allow */
        {"{\"scopes\":[\"voip.join\"]}", TV_ERR_FORBIDDEN, NULL, 0},
        {"{\"scopes\":[\"chat\",\"chat.join\"]}", TV_ERR_FORBIDDEN, NULL, 0},
        /* ...but an unknown one next to it is still a 400 */
        {"{\"scopes\":[\"chat.join\",\"bogus\"]}", TV_ERR_INVALID, NULL, 0},
    };
    struct policy p;
    (void)state;

    policy_make(&p, "chat,voip", "chat,voip", 1440, 60, 1440);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct policy_token_req r;
        char msg[POLICY_MSG_MAX] = "", got[96];
        int rc =
            policy_token_req_parse(&p, cases[i].body, strlen(cases[i].body), &r, msg, sizeof msg);
        if (rc != cases[i].rc)
            fail_msg("case %zu (%s): rc %d (%s), want %d", i, cases[i].body, rc, msg, cases[i].rc);
        if (rc != 0) {
            assert_true(msg[0] != '\0');
            continue;
        }
        policy_scopes_format(&r, got, sizeof got);
        assert_string_equal(got, cases[i].scopes);
        assert_int_equal(r.minutes, cases[i].minutes);
    }
}

/* The 400's sentence names what was wrong: the first unknown member (with a hint when a known
 * one is close), the unknown scope and the scopes the policy allows. */
static void test_messages(void **state)
{
    static const struct {
        const char *body;
        const char *msg;
    } cases[] = {
        {"{\"scope\":[\"chat\"],\"expiresInMinute\":60}",
         "unknown field \"scope\"; did you mean \"scopes\"?"},
        {"{\"scopes\":[\"chat\"],\"expiresInMinute\":60}",
         "unknown field \"expiresInMinute\"; did you mean \"expiresInMinutes\"?"},
        {"{\"ExpiresInMinutes\":60}",
         "unknown field \"ExpiresInMinutes\"; did you mean \"expiresInMinutes\"?"},
        {"{\"lifetime\":60}", "unknown field \"lifetime\""},
        /* a long name is cut at 40 bytes, and the cut is shown */
        {"{\"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\":1}",
         "unknown field \"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN...\""},
        {"{\"scopes\":[\"abcdefghijklmnopqrstuvwxyzABCDEFGHIJ\"]}",
         "unknown scope \"abcdefghijklmnopqrstuvwxyzABCDEF...\"; allowed: chat, voip, chat.join"},
        {"{\"a\\\"b\\n\":1}", "unknown field \"a?b?\""},
        {"{\"scopes\":[\"chatt\"]}", "unknown scope \"chatt\"; allowed: chat, voip, chat.join"},
        {"{\"scopes\":[\"chat\",\"v\\\"oip\"]}",
         "unknown scope \"v?oip\"; allowed: chat, voip, chat.join"},
    };
    struct policy p;
    (void)state;

    policy_make(&p, "chat,voip,chat.join", "chat,voip", 1440, 60, 1440);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct policy_token_req r;
        char msg[POLICY_MSG_MAX] = "";
        int rc =
            policy_token_req_parse(&p, cases[i].body, strlen(cases[i].body), &r, msg, sizeof msg);
        if (rc != TV_ERR_INVALID || strcmp(msg, cases[i].msg) != 0)
            fail_msg("case %zu (%s): rc %d, message '%s', want '%s'", i, cases[i].body, rc, msg,
                     cases[i].msg);
    }
}

static void test_configured_bounds(void **state)
{
    struct policy p;
    struct policy_token_req r;
    char msg[POLICY_MSG_MAX];
    (void)state;

    policy_make(&p, "chat,voip,chat.join", "chat", 120, 90, 240);
    assert_int_equal(policy_token_req_parse(&p, "", 0, &r, msg, sizeof msg), 0);
    assert_int_equal(r.minutes, 120);
    assert_int_equal(r.nscopes, 1);
    const char *b1 = "{\"expiresInMinutes\":60}";
    assert_int_equal(policy_token_req_parse(&p, b1, strlen(b1), &r, msg, sizeof msg),
                     TV_ERR_INVALID);
    assert_non_null(strstr(msg, "90..240"));
    const char *b2 = "{\"expiresInMinutes\":241}";
    assert_int_equal(policy_token_req_parse(&p, b2, strlen(b2), &r, msg, sizeof msg),
                     TV_ERR_INVALID);
    const char *b3 = "{\"expiresInMinutes\":240,\"scopes\":[\"chat.join\"]}";
    assert_int_equal(policy_token_req_parse(&p, b3, strlen(b3), &r, msg, sizeof msg), 0);
    assert_int_equal(r.minutes, 240);
    assert_string_equal(r.scopes[0], "chat.join");
}

static void test_from_config(void **state)
{
    struct config cfg;
    struct policy p;
    struct policy_token_req r;
    char err[CONFIG_ERR_MAX];
    struct config_overrides ov = {.default_path = ""};
    (void)state;

    assert_int_equal(config_load(&ov, &cfg, err, sizeof err), 0);
    policy_from_config(&p, &cfg);
    assert_int_equal(p.default_minutes, 1440);
    assert_int_equal(p.min_minutes, 60);
    assert_int_equal(p.max_minutes, 1440);
    assert_int_equal(p.auto_create, 1);
    policy_token_req_default(&p, &r);
    assert_int_equal(r.nscopes, 2);
    config_release(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_configured_bounds),
        cmocka_unit_test(test_from_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
