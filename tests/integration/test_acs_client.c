/* Integration tests of the ACS client against a real acs-emulator child process: every
 * operation, retries on 429 (honouring Retry-After) and 503, dropped connections, timeouts,
 * a wrong key, an unreachable endpoint, many concurrent calls and shutdown. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "acs/client.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "emu.h"

#define SLACK_MS 1000 /* generous: "ended within the deadline" checks only */

static struct temu g_emu;

static int group_setup(void **state)
{
    const char *args[] = {"--no-rate-limits", NULL};

    (void)state;
    if (getenv("TV_LOG_DEBUG") != NULL)
        log_setup(LOGL_DEBUG, 2);
    else
        log_setup(LOGL_ERROR, 2);
    if (!temu_available()) {
        fprintf(stderr, "acs-emulator not built at %s\n", temu_binary());
        return -1;
    }
    return temu_start(&g_emu, args);
}

static int group_teardown(void **state)
{
    (void)state;
    return temu_stop(&g_emu) == 0 ? 0 : -1;
}

static int test_setup(void **state)
{
    (void)state;
    if (temu_faults_clear(&g_emu) != 0 || temu_stats_reset(&g_emu) != 0)
        return -1;
    return 0;
}

static struct acs_client *client_new(const char *connstr, long attempt_ms, long deadline_ms,
                                     int retries)
{
    struct acs_client_opts o = {
        .connection_string = connstr,
        .connect_timeout_ms = 1000,
        .attempt_timeout_ms = attempt_ms,
        .deadline_ms = deadline_ms,
        .max_retries = retries,
        .backoff_base_ms = 50,
        .backoff_max_ms = 2000,
    };
    struct acs_client *c = NULL;

    assert_int_equal(acs_client_new(&o, &c), 0);
    assert_non_null(c);
    return c;
}

static struct acs_client *client_default(void)
{
    return client_new(g_emu.connstr, 5000, 15000, 3);
}

/* Creates an identity and returns its id in out. */
static void create_identity(struct acs_client *c, char out[ACS_ID_MAX])
{
    struct acs_request req = {.op = ACS_OP_CREATE};
    struct acs_result res;

    assert_int_equal(acs_client_call_sync(c, &req, &res), 0);
    assert_int_equal(res.http_status, 201);
    assert_null(res.token);
    assert_int_equal(strncmp(res.identity_id, "8:acs:", 6), 0);
    memcpy(out, res.identity_id, ACS_ID_MAX);
    acs_result_release(&res);
}

static void assert_token_expiry(const struct acs_result *res, int64_t minutes)
{
    int64_t want = clock_wall_ms() + minutes * 60000;

    assert_non_null(res->token);
    assert_true(strlen(res->token) > 20);
    assert_true(res->expires_on[0] != '\0');
    /* Within five minutes of what was asked (clock and rounding slack). */
    assert_true(res->expires_on_ms > want - 300000 && res->expires_on_ms < want + 300000);
}

static void test_every_operation(void **state)
{
    struct acs_client *c = client_default();
    struct acs_result res;
    char id[ACS_ID_MAX];
    char *jwt, payload[512];

    (void)state;
    assert_string_equal(acs_client_resource(c), strstr(g_emu.base_url, "127.0.0.1"));
    create_identity(c, id);

    /* Create with a token. */
    struct acs_request cr = {
        .op = ACS_OP_CREATE, .scopes = {"chat", "voip"}, .nscopes = 2, .expires_in_minutes = 60};
    assert_int_equal(acs_client_call_sync(c, &cr, &res), 0);
    assert_int_equal(strncmp(res.identity_id, "8:acs:", 6), 0);
    assert_string_not_equal(res.identity_id, id);
    assert_token_expiry(&res, 60);
    assert_int_equal(res.attempts, 1);
    acs_result_release(&res);
    assert_null(res.token);

    /* Issue with scopes and minutes, and our own request id (echoed back). */
    struct acs_request is = {.op = ACS_OP_ISSUE,
                             .identity_id = id,
                             .scopes = {"chat", "voip"},
                             .nscopes = 2,
                             .expires_in_minutes = 120,
                             .request_id = "tv-test-issue-1"};
    assert_int_equal(acs_client_call_sync(c, &is, &res), 0);
    assert_int_equal(res.http_status, 200);
    assert_int_equal(res.op, ACS_OP_ISSUE);
    assert_string_equal(res.identity_id, id);
    assert_string_equal(res.request_id, "tv-test-issue-1");
    assert_token_expiry(&res, 120);
    acs_result_release(&res);

    /* Without a request id the client makes up a UUID. */
    is.request_id = NULL;
    is.expires_in_minutes = 0;
    assert_int_equal(acs_client_call_sync(c, &is, &res), 0);
    assert_int_equal(strlen(res.request_id), 36);
    assert_int_equal(res.request_id[14], '4');
    assert_token_expiry(&res, 1440);
    acs_result_release(&res);

    /* Out-of-range minutes: ACS's ValidationError comes back structured. */
    is.expires_in_minutes = 59;
    assert_int_equal(acs_client_call_sync(c, &is, &res), TV_ERR_ACS_BAD_REQUEST);
    assert_int_equal(res.http_status, 400);
    assert_string_equal(res.acs_code, "ValidationError");
    assert_true(res.message[0] != '\0');
    assert_null(res.token);
    assert_int_equal(res.attempts, 1);
    acs_result_release(&res);
    is.expires_in_minutes = 0;

    struct acs_request rv = {.op = ACS_OP_REVOKE, .identity_id = id};
    assert_int_equal(acs_client_call_sync(c, &rv, &res), 0);
    assert_int_equal(res.http_status, 204);
    acs_result_release(&res);

    struct acs_request del = {.op = ACS_OP_DELETE, .identity_id = id};
    assert_int_equal(acs_client_call_sync(c, &del, &res), 0);
    assert_int_equal(res.http_status, 204);
    acs_result_release(&res);

    assert_int_equal(acs_client_call_sync(c, &is, &res), TV_ERR_ACS_NOT_FOUND);
    assert_int_equal(res.http_status, 404);
    assert_true(res.acs_code[0] != '\0');
    assert_null(res.token);
    acs_result_release(&res);

    /* Teams exchange with an unsigned Entra-like token. */
    snprintf(payload, sizeof(payload),
             "{\"oid\":\"22222222-2222-2222-2222-222222222222\","
             "\"appid\":\"11111111-1111-1111-1111-111111111111\",\"exp\":%lld}",
             (long long)(clock_wall_ms() / 1000 + 3600));
    jwt = temu_fake_jwt(payload);
    assert_non_null(jwt);
    struct acs_request tx = {.op = ACS_OP_TEAMS_EXCHANGE,
                             .teams_token = jwt,
                             .teams_app_id = "11111111-1111-1111-1111-111111111111",
                             .teams_user_id = "22222222-2222-2222-2222-222222222222"};
    assert_int_equal(acs_client_call_sync(c, &tx, &res), 0);
    assert_int_equal(res.http_status, 200);
    assert_non_null(res.token);
    assert_true(res.expires_on_ms > clock_wall_ms());
    acs_result_release(&res);
    free(jwt);

    assert_int_equal(temu_stats_get(&g_emu, "requests", "create"), 2);
    assert_int_equal(temu_stats_get(&g_emu, "requests", "teams_exchange"), 1);
    acs_client_free(c);
}

static void test_connections_are_reused(void **state)
{
    enum { N = 20 };
    struct acs_client *c = client_default();
    struct acs_client_stats st;
    struct acs_result res;
    char id[ACS_ID_MAX];

    (void)state;
    create_identity(c, id);
    struct acs_request is = {
        .op = ACS_OP_ISSUE, .identity_id = id, .scopes = {"chat"}, .nscopes = 1};
    for (int i = 0; i < N; i++) {
        assert_int_equal(acs_client_call_sync(c, &is, &res), 0);
        acs_result_release(&res);
    }
    acs_client_stats_get(c, &st);
    assert_int_equal(st.calls, N + 1);
    assert_int_equal(st.attempts, N + 1);
    assert_int_equal(st.retries, 0);
    /* The create opens its own connection; the issues all ride one kept-alive connection. */
    assert_true(st.connections <= 2);
    /* Creates (no customId) open a connection each and close it after: only the issues'
     * kept-alive one stays, however many creates ran. */
    for (int i = 0; i < 3; i++)
        create_identity(c, id);
    acs_client_stats_get(c, &st);
    assert_int_equal(st.sockets_open, 1);
    acs_client_free(c);
}

static void test_invalid_requests(void **state)
{
    struct acs_client *c = client_default();
    struct acs_result res;
    struct acs_request bad[] = {
        {.op = ACS_OP_ISSUE, .identity_id = "8:acs:x"},         /* no scopes */
        {.op = ACS_OP_ISSUE, .scopes = {"chat"}, .nscopes = 1}, /* no identity */
        {.op = ACS_OP_DELETE, .identity_id = ""},
        {.op = ACS_OP_TEAMS_EXCHANGE, .teams_token = "t", .teams_app_id = "a"},
        {.op = ACS_OP_CREATE, .request_id = "has space"},
        {.op = ACS_OP_CREATE, .nscopes = ACS_MAX_SCOPES + 1},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(acs_client_call_sync(c, &bad[i], &res), TV_ERR_INVALID);
        assert_int_equal(res.rc, TV_ERR_INVALID);
        assert_int_equal(res.attempts, 0);
    }
    acs_client_free(c);
}

static void test_throttle_honours_retry_after(void **state)
{
    struct acs_client *c = client_default();
    struct acs_result res;
    char id[ACS_ID_MAX];
    int64_t t0, elapsed;

    (void)state;
    create_identity(c, id);
    assert_int_equal(
        temu_faults_set(&g_emu, "{\"throttle_rate\":1,\"retry_after_ms\":1000,\"count\":1}"), 0);
    struct acs_request is = {
        .op = ACS_OP_ISSUE, .identity_id = id, .scopes = {"voip"}, .nscopes = 1};
    t0 = clock_mono_ms();
    assert_int_equal(acs_client_call_sync(c, &is, &res), 0);
    elapsed = clock_mono_ms() - t0;
    assert_int_equal(res.attempts, 2);
    assert_true(elapsed >= 1000);
    assert_non_null(res.token);
    acs_result_release(&res);
    acs_client_free(c);
}

static void test_throttle_wait_beyond_backoff_cap(void **state)
{
    /* The jitter cap is 100 ms, the server asks for 1.5 s: the server's wait wins in full. */
    struct acs_client_opts o = {
        .connection_string = g_emu.connstr,
        .connect_timeout_ms = 1000,
        .attempt_timeout_ms = 5000,
        .deadline_ms = 15000,
        .max_retries = 3,
        .backoff_base_ms = 10,
        .backoff_max_ms = 100,
    };
    struct acs_client *c = NULL;
    struct acs_result res;
    char id[ACS_ID_MAX];
    int64_t t0, elapsed;

    (void)state;
    assert_int_equal(acs_client_new(&o, &c), 0);
    create_identity(c, id);
    assert_int_equal(
        temu_faults_set(&g_emu, "{\"throttle_rate\":1,\"retry_after_ms\":1500,\"count\":1}"), 0);
    struct acs_request is = {
        .op = ACS_OP_ISSUE, .identity_id = id, .scopes = {"voip"}, .nscopes = 1};
    t0 = clock_mono_ms();
    assert_int_equal(acs_client_call_sync(c, &is, &res), 0);
    elapsed = clock_mono_ms() - t0;
    assert_int_equal(res.attempts, 2);
    assert_true(elapsed >= 1500);
    acs_result_release(&res);
    acs_client_free(c);
}

static void test_throttle_beyond_deadline_fails_early(void **state)
{
    struct acs_client *c = client_new(g_emu.connstr, 2000, 3000, 3);
    struct acs_result res;
    char id[ACS_ID_MAX];
    int64_t t0;

    (void)state;
    create_identity(c, id);
    /* The server asks for 10 s; the deadline is 3 s: fail now rather than retry too early. */
    assert_int_equal(temu_faults_set(&g_emu, "{\"throttle_rate\":1,\"retry_after_ms\":10000}"), 0);
    struct acs_request is = {
        .op = ACS_OP_ISSUE, .identity_id = id, .scopes = {"chat"}, .nscopes = 1};
    t0 = clock_mono_ms();
    assert_int_equal(acs_client_call_sync(c, &is, &res), TV_ERR_ACS_THROTTLED);
    assert_int_equal(res.http_status, 429);
    assert_int_equal(res.attempts, 1);
    assert_non_null(strstr(res.message, "past the deadline"));
    assert_true(clock_mono_ms() - t0 < 3000 + SLACK_MS);
    acs_result_release(&res);
    acs_client_free(c);
}

static void test_503_is_retried(void **state)
{
    struct acs_client *c = client_default();
    struct acs_result res;
    char id[ACS_ID_MAX];

    (void)state;
    create_identity(c, id);
    assert_int_equal(temu_faults_set(&g_emu, "{\"error_rate\":1,\"count\":1}"), 0);
    struct acs_request is = {
        .op = ACS_OP_ISSUE, .identity_id = id, .scopes = {"chat"}, .nscopes = 1};
    assert_int_equal(acs_client_call_sync(c, &is, &res), 0);
    assert_int_equal(res.attempts, 2);
    assert_int_equal(res.http_status, 200);
    acs_result_release(&res);

    /* A create is retried on 503 too: the server did not act on it. */
    assert_int_equal(temu_faults_set(&g_emu, "{\"error_rate\":1,\"count\":1}"), 0);
    struct acs_request cr = {.op = ACS_OP_CREATE};
    assert_int_equal(acs_client_call_sync(c, &cr, &res), 0);
    assert_int_equal(res.attempts, 2);
    acs_result_release(&res);

    /* A 503 that never stops ends in ACS_UNAVAILABLE after the retries. */
    assert_int_equal(temu_faults_set(&g_emu, "{\"error_rate\":1}"), 0);
    assert_int_equal(acs_client_call_sync(c, &is, &res), TV_ERR_ACS_UNAVAILABLE);
    assert_int_equal(res.attempts, 4);
    assert_int_equal(res.http_status, 503);
    acs_result_release(&res);
    acs_client_free(c);
}

static void test_500_on_create_is_not_retried(void **state)
{
    struct acs_client *c = client_default();
    struct acs_result res;
    struct acs_request cr = {.op = ACS_OP_CREATE};

    (void)state;
    assert_int_equal(temu_faults_set(&g_emu, "{\"error_rate\":1,\"error_status\":500,\"count\":1}"),
                     0);
    assert_int_equal(acs_client_call_sync(c, &cr, &res), TV_ERR_UPSTREAM_UNKNOWN);
    assert_int_equal(res.attempts, 1);
    assert_int_equal(res.http_status, 500);
    assert_non_null(strstr(res.message, "may have been created"));
    acs_result_release(&res);
    acs_client_free(c);
}

static void test_drop_issue_retried_then_network(void **state)
{
    const long deadline = 5000;
    struct acs_client *c = client_new(g_emu.connstr, 2000, deadline, 2);
    struct acs_result res;
    char id[ACS_ID_MAX];
    int64_t t0;

    (void)state;
    create_identity(c, id);
    assert_int_equal(temu_faults_set(&g_emu, "{\"drop_rate\":1}"), 0);
    struct acs_request is = {
        .op = ACS_OP_ISSUE, .identity_id = id, .scopes = {"chat"}, .nscopes = 1};
    t0 = clock_mono_ms();
    assert_int_equal(acs_client_call_sync(c, &is, &res), TV_ERR_UPSTREAM_NETWORK);
    assert_true(clock_mono_ms() - t0 < deadline + SLACK_MS);
    assert_int_equal(res.attempts, 3);
    assert_int_equal(res.http_status, 0);
    assert_true(res.message[0] != '\0');
    acs_result_release(&res);
    /* At least one request per attempt (libcurl may repeat one on a reused connection). */
    assert_true(temu_stats_get(&g_emu, "requests", "issue") >= 3);
    acs_client_free(c);
}

static void test_drop_create_not_retried(void **state)
{
    const long deadline = 5000;
    struct acs_client *c = client_new(g_emu.connstr, 2000, deadline, 3);
    struct acs_result res;
    struct acs_request cr = {.op = ACS_OP_CREATE};
    int64_t t0;

    (void)state;
    assert_int_equal(temu_faults_set(&g_emu, "{\"drop_rate\":1,\"ops\":[\"create\"]}"), 0);
    t0 = clock_mono_ms();
    assert_int_equal(acs_client_call_sync(c, &cr, &res), TV_ERR_UPSTREAM_UNKNOWN);
    assert_true(clock_mono_ms() - t0 < deadline + SLACK_MS);
    assert_int_equal(res.attempts, 1);
    assert_non_null(strstr(res.message, "may have been created"));
    assert_int_equal(res.identity_id[0], '\0');
    acs_result_release(&res);
    assert_int_equal(temu_stats_get(&g_emu, "requests", "create"), 1);
    acs_client_free(c);
}

/* A client with acs_custom_id on (api-version 2025-03-02-preview). */
static struct acs_client *client_custom_id(int on)
{
    struct acs_client_opts o = {
        .connection_string = g_emu.connstr,
        .api_version = ACS_API_VERSION_CUSTOM_ID,
        .connect_timeout_ms = 1000,
        .attempt_timeout_ms = 2000,
        .deadline_ms = 10000,
        .max_retries = 3,
        .backoff_base_ms = 50,
        .backoff_max_ms = 2000,
        .custom_id = on,
    };
    struct acs_client *c = NULL;

    assert_int_equal(acs_client_new(&o, &c), 0);
    return c;
}

/* The customId: stable, per resource and user, without the user id in it; a client refuses the
 * option with an api-version that has no customId. */
static void test_custom_id_derivation(void **state)
{
    char a[ACS_CUSTOM_ID_LEN], b[ACS_CUSTOM_ID_LEN], c[ACS_CUSTOM_ID_LEN], d[ACS_CUSTOM_ID_LEN];
    struct acs_client_opts o = {.connection_string = g_emu.connstr, .custom_id = 1};
    struct acs_client *cl = NULL;

    (void)state;
    assert_int_equal(acs_custom_id("res.example:443", "alice@contoso.com", a), 0);
    assert_int_equal(acs_custom_id("res.example:443", "alice@contoso.com", b), 0);
    assert_int_equal(acs_custom_id("res.example:443", "bob@contoso.com", c), 0);
    assert_int_equal(acs_custom_id("other.example:443", "alice@contoso.com", d), 0);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_string_not_equal(a, d);
    assert_int_equal(strlen(a), ACS_CUSTOM_ID_LEN - 1);
    assert_int_equal(strncmp(a, "tv1_", 4), 0);
    assert_null(strstr(a, "alice"));
    /* The separator keeps resource and user apart. */
    assert_int_equal(acs_custom_id("ab", "c", a), 0);
    assert_int_equal(acs_custom_id("a", "bc", b), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(acs_client_new(&o, &cl), TV_ERR_CONFIG);
    assert_null(cl);
}

/* With a customId, a create whose answer was dropped is retried and the retry returns the very
 * identity the lost attempt made: one identity at the emulator, and a later create for the same
 * app user gets it again. Another user gets another identity. */
static void test_drop_create_with_custom_id_retried(void **state)
{
    struct acs_client *c = client_custom_id(1);
    struct acs_result res, again, other;
    struct acs_request cr = {
        .op = ACS_OP_CREATE, .custom_id_user = "drop-user", .scopes = {"voip"}, .nscopes = 1};
    struct acs_request cr2 = {.op = ACS_OP_CREATE, .custom_id_user = "another-user"};

    (void)state;
    assert_int_equal(temu_faults_set(&g_emu, "{\"drop_rate\":1,\"ops\":[\"create\"],\"count\":1}"),
                     0);
    assert_int_equal(acs_client_call_sync(c, &cr, &res), 0);
    assert_int_equal(res.attempts, 2);
    assert_int_equal(strncmp(res.identity_id, "8:acs:", 6), 0);
    assert_non_null(res.token);
    assert_int_equal(temu_stats_get(&g_emu, "requests", "create"), 2);
    assert_int_equal(temu_stats_get(&g_emu, "identities_created", NULL), 1);

    assert_int_equal(acs_client_call_sync(c, &cr, &again), 0);
    assert_string_equal(again.identity_id, res.identity_id);
    assert_int_equal(again.http_status, 200);
    assert_int_equal(acs_client_call_sync(c, &cr2, &other), 0);
    assert_string_not_equal(other.identity_id, res.identity_id);
    assert_int_equal(temu_stats_get(&g_emu, "identities_created", NULL), 2);
    acs_result_release(&res);
    acs_result_release(&again);
    acs_result_release(&other);
    acs_client_free(c);

    /* The option off: the same request carries no customId and stays unretried. */
    c = client_custom_id(0);
    assert_int_equal(temu_faults_set(&g_emu, "{\"drop_rate\":1,\"ops\":[\"create\"],\"count\":1}"),
                     0);
    assert_int_equal(acs_client_call_sync(c, &cr, &res), TV_ERR_UPSTREAM_UNKNOWN);
    assert_int_equal(res.attempts, 1);
    acs_result_release(&res);
    acs_client_free(c);
}

static void test_timeout_ends_within_deadline(void **state)
{
    const long deadline = 1500;
    struct acs_client *c = client_new(g_emu.connstr, 500, deadline, 5);
    struct acs_result res;
    char id[ACS_ID_MAX];
    int64_t t0;

    (void)state;
    {
        struct acs_client *setup = client_default();
        create_identity(setup, id);
        acs_client_free(setup);
    }
    assert_int_equal(temu_faults_set(&g_emu, "{\"latency_ms\":3000}"), 0);
    struct acs_request is = {
        .op = ACS_OP_ISSUE, .identity_id = id, .scopes = {"chat"}, .nscopes = 1};
    t0 = clock_mono_ms();
    assert_int_equal(acs_client_call_sync(c, &is, &res), TV_ERR_UPSTREAM_TIMEOUT);
    assert_true(clock_mono_ms() - t0 < deadline + SLACK_MS);
    assert_true(res.attempts >= 2);
    acs_result_release(&res);
    acs_client_free(c);
}

/* An ACS that takes the request and never answers (the emulator holding every answer past the
 * deadline): a create without a customId is sent once and ends as a timeout (504) whose outcome
 * is unknown, within the deadline; with a customId it is retried until the deadline and ends
 * the same way, naming its customId; an issue ends as a plain timeout. Afterwards the client
 * holds no call and no socket: nothing is left behind. */
static void test_black_hole_create(void **state)
{
    const long deadline = 1500;
    struct acs_client_opts o = {
        .connection_string = g_emu.connstr,
        .api_version = ACS_API_VERSION_CUSTOM_ID,
        .connect_timeout_ms = 500,
        .attempt_timeout_ms = 500,
        .deadline_ms = deadline,
        .max_retries = 5,
        .backoff_base_ms = 50,
        .backoff_max_ms = 200,
    };
    struct acs_client *plain = NULL, *cid = NULL;
    struct acs_client_stats st;
    struct acs_result res;
    struct acs_request cr = {.op = ACS_OP_CREATE, .custom_id_user = "hole-user"};
    char id[ACS_ID_MAX];
    int64_t t0;

    (void)state;
    {
        struct acs_client *setup = client_default();
        create_identity(setup, id);
        acs_client_free(setup);
    }
    assert_int_equal(acs_client_new(&o, &plain), 0);
    o.custom_id = 1;
    assert_int_equal(acs_client_new(&o, &cid), 0);
    assert_int_equal(temu_faults_set(&g_emu, "{\"latency_ms\":4000}"), 0);

    t0 = clock_mono_ms();
    assert_int_equal(acs_client_call_sync(plain, &cr, &res), TV_ERR_UPSTREAM_TIMEOUT);
    assert_true(clock_mono_ms() - t0 < deadline + SLACK_MS);
    assert_int_equal(res.attempts, 1);
    assert_int_equal(res.outcome_unknown, 1);
    assert_string_equal(res.custom_id, "");
    assert_int_equal(res.identity_id[0], '\0');
    assert_non_null(strstr(res.message, "may have been created"));
    acs_result_release(&res);

    t0 = clock_mono_ms();
    assert_int_equal(acs_client_call_sync(cid, &cr, &res), TV_ERR_UPSTREAM_TIMEOUT);
    assert_true(clock_mono_ms() - t0 < deadline + SLACK_MS);
    assert_true(res.attempts >= 2);
    assert_int_equal(res.outcome_unknown, 1);
    assert_int_equal(strncmp(res.custom_id, "tv1_", 4), 0);
    acs_result_release(&res);

    struct acs_request is = {
        .op = ACS_OP_ISSUE, .identity_id = id, .scopes = {"chat"}, .nscopes = 1};
    assert_int_equal(acs_client_call_sync(plain, &is, &res), TV_ERR_UPSTREAM_TIMEOUT);
    assert_int_equal(res.outcome_unknown, 0);
    acs_result_release(&res);

    acs_client_stats_get(plain, &st);
    assert_int_equal(st.inflight, 0);
    assert_int_equal(st.sockets_open, 0);
    acs_client_stats_get(cid, &st);
    assert_int_equal(st.inflight, 0);
    assert_int_equal(st.sockets_open, 0);
    acs_client_free(plain);
    acs_client_free(cid);
}

static void test_wrong_key_denied(void **state)
{
    char cs[TEMU_CONNSTR_MAX + 64];
    struct acs_client *c;
    struct acs_result res;
    struct acs_request cr = {.op = ACS_OP_CREATE};

    (void)state;
    snprintf(cs, sizeof(cs), "endpoint=%s/;accesskey=d3Jvbmcga2V5IHdyb25nIGtleQ==", g_emu.base_url);
    c = client_new(cs, 5000, 10000, 3);
    assert_int_equal(acs_client_call_sync(c, &cr, &res), TV_ERR_ACS_DENIED);
    assert_int_equal(res.http_status, 401);
    assert_string_equal(res.acs_code, "Denied");
    assert_int_equal(res.attempts, 1);
    acs_result_release(&res);
    acs_client_free(c);
}

static void test_unreachable_endpoint(void **state)
{
    const long deadline = 10000;
    char cs[TEMU_CONNSTR_MAX + 64];
    const char *key = strstr(g_emu.connstr, "accesskey=");
    struct acs_client *c;
    struct acs_result res;
    int port = temu_closed_port();
    int64_t t0;

    (void)state;
    assert_true(port > 0);
    assert_non_null(key);
    snprintf(cs, sizeof(cs), "endpoint=http://127.0.0.1:%d/;%s", port, key);
    c = client_new(cs, 2000, deadline, 3);
    struct acs_request is = {
        .op = ACS_OP_ISSUE, .identity_id = "8:acs:x_y", .scopes = {"chat"}, .nscopes = 1};
    t0 = clock_mono_ms();
    assert_int_equal(acs_client_call_sync(c, &is, &res), TV_ERR_UPSTREAM_NETWORK);
    assert_true(clock_mono_ms() - t0 < deadline);
    assert_int_equal(res.attempts, 4);
    assert_int_equal(res.http_status, 0);
    acs_result_release(&res);

    /* A refused connect cannot have created anything: creates are retried as well. */
    struct acs_request cr = {.op = ACS_OP_CREATE};
    assert_int_equal(acs_client_call_sync(c, &cr, &res), TV_ERR_UPSTREAM_NETWORK);
    assert_int_equal(res.attempts, 4);
    acs_result_release(&res);
    acs_client_free(c);
}

struct tally {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done, ok, shutdown, other;
    int with_token;
};

static void on_done(void *arg, struct acs_result *res)
{
    struct tally *t = arg;

    pthread_mutex_lock(&t->lock);
    t->done++;
    if (res->rc == 0)
        t->ok++;
    else if (res->rc == TV_ERR_SHUTDOWN)
        t->shutdown++;
    else
        t->other++;
    if (res->token != NULL)
        t->with_token++;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
    acs_result_release(res);
}

static void tally_init(struct tally *t)
{
    memset(t, 0, sizeof(*t));
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->cond, NULL);
}

static void tally_wait(struct tally *t, int n)
{
    pthread_mutex_lock(&t->lock);
    while (t->done < n)
        pthread_cond_wait(&t->cond, &t->lock);
    pthread_mutex_unlock(&t->lock);
}

static void tally_release(struct tally *t)
{
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->lock);
}

#define SUBMITTERS 4

struct submitter {
    struct acs_client *c;
    const struct acs_request *req;
    struct tally *t;
    int n;
    int failed;
    pthread_t thread;
};

static void *submit_many(void *arg)
{
    struct submitter *s = arg;

    for (int i = 0; i < s->n; i++)
        if (acs_client_submit(s->c, s->req, on_done, s->t) != 0)
            s->failed++;
    return NULL;
}

static void test_many_concurrent(void **state)
{
    enum { N = 200 };
    struct acs_client *c = client_default();
    struct tally t;
    char id[ACS_ID_MAX];

    (void)state;
    tally_init(&t);
    create_identity(c, id);
    struct acs_request is = {
        .op = ACS_OP_ISSUE, .identity_id = id, .scopes = {"chat", "voip"}, .nscopes = 2};
    /* Submitted from several threads at once: submission is thread-safe. */
    struct submitter sub[SUBMITTERS];
    for (int k = 0; k < SUBMITTERS; k++) {
        sub[k] = (struct submitter){.c = c, .req = &is, .t = &t, .n = N / SUBMITTERS};
        assert_int_equal(pthread_create(&sub[k].thread, NULL, submit_many, &sub[k]), 0);
    }
    for (int k = 0; k < SUBMITTERS; k++) {
        pthread_join(sub[k].thread, NULL);
        assert_int_equal(sub[k].failed, 0);
    }
    tally_wait(&t, N);
    assert_int_equal(t.ok, N);
    assert_int_equal(t.with_token, N);
    assert_int_equal(temu_stats_get(&g_emu, "requests", "issue"), N);
    /* At most max_connections (64) at once; the rest queue for a kept-alive one. */
    struct acs_client_stats st;
    acs_client_stats_get(c, &st);
    assert_int_equal(st.calls, N + 1);
    assert_int_equal(st.failures, 0);
    assert_true(st.connections <= 64 + 1);
    acs_client_free(c);
    tally_release(&t);
}

static void test_free_cancels_pending_calls(void **state)
{
    enum { N = 10 };
    struct acs_client *c = client_new(g_emu.connstr, 10000, 20000, 3);
    struct tally t;
    char id[ACS_ID_MAX];

    (void)state;
    tally_init(&t);
    create_identity(c, id);
    assert_int_equal(temu_faults_set(&g_emu, "{\"latency_ms\":5000}"), 0);
    struct acs_request is = {
        .op = ACS_OP_ISSUE, .identity_id = id, .scopes = {"chat"}, .nscopes = 1};
    for (int i = 0; i < N; i++)
        assert_int_equal(acs_client_submit(c, &is, on_done, &t), 0);
    clock_sleep_ms(200);
    acs_client_free(c);
    /* Every callback fired before acs_client_free returned. */
    assert_int_equal(t.done, N);
    assert_int_equal(t.shutdown, N);
    tally_release(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_every_operation, test_setup),
        cmocka_unit_test_setup(test_connections_are_reused, test_setup),
        cmocka_unit_test_setup(test_invalid_requests, test_setup),
        cmocka_unit_test_setup(test_throttle_honours_retry_after, test_setup),
        cmocka_unit_test_setup(test_throttle_wait_beyond_backoff_cap, test_setup),
        cmocka_unit_test_setup(test_throttle_beyond_deadline_fails_early, test_setup),
        cmocka_unit_test_setup(test_503_is_retried, test_setup),
        cmocka_unit_test_setup(test_500_on_create_is_not_retried, test_setup),
        cmocka_unit_test_setup(test_drop_issue_retried_then_network, test_setup),
        cmocka_unit_test_setup(test_drop_create_not_retried, test_setup),
        cmocka_unit_test_setup(test_custom_id_derivation, test_setup),
        cmocka_unit_test_setup(test_drop_create_with_custom_id_retried, test_setup),
        cmocka_unit_test_setup(test_timeout_ends_within_deadline, test_setup),
        cmocka_unit_test_setup(test_black_hole_create, test_setup),
        cmocka_unit_test_setup(test_wrong_key_denied, test_setup),
        cmocka_unit_test_setup(test_unreachable_endpoint, test_setup),
        cmocka_unit_test_setup(test_many_concurrent, test_setup),
        cmocka_unit_test_setup(test_free_cancels_pending_calls, test_setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
